//! The repositories the engine's services read and write through, one per aggregate, and
//! [`Store`]'s implementation of them (SQLite or PostgreSQL). The engine holds them as trait
//! objects, so its unit tests run on in-memory fakes (`regkeep_engine::testing`) and a caching or
//! notifying layer can wrap one without its callers knowing.
//!
//! Each implementation below is `Box::pin` of [`Store`]'s inherent method of the same name,
//! which holds the SQL.

use regkeep_domain::entities::{
    AccountRecord, ApiKeyRecord, EventFilter, EventRecord, ImageRecord, PollOutcome,
    RegistryRecord, SubscriptionRecord, UserRecord,
};
use regkeep_domain::{
    AccountName, AccountState, ApiKeyId, BoxFuture, Digest, RegistryName, Secret, Timestamp,
    UserName,
};

use crate::{Change, ChangeFeed, OwnedTable, Result, Store};

/// Accounts and their users (the login path reads them on every uncached login).
pub trait AccountRepository: Send + Sync + 'static {
    /// Whether the marker `key` is set (facts about the database, such as "the admin was seeded").
    fn has_marker<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool>>;
    /// Sets the marker `key` (idempotent).
    fn set_marker<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<()>>;
    /// [`StoreError::AlreadyExists`] when the name is taken.
    fn insert_account<'a>(&'a self, account: &'a AccountRecord) -> BoxFuture<'a, Result<()>>;
    /// [`StoreError::NotFound`].
    fn get_account<'a>(&'a self, name: &'a AccountName) -> BoxFuture<'a, Result<AccountRecord>>;
    /// Every account, by name.
    fn list_accounts(&self) -> BoxFuture<'_, Result<Vec<AccountRecord>>>;
    /// [`StoreError::NotFound`] also when the account is being deleted (no state change revives it).
    fn set_account_state<'a>(
        &'a self,
        name: &'a AccountName,
        state: AccountState,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<()>>;
    /// Removes the account with everything it owns. [`StoreError::NotFound`].
    fn delete_account<'a>(&'a self, name: &'a AccountName) -> BoxFuture<'a, Result<()>>;
    /// [`StoreError::AlreadyExists`] when the user name is taken (in any account).
    fn insert_user<'a>(&'a self, user: &'a UserRecord) -> BoxFuture<'a, Result<()>>;
    /// [`StoreError::NotFound`].
    fn get_user<'a>(&'a self, username: &'a UserName) -> BoxFuture<'a, Result<UserRecord>>;
    /// The account's users, by name.
    fn list_users<'a>(&'a self, account: &'a AccountName)
        -> BoxFuture<'a, Result<Vec<UserRecord>>>;
    /// [`StoreError::NotFound`] unless the user is in `account`.
    fn set_user_password_hash<'a>(
        &'a self,
        account: &'a AccountName,
        username: &'a UserName,
        hash: &'a str,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<()>>;
    /// [`StoreError::NotFound`] unless the user is in `account`.
    fn delete_user<'a>(
        &'a self,
        account: &'a AccountName,
        username: &'a UserName,
    ) -> BoxFuture<'a, Result<()>>;
    /// How many users the account has (quotas).
    fn count_users<'a>(&'a self, account: &'a AccountName) -> BoxFuture<'a, Result<u64>>;
}

