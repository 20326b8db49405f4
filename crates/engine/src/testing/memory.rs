//! Every repository in memory ([`MemoryRepositories`]), with the store's semantics the services
//! rely on: names unique where the database's keys make them so, `NotFound` where an update or
//! delete finds no row, an account's rows going with it, a deleting account's state kept, the
//! tokens' "used" keys following the registries. Secrets are kept as given (nothing here is
//! sealed: it never outlives a test).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use regkeep_domain::entities::{
    AccountRecord, ApiKeyRecord, EventFilter, EventRecord, ImageRecord, ImageTagRecord,
    PollOutcome, RegistryRecord, SubscriptionRecord, TokenStatus, UserRecord,
};
use regkeep_domain::{
    AccountName, AccountState, ApiKeyId, BoxFuture, Digest, RegistryName, Secret, Timestamp,
    UserName,
};
use regkeep_store::{
    AccountRepository, ApiKeyRepository, Database, ImageRepository, RegistryRepository, StoreError,
    WatchRepository,
};
use sha2::{Digest as _, Sha256};

use super::MemoryTokenRepository;
use crate::Repositories;

type Result<T> = std::result::Result<T, StoreError>;

/// The path the injected storage failures name ([`MemoryRepositories::fail_registry_writes`]).
pub const INJECTED_CAUSE: &str = "/var/lib/regkeep/injected-failure.db";

/// Accounts, users, registries, images, subscriptions, events and ECR tokens, in memory.
#[derive(Default)]
pub struct MemoryRepositories {
    state: Mutex<State>,
    tokens: Arc<MemoryTokenRepository>,
    /// Registry writes fail as an unwritable database would ([`Self::fail_registry_writes`]).
    failing_registry_writes: std::sync::atomic::AtomicBool,
}

#[derive(Default)]
struct State {
    markers: Vec<String>,
    accounts: BTreeMap<AccountName, AccountRecord>,
    users: BTreeMap<UserName, UserRecord>,
    api_keys: BTreeMap<ApiKeyId, ApiKeyRecord>,
    registries: BTreeMap<(AccountName, RegistryName), (RegistryRecord, Secret)>,
    /// By account and digest; tags in the record, in the order they were first added.
    images: BTreeMap<(AccountName, Digest), ImageRecord>,
    subscriptions: Vec<SubscriptionRecord>,
    /// In insertion order (the database's `seq`).
    events: Vec<EventRecord>,
}

impl MemoryRepositories {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// All of them, as the engine takes them.
    pub fn repositories(self: &Arc<Self>) -> Repositories {
        Repositories {
            database: self.clone(),
            accounts: self.clone(),
            api_keys: self.clone(),
            registries: self.clone(),
            images: self.clone(),
            watch: self.clone(),
            ecr_tokens: self.tokens.clone(),
        }
    }

    /// While `on`, inserting, updating and deleting registries fails as a database that cannot
    /// be written does (`StoreError::Unwritable`, with a cause naming a file path that must never
    /// reach an answer); reads and `set_declaration_error` still work.
    pub fn fail_registry_writes(&self, on: bool) {
        self.failing_registry_writes
            .store(on, std::sync::atomic::Ordering::SeqCst);
    }

    fn registry_write_fails(&self) -> Option<StoreError> {
        self.failing_registry_writes
            .load(std::sync::atomic::Ordering::SeqCst)
            .then(|| {
                StoreError::Unwritable(format!(
                    "{INJECTED_CAUSE}: attempt to write a readonly database"
                ))
            })
    }

    /// The token repository (its rows follow the registries' token keys).
    pub fn tokens(&self) -> &Arc<MemoryTokenRepository> {
        &self.tokens
    }

    /// The secret kept for a registry, as stored.
    pub fn stored_secret(&self, account: &AccountName, registry: &RegistryName) -> Option<Secret> {
        self.state()
            .registries
            .get(&(account.clone(), registry.clone()))
            .map(|(_, secret)| secret.clone())
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The registries' token keys are the ones in use (as the database's join finds them).
    fn sync_used_keys(&self, state: &State) {
        self.tokens.set_used(
            state
                .registries
                .values()
                .filter_map(|(r, _)| r.token_key.clone())
                .collect(),
        );
    }

