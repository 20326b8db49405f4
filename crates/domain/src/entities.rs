//! regkeep's entities: accounts, users, API keys, registries, images, subscriptions and events, as the
//! use-cases read and write them. The store maps them to and from its rows (and re-parses every
//! column into these types); the server maps them to the wire types. No I/O here.

use crate::{
    AccountName, AccountState, AccountType, ApiKeyId, Digest, RegistryName, RegistryType, Scopes,
    Timestamp, UserName,
};

/// An account.
#[derive(Clone, Debug, PartialEq)]
pub struct AccountRecord {
    pub name: AccountName,
    pub email: Option<String>,
    pub account_type: AccountType,
    pub state: AccountState,
    pub created_at: Timestamp,
    pub last_updated: Timestamp,
}

/// A user of an account. `password_hash` is an Argon2id PHC string.
#[derive(Clone, PartialEq)]
pub struct UserRecord {
    pub username: UserName,
    pub account: AccountName,
    pub user_type: String,
    pub source: Option<String>,
    pub password_hash: String,
    pub created_at: Timestamp,
    pub last_updated: Timestamp,
}

impl std::fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRecord")
            .field("username", &self.username)
            .field("account", &self.account)
            .field("user_type", &self.user_type)
            .field("password_hash", &"[redacted]")
            .finish_non_exhaustive()
    }
}

/// A registry an account registered. Its password is kept sealed by the store and read only
/// when a credential is resolved; it is never part of this value.
#[derive(Clone, Debug, PartialEq)]
pub struct RegistryRecord {
    pub account: AccountName,
    pub registry: RegistryName,
    pub registry_name: String,
    pub registry_user: String,
    pub registry_type: RegistryType,
    pub registry_verify: bool,
    pub created_at: Timestamp,
    pub last_updated: Timestamp,
    pub last_validated: Option<Timestamp>,
    /// For `awsecr` registries: the key of the ECR token that serves it (docs/design.md §3.4).
    pub token_key: Option<String>,
    /// The state of that token, read with the record (never the token itself).
    pub token_status: Option<TokenStatus>,
    /// The registries file that declares this entry (none: made through the API). Only the file
    /// changes or removes a declared entry.
    pub declared_in: Option<String>,
    /// Why the file's entry could not be applied as written (validation refused, a secret could
    /// not be read); none when it was.
    pub declaration_error: Option<String>,
}

/// The visible state of an ECR token: no secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenStatus {
    pub expires_at: Option<Timestamp>,
    pub last_renewed_at: Option<Timestamp>,
    pub last_error: Option<String>,
}

/// An image an account resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageRecord {
    pub account: AccountName,
    pub image_digest: Digest,
    /// `host[:port]`.
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub media_type: String,
    pub manifest_digest: Digest,
    /// `os/arch[/variant]`.
    pub platform: String,
    pub config_digest: Digest,
    pub image_created: Option<String>,
    pub layer_count: i64,
    pub total_size: i64,
    pub resolved_at: Timestamp,
    pub created_at: Timestamp,
    pub last_updated: Timestamp,
    /// Every tag the digest was added under (an upsert records `registry`/`repository`/`tag`
    /// among them and ignores this).
    pub tags: Vec<ImageTagRecord>,
}

/// One tag an image digest was added under.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageTagRecord {
    pub registry: String,
    pub repository: String,
    /// `None` for an image added by digest alone.
    pub tag: Option<String>,
    /// When the digest was first added under this tag.
    pub created_at: Timestamp,
    /// When it was last added (resolved) under this tag.
    pub last_updated: Timestamp,
}

/// A subscription (Anchore's shape) and what the poller last saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionRecord {
    pub account: AccountName,
    pub subscription_id: String,
    pub subscription_type: String,
    /// For `tag_update`: the normalised `host/repo:tag`.
    pub subscription_key: String,
    pub subscription_value: Option<String>,
    pub active: bool,
    pub last_digest: Option<Digest>,
    pub last_polled_at: Option<Timestamp>,
    pub last_error: Option<String>,
    /// Polls failed in a row.
    pub failures: i64,
    pub next_poll_at: Timestamp,
    pub created_at: Timestamp,
    pub last_updated: Timestamp,
}

/// What one poll found, to store.
#[derive(Clone, Debug)]
pub struct PollOutcome {
    pub last_digest: Option<Digest>,
    pub last_error: Option<String>,
    pub failures: i64,
    pub polled_at: Timestamp,
}

/// One event (Anchore's event log shape, flattened).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRecord {
    pub account: AccountName,
    pub generated_uuid: String,
    pub created_at: Timestamp,
    pub event_type: String,
    /// `INFO` or `ERROR`.
    pub level: String,
    pub message: String,
    pub resource_type: String,
    pub resource_id: String,
    /// JSON.
    pub details: String,
}

/// Which events to list, newest first.
#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    /// Events whose type starts with this (Anchore matches prefixes: `user.checks`).
    pub event_type: Option<String>,
    pub level: Option<String>,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    /// Created at or after.
    pub since: Option<Timestamp>,
    /// Created before.
    pub before: Option<Timestamp>,
    pub limit: i64,
    pub offset: i64,
}

/// An API key, as kept: never the key itself, only its keyed hash.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub key_id: ApiKeyId,
    pub account: AccountName,
    /// The user who made it.
    pub created_by: UserName,
    pub description: String,
    pub scopes: Scopes,
    /// Keyed hash of the secret (hex), compared in constant time.
    pub key_hash: String,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    /// Recorded at most once a minute per key.
    pub last_used_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

impl std::fmt::Debug for ApiKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyRecord")
            .field("key_id", &self.key_id)
            .field("account", &self.account)
            .field("created_by", &self.created_by)
            .field("description", &self.description)
            .field("scopes", &self.scopes)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("last_used_at", &self.last_used_at)
            .field("revoked_at", &self.revoked_at)
            .finish_non_exhaustive()
    }
}