/// Registries, their sealed secrets, and the state of their ECR tokens.
pub trait RegistryRepository: Send + Sync + 'static {
    /// Seals `pass` bound to the account and registry. [`StoreError::AlreadyExists`].
    fn insert_registry<'a>(
        &'a self,
        record: &'a RegistryRecord,
        pass: &'a Secret,
    ) -> BoxFuture<'a, Result<()>>;
    /// Replaces the record and its secret. [`StoreError::NotFound`].
    fn update_registry<'a>(
        &'a self,
        record: &'a RegistryRecord,
        pass: &'a Secret,
    ) -> BoxFuture<'a, Result<()>>;
    /// [`StoreError::NotFound`].
    fn get_registry<'a>(
        &'a self,
        account: &'a AccountName,
        registry: &'a RegistryName,
    ) -> BoxFuture<'a, Result<RegistryRecord>>;
    /// The account's registries, by name.
    fn list_registries<'a>(
        &'a self,
        account: &'a AccountName,
    ) -> BoxFuture<'a, Result<Vec<RegistryRecord>>>;
    /// The registry's secret, opened. [`StoreError::NotFound`].
    fn registry_password<'a>(
        &'a self,
        account: &'a AccountName,
        registry: &'a RegistryName,
    ) -> BoxFuture<'a, Result<Secret>>;
    /// [`StoreError::NotFound`].
    fn delete_registry<'a>(
        &'a self,
        account: &'a AccountName,
        registry: &'a RegistryName,
    ) -> BoxFuture<'a, Result<()>>;
    /// How many registries the account has (quotas).
    fn count_registries<'a>(&'a self, account: &'a AccountName) -> BoxFuture<'a, Result<u64>>;
    /// Every registry a registries file declares, in every account, by account and name.
    fn list_declared_registries(&self) -> BoxFuture<'_, Result<Vec<RegistryRecord>>>;
    /// Records why a declared entry could not be applied (none: it was). [`StoreError::NotFound`].
    fn set_declaration_error<'a>(
        &'a self,
        account: &'a AccountName,
        registry: &'a RegistryName,
        error: Option<&'a str>,
    ) -> BoxFuture<'a, Result<()>>;
    /// Hands every declared registry to the API: how many there were.
    fn undeclare_registries(&self) -> BoxFuture<'_, Result<u64>>;
    /// A keyed fingerprint of a registry secret (HMAC under the sealing key): names the ECR
    /// token a secret mints without keeping the secret.
    fn fingerprint(&self, secret: &[u8]) -> String;
}

/// Image records, every tag a digest was added under.
pub trait ImageRepository: Send + Sync + 'static {
    /// Adds or refreshes the image and its tag; answers when the image was first recorded.
    fn upsert_image<'a>(&'a self, image: &'a ImageRecord) -> BoxFuture<'a, Result<Timestamp>>;
    /// [`StoreError::NotFound`].
    fn get_image<'a>(
        &'a self,
        account: &'a AccountName,
        digest: &'a Digest,
    ) -> BoxFuture<'a, Result<ImageRecord>>;
    /// Every image of the account, oldest first, each with its tags.
    fn list_images<'a>(
        &'a self,
        account: &'a AccountName,
    ) -> BoxFuture<'a, Result<Vec<ImageRecord>>>;
    /// The images whose config has this digest (Anchore's image id).
    fn images_by_config<'a>(
        &'a self,
        account: &'a AccountName,
        config_digest: &'a Digest,
    ) -> BoxFuture<'a, Result<Vec<ImageRecord>>>;
    /// Removes the image with its tags. [`StoreError::NotFound`].
    fn delete_image<'a>(
        &'a self,
        account: &'a AccountName,
        digest: &'a Digest,
    ) -> BoxFuture<'a, Result<()>>;
    /// How many `image_detail` entries (tags) the account has (quotas).
    fn count_image_tags<'a>(&'a self, account: &'a AccountName) -> BoxFuture<'a, Result<u64>>;
}