    fn with_token_status(&self, mut record: RegistryRecord) -> RegistryRecord {
        record.token_status = record.token_key.as_deref().and_then(|key| {
            self.tokens
                .row_status(key)
                .map(|(token, last_error)| TokenStatus {
                    expires_at: token.as_ref().map(|t| t.usable_until),
                    last_renewed_at: token.as_ref().map(|t| t.obtained_at),
                    last_error,
                })
        });
        record
    }
}

/// The first `bytes` of SHA-256 over `parts`, as hex: the fake's stand-in for the store's keyed
/// hashes.
fn unkeyed_hash(parts: &[&[u8]], bytes: usize) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part);
    }
    hash.finalize()
        .iter()
        .take(bytes)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn ready<'a, T: Send + 'a>(value: Result<T>) -> BoxFuture<'a, Result<T>> {
    Box::pin(std::future::ready(value))
}

fn found<T>(value: Option<T>) -> Result<T> {
    value.ok_or(StoreError::NotFound)
}

fn count<'a>(n: usize) -> BoxFuture<'a, Result<u64>> {
    ready(Ok(u64::try_from(n).unwrap_or(u64::MAX)))
}

impl AccountRepository for MemoryRepositories {
    fn has_marker<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool>> {
        ready(Ok(self.state().markers.iter().any(|m| m == key)))
    }
    fn set_marker<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<()>> {
        let mut state = self.state();
        if !state.markers.iter().any(|m| m == key) {
            state.markers.push(key.to_owned());
        }
        ready(Ok(()))
    }
    fn insert_account<'a>(&'a self, account: &'a AccountRecord) -> BoxFuture<'a, Result<()>> {
        let mut state = self.state();
        if state.accounts.contains_key(&account.name) {
            return ready(Err(StoreError::AlreadyExists));
        }
        state.accounts.insert(account.name.clone(), account.clone());
        ready(Ok(()))
    }
    fn get_account<'a>(&'a self, name: &'a AccountName) -> BoxFuture<'a, Result<AccountRecord>> {
        ready(found(self.state().accounts.get(name).cloned()))
    }
    fn list_accounts(&self) -> BoxFuture<'_, Result<Vec<AccountRecord>>> {
        ready(Ok(self.state().accounts.values().cloned().collect()))
    }
    fn set_account_state<'a>(
        &'a self,
        name: &'a AccountName,
        state: AccountState,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<()>> {
        let mut all = self.state();
        let account = all
            .accounts
            .get_mut(name)
            .filter(|a| a.state != AccountState::Deleting);
        ready(found(account).map(|a| {
            a.state = state;
            a.last_updated = now;
        }))
    }
    fn delete_account<'a>(&'a self, name: &'a AccountName) -> BoxFuture<'a, Result<()>> {
        let mut state = self.state();
        if state.accounts.remove(name).is_none() {
            return ready(Err(StoreError::NotFound));
        }
        state.users.retain(|_, u| &u.account != name);
        state.api_keys.retain(|_, k| &k.account != name);
        state.registries.retain(|(a, _), _| a != name);
        state.images.retain(|(a, _), _| a != name);
        state.subscriptions.retain(|s| &s.account != name);
        state.events.retain(|e| &e.account != name);
        self.sync_used_keys(&state);
        ready(Ok(()))
    }
    fn insert_user<'a>(&'a self, user: &'a UserRecord) -> BoxFuture<'a, Result<()>> {
        let mut state = self.state();
        if !state.accounts.contains_key(&user.account) {
            // The database's foreign key.
            return ready(Err(StoreError::NotFound));
        }
        if state.users.contains_key(&user.username) {
            return ready(Err(StoreError::AlreadyExists));
        }
        state.users.insert(user.username.clone(), user.clone());
        ready(Ok(()))
    }
    fn get_user<'a>(&'a self, username: &'a UserName) -> BoxFuture<'a, Result<UserRecord>> {
        ready(found(self.state().users.get(username).cloned()))
    }
    fn list_users<'a>(
        &'a self,
        account: &'a AccountName,
    ) -> BoxFuture<'a, Result<Vec<UserRecord>>> {
        let state = self.state();
        let users = state.users.values().filter(|u| &u.account == account);
        ready(Ok(users.cloned().collect()))
    }
    fn set_user_password_hash<'a>(
        &'a self,
        account: &'a AccountName,
        username: &'a UserName,
        hash: &'a str,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<()>> {
        let mut state = self.state();
        let user = state
            .users
            .get_mut(username)
            .filter(|u| &u.account == account);
        ready(found(user).map(|u| {
            hash.clone_into(&mut u.password_hash);
            u.last_updated = now;
        }))
    }
    fn delete_user<'a>(
        &'a self,
        account: &'a AccountName,
        username: &'a UserName,
    ) -> BoxFuture<'a, Result<()>> {
        let mut state = self.state();
        match state.users.get(username) {
            Some(u) if &u.account == account => {
                state.users.remove(username);
                ready(Ok(()))
            }
            _ => ready(Err(StoreError::NotFound)),
        }
    }
    fn count_users<'a>(&'a self, account: &'a AccountName) -> BoxFuture<'a, Result<u64>> {
        count(
            self.state()
                .users
                .values()
                .filter(|u| &u.account == account)
                .count(),
        )
    }
}

