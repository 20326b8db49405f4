//! A short-lived in-memory copy of registry records, so that reading a registry (the hot path of
//! the API, and of credential resolution) does not cost a database round trip each time.
//!
//! Every write through this process clears it, so one process always reads its own writes.
//! Other replicas sharing a PostgreSQL database see a change within `ttl` at most; `ttl` zero
//! turns the cache off.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use regkeep_domain::entities::RegistryRecord;
use regkeep_domain::ttl_map::deadline;
use regkeep_domain::{AccountName, RegistryName, Secret, TtlMap, WhenFull};

/// Most entries kept; past this the cache is cleared rather than grown.
const MAX_ENTRIES: usize = 100_000;

pub(crate) struct RegistryCache {
    ttl: Duration,
    /// A std Mutex: held only to look up, insert or clear, never across an await.
    entries: Mutex<Entries>,
}

type Key = (AccountName, RegistryName);

/// Values kept for `ttl` from when they were read.
struct Timed<K, V>(TtlMap<K, V>);

impl<K: std::hash::Hash + Eq, V: Clone> Timed<K, V> {
    fn get(&self, key: &K) -> Option<V> {
        self.0.get(key, Instant::now()).cloned()
    }

    fn put(&mut self, key: K, value: V, ttl: Duration) {
        let now = Instant::now();
        self.0.insert(key, value, deadline(now, ttl), now);
    }
}

impl<K: std::hash::Hash + Eq, V> Default for Timed<K, V> {
    fn default() -> Self {
        Timed(TtlMap::new(MAX_ENTRIES, WhenFull::Clear))
    }
}

#[derive(Default)]
struct Entries {
    records: Timed<Key, RegistryRecord>,
    /// Each account's registry names (credential selection for images reads them all).
    names: Timed<AccountName, Vec<RegistryName>>,
    /// Opened passwords, so resolving a credential does not unseal on every use. Process
    /// memory only, like every secret regkeep uses.
    secrets: Timed<Key, Secret>,
    /// Bumped by every clear. A reader notes it before reading the database and may insert what
    /// it read only if no write cleared the cache meanwhile: a slow read never re-inserts a
    /// record that a concurrent write replaced.
    generation: u64,
}

impl RegistryCache {
    pub(crate) fn new(ttl: Duration) -> Self {
        RegistryCache {
            ttl,
            entries: Mutex::new(Entries::default()),
        }
    }

    /// Runs `f` on the entries unless the cache is off.
    fn with<T>(&self, f: impl FnOnce(&mut Entries) -> Option<T>) -> Option<T> {
        if self.ttl.is_zero() {
            return None;
        }
        f(&mut self.entries.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub(crate) fn get(
        &self,
        account: &AccountName,
        registry: &RegistryName,
    ) -> Option<RegistryRecord> {
        self.with(|e| e.records.get(&(account.clone(), registry.clone())))
    }

    pub(crate) fn get_secret(
        &self,
        account: &AccountName,
        registry: &RegistryName,
    ) -> Option<Secret> {
        self.with(|e| e.secrets.get(&(account.clone(), registry.clone())))
    }

    pub(crate) fn get_names(&self, account: &AccountName) -> Option<Vec<RegistryName>> {
        self.with(|e| e.names.get(account))
    }

    /// As [`Self::put`], for the account's registry names.
    pub(crate) fn put_names(&self, account: &AccountName, names: &[RegistryName], generation: u64) {
        self.with(|e| {
            (e.generation == generation)
                .then(|| e.names.put(account.clone(), names.to_vec(), self.ttl))
        });
    }

    /// The current generation: take it before reading the database, give it to the `put`s.
    pub(crate) fn generation(&self) -> u64 {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .generation
    }

    /// Remembers `record`, read from the database during `generation`, unless a write has
    /// cleared the cache since.
    pub(crate) fn put(&self, record: &RegistryRecord, generation: u64) {
        self.with(|e| {
            (e.generation == generation).then(|| {
                e.records.put(
                    (record.account.clone(), record.registry.clone()),
                    record.clone(),
                    self.ttl,
                )
            })
        });
    }

    /// As [`Self::put`], for the registry's opened password.
    pub(crate) fn put_secret(
        &self,
        account: &AccountName,
        registry: &RegistryName,
        secret: &Secret,
        generation: u64,
    ) {
        self.with(|e| {
            (e.generation == generation).then(|| {
                e.secrets.put(
                    (account.clone(), registry.clone()),
                    secret.clone(),
                    self.ttl,
                )
            })
        });
    }

    /// Forgets everything: called after every write to registries or accounts.
    pub(crate) fn clear(&self) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.records = Timed::default();
        entries.secrets = Timed::default();
        entries.names = Timed::default();
        entries.generation += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use regkeep_domain::{RegistryType, Timestamp};

    fn record(name: &str) -> RegistryRecord {
        RegistryRecord {
            account: AccountName::admin(),
            registry: name.parse().unwrap(),
            registry_name: name.into(),
            registry_user: "u".into(),
            registry_type: RegistryType::DockerV2,
            registry_verify: true,
            created_at: Timestamp::from_unix(0),
            last_updated: Timestamp::from_unix(0),
            last_validated: None,
            token_key: None,
            token_status: None,
            declared_in: None,
            declaration_error: None,
        }
    }

    #[test]
    fn a_read_that_raced_a_write_is_not_kept() {
        let cache = RegistryCache::new(Duration::from_secs(60));
        let r = record("r.example.com");
        let before = cache.generation();
        cache.clear(); // a write lands while the read is in flight
        cache.put(&r, before);
        assert!(cache.get(&r.account, &r.registry).is_none());
        cache.put(&r, cache.generation());
        assert_eq!(cache.get(&r.account, &r.registry), Some(r));
    }

    #[test]
    fn zero_ttl_is_off() {
        let cache = RegistryCache::new(Duration::ZERO);
        let r = record("r.example.com");
        cache.put(&r, cache.generation());
        assert!(cache.get(&r.account, &r.registry).is_none());
    }
}
