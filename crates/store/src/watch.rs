//! Tag watching's storage: subscriptions with the poller's state, and the event log.

use regkeep_domain::entities::{EventFilter, EventRecord, PollOutcome, SubscriptionRecord};
use regkeep_domain::{AccountName, Digest, Timestamp};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::records::{optional_time, time, FromRow};
use crate::{expect_one, optional_column, parse_column, Result, Store, StoreError};

const SUBSCRIPTION_SELECT: &str = "SELECT account, subscription_id, subscription_type, \
     subscription_key, subscription_value, active, last_digest, last_polled_at, last_error, \
     failures, next_poll_at, created_at, last_updated FROM subscriptions";

impl FromRow for SubscriptionRecord {
    fn from_row(row: &AnyRow) -> Result<Self> {
        Ok(SubscriptionRecord {
            account: parse_column(row, "account")?,
            subscription_id: row.try_get("subscription_id")?,
            subscription_type: row.try_get("subscription_type")?,
            subscription_key: row.try_get("subscription_key")?,
            subscription_value: row.try_get("subscription_value")?,
            active: row.try_get::<i64, _>("active")? != 0,
            last_digest: optional_column(row, "last_digest")?,
            last_polled_at: optional_time(row, "last_polled_at")?,
            last_error: row.try_get("last_error")?,
            failures: row.try_get("failures")?,
            next_poll_at: time(row, "next_poll_at")?,
            created_at: time(row, "created_at")?,
            last_updated: time(row, "last_updated")?,
        })
    }
}

impl FromRow for EventRecord {
    fn from_row(row: &AnyRow) -> Result<Self> {
        Ok(EventRecord {
            account: parse_column(row, "account")?,
            generated_uuid: row.try_get("generated_uuid")?,
            created_at: time(row, "created_at")?,
            event_type: row.try_get("event_type")?,
            level: row.try_get("level")?,
            message: row.try_get("message")?,
            resource_type: row.try_get("resource_type")?,
            resource_id: row.try_get("resource_id")?,
            details: row.try_get("details")?,
        })
    }
}

