//! API keys' storage: the keyed hash of each key, never the key.

use regkeep_domain::entities::ApiKeyRecord;
use regkeep_domain::{AccountName, ApiKeyId, Timestamp, UserName};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::records::{optional_time, time, FromRow};
use crate::{parse_column, Result, Store};

const API_KEY_SELECT: &str = "SELECT key_id, account, created_by, description, scopes, key_hash, \
     created_at, expires_at, last_used_at, revoked_at FROM api_keys";

/// What the keyed hash of an API key's secret is bound to, apart from every other fingerprint.
const API_KEY_HASH_CONTEXT: &[u8] = b"regkeep api key v1\0";

impl FromRow for ApiKeyRecord {
    fn from_row(row: &AnyRow) -> Result<Self> {
        Ok(ApiKeyRecord {
            key_id: parse_column(row, "key_id")?,
            account: parse_column(row, "account")?,
            created_by: parse_column(row, "created_by")?,
            description: row.try_get("description")?,
            scopes: parse_column(row, "scopes")?,
            key_hash: row.try_get("key_hash")?,
            created_at: time(row, "created_at")?,
            expires_at: optional_time(row, "expires_at")?,
            last_used_at: optional_time(row, "last_used_at")?,
            revoked_at: optional_time(row, "revoked_at")?,
        })
    }
}

impl Store {
    /// # Errors
    /// [`crate::StoreError::AlreadyExists`] when the id is taken.
    pub async fn insert_api_key(&self, key: &ApiKeyRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO api_keys (key_id, account, created_by, description, scopes, key_hash, \
             created_at, expires_at, last_used_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(key.key_id.as_str())
        .bind(key.account.as_str())
        .bind(key.created_by.as_str())
        .bind(key.description.clone())
        .bind(key.scopes.to_string())
        .bind(key.key_hash.clone())
        .bind(key.created_at.unix())
        .bind(key.expires_at.map(Timestamp::unix))
        .bind(key.last_used_at.map(Timestamp::unix))
        .bind(key.revoked_at.map(Timestamp::unix))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// # Errors
    /// [`crate::StoreError::NotFound`].
    pub async fn get_api_key(&self, key_id: &ApiKeyId) -> Result<ApiKeyRecord> {
        let row = sqlx::query(&format!("{API_KEY_SELECT} WHERE key_id = $1"))
            .bind(key_id.as_str())
            .fetch_one(&self.pool)
            .await?;
        ApiKeyRecord::from_row(&row)
    }

    /// The account's keys, oldest first.
    ///
    /// # Errors
    /// Database errors.
    pub async fn list_api_keys(&self, account: &AccountName) -> Result<Vec<ApiKeyRecord>> {
        let rows = sqlx::query(&format!(
            "{API_KEY_SELECT} WHERE account = $1 ORDER BY created_at, key_id"
        ))
        .bind(account.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(ApiKeyRecord::from_row).collect()
    }

    /// Marks the account's key revoked; true when this revoked it (false: it was already, and
    /// keeps its first revocation time).
    ///
    /// # Errors
    /// [`crate::StoreError::NotFound`] unless the key is the account's.
    pub async fn revoke_api_key(
        &self,
        account: &AccountName,
        key_id: &ApiKeyId,
        now: Timestamp,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = $3 \
             WHERE account = $1 AND key_id = $2 AND revoked_at IS NULL",
        )
        .bind(account.as_str())
        .bind(key_id.as_str())
        .bind(now.unix())
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 1 {
            return Ok(true);
        }
        let key = self.get_api_key(key_id).await?;
        if &key.account == account {
            Ok(false)
        } else {
            Err(crate::StoreError::NotFound)
        }
    }

    /// Revokes every key `user` made, in any account (user names are unique across accounts);
    /// gives how many.
    ///
    /// # Errors
    /// Database errors.
    pub async fn revoke_api_keys_made_by(&self, user: &UserName, now: Timestamp) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = $2 WHERE created_by = $1 AND revoked_at IS NULL",
        )
        .bind(user.as_str())
        .bind(now.unix())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// How many keys of the account are not revoked (quotas).
    ///
    /// # Errors
    /// Database errors.
    pub async fn count_active_api_keys(&self, account: &AccountName) -> Result<u64> {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM api_keys WHERE account = $1 AND revoked_at IS NULL",
        )
        .bind(account.as_str())
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Records that the key was used at `now`.
    ///
    /// # Errors
    /// Database errors (a key deleted meanwhile is not one).
    pub async fn touch_api_key(&self, key_id: &ApiKeyId, now: Timestamp) -> Result<()> {
        sqlx::query("UPDATE api_keys SET last_used_at = $2 WHERE key_id = $1")
            .bind(key_id.as_str())
            .bind(now.unix())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The keyed hash an API key's secret is kept as: HMAC-SHA256 under a key derived from the
    /// sealing key (so a copy of the database alone cannot test guesses), bound to its own
    /// context.
    pub fn hash_api_key(&self, secret: &[u8]) -> String {
        self.fingerprint(&[API_KEY_HASH_CONTEXT, secret].concat())
    }
}
