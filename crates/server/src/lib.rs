//! regkeep's HTTP service.
//!
//! Layout: [`settings`] (configuration), [`telemetry`] (logging), [`auth`] (HTTP Basic and the
//! verified-credentials cache), [`body`] (JSON bodies), [`error`] (error answers), [`routes`]
//! (the API), and this module: [`Application`], which opens the store, seeds the admin, binds,
//! and serves until a shutdown signal.

pub mod audit;
pub mod auth;
pub mod body;
pub mod error;
pub mod listener;
pub mod metrics;
pub mod openapi;
pub mod registries_file;
pub mod reload;
pub mod routes;
pub mod settings;
pub mod telemetry;
pub mod tls;

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rand::RngCore;
use regkeep_domain::{Clock, Secret, SystemClock};
use regkeep_engine::{Engine, EngineConfig};
use regkeep_registry::{RegistryClient, Timeouts, TlsSettings};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::trace::TraceLayer;
use tracing::info;

use settings::Settings;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    /// Proxies whose `X-Forwarded-For` names the client (`trusted_proxies`).
    pub trusted_proxies: Arc<Vec<regkeep_domain::outbound::IpNetwork>>,
    pub max_body_bytes: usize,
    /// How long a request body may take to arrive.
    pub body_timeout: Duration,
    /// Where a generated admin password is kept (removed once the admin changes it).
    pub admin_password_file: std::path::PathBuf,
    /// The last readiness probe and when it ran: anyone may ask `/ready`, so the probe (a write)
    /// runs at most once a second, one at a time.
    pub readiness: Arc<tokio::sync::Mutex<Option<(std::time::Instant, bool)>>>,
    /// This server's own URL and host, as `GET /v1/system` lists them.
    pub base_url: Arc<str>,
    pub host_id: Arc<str>,
    /// The API's request counts and latencies: recorded only when `metrics_listen` serves them
    /// (the recording costs about a tenth of the API's throughput, bench/api.sh).
    pub http_metrics: Option<metrics::HttpMetrics>,
}

/// A bound, ready server.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    /// Where the admin password generated on this start was kept, if one was.
    pub generated_admin_password: Option<std::path::PathBuf>,
    /// How often the tag watcher looks for due polls.
    watch_tick: Duration,
    /// How often deleted accounts are removed.
    account_purge: Duration,
    /// Bounds on inbound connections.
    connections: listener::ConnectionLimits,
    /// The listener's certificate, reloaded on change or SIGHUP (when TLS is on).
    tls_reloader: Option<Arc<tls::ReloadingCert>>,
    /// The registries file, applied in the background (when `registries_file` is set).
    registries_file: Option<Arc<registries_file::RegistriesFile>>,
    /// `metrics_listen`, bound: `/metrics` for Prometheus (off unless configured).
    metrics_listener: Option<TcpListener>,
}

impl Application {
    /// Opens the store (migrating it), settles the key, seeds the admin account, and binds.
    ///
    /// # Errors
    /// Any start-up problem, with what to fix.
    pub async fn build(settings: &Settings) -> anyhow::Result<Application> {
        Self::build_with_clock(settings, Arc::new(SystemClock)).await
    }

