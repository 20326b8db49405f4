//! regkeep's use-cases: the rules that tie the domain to storage and to registries.
//!
//! Services, each owning one job and its state, composed in one place ([`Engine::new`]):
//! - [`Accounts`] ([`accounts`], [`logins`], [`passwords`]): accounts, users, who may act where,
//!   logins with their cache and throttles, the Argon2id pool;
//! - [`Registries`] ([`registries`], [`credentials`], [`ecr_tokens`]): registries and their cache,
//!   the credential serving a registry now, the ECR token lifecycle and its releases;
//! - [`Images`] ([`images`], [`content`]): resolving and recording images, pull-through content;
//! - [`TagWatch`] ([`tag_watch`]): subscriptions, the poller, events.
//!
//! Dependencies between them point one way: tag watching uses images, images use registries.
//! What spans services (removing deleted accounts: accounts, registries, tokens) is the
//! [`Engine`]'s. The server reaches a service through its accessor; none of this sees HTTP.

pub mod accounts;
pub mod api_keys;
pub mod content;
pub mod credentials;
pub mod ecr_tokens;
pub mod error;
pub mod heartbeat;
pub mod images;
pub mod logins;
pub mod metrics;
pub mod passwords;
pub mod registries;
mod registry_cache;
pub mod tag_watch;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

use std::sync::Arc;
use std::time::Duration;

use regkeep_domain::{AccountName, AccountState, AccountType, Clock, UserName};
use regkeep_ecr::MintEcrTokens;
use regkeep_registry::RegistryApi;
use tracing::info;

pub use accounts::Accounts;
pub use api_keys::{ApiKeyGrant, NewApiKey};
pub use ecr_tokens::{EcrTokens, LifecycleSettings};
pub use error::{
    EngineError, Entity, KeyState, Named, QuotaKind, Refusal, StateChange, ValidationError,
};
pub use images::Images;
pub use logins::LoginLimits;
pub use registries::Registries;
use regkeep_store::{
    AccountRepository, ApiKeyRepository, Database, EcrTokenRepository, ImageRepository,
    RegistryRepository, Store, StoreError, WatchRepository,
};
pub use tag_watch::TagWatch;
pub use tag_watch::{PollSummary, WatchSettings};

/// Settings the use-cases obey.
#[derive(Clone, Debug, Default)]
pub struct EngineConfig {
    /// Whether `awsecr` registries may use the host's own AWS identity (`awsauto`, `_iam_role`).
    /// Anchore's name and meaning; off by default.
    pub allow_awsecr_iam_auto: bool,
    /// Whether the credential handout gives out stored docker_v2 passwords (ECR tokens always):
    /// `handout.static_passwords`, off by default.
    pub handout_static_passwords: bool,
    /// Whether the handout gives out ECR tokens minted from the host's own AWS identity
    /// (`awsauto`, `_iam_role`): `handout.host_identity_tokens`, off by default.
    pub handout_host_identity_tokens: bool,
    /// How long a read registry record is reused before the database is asked again (writes
    /// through this process take effect at once; other replicas within this time). Zero: off.
    pub registry_cache_ttl: Duration,
    /// Tuning of the ECR token lifecycle.
    pub ecr: LifecycleSettings,
    /// How watched tags are polled.
    pub watch: WatchSettings,
    /// How long a verified password login is remembered (Argon2id is slow by design). Zero: never.
    pub login_cache_ttl: Duration,
    /// Throttling of failed logins.
    pub login_limits: LoginLimits,
    /// Most registries, subscriptions and image records one account may hold.
    pub quotas: Quotas,
    /// Fewest characters of a user password set through the API (`min_password_length`; never
    /// registry passwords). Zero: no minimum.
    pub min_password_length: usize,
}

/// Per-account limits (0: none), so one tenant cannot fill the disk for all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quotas {
    pub registries: u64,
    pub subscriptions: u64,
    /// Counted by tag (`image_detail` entries).
    pub images: u64,
    pub users: u64,
    /// Revoked keys included (they stay listed).
    pub api_keys: u64,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            registries: 1_000,
            subscriptions: 1_000,
            images: 10_000,
            users: 1_000,
            api_keys: 100,
        }
    }
}

