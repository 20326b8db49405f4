//! API keys and the credential handout over HTTP on the real server: every scope against every
//! route family, another account, revocation and expiry at once, the handout's rules, and no
//! key, token or password in the logs or the database.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::app::{enc, HermeticApp};

const ECR: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
const ALICE_PASS: &str = "alice-hermetic-pass";
const AWS_SECRET: &str = "hermetic-handout-aws-secret";
const ROBOT_PASS: &str = "hermetic-robot-pass";

/// An app with account team-a, its user alice, and in team-a an ECR registry and a docker_v2
/// one (added without validation: the registries themselves are not what is tested here).
async fn app_with_team(static_passwords: bool) -> HermeticApp {
    let app = HermeticApp::spawn_with(|s| s.handout.static_passwords = static_passwords).await;
    assert_eq!(
        app.post("/v1/accounts", json!({"name": "team-a"})).await.0,
        StatusCode::OK
    );
    assert_eq!(
        app.post("/v1/accounts", json!({"name": "team-b"})).await.0,
        StatusCode::OK
    );
    let (status, body) = app
        .post(
            "/v1/accounts/team-a/users",
            json!({"username": "alice", "password": ALICE_PASS}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for (registry, user, pass, kind) in [
        (ECR, "AKIAHANDOUT", AWS_SECRET, "awsecr"),
        ("reg.example.com:5000", "robot", ROBOT_PASS, "docker_v2"),
    ] {
        let (status, body) = alice(
            &app,
            Method::POST,
            "/v1/registries?validate=false",
            Some(
                json!({"registry": registry, "registry_user": user, "registry_pass": pass,
                        "registry_type": kind}),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    app
}

async fn alice(
    app: &HermeticApp,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    app.as_user("alice", ALICE_PASS, method, path, body).await
}

/// Makes a key as alice; gives the key and its id.
async fn make_key(
    app: &HermeticApp,
    scopes: &[&str],
    expires_in: Option<&str>,
) -> (String, String) {
    let mut body = json!({"scopes": scopes, "description": "hermetic"});
    if let Some(e) = expires_in {
        body["expires_in"] = e.into();
    }
    let (status, made) = alice(app, Method::POST, "/v1/apikeys", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    (
        made["key"].as_str().unwrap().to_owned(),
        made["key_id"].as_str().unwrap().to_owned(),
    )
}

/// One call of each route family, and the scope a key needs for it (`None`: people only).
fn route_families(key_id: &str) -> Vec<(Method, String, Option<Value>, Option<&'static str>)> {
    let registry = json!({"registry": "new.example.com", "registry_user": "u",
                          "registry_pass": "p", "registry_type": "docker_v2"});
    vec![
        (Method::GET, "/v1/registries".into(), None, Some("read")),
        (
            Method::GET,
            format!("/v1/registries/{}", enc(ECR)),
            None,
            Some("read"),
        ),
        (
            Method::POST,
            "/v1/registries?validate=false".into(),
            Some(registry.clone()),
            Some("registries:write"),
        ),
        (
            Method::PUT,
            "/v1/registries/new.example.com?validate=false".into(),
            Some(registry),
            Some("registries:write"),
        ),
        (
            Method::DELETE,
            "/v1/registries/nothing.example.com".into(),
            None,
            Some("registries:write"),
        ),
        (
            Method::POST,
            "/v1/credentials/resolve".into(),
            Some(json!({"registry": ECR})),
            Some("credentials:read"),
        ),
        (Method::GET, "/v1/images".into(), None, Some("read")),
        (
            Method::POST,
            "/v1/images".into(),
            Some(json!({"tag": "reg.example.com:5000/x:1"})),
            None,
        ),
        (Method::GET, "/v1/subscriptions".into(), None, Some("read")),
        (
            Method::POST,
            "/v1/subscriptions".into(),
            Some(
                json!({"subscription_type": "tag_update", "subscription_key": "reg.example.com:5000/x:1"}),
            ),
            None,
        ),
        (Method::GET, "/v1/events".into(), None, Some("read")),
        (Method::DELETE, "/v1/events".into(), None, None),
        (Method::GET, "/v1/account".into(), None, Some("read")),
        (Method::GET, "/v1/apikeys".into(), None, Some("read")),
        (
            Method::POST,
            "/v1/apikeys".into(),
            Some(json!({"scopes": ["read"]})),
            None,
        ),
        (Method::DELETE, format!("/v1/apikeys/{key_id}"), None, None),
        (
            Method::POST,
            "/v1/accounts/team-a/users".into(),
            Some(json!({"username": "mallory", "password": "mallory-pass-1"})),
            None,
        ),
        (
            Method::POST,
            "/v1/user/credentials".into(),
            Some(json!({"type": "password", "value": "new-pass-123"})),
            None,
        ),
        (
            Method::PUT,
            "/v1/accounts/team-a/state".into(),
            Some(json!({"state": "disabled"})),
            None,
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_can_do_only_what_its_scopes_name_on_every_route() {
    let app = app_with_team(false).await;
    let mut checked = 0;
    for scope in ["credentials:read", "registries:write", "read"] {
        let (key, key_id) = make_key(&app, &[scope], None).await;
        for (method, path, body, needed) in route_families(&key_id) {
            let (status, answer) = app.with_key(&key, method.clone(), &path, body, None).await;
            let what = format!("{scope} key, {method} {path}: {status} {answer}");
            if needed == Some(scope) {
                assert!(
                    status != StatusCode::FORBIDDEN && status != StatusCode::UNAUTHORIZED,
                    "allowed: {what}"
                );
            } else {
                assert_eq!(status, StatusCode::FORBIDDEN, "refused: {what}");
                let reason = answer["detail"]["reason"].as_str().unwrap_or_default();
                let expected = if needed.is_some() {
                    "api_key_scope"
                } else {
                    "people_only"
                };
                assert_eq!(reason, expected, "{what}");
                assert_eq!(answer["detail"]["needed_scope"], json!(needed), "{what}");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 3 * route_families("x").len());
    // A key with every scope still manages nothing of people.
    let (all, all_id) = make_key(
        &app,
        &["credentials:read", "registries:write", "read"],
        None,
    )
    .await;
    let (status, _) = app
        .with_key(
            &all,
            Method::DELETE,
            &format!("/v1/apikeys/{all_id}"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // The account was not disabled, nothing was added by a refused call.
    let (status, users) = app.get("/v1/accounts/team-a/users").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!users.to_string().contains("mallory"), "{users}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_stay_in_their_account_and_end_at_once() {
    let app = app_with_team(false).await;
    let (key, key_id) = make_key(&app, &["read", "credentials:read"], Some("1h")).await;
    // Never another account: not by x-anchore-account, not by its registries.
    let (status, body) = app
        .with_key(&key, Method::GET, "/v1/registries", None, Some("team-b"))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, list) = app
        .with_key(&key, Method::GET, "/v1/registries", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 2, "team-a's own: {list}");

    // A key of the admin account is no admin: its own account only, no account management.
    let (status, made) = app
        .post(
            "/v1/apikeys",
            json!({"scopes": ["read", "credentials:read", "registries:write"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let admin_key = made["key"].as_str().unwrap().to_owned();
    for (method, path, body) in [
        (
            Method::POST,
            "/v1/credentials/resolve",
            Some(json!({"registry": ECR})),
        ),
        (Method::GET, "/v1/registries", None),
        (
            Method::DELETE,
            "/v1/registries/reg.example.com%3A5000",
            None,
        ),
    ] {
        let (status, body) = app
            .with_key(&admin_key, method.clone(), path, body, Some("team-a"))
            .await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "{method} {path} as team-a: {body}"
        );
    }
    for path in ["/v1/accounts", "/v1/accounts/team-a/users"] {
        let (status, body) = app
            .with_key(&admin_key, Method::GET, path, None, None)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
    }

    // Listed (never the key), with its last use.
    let (_, keys) = alice(&app, Method::GET, "/v1/apikeys", None).await;
    let listed = &keys.as_array().unwrap()[0];
    assert_eq!(listed["key_id"], key_id.as_str());
    assert_eq!(listed["state"], "active");
    assert!(listed["last_used_at"].is_string(), "{listed}");
    assert!(listed.get("key").is_none(), "{listed}");
    assert!(!keys.to_string().contains(&key[20..]));

    // Expiry, on the server's clock.
    app.clock.advance(Duration::from_secs(3600));
    let (status, body) = app
        .with_key(&key, Method::GET, "/v1/registries", None, None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["detail"]["reason"], "api_key_expired", "{body}");

    // Revocation, effective on the next request although the key was just used.
    let (key, key_id) = make_key(&app, &["read"], None).await;
    assert_eq!(
        app.with_key(&key, Method::GET, "/v1/registries", None, None)
            .await
            .0,
        StatusCode::OK
    );
    let (status, revoked) =
        alice(&app, Method::DELETE, &format!("/v1/apikeys/{key_id}"), None).await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert_eq!(revoked["state"], "revoked");
    let (status, body) = app
        .with_key(&key, Method::GET, "/v1/registries", None, None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["detail"]["reason"], "api_key_revoked", "{body}");

    // A wrong key says nothing of any key.
    let wrong = format!("rk_{key_id}_{}", "A".repeat(43));
    let (status, body) = app
        .with_key(&wrong, Method::GET, "/v1/registries", None, None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["detail"].get("key_id").is_none(), "{body}");
    // Another account's key id cannot be revoked from here.
    let (status, _) = app
        .as_user(
            "admin",
            &app.admin_pass,
            Method::DELETE,
            &format!("/v1/apikeys/{key_id}"),
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "admin's own account has no such key"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handout_gives_live_ecr_tokens_to_keys_and_nothing_else() {
    let app = app_with_team(false).await;
    let (key, key_id) = make_key(&app, &["credentials:read"], None).await;
    let (status, first) = app
        .with_key(
            &key,
            Method::POST,
            "/v1/credentials/resolve",
            Some(json!({"image": format!("{ECR}/team/app:1")})),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["registry"], ECR);
    assert_eq!(first["host"], ECR);
    assert_eq!(first["scope"], "host");
    assert_eq!(first["username"], "AWS");
    assert_eq!(first["registry_type"], "awsecr");
    assert!(first["expires_at"].is_string(), "{first}");
    let token = first["secret"].as_str().unwrap().to_owned();
    let calls = app.minter.calls();
    for _ in 0..20 {
        let (status, again) = app
            .with_key(
                &key,
                Method::POST,
                "/v1/credentials/resolve",
                Some(json!({"registry": ECR})),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(again["secret"], token.as_str());
    }
    assert_eq!(app.minter.calls(), calls, "no AWS call per handout");

    // A stored password: refused by default, naming the setting.
    let (status, body) = app
        .with_key(
            &key,
            Method::POST,
            "/v1/credentials/resolve",
            Some(json!({"registry": "reg.example.com:5000"})),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["detail"]["reason"], "static_password_handout");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("handout.static_passwords"));
    // Nothing serves an unknown host; a password login gets nothing.
    let (status, body) = app
        .with_key(
            &key,
            Method::POST,
            "/v1/credentials/resolve",
            Some(json!({"registry": "unknown.example.com"})),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["detail"]["kind"], "registry_for");
    let (status, body) = alice(
        &app,
        Method::POST,
        "/v1/credentials/resolve",
        Some(json!({"registry": ECR})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["detail"]["reason"], "handout_needs_api_key");

    // Every handout is an audit line naming the key, never the secret.
    let logs = crate::capture::captured_logs();
    assert!(
        logs.lines()
            .any(|l| l.contains("credential.handed_out") && l.contains(&key_id) && l.contains(ECR)),
        "an audit line per handout"
    );
    app.assert_no_secrets(&[&key[20..], &token, AWS_SECRET, ROBOT_PASS, ALICE_PASS]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_passwords_are_handed_out_when_the_server_allows() {
    let app = app_with_team(true).await;
    let (key, _) = make_key(&app, &["credentials:read"], None).await;
    let (status, body) = app
        .with_key(
            &key,
            Method::POST,
            "/v1/credentials/resolve",
            Some(json!({"image": "reg.example.com:5000/team/app:1"})),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["username"], "robot");
    assert_eq!(body["secret"], ROBOT_PASS);
    assert_eq!(body["expires_at"], Value::Null);
    app.stop().await;
}

/// The CLI as a person and a CI job use it: `apikey create --output`, `apikey list`,
/// `auth export` with the key file, `apikey revoke`, and the export refused afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_makes_keys_and_exports_what_they_may_take() {
    let app = app_with_team(false).await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("ci.key");
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_regkeep"))
            .args(args)
            .env_clear()
            .env("REGKEEP_URL", &app.base)
            .env("REGKEEP_USER", "alice")
            .env("REGKEEP_PASS", ALICE_PASS)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let key_path = key_file.to_str().unwrap();
    let (code, out, err) = cli(&[
        "apikey",
        "create",
        "--scope",
        "credentials:read",
        "--expires",
        "90d",
        "--description",
        "ci",
        "--output",
        key_path,
    ]);
    assert_eq!(code, 0, "{out} {err}");
    let key = std::fs::read_to_string(&key_file).unwrap();
    assert!(key.starts_with("rk_"), "the key is in the file");
    assert!(!out.contains(key.trim()), "and not on the terminal: {out}");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Never over an existing file.
    let (code, _, err) = cli(&["apikey", "create", "--scope", "read", "--output", key_path]);
    assert_eq!(code, 2, "{err}");

    let (code, out, _) = cli(&["apikey", "list", "--json"]);
    assert_eq!(code, 0);
    let listed: Value = serde_json::from_str(&out).unwrap();
    let key_id = listed[0]["key_id"].as_str().unwrap().to_owned();
    assert_eq!(listed[0]["scopes"], json!(["credentials:read"]));
    assert!(!out.contains(key.trim()));

    let export = |format: &str| {
        cli(&[
            "auth",
            "export",
            "--format",
            format,
            "--registry",
            ECR,
            "--api-key-file",
            key_path,
        ])
    };
    let (code, out, err) = export("authjson");
    assert_eq!(code, 0, "{err}");
    let auth: Value = serde_json::from_str(&out).unwrap();
    assert!(auth["auths"][ECR]["auth"].is_string(), "{auth}");
    assert!(err.contains("expires at"), "{err}");
    let (code, out, _) = export("dockerconfigjson");
    assert_eq!(code, 0);
    let secret: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(secret["type"], "kubernetes.io/dockerconfigjson");
    // --output over an existing world-readable file: replaced by a 0600 one.
    let pull_secret = dir.path().join("pull-secret.json");
    std::fs::write(&pull_secret, "old").unwrap();
    std::fs::set_permissions(&pull_secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, _, err) = cli(&[
        "auth",
        "export",
        "--format",
        "authjson",
        "--registry",
        ECR,
        "--api-key-file",
        key_path,
        "--output",
        pull_secret.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::metadata(&pull_secret)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert!(std::fs::read_to_string(&pull_secret)
        .unwrap()
        .contains("auths"));

    // The ECR entry: a live token can be had, and the listing shows until when.
    let (code, out, err) = cli(&["registry", "check", ECR, "--no-login"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("a credential can be had"), "{out}");
    let until = out
        .split("usable until ")
        .nth(1)
        .map(|rest| rest.trim().to_owned())
        .unwrap_or_else(|| panic!("{out}"));
    let (code, out, _) = cli(&["registry", "list"]);
    assert_eq!(code, 0);
    assert!(out.contains("Token usable until"), "{out}");
    let ecr_row = out
        .lines()
        .find(|l| l.trim_start().starts_with(ECR))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        ecr_row.contains(until.as_str()),
        "the ECR row shows its token's expiry {until}: {ecr_row}"
    );
    let (code, _, err) = cli(&["registry", "check", "unknown.example.com", "--no-login"]);
    assert_eq!(code, 1, "{err}");

    let (code, _, _) = cli(&["apikey", "revoke", &key_id]);
    assert_eq!(code, 0);
    let (code, out, err) = export("authjson");
    assert_eq!(code, 2, "a revoked key is a failed authentication: {out}");
    assert!(err.contains("revoked"), "{err}");
    app.stop().await;
}
