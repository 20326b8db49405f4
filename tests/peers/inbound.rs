//! Inbound safety (issue 9): logins that cannot be turned against the server, and changes that
//! end a login at once. Figures (memory, latency under floods) come from `bench/login-flood.sh`;
//! these tests assert behaviour only.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use common::{Backend, TestApp};
use reqwest::StatusCode;
use serde_json::json;

/// A server whose throttle never gets in the way of the trials (they fail one login per trial).
async fn roomy(backend: Backend) -> TestApp {
    TestApp::spawn_with(backend, |s| {
        s.throttle.address_burst = 100_000;
        s.throttle.user_burst = 100_000;
    })
    .await
}

/// GET /v1/user as `user`:`pass`, with the time the request was sent.
async fn whoami(
    http: &reqwest::Client,
    base: &str,
    user: &str,
    pass: &str,
) -> (Instant, StatusCode) {
    let sent = Instant::now();
    let status = http
        .get(format!("{base}/v1/user"))
        .basic_auth(user, Some(pass))
        .send()
        .await
        .map(|r| r.status())
        .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    (sent, status)
}

/// 64 clients keep using `user`:`old` while `change` runs; after its answer each sends 3 more.
/// Returns how many requests sent after the change's answer succeeded.
async fn successes_after<F, Fut>(app: &TestApp, user: &str, old: &str, change: F) -> usize
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let answered: Arc<Mutex<Option<Instant>>> = Arc::default();
    let mut clients = Vec::new();
    for _ in 0..64 {
        let (http, base, user, old, answered) = (
            app.http.clone(),
            app.base.clone(),
            user.to_owned(),
            old.to_owned(),
            answered.clone(),
        );
        clients.push(tokio::spawn(async move {
            let mut results = Vec::new();
            let mut after = 0;
            while after < 3 {
                results.push(whoami(&http, &base, &user, &old).await);
                if answered.lock().unwrap().is_some() {
                    after += 1;
                }
            }
            results
        }));
    }
    change().await;
    *answered.lock().unwrap() = Some(Instant::now());
    let at = answered.lock().unwrap().unwrap();
    let mut late_successes = 0;
    for client in clients {
        for (sent, status) in client.await.unwrap() {
            if sent > at && status == StatusCode::OK {
                late_successes += 1;
            }
        }
    }
    late_successes
}

