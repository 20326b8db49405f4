//! The outbound policy against an adversarial network (issue 8; docs/design.md §3.7), driven as a
//! non-admin user would: the lab of `scripts/peers.sh` (namespace mode) has a metadata stand-in on
//! 169.254.169.254, internal services on 127.0.0.9 and 10.77.0.1 (each logs every request and
//! serves a distinctive secret), a malicious registry on 198.51.100.7 whose personality is chosen
//! by host name (realms and redirects pointing at the stand-ins in many spellings, error bodies
//! full of terminal escapes), and a DNS server whose rebinding names alternate a permitted and a
//! refused address. The tests here run one at a time (nextest group `lab`): the stand-ins' logs
//! are shared.

use crate::common;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use common::{assert_no_secrets, captured_logs, enc, var, Backend, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_regkeep");
const USER: (&str, &str) = ("mallory", "mallory-pass-1");
const REGISTRY_PASS: &str = "lab-registry-pass-7f3e";

struct Lab {
    dir: PathBuf,
    secrets: [String; 3],
    layer_digest: String,
}

impl Lab {
    fn new() -> Lab {
        let lab = Lab {
            dir: PathBuf::from(var("REGKEEP_TEST_LAB_DIR")),
            secrets: [
                var("REGKEEP_TEST_LAB_METADATA_SECRET"),
                var("REGKEEP_TEST_LAB_LOOPBACK_SECRET"),
                var("REGKEEP_TEST_LAB_PRIVATE_SECRET"),
            ],
            layer_digest: var("REGKEEP_TEST_LAB_LAYER_DIGEST"),
        };
        lab.clear_logs();
        lab
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default()
    }

    fn clear_logs(&self) {
        for name in ["metadata", "loopback", "private", "evil"] {
            std::fs::write(self.dir.join(format!("{name}.log")), "").unwrap();
        }
    }

    /// No request reached the stand-ins named (their logs stay empty).
    fn assert_untouched(&self, standins: &[&str], case: &str) {
        for name in standins {
            let log = self.log(name);
            assert!(
                log.is_empty(),
                "{case}: the {name} stand-in saw requests:\n{log}"
            );
        }
    }

    fn secrets(&self) -> Vec<&str> {
        let mut all: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
        all.push(REGISTRY_PASS);
        all
    }

    /// Nothing the stand-ins serve, nor the registry password, reached the malicious registry.
    fn assert_nothing_forwarded(&self, case: &str) {
        assert_no_secrets(
            &format!("{case}: the malicious registry's log"),
            &self.log("evil"),
            &self.secrets(),
        );
    }
}

/// A regkeep with the default outbound policy (loopback refused) and the lab CA trusted, and a
/// non-admin user.
async fn lab_app(adjust: impl FnOnce(&mut regkeep_server::settings::Settings)) -> TestApp {
    let ca = PathBuf::from(var("REGKEEP_TEST_CA"));
    let app = TestApp::spawn_with(Backend::Sqlite, move |s| {
        s.outbound = Default::default();
        s.tls.ca_bundle = Some(ca);
        adjust(s);
    })
    .await;
    app.add_account_with_user("lab", USER.0, USER.1).await;
    app
}

async fn as_user(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    app.request(method, path, body, Some(USER), None).await
}

fn registry(name: &str, verify: bool) -> Value {
    json!({
        "registry": name,
        "registry_user": "lab-user",
        "registry_pass": REGISTRY_PASS,
        "registry_type": "docker_v2",
        "registry_verify": verify,
    })
}

/// A 422 whose reason is `address_refused`, naming the host and the address (and the setting
/// that would allow it, when there is one).
fn assert_address_refused(
    case: &str,
    status: StatusCode,
    body: &Value,
    address: &str,
    setting: Option<&str>,
) {
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{case}: {body}");
    assert_eq!(
        body["detail"]["reason"], "address_refused",
        "{case}: {body}"
    );
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(address),
        "{case}: the message names {address}: {message}"
    );
    match setting {
        Some(setting) => assert!(
            message.contains(setting),
            "{case}: names {setting}: {message}"
        ),
        None => assert!(
            message.contains("never"),
            "{case}: says it is never allowed: {message}"
        ),
    }
}