/// Refuses a new row when `account` holds `limit` of `kind` already; `held` (the count) is only
/// asked when there is a limit. (Concurrent adds can pass the check together and go over by a
/// few; the bound is on disk use, not exact.)
///
/// # Errors
/// [`Refusal::Quota`]; storage errors.
pub(crate) async fn check_quota(
    limit: u64,
    kind: QuotaKind,
    account: &AccountName,
    held: impl std::future::Future<Output = Result<u64, StoreError>>,
) -> Result<(), EngineError> {
    if limit == 0 {
        return Ok(());
    }
    if held.await? >= limit {
        return Err(EngineError::Refused(Refusal::Quota {
            account: account.clone(),
            kind,
            limit,
        }));
    }
    Ok(())
}

/// The storage the services read and write: one repository per aggregate, and the database
/// itself (health, closing). [`Store`] is every one of them; the unit tests use in-memory
/// fakes ([`testing::MemoryRepositories`]).
#[derive(Clone)]
pub struct Repositories {
    pub database: Arc<dyn Database>,
    pub accounts: Arc<dyn AccountRepository>,
    pub api_keys: Arc<dyn ApiKeyRepository>,
    pub registries: Arc<dyn RegistryRepository>,
    pub images: Arc<dyn ImageRepository>,
    pub watch: Arc<dyn WatchRepository>,
    pub ecr_tokens: Arc<dyn EcrTokenRepository>,
}

impl From<Store> for Repositories {
    fn from(store: Store) -> Self {
        let store = Arc::new(store);
        Repositories {
            database: store.clone(),
            accounts: store.clone(),
            api_keys: store.clone(),
            registries: store.clone(),
            images: store.clone(),
            watch: store.clone(),
            ecr_tokens: store,
        }
    }
}

/// The use-cases, with what they need. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    database: Arc<dyn Database>,
    metrics: metrics::EngineMetrics,
    config: EngineConfig,
    /// Registries, their credentials and the ECR token lifecycle.
    registries: Arc<registries::Registries>,
    /// Images and pull-through content.
    images: Arc<images::Images>,
    /// Tag watching.
    watch: Arc<tag_watch::TagWatch>,
    /// Accounts, users and logins.
    accounts: Arc<accounts::Accounts>,
}

/// An authenticated user, and the account it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub user: UserName,
    pub account: AccountName,
    pub account_type: AccountType,
    /// The account's state when the login was checked (every state change ends remembered
    /// logins): only an enabled account's users are let in.
    pub account_state: regkeep_domain::AccountState,
    /// For a request authenticated by an API key: which key, and what it may do. `None`: a
    /// password login.
    pub api_key: Option<api_keys::ApiKeyGrant>,
}

impl Caller {
    /// Whether the caller acts with admin rights: a user of the admin account logged in with
    /// its password. An API key is never admin, whatever its account: it acts in its own
    /// account only, within its scopes.
    pub fn is_admin(&self) -> bool {
        self.account_type == AccountType::Admin && self.api_key.is_none()
    }
}

/// The database could not be opened (its URL shown with any password removed).
#[derive(Debug, thiserror::Error)]
#[error("cannot open the database {url}")]
pub struct OpenStoreError {
    url: String,
    #[source]
    source: StoreError,
}

/// Opens (creating and migrating) the database at `database_url`, its secrets sealed under
/// `secret_key` when one is configured, else under the key in `key_file` (made on first start):
/// the composition root's first step, so the server never handles storage itself.
///
/// # Errors
/// [`OpenStoreError`], whose source says what to fix.
pub async fn open_store(
    database_url: &str,
    secret_key: Option<&regkeep_domain::Secret>,
    key_file: std::path::PathBuf,
) -> Result<Store, OpenStoreError> {
    let key_source = match secret_key {
        Some(key) => regkeep_store::KeySource::Inline(key.clone()),
        None => regkeep_store::KeySource::File(key_file),
    };
    Store::open(database_url, &key_source)
        .await
        .map_err(|source| OpenStoreError {
            url: regkeep_store::redact_url(database_url),
            source,
        })
}