/// Tag watching: subscriptions with the poller's state, and the event log.
pub trait WatchRepository: Send + Sync + 'static {
    /// [`StoreError::AlreadyExists`] for the same type and key in the account.
    fn insert_subscription<'a>(&'a self, s: &'a SubscriptionRecord) -> BoxFuture<'a, Result<()>>;
    /// [`StoreError::NotFound`].
    fn get_subscription<'a>(
        &'a self,
        account: &'a AccountName,
        id: &'a str,
    ) -> BoxFuture<'a, Result<SubscriptionRecord>>;
    /// The account's subscriptions.
    fn list_subscriptions<'a>(
        &'a self,
        account: &'a AccountName,
    ) -> BoxFuture<'a, Result<Vec<SubscriptionRecord>>>;
    /// [`StoreError::NotFound`].
    fn delete_subscription<'a>(
        &'a self,
        account: &'a AccountName,
        id: &'a str,
    ) -> BoxFuture<'a, Result<()>>;
    /// [`StoreError::NotFound`].
    fn set_subscription_active<'a>(
        &'a self,
        account: &'a AccountName,
        id: &'a str,
        active: bool,
        next_poll_at: Timestamp,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<()>>;
    /// Active subscriptions whose next poll is due, soonest first, at most `limit`.
    fn due_subscriptions<'a>(
        &'a self,
        now: Timestamp,
        limit: i64,
    ) -> BoxFuture<'a, Result<Vec<SubscriptionRecord>>>;
    /// Moves the next poll from `seen` to `next`; false when another poller moved it first.
    fn claim_poll<'a>(
        &'a self,
        account: &'a AccountName,
        id: &'a str,
        seen: Timestamp,
        next: Timestamp,
    ) -> BoxFuture<'a, Result<bool>>;
    /// Records a poll's outcome.
    fn record_poll<'a>(
        &'a self,
        account: &'a AccountName,
        id: &'a str,
        outcome: &'a PollOutcome,
    ) -> BoxFuture<'a, Result<()>>;
    /// Appends an event.
    fn insert_event<'a>(&'a self, e: &'a EventRecord) -> BoxFuture<'a, Result<()>>;
    /// The account's events that pass `filter`, newest first.
    fn list_events<'a>(
        &'a self,
        account: &'a AccountName,
        filter: &'a EventFilter,
    ) -> BoxFuture<'a, Result<Vec<EventRecord>>>;
    /// [`StoreError::NotFound`].
    fn get_event<'a>(
        &'a self,
        account: &'a AccountName,
        uuid: &'a str,
    ) -> BoxFuture<'a, Result<EventRecord>>;
    /// [`StoreError::NotFound`].
    fn delete_event<'a>(
        &'a self,
        account: &'a AccountName,
        uuid: &'a str,
    ) -> BoxFuture<'a, Result<()>>;
    /// Removes the account's events in the window; answers their ids.
    fn delete_events<'a>(
        &'a self,
        account: &'a AccountName,
        since: Option<Timestamp>,
        before: Option<Timestamp>,
    ) -> BoxFuture<'a, Result<Vec<String>>>;
    /// Removes every account's events older than `before`.
    fn prune_events<'a>(&'a self, before: Timestamp) -> BoxFuture<'a, Result<u64>>;
    /// How many subscriptions the account has (quotas).
    fn count_subscriptions<'a>(&'a self, account: &'a AccountName) -> BoxFuture<'a, Result<u64>>;
}

/// API keys of every account (the key itself is never kept: only its keyed hash).
pub trait ApiKeyRepository: Send + Sync + 'static {
    /// [`StoreError::AlreadyExists`] when the id is taken.
    fn insert_api_key<'a>(&'a self, key: &'a ApiKeyRecord) -> BoxFuture<'a, Result<()>>;
    /// [`StoreError::NotFound`].
    fn get_api_key<'a>(&'a self, key_id: &'a ApiKeyId) -> BoxFuture<'a, Result<ApiKeyRecord>>;
    /// The account's keys, oldest first.
    fn list_api_keys<'a>(
        &'a self,
        account: &'a AccountName,
    ) -> BoxFuture<'a, Result<Vec<ApiKeyRecord>>>;
    /// Marks the key revoked; true when this revoked it (a revoked key keeps its first time).
    /// [`StoreError::NotFound`] unless the key is the account's.
    fn revoke_api_key<'a>(
        &'a self,
        account: &'a AccountName,
        key_id: &'a ApiKeyId,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<bool>>;
    /// Revokes every key `user` made, in any account; gives how many.
    fn revoke_api_keys_made_by<'a>(
        &'a self,
        user: &'a UserName,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<u64>>;
    /// Records that the key was used at `now`.
    fn touch_api_key<'a>(
        &'a self,
        key_id: &'a ApiKeyId,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<()>>;
    /// How many keys of the account are not revoked (quotas).
    fn count_api_keys<'a>(&'a self, account: &'a AccountName) -> BoxFuture<'a, Result<u64>>;
    /// The keyed hash a key's secret is kept as (hex).
    fn hash_api_key(&self, secret: &[u8]) -> String;
}

