//! Telling the other replicas what they must stop believing (docs/design.md §3.9): on
//! PostgreSQL a write that others cache is followed by `NOTIFY regkeep_changes, '<kind>'`, and
//! every replica LISTENs and forgets the matching cached entries. SQLite serves one process:
//! nothing to tell, nothing to hear.

use regkeep_domain::Secret;
use sqlx::postgres::PgListener;

use crate::{Backend, Result, Store, StoreError};

/// The channel regkeep's replicas talk on.
const CHANNEL: &str = "regkeep_changes";

/// What changed, as far as caches go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Users, passwords, accounts: remembered logins (and keys) may be wrong now.
    Logins,
    /// API keys: remembered keys may be wrong now.
    Keys,
    /// Registries (and accounts' states): cached registry records and secrets may be wrong.
    Registries,
}

impl Change {
    fn as_str(self) -> &'static str {
        match self {
            Change::Logins => "logins",
            Change::Keys => "keys",
            Change::Registries => "registries",
        }
    }

    fn parse(text: &str) -> Option<Change> {
        [Change::Logins, Change::Keys, Change::Registries]
            .into_iter()
            .find(|c| c.as_str() == text)
    }
}

/// The changes announced on the database, as they come (PostgreSQL only).
pub struct ChangeFeed {
    listener: PgListener,
}

impl ChangeFeed {
    /// The next change. `Ok(None)`: a notification regkeep does not know (a newer replica's);
    /// ignore it.
    ///
    /// # Errors
    /// The connection broke: whatever was announced meanwhile is lost; forget everything and
    /// listen again.
    pub async fn next(&mut self) -> Result<Option<Change>> {
        let notification = self.listener.try_recv().await?;
        match notification {
            Some(n) => Ok(Change::parse(n.payload())),
            None => Err(StoreError::Unwritable(
                "the change feed's connection was lost".into(),
            )),
        }
    }
}

impl Store {
    /// Tells the other replicas about `change` (PostgreSQL); nothing on SQLite.
    ///
    /// # Errors
    /// Database errors.
    pub async fn announce(&self, change: Change) -> Result<()> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(change.as_str())
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// A feed of the changes announced from now on; `None` on SQLite (one process).
    ///
    /// # Errors
    /// The database cannot be reached.
    pub async fn listen(&self) -> Result<Option<ChangeFeed>> {
        let Some(url) = &self.listen_url else {
            return Ok(None);
        };
        let mut listener = PgListener::connect(url.expose()).await?;
        // Lost notifications surface as an error from `next`, not as silence.
        listener.ignore_pool_close_event(false);
        listener.listen(CHANNEL).await?;
        Ok(Some(ChangeFeed { listener }))
    }
}

/// The URL a listener connects with (it holds the database password).
pub(crate) fn listen_url(backend: Backend, database_url: &str) -> Option<Secret> {
    (backend == Backend::Postgres).then(|| Secret::new(database_url))
}