    /// As [`Application::build`], with the clock given (tests).
    ///
    /// # Errors
    /// Any start-up problem.
    pub async fn build_with_clock(
        settings: &Settings,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Application> {
        let timeout = Duration::from_secs(settings.registry.request_timeout_secs);
        let mut ecr = regkeep_ecr::EcrClient::new(timeout);
        // The CA bundle trusted for registries is trusted for AWS too (ECR, STS, credential
        // sources): a TLS-inspecting proxy or a private endpoint is signed by the same private CA.
        if let Some(path) = settings.tls.ca_bundle.as_deref() {
            let pem = std::fs::read(path)
                .with_context(|| format!("cannot read tls.ca_bundle {}", path.display()))?;
            ecr = ecr
                .with_ca_bundle(&pem)
                .with_context(|| format!("cannot use tls.ca_bundle {} for AWS", path.display()))?;
        }
        Self::build_with(settings, clock, Arc::new(ecr)).await
    }

    /// As [`Application::build`], with the clock and what mints ECR tokens given (the hermetic
    /// tests use a scripted minter instead of AWS).
    ///
    /// # Errors
    /// Any start-up problem.
    pub async fn build_with(
        settings: &Settings,
        clock: Arc<dyn Clock>,
        ecr_minter: Arc<dyn regkeep_ecr::MintEcrTokens>,
    ) -> anyhow::Result<Application> {
        create_private_dir(&settings.data_dir)
            .with_context(|| format!("cannot create data_dir {}", settings.data_dir.display()))?;
        check_writable_dir(&settings.data_dir)?;
        let store = regkeep_engine::open_store(
            &settings.database_url(),
            settings.secret_key.as_ref(),
            settings.secret_key_file(),
        )
        .await?;
        let tls = TlsSettings::new(
            settings.tls.ca_bundle.as_deref(),
            Some(settings.certs_dir()),
        )
        .context("cannot load the TLS settings (tls.ca_bundle)")?;
        let timeouts = Timeouts {
            connect: Duration::from_secs(settings.registry.connect_timeout_secs),
            total: Duration::from_secs(settings.registry.request_timeout_secs),
        };
        let engine = Engine::new(
            store,
            Arc::new(RegistryClient::new(timeouts, tls, outbound(settings))),
            ecr_minter,
            clock,
            EngineConfig {
                allow_awsecr_iam_auto: settings.allow_awsecr_iam_auto,
                registry_cache_ttl: Duration::from_secs(settings.registry_cache_seconds),
                ecr: regkeep_engine::LifecycleSettings::default(),
                watch: regkeep_engine::WatchSettings {
                    interval: Duration::from_secs(settings.watch.interval_seconds.max(1)),
                    concurrency: settings.watch.concurrency.max(1),
                    registry_requests_per_second: settings.watch.registry_requests_per_second,
                    event_retention: Duration::from_secs(
                        settings
                            .watch
                            .event_retention_days
                            .saturating_mul(24 * 3600),
                    ),
                    ..regkeep_engine::WatchSettings::default()
                },
                login_cache_ttl: Duration::from_secs(settings.auth_cache_seconds),
                login_limits: settings.throttle.limits(),
                quotas: regkeep_engine::Quotas {
                    registries: settings.quotas.registries_per_account,
                    subscriptions: settings.quotas.subscriptions_per_account,
                    images: settings.quotas.images_per_account,
                    users: settings.quotas.users_per_account,
                    api_keys: settings.quotas.api_keys_per_account,
                },
                handout_static_passwords: settings.handout.static_passwords,
                handout_host_identity_tokens: settings.handout.host_identity_tokens,
                min_password_length: settings.min_password_length,
            },
        );
        if let Some(password) = &settings.default_admin_password {
            if password.expose().chars().count() < settings.min_password_length {
                tracing::warn!(
                    min_password_length = settings.min_password_length,
                    "default_admin_password is shorter than min_password_length: it seeds the admin anyway (once); set a longer one"
                );
            }
        }
        let tls = match (&settings.server_tls.cert_file, &settings.server_tls.key_file) {
            (Some(cert), Some(key)) => Some(tls::ReloadingCert::server_config(cert, key)?),
            (None, None) => {
                if !settings.listen.ip().is_loopback() {
                    tracing::warn!(
                        listen = %settings.listen,
                        "serving plain HTTP on a non-loopback address: passwords and registry credentials cross the network in clear; set server_tls.cert_file and server_tls.key_file, or listen on loopback behind a TLS proxy"
                    );
                }
                None
            }
            _ => anyhow::bail!(
                "server_tls needs both cert_file and key_file (REGKEEP_SERVER_TLS__CERT_FILE, REGKEEP_SERVER_TLS__KEY_FILE), or neither"
            ),
        };
        let generated_admin_password = seed_admin(&engine, settings).await?;
        // Accounts deleted before a restart are removed before the first request is served.
        if let Err(e) = engine.purge_deleted_accounts().await {
            tracing::warn!(error = %e, "removing deleted accounts failed; retrying in the background");
        }
        let registries_file = match &settings.registries_file {
            Some(path) => Some(Arc::new(registries_file::RegistriesFile::new(
                path.clone(),
                engine.clone(),
            ))),
            // One process (SQLite): no file any more means the entries it declared are the API's
            // again. With replicas (PostgreSQL) one replica without the setting (a canary, a
            // misconfigured one) must not take the others' file away: nothing changes there.
            None if engine.database().backend_name() == "sqlite" => {
                if let Err(e) = engine.registries().undeclare_all().await {
                    tracing::warn!(error = %e, "could not hand the registries a file declared to the API");
                }
                None
            }
            None => None,
        };
        let listener = TcpListener::bind(settings.listen).await.with_context(|| {
            format!(
                "cannot listen on {} (set `listen` / REGKEEP_LISTEN)",
                settings.listen
            )
        })?;
        let state = AppState {
            engine,
            trusted_proxies: Arc::new(settings.trusted_proxies.clone()),
            body_timeout: Duration::from_secs(settings.server.body_timeout_secs.max(1)),
            admin_password_file: settings.admin_password_file(),
            readiness: Arc::default(),
            max_body_bytes: settings.max_body_bytes,
            base_url: format!(
                "{}://{}",
                if tls.is_some() { "https" } else { "http" },
                listener.local_addr().unwrap_or(settings.listen)
            )
            .into(),
            host_id: host_name().into(),
            http_metrics: settings
                .metrics_listen
                .map(|_| metrics::HttpMetrics::default()),
        };
        let metrics_listener = match settings.metrics_listen {
            Some(address) => Some(TcpListener::bind(address).await.with_context(|| {
                format!(
                    "cannot listen for metrics on {address} (metrics_listen): is the port taken?"
                )
            })?),
            None => None,
        };
        // Due polls are looked for twice per interval (at most every 15 s, at least every 1 s),
        // so a tag is polled within 1.5 intervals of its last poll.
        let watch_tick = Duration::from_secs(settings.watch.interval_seconds / 2)
            .clamp(Duration::from_secs(1), Duration::from_secs(15));
        Ok(Application {
            listener,
            metrics_listener,
            state,
            generated_admin_password,
            watch_tick,
            account_purge: Duration::from_secs(settings.account_purge_seconds.max(1)),
            connections: listener::ConnectionLimits {
                max_connections: settings.server.max_connections.max(1),
                header_timeout: Duration::from_secs(settings.server.header_timeout_secs.max(1)),
                idle_timeout: Duration::from_secs(settings.server.idle_timeout_secs.max(1)),
                tls: tls
                    .as_ref()
                    .map(|(config, _)| tokio_rustls::TlsAcceptor::from(config.clone())),
            },
            tls_reloader: tls.map(|(_, reloader)| reloader),
            registries_file,
        })
    }

    /// The use-cases this server serves (tests and benchmarks look at their counters).
    pub fn engine(&self) -> &Engine {
        &self.state.engine
    }

    /// The address actually bound (port 0 in tests becomes a real port).
    ///
    /// # Errors
    /// When the socket has no local address.
    /// Where `/metrics` is served, when `metrics_listen` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests and closes the store.
    ///
    /// # Errors
    /// Serving errors.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let engine = self.state.engine.clone();
        // Background work: ECR token renewal and tag watching. Stopped (and awaited) after the
        // HTTP server.
        let cancel = CancellationToken::new();
        let tasks = TaskTracker::new();
        tasks.spawn(
            self.state
                .engine
                .ecr_tokens()
                .clone()
                .run_until_stopped(cancel.clone()),
        );
        let watcher = self.state.engine.watch().clone();
        let (tick, stop) = (self.watch_tick, cancel.clone());
        tasks.spawn(async move { watcher.run_watch_until_stopped(tick, stop).await });
        let listener = self.state.engine.clone();
        let stop = cancel.clone();
        tasks.spawn(async move { listener.run_change_listener_until_stopped(stop).await });
        let purger = self.state.engine.clone();
        let (period, stop) = (self.account_purge, cancel.clone());
        tasks.spawn(async move { purger.run_account_purge_until_stopped(period, stop).await });
        if let Some(reloader) = self.tls_reloader.clone() {
            tasks.spawn(reloader.watch_until_stopped(cancel.clone()));
        }
        if let Some(file) = self.registries_file.clone() {
            tasks.spawn(file.watch_until_stopped(cancel.clone()));
        }
        if let Some(metrics_listener) = self.metrics_listener {
            let exposition = metrics::Exposition {
                registry: Arc::new(metrics::registry(
                    self.state.engine.metrics(),
                    self.state.http_metrics.as_ref(),
                )),
                engine: self.state.engine.clone(),
            };
            let app = axum::Router::new()
                .route("/metrics", axum::routing::get(metrics::expose))
                .with_state(exposition);
            let stop = cancel.clone();
            info!(listen = %metrics_listener.local_addr()?, "serving metrics at /metrics");
            tasks.spawn(async move {
                if let Err(e) = axum::serve(metrics_listener, app)
                    .with_graceful_shutdown(stop.cancelled_owned())
                    .await
                {
                    tracing::warn!(error = %e, "the metrics listener stopped");
                }
            });
        }
        tasks.close();
        let app = routes::router(self.state).layer(TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<_>| {
                // Method and path only: never headers (Authorization) or bodies (passwords).
                tracing::info_span!("http", method = %request.method(), path = %request.uri().path())
            }));
        info!(
            listen = %self.listener.local_addr()?,
            tls = self.connections.tls.is_some(),
            "regkeep is serving"
        );
        listener::serve(self.listener, app, self.connections, shutdown)
            .await
            .context("the HTTP server failed")?;
        cancel.cancel();
        tasks.wait().await;
        engine.database().close().await;
        info!("regkeep stopped");
        Ok(())
    }
}