impl ApiKeyRepository for MemoryRepositories {
    fn insert_api_key<'a>(&'a self, key: &'a ApiKeyRecord) -> BoxFuture<'a, Result<()>> {
        let mut state = self.state();
        if !state.accounts.contains_key(&key.account) {
            return ready(Err(StoreError::NotFound));
        }
        if state.api_keys.contains_key(&key.key_id) {
            return ready(Err(StoreError::AlreadyExists));
        }
        state.api_keys.insert(key.key_id.clone(), key.clone());
        ready(Ok(()))
    }
    fn get_api_key<'a>(&'a self, key_id: &'a ApiKeyId) -> BoxFuture<'a, Result<ApiKeyRecord>> {
        ready(found(self.state().api_keys.get(key_id).cloned()))
    }
    fn list_api_keys<'a>(
        &'a self,
        account: &'a AccountName,
    ) -> BoxFuture<'a, Result<Vec<ApiKeyRecord>>> {
        let mut keys: Vec<ApiKeyRecord> = self
            .state()
            .api_keys
            .values()
            .filter(|k| &k.account == account)
            .cloned()
            .collect();
        keys.sort_by(|a, b| (a.created_at, &a.key_id).cmp(&(b.created_at, &b.key_id)));
        ready(Ok(keys))
    }
    fn revoke_api_key<'a>(
        &'a self,
        account: &'a AccountName,
        key_id: &'a ApiKeyId,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<bool>> {
        let mut state = self.state();
        let key = state
            .api_keys
            .get_mut(key_id)
            .filter(|k| &k.account == account);
        ready(found(key).map(|k| {
            let newly = k.revoked_at.is_none();
            k.revoked_at.get_or_insert(now);
            newly
        }))
    }
    fn touch_api_key<'a>(
        &'a self,
        key_id: &'a ApiKeyId,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<()>> {
        if let Some(k) = self.state().api_keys.get_mut(key_id) {
            k.last_used_at = Some(now);
        }
        ready(Ok(()))
    }
    fn revoke_api_keys_made_by<'a>(
        &'a self,
        user: &'a UserName,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<u64>> {
        let mut state = self.state();
        let mut revoked = 0;
        for key in state.api_keys.values_mut() {
            if &key.created_by == user && key.revoked_at.is_none() {
                key.revoked_at = Some(now);
                revoked += 1;
            }
        }
        ready(Ok(revoked))
    }
    fn count_api_keys<'a>(&'a self, account: &'a AccountName) -> BoxFuture<'a, Result<u64>> {
        count(
            self.state()
                .api_keys
                .values()
                .filter(|k| &k.account == account && k.revoked_at.is_none())
                .count(),
        )
    }
    fn hash_api_key(&self, secret: &[u8]) -> String {
        // Unkeyed here, as `fingerprint` (tests need only tell keys apart).
        unkeyed_hash(&[b"api key\0", secret], 16)
    }
}