impl Engine {
    /// Composes the services over `repositories` (a [`Store`] is all of them).
    pub fn new(
        repositories: impl Into<Repositories>,
        registry_client: Arc<dyn RegistryApi>,
        ecr_client: Arc<dyn MintEcrTokens>,
        clock: Arc<dyn Clock>,
        config: EngineConfig,
    ) -> Self {
        let repositories: Repositories = repositories.into();
        let metrics = metrics::EngineMetrics::default();
        let registry_cache = Arc::new(registry_cache::RegistryCache::new(
            config.registry_cache_ttl,
        ));
        let logins = Arc::new(logins::Logins::new(
            config.login_cache_ttl,
            config.login_limits,
        ));
        let ecr_tokens = Arc::new(
            EcrTokens::new(
                ecr_client,
                repositories.ecr_tokens.clone(),
                clock.clone(),
                config.ecr.clone(),
            )
            .with_metrics(metrics.clone()),
        );
        let registries = Arc::new(registries::Registries {
            store: repositories.registries.clone(),
            registry_client: registry_client.clone(),
            clock: clock.clone(),
            allow_awsecr_iam_auto: config.allow_awsecr_iam_auto,
            handout_static_passwords: config.handout_static_passwords,
            handout_host_identity_tokens: config.handout_host_identity_tokens,
            quotas: config.quotas,
            registry_cache: registry_cache.clone(),
            ecr_tokens,
            database: repositories.database.clone(),
        });
        let images = Arc::new(images::Images {
            store: repositories.images.clone(),
            registry_client: registry_client.clone(),
            clock: clock.clone(),
            quotas: config.quotas,
            registries: registries.clone(),
        });
        let watch = Arc::new(tag_watch::TagWatch {
            store: repositories.watch.clone(),
            clock: clock.clone(),
            settings: config.watch.clone(),
            quotas: config.quotas,
            registry_client: registry_client.clone(),
            images: images.clone(),
            limiter: Arc::new(tag_watch::RegistryLimiter::new(
                config.watch.registry_requests_per_second,
            )),
            heartbeat: Arc::default(),
            metrics: metrics.clone(),
        });
        let accounts = Arc::new(accounts::Accounts {
            store: Arc::new(accounts::ForgetOnWrite {
                database: repositories.database.clone(),
                inner: repositories.accounts.clone(),
                logins: logins.clone(),
                registry_cache: registry_cache.clone(),
            }),
            api_keys: Arc::new(accounts::ForgetKeysOnRevoke {
                database: repositories.database.clone(),
                inner: repositories.api_keys.clone(),
                logins: logins.clone(),
            }),
            clock: clock.clone(),
            quotas: config.quotas,
            logins,
            hashers: passwords::PasswordHashers::per_core(),
            min_password_length: config.min_password_length,
        });
        Engine {
            metrics,
            database: repositories.database,
            config,
            registries,
            images,
            watch,
            accounts,
        }
    }

    /// Tag watching: subscriptions, the poller, events.
    pub fn watch(&self) -> &tag_watch::TagWatch {
        &self.watch
    }

    /// The ECR token lifecycle (its background task is the server's to run).
    pub fn ecr_tokens(&self) -> &Arc<EcrTokens> {
        self.registries.ecr_tokens()
    }

    /// Makes the registries declared in the registries file `file` what `entries` say
    /// (registries::declared): entries for accounts that do not exist, or are being deleted, are
    /// refused with a message that says so.
    ///
    /// # Errors
    /// Storage errors only.
    pub async fn apply_declared_registries(
        &self,
        file: &str,
        mut entries: Vec<registries::DeclaredEntry>,
    ) -> Result<registries::ReconcileReport, EngineError> {
        for entry in &mut entries {
            let Ok(account) = entry.account.parse::<AccountName>() else {
                continue;
            };
            let problem = match self.accounts.store.get_account(&account).await {
                Ok(record) if record.state == regkeep_domain::AccountState::Deleting => Some(format!(
                    "account {account} is being deleted: remove the entry or use another account"
                )),
                Ok(_) => None,
                Err(regkeep_store::StoreError::NotFound) => Some(format!(
                    "account {account} does not exist: create it first (regkeep account add {account})"
                )),
                Err(e) => return Err(e.into()),
            };
            if let Some(problem) = problem {
                entry.request = Err(problem);
            }
        }
        self.registries.reconcile_declared(file, entries).await
    }

    /// Registries and their credentials.
    pub fn registries(&self) -> &registries::Registries {
        &self.registries
    }

    /// Images and pull-through content.
    pub fn images(&self) -> &images::Images {
        &self.images
    }

    /// Accounts, users and logins.
    pub fn accounts(&self) -> &accounts::Accounts {
        &self.accounts
    }

    /// What the engine counts, for the server to expose.
    pub fn metrics(&self) -> &metrics::EngineMetrics {
        &self.metrics
    }

    /// Sets the gauges that describe now (each kept ECR token's remaining life): before a
    /// scrape.
    pub fn refresh_metrics(&self) {
        self.registries.ecr_tokens().refresh_gauges(&self.metrics);
    }

