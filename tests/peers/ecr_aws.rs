//! ECR end to end under the real host name: inside the test namespace,
//! `123456789012.dkr.ecr.us-east-1.amazonaws.com` is a TLS docker-registry (private CA) whose
//! only user is `AWS` with the password moto mints; AWS is moto with signature checking on, an
//! IMDSv2 fixture, and the ECR-API fixture. Each test is its own process (nextest), so each sets
//! the AWS environment it needs.

use crate::common;

use common::{assert_no_secrets, captured_logs, enc, Backend, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run the tests with scripts/test.sh (it runs them in the namespace with the AWS peers)"))
}

/// Points the AWS SDK at the loopback peers and removes any ambient identity.
pub(crate) fn aws_environment(ecr_endpoint: &str) {
    for name in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ] {
        std::env::remove_var(name);
    }
    std::env::set_var("AWS_ENDPOINT_URL_ECR", ecr_endpoint);
    std::env::set_var("AWS_ENDPOINT_URL_STS", var("REGKEEP_TEST_MOTO_URL"));
    std::env::set_var("AWS_CONFIG_FILE", "/nonexistent/regkeep-test/config");
    std::env::set_var(
        "AWS_SHARED_CREDENTIALS_FILE",
        "/nonexistent/regkeep-test/credentials",
    );
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
}

/// As [`aws_environment`] for moto, with the host's identity given by environment keys.
fn host_identity_from_environment_keys() {
    aws_environment(&var("REGKEEP_TEST_MOTO_URL"));
    std::env::set_var("AWS_ACCESS_KEY_ID", var("REGKEEP_TEST_AWS_ACCESS_KEY_ID"));
    std::env::set_var(
        "AWS_SECRET_ACCESS_KEY",
        var("REGKEEP_TEST_AWS_SECRET_ACCESS_KEY"),
    );
}

fn body(registry: &str, user: &str, pass: &str) -> Value {
    json!({"registry": registry, "registry_user": user, "registry_pass": pass})
}

async fn app(backend: Backend, allow_host_identity: bool) -> TestApp {
    let ca = std::path::PathBuf::from(var("REGKEEP_TEST_CA"));
    TestApp::spawn_with(backend, move |s| {
        s.tls.ca_bundle = Some(ca);
        s.allow_awsecr_iam_auto = allow_host_identity;
    })
    .await
}