/// Creates the admin once in the database's life. The password comes from configuration, or
/// from a kept file, or is generated and kept (0600) in `data_dir/admin_password`; the log says
/// where, never the password. Answers the file when one was generated.
async fn seed_admin(
    engine: &Engine,
    settings: &Settings,
) -> anyhow::Result<Option<std::path::PathBuf>> {
    if !engine.accounts().needs_admin_seed().await? {
        return Ok(None);
    }
    let file = settings.admin_password_file();
    let (password, generated) = match &settings.default_admin_password {
        Some(p) => (p.clone(), false),
        None if file.exists() => {
            let text = std::fs::read_to_string(&file).with_context(|| {
                format!("cannot read the admin password file {}", file.display())
            })?;
            (Secret::new(text.trim_end_matches(['\n', '\r'])), false)
        }
        None => {
            let mut bytes = [0u8; 18];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            use base64::Engine as _;
            (
                Secret::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)),
                true,
            )
        }
    };
    let created = engine.accounts().bootstrap_admin(&password).await?;
    if created && generated {
        write_private(&file, password.expose()).with_context(|| {
            format!(
                "cannot keep the generated admin password in {}",
                file.display()
            )
        })?;
        info!(
            file = %file.display(),
            "created user `admin` with a generated password, kept (mode 0600) in this file; it is removed once the admin changes the password (or set default_admin_password to choose one)"
        );
        return Ok(Some(file));
    }
    Ok(None)
}

