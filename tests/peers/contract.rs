//! The OpenAPI document (`GET /v1/openapi.json`) held to the server by schemathesis (PyPI, in
//! the peers' venv), on both backends: every operation, authenticated, through its examples,
//! coverage, fuzzing and stateful phases for a bounded time. Passing means: no 5xx, no answer
//! the document does not describe (status, content type, headers, body schema), no request the
//! document rules out accepted, 405s that name the methods there are, and no crash.
//!
//! Credentials: admin (HTTP Basic) for everything except the credential handout (an API key
//! scoped `credentials:read`: people are refused there) and the own-password change (a user of its
//! own, so fuzzing it never locks the admin out). Before the run the account holds a registry (the
//! plain-HTTP peer), an image and a subscription, so list answers carry real records.
//!
//! Left out on purpose: schemathesis's `positive_data_acceptance` check. The document's schemas
//! are looser than the server's rules (a schema-valid `0` is no registry host, a time must parse),
//! and Anchore answers a duplicate account with 400, which that check reads as a rejected valid
//! request. And on `/v1/registries/{registry}/check` the method checks: a registry name may end
//! in `/check` (a repository called `check`), so that path also answers GET, PUT and DELETE.

use crate::common;

use std::time::Duration;

use base64::Engine as _;
use common::{peers, var, Backend, TestApp};
use reqwest::StatusCode;
use serde_json::json;

/// How long schemathesis runs against one backend.
const FUZZ_SECONDS: u64 = 40;

on_both_backends!(schemathesis_finds_nothing);

async fn schemathesis_finds_nothing(backend: Backend) {
    let p = peers();
    // Fuzzing sends wrong credentials on purpose: the login throttle would answer 429 to them
    // (correct, but not what the authentication checks look for).
    let app = TestApp::spawn_with(backend, |s| {
        s.throttle.address_burst = 1_000_000;
        s.throttle.user_burst = 1_000_000;
    })
    .await;
    app.add_account_with_user("fuzzed", "fuzzer", "fuzzer-pass-1")
        .await;
    let mut registry = common::registry_body(&p.http, &p.user, &p.pass);
    registry["registry_verify"] = false.into();
    let (status, body) = app.post("/v1/registries", registry).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let tag = format!("{}/test/hello:v1", p.http);
    let (status, body) = app.post("/v1/images", json!({"tag": tag})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app
        .post(
            "/v1/subscriptions",
            json!({"subscription_type": "tag_update", "subscription_key": tag}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, key) = app
        .post("/v1/apikeys", json!({"scopes": ["credentials:read"]}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");

    let basic = |user: &str, pass: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
        )
    };
    // Headers, not schemathesis's `auth`: its global auth would override the per-operation ones.
    let config = format!(
        r#"
[headers]
Authorization = "{admin}"

[[operations]]
include-operation-id = "resolve_credential"
headers = {{ Authorization = "Bearer {key}" }}

[[operations]]
include-operation-id = "set_own_password"
headers = {{ Authorization = "{fuzzer}" }}

[[operations]]
include-path = "/v1/registries/{{registry}}/check"
checks.unsupported_method.enabled = false
checks.allow_header_conformance.enabled = false
"#,
        admin = basic("admin", &app.admin_pass),
        key = key["key"].as_str().unwrap(),
        fuzzer = basic("fuzzer", "fuzzer-pass-1"),
    );
    let dir = app.data_dir.path().join("schemathesis");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("schemathesis.toml"), config).unwrap();
    let schemathesis =
        std::path::Path::new(&var("REGKEEP_TEST_PYTHON")).with_file_name("schemathesis");
    let run = tokio::process::Command::new(&schemathesis)
        .current_dir(&dir)
        .args(["--config-file", "schemathesis.toml", "--no-color", "run"])
        .arg(format!("{}/v1/openapi.json", app.base))
        .args([
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--max-time",
            &FUZZ_SECONDS.to_string(),
            "--exclude-checks",
            "positive_data_acceptance",
            "--workers",
            "1",
            "--request-timeout",
            "20",
            // A check of schemathesis's own generator (too many drawn values filtered out for
            // one operation), not of the API: it came and went with the random seed.
            "--suppress-health-check",
            "filter_too_much",
        ])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(FUZZ_SECONDS * 4 + 60), run)
        .await
        .expect("schemathesis ends")
        .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = stdout
        .find("SUMMARY")
        .map_or(stdout.as_ref(), |at| &stdout[at..]);
    // The figures (operations, cases) for whoever runs this with --no-capture.
    println!("schemathesis on {backend:?}:\n{summary}");
    assert!(
        out.status.success(),
        "schemathesis found failures on {backend:?}:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every operation schemathesis loaded was tested, and it loaded every operation of the
    // document (it folds `/v1/` into `/v1`: one fewer).
    let (_, doc) = app.get("/v1/openapi.json").await;
    let operations: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().map_or(0, |o| o.len()))
        .sum();
    let selected = format!("Selected: {0}/{0}", operations - 1);
    let tested = format!("Tested: {}", operations - 1);
    assert!(
        summary.contains(&selected) && summary.contains(&tested),
        "every operation ({operations}, /v1/ folded into /v1) is tested: {summary}"
    );
    app.finish().await;
}