impl RegistryRepository for MemoryRepositories {
    fn insert_registry<'a>(
        &'a self,
        record: &'a RegistryRecord,
        pass: &'a Secret,
    ) -> BoxFuture<'a, Result<()>> {
        if let Some(e) = self.registry_write_fails() {
            return ready(Err(e));
        }
        let mut state = self.state();
        let key = (record.account.clone(), record.registry.clone());
        if state.registries.contains_key(&key) {
            return ready(Err(StoreError::AlreadyExists));
        }
        let mut stored = record.clone();
        stored.token_status = None;
        state.registries.insert(key, (stored, pass.clone()));
        self.sync_used_keys(&state);
        ready(Ok(()))
    }
    fn update_registry<'a>(
        &'a self,
        record: &'a RegistryRecord,
        pass: &'a Secret,
    ) -> BoxFuture<'a, Result<()>> {
        if let Some(e) = self.registry_write_fails() {
            return ready(Err(e));
        }
        let mut state = self.state();
        let key = (record.account.clone(), record.registry.clone());
        let Some((stored, secret)) = state.registries.get_mut(&key) else {
            return ready(Err(StoreError::NotFound));
        };
        // The database keeps `created_at`; everything else is replaced.
        let created_at = stored.created_at;
        *stored = RegistryRecord {
            created_at,
            token_status: None,
            ..record.clone()
        };
        *secret = pass.clone();
        self.sync_used_keys(&state);
        ready(Ok(()))
    }
    fn get_registry<'a>(
        &'a self,
        account: &'a AccountName,
        registry: &'a RegistryName,
    ) -> BoxFuture<'a, Result<RegistryRecord>> {
        let record = self
            .state()
            .registries
            .get(&(account.clone(), registry.clone()))
            .map(|(r, _)| r.clone());
        ready(found(record).map(|r| self.with_token_status(r)))
    }
    fn list_registries<'a>(
        &'a self,
        account: &'a AccountName,
    ) -> BoxFuture<'a, Result<Vec<RegistryRecord>>> {
        let records: Vec<RegistryRecord> = self
            .state()
            .registries
            .iter()
            .filter(|((a, _), _)| a == account)
            .map(|(_, (r, _))| r.clone())
            .collect();
        ready(Ok(records
            .into_iter()
            .map(|r| self.with_token_status(r))
            .collect()))
    }
    fn registry_password<'a>(
        &'a self,
        account: &'a AccountName,
        registry: &'a RegistryName,
    ) -> BoxFuture<'a, Result<Secret>> {
        ready(found(self.stored_secret(account, registry)))
    }
    fn delete_registry<'a>(
        &'a self,
        account: &'a AccountName,
        registry: &'a RegistryName,
    ) -> BoxFuture<'a, Result<()>> {
        if let Some(e) = self.registry_write_fails() {
            return ready(Err(e));
        }
        let mut state = self.state();
        let removed = state
            .registries
            .remove(&(account.clone(), registry.clone()));
        self.sync_used_keys(&state);
        ready(found(removed).map(|_| ()))
    }
    fn count_registries<'a>(&'a self, account: &'a AccountName) -> BoxFuture<'a, Result<u64>> {
        count(
            self.state()
                .registries
                .keys()
                .filter(|(a, _)| a == account)
                .count(),
        )
    }
    fn list_declared_registries(&self) -> BoxFuture<'_, Result<Vec<RegistryRecord>>> {
        // The map is ordered by (account, registry), as the database's answer.
        let records: Vec<RegistryRecord> = self
            .state()
            .registries
            .values()
            .filter(|(r, _)| r.declared_in.is_some())
            .map(|(r, _)| r.clone())
            .collect();
        ready(Ok(records
            .into_iter()
            .map(|r| self.with_token_status(r))
            .collect()))
    }
    fn set_declaration_error<'a>(
        &'a self,
        account: &'a AccountName,
        registry: &'a RegistryName,
        error: Option<&'a str>,
    ) -> BoxFuture<'a, Result<()>> {
        let mut state = self.state();
        let stored = state
            .registries
            .get_mut(&(account.clone(), registry.clone()));
        ready(found(stored).map(|(r, _)| r.declaration_error = error.map(str::to_owned)))
    }
    fn undeclare_registries(&self) -> BoxFuture<'_, Result<u64>> {
        let mut state = self.state();
        let mut changed = 0;
        for (record, _) in state.registries.values_mut() {
            if record.declared_in.is_some() {
                record.declared_in = None;
                record.declaration_error = None;
                changed += 1;
            }
        }
        ready(Ok(changed))
    }
    fn fingerprint(&self, secret: &[u8]) -> String {
        // Unkeyed here (no sealing key in memory): tells secrets apart, which is all tests need.
        unkeyed_hash(&[secret], 8)
    }
}