    /// The database itself: whether it answers and can be written, closing it.
    pub fn database(&self) -> &dyn Database {
        self.database.as_ref()
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }
}

/// Tells the other replicas about `change`; a failure is logged, never the write's failure (the
/// cache lifetimes still bound what they believe).
pub(crate) async fn announce(database: &dyn Database, change: regkeep_store::Change) {
    if let Err(e) = database.announce(change).await {
        tracing::warn!(error = %e, change = ?change, "telling the other replicas of a change failed; their caches expire by themselves");
    }
}

/// Keeping this replica's caches true to what the others write (PostgreSQL `LISTEN`): each
/// announced change forgets the matching cached entries; a lost connection forgets everything
/// (what was announced meanwhile is unknown) and listens again. On SQLite (one process) it
/// returns at once.
impl Engine {
    /// Forgets what `change` makes wrong.
    pub fn forget(&self, change: regkeep_store::Change) {
        use regkeep_store::Change;
        match change {
            Change::Logins => self.accounts.logins.invalidate(),
            Change::Keys => self.accounts.logins.forget_keys(),
            Change::Registries => self.registries.registry_cache.clear(),
        }
    }

    fn forget_everything(&self) {
        self.accounts.logins.invalidate();
        self.registries.registry_cache.clear();
    }

    /// Listens for changes until `stop`.
    pub async fn run_change_listener_until_stopped(
        &self,
        stop: tokio_util::sync::CancellationToken,
    ) {
        let backoff = regkeep_domain::Backoff {
            first: std::time::Duration::from_millis(200),
            max: std::time::Duration::from_secs(30),
        };
        let mut failures = 0u32;
        loop {
            let feed = tokio::select! {
                () = stop.cancelled() => return,
                feed = self.database.listen() => feed,
            };
            match feed {
                Ok(None) => return,
                Ok(Some(mut feed)) => {
                    // Whatever was announced before this connection listened is unknown.
                    self.forget_everything();
                    failures = 0;
                    loop {
                        let next = tokio::select! {
                            () = stop.cancelled() => return,
                            next = feed.next() => next,
                        };
                        match next {
                            Ok(Some(change)) => self.forget(change),
                            Ok(None) => {}
                            Err(e) => {
                                tracing::warn!(error = %e, "the change feed broke; forgetting every cached entry and listening again");
                                break;
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for other replicas' changes; retrying");
                }
            }
            self.forget_everything();
            let jitter =
                rand::Rng::gen_range(&mut rand::thread_rng(), regkeep_domain::backoff::JITTER);
            let wait = backoff.delay(failures, 1, jitter);
            failures = failures.saturating_add(1);
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// Removing deleted accounts spans services (accounts, registries and their ECR tokens): it is
/// the composition's job.
impl Engine {
    /// Removes every account marked `deleting`, with its users, registries (and their sealed
    /// secrets), image records, subscriptions and events; answers how many. The server runs it
    /// in the background.
    ///
    /// # Errors
    /// Storage errors (the accounts not yet removed stay marked and are tried again).
    pub async fn purge_deleted_accounts(&self) -> Result<usize, EngineError> {
        let mut purged = 0;
        for account in self.accounts.store.list_accounts().await? {
            if account.state != AccountState::Deleting {
                continue;
            }
            let token_keys: Vec<String> = self
                .registries
                .store
                .list_registries(&account.name)
                .await?
                .into_iter()
                .filter_map(|r| r.token_key)
                .collect();
            // Through the accounts' repository, which forgets cached logins and registries.
            match self.accounts.store.delete_account(&account.name).await {
                Ok(()) | Err(StoreError::NotFound) => {
                    purged += 1;
                    info!(account = %account.name, "deleted account with its users, registries and records");
                }
                Err(e) => return Err(e.into()),
            }
            for key in token_keys {
                self.registries.release_token(&key).await;
            }
        }
        Ok(purged)
    }

    /// Runs [`Engine::purge_deleted_accounts`] at once and then every `period`, until `stop`.
    pub async fn run_account_purge_until_stopped(
        &self,
        period: std::time::Duration,
        stop: tokio_util::sync::CancellationToken,
    ) {
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = interval.tick() => {
                    if let Err(e) = self.purge_deleted_accounts().await {
                        tracing::warn!(error = %e, "removing deleted accounts failed; retrying at the next pass");
                    }
                }
            }
        }
    }
}
