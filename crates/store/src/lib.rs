//! regkeep's persistence: accounts, users and registries in SQLite (embedded default) or
//! PostgreSQL (several replicas sharing one state), through sqlx's `Any` driver so one set of
//! runtime queries serves both; migrations are per backend.
//!
//! Secrets never reach the database in plain text: the store seals registry passwords with the
//! [`sealing::SealingKey`] on the way in and opens them on the way out, binding each to its
//! account and registry.
//!
//! Layout: [`sealing`] (key handling, AES-256-GCM), [`records`] (the rows as typed values),
//! this module (opening, migrations, key check, queries).

pub mod api_keys;
pub mod changes;
pub mod records;
pub mod repositories;
pub mod sealing;
pub mod watch;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use regkeep_domain::{
    AccountName, AccountState, BoxFuture, Digest, EcrToken, RegistryName, Secret, Timestamp,
    UserName,
};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use records::FromRow;
use regkeep_domain::entities::{
    AccountRecord, ImageRecord, ImageTagRecord, RegistryRecord, UserRecord,
};
use sealing::{
    ecr_token_context, registry_pass_context, SealingError, SealingKey, KEY_CHECK_CONTEXT,
};

pub use changes::{Change, ChangeFeed};
pub use repositories::{
    AccountRepository, ApiKeyRepository, Database, ImageRepository, RegistryRepository,
    WatchRepository,
};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

const KEY_CHECK_PLAIN: &[u8] = b"regkeep key check";

/// Where the ECR token lifecycle keeps its tokens: [`Store`] in the database (sealed), or an
/// in-memory fake in the engine's unit tests. Keys are the lifecycle's token keys.
pub trait EcrTokenRepository: Send + Sync + 'static {
    /// The token under `key`, opened; `None` when there is none.
    fn load<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<EcrToken>>>;
    /// Keeps a freshly minted token under `key`; the renewal counts as successful.
    fn save<'a>(&'a self, key: &'a str, token: &'a EcrToken) -> BoxFuture<'a, Result<()>>;
    /// Records a failed renewal (the error's text, never a secret), keeping any token.
    fn record_error<'a>(
        &'a self,
        key: &'a str,
        error: &'a str,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<()>>;
    /// Removes the token under `key` when no registry uses it; tells whether none does.
    fn release<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool>>;
    /// The keys some registry uses.
    fn used_keys(&self) -> BoxFuture<'_, Result<HashSet<String>>>;
    /// Removes tokens no registry uses, last written before `written_before`.
    fn delete_unused(&self, written_before: Timestamp) -> BoxFuture<'_, Result<u64>>;
    /// Takes (or extends) the lease on minting `key` for `holder` until `until`, unless another
    /// holder's lease runs past `now`; true when `holder` has it.
    fn try_lease<'a>(
        &'a self,
        key: &'a str,
        holder: &'a str,
        until: Timestamp,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<bool>>;
}

impl EcrTokenRepository for Store {
    fn load<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<EcrToken>>> {
        Box::pin(self.load_ecr_token(key))
    }
    fn save<'a>(&'a self, key: &'a str, token: &'a EcrToken) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.save_ecr_token(key, token))
    }
    fn record_error<'a>(
        &'a self,
        key: &'a str,
        error: &'a str,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.record_ecr_error(key, error, now))
    }
    fn release<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(self.release_ecr_token(key))
    }
    fn used_keys(&self) -> BoxFuture<'_, Result<HashSet<String>>> {
        Box::pin(self.used_ecr_token_keys())
    }
    fn delete_unused(&self, written_before: Timestamp) -> BoxFuture<'_, Result<u64>> {
        Box::pin(self.delete_unused_ecr_tokens(written_before))
    }
    fn try_lease<'a>(
        &'a self,
        key: &'a str,
        holder: &'a str,
        until: Timestamp,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(self.try_ecr_lease(key, holder, until, now))
    }
}

/// Which database the store talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Where the sealing key comes from.
#[derive(Clone, Debug)]
pub enum KeySource {
    /// Given in configuration (base64 of 32 bytes).
    Inline(Secret),
    /// A key file; created (mode 0600) on first start when the database has no sealed data yet.
    File(PathBuf),
}

/// Store errors. Variants say what the caller should do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("already exists")]
    AlreadyExists,
    #[error("database_url `{0}` is not supported: use `sqlite://PATH` or `postgres://USER:PASS@HOST/DB`")]
    UnsupportedUrl(String),
    #[error("the secret key does not open this database's sealed data: it was sealed under another key. Restore the original key (secret_key_file / REGKEEP_SECRET_KEY_FILE, or secret_key / REGKEEP_SECRET_KEY)")]
    WrongKey,
    #[error("this database holds sealed data but the secret key file {0} does not exist: restore it, or point secret_key_file (REGKEEP_SECRET_KEY_FILE) at the key this database was created with")]
    MissingKey(PathBuf),
    #[error(transparent)]
    Sealing(#[from] SealingError),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The disk that holds the database is full: nothing was written.
    #[error("the database's disk is full: nothing was written")]
    Full,
    /// The database cannot be written (read-only, I/O error, its file gone).
    #[error("the database cannot be written: {0}")]
    Unwritable(String),
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::AlreadyExists,
            sqlx::Error::Database(db) => match db.code().as_deref().map(storage_fault) {
                Some(Some(fault)) => fault(db.message()),
                _ => StoreError::Database(err),
            },
            _ => StoreError::Database(err),
        }
    }
}