async fn password_change_ends_the_old_password_at_once(backend: Backend) {
    let app = roomy(backend).await;
    let trials = if backend == Backend::Sqlite { 100 } else { 25 };
    app.add_account_with_user("churn", "carla", "carla-pass-0")
        .await;
    for i in 0..trials {
        let old = format!("carla-pass-{i}");
        let new = format!("carla-pass-{}", i + 1);
        // Warm: the old password is verified and remembered.
        assert_eq!(
            whoami(&app.http, &app.base, "carla", &old).await.1,
            StatusCode::OK
        );
        let late = successes_after(&app, "carla", &old, || async {
            let (status, body) = app
                .post(
                    "/v1/accounts/churn/users/carla/credentials",
                    json!({"type": "password", "value": new}),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
        })
        .await;
        assert_eq!(
            late, 0,
            "trial {i}: the old password worked after the change answered"
        );
        assert_eq!(
            whoami(&app.http, &app.base, "carla", &new).await.1,
            StatusCode::OK
        );
    }
    app.finish().await;
}

async fn disable_and_delete_end_logins_at_once(backend: Backend) {
    let app = roomy(backend).await;
    let trials = if backend == Backend::Sqlite { 20 } else { 10 };
    app.add_account_with_user("gate", "gus", "gus-pass-1").await;
    for i in 0..trials {
        assert_eq!(
            whoami(&app.http, &app.base, "gus", "gus-pass-1").await.1,
            StatusCode::OK
        );
        let late = successes_after(&app, "gus", "gus-pass-1", || async {
            let (status, body) = app
                .put("/v1/accounts/gate/state", json!({"state": "disabled"}))
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
        })
        .await;
        assert_eq!(
            late, 0,
            "disable trial {i}: a login worked after the account was disabled"
        );
        let (status, _) = app
            .put("/v1/accounts/gate/state", json!({"state": "enabled"}))
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    for i in 0..trials {
        let user = format!("dora{i}");
        let (status, body) = app
            .post(
                "/v1/accounts/gate/users",
                json!({"username": user, "password": "dora-pass-1"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            whoami(&app.http, &app.base, &user, "dora-pass-1").await.1,
            StatusCode::OK
        );
        let late = successes_after(&app, &user, "dora-pass-1", || async {
            let (status, _) = app.delete(&format!("/v1/accounts/gate/users/{user}")).await;
            assert!(status.is_success(), "{status}");
        })
        .await;
        assert_eq!(
            late, 0,
            "delete trial {i}: a login worked after the user was deleted"
        );
    }
    app.finish().await;
}

on_both_backends!(
    password_change_ends_the_old_password_at_once,
    disable_and_delete_end_logins_at_once,
    text_with_control_characters_is_refused_never_a_server_error,
);

/// Found by schemathesis on PostgreSQL (whose text cannot hold U+0000): a subscription_value
/// with a NUL byte was a 500. Every free-text field that is stored or searched for refuses
/// control characters with a 400 naming the field, on both backends, and nothing is stored.
async fn text_with_control_characters_is_refused_never_a_server_error(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (path, body, field) in [
        (
            "/v1/subscriptions",
            json!({"subscription_type": "tag_update", "subscription_key": "plain.evil.test/q/v:latest", "subscription_value": "a\u{0}b"}),
            "subscription_value",
        ),
        (
            "/v1/subscriptions",
            json!({"subscription_type": "tag_update", "subscription_key": "plain.evil.test/q/v:la\u{0}test"}),
            "subscription_key",
        ),
        (
            "/v1/images",
            json!({"tag": "plain.evil.test/q/x:latest", "platform": "linux/\u{0}amd64"}),
            "platform",
        ),
        (
            "/v1/registries?validate=false",
            json!({"registry": "nul.example.com", "registry_user": "u\u{0}", "registry_pass": "p"}),
            "registry_user",
        ),
    ] {
        let (status, answer) = app
            .request(reqwest::Method::POST, path, Some(body), None, None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}: {answer}");
        assert!(
            answer["message"].as_str().unwrap().contains(field),
            "{field}: {answer}"
        );
    }
    for query in ["event_type=%00", "resource_type=a%00", "resource_id=%00x"] {
        let (status, answer) = app.get(&format!("/v1/events?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {answer}");
    }
    let (status, answer) = app.get("/v1/images?fulltag=plain.evil.test/q/x:%00").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let (_, subscriptions) = app.get("/v1/subscriptions").await;
    assert_eq!(subscriptions, json!([]), "nothing stored");
    app.finish().await;
}

/// Concurrent first logins with one credential cost one Argon2id verification; a repeated wrong
/// password costs one; `Basic` followed by any number of spaces is the same credential.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_verification_per_credential() {
    crate::skip_without_peers!();
    let app = roomy(Backend::Sqlite).await;
    app.add_account_with_user("solo", "sol", "sol-pass-1").await;
    let hashers = || app.engine.accounts().password_hashers().verifications();
    let before = hashers();
    let mut requests = Vec::new();
    for _ in 0..64 {
        let (http, base) = (app.http.clone(), app.base.clone());
        requests.push(tokio::spawn(async move {
            whoami(&http, &base, "sol", "sol-pass-1").await.1
        }));
    }
    for r in requests {
        assert_eq!(r.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(
        hashers() - before,
        1,
        "64 concurrent first logins, one verification"
    );

    let before = hashers();
    let mut requests = Vec::new();
    for _ in 0..32 {
        let (http, base) = (app.http.clone(), app.base.clone());
        requests.push(tokio::spawn(async move {
            whoami(&http, &base, "sol", "not-the-password").await.1
        }));
    }
    for r in requests {
        assert_eq!(r.await.unwrap(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        hashers() - before,
        1,
        "a repeated wrong password is remembered"
    );

    let before = hashers();
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode("sol:sol-pass-1");
    for spaces in [1, 2, 5, 40] {
        let status = app
            .http
            .get(format!("{}/v1/user", app.base))
            .header(
                "authorization",
                format!("Basic{}{encoded}", " ".repeat(spaces)),
            )
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(
        hashers() - before,
        0,
        "one credential, one cache entry, whatever the spacing"
    );
    app.finish().await;
}

/// Failed logins are throttled per client address and per user (429 with Retry-After, no
/// verification run); a remembered credential and an address that logged in as the user before
/// still get in; others are unaffected. Clients are told apart by `X-Forwarded-For` from a
/// trusted proxy (loopback here); from an untrusted peer the header is ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_are_throttled_without_locking_out_the_owner() {
    crate::skip_without_peers!();
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
        s.throttle.address_burst = 5;
        s.throttle.address_period_secs = 3600;
        s.throttle.user_burst = 8;
        s.throttle.user_period_secs = 3600;
    })
    .await;
    app.add_account_with_user("thr", "alice", "alice-pass-1")
        .await;
    app.add_account_with_user("thr2", "bob", "bob-pass-1").await;
    let login = |user: &'static str, pass: String, from: &'static str| {
        let (http, base) = (app.http.clone(), app.base.clone());
        async move {
            let r = http
                .get(format!("{base}/v1/user"))
                .basic_auth(user, Some(pass))
                .header("x-forwarded-for", from)
                .send()
                .await
                .unwrap();
            let retry = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            (r.status(), retry)
        }
    };
    // Alice logs in from her address; the credential is remembered.
    assert_eq!(
        login("alice", "alice-pass-1".into(), "203.0.113.10")
            .await
            .0,
        StatusCode::OK
    );

    // An attacker guesses from one address: after 5 failures its address is throttled.
    let mut statuses = Vec::new();
    for i in 0..8 {
        statuses.push(login("alice", format!("guess-{i}"), "203.0.113.66").await);
    }
    assert!(
        statuses[..5]
            .iter()
            .all(|(s, _)| *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
    let (status, retry) = &statuses[7];
    assert_eq!(*status, StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");
    assert!(
        retry
            .as_deref()
            .is_some_and(|r| r.parse::<u64>().unwrap() >= 1),
        "{retry:?}"
    );
    let before = app.engine.accounts().password_hashers().verifications();
    assert_eq!(
        login("alice", "guess-x".into(), "203.0.113.66").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        login("bob", "bob-pass-1".into(), "203.0.113.66").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        app.engine.accounts().password_hashers().verifications(),
        before,
        "a throttled login costs nothing"
    );

    // Guesses spread over addresses throttle the user name.
    for i in 0..6 {
        let from = ["203.0.113.71", "203.0.113.72", "203.0.113.73"][i % 3];
        let _ = login("alice", format!("spread-{i}"), from).await;
    }
    // Alice's remembered credential is served whatever the throttles, from anywhere.
    assert_eq!(
        login("alice", "alice-pass-1".into(), "203.0.113.99")
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        login("alice", "alice-pass-1".into(), "203.0.113.66")
            .await
            .0,
        StatusCode::OK
    );
    // Her password changes (nothing remembered any more): a new address must wait, her own
    // address gets in, other users are unaffected.
    let (status, body) = app
        .post(
            "/v1/accounts/thr/users/alice/credentials",
            json!({"type": "password", "value": "alice-pass-2"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        login("alice", "alice-pass-2".into(), "203.0.113.99")
            .await
            .0,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        login("alice", "alice-pass-2".into(), "203.0.113.10")
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        login("bob", "bob-pass-1".into(), "203.0.113.99").await.0,
        StatusCode::OK
    );

    // From an untrusted peer the header names nobody: a second server trusting no proxy sees
    // every request as 127.0.0.1.
    let untrusting = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.throttle.address_burst = 3;
        s.throttle.address_period_secs = 3600;
    })
    .await;
    for i in 0..4 {
        let from = [
            "198.51.100.1",
            "198.51.100.2",
            "198.51.100.3",
            "198.51.100.4",
        ][i];
        let _ = untrusting
            .http
            .get(format!("{}/v1/user", untrusting.base))
            .basic_auth("admin", Some(format!("wrong-{i}")))
            .header("x-forwarded-for", from)
            .send()
            .await
            .unwrap();
    }
    let status = untrusting
        .http
        .get(format!("{}/v1/user", untrusting.base))
        .basic_auth("nobody", Some("x"))
        .header("x-forwarded-for", "198.51.100.5")
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "forged X-Forwarded-For was believed"
    );

    // The audit log has the refusals with user and address, and the change with its actor;
    // never a password.
    let audit: Vec<String> = common::captured_logs()
        .lines()
        .filter(|l| l.contains("regkeep::audit"))
        .map(str::to_owned)
        .collect();
    let has = |words: &[&str]| audit.iter().any(|l| words.iter().all(|w| l.contains(w)));
    assert!(
        has(&["login.refused", "alice", "203.0.113.66", "throttled"]),
        "{audit:#?}"
    );
    assert!(
        has(&["login.refused", "203.0.113.71", "wrong_credentials"]),
        "{audit:#?}"
    );
    assert!(
        has(&["user.password_changed", "actor=admin", "alice"]),
        "{audit:#?}"
    );
    common::assert_no_secrets(
        "audit log",
        &audit.join("\n"),
        &[
            "alice-pass-1",
            "alice-pass-2",
            "guess-",
            "spread-",
            "bob-pass-1",
        ],
    );
    untrusting.finish().await;
    app.finish().await;
}

/// A disabled account is inert: its subscriptions are not polled (the registry sees nothing) until
/// it is enabled again. The registry is the lab's (namespace mode), reached anonymously.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_accounts_are_not_polled() {
    crate::skip_without_peers!();
    let ca = std::path::PathBuf::from(common::var("REGKEEP_TEST_CA"));
    let log = std::path::PathBuf::from(common::var("REGKEEP_TEST_LAB_DIR")).join("evil.log");
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.tls.ca_bundle = Some(ca);
        s.watch.interval_seconds = 1;
    })
    .await;
    app.add_account_with_user("sleepy", "sid", "sid-pass-1")
        .await;
    let repo = format!("sleepy-{}", common::random_hex(4));
    let polls = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(&format!("/{repo}/")))
            .count()
    };
    let (status, body) = app
        .request(
            reqwest::Method::POST,
            "/v1/subscriptions",
            Some(json!({"subscription_type": "tag_update", "subscription_key": format!("plain.evil.test/{repo}:latest")})),
            Some(("sid", "sid-pass-1")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(polls() > 0, "subscribing polls at once");
    let (status, _) = app
        .put("/v1/accounts/sleepy/state", json!({"state": "disabled"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let before = polls();
    // Several intervals pass, with the poller's own rounds and forced ones.
    for _ in 0..3 {
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        app.engine.watch().poll_due_once().await.unwrap();
    }
    assert_eq!(
        polls(),
        before,
        "a disabled account's subscription was polled"
    );
    let (status, _) = app
        .put("/v1/accounts/sleepy/state", json!({"state": "enabled"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    app.engine.watch().poll_due_once().await.unwrap();
    assert!(polls() > before, "enabled again: polled again");
    app.finish().await;
}

/// Slow and idle clients cannot starve the server: at the connection limit the oldest connections
/// that serve no request are closed to let new ones in (`/health` answers), a connection that
/// sends no complete request head is closed after the header timeout, and a body that does not
/// arrive is answered 408 after the body timeout. (How fast `/health` answers under 4,000 such
/// sockets and a 1024 fd limit is measured by `bench/slow-clients.sh`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_clients_cannot_starve_the_server() {
    crate::skip_without_peers!();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.server.max_connections = 64;
        s.server.header_timeout_secs = 2;
        s.server.body_timeout_secs = 2;
        s.server.idle_timeout_secs = 30;
    })
    .await;
    let mut idle = Vec::new();
    for _ in 0..100 {
        idle.push(TcpStream::connect(app.addr).await.unwrap());
    }
    let mut half = Vec::new();
    for _ in 0..100 {
        let mut s = TcpStream::connect(app.addr).await.unwrap();
        s.write_all(b"GET /v1/user HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        half.push(s);
    }
    // 200 sockets held against a limit of 64: a new client still gets in, every time.
    for _ in 0..5 {
        let status = reqwest::get(format!("{}/health", app.base))
            .await
            .unwrap()
            .status();
        assert_eq!(status, StatusCode::OK);
    }
    // Each held socket is closed by the server (made room for, or past the header timeout):
    // reading gives end-of-file or a reset, never a hang (bounded by 20 s here).
    for mut s in idle.into_iter().chain(half) {
        let mut buf = [0u8; 256];
        let read = tokio::time::timeout(std::time::Duration::from_secs(20), s.read(&mut buf)).await;
        match read {
            Ok(Ok(0)) | Ok(Err(_)) => {}
            Ok(Ok(n)) => {
                // hyper may answer 408 to a half-sent head before closing.
                let text = String::from_utf8_lossy(&buf[..n]);
                assert!(text.starts_with("HTTP/1.1 408"), "{text}");
            }
            Err(_) => panic!("a slow socket was never closed"),
        }
    }
    // A body announced and not sent: 408 with a message, not a 40 s hang.
    let mut s = TcpStream::connect(app.addr).await.unwrap();
    use base64::Engine as _;
    let auth =
        base64::engine::general_purpose::STANDARD.encode(format!("admin:{}", app.admin_pass));
    let head = format!(
        "POST /v1/accounts HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\""
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        s.read_to_end(&mut answer),
    )
    .await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("did not arrive within 2 s"), "{text}");
    app.finish().await;
}

/// A tmpfs of `size` mounted on a fresh folder (the test namespace's private mount table).
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        assert_eq!(
            std::env::var("REGKEEP_TEST_LAB").as_deref(),
            Ok("1"),
            "mounts only inside the test namespace: run with scripts/test.sh or scripts/test-shell.sh"
        );
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "mount tmpfs");
        Tmpfs(dir)
    }

    fn path(&self) -> &std::path::Path {
        self.0.path()
    }

    fn remount(&self, option: &str) {
        let status = std::process::Command::new("mount")
            .args(["-o", &format!("remount,{option}")])
            .arg(self.path())
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.0.path())
            .status();
    }
}

async fn probe(app: &TestApp, path: &str) -> StatusCode {
    if path.ends_with("ready") {
        // The readiness probe runs at most once a second: let the last answer age out.
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    }
    app.http
        .get(format!("{}{path}", app.base))
        .send()
        .await
        .unwrap()
        .status()
}

/// Storage faults are visible and safe: a full disk answers 507 (never 500) and fails readiness;
/// a database file removed under the process fails readiness and liveness; a read-only data
/// directory is a clear error at start; files are private and a readable key file is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_faults_are_visible_and_safe() {
    crate::skip_without_peers!();
    use std::os::unix::fs::PermissionsExt;
    // Disk full.
    let disk = Tmpfs::mount("4m");
    let data = disk.path().join("data");
    let app = TestApp::spawn_with(Backend::Sqlite, |s| s.data_dir = data.clone()).await;
    assert_eq!(probe(&app, "/ready").await, StatusCode::OK);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data.join("regkeep.db")), 0o600);
    assert_eq!(mode(&data.join("regkeep.db-wal")), 0o600);
    // Fill the disk, leaving a few kilobytes.
    let filler = disk.path().join("filler");
    let _ = std::process::Command::new("dd")
        .args(["if=/dev/zero", "bs=4k", "count=100000"])
        .arg(format!("of={}", filler.display()))
        .stderr(std::process::Stdio::null())
        .status();
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for i in 0..60 {
        let body = json!({"registry": format!("full-{i}.example.com"), "registry_user": "u", "registry_pass": "p".repeat(2000)});
        let (status, answer) = app.post("/v1/registries?validate=false", body).await;
        *statuses.entry(status.as_u16()).or_default() += 1;
        assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "{answer}");
        if status == StatusCode::INSUFFICIENT_STORAGE {
            assert!(
                answer["message"]
                    .as_str()
                    .unwrap()
                    .contains("storage is full"),
                "{answer}"
            );
        }
    }
    assert!(
        statuses.contains_key(&507),
        "the disk never filled? {statuses:?}"
    );
    assert_eq!(probe(&app, "/ready").await, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        probe(&app, "/v1/ready").await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        probe(&app, "/health").await,
        StatusCode::OK,
        "liveness: a restart would not help"
    );
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(
        probe(&app, "/ready").await,
        StatusCode::OK,
        "space freed: ready again"
    );
    let logs = common::captured_logs();
    assert!(logs.contains("disk is full"), "the log says why");

    // The database file removed under the running process.
    std::fs::remove_file(data.join("regkeep.db")).unwrap();
    assert_eq!(probe(&app, "/ready").await, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        probe(&app, "/health").await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert!(common::captured_logs().contains("was removed while regkeep runs"));
    app.finish().await;
    drop(disk);

    // A read-only data directory: a clear error at start naming it.
    let ro = Tmpfs::mount("1m");
    ro.remount("ro");
    let settings_dir = ro.path().to_owned();
    let database = common::TestDatabase::sqlite();
    let mut settings = common::test_settings(&settings_dir, &database, "admin-pass-x");
    settings.data_dir = settings_dir.clone();
    let err = regkeep_server::Application::build(&settings)
        .await
        .err()
        .expect("refused");
    let text = format!("{err:#}");
    assert!(
        text.contains(&settings_dir.display().to_string()) && text.contains("not writable"),
        "{text}"
    );
    drop(ro);

    // A key file others can read is refused with the fix.
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("secret.key");
    std::fs::write(&key, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut settings = common::test_settings(dir.path(), &database, "admin-pass-x");
    settings.secret_key_file = Some(key.clone());
    let err = regkeep_server::Application::build(&settings)
        .await
        .err()
        .expect("refused");
    let text = format!("{err:#}");
    assert!(
        text.contains("chmod 600") && text.contains(&key.display().to_string()),
        "{text}"
    );
}

/// One tenant cannot fill the disk for all: per-account quotas (403 naming the setting) and
/// length limits on the strings stored (400 naming the field).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_and_field_lengths() {
    crate::skip_without_peers!();
    let ca = std::path::PathBuf::from(common::var("REGKEEP_TEST_CA"));
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.quotas.registries_per_account = 2;
        s.quotas.subscriptions_per_account = 2;
        s.quotas.images_per_account = 2;
        s.quotas.users_per_account = 2;
        s.tls.ca_bundle = Some(ca);
        s.watch.interval_seconds = 3600;
    })
    .await;
    app.add_account_with_user("tenant", "tess", "tess-pass-1")
        .await;
    let tess = Some(("tess", "tess-pass-1"));
    let post = |path: &'static str, body: serde_json::Value| {
        app.request(reqwest::Method::POST, path, Some(body), tess, None)
    };
    for i in 0..2 {
        let (status, body) = post(
            "/v1/registries?validate=false",
            json!({"registry": format!("q{i}.example.com"), "registry_user": "u", "registry_pass": "p"}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, body) = post(
        "/v1/registries?validate=false",
        json!({"registry": "q2.example.com", "registry_user": "u", "registry_pass": "p"}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("quotas.registries_per_account"),
        "{body}"
    );
    // Another account has its own quota.
    let (status, _) = app
        .post(
            "/v1/registries?validate=false",
            json!({"registry": "q2.example.com", "registry_user": "u", "registry_pass": "p"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    for i in 1..=3 {
        let (status, body) = post(
            "/v1/images",
            json!({"tag": format!("big.evil.test/big/{i}:latest")}),
        )
        .await;
        if i < 3 {
            assert_eq!(status, StatusCode::OK, "{body}");
        } else {
            assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
            assert!(body["message"]
                .as_str()
                .unwrap()
                .contains("quotas.images_per_account"));
        }
    }
    // Recording an image already held is an update, not a new record.
    let (status, body) = post("/v1/images", json!({"tag": "big.evil.test/big/1:latest"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A new tag of a held digest is one more image_detail entry: it counts (a registry that
    // answers one digest for every tag cannot grow the account past its quota).
    let (status, body) = post("/v1/images", json!({"tag": "big.evil.test/big/1:other"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("quotas.images_per_account"));

    // Users: a tenant's user adds users to its own account up to the quota (tess is one).
    let (status, body) = post(
        "/v1/accounts/tenant/users",
        json!({"username": "tess-2", "password": "tess-pass-2"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = post(
        "/v1/accounts/tenant/users",
        json!({"username": "tess-3", "password": "tess-pass-3"}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("quotas.users_per_account"));

    for i in 0..3 {
        let (status, body) = post(
            "/v1/subscriptions",
            json!({"subscription_type": "tag_update", "subscription_key": format!("plain.evil.test/q/s{i}:latest")}),
        )
        .await;
        if i < 2 {
            assert_eq!(status, StatusCode::OK, "{body}");
        } else {
            assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
            assert!(body["message"]
                .as_str()
                .unwrap()
                .contains("quotas.subscriptions_per_account"));
        }
    }
    // Length limits.
    let long = "x".repeat(5000);
    for (path, body, field) in [
        (
            "/v1/subscriptions",
            json!({"subscription_type": "tag_update", "subscription_key": "plain.evil.test/q/v:latest", "subscription_value": long}),
            "subscription_value",
        ),
        (
            "/v1/subscriptions",
            json!({"subscription_type": "tag_update", "subscription_key": format!("plain.evil.test/{long}:latest")}),
            "subscription_key",
        ),
        (
            "/v1/images",
            json!({"tag": format!("plain.evil.test/{long}:latest")}),
            "tag",
        ),
        (
            "/v1/images",
            json!({"tag": "plain.evil.test/q/x:latest", "platform": long}),
            "platform",
        ),
        (
            "/v1/registries?validate=false",
            json!({"registry": "long.example.com", "registry_user": long, "registry_pass": "p"}),
            "registry_user",
        ),
    ] {
        let (status, answer) = app
            .request(reqwest::Method::POST, path, Some(body), None, None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}: {answer}");
        assert!(
            answer["message"].as_str().unwrap().contains(field),
            "{field}: {answer}"
        );
    }
    app.finish().await;
}

/// Found by review: concurrent guesses must not slip past the throttle (the check is charged
/// before it runs), a name that cannot exist costs no check, and an oversized Authorization
/// header is refused unread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_guesses_are_charged_before_they_run() {
    crate::skip_without_peers!();
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
        s.throttle.address_burst = 5;
        s.throttle.address_period_secs = 3600;
        s.throttle.user_burst = 1000;
    })
    .await;
    let before = app.engine.accounts().password_hashers().verifications();
    let mut guesses = Vec::new();
    for i in 0..100 {
        let (http, base) = (app.http.clone(), app.base.clone());
        guesses.push(tokio::spawn(async move {
            http.get(format!("{base}/v1/user"))
                .basic_auth("admin", Some(format!("guess-{i}")))
                .header("x-forwarded-for", "203.0.113.66")
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    let mut checked = 0;
    for g in guesses {
        match g.await.unwrap() {
            StatusCode::UNAUTHORIZED => checked += 1,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {}
            other => panic!("{other}"),
        }
    }
    let ran = app.engine.accounts().password_hashers().verifications() - before;
    assert!(
        checked <= 9 && ran <= 9, // the burst (5), and the at most 4 checks under way when it ran out
        "100 concurrent guesses: {checked} answered 401, {ran} checks ran"
    );

    let before = app.engine.accounts().password_hashers().verifications();
    for user in ["Not A User", &"u".repeat(500)] {
        let status = app
            .http
            .get(format!("{}/v1/user", app.base))
            .basic_auth(user, Some("x"))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let huge = format!("Basic {}", "A".repeat(200_000));
    let status = app
        .http
        .get(format!("{}/v1/user", app.base))
        .header("authorization", huge)
        .send()
        .await
        .unwrap()
        .status();
    assert!(
        status == StatusCode::UNAUTHORIZED || status.as_u16() == 431,
        "{status}"
    );
    assert_eq!(
        app.engine.accounts().password_hashers().verifications(),
        before,
        "none of these cost a check"
    );
    app.finish().await;
}