impl ImageRepository for MemoryRepositories {
    fn upsert_image<'a>(&'a self, image: &'a ImageRecord) -> BoxFuture<'a, Result<Timestamp>> {
        let mut state = self.state();
        let key = (image.account.clone(), image.image_digest.clone());
        let tags = match state.images.remove(&key) {
            Some(old) => {
                let mut tags = old.tags;
                let created_at = old.created_at;
                let entry = tags.iter_mut().find(|t| {
                    t.registry == image.registry
                        && t.repository == image.repository
                        && t.tag == image.tag
                });
                match entry {
                    Some(t) => t.last_updated = image.last_updated,
                    None => tags.push(tag_of(image)),
                }
                (created_at, tags)
            }
            None => (image.created_at, vec![tag_of(image)]),
        };
        let (created_at, tags) = tags;
        state.images.insert(
            key,
            ImageRecord {
                created_at,
                tags,
                ..image.clone()
            },
        );
        ready(Ok(created_at))
    }
    fn get_image<'a>(
        &'a self,
        account: &'a AccountName,
        digest: &'a Digest,
    ) -> BoxFuture<'a, Result<ImageRecord>> {
        let key = (account.clone(), digest.clone());
        ready(found(self.state().images.get(&key).cloned()))
    }
    fn list_images<'a>(
        &'a self,
        account: &'a AccountName,
    ) -> BoxFuture<'a, Result<Vec<ImageRecord>>> {
        ready(Ok(images_where(&self.state(), account, |_| true)))
    }
    fn images_by_config<'a>(
        &'a self,
        account: &'a AccountName,
        config_digest: &'a Digest,
    ) -> BoxFuture<'a, Result<Vec<ImageRecord>>> {
        let state = self.state();
        ready(Ok(images_where(&state, account, |i| {
            &i.config_digest == config_digest
        })))
    }
    fn delete_image<'a>(
        &'a self,
        account: &'a AccountName,
        digest: &'a Digest,
    ) -> BoxFuture<'a, Result<()>> {
        let key = (account.clone(), digest.clone());
        ready(found(self.state().images.remove(&key)).map(|_| ()))
    }
    fn count_image_tags<'a>(&'a self, account: &'a AccountName) -> BoxFuture<'a, Result<u64>> {
        let state = self.state();
        let tags = state
            .images
            .iter()
            .filter(|((a, _), _)| a == account)
            .map(|(_, i)| i.tags.len())
            .sum();
        count(tags)
    }
}

fn tag_of(image: &ImageRecord) -> ImageTagRecord {
    ImageTagRecord {
        registry: image.registry.clone(),
        repository: image.repository.clone(),
        tag: image.tag.clone(),
        created_at: image.last_updated,
        last_updated: image.last_updated,
    }
}

/// The account's images that pass `keep`, oldest first (then by digest), as the database orders.
fn images_where(
    state: &State,
    account: &AccountName,
    keep: impl Fn(&ImageRecord) -> bool,
) -> Vec<ImageRecord> {
    let mut images: Vec<ImageRecord> = state
        .images
        .iter()
        .filter(|((a, _), i)| a == account && keep(i))
        .map(|(_, i)| i.clone())
        .collect();
    images.sort_by(|a, b| (a.created_at, &a.image_digest).cmp(&(b.created_at, &b.image_digest)));
    images
}

