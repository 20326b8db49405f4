//! The real server on port 0 over SQLite in a temporary directory, with the scripted ECR minter
//! in place of AWS and a manual clock: what the hermetic tests run against.

use std::sync::Arc;

use regkeep_domain::{Clock, ManualClock, Secret, SystemClock};
use regkeep_engine::testing::ScriptedMinter;
use regkeep_server::settings::Settings;
use regkeep_server::Application;
use reqwest::{Method, StatusCode};
use serde_json::Value;

pub struct HermeticApp {
    pub base: String,
    /// `http://ADDR/metrics` when `metrics_listen` was set.
    pub metrics_url: Option<String>,
    pub admin_pass: String,
    pub clock: Arc<ManualClock>,
    pub minter: Arc<ScriptedMinter>,
    pub engine: regkeep_engine::Engine,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl HermeticApp {
    pub async fn spawn() -> HermeticApp {
        Self::spawn_with(|_| {}).await
    }

    /// As [`HermeticApp::spawn`], with the settings changed by `adjust` first.
    pub async fn spawn_with(adjust: impl FnOnce(&mut Settings)) -> HermeticApp {
        crate::capture::capture_logs();
        let dir = tempfile::tempdir().unwrap();
        let admin_pass = "hermetic-admin-pass".to_owned();
        let mut settings = Settings {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().to_owned(),
            default_admin_password: Some(Secret::new(&admin_pass)),
            // The fake registry listens on loopback.
            outbound: regkeep_server::settings::OutboundConfig {
                allow_loopback: true,
                ..Default::default()
            },
            ..Settings::default()
        };
        adjust(&mut settings);
        let clock = Arc::new(ManualClock::at(SystemClock.now()));
        let minter = ScriptedMinter::new(clock.clone());
        let app = Application::build_with(&settings, clock.clone(), minter.clone())
            .await
            .expect("regkeep starts");
        let base = format!("http://{}", app.local_addr().unwrap());
        let metrics_url = app.metrics_addr().map(|a| format!("http://{a}/metrics"));
        let engine = app.engine().clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(app.run_until_stopped(async move {
            let _ = rx.await;
        }));
        HermeticApp {
            base,
            metrics_url,
            admin_pass,
            clock,
            minter,
            engine,
            http: reqwest::Client::new(),
            _dir: dir,
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    /// Fails when any of `secrets` is in the server's logs or, in plain text, in its database
    /// files (SQLite and its journal).
    pub fn assert_no_secrets(&self, secrets: &[&str]) {
        let logs = crate::capture::captured_logs();
        assert!(!logs.is_empty(), "the server's logs were captured");
        crate::capture::assert_no_secrets("the logs", &logs, secrets);
        let mut files = Vec::new();
        for entry in std::fs::read_dir(self._dir.path()).unwrap() {
            let path = entry.unwrap().path();
            if path.to_string_lossy().contains("regkeep.db") {
                files.extend(std::fs::read(&path).unwrap());
            }
        }
        assert!(!files.is_empty(), "the database files were read");
        crate::capture::assert_no_secrets(
            "the database files",
            &String::from_utf8_lossy(&files),
            secrets,
        );
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(handle) = self.handle.take() {
            handle.await.unwrap().unwrap();
        }
    }

    /// A request as admin; the answer's status and JSON body (text as a JSON string).
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .basic_auth("admin", Some(&self.admin_pass));
        if let Some(body) = body {
            request = request.json(&body);
        }
        answer(request).await
    }

    /// A request with an API key (`Authorization: Bearer`), and `x-anchore-account` when given.
    pub async fn with_key(
        &self,
        key: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
        as_account: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(key);
        if let Some(account) = as_account {
            request = request.header("x-anchore-account", account);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        answer(request).await
    }

    /// A request as `user` with `password`.
    pub async fn as_user(
        &self,
        user: &str,
        password: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .basic_auth(user, Some(password));
        if let Some(body) = body {
            request = request.json(&body);
        }
        answer(request).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.request(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.request(Method::POST, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.request(Method::DELETE, path, None).await
    }
}

/// The answer's status and JSON body (text as a JSON string).
async fn answer(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
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

/// A registry string percent-encoded for a path, as anchore-cli sends it.
pub fn enc(registry: &str) -> String {
    registry.replace('/', "%2F").replace(':', "%3A")
}