type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What an account owns, for quotas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnedTable {
    Registries,
    Subscriptions,
    /// Counted by tag: every `image_detail` entry (a digest added under one more tag) is a row.
    Images,
    Users,
}

impl OwnedTable {
    fn name(self) -> &'static str {
        match self {
            OwnedTable::Registries => "registries",
            OwnedTable::Subscriptions => "subscriptions",
            OwnedTable::Images => "image_tags",
            OwnedTable::Users => "users",
        }
    }
}

/// The persistent state of regkeep. Cheap to clone (a pool and a key).
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    key: SealingKey,
    /// The SQLite file and its identity (device, inode) when opened: a file removed or replaced
    /// under the running process is noticed by [`Store::check_writable`].
    sqlite_file: Option<Arc<(PathBuf, u64, u64)>>,
    /// PostgreSQL: the URL the change listener connects with.
    listen_url: Option<Secret>,
}

impl Store {
    /// Opens (creating when needed) the database at `database_url`, applies migrations, and
    /// settles the sealing key: checks it against the database's key check, or creates the key
    /// file on a database that holds no sealed data yet.
    ///
    /// # Errors
    /// [`StoreError::WrongKey`] / [`StoreError::MissingKey`] when the key does not fit the
    /// database; database and migration errors.
    pub async fn open(database_url: &str, key_source: &KeySource) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if database_url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://")
        {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(redact_url(database_url)));
        };
        let pool = match backend {
            Backend::Sqlite => {
                // Create the file (and its directory) on first start; WAL lets readers run
                // beside the writer.
                let url = if database_url.contains('?') {
                    database_url.to_owned()
                } else {
                    format!("{database_url}?mode=rwc")
                };
                if let Some(path) = sqlite_path(database_url) {
                    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                        std::fs::create_dir_all(dir).map_err(|e| {
                            StoreError::Corrupt(format!("cannot create {}: {e}", dir.display()))
                        })?;
                    }
                    private_files(path)?;
                }
                let pool = AnyPoolOptions::new()
                    .max_connections(8)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            sqlx::query("PRAGMA foreign_keys = ON")
                                .execute(&mut *conn)
                                .await?;
                            sqlx::query("PRAGMA busy_timeout = 5000")
                                .execute(&mut *conn)
                                .await?;
                            // With WAL, NORMAL syncs at checkpoints rather than on every commit:
                            // the database cannot be corrupted, and only the last commits before a
                            // power loss (not a crash) can be lost. SQLite's recommended setting
                            // for WAL; FULL made every image record cost an fsync.
                            sqlx::query("PRAGMA synchronous = NORMAL")
                                .execute(&mut *conn)
                                .await?;
                            Ok(())
                        })
                    })
                    .connect(&url)
                    .await?;
                sqlx::query("PRAGMA journal_mode = WAL")
                    .execute(&pool)
                    .await?;
                pool
            }
            Backend::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(16)
                    .connect(database_url)
                    .await?
            }
        };
        match backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&pool).await?,
        }
        let key_check: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
                .bind("key_check")
                .fetch_optional(&pool)
                .await?;
        let key = match key_source {
            KeySource::Inline(text) => SealingKey::from_base64(text)?,
            KeySource::File(path) if path.exists() => SealingKey::read_file(path)?,
            KeySource::File(path) if key_check.is_some() => {
                return Err(StoreError::MissingKey(path.clone()))
            }
            KeySource::File(path) => SealingKey::create_file(path)?,
        };
        match key_check {
            Some(sealed) => {
                if key.open(&sealed, KEY_CHECK_CONTEXT).is_err() {
                    return Err(StoreError::WrongKey);
                }
            }
            None => {
                sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2)")
                    .bind("key_check")
                    .bind(key.seal(KEY_CHECK_PLAIN, KEY_CHECK_CONTEXT))
                    .execute(&pool)
                    .await?;
            }
        }
        let sqlite_file = match backend {
            Backend::Sqlite => sqlite_path(database_url).and_then(|p| {
                file_identity(p).map(|(dev, ino)| Arc::new((p.to_owned(), dev, ino)))
            }),
            Backend::Postgres => None,
        };
        Ok(Store {
            listen_url: changes::listen_url(backend, database_url),
            pool,
            backend,
            key,
            sqlite_file,
        })
    }

    /// Whether the database can be written now: its file (SQLite) is still the one opened, and a
    /// small write succeeds.
    ///
    /// # Errors
    /// [`StoreError::Unwritable`] naming the cause (file removed or replaced, read-only),
    /// [`StoreError::Full`].
    pub async fn check_writable(&self) -> Result<()> {
        self.check_file()?;
        // A write that fits in the WAL's existing pages succeeds on a full disk: look at the space.
        if let Some(file) = &self.sqlite_file {
            let folder = file.0.parent().unwrap_or_else(|| Path::new("."));
            if let Ok(stats) = rustix::fs::statvfs(folder) {
                let free = stats.f_bavail.saturating_mul(stats.f_frsize);
                if free < MIN_FREE_BYTES {
                    return Err(StoreError::Full);
                }
            }
        }
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ('ready_probe', $1) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(vec![1u8])
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Whether the SQLite file is still the one opened (always true for PostgreSQL).
    ///
    /// # Errors
    /// [`StoreError::Unwritable`] when it was removed or replaced.
    pub fn check_file(&self) -> Result<()> {
        if let Some(file) = &self.sqlite_file {
            let (path, dev, ino) = file.as_ref();
            match file_identity(path) {
                None => {
                    return Err(StoreError::Unwritable(format!(
                        "the database file {} was removed while regkeep runs; writes since went into the removed file: restore it and restart regkeep",
                        path.display()
                    )))
                }
                Some(now) if now != (*dev, *ino) => {
                    return Err(StoreError::Unwritable(format!(
                        "the database file {} was replaced while regkeep runs: restart regkeep to use the new file",
                        path.display()
                    )))
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes the pool, waiting for connections to finish.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The version of the newest migration applied (every embedded one is applied on open).
    pub fn schema_version(&self) -> i64 {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.iter().map(|m| m.version).max().unwrap_or(0)
    }

    /// The database's kind: `sqlite` or `postgresql`.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgresql",
        }
    }

    /// Whether the database answers.
    ///
    /// # Errors
    /// The database error when it does not.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Whether the marker `key` is set in `meta` (facts about the database itself, such as "the
    /// admin was seeded").
    ///
    /// # Errors
    /// Database errors.
    pub async fn has_marker(&self, key: &str) -> Result<bool> {
        let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM meta WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(found.is_some())
    }

    /// Sets the marker `key` (idempotent).
    ///
    /// # Errors
    /// Database errors.
    pub async fn set_marker(&self, key: &str) -> Result<()> {
        sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(vec![1u8])
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// How many rows `account` owns in `table` (quotas).
    ///
    /// # Errors
    /// Database errors.
    pub async fn count_owned(&self, table: OwnedTable, account: &AccountName) -> Result<u64> {
        let count: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM {} WHERE account = $1",
            table.name()
        ))
        .bind(account.as_str())
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    // ---- accounts ----

    /// # Errors
    /// [`StoreError::AlreadyExists`] when the name is taken.
    pub async fn insert_account(&self, account: &AccountRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO accounts (name, email, account_type, state, created_at, last_updated) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(account.name.as_str())
        .bind(account.email.clone())
        .bind(account.account_type.as_str())
        .bind(account.state.as_str())
        .bind(account.created_at.unix())
        .bind(account.last_updated.unix())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// # Errors
    /// [`StoreError::NotFound`].
    pub async fn get_account(&self, name: &AccountName) -> Result<AccountRecord> {
        let row = sqlx::query(&format!("{ACCOUNT_SELECT} WHERE name = $1"))
            .bind(name.as_str())
            .fetch_one(&self.pool)
            .await?;
        AccountRecord::from_row(&row)
    }

    /// # Errors
    /// Database errors.
    pub async fn list_accounts(&self) -> Result<Vec<AccountRecord>> {
        let rows = sqlx::query(&format!("{ACCOUNT_SELECT} ORDER BY name"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(AccountRecord::from_row).collect()
    }

    /// # Errors
    /// [`StoreError::NotFound`].
    pub async fn set_account_state(
        &self,
        name: &AccountName,
        state: AccountState,
        now: Timestamp,
    ) -> Result<()> {
        // An account being deleted stays so (a state change racing a delete cannot bring it
        // back); NotFound then.
        let done = sqlx::query(
            "UPDATE accounts SET state = $1, last_updated = $2 WHERE name = $3 \
             AND state <> 'deleting'",
        )
        .bind(state.as_str())
        .bind(now.unix())
        .bind(name.as_str())
        .execute(&self.pool)
        .await?;
        expect_one(done.rows_affected())
    }

    /// Deletes an account with its users and registries (and their sealed secrets), in one
    /// transaction.
    ///
    /// # Errors
    /// [`StoreError::NotFound`].
    pub async fn delete_account(&self, name: &AccountName) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for table in ["image_tags", "images", "registries", "api_keys", "users"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE account = $1"))
                .bind(name.as_str())
                .execute(&mut *tx)
                .await?;
        }
        let done = sqlx::query("DELETE FROM accounts WHERE name = $1")
            .bind(name.as_str())
            .execute(&mut *tx)
            .await?;
        expect_one(done.rows_affected())?;
        tx.commit().await?;
        Ok(())
    }

    // ---- users ----

    /// # Errors
    /// [`StoreError::AlreadyExists`] when the user name is taken (in any account).
    pub async fn insert_user(&self, user: &UserRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO users (username, account, user_type, source, password_hash, created_at, last_updated) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(user.username.as_str())
        .bind(user.account.as_str())
        .bind(user.user_type.clone())
        .bind(user.source.clone())
        .bind(user.password_hash.clone())
        .bind(user.created_at.unix())
        .bind(user.last_updated.unix())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// # Errors
    /// [`StoreError::NotFound`].
    pub async fn get_user(&self, username: &UserName) -> Result<UserRecord> {
        let row = sqlx::query(&format!("{USER_SELECT} WHERE username = $1"))
            .bind(username.as_str())
            .fetch_one(&self.pool)
            .await?;
        UserRecord::from_row(&row)
    }

    /// # Errors
    /// Database errors.
    pub async fn list_users(&self, account: &AccountName) -> Result<Vec<UserRecord>> {
        let rows = sqlx::query(&format!(
            "{USER_SELECT} WHERE account = $1 ORDER BY username"
        ))
        .bind(account.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(UserRecord::from_row).collect()
    }

    /// Sets the password hash of `username` of `account` (of that account only: a user deleted
    /// and re-created in another account meanwhile is not touched).
    ///
    /// # Errors
    /// [`StoreError::NotFound`].
    pub async fn set_user_password_hash(
        &self,
        account: &AccountName,
        username: &UserName,
        hash: &str,
        now: Timestamp,
    ) -> Result<()> {
        let done = sqlx::query(
            "UPDATE users SET password_hash = $1, last_updated = $2 \
             WHERE username = $3 AND account = $4",
        )
        .bind(hash)
        .bind(now.unix())
        .bind(username.as_str())
        .bind(account.as_str())
        .execute(&self.pool)
        .await?;
        expect_one(done.rows_affected())
    }

    /// # Errors
    /// [`StoreError::NotFound`].
    pub async fn delete_user(&self, account: &AccountName, username: &UserName) -> Result<()> {
        let done = sqlx::query("DELETE FROM users WHERE account = $1 AND username = $2")
            .bind(account.as_str())
            .bind(username.as_str())
            .execute(&self.pool)
            .await?;
        expect_one(done.rows_affected())
    }

    // ---- registries ----

    /// Stores a registry and its password (sealed).
    ///
    /// # Errors
    /// [`StoreError::AlreadyExists`] when the account already has this registry.
    pub async fn insert_registry(&self, record: &RegistryRecord, pass: &Secret) -> Result<()> {
        let sealed = self.seal_pass(record, pass);
        sqlx::query(
            "INSERT INTO registries (account, registry, registry_name, registry_user, registry_type, \
             registry_verify, sealed_pass, created_at, last_updated, last_validated, token_key, \
             declared_in, declaration_error) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(record.account.as_str())
        .bind(record.registry.as_str())
        .bind(record.registry_name.clone())
        .bind(record.registry_user.clone())
        .bind(record.registry_type.as_str())
        .bind(i64::from(record.registry_verify))
        .bind(sealed)
        .bind(record.created_at.unix())
        .bind(record.last_updated.unix())
        .bind(record.last_validated.map(Timestamp::unix))
        .bind(record.token_key.clone())
        .bind(record.declared_in.clone())
        .bind(record.declaration_error.clone())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Replaces the user, password, type, verify flag, name and times of an existing registry.
    ///
    /// # Errors
    /// [`StoreError::NotFound`].
    pub async fn update_registry(&self, record: &RegistryRecord, pass: &Secret) -> Result<()> {
        let sealed = self.seal_pass(record, pass);
        let done = sqlx::query(
            "UPDATE registries SET registry_name = $1, registry_user = $2, registry_type = $3, \
             registry_verify = $4, sealed_pass = $5, last_updated = $6, last_validated = $7, \
             token_key = $8, declared_in = $9, declaration_error = $10 \
             WHERE account = $11 AND registry = $12",
        )
        .bind(record.registry_name.clone())
        .bind(record.registry_user.clone())
        .bind(record.registry_type.as_str())
        .bind(i64::from(record.registry_verify))
        .bind(sealed)
        .bind(record.last_updated.unix())
        .bind(record.last_validated.map(Timestamp::unix))
        .bind(record.token_key.clone())
        .bind(record.declared_in.clone())
        .bind(record.declaration_error.clone())
        .bind(record.account.as_str())
        .bind(record.registry.as_str())
        .execute(&self.pool)
        .await?;
        expect_one(done.rows_affected())
    }

    /// Every registry a registries file declares, in every account.
    ///
    /// # Errors
    /// Database errors.
    pub async fn list_declared_registries(&self) -> Result<Vec<RegistryRecord>> {
        let rows = sqlx::query(&format!(
            "{REGISTRY_SELECT} WHERE r.declared_in IS NOT NULL ORDER BY r.account, r.registry"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(RegistryRecord::from_row).collect()
    }

    /// Records why a declared entry could not be applied (none: it was).
    ///
    /// # Errors
    /// [`StoreError::NotFound`].
    pub async fn set_declaration_error(
        &self,
        account: &AccountName,
        registry: &RegistryName,
        error: Option<&str>,
    ) -> Result<()> {
        let done = sqlx::query(
            "UPDATE registries SET declaration_error = $1 WHERE account = $2 AND registry = $3",
        )
        .bind(error.map(str::to_owned))
        .bind(account.as_str())
        .bind(registry.as_str())
        .execute(&self.pool)
        .await?;
        expect_one(done.rows_affected())
    }

    /// Hands every declared registry to the API (no registries file is configured any more):
    /// how many there were.
    ///
    /// # Errors
    /// Database errors.
    pub async fn undeclare_registries(&self) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE registries SET declared_in = NULL, declaration_error = NULL \
             WHERE declared_in IS NOT NULL",
        )
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// # Errors
    /// [`StoreError::NotFound`].
    pub async fn get_registry(
        &self,
        account: &AccountName,
        registry: &RegistryName,
    ) -> Result<RegistryRecord> {
        let row = sqlx::query(&format!(
            "{REGISTRY_SELECT} WHERE account = $1 AND registry = $2"
        ))
        .bind(account.as_str())
        .bind(registry.as_str())
        .fetch_one(&self.pool)
        .await?;
        RegistryRecord::from_row(&row)
    }

    /// # Errors
    /// Database errors.
    pub async fn list_registries(&self, account: &AccountName) -> Result<Vec<RegistryRecord>> {
        let rows = sqlx::query(&format!(
            "{REGISTRY_SELECT} WHERE account = $1 ORDER BY registry"
        ))
        .bind(account.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(RegistryRecord::from_row).collect()
    }

    /// The registry's password, opened.
    ///
    /// # Errors
    /// [`StoreError::NotFound`]; [`StoreError::Sealing`] when the sealed value does not open
    /// (it was moved from another row, or the key changed).
    pub async fn registry_password(
        &self,
        account: &AccountName,
        registry: &RegistryName,
    ) -> Result<Secret> {
        let sealed: Vec<u8> = sqlx::query_scalar(
            "SELECT sealed_pass FROM registries WHERE account = $1 AND registry = $2",
        )
        .bind(account.as_str())
        .bind(registry.as_str())
        .fetch_one(&self.pool)
        .await?;
        let plain = self.key.open(
            &sealed,
            &registry_pass_context(account.as_str(), registry.as_str()),
        )?;
        let text = String::from_utf8(plain.to_vec())
            .map_err(|_| StoreError::Corrupt("a registry password is not UTF-8".into()))?;
        Ok(Secret::new(text))
    }

    /// The tables and their columns as the database reports them: table → (column, NOT NULL),
    /// sorted. Both migration trees must give the same (a test compares them).
    ///
    /// # Errors
    /// Database errors.
    pub async fn schema(&self) -> Result<std::collections::BTreeMap<String, Vec<(String, bool)>>> {
        let query = match self.backend {
            Backend::Sqlite => {
                "SELECT m.name AS tbl, p.name AS col, \
                 CASE WHEN p.\"notnull\" <> 0 OR p.pk > 0 THEN 1 ELSE 0 END AS nn \
                 FROM sqlite_master m JOIN pragma_table_info(m.name) p \
                 WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name NOT LIKE '_sqlx%'"
            }
            Backend::Postgres => {
                "SELECT table_name::text AS tbl, column_name::text AS col, \
                 CASE WHEN is_nullable = 'NO' THEN 1 ELSE 0 END AS nn \
                 FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name NOT LIKE '_sqlx%'"
            }
        };
        let mut schema: std::collections::BTreeMap<String, Vec<(String, bool)>> =
            std::collections::BTreeMap::new();
        for row in sqlx::query(query).fetch_all(&self.pool).await? {
            let table: String = row.try_get("tbl")?;
            let column: String = row.try_get("col")?;
            let not_null: i32 = row.try_get("nn")?;
            schema
                .entry(table)
                .or_default()
                .push((column, not_null != 0));
        }
        for columns in schema.values_mut() {
            columns.sort();
        }
        Ok(schema)
    }

    /// # Errors
    /// [`StoreError::NotFound`].
    pub async fn delete_registry(
        &self,
        account: &AccountName,
        registry: &RegistryName,
    ) -> Result<()> {
        let done = sqlx::query("DELETE FROM registries WHERE account = $1 AND registry = $2")
            .bind(account.as_str())
            .bind(registry.as_str())
            .execute(&self.pool)
            .await?;
        expect_one(done.rows_affected())
    }

    // ---- images ----

    /// Inserts an image record, or refreshes the one with the same digest (keeping its
    /// `created_at`), and records its `registry`/`repository`/`tag` among the digest's tags
    /// (keeping that tag's first `created_at`); gives the stored `created_at`.
    ///
    /// # Errors
    /// Database errors.
    pub async fn upsert_image(&self, image: &ImageRecord) -> Result<Timestamp> {
        let mut tx = self.pool.begin().await?;
        let created_at: i64 = sqlx::query_scalar(
            "INSERT INTO images (account, image_digest, registry, repository, tag, media_type, \
             manifest_digest, platform, config_digest, image_created, layer_count, total_size, \
             resolved_at, created_at, last_updated) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
             ON CONFLICT (account, image_digest) DO UPDATE SET registry = excluded.registry, \
             repository = excluded.repository, tag = excluded.tag, media_type = excluded.media_type, \
             manifest_digest = excluded.manifest_digest, platform = excluded.platform, \
             config_digest = excluded.config_digest, image_created = excluded.image_created, \
             layer_count = excluded.layer_count, total_size = excluded.total_size, \
             resolved_at = excluded.resolved_at, last_updated = excluded.last_updated \
             RETURNING created_at",
        )
        .bind(image.account.as_str())
        .bind(image.image_digest.as_str())
        .bind(image.registry.clone())
        .bind(image.repository.clone())
        .bind(image.tag.clone())
        .bind(image.media_type.clone())
        .bind(image.manifest_digest.as_str())
        .bind(image.platform.clone())
        .bind(image.config_digest.as_str())
        .bind(image.image_created.clone())
        .bind(image.layer_count)
        .bind(image.total_size)
        .bind(image.resolved_at.unix())
        .bind(image.created_at.unix())
        .bind(image.last_updated.unix())
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO image_tags (account, image_digest, registry, repository, tag, \
             created_at, last_updated) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (account, image_digest, registry, repository, tag) \
             DO UPDATE SET last_updated = excluded.last_updated",
        )
        .bind(image.account.as_str())
        .bind(image.image_digest.as_str())
        .bind(image.registry.clone())
        .bind(image.repository.clone())
        .bind(image.tag.clone().unwrap_or_default())
        .bind(image.last_updated.unix())
        .bind(image.last_updated.unix())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Timestamp::from_unix(created_at))
    }

    /// # Errors
    /// [`StoreError::NotFound`].
    pub async fn get_image(&self, account: &AccountName, digest: &Digest) -> Result<ImageRecord> {
        let row = sqlx::query(&format!(
            "{IMAGE_SELECT} WHERE account = $1 AND image_digest = $2"
        ))
        .bind(account.as_str())
        .bind(digest.as_str())
        .fetch_one(&self.pool)
        .await?;
        let mut images = vec![ImageRecord::from_row(&row)?];
        self.fill_image_tags(account, &mut images, Some(digest))
            .await?;
        images.pop().ok_or(StoreError::NotFound)
    }

    /// Every image of the account, oldest first, each with its tags.
    ///
    /// # Errors
    /// Database errors.
    pub async fn list_images(&self, account: &AccountName) -> Result<Vec<ImageRecord>> {
        let rows = sqlx::query(&format!(
            "{IMAGE_SELECT} WHERE account = $1 ORDER BY created_at, image_digest"
        ))
        .bind(account.as_str())
        .fetch_all(&self.pool)
        .await?;
        let mut images = rows
            .iter()
            .map(ImageRecord::from_row)
            .collect::<Result<Vec<_>>>()?;
        self.fill_image_tags(account, &mut images, None).await?;
        Ok(images)
    }

    /// The images of the account whose config digest is `config_digest` (Anchore's imageId is
    /// its hex), each with its tags.
    ///
    /// # Errors
    /// Database errors.
    pub async fn images_by_config(
        &self,
        account: &AccountName,
        config_digest: &Digest,
    ) -> Result<Vec<ImageRecord>> {
        let rows = sqlx::query(&format!(
            "{IMAGE_SELECT} WHERE account = $1 AND config_digest = $2 \
             ORDER BY created_at, image_digest"
        ))
        .bind(account.as_str())
        .bind(config_digest.as_str())
        .fetch_all(&self.pool)
        .await?;
        let mut images = rows
            .iter()
            .map(ImageRecord::from_row)
            .collect::<Result<Vec<_>>>()?;
        for image in &mut images {
            let digest = image.image_digest.clone();
            self.fill_image_tags(account, std::slice::from_mut(image), Some(&digest))
                .await?;
        }
        Ok(images)
    }

    /// Reads the tags of `images` (of one digest when `digest` is given, else of the account).
    async fn fill_image_tags(
        &self,
        account: &AccountName,
        images: &mut [ImageRecord],
        digest: Option<&Digest>,
    ) -> Result<()> {
        let select = "SELECT image_digest, registry, repository, tag, created_at, last_updated \
                      FROM image_tags WHERE account = $1";
        let order = "ORDER BY created_at, registry, repository, tag";
        let rows = match digest {
            Some(d) => {
                sqlx::query(&format!("{select} AND image_digest = $2 {order}"))
                    .bind(account.as_str())
                    .bind(d.as_str())
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query(&format!("{select} {order}"))
                    .bind(account.as_str())
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        let mut by_digest: std::collections::HashMap<Digest, Vec<ImageTagRecord>> =
            std::collections::HashMap::new();
        for row in &rows {
            let (digest, tag) = records::image_tag_from_row(row)?;
            by_digest.entry(digest).or_default().push(tag);
        }
        for image in images {
            image.tags = by_digest.remove(&image.image_digest).unwrap_or_default();
        }
        Ok(())
    }

    /// Deletes an image record and its tags.
    ///
    /// # Errors
    /// [`StoreError::NotFound`].
    pub async fn delete_image(&self, account: &AccountName, digest: &Digest) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        // The tags go first and explicitly: a SQLite connection without foreign keys on would
        // otherwise keep them.
        sqlx::query("DELETE FROM image_tags WHERE account = $1 AND image_digest = $2")
            .bind(account.as_str())
            .bind(digest.as_str())
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM images WHERE account = $1 AND image_digest = $2")
            .bind(account.as_str())
            .bind(digest.as_str())
            .execute(&mut *tx)
            .await?;
        expect_one(done.rows_affected())?;
        tx.commit().await?;
        Ok(())
    }

    // ---- ECR tokens ----

    /// The persisted token under `key`, opened; `None` when there is none.
    ///
    /// # Errors
    /// Database errors; [`StoreError::Sealing`] when the sealed token does not open.
    pub async fn load_ecr_token(&self, key: &str) -> Result<Option<EcrToken>> {
        let row = sqlx::query(
            "SELECT sealed_token, expires_at, obtained_at, renew_at FROM ecr_tokens \
             WHERE token_key = $1 AND sealed_token IS NOT NULL",
        )
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let sealed: Vec<u8> = row.try_get("sealed_token")?;
        let plain = self.key.open(&sealed, &ecr_token_context(key))?;
        let text = std::str::from_utf8(&plain)
            .map_err(|_| StoreError::Corrupt("an ECR token is not UTF-8".into()))?;
        let (username, password) = text
            .split_once('\0')
            .ok_or_else(|| StoreError::Corrupt("an ECR token has no user".into()))?;
        let time = |column: &str| -> Result<Timestamp> {
            let value: Option<i64> = row.try_get(column)?;
            value
                .map(Timestamp::from_unix)
                .ok_or_else(|| StoreError::Corrupt(format!("an ECR token has no {column}")))
        };
        Ok(Some(EcrToken {
            username: username.to_owned(),
            password: Secret::new(password),
            usable_until: time("expires_at")?,
            obtained_at: time("obtained_at")?,
            renew_at: time("renew_at")?,
        }))
    }

    /// Persists a freshly minted token under `key` (sealed), and records the renewal as
    /// successful.
    ///
    /// # Errors
    /// Database errors.
    pub async fn save_ecr_token(&self, key: &str, token: &EcrToken) -> Result<()> {
        let plain = format!("{}\0{}", token.username, token.password.expose());
        let sealed = self.key.seal(plain.as_bytes(), &ecr_token_context(key));
        sqlx::query(
            "INSERT INTO ecr_tokens (token_key, sealed_token, expires_at, obtained_at, renew_at, \
             last_renewed_at, last_error, updated_at) VALUES ($1, $2, $3, $4, $5, $6, NULL, $7) \
             ON CONFLICT (token_key) DO UPDATE SET sealed_token = excluded.sealed_token, \
             expires_at = excluded.expires_at, obtained_at = excluded.obtained_at, \
             renew_at = excluded.renew_at, last_renewed_at = excluded.last_renewed_at, \
             last_error = NULL, updated_at = excluded.updated_at",
        )
        .bind(key)
        .bind(sealed)
        .bind(token.usable_until.unix())
        .bind(token.obtained_at.unix())
        .bind(token.renew_at.unix())
        .bind(token.obtained_at.unix())
        .bind(token.obtained_at.unix())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records a failed renewal (AWS's message) under `key`, keeping any token there.
    ///
    /// # Errors
    /// Database errors.
    pub async fn record_ecr_error(&self, key: &str, error: &str, now: Timestamp) -> Result<()> {
        sqlx::query(
            "INSERT INTO ecr_tokens (token_key, last_error, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (token_key) DO UPDATE SET last_error = excluded.last_error, \
             updated_at = excluded.updated_at",
        )
        .bind(key)
        .bind(error)
        .bind(now.unix())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Removes the persisted token under `key` when no registry uses it any more; tells whether
    /// none does (then the caller forgets it too).
    ///
    /// # Errors
    /// Database errors.
    pub async fn release_ecr_token(&self, key: &str) -> Result<bool> {
        sqlx::query(
            "DELETE FROM ecr_tokens WHERE token_key = $1 AND NOT EXISTS \
             (SELECT 1 FROM registries WHERE token_key = $1)",
        )
        .bind(key)
        .execute(&self.pool)
        .await?;
        let used = sqlx::query("SELECT 1 FROM registries WHERE token_key = $1 LIMIT 1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(used.is_none())
    }

    /// The token keys some registry uses.
    ///
    /// # Errors
    /// Database errors.
    pub async fn used_ecr_token_keys(&self) -> Result<HashSet<String>> {
        let rows =
            sqlx::query("SELECT DISTINCT token_key FROM registries WHERE token_key IS NOT NULL")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|row| row.try_get::<String, _>("token_key").map_err(Into::into))
            .collect()
    }

    /// Removes persisted tokens that no registry uses and that were last written before
    /// `written_before` (a token minted to validate a registry being added is not yet used by
    /// its row); gives how many went.
    ///
    /// # Errors
    /// Database errors.
    pub async fn delete_unused_ecr_tokens(&self, written_before: Timestamp) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM ecr_tokens WHERE updated_at < $1 AND token_key NOT IN \
             (SELECT token_key FROM registries WHERE token_key IS NOT NULL)",
        )
        .bind(written_before.unix())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Takes the minting lease on `key` for `holder` until `until`, unless another holder's runs
    /// past `now` (one statement: two replicas asking together cannot both get it). A row, not
    /// an advisory lock: a lock would be held by a pooled connection for the whole AWS call, and
    /// a row's deadline frees a killed replica's lease by itself, on both backends.
    ///
    /// # Errors
    /// Database errors.
    pub async fn try_ecr_lease(
        &self,
        key: &str,
        holder: &str,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO ecr_token_leases (token_key, holder, until) VALUES ($1, $2, $3) \
             ON CONFLICT (token_key) DO UPDATE SET holder = excluded.holder, until = excluded.until \
             WHERE ecr_token_leases.until <= $4 OR ecr_token_leases.holder = excluded.holder",
        )
        .bind(key)
        .bind(holder)
        .bind(until.unix())
        .bind(now.unix())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A keyed fingerprint of `secret` (HMAC-SHA256 under a key derived from the sealing key,
    /// 16 bytes hex): tells two secrets apart without revealing either, even to someone with
    /// the database.
    pub fn fingerprint(&self, secret: &[u8]) -> String {
        self.key.fingerprint(secret)
    }

    fn seal_pass(&self, record: &RegistryRecord, pass: &Secret) -> Vec<u8> {
        self.key.seal(
            pass.expose().as_bytes(),
            &registry_pass_context(record.account.as_str(), record.registry.as_str()),
        )
    }
}

const ACCOUNT_SELECT: &str =
    "SELECT name, email, account_type, state, created_at, last_updated FROM accounts";
const IMAGE_SELECT: &str = "SELECT account, image_digest, registry, repository, tag, media_type, \
     manifest_digest, platform, config_digest, image_created, layer_count, total_size, resolved_at, \
     created_at, last_updated FROM images";
const USER_SELECT: &str =
    "SELECT username, account, user_type, source, password_hash, created_at, last_updated FROM users";
const REGISTRY_SELECT: &str = "SELECT r.account, r.registry, r.registry_name, r.registry_user, \
     r.registry_type, r.registry_verify, r.created_at, r.last_updated, r.last_validated, r.token_key, \
     r.declared_in, r.declaration_error, \
     t.expires_at AS token_expires_at, t.last_renewed_at AS token_last_renewed_at, \
     t.last_error AS token_last_error, t.updated_at AS token_updated_at \
     FROM registries r LEFT JOIN ecr_tokens t ON t.token_key = r.token_key";

fn expect_one(rows: u64) -> Result<()> {
    if rows == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}

/// Values read back from the database are parsed again: a bad one is [`StoreError::Corrupt`].
pub(crate) fn parse_column<T: FromStr>(row: &AnyRow, column: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    let text: String = row.try_get(column)?;
    text.parse()
        .map_err(|e| StoreError::Corrupt(format!("column {column}: {e}")))
}

/// A nullable column parsed into its type.
pub(crate) fn optional_column<T: FromStr>(row: &AnyRow, column: &str) -> Result<Option<T>>
where
    T::Err: std::fmt::Display,
{
    let text: Option<String> = row.try_get(column)?;
    text.map(|t| {
        t.parse()
            .map_err(|e| StoreError::Corrupt(format!("column {column}: {e}")))
    })
    .transpose()
}

/// The file path of a `sqlite:` URL, if it names one.
/// Free space below which the SQLite database counts as full (readiness fails).
const MIN_FREE_BYTES: u64 = 1024 * 1024;

/// Creates the SQLite file 0600 when it does not exist (SQLite gives its `-wal` and `-shm` files
/// the database file's mode), and takes group and other access away from existing ones: they hold
/// password hashes.
fn private_files(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let err = |e: std::io::Error| {
            StoreError::Unwritable(format!(
                "cannot create the database file {}: {e}: check that data_dir is writable by this user",
                path.display()
            ))
        };
        if !path.exists() {
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)
                .map_err(err)?;
        }
        for suffix in ["", "-wal", "-shm"] {
            let file = PathBuf::from(format!("{}{suffix}", path.display()));
            if let Ok(meta) = std::fs::metadata(&file) {
                if meta.permissions().mode() & 0o077 != 0 {
                    let _ = std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600));
                }
            }
        }
    }
    Ok(())
}

/// (device, inode) of a file.
fn file_identity(path: &Path) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
    }
    #[cfg(not(unix))]
    {
        std::fs::metadata(path).ok().map(|_| (0, 0))
    }
}

/// Storage faults by database error code: SQLite's (extended) result codes, PostgreSQL's
/// SQLSTATE.
fn storage_fault(code: &str) -> Option<fn(&str) -> StoreError> {
    if let Ok(sqlite) = code.parse::<i32>() {
        return match sqlite & 0xff {
            13 => Some(|_| StoreError::Full), // SQLITE_FULL
            // SQLITE_READONLY (also _DBMOVED: the file was removed), SQLITE_IOERR, SQLITE_CANTOPEN
            8 | 10 | 14 => Some(|m| StoreError::Unwritable(m.to_owned())),
            _ => None,
        };
    }
    match code {
        "53100" => Some(|_| StoreError::Full), // disk_full
        "25006" | "58030" => Some(|m| StoreError::Unwritable(m.to_owned())), // read_only_sql_transaction, io_error
        _ => None,
    }
}

fn sqlite_path(url: &str) -> Option<&Path> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    (!path.is_empty() && path != ":memory:").then(|| Path::new(path))
}

/// A database URL with any password replaced, for error messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{}:***{}", &url[..scheme_end + 3], user, &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_database_passwords() {
        assert_eq!(redact_url("postgres://u:pw@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact_url("sqlite:///x.db"), "sqlite:///x.db");
    }

    #[test]
    fn sqlite_paths() {
        assert_eq!(
            sqlite_path("sqlite:///a/b.db?mode=rwc"),
            Some(Path::new("/a/b.db"))
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
    }
}
