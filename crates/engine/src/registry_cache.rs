//! A short-lived in-memory copy of registry records, so that reading a registry (the hot path of
//! the API, and of credential resolution) does not cost a database round trip each time.
//!
//! Every write through this process clears it, so one process always reads its own writes.
//! Other replicas sharing a PostgreSQL database see a change within `ttl` at most; `ttl` zero
//! turns the cache off.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use regkeep_domain::{AccountName, RegistryName, Secret};
use regkeep_store::RegistryRecord;

/// Most entries kept; past this the cache is cleared rather than grown.
const MAX_ENTRIES: usize = 100_000;

pub(crate) struct RegistryCache {
    ttl: Duration,
    /// A std Mutex: held only to look up, insert or clear, never across an await.
    entries: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    records: HashMap<(AccountName, RegistryName), (RegistryRecord, Instant)>,
    /// Opened passwords, so resolving a credential does not unseal on every use. Process
    /// memory only, like every secret regkeep uses.
    secrets: HashMap<(AccountName, RegistryName), (Secret, Instant)>,
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

    pub(crate) fn get(
        &self,
        account: &AccountName,
        registry: &RegistryName,
    ) -> Option<RegistryRecord> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .records
            .get(&(account.clone(), registry.clone()))
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(record, _)| record.clone())
    }

    /// The current generation: take it before reading the database, give it to [`Self::put`].
    pub(crate) fn generation(&self) -> u64 {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .generation
    }

    /// Remembers `record`, read from the database during `generation`, unless a write has
    /// cleared the cache since.
    pub(crate) fn put(&self, record: &RegistryRecord, generation: u64) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.generation != generation {
            return;
        }
        if entries.records.len() >= MAX_ENTRIES {
            entries.records.clear();
        }
        entries.records.insert(
            (record.account.clone(), record.registry.clone()),
            (record.clone(), Instant::now()),
        );
    }

    pub(crate) fn get_secret(
        &self,
        account: &AccountName,
        registry: &RegistryName,
    ) -> Option<Secret> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .secrets
            .get(&(account.clone(), registry.clone()))
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(secret, _)| secret.clone())
    }

    pub(crate) fn put_secret(
        &self,
        account: &AccountName,
        registry: &RegistryName,
        secret: &Secret,
        generation: u64,
    ) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.generation != generation {
            return;
        }
        if entries.secrets.len() >= MAX_ENTRIES {
            entries.secrets.clear();
        }
        entries.secrets.insert(
            (account.clone(), registry.clone()),
            (secret.clone(), Instant::now()),
        );
    }

    /// Forgets everything: called after every write to registries or accounts.
    pub(crate) fn clear(&self) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.records.clear();
        entries.secrets.clear();
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
