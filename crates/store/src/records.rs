//! The stored rows as typed values. Reading a row parses every column again into domain
//! types, so a bad value in the database is an error, never a wrong answer.

use regkeep_domain::{
    AccountName, AccountState, AccountType, RegistryName, RegistryType, Timestamp, UserName,
};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{parse_column, StoreError};

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

/// A registry an account registered. The password is stored sealed beside it and read only
/// through [`crate::Store::registry_password`].
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
    /// For `awsecr` registries: which ECR token serves it (see [`crate::Store::save_ecr_token`]).
    pub token_key: Option<String>,
    /// The state of that token, read with the record (never the token itself).
    pub token_status: Option<TokenStatus>,
}

/// The visible state of an ECR token: no secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenStatus {
    pub expires_at: Option<Timestamp>,
    pub last_renewed_at: Option<Timestamp>,
    pub last_error: Option<String>,
}

pub(crate) fn time(row: &AnyRow, column: &str) -> Result<Timestamp, StoreError> {
    Ok(Timestamp::from_unix(row.try_get::<i64, _>(column)?))
}

pub(crate) fn optional_time(row: &AnyRow, column: &str) -> Result<Option<Timestamp>, StoreError> {
    Ok(row
        .try_get::<Option<i64>, _>(column)?
        .map(Timestamp::from_unix))
}

impl AccountRecord {
    pub(crate) fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
        let account_type: String = row.try_get("account_type")?;
        let state: String = row.try_get("state")?;
        Ok(AccountRecord {
            name: parse_column(row, "name")?,
            email: row.try_get("email")?,
            account_type: AccountType::parse(&account_type)
                .ok_or_else(|| StoreError::Corrupt(format!("account_type `{account_type}`")))?,
            state: AccountState::parse(&state)
                .ok_or_else(|| StoreError::Corrupt(format!("state `{state}`")))?,
            created_at: time(row, "created_at")?,
            last_updated: time(row, "last_updated")?,
        })
    }
}

impl UserRecord {
    pub(crate) fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
        Ok(UserRecord {
            username: parse_column(row, "username")?,
            account: parse_column(row, "account")?,
            user_type: row.try_get("user_type")?,
            source: row.try_get("source")?,
            password_hash: row.try_get("password_hash")?,
            created_at: time(row, "created_at")?,
            last_updated: time(row, "last_updated")?,
        })
    }
}

impl RegistryRecord {
    pub(crate) fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
        let registry_type: String = row.try_get("registry_type")?;
        let last_validated: Option<i64> = row.try_get("last_validated")?;
        let token_key: Option<String> = row.try_get("token_key")?;
        let token_updated: Option<i64> = row.try_get("token_updated_at")?;
        let token_status = match token_updated {
            Some(_) => Some(TokenStatus {
                expires_at: row
                    .try_get::<Option<i64>, _>("token_expires_at")?
                    .map(Timestamp::from_unix),
                last_renewed_at: row
                    .try_get::<Option<i64>, _>("token_last_renewed_at")?
                    .map(Timestamp::from_unix),
                last_error: row.try_get("token_last_error")?,
            }),
            None => None,
        };
        Ok(RegistryRecord {
            account: parse_column(row, "account")?,
            registry: parse_column(row, "registry")?,
            registry_name: row.try_get("registry_name")?,
            registry_user: row.try_get("registry_user")?,
            registry_type: RegistryType::parse(&registry_type)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            registry_verify: row.try_get::<i64, _>("registry_verify")? != 0,
            created_at: time(row, "created_at")?,
            last_updated: time(row, "last_updated")?,
            last_validated: last_validated.map(Timestamp::from_unix),
            token_key,
            token_status,
        })
    }
}

/// An image an account resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageRecord {
    pub account: AccountName,
    pub image_digest: String,
    /// `host[:port]`.
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub media_type: String,
    pub manifest_digest: String,
    /// `os/arch[/variant]`.
    pub platform: String,
    pub config_digest: String,
    pub image_created: Option<String>,
    pub layer_count: i64,
    pub total_size: i64,
    pub resolved_at: Timestamp,
    pub created_at: Timestamp,
    pub last_updated: Timestamp,
    /// Every tag the digest was added under (read from `image_tags`; [`crate::Store::upsert_image`]
    /// records `registry`/`repository`/`tag` there and ignores this).
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

impl ImageTagRecord {
    pub(crate) fn from_row(row: &AnyRow) -> Result<(String, Self), StoreError> {
        let tag: String = row.try_get("tag")?;
        Ok((
            row.try_get("image_digest")?,
            ImageTagRecord {
                registry: row.try_get("registry")?,
                repository: row.try_get("repository")?,
                tag: (!tag.is_empty()).then_some(tag),
                created_at: time(row, "created_at")?,
                last_updated: time(row, "last_updated")?,
            },
        ))
    }
}

impl ImageRecord {
    pub(crate) fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
        Ok(ImageRecord {
            account: parse_column(row, "account")?,
            image_digest: row.try_get("image_digest")?,
            registry: row.try_get("registry")?,
            repository: row.try_get("repository")?,
            tag: row.try_get("tag")?,
            media_type: row.try_get("media_type")?,
            manifest_digest: row.try_get("manifest_digest")?,
            platform: row.try_get("platform")?,
            config_digest: row.try_get("config_digest")?,
            image_created: row.try_get("image_created")?,
            layer_count: row.try_get("layer_count")?,
            total_size: row.try_get("total_size")?,
            resolved_at: time(row, "resolved_at")?,
            created_at: time(row, "created_at")?,
            last_updated: time(row, "last_updated")?,
            tags: Vec::new(),
        })
    }
}
