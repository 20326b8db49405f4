//! [`TtlMap`]: the one bounded map of expiring values regkeep keeps in memory (remembered
//! logins, throttled addresses, registry records, registry sessions). Every entry has its own
//! deadline; the map never grows past its capacity. Time is passed in (`now`), so the map does
//! no I/O and its tests need no sleeping.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Instant;

/// The longest anything is kept: a configured lifetime beyond it (too long to add to the clock)
/// is taken as this.
pub const FOREVER: std::time::Duration = std::time::Duration::from_secs(100 * 365 * 24 * 3600);

/// `now + lifetime`, or `now + FOREVER` when that cannot be represented: a huge configured
/// lifetime means "keep", never "keep nothing".
pub fn deadline(now: Instant, lifetime: std::time::Duration) -> Instant {
    now.checked_add(lifetime.min(FOREVER))
        .or_else(|| now.checked_add(FOREVER))
        .unwrap_or(now)
}

/// What an insert into a full map does once the expired entries are gone and it is still full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhenFull {
    /// Forget everything and keep the new entry (a cache: losing entries costs a re-read).
    Clear,
    /// Keep what is there and drop the new entry (an allow-list: never everyone's at once).
    Refuse,
}

/// A map whose entries expire at their own deadline, bounded to `capacity` entries.
#[derive(Debug)]
pub struct TtlMap<K, V> {
    entries: HashMap<K, (V, Instant)>,
    capacity: usize,
    when_full: WhenFull,
}

impl<K: Hash + Eq, V> TtlMap<K, V> {
    pub fn new(capacity: usize, when_full: WhenFull) -> Self {
        TtlMap {
            entries: HashMap::new(),
            capacity: capacity.max(1),
            when_full,
        }
    }

    /// The value under `key`, unless it has expired by `now`.
    pub fn get(&self, key: &K, now: Instant) -> Option<&V> {
        self.entries
            .get(key)
            .filter(|(_, until)| now < *until)
            .map(|(value, _)| value)
    }

    /// How long the entry under `key` still lives, if it does.
    pub fn remaining(&self, key: &K, now: Instant) -> Option<std::time::Duration> {
        self.entries
            .get(key)
            .and_then(|(_, until)| until.checked_duration_since(now))
            .filter(|left| !left.is_zero())
    }

    /// Keeps `value` under `key` until `until`. A full map first drops what has expired; if it is
    /// still full, it follows its [`WhenFull`]. Answers whether the value was kept.
    pub fn insert(&mut self, key: K, value: V, until: Instant, now: Instant) -> bool {
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&key) {
            self.entries.retain(|_, (_, u)| now < *u);
            if self.entries.len() >= self.capacity {
                match self.when_full {
                    WhenFull::Clear => self.entries.clear(),
                    WhenFull::Refuse => return false,
                }
            }
        }
        self.entries.insert(key, (value, until));
        true
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        self.entries.remove(key).map(|(value, _)| value)
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Entries kept, expired ones included until an insert sweeps them.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn entries_expire_at_their_own_deadline() {
        let t0 = Instant::now();
        let mut map = TtlMap::new(10, WhenFull::Clear);
        map.insert("short", 1, t0 + secs(5), t0);
        map.insert("long", 2, t0 + secs(60), t0);
        assert_eq!(map.get(&"short", t0 + secs(4)), Some(&1));
        assert_eq!(map.get(&"short", t0 + secs(5)), None);
        assert_eq!(map.get(&"long", t0 + secs(59)), Some(&2));
        assert_eq!(map.remaining(&"long", t0 + secs(50)), Some(secs(10)));
        assert_eq!(map.remaining(&"short", t0 + secs(50)), None);
    }

    #[test]
    fn a_full_map_drops_the_expired_first_then_follows_its_policy() {
        let t0 = Instant::now();
        for (policy, kept) in [(WhenFull::Clear, true), (WhenFull::Refuse, false)] {
            let mut map = TtlMap::new(2, policy);
            map.insert(1, "a", t0 + secs(1), t0);
            map.insert(2, "b", t0 + secs(100), t0);
            // One expired: it makes room, the others stay.
            assert!(map.insert(3, "c", t0 + secs(100), t0 + secs(2)));
            assert_eq!(map.len(), 2);
            assert_eq!(map.get(&2, t0 + secs(2)), Some(&"b"));
            // None expired: Clear forgets all and keeps the new one; Refuse keeps the old ones.
            assert_eq!(map.insert(4, "d", t0 + secs(100), t0 + secs(3)), kept);
            assert_eq!(map.get(&4, t0 + secs(3)).is_some(), kept);
            assert_eq!(map.get(&2, t0 + secs(3)).is_some(), !kept);
            assert!(map.len() <= 2);
        }
    }

    #[test]
    fn a_lifetime_too_long_for_the_clock_means_keep_not_drop() {
        let t0 = Instant::now();
        let until = deadline(t0, Duration::MAX);
        assert!(until > t0 + secs(365 * 24 * 3600));
        let mut map = TtlMap::new(2, WhenFull::Clear);
        map.insert("k", 1, until, t0);
        assert_eq!(map.get(&"k", t0 + secs(3600)), Some(&1));
        assert_eq!(
            deadline(t0, Duration::ZERO),
            t0,
            "zero: expired at once (off)"
        );
    }

    #[test]
    fn replacing_a_key_in_a_full_map_never_evicts() {
        let t0 = Instant::now();
        let mut map = TtlMap::new(2, WhenFull::Refuse);
        map.insert(1, "a", t0 + secs(100), t0);
        map.insert(2, "b", t0 + secs(100), t0);
        assert!(map.insert(1, "a2", t0 + secs(200), t0));
        assert_eq!(map.get(&1, t0), Some(&"a2"));
        assert_eq!(map.remove(&2), Some("b"));
        map.clear();
        assert!(map.is_empty());
    }
}