/// The registry's realm points at a refused address: validation (with credentials, the registry
/// on plain HTTP so the realm's scheme is allowed) and anonymous image resolution (registry on
/// HTTPS) are refused as such, and no request reaches the stand-in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realms_on_refused_addresses_are_never_contacted() {
    crate::skip_without_peers!();
    let lab = Lab::new();
    let app = lab_app(|_| {}).await;
    let cases = [
        ("realm-meta", "169.254.169.254", None),
        ("realm-mapped", "169.254.169.254", None),
        ("realm-loop", "127.0.0.9", Some("outbound.allow_loopback")),
        (
            "realm-decimal",
            "127.0.0.9",
            Some("outbound.allow_loopback"),
        ),
        (
            "realm-private",
            "10.77.0.1",
            Some("outbound.allowed_networks"),
        ),
    ];
    for (name, address, setting) in cases {
        let host = format!("{name}.evil.test");
        // Validation with the stored credentials, registry on plain HTTP.
        let (status, body) = as_user(
            &app,
            Method::POST,
            "/v1/registries",
            Some(registry(&format!("{host}:80"), false)),
        )
        .await;
        assert_address_refused(
            &format!("{name} validation"),
            status,
            &body,
            address,
            setting,
        );
        // Anonymous resolution over HTTPS.
        let (status, body) = as_user(
            &app,
            Method::POST,
            "/v1/images",
            Some(json!({"tag": format!("{host}/lab/x:latest")})),
        )
        .await;
        assert_address_refused(
            &format!("{name} anonymous"),
            status,
            &body,
            address,
            setting,
        );
        lab.assert_untouched(&["metadata", "loopback", "private"], name);
        lab.assert_nothing_forwarded(name);
    }
    // Control: a realm on the registry's own host over HTTPS serves a token, and the token goes to
    // that registry only.
    let (status, body) = as_user(
        &app,
        Method::POST,
        "/v1/registries",
        Some(registry("realm-https.evil.test", true)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A plain-HTTP realm on another host gets no credentials.
    let (status, body) = as_user(
        &app,
        Method::POST,
        "/v1/registries",
        Some(registry("realm-http.evil.test:80", false)),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("plain-HTTP token server on another host"),
        "{body}"
    );
    // The realm-http registry's realm is http://evil.test/token: it was asked nothing with
    // credentials (regkeep refused before asking).
    let realm_requests: Vec<Value> = lab
        .log("evil")
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| {
            r["host"]
                .as_str()
                .is_some_and(|h| h.starts_with("evil.test"))
        })
        .collect();
    assert!(
        realm_requests.is_empty(),
        "a plain-HTTP realm on another host was asked: {realm_requests:?}"
    );
    lab.assert_untouched(&["metadata", "loopback", "private"], "controls");
    lab.assert_nothing_forwarded("controls");
    assert_no_secrets("logs", &captured_logs(), &lab.secrets());
    app.finish().await;
}

/// Manifest and blob redirects to refused addresses, in every spelling: refused hop by hop for
/// the pull-through, image records and validation alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_to_refused_addresses_are_never_followed() {
    crate::skip_without_peers!();
    let lab = Lab::new();
    let app = lab_app(|_| {}).await;
    let cases = [
        ("redirect-meta", "169.254.169.254", None),
        ("redirect-mapped", "169.254.169.254", None),
        ("redirect-mapped-hex", "169.254.169.254", None),
        ("redirect-hex", "169.254.169.254", None),
        (
            "redirect-loop",
            "127.0.0.9",
            Some("outbound.allow_loopback"),
        ),
        (
            "redirect-decimal",
            "127.0.0.9",
            Some("outbound.allow_loopback"),
        ),
        (
            "redirect-octal",
            "127.0.0.9",
            Some("outbound.allow_loopback"),
        ),
        (
            "redirect-private",
            "10.77.0.1",
            Some("outbound.allowed_networks"),
        ),
    ];
    for (name, address, setting) in cases {
        let host = format!("{name}.evil.test");
        let (status, body) = as_user(
            &app,
            Method::POST,
            "/v1/registries",
            Some(registry(&host, true)),
        )
        .await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{name}: /v2/ answers 200, so validation passes: {body}"
        );
        for path in [
            format!("/v1/content/{host}/lab/x/manifests/latest"),
            format!("/v1/content/{host}/lab/x/blobs/{}", lab.layer_digest),
        ] {
            let (status, body) = as_user(&app, Method::GET, &path, None).await;
            assert_address_refused(&format!("{name} {path}"), status, &body, address, setting);
        }
        let (status, body) = as_user(
            &app,
            Method::POST,
            "/v1/images",
            Some(json!({"tag": format!("{host}/lab/x:latest")})),
        )
        .await;
        assert_address_refused(
            &format!("{name} image add"),
            status,
            &body,
            address,
            setting,
        );
        lab.assert_untouched(&["metadata", "loopback", "private"], name);
        lab.assert_nothing_forwarded(name);
        let (status, _) = as_user(
            &app,
            Method::DELETE,
            &format!("/v1/registries/{}", enc(&host)),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
    }
    assert_no_secrets("logs", &captured_logs(), &lab.secrets());
    app.finish().await;
}