const MOTO_TOKEN: &str = "123456789012-auth-token";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_static_keys_validate_and_wrong_keys_are_refused() {
    crate::skip_without_peers!();
    aws_environment(&var("REGKEEP_TEST_MOTO_URL"));
    let ecr = var("REGKEEP_TEST_REGISTRY_ECR");
    let key = var("REGKEEP_TEST_AWS_ACCESS_KEY_ID");
    let secret = var("REGKEEP_TEST_AWS_SECRET_ACCESS_KEY");
    let app = app(Backend::Sqlite, false).await;

    let cases = [
        (
            key.clone(),
            "wrong-secret-access-key-000000000000000".to_owned(),
            "SignatureDoesNotMatch",
        ),
        (
            "AKIAUNKNOWNUNKNOWN00".to_owned(),
            secret.clone(),
            "InvalidClientTokenId",
        ),
        (
            var("REGKEEP_TEST_AWS_NOPERM_ACCESS_KEY_ID"),
            var("REGKEEP_TEST_AWS_NOPERM_SECRET_ACCESS_KEY"),
            "AccessDenied",
        ),
    ];
    for (user, pass, code) in &cases {
        let (status, answer) = app.post("/v1/registries", body(&ecr, user, pass)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{code}: {answer}");
        assert_eq!(answer["detail"]["reason"], "aws_refused", "{answer}");
        let got = answer["detail"]["aws_code"].as_str().unwrap_or_default();
        assert!(
            got.contains(code)
                || (*code == "InvalidClientTokenId" && got.contains("UnrecognizedClient")),
            "expected {code}: {answer}"
        );
        assert_eq!(
            app.get("/v1/registries").await.1,
            json!([]),
            "nothing stored"
        );
    }

    // Right keys: the type is guessed, a token is minted from moto and the registry accepts it.
    let (status, answer) = app.post("/v1/registries", body(&ecr, &key, &secret)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let record = &answer[0];
    assert_eq!(record["registry_type"], "awsecr");
    let (_, got) = app.get(&format!("/v1/registries/{}", enc(&ecr))).await;
    assert!(
        got[0]["token_expires_at"].is_string(),
        "token state is visible: {got}"
    );
    assert!(got[0]["token_renewed_at"].is_string());
    assert!(got[0].get("token_last_error").is_none());
    // The image behind it resolves with the minted token (ECR end to end).
    let (status, image) = app
        .post("/v1/images", json!({"tag": format!("{ecr}/test/hello:v1")}))
        .await;
    assert_eq!(status, StatusCode::OK, "{image}");
    assert_eq!(image[0]["imageDigest"], var("REGKEEP_TEST_IMAGE_DIGEST"));
    // And its bytes come through the pull-through (what `regkeep image pull` reads), digests
    // verified here.
    let content = |path: String| {
        let request = app
            .http
            .get(format!("{}/v1/content/{ecr}/test/hello/{path}", app.base))
            .basic_auth("admin", Some(&app.admin_pass));
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            response.bytes().await.unwrap().to_vec()
        }
    };
    let manifest = content("manifests/v1".into()).await;
    assert_eq!(common::sha256(&manifest), var("REGKEEP_TEST_IMAGE_DIGEST"));
    let manifest: Value = serde_json::from_slice(&manifest).unwrap();
    for blob in [&manifest["config"], &manifest["layers"][0]] {
        let digest = blob["digest"].as_str().unwrap();
        assert_eq!(
            common::sha256(&content(format!("blobs/{digest}")).await),
            digest
        );
    }
    let everything = format!("{answer}{got}{image}{}", app.get("/v1/registries").await.1);
    assert_no_secrets("API answers", &everything, &[&secret, MOTO_TOKEN]);
    assert_no_secrets(
        "logs",
        &captured_logs(),
        &[
            &secret,
            MOTO_TOKEN,
            "wrong-secret-access-key-000000000000000",
        ],
    );
    let mut app = app;
    app.stop().await;
    let mut dump = Vec::new();
    for entry in std::fs::read_dir(app.data_dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().contains("regkeep.db") {
            dump.extend(std::fs::read(&path).unwrap());
        }
    }
    assert_no_secrets(
        "the SQLite files",
        &String::from_utf8_lossy(&dump),
        &[&secret, MOTO_TOKEN],
    );
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_assume_role_and_awsauto_from_environment_keys() {
    crate::skip_without_peers!();
    host_identity_from_environment_keys();
    let ecr = var("REGKEEP_TEST_REGISTRY_ECR");

    // Off by default: refused, naming the setting.
    let off = app(Backend::Sqlite, false).await;
    let (status, answer) = off
        .post("/v1/registries", body(&ecr, "awsauto", "awsauto"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer["message"]
        .as_str()
        .unwrap()
        .contains("allow_awsecr_iam_auto"));
    off.finish().await;

    let app = app(Backend::Sqlite, true).await;
    let role = format!("{};ext-id-1", var("REGKEEP_TEST_AWS_ROLE_ARN"));
    let (status, answer) = app
        .post("/v1/registries", body(&ecr, "_iam_role", &role))
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "assume role through moto's STS: {answer}"
    );
    let (status, _) = app.delete(&format!("/v1/registries/{}", enc(&ecr))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, answer) = app
        .post("/v1/registries", body(&ecr, "awsauto", "awsauto"))
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "awsauto from environment keys: {answer}"
    );
    assert_no_secrets(
        "logs",
        &captured_logs(),
        &[&var("REGKEEP_TEST_AWS_SECRET_ACCESS_KEY"), MOTO_TOKEN],
    );
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_awsauto_from_imdsv2() {
    crate::skip_without_peers!();
    aws_environment(&var("REGKEEP_TEST_MOTO_URL"));
    std::env::remove_var("AWS_EC2_METADATA_DISABLED");
    std::env::set_var(
        "AWS_EC2_METADATA_SERVICE_ENDPOINT",
        var("REGKEEP_TEST_IMDS_URL"),
    );
    let ecr = var("REGKEEP_TEST_REGISTRY_ECR");
    let app = app(Backend::Sqlite, true).await;
    let (status, answer) = app
        .post("/v1/registries", body(&ecr, "awsauto", "awsauto"))
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "awsauto from the instance role (IMDSv2): {answer}"
    );
    let calls: Value = reqwest::get(format!("{}/_calls", var("REGKEEP_TEST_IMDS_URL")))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let asked = calls["PUT /latest/api/token"].as_u64().unwrap_or(0);
    assert!(
        asked > 0,
        "the IMDS fixture was asked for an IMDSv2 token: {calls}"
    );
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecr_fixture_a_refused_token_is_renewed_once_and_retried_once() {
    crate::skip_without_peers!();
    aws_environment(&var("REGKEEP_TEST_ECR_FIXTURE_URL"));
    let fixture = common::EcrFixture::reset().await;
    let ecr = var("REGKEEP_TEST_REGISTRY_ECR");
    let app = app(Backend::Sqlite, false).await;
    let check = format!("/v1/registries/{}/check", enc(&ecr));

    // AWS refuses: 422 with AWS's code; the refusal is visible on the registry afterwards.
    fixture.control(json!({"fail": "denied"})).await;
    let (status, answer) = app
        .post(
            "/v1/registries",
            body(&ecr, "AKIAFIXTURE", "fixture-secret"),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert!(
        answer["detail"]["aws_code"]
            .as_str()
            .unwrap_or_default()
            .contains("AccessDenied"),
        "{answer}"
    );
    let (status, _) = app
        .post(
            "/v1/registries?validate=false",
            body(&ecr, "AKIAFIXTURE", "fixture-secret"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, got) = app.get(&format!("/v1/registries/{}", enc(&ecr))).await;
    assert!(
        got[0]["token_last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("AccessDenied"),
        "{got}"
    );
    assert_eq!(
        app.delete(&format!("/v1/registries/{}", enc(&ecr))).await.0,
        StatusCode::OK
    );
    fixture.control(json!({"fail": null})).await;
    let fixture = common::EcrFixture::reset().await;

    // Validation: AWS mints a token the registry refuses: one renewal, one retry, then a clear 422.
    fixture
        .control(json!({"token": "a-token-the-registry-refuses"}))
        .await;
    let (status, answer) = app
        .post(
            "/v1/registries",
            body(&ecr, "AKIAFIXTURE", "fixture-secret"),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["detail"]["reason"], "refused");
    assert_eq!(
        fixture.calls().await,
        2,
        "exactly one renewal after the refusal, not a loop"
    );

    // Use: the cached token is refused by the registry; one renewal (now accepted), one retry.
    let (status, _) = app
        .post(
            "/v1/registries?validate=false",
            body(&ecr, "AKIAFIXTURE", "fixture-secret"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, answer) = app.post(&check, json!({})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(
        fixture.calls().await,
        3,
        "the token cached by validation, then exactly one renewal"
    );
    fixture.control(json!({"token": MOTO_TOKEN})).await;
    let (status, answer) = app.post(&check, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["renewed_after_refusal"], true);
    assert_eq!(
        fixture.calls().await,
        4,
        "the refused cached token was renewed once"
    );
    // Now the cached token works: no more calls.
    let (status, answer) = app.post(&check, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["renewed_after_refusal"], false);
    assert_eq!(fixture.calls().await, 4);
    // Resolution alone (no login): the cached token, no call.
    let (status, answer) = app.post(&format!("{check}?login=false"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["logged_in"], false);
    assert!(answer["token_usable_until"].is_string());
    assert_no_secrets(
        "the check answer",
        &answer.to_string(),
        &[MOTO_TOKEN, "fixture-secret"],
    );
    assert_eq!(fixture.calls().await, 4);
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_awsauto_stops_working_when_the_setting_is_turned_off() {
    crate::skip_without_peers!();
    host_identity_from_environment_keys();
    let ecr = var("REGKEEP_TEST_REGISTRY_ECR");
    let app = app(Backend::Sqlite, true).await;
    let (status, answer) = app
        .post("/v1/registries", body(&ecr, "awsauto", "awsauto"))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let check = format!("/v1/registries/{}/check", enc(&ecr));
    assert_eq!(app.post(&check, json!({})).await.0, StatusCode::OK);

    let mut app = app;
    app.settings.allow_awsecr_iam_auto = false;
    let app = app.restart().await;
    let (status, answer) = app.post(&check, json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(answer["message"]
        .as_str()
        .unwrap()
        .contains("allow_awsecr_iam_auto"));
    let (status, answer) = app
        .put(
            &format!("/v1/registries/{}?validate=false", enc(&ecr)),
            body(&ecr, "awsauto", "awsauto"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    app.finish().await;
}

/// regkeep's CLI: an ECR host is guessed as `awsecr` (and says so); `awsauto` and `_iam_role`
/// work the same way, with the secret on standard input.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_cli_adds_ecr_registries_in_every_mode() {
    crate::skip_without_peers!();
    host_identity_from_environment_keys();
    let ecr = var("REGKEEP_TEST_REGISTRY_ECR");
    let app = app(Backend::Sqlite, true).await;
    let run = |args: Vec<String>, stdin: String| {
        let base = app.base.clone();
        let pass = app.admin_pass.clone();
        tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_regkeep"))
                .env_clear()
                .env("REGKEEP_URL", base)
                .env("REGKEEP_USER", "admin")
                .env("REGKEEP_PASS", pass)
                .args(&args)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(stdin.as_bytes())
                .unwrap();
            child.wait_with_output().unwrap()
        })
    };
    let secret = var("REGKEEP_TEST_AWS_SECRET_ACCESS_KEY");
    let modes = [
        (var("REGKEEP_TEST_AWS_ACCESS_KEY_ID"), secret.clone()),
        ("awsauto".to_owned(), "awsauto".to_owned()),
        ("_iam_role".to_owned(), var("REGKEEP_TEST_AWS_ROLE_ARN")),
    ];
    for (user, pass) in modes {
        let args = vec![
            "registry".into(),
            "add".into(),
            ecr.clone(),
            user.clone(),
            "--password-stdin".into(),
        ];
        let out = run(args, format!("{pass}\n")).await.unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(0), "{user}: {text}");
        assert!(
            text.contains("Type awsecr: guessed from the host") && text.contains("awsecr"),
            "{user}: {text}"
        );
        assert_no_secrets("CLI output", &text, &[&secret, MOTO_TOKEN]);
        let out = run(
            vec!["registry".into(), "del".into(), ecr.clone()],
            String::new(),
        )
        .await
        .unwrap();
        assert_eq!(out.status.code(), Some(0));
    }
    app.finish().await;
}

/// Failures before AWS answers are told apart by the SDK's error types, not by words: no identity
/// on the host is `aws_no_credentials`; a role the host's identity may not assume is AWS refusing
/// (`AssumeRoleFailed`, STS's message kept).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_no_host_identity_and_a_refused_role_say_which() {
    crate::skip_without_peers!();
    aws_environment(&var("REGKEEP_TEST_MOTO_URL"));
    let ecr = var("REGKEEP_TEST_REGISTRY_ECR");
    let app = app(Backend::Sqlite, true).await;
    let (status, answer) = app
        .post("/v1/registries", body(&ecr, "awsauto", "awsauto"))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["detail"]["reason"], "aws_no_credentials", "{answer}");
    said_briefly(&answer);
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("no AWS credentials on this host"),
        "{answer}"
    );

    // The host's identity exists but may not assume the role.
    std::env::set_var(
        "AWS_ACCESS_KEY_ID",
        var("REGKEEP_TEST_AWS_NOPERM_ACCESS_KEY_ID"),
    );
    std::env::set_var(
        "AWS_SECRET_ACCESS_KEY",
        var("REGKEEP_TEST_AWS_NOPERM_SECRET_ACCESS_KEY"),
    );
    let app2 = self::app(Backend::Sqlite, true).await;
    let role = var("REGKEEP_TEST_AWS_ROLE_ARN");
    let (status, answer) = app2
        .post("/v1/registries", body(&ecr, "_iam_role", &role))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["detail"]["reason"], "aws_refused", "{answer}");
    assert_eq!(answer["detail"]["aws_code"], "AssumeRoleFailed", "{answer}");
    said_briefly(&answer);
    assert_eq!(
        answer["detail"]["registry_status"], 403,
        "STS's status: {answer}"
    );
    assert_no_secrets(
        "answer and logs",
        &format!("{answer} {}", captured_logs()),
        &[&var("REGKEEP_TEST_AWS_NOPERM_SECRET_ACCESS_KEY")],
    );
    app.finish().await;
    app2.finish().await;
}

/// An AWS failure told in a few words: under 300 characters, never the SDK's Debug text.
pub(crate) fn said_briefly(answer: &Value) {
    let message = answer["message"].as_str().unwrap_or_default();
    assert!(message.chars().count() < 300, "{message}");
    for never in ["{", "DispatchFailure", "Extensions", "ConnectorError"] {
        assert!(!message.contains(never), "{never} in {message}");
    }
}