impl Store {
    /// # Errors
    /// [`crate::StoreError::AlreadyExists`] for the same type and key in the account.
    pub async fn insert_subscription(&self, s: &SubscriptionRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO subscriptions (account, subscription_id, subscription_type, \
             subscription_key, subscription_value, active, last_digest, last_polled_at, last_error, \
             failures, next_poll_at, created_at, last_updated) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(s.account.as_str())
        .bind(s.subscription_id.clone())
        .bind(s.subscription_type.clone())
        .bind(s.subscription_key.clone())
        .bind(s.subscription_value.clone())
        .bind(i64::from(s.active))
        .bind(s.last_digest.as_ref().map(Digest::to_string))
        .bind(s.last_polled_at.map(Timestamp::unix))
        .bind(s.last_error.clone())
        .bind(s.failures)
        .bind(s.next_poll_at.unix())
        .bind(s.created_at.unix())
        .bind(s.last_updated.unix())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// # Errors
    /// [`crate::StoreError::NotFound`].
    pub async fn get_subscription(
        &self,
        account: &AccountName,
        id: &str,
    ) -> Result<SubscriptionRecord> {
        let row = sqlx::query(&format!(
            "{SUBSCRIPTION_SELECT} WHERE account = $1 AND subscription_id = $2"
        ))
        .bind(account.as_str())
        .bind(id)
        .fetch_one(&self.pool)
        .await?;
        SubscriptionRecord::from_row(&row)
    }

    /// The account's subscriptions, oldest first.
    ///
    /// # Errors
    /// Database errors.
    pub async fn list_subscriptions(
        &self,
        account: &AccountName,
    ) -> Result<Vec<SubscriptionRecord>> {
        let rows = sqlx::query(&format!(
            "{SUBSCRIPTION_SELECT} WHERE account = $1 ORDER BY created_at, subscription_id"
        ))
        .bind(account.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(SubscriptionRecord::from_row).collect()
    }

    /// # Errors
    /// [`crate::StoreError::NotFound`].
    pub async fn delete_subscription(&self, account: &AccountName, id: &str) -> Result<()> {
        let done =
            sqlx::query("DELETE FROM subscriptions WHERE account = $1 AND subscription_id = $2")
                .bind(account.as_str())
                .bind(id)
                .execute(&self.pool)
                .await?;
        expect_one(done.rows_affected())
    }

    /// Turns a subscription on or off; on polls it at `next_poll_at`.
    ///
    /// # Errors
    /// [`crate::StoreError::NotFound`].
    pub async fn set_subscription_active(
        &self,
        account: &AccountName,
        id: &str,
        active: bool,
        next_poll_at: Timestamp,
        now: Timestamp,
    ) -> Result<()> {
        let done = sqlx::query(
            "UPDATE subscriptions SET active = $3, next_poll_at = $4, last_updated = $5 \
             WHERE account = $1 AND subscription_id = $2",
        )
        .bind(account.as_str())
        .bind(id)
        .bind(i64::from(active))
        .bind(next_poll_at.unix())
        .bind(now.unix())
        .execute(&self.pool)
        .await?;
        expect_one(done.rows_affected())
    }

    /// Active subscriptions of enabled accounts due at `now`, longest-waiting first, at most
    /// `limit`. A disabled account's subscriptions are not polled (its stored credentials are not
    /// used) until it is enabled again.
    ///
    /// # Errors
    /// Database errors.
    pub async fn due_subscriptions(
        &self,
        now: Timestamp,
        limit: i64,
    ) -> Result<Vec<SubscriptionRecord>> {
        let rows = sqlx::query(&format!(
            "{SUBSCRIPTION_SELECT} WHERE active = 1 AND next_poll_at <= $1 \
             AND account IN (SELECT name FROM accounts WHERE state = 'enabled') \
             ORDER BY next_poll_at, account, subscription_id LIMIT $2"
        ))
        .bind(now.unix())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(SubscriptionRecord::from_row).collect()
    }

    /// Claims a due poll by moving `next_poll_at` from `seen` to `next`: true when this caller
    /// got it (another replica that read the same row gets false), so each poll runs once.
    ///
    /// # Errors
    /// Database errors.
    pub async fn claim_poll(
        &self,
        account: &AccountName,
        id: &str,
        seen: Timestamp,
        next: Timestamp,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE subscriptions SET next_poll_at = $4 \
             WHERE account = $1 AND subscription_id = $2 AND next_poll_at = $3 AND active = 1",
        )
        .bind(account.as_str())
        .bind(id)
        .bind(seen.unix())
        .bind(next.unix())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Stores what a poll found.
    ///
    /// # Errors
    /// Database errors (a subscription deleted meanwhile is not one).
    pub async fn record_poll(
        &self,
        account: &AccountName,
        id: &str,
        outcome: &PollOutcome,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE subscriptions SET last_digest = $3, last_error = $4, failures = $5, \
             last_polled_at = $6 WHERE account = $1 AND subscription_id = $2",
        )
        .bind(account.as_str())
        .bind(id)
        .bind(outcome.last_digest.as_ref().map(Digest::to_string))
        .bind(outcome.last_error.clone())
        .bind(outcome.failures)
        .bind(outcome.polled_at.unix())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// # Errors
    /// Database errors.
    pub async fn insert_event(&self, e: &EventRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO events (account, generated_uuid, created_at, event_type, level, message, \
             resource_type, resource_id, details) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(e.account.as_str())
        .bind(e.generated_uuid.clone())
        .bind(e.created_at.unix())
        .bind(e.event_type.clone())
        .bind(e.level.clone())
        .bind(e.message.clone())
        .bind(e.resource_type.clone())
        .bind(e.resource_id.clone())
        .bind(e.details.clone())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The account's events matching `filter`, newest first.
    ///
    /// # Errors
    /// Database errors.
    pub async fn list_events(
        &self,
        account: &AccountName,
        filter: &EventFilter,
    ) -> Result<Vec<EventRecord>> {
        // Every filter is bound; an absent one is a NULL that matches everything.
        let rows = sqlx::query(
            "SELECT account, generated_uuid, created_at, event_type, level, message, resource_type, \
             resource_id, details FROM events WHERE account = $1 \
             AND ($2 IS NULL OR substr(event_type, 1, length($2)) = $2) \
             AND ($3 IS NULL OR level = $3) \
             AND ($4 IS NULL OR resource_type = $4) \
             AND ($5 IS NULL OR resource_id = $5) \
             AND ($6 IS NULL OR created_at >= $6) \
             AND ($7 IS NULL OR created_at < $7) \
             ORDER BY seq DESC LIMIT $8 OFFSET $9",
        )
        .bind(account.as_str())
        .bind(filter.event_type.clone())
        .bind(filter.level.clone())
        .bind(filter.resource_type.clone())
        .bind(filter.resource_id.clone())
        .bind(filter.since.map(Timestamp::unix))
        .bind(filter.before.map(Timestamp::unix))
        .bind(filter.limit)
        .bind(filter.offset)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(EventRecord::from_row).collect()
    }

    /// One of the account's events, by its `generated_uuid`.
    ///
    /// # Errors
    /// NotFound; database errors.
    pub async fn get_event(&self, account: &AccountName, uuid: &str) -> Result<EventRecord> {
        let row = sqlx::query(
            "SELECT account, generated_uuid, created_at, event_type, level, message, resource_type, \
             resource_id, details FROM events WHERE account = $1 AND generated_uuid = $2",
        )
        .bind(account.as_str())
        .bind(uuid.to_owned())
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        EventRecord::from_row(&row)
    }

    /// Deletes one of the account's events.
    ///
    /// # Errors
    /// NotFound; database errors.
    pub async fn delete_event(&self, account: &AccountName, uuid: &str) -> Result<()> {
        let done = sqlx::query("DELETE FROM events WHERE account = $1 AND generated_uuid = $2")
            .bind(account.as_str())
            .bind(uuid.to_owned())
            .execute(&self.pool)
            .await?;
        expect_one(done.rows_affected())
    }

    /// Deletes the account's events (all, or those created at or after `since` and before
    /// `before`); gives the `generated_uuid`s deleted.
    ///
    /// # Errors
    /// Database errors.
    pub async fn delete_events(
        &self,
        account: &AccountName,
        since: Option<Timestamp>,
        before: Option<Timestamp>,
    ) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "DELETE FROM events WHERE account = $1 AND ($2 IS NULL OR created_at >= $2) \
             AND ($3 IS NULL OR created_at < $3) RETURNING generated_uuid",
        )
        .bind(account.as_str())
        .bind(since.map(Timestamp::unix))
        .bind(before.map(Timestamp::unix))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| row.try_get("generated_uuid").map_err(Into::into))
            .collect()
    }
}

impl Store {
    /// Deletes every account's events created before `before` (retention); gives how many.
    ///
    /// # Errors
    /// Database errors.
    pub async fn prune_events(&self, before: Timestamp) -> Result<u64> {
        let done = sqlx::query("DELETE FROM events WHERE created_at < $1")
            .bind(before.unix())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}