/// Names that answer a permitted address to one lookup and a refused one to the next: the
/// registry's own name, and a redirect target's name. Over 100 tries each, no request reaches the
/// refused address; tries that got the permitted address may succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebinding_names_never_reach_refused_addresses() {
    crate::skip_without_peers!();
    let lab = Lab::new();
    let app = lab_app(|_| {}).await;
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    for host in [
        "rebind.evil.test",
        "rebind-loop.evil.test",
        "redirect-rebind.evil.test",
    ] {
        let (status, answer) = as_user(
            &app,
            Method::POST,
            "/v1/registries?validate=false",
            Some(registry(host, true)),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{host}: {answer}");
        for _ in 0..100 {
            let (status, answer) = as_user(
                &app,
                Method::GET,
                &format!("/v1/content/{host}/lab/x/blobs/{}", lab.layer_digest),
                None,
            )
            .await;
            let outcome = match status {
                StatusCode::OK => "ok".to_owned(),
                StatusCode::UNPROCESSABLE_ENTITY => {
                    assert_eq!(
                        answer["detail"]["reason"], "address_refused",
                        "{host}: {answer}"
                    );
                    "address_refused".to_owned()
                }
                other => panic!("{host}: unexpected {other}: {answer}"),
            };
            *outcomes.entry(format!("{host} {outcome}")).or_default() += 1;
        }
        lab.assert_untouched(&["metadata", "loopback", "private"], host);
        lab.assert_nothing_forwarded(host);
    }
    // The alternation really happened: some tries were refused for each name.
    for host in [
        "rebind.evil.test",
        "rebind-loop.evil.test",
        "redirect-rebind.evil.test",
    ] {
        assert!(
            outcomes
                .get(&format!("{host} address_refused"))
                .copied()
                .unwrap_or(0)
                > 0,
            "{host}: DNS never answered the refused address? {outcomes:?}"
        );
    }
    eprintln!("rebinding outcomes over 100 tries each: {outcomes:?}");
    app.finish().await;
}

/// Internal hosts as registries: loopback and metadata refused, with one answer whatever listens
/// there (no port scanning); private ranges allowed by default and refused when denied;
/// `outbound.allow_loopback: true` brings loopback registries back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_hosts_as_registries() {
    crate::skip_without_peers!();
    let lab = Lab::new();
    let app = lab_app(|s| s.outbound.denied_networks = vec!["10.0.0.0/8".parse().unwrap()]).await;
    let mut answers = Vec::new();
    for (host, address, setting) in [
        ("127.0.0.9:80", "127.0.0.9", Some("outbound.allow_loopback")),
        ("127.0.0.9:1", "127.0.0.9", Some("outbound.allow_loopback")),
        ("localhost:80", "localhost", Some("outbound.allow_loopback")),
        ("169.254.169.254", "169.254.169.254", None),
        ("[::ffff:169.254.169.254]", "169.254.169.254", None),
        (
            "10.77.0.1:80",
            "10.77.0.1",
            Some("outbound.denied_networks"),
        ),
    ] {
        let (status, body) = as_user(
            &app,
            Method::POST,
            "/v1/registries",
            Some(registry(host, false)),
        )
        .await;
        assert_address_refused(host, status, &body, address, setting);
        answers.push(body["message"].as_str().unwrap().replace(host, "HOST"));
        let (status, body) = as_user(
            &app,
            Method::GET,
            &format!("/v1/content/{host}/x/manifests/latest"),
            None,
        )
        .await;
        assert_address_refused(&format!("{host} content"), status, &body, address, setting);
    }
    // Listening (port 80) or not (port 1): the same answer.
    assert_eq!(answers[0], answers[1]);
    lab.assert_untouched(&["metadata", "loopback", "private"], "internal hosts");
    app.finish().await;

    // Loopback registries work again when the operator allows them.
    let http = var("REGKEEP_TEST_REGISTRY_HTTP");
    let refused = lab_app(|_| {}).await;
    let body = json!({"registry": http, "registry_user": var("REGKEEP_TEST_REGISTRY_USER"), "registry_pass": var("REGKEEP_TEST_REGISTRY_PASS"), "registry_verify": false});
    let (status, answer) =
        as_user(&refused, Method::POST, "/v1/registries", Some(body.clone())).await;
    assert_address_refused(
        "peer registry, loopback off",
        status,
        &answer,
        "127.0.0.1",
        Some("outbound.allow_loopback"),
    );
    refused.finish().await;
    let allowed = lab_app(|s| s.outbound.allow_loopback = true).await;
    let (status, answer) = as_user(&allowed, Method::POST, "/v1/registries", Some(body)).await;
    assert_eq!(status, StatusCode::OK, "loopback on: {answer}");
    // Never the always-refused ones.
    let (status, answer) = as_user(
        &allowed,
        Method::POST,
        "/v1/registries",
        Some(registry("169.254.169.254", false)),
    )
    .await;
    assert_address_refused(
        "metadata, loopback on",
        status,
        &answer,
        "169.254.169.254",
        None,
    );
    lab.assert_untouched(&["metadata"], "loopback on");
    allowed.finish().await;
}