impl WatchRepository for MemoryRepositories {
    fn insert_subscription<'a>(&'a self, s: &'a SubscriptionRecord) -> BoxFuture<'a, Result<()>> {
        let mut state = self.state();
        let taken = state.subscriptions.iter().any(|o| {
            o.account == s.account
                && (o.subscription_id == s.subscription_id
                    || (o.subscription_type == s.subscription_type
                        && o.subscription_key == s.subscription_key))
        });
        if taken {
            return ready(Err(StoreError::AlreadyExists));
        }
        state.subscriptions.push(s.clone());
        ready(Ok(()))
    }
    fn get_subscription<'a>(
        &'a self,
        account: &'a AccountName,
        id: &'a str,
    ) -> BoxFuture<'a, Result<SubscriptionRecord>> {
        let state = self.state();
        let found_one = state
            .subscriptions
            .iter()
            .find(|s| &s.account == account && s.subscription_id == id);
        ready(found(found_one.cloned()))
    }
    fn list_subscriptions<'a>(
        &'a self,
        account: &'a AccountName,
    ) -> BoxFuture<'a, Result<Vec<SubscriptionRecord>>> {
        let mut list: Vec<SubscriptionRecord> = self
            .state()
            .subscriptions
            .iter()
            .filter(|s| &s.account == account)
            .cloned()
            .collect();
        list.sort_by(|a, b| {
            (a.created_at, &a.subscription_id).cmp(&(b.created_at, &b.subscription_id))
        });
        ready(Ok(list))
    }
    fn delete_subscription<'a>(
        &'a self,
        account: &'a AccountName,
        id: &'a str,
    ) -> BoxFuture<'a, Result<()>> {
        let mut state = self.state();
        let before = state.subscriptions.len();
        state
            .subscriptions
            .retain(|s| !(&s.account == account && s.subscription_id == id));
        let removed = state.subscriptions.len() < before;
        ready(if removed {
            Ok(())
        } else {
            Err(StoreError::NotFound)
        })
    }
    fn set_subscription_active<'a>(
        &'a self,
        account: &'a AccountName,
        id: &'a str,
        active: bool,
        next_poll_at: Timestamp,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<()>> {
        let mut state = self.state();
        let sub = state
            .subscriptions
            .iter_mut()
            .find(|s| &s.account == account && s.subscription_id == id);
        ready(found(sub).map(|s| {
            s.active = active;
            s.next_poll_at = next_poll_at;
            s.last_updated = now;
        }))
    }
    fn due_subscriptions(
        &self,
        now: Timestamp,
        limit: i64,
    ) -> BoxFuture<'_, Result<Vec<SubscriptionRecord>>> {
        let state = self.state();
        let enabled = |a: &AccountName| {
            state
                .accounts
                .get(a)
                .is_some_and(|r| r.state == AccountState::Enabled)
        };
        let mut due: Vec<SubscriptionRecord> = state
            .subscriptions
            .iter()
            .filter(|s| s.active && s.next_poll_at <= now && enabled(&s.account))
            .cloned()
            .collect();
        due.sort_by(|a, b| {
            (a.next_poll_at, &a.account, &a.subscription_id).cmp(&(
                b.next_poll_at,
                &b.account,
                &b.subscription_id,
            ))
        });
        due.truncate(usize::try_from(limit).unwrap_or(0));
        ready(Ok(due))
    }
    fn claim_poll<'a>(
        &'a self,
        account: &'a AccountName,
        id: &'a str,
        seen: Timestamp,
        next: Timestamp,
    ) -> BoxFuture<'a, Result<bool>> {
        let mut state = self.state();
        let sub = state.subscriptions.iter_mut().find(|s| {
            &s.account == account && s.subscription_id == id && s.next_poll_at == seen && s.active
        });
        ready(Ok(sub.map(|s| s.next_poll_at = next).is_some()))
    }
    fn record_poll<'a>(
        &'a self,
        account: &'a AccountName,
        id: &'a str,
        outcome: &'a PollOutcome,
    ) -> BoxFuture<'a, Result<()>> {
        let mut state = self.state();
        // A subscription deleted meanwhile is not an error (as in the database).
        if let Some(s) = state
            .subscriptions
            .iter_mut()
            .find(|s| &s.account == account && s.subscription_id == id)
        {
            s.last_digest.clone_from(&outcome.last_digest);
            s.last_error.clone_from(&outcome.last_error);
            s.failures = outcome.failures;
            s.last_polled_at = Some(outcome.polled_at);
        }
        ready(Ok(()))
    }
    fn insert_event<'a>(&'a self, e: &'a EventRecord) -> BoxFuture<'a, Result<()>> {
        self.state().events.push(e.clone());
        ready(Ok(()))
    }
    fn list_events<'a>(
        &'a self,
        account: &'a AccountName,
        filter: &'a EventFilter,
    ) -> BoxFuture<'a, Result<Vec<EventRecord>>> {
        let state = self.state();
        let passes = |e: &&EventRecord| {
            &e.account == account
                && filter
                    .event_type
                    .as_ref()
                    .is_none_or(|t| e.event_type.starts_with(t.as_str()))
                && filter.level.as_ref().is_none_or(|l| &e.level == l)
                && filter
                    .resource_type
                    .as_ref()
                    .is_none_or(|r| &e.resource_type == r)
                && filter
                    .resource_id
                    .as_ref()
                    .is_none_or(|r| &e.resource_id == r)
                && filter.since.is_none_or(|t| e.created_at >= t)
                && filter.before.is_none_or(|t| e.created_at < t)
        };
        let events = state
            .events
            .iter()
            .rev()
            .filter(passes)
            .skip(usize::try_from(filter.offset).unwrap_or(0))
            .take(usize::try_from(filter.limit).unwrap_or(0))
            .cloned()
            .collect();
        ready(Ok(events))
    }
    fn get_event<'a>(
        &'a self,
        account: &'a AccountName,
        uuid: &'a str,
    ) -> BoxFuture<'a, Result<EventRecord>> {
        let state = self.state();
        let event = state
            .events
            .iter()
            .find(|e| &e.account == account && e.generated_uuid == uuid);
        ready(found(event.cloned()))
    }
    fn delete_event<'a>(
        &'a self,
        account: &'a AccountName,
        uuid: &'a str,
    ) -> BoxFuture<'a, Result<()>> {
        let mut state = self.state();
        let before = state.events.len();
        state
            .events
            .retain(|e| !(&e.account == account && e.generated_uuid == uuid));
        let removed = state.events.len() < before;
        ready(if removed {
            Ok(())
        } else {
            Err(StoreError::NotFound)
        })
    }
    fn delete_events<'a>(
        &'a self,
        account: &'a AccountName,
        since: Option<Timestamp>,
        before: Option<Timestamp>,
    ) -> BoxFuture<'a, Result<Vec<String>>> {
        let mut state = self.state();
        let mut deleted = Vec::new();
        state.events.retain(|e| {
            let goes = &e.account == account
                && since.is_none_or(|t| e.created_at >= t)
                && before.is_none_or(|t| e.created_at < t);
            if goes {
                deleted.push(e.generated_uuid.clone());
            }
            !goes
        });
        ready(Ok(deleted))
    }
    fn prune_events(&self, before: Timestamp) -> BoxFuture<'_, Result<u64>> {
        let mut state = self.state();
        let was = state.events.len();
        state.events.retain(|e| e.created_at >= before);
        count(was - state.events.len())
    }
    fn count_subscriptions<'a>(&'a self, account: &'a AccountName) -> BoxFuture<'a, Result<u64>> {
        count(
            self.state()
                .subscriptions
                .iter()
                .filter(|s| &s.account == account)
                .count(),
        )
    }
}

impl Database for MemoryRepositories {
    fn ping(&self) -> BoxFuture<'_, Result<()>> {
        ready(Ok(()))
    }
    fn check_writable(&self) -> BoxFuture<'_, Result<()>> {
        ready(Ok(()))
    }
    fn check_file(&self) -> Result<()> {
        Ok(())
    }
    fn backend_name(&self) -> &'static str {
        "memory"
    }
    fn schema_version(&self) -> i64 {
        0
    }
    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }
    fn announce(&self, _change: regkeep_store::Change) -> BoxFuture<'_, Result<()>> {
        ready(Ok(()))
    }
    fn listen(&self) -> BoxFuture<'_, Result<Option<regkeep_store::ChangeFeed>>> {
        ready(Ok(None))
    }
}
