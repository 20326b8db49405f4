//! Test harness of the peer suite: the real peers started by `scripts/peers.sh` (read from
//! `target/peers/env` variables), a fresh regkeep per test on SQLite or PostgreSQL, and log
//! capture so every test can check that no secret was logged.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rand::RngCore;
use regkeep_domain::Secret;
use regkeep_server::settings::Settings;
use regkeep_server::Application;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use sqlx::Connection;

#[path = "../support/capture.rs"]
mod capture;
pub use capture::{assert_no_secrets, capture_logs, captured_logs};

/// The peers `scripts/peers.sh start` runs, as its env file describes them.
#[derive(Clone, Debug)]
pub struct Peers {
    pub http: String,
    pub tls: String,
    pub bearer: String,
    pub anon: String,
    pub user: String,
    pub pass: String,
    pub ca: PathBuf,
    pub postgres_url: String,
    pub anchore_cli: PathBuf,
}

/// Whether the peers' environment is here. Without it (plain `cargo test`) every peer test is
/// skipped, with one notice on the terminal; with `REGKEEP_TEST_REQUIRE_PEERS=1` (set by
/// `scripts/peers.sh env`, so by `scripts/test.sh`) a missing peer fails the test instead.
pub fn peers_present() -> bool {
    static PRESENT: OnceLock<bool> = OnceLock::new();
    *PRESENT.get_or_init(|| {
        let present = std::env::var_os("REGKEEP_TEST_POSTGRES_URL").is_some();
        let required = std::env::var("REGKEEP_TEST_REQUIRE_PEERS").is_ok_and(|v| v == "1");
        assert!(
            present || !required,
            "REGKEEP_TEST_REQUIRE_PEERS=1 but the peers' environment is missing: run the tests with `scripts/test.sh`, or `source target/peers/env` after `scripts/peers.sh start`"
        );
        if !present {
            // Straight to the terminal: the test harness captures print! output.
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "peer tests skipped: no peers' environment (REGKEEP_TEST_POSTGRES_URL unset); `scripts/test.sh` runs them"
            );
        }
        present
    })
}

/// The first line of every peer test: returns (passing, with a notice) when the peers are not
/// there, unless they are required.
#[macro_export]
macro_rules! skip_without_peers {
    () => {
        if !$crate::common::peers_present() {
            return;
        }
    };
}

pub fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with `scripts/test.sh` (it starts the peers), or `source target/peers/env` after `scripts/peers.sh start`")
    })
}

pub fn peers() -> Peers {
    Peers {
        http: var("REGKEEP_TEST_REGISTRY_HTTP"),
        tls: var("REGKEEP_TEST_REGISTRY_TLS"),
        bearer: var("REGKEEP_TEST_REGISTRY_BEARER"),
        anon: var("REGKEEP_TEST_REGISTRY_ANON"),
        user: var("REGKEEP_TEST_REGISTRY_USER"),
        pass: var("REGKEEP_TEST_REGISTRY_PASS"),
        ca: PathBuf::from(var("REGKEEP_TEST_CA")),
        postgres_url: var("REGKEEP_TEST_POSTGRES_URL"),
        anchore_cli: PathBuf::from(var("REGKEEP_TEST_ANCHORE_CLI")),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each listed test once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $crate::skip_without_peers!();
                super::$name($crate::common::Backend::Sqlite).await
            }) *
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $crate::skip_without_peers!();
                super::$name($crate::common::Backend::Postgres).await
            }) *
        }
    };
}

pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// A database for one test: a SQLite file in the data directory, or a fresh PostgreSQL
/// database dropped by [`TestDatabase::drop_database`].
#[derive(Clone, Debug)]
pub struct TestDatabase {
    pub url: Option<String>,
    admin_url: Option<String>,
    name: Option<String>,
}

impl TestDatabase {
    /// SQLite: the file lives in the data directory.
    pub fn sqlite() -> TestDatabase {
        TestDatabase {
            url: None,
            admin_url: None,
            name: None,
        }
    }