fn has_control(text: &str) -> bool {
    text.chars()
        .any(|c| (c.is_control() && c != '\n') || c == '\u{9b}')
}

async fn cli(app: &TestApp, args: &[&str], stdin: &str) -> Output {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("REGKEEP_URL", &app.base)
        .env("REGKEEP_USER", USER.0)
        .env("REGKEEP_PASS", USER.1)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let stdin = stdin.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut child = command.spawn().unwrap();
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

/// Error bodies full of terminal escapes reach no answer, stored error, log line or terminal raw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escape_sequences_never_reach_answers_logs_or_terminals() {
    crate::skip_without_peers!();
    let lab = Lab::new();
    let app = lab_app(|s| {
        s.watch.interval_seconds = 3600;
    })
    .await;
    let host = "escapes.evil.test";
    let (status, body) = as_user(
        &app,
        Method::POST,
        "/v1/registries",
        Some(registry(host, true)),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let text = body.to_string();
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("registry added"),
        "the excerpt is kept: {message}"
    );
    assert!(
        !has_control(message) && !has_control(body["detail"]["answer"].as_str().unwrap()),
        "{text}"
    );

    // Stored: a subscription's last error.
    let (status, _) = as_user(
        &app,
        Method::POST,
        "/v1/registries?validate=false",
        Some(registry(host, true)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = as_user(
        &app,
        Method::POST,
        "/v1/subscriptions",
        Some(json!({"subscription_type": "tag_update", "subscription_key": format!("{host}/lab/x:latest")})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, subs) = as_user(&app, Method::GET, "/v1/subscriptions", None).await;
    let stored = subs.to_string();
    assert!(
        stored.contains("registry added"),
        "the poll failed with the escape body: {stored}"
    );
    for sub in subs.as_array().unwrap() {
        if let Some(e) = sub["last_error"].as_str() {
            assert!(!has_control(e), "stored last_error: {e:?}");
        }
    }
    // Terminal: the CLI's error output and its table.
    let out = cli(
        &app,
        &[
            "registry",
            "add",
            "escapes.evil.test:443",
            "lab-user",
            "--password-stdin",
        ],
        REGISTRY_PASS,
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("registry added") && !has_control(&stderr),
        "{stderr:?}"
    );
    let out = cli(&app, &["subscription", "list"], "").await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(!has_control(&stdout), "{stdout:?}");
    let logs = captured_logs();
    assert!(
        !logs.contains('\u{1b}') && !logs.contains('\u{9b}'),
        "an escape sequence reached the log"
    );
    assert_no_secrets("logs", &logs, &lab.secrets());
    app.finish().await;
}

/// Attacks found by the adversarial review, each now a case:
/// - a registry name with a private and a public address, redirecting to itself on another port:
///   the hop rule follows the address the answer came from, never a remembered flag;
/// - a private registry spelled as an IPv4-mapped IPv6 address is judged as the private address;
/// - a token answer with `expires_in` 2^64-1 (once a panic that ended tag watching for all);
/// - a config sent one byte per chunk resolves (and is kept in segments, not per-byte chunks);
/// - a config trickled one byte every 2 s ends at the request timeout, not hours later;
/// - escape sequences in an index's platforms, a manifest's digests or a config's fields, and a
///   60,000-character Docker-Content-Digest header, never reach an answer or a record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attacks_found_in_review() {
    crate::skip_without_peers!();
    let lab = Lab::new();
    let app = lab_app(|_| {}).await;
    // Mixed addresses: the registry answers from 198.51.100.7 (public), so its redirect to its own
    // name on :80 may only go to the public address.
    let (status, body) = as_user(
        &app,
        Method::POST,
        "/v1/registries?validate=false",
        Some(registry("mixed.evil.test", true)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for path in [
        format!(
            "/v1/content/mixed.evil.test/lab/x/blobs/{}",
            lab.layer_digest
        ),
        "/v1/content/mixed.evil.test/lab/x/manifests/latest".to_owned(),
    ] {
        let (status, body) = as_user(&app, Method::GET, &path, None).await;
        assert!(
            !body.to_string().contains("LAB-"),
            "{path}: {status} {body}"
        );
    }
    lab.assert_untouched(&["metadata", "loopback", "private"], "mixed addresses");

    // An IPv4-mapped spelling of a private registry is that private registry (allowed by default).
    let (status, body) = as_user(
        &app,
        Method::POST,
        "/v1/registries",
        Some(registry("[::ffff:10.77.0.1]:80", false)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "judged as 10.77.0.1: {body}");
    lab.clear_logs();

    // expires_in 2^64-1: answered, and the server (and its poller) carry on.
    let (status, body) = as_user(
        &app,
        Method::POST,
        "/v1/registries?validate=false",
        Some(registry("bigexp.evil.test", true)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = as_user(
        &app,
        Method::POST,
        "/v1/images",
        Some(json!({"tag": "bigexp.evil.test/lab/x:latest"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = as_user(
        &app,
        Method::POST,
        "/v1/subscriptions",
        Some(json!({"subscription_type": "tag_update", "subscription_key": "bigexp.evil.test/lab/y:latest"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.engine
        .watch()
        .poll_due_once()
        .await
        .expect("the poller survives");
    assert_eq!(
        as_user(&app, Method::GET, "/v1/registries", None).await.0,
        StatusCode::OK
    );

    // One byte per chunk: resolves, digest verified.
    let (status, body) = as_user(
        &app,
        Method::POST,
        "/v1/images",
        Some(json!({"tag": "onebyte.evil.test/lab/x:latest"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A trickled config: a timeout (the tests' request timeout is 10 s), not a hang.
    let (status, body) = as_user(
        &app,
        Method::POST,
        "/v1/images",
        Some(json!({"tag": "trickle.evil.test/lab/x:latest"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["detail"]["reason"], "timeout", "{body}");

    // Escapes inside manifests and configs, and a huge digest header.
    for host in ["escidx.evil.test", "escdigest.evil.test"] {
        let (status, body) = as_user(
            &app,
            Method::POST,
            "/v1/images",
            Some(json!({"tag": format!("{host}/lab/x:latest")})),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{host}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains("malformed"),
            "{host}: {body}"
        );
        assert!(
            !has_control(&body.to_string()) && !body.to_string().contains('\u{202e}'),
            "{host}: {body}"
        );
    }
    let (status, body) = as_user(
        &app,
        Method::POST,
        "/v1/images",
        Some(json!({"tag": "escconfig.evil.test/lab/x:latest"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let text = body.to_string();
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{9b}') && !text.contains('\u{202e}'),
        "{text}"
    );
    assert!(
        text.contains("linux/amd64"),
        "the requested platform stands in for a malformed one: {text}"
    );
    let (status, body) = as_user(
        &app,
        Method::POST,
        "/v1/images",
        Some(json!({"tag": "hdr.evil.test/lab/x:latest"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body.to_string().len() < 4096,
        "the bad header is not echoed"
    );
    lab.assert_untouched(&["metadata", "loopback", "private"], "review attacks");
    assert_no_secrets("logs", &captured_logs(), &lab.secrets());
    app.finish().await;
}