/// What the composition asks of the database itself: whether it answers and can be written,
/// what it is, and closing it.
pub trait Database: Send + Sync + 'static {
    /// Whether the database answers.
    fn ping(&self) -> BoxFuture<'_, Result<()>>;
    /// Whether the database can be written now (SQLite: its file is still the one opened).
    fn check_writable(&self) -> BoxFuture<'_, Result<()>>;
    /// Whether the SQLite file is still the one opened (always for PostgreSQL).
    fn check_file(&self) -> Result<()>;
    /// `sqlite` or `postgresql`.
    fn backend_name(&self) -> &'static str;
    /// The newest migration applied.
    fn schema_version(&self) -> i64;
    /// Closes the connections, waiting for them to finish.
    fn close(&self) -> BoxFuture<'_, ()>;
    /// Tells the other replicas sharing the database about `change` (nothing on SQLite).
    fn announce(&self, change: Change) -> BoxFuture<'_, Result<()>>;
    /// A feed of the changes announced from now on; `None` when there are no other replicas.
    fn listen(&self) -> BoxFuture<'_, Result<Option<ChangeFeed>>>;
}

impl AccountRepository for Store {
    fn has_marker<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(Store::has_marker(self, key))
    }
    fn set_marker<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(Store::set_marker(self, key))
    }
    fn insert_account<'a>(&'a self, account: &'a AccountRecord) -> BoxFuture<'a, Result<()>> {
        Box::pin(Store::insert_account(self, account))
    }
    fn get_account<'a>(&'a self, name: &'a AccountName) -> BoxFuture<'a, Result<AccountRecord>> {
        Box::pin(Store::get_account(self, name))
    }
    fn list_accounts(&self) -> BoxFuture<'_, Result<Vec<AccountRecord>>> {
        Box::pin(Store::list_accounts(self))
    }
    fn set_account_state<'a>(
        &'a self,
        name: &'a AccountName,
        state: AccountState,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(Store::set_account_state(self, name, state, now))
    }
    fn delete_account<'a>(&'a self, name: &'a AccountName) -> BoxFuture<'a, Result<()>> {
        Box::pin(Store::delete_account(self, name))
    }
    fn insert_user<'a>(&'a self, user: &'a UserRecord) -> BoxFuture<'a, Result<()>> {
        Box::pin(Store::insert_user(self, user))
    }
    fn get_user<'a>(&'a self, username: &'a UserName) -> BoxFuture<'a, Result<UserRecord>> {
        Box::pin(Store::get_user(self, username))
    }
    fn list_users<'a>(
        &'a self,
        account: &'a AccountName,
    ) -> BoxFuture<'a, Result<Vec<UserRecord>>> {
        Box::pin(Store::list_users(self, account))
    }
    fn set_user_password_hash<'a>(
        &'a self,
        account: &'a AccountName,
        username: &'a UserName,
        hash: &'a str,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(Store::set_user_password_hash(
            self, account, username, hash, now,
        ))
    }
    fn delete_user<'a>(
        &'a self,
        account: &'a AccountName,
        username: &'a UserName,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(Store::delete_user(self, account, username))
    }
    fn count_users<'a>(&'a self, account: &'a AccountName) -> BoxFuture<'a, Result<u64>> {
        Box::pin(self.count_owned(OwnedTable::Users, account))
    }
}