    pub async fn create(backend: Backend) -> TestDatabase {
        match backend {
            Backend::Sqlite => TestDatabase::sqlite(),
            Backend::Postgres => {
                let admin_url = peers().postgres_url;
                let name = format!("regkeep_test_{}", random_hex(6));
                let mut conn = sqlx::PgConnection::connect(&admin_url)
                    .await
                    .expect("connect to the test PostgreSQL");
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .expect("create database");
                let url = match admin_url.rsplit_once('/') {
                    Some((base, _)) => format!("{base}/{name}"),
                    None => panic!("REGKEEP_TEST_POSTGRES_URL has no database part"),
                };
                TestDatabase {
                    url: Some(url),
                    admin_url: Some(admin_url),
                    name: Some(name),
                }
            }
        }
    }

    pub async fn drop_database(&self) {
        if let (Some(admin), Some(name)) = (&self.admin_url, &self.name) {
            if let Ok(mut conn) = sqlx::PgConnection::connect(admin).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await;
            }
        }
    }
}

/// A regkeep served in-process on a random port.
pub struct TestApp {
    pub addr: SocketAddr,
    /// Where `/metrics` is served, when `metrics_listen` was set.
    pub metrics_addr: Option<SocketAddr>,
    pub base: String,
    pub admin_pass: String,
    pub data_dir: Arc<tempfile::TempDir>,
    pub database: TestDatabase,
    pub settings: Settings,
    pub http: reqwest::Client,
    /// The server's use-cases (for their counters).
    pub engine: regkeep_engine::Engine,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// Settings for a test app: loopback port 0, its own data directory, a random admin password.
pub fn test_settings(data_dir: &Path, database: &TestDatabase, admin_pass: &str) -> Settings {
    Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data_dir.to_owned(),
        database_url: database.url.clone(),
        default_admin_password: Some(Secret::new(admin_pass)),
        registry: regkeep_server::settings::RegistrySettings {
            connect_timeout_secs: 5,
            request_timeout_secs: 10,
        },
        // The peers live on 127.0.0.x.
        outbound: regkeep_server::settings::OutboundConfig {
            allow_loopback: true,
            ..Default::default()
        },
        // Deleted accounts are removed when a test asks (`engine.purge_deleted_accounts`), so it
        // can look at the `deleting` state first; one test runs the background pass.
        account_purge_seconds: 3600,
        ..Settings::default()
    }
}

