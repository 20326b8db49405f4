//! Rows read back as the domain's entities (`regkeep_domain::entities`). Reading a row parses every column again into domain
//! types, so a bad value in the database is an error, never a wrong answer.

use regkeep_domain::entities::{
    AccountRecord, ImageRecord, ImageTagRecord, RegistryRecord, TokenStatus, UserRecord,
};
use regkeep_domain::{AccountState, AccountType, Digest, RegistryType, Timestamp};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{parse_column, StoreError};

/// An entity read from a row of its table.
pub(crate) trait FromRow: Sized {
    fn from_row(row: &AnyRow) -> Result<Self, StoreError>;
}

pub(crate) fn time(row: &AnyRow, column: &str) -> Result<Timestamp, StoreError> {
    Ok(Timestamp::from_unix(row.try_get::<i64, _>(column)?))
}

pub(crate) fn optional_time(row: &AnyRow, column: &str) -> Result<Option<Timestamp>, StoreError> {
    Ok(row
        .try_get::<Option<i64>, _>(column)?
        .map(Timestamp::from_unix))
}

impl FromRow for AccountRecord {
    fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
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

impl FromRow for UserRecord {
    fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
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

impl FromRow for RegistryRecord {
    fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
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
            declared_in: row.try_get("declared_in")?,
            declaration_error: row.try_get("declaration_error")?,
        })
    }
}

/// A row of `image_tags`: the digest and one tag it was added under.
pub(crate) fn image_tag_from_row(row: &AnyRow) -> Result<(Digest, ImageTagRecord), StoreError> {
    let tag: String = row.try_get("tag")?;
    Ok((
        parse_column(row, "image_digest")?,
        ImageTagRecord {
            registry: row.try_get("registry")?,
            repository: row.try_get("repository")?,
            tag: (!tag.is_empty()).then_some(tag),
            created_at: time(row, "created_at")?,
            last_updated: time(row, "last_updated")?,
        },
    ))
}

impl FromRow for ImageRecord {
    fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
        Ok(ImageRecord {
            account: parse_column(row, "account")?,
            image_digest: parse_column(row, "image_digest")?,
            registry: row.try_get("registry")?,
            repository: row.try_get("repository")?,
            tag: row.try_get("tag")?,
            media_type: row.try_get("media_type")?,
            manifest_digest: parse_column(row, "manifest_digest")?,
            platform: row.try_get("platform")?,
            config_digest: parse_column(row, "config_digest")?,
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