impl RegistryRepository for Store {
    fn insert_registry<'a>(
        &'a self,
        record: &'a RegistryRecord,
        pass: &'a Secret,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(Store::insert_registry(self, record, pass))
    }
    fn update_registry<'a>(
        &'a self,
        record: &'a RegistryRecord,
        pass: &'a Secret,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(Store::update_registry(self, record, pass))
    }
    fn get_registry<'a>(
        &'a self,
        account: &'a AccountName,
        registry: &'a RegistryName,
    ) -> BoxFuture<'a, Result<RegistryRecord>> {
        Box::pin(Store::get_registry(self, account, registry))
    }
    fn list_registries<'a>(
        &'a self,
        account: &'a AccountName,
    ) -> BoxFuture<'a, Result<Vec<RegistryRecord>>> {
        Box::pin(Store::list_registries(self, account))
    }
    fn registry_password<'a>(
        &'a self,
        account: &'a AccountName,
        registry: &'a RegistryName,
    ) -> BoxFuture<'a, Result<Secret>> {
        Box::pin(Store::registry_password(self, account, registry))
    }
    fn delete_registry<'a>(
        &'a self,
        account: &'a AccountName,
        registry: &'a RegistryName,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(Store::delete_registry(self, account, registry))
    }
    fn count_registries<'a>(&'a self, account: &'a AccountName) -> BoxFuture<'a, Result<u64>> {
        Box::pin(self.count_owned(OwnedTable::Registries, account))
    }
    fn list_declared_registries(&self) -> BoxFuture<'_, Result<Vec<RegistryRecord>>> {
        Box::pin(Store::list_declared_registries(self))
    }
    fn set_declaration_error<'a>(
        &'a self,
        account: &'a AccountName,
        registry: &'a RegistryName,
        error: Option<&'a str>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(Store::set_declaration_error(self, account, registry, error))
    }
    fn undeclare_registries(&self) -> BoxFuture<'_, Result<u64>> {
        Box::pin(Store::undeclare_registries(self))
    }
    fn fingerprint(&self, secret: &[u8]) -> String {
        Store::fingerprint(self, secret)
    }
}

impl ImageRepository for Store {
    fn upsert_image<'a>(&'a self, image: &'a ImageRecord) -> BoxFuture<'a, Result<Timestamp>> {
        Box::pin(Store::upsert_image(self, image))
    }
    fn get_image<'a>(
        &'a self,
        account: &'a AccountName,
        digest: &'a Digest,
    ) -> BoxFuture<'a, Result<ImageRecord>> {
        Box::pin(Store::get_image(self, account, digest))
    }
    fn list_images<'a>(
        &'a self,
        account: &'a AccountName,
    ) -> BoxFuture<'a, Result<Vec<ImageRecord>>> {
        Box::pin(Store::list_images(self, account))
    }
    fn images_by_config<'a>(
        &'a self,
        account: &'a AccountName,
        config_digest: &'a Digest,
    ) -> BoxFuture<'a, Result<Vec<ImageRecord>>> {
        Box::pin(Store::images_by_config(self, account, config_digest))
    }
    fn delete_image<'a>(
        &'a self,
        account: &'a AccountName,
        digest: &'a Digest,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(Store::delete_image(self, account, digest))
    }
    fn count_image_tags<'a>(&'a self, account: &'a AccountName) -> BoxFuture<'a, Result<u64>> {
        Box::pin(self.count_owned(OwnedTable::Images, account))
    }
}