impl TestApp {
    /// A fresh regkeep on `backend` with default settings.
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with(backend, |_| {}).await
    }

    /// A fresh regkeep on `backend`, with settings adjusted by `adjust`.
    pub async fn spawn_with(backend: Backend, adjust: impl FnOnce(&mut Settings)) -> TestApp {
        capture_logs();
        let data_dir = Arc::new(tempfile::tempdir().unwrap());
        let database = TestDatabase::create(backend).await;
        let admin_pass = format!("admin-{}", random_hex(8));
        let mut settings = test_settings(data_dir.path(), &database, &admin_pass);
        adjust(&mut settings);
        Self::start(settings, data_dir, database, admin_pass).await
    }

    async fn start(
        settings: Settings,
        data_dir: Arc<tempfile::TempDir>,
        database: TestDatabase,
        admin_pass: String,
    ) -> TestApp {
        let app = Application::build(&settings).await.expect("regkeep starts");
        let addr = app.local_addr().unwrap();
        let metrics_addr = app.metrics_addr();
        let engine = app.engine().clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(app.run_until_stopped(async move {
            let _ = rx.await;
        }));
        TestApp {
            addr,
            metrics_addr,
            base: format!("http://{addr}"),
            admin_pass,
            data_dir,
            database,
            settings,
            http: reqwest::Client::new(),
            engine,
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(handle) = self.handle.take() {
            handle.await.unwrap().unwrap();
        }
    }

    /// Stops and starts again on the same data directory and database.
    pub async fn restart(mut self) -> TestApp {
        self.stop().await;
        let mut settings = self.settings.clone();
        settings.listen = "127.0.0.1:0".parse().unwrap();
        Self::start(
            settings,
            self.data_dir.clone(),
            self.database.clone(),
            self.admin_pass.clone(),
        )
        .await
    }

    /// A second replica: another server on the same database and sealing key, its own data
    /// directory, settings adjusted by `adjust`. Stop it before `finish`ing this one.
    pub async fn replica(&self, adjust: impl FnOnce(&mut Settings)) -> TestApp {
        let data_dir = Arc::new(tempfile::tempdir().unwrap());
        let mut settings = test_settings(data_dir.path(), &self.database, &self.admin_pass);
        settings.secret_key_file = Some(self.data_dir.path().join("secret.key"));
        adjust(&mut settings);
        Self::start(
            settings,
            data_dir,
            self.database.clone(),
            self.admin_pass.clone(),
        )
        .await
    }

    /// Stops the server and drops its PostgreSQL database.
    pub async fn finish(mut self) {
        self.stop().await;
        self.database.drop_database().await;
    }

    /// A request as admin (or `auth` = (user, pass)), with an optional `x-anchore-account`.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        auth: Option<(&str, &str)>,
        account: Option<&str>,
    ) -> (StatusCode, Value) {
        let (user, pass) = auth.unwrap_or(("admin", &self.admin_pass));
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .basic_auth(user, Some(pass));
        if let Some(account) = account {
            request = request.header("x-anchore-account", account);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request reaches regkeep");
        let status = response.status();
        let text = response.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.request(Method::GET, path, None, None, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.request(Method::POST, path, Some(body), None, None)
            .await
    }

    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.request(Method::PUT, path, Some(body), None, None)
            .await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.request(Method::DELETE, path, None, None, None).await
    }

    /// Creates account `account` with user `user` (a non-admin), as admin.
    pub async fn add_account_with_user(&self, account: &str, user: &str, pass: &str) {
        let (status, body) = self
            .post(
                "/v1/accounts",
                serde_json::json!({"name": account, "email": format!("{account}@example.com")}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, body) = self
            .post(
                &format!("/v1/accounts/{account}/users"),
                serde_json::json!({"username": user, "password": pass}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    /// Registers a plain-HTTP registry (TLS verification off, so regkeep falls back to HTTP) as
    /// admin, asserting it validated.
    pub async fn add_plain_http_registry(&self, registry: &str, user: &str, pass: &str) {
        let mut body = registry_body(registry, user, pass);
        body["registry_verify"] = false.into();
        let (status, answer) = self.post("/v1/registries", body).await;
        assert_eq!(status, StatusCode::OK, "adding {registry}: {answer}");
    }
}

/// `{registry, registry_user, registry_pass, ...}` for a registry request.
pub fn registry_body(registry: &str, user: &str, pass: &str) -> Value {
    serde_json::json!({"registry": registry, "registry_user": user, "registry_pass": pass})
}

/// Percent-encodes a registry for a path, as anchore-cli does.
pub fn enc(registry: &str) -> String {
    registry
        .replace('%', "%25")
        .replace('/', "%2F")
        .replace(':', "%3A")
        .replace('*', "%2A")
}

/// Pushes a blob with the distribution API (monolithic upload) and gives its digest and size.
pub async fn push_blob(
    http: &reqwest::Client,
    base: &str,
    repo: &str,
    auth: (&str, &str),
    bytes: &[u8],
) -> (String, usize) {
    let digest = sha256(bytes);
    let start = http
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .basic_auth(auth.0, Some(auth.1))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), StatusCode::ACCEPTED);
    let location = start.headers()["location"].to_str().unwrap().to_owned();
    let url = if location.starts_with("http") {
        location
    } else {
        format!("{base}{location}")
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    let put = http
        .put(format!("{url}{sep}digest={digest}"))
        .basic_auth(auth.0, Some(auth.1))
        .header("content-type", "application/octet-stream")
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(
        put.status(),
        StatusCode::CREATED,
        "{}",
        put.text().await.unwrap_or_default()
    );
    (digest, bytes.len())
}

pub async fn push_manifest(
    http: &reqwest::Client,
    base: &str,
    repo: &str,
    auth: (&str, &str),
    reference: &str,
    media_type: &str,
    body: &serde_json::Value,
) -> (String, usize) {
    let bytes = serde_json::to_vec(body).unwrap();
    let digest = sha256(&bytes);
    let put = http
        .put(format!("{base}/v2/{repo}/manifests/{reference}"))
        .basic_auth(auth.0, Some(auth.1))
        .header("content-type", media_type)
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        put.status(),
        StatusCode::CREATED,
        "{}",
        put.text().await.unwrap_or_default()
    );
    (digest, bytes.len())
}

/// `sha256:<hex>` of `bytes`, computed here (independently of regkeep's own code).
pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{:x}", sha2::Sha256::digest(bytes))
}

/// The ECR-API fixture (`fixtures/ecr_api.py`): its control API and call counter. Tests using it
/// are named `ecr_fixture_*` and run one at a time (nextest test group `ecr-fixture`).
pub struct EcrFixture {
    pub url: String,
    http: reqwest::Client,
}

impl EcrFixture {
    /// Points the AWS SDK's ECR endpoint at the fixture and resets it (defaults, zero calls).
    pub async fn reset() -> EcrFixture {
        let url = std::env::var("REGKEEP_TEST_ECR_FIXTURE_URL")
            .expect("REGKEEP_TEST_ECR_FIXTURE_URL is not set: run the tests with scripts/test.sh");
        // The SDK reads its endpoint from the environment when it loads.
        std::env::set_var("AWS_ENDPOINT_URL_ECR", &url);
        let fixture = EcrFixture {
            url,
            http: reqwest::Client::new(),
        };
        let r = fixture
            .http
            .post(format!("{}/_reset", fixture.url))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        fixture
    }

    /// Sets fixture behaviour (`lifetime_seconds`, `expires_at`, `token`, `fail`, ...).
    pub async fn control(&self, body: serde_json::Value) {
        let r = self
            .http
            .post(format!("{}/_control", self.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "fixture control {body}");
    }

    /// The next tokens expire `seconds` after the test clock's now (the fixture's own clock is
    /// the real one, which the test clock runs ahead of).
    pub async fn lifetime_from(&self, clock: &regkeep_domain::ManualClock, seconds: i64) {
        use regkeep_domain::Clock as _;
        self.control(serde_json::json!({"expires_at": clock.now().unix() + seconds}))
            .await;
    }

    /// GetAuthorizationToken calls answered since the reset.
    pub async fn calls(&self) -> u64 {
        let v: serde_json::Value = self
            .http
            .get(format!("{}/_calls", self.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["GetAuthorizationToken"].as_u64().unwrap()
    }
}

/// Tags `repo:from`'s manifest in the plain-HTTP `registry`, byte for byte, as `repo:to` too
/// (the same digest).
pub async fn copy_tag(registry: &str, repo: &str, from: &str, to: &str) {
    let p = peers();
    let http = reqwest::Client::new();
    let got = http
        .get(format!("http://{registry}/v2/{repo}/manifests/{from}"))
        .basic_auth(&p.user, Some(&p.pass))
        .header(
            "accept",
            "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, \
             application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), StatusCode::OK);
    let media_type = got.headers()["content-type"].to_str().unwrap().to_owned();
    let bytes = got.bytes().await.unwrap();
    let put = http
        .put(format!("http://{registry}/v2/{repo}/manifests/{to}"))
        .basic_auth(&p.user, Some(&p.pass))
        .header("content-type", media_type)
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::CREATED);
}