/// This machine's host name (`GET /v1/system` lists it as Anchore lists a service's host id).
fn host_name() -> String {
    let name = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    if name.is_empty() {
        "regkeep".into()
    } else {
        name
    }
}

/// Creates `dir` (mode 0700: it holds the database, the key and the admin password) when it
/// does not exist; an existing folder keeps its mode.
fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    if dir.exists() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Fails at once, naming the folder and the cause, when `dir` cannot be written (read-only, owned
/// by another user): otherwise the database would fail later with a pool timeout.
fn check_writable_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    let probe = dir.join(".regkeep-write-check");
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&probe)
        .and_then(|mut f| f.write_all(b"ok"));
    let _ = std::fs::remove_file(&probe);
    written.map_err(|e| {
        anyhow::anyhow!(
            "data_dir {} is not writable by this user ({e}): give the user running regkeep write permission on it (chown/chmod), or set data_dir / REGKEEP_DATA_DIR to a writable folder",
            dir.display()
        )
    })
}

/// Writes a new file readable only by its owner.
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

/// Completes on SIGINT or SIGTERM.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    // The handlers are installed now, when this is called (before serving starts), not when the
    // future is first polled: a SIGINT or SIGTERM that arrives as the server comes up is a clean
    // stop, never the default action (the process killed).
    #[cfg(unix)]
    let (interrupt, terminate) = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::interrupt()).ok(),
            signal(SignalKind::terminate()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(interrupt) => {},
                () = wait(terminate) => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        info!("shutdown signal received; finishing in-flight requests");
    }
}

/// The outbound policy and bounds of `settings`, with regkeep's own listen address (never
/// connected to unless loopback is allowed).
fn outbound(settings: &Settings) -> regkeep_registry::Outbound {
    use regkeep_domain::outbound::{OutboundPolicy, OwnAddress};
    let listen = settings.listen.ip();
    let own_address = if listen.is_unspecified() {
        OwnAddress::Everywhere
    } else {
        OwnAddress::Specific(listen)
    };
    let config = &settings.outbound;
    regkeep_registry::Outbound {
        policy: OutboundPolicy {
            allow_loopback: config.allow_loopback,
            denied_networks: config.denied_networks.clone(),
            allowed_networks: config.allowed_networks.clone(),
            own_address,
        },
        max_manifest_bytes: config.max_manifest_bytes.max(1024),
        max_config_bytes: config.max_config_bytes.max(1024),
        max_concurrent_resolutions: config.max_concurrent_resolutions.max(1),
    }
}