impl WatchRepository for Store {
    fn insert_subscription<'a>(&'a self, s: &'a SubscriptionRecord) -> BoxFuture<'a, Result<()>> {
        Box::pin(Store::insert_subscription(self, s))
    }
    fn get_subscription<'a>(
        &'a self,
        account: &'a AccountName,
        id: &'a str,
    ) -> BoxFuture<'a, Result<SubscriptionRecord>> {
        Box::pin(Store::get_subscription(self, account, id))
    }
    fn list_subscriptions<'a>(
        &'a self,
        account: &'a AccountName,
    ) -> BoxFuture<'a, Result<Vec<SubscriptionRecord>>> {
        Box::pin(Store::list_subscriptions(self, account))
    }
    fn delete_subscription<'a>(
        &'a self,
        account: &'a AccountName,
        id: &'a str,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(Store::delete_subscription(self, account, id))
    }
    fn set_subscription_active<'a>(
        &'a self,
        account: &'a AccountName,
        id: &'a str,
        active: bool,
        next_poll_at: Timestamp,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(Store::set_subscription_active(
            self,
            account,
            id,
            active,
            next_poll_at,
            now,
        ))
    }
    fn due_subscriptions<'a>(
        &'a self,
        now: Timestamp,
        limit: i64,
    ) -> BoxFuture<'a, Result<Vec<SubscriptionRecord>>> {
        Box::pin(Store::due_subscriptions(self, now, limit))
    }
    fn claim_poll<'a>(
        &'a self,
        account: &'a AccountName,
        id: &'a str,
        seen: Timestamp,
        next: Timestamp,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(Store::claim_poll(self, account, id, seen, next))
    }
    fn record_poll<'a>(
        &'a self,
        account: &'a AccountName,
        id: &'a str,
        outcome: &'a PollOutcome,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(Store::record_poll(self, account, id, outcome))
    }
    fn insert_event<'a>(&'a self, e: &'a EventRecord) -> BoxFuture<'a, Result<()>> {
        Box::pin(Store::insert_event(self, e))
    }
    fn list_events<'a>(
        &'a self,
        account: &'a AccountName,
        filter: &'a EventFilter,
    ) -> BoxFuture<'a, Result<Vec<EventRecord>>> {
        Box::pin(Store::list_events(self, account, filter))
    }
    fn get_event<'a>(
        &'a self,
        account: &'a AccountName,
        uuid: &'a str,
    ) -> BoxFuture<'a, Result<EventRecord>> {
        Box::pin(Store::get_event(self, account, uuid))
    }
    fn delete_event<'a>(
        &'a self,
        account: &'a AccountName,
        uuid: &'a str,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(Store::delete_event(self, account, uuid))
    }
    fn delete_events<'a>(
        &'a self,
        account: &'a AccountName,
        since: Option<Timestamp>,
        before: Option<Timestamp>,
    ) -> BoxFuture<'a, Result<Vec<String>>> {
        Box::pin(Store::delete_events(self, account, since, before))
    }
    fn prune_events<'a>(&'a self, before: Timestamp) -> BoxFuture<'a, Result<u64>> {
        Box::pin(Store::prune_events(self, before))
    }
    fn count_subscriptions<'a>(&'a self, account: &'a AccountName) -> BoxFuture<'a, Result<u64>> {
        Box::pin(self.count_owned(OwnedTable::Subscriptions, account))
    }
}

impl ApiKeyRepository for Store {
    fn insert_api_key<'a>(&'a self, key: &'a ApiKeyRecord) -> BoxFuture<'a, Result<()>> {
        Box::pin(Store::insert_api_key(self, key))
    }
    fn get_api_key<'a>(&'a self, key_id: &'a ApiKeyId) -> BoxFuture<'a, Result<ApiKeyRecord>> {
        Box::pin(Store::get_api_key(self, key_id))
    }
    fn list_api_keys<'a>(
        &'a self,
        account: &'a AccountName,
    ) -> BoxFuture<'a, Result<Vec<ApiKeyRecord>>> {
        Box::pin(Store::list_api_keys(self, account))
    }
    fn revoke_api_key<'a>(
        &'a self,
        account: &'a AccountName,
        key_id: &'a ApiKeyId,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(Store::revoke_api_key(self, account, key_id, now))
    }
    fn touch_api_key<'a>(
        &'a self,
        key_id: &'a ApiKeyId,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(Store::touch_api_key(self, key_id, now))
    }
    fn revoke_api_keys_made_by<'a>(
        &'a self,
        user: &'a UserName,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<u64>> {
        Box::pin(Store::revoke_api_keys_made_by(self, user, now))
    }
    fn count_api_keys<'a>(&'a self, account: &'a AccountName) -> BoxFuture<'a, Result<u64>> {
        Box::pin(self.count_active_api_keys(account))
    }
    fn hash_api_key(&self, secret: &[u8]) -> String {
        Store::hash_api_key(self, secret)
    }
}

impl Database for Store {
    fn ping(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(Store::ping(self))
    }
    fn check_writable(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(Store::check_writable(self))
    }
    fn check_file(&self) -> Result<()> {
        Store::check_file(self)
    }
    fn backend_name(&self) -> &'static str {
        Store::backend_name(self)
    }
    fn schema_version(&self) -> i64 {
        Store::schema_version(self)
    }
    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(Store::close(self))
    }
    fn announce(&self, change: Change) -> BoxFuture<'_, Result<()>> {
        Box::pin(Store::announce(self, change))
    }
    fn listen(&self) -> BoxFuture<'_, Result<Option<ChangeFeed>>> {
        Box::pin(Store::listen(self))
    }
}
