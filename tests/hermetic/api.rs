//! The registries and images API end to end on the real server, with the in-process fake registry
//! (Basic and Bearer) and the scripted ECR minter.

use std::time::Duration;

use regkeep_engine::testing::{Answer, ScriptedMinter};
use reqwest::StatusCode;
use serde_json::json;

use crate::app::{enc, HermeticApp};
use crate::fake_registry::{Auth, FakeRegistry, PASS, USER};

const ECR: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";

fn registry_body(registry: &str, user: &str, pass: &str) -> serde_json::Value {
    json!({"registry": registry, "registry_user": user, "registry_pass": pass,
           "registry_type": "docker_v2", "registry_verify": false})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_and_bearer_registries_are_validated_with_their_credentials() {
    let app = HermeticApp::spawn().await;
    for auth in [Auth::Basic, Auth::Bearer] {
        let registry = FakeRegistry::start(auth).await;
        let (status, body) = app
            .post(
                "/v1/registries?validate=true",
                registry_body(&registry.authority, USER, "not-the-password"),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{auth:?}: {body}");
        assert_eq!(body["httpcode"], 422, "{body}");
        assert!(
            !body.to_string().contains("not-the-password"),
            "no secret in the answer: {body}"
        );
        assert!(registry.refused() >= 1, "{auth:?}: the registry refused");

        let (status, body) = app
            .post(
                "/v1/registries?validate=true",
                registry_body(&registry.authority, USER, PASS),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{auth:?}: {body}");
        assert_eq!(body[0]["registry"], registry.authority.as_str());
        assert!(!body.to_string().contains(PASS), "{body}");
        if auth == Auth::Bearer {
            assert!(registry.token_requests() >= 2, "a token was asked for");
        }
        let (status, list) = app.get("/v1/registries").await;
        assert_eq!(status, StatusCode::OK);
        assert!(list
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["registry"] == registry.authority.as_str()));
    }
    app.assert_no_secrets(&[PASS, "not-the-password", "hermetic-bearer-token"]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_is_resolved_through_the_registered_credential() {
    let app = HermeticApp::spawn().await;
    let registry = FakeRegistry::start(Auth::Bearer).await;
    let (status, body) = app
        .post(
            "/v1/registries?validate=false",
            registry_body(&registry.authority, USER, PASS),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let tag = format!("{}/app:1.0", registry.authority);
    let (status, body) = app.post("/v1/images", json!({"tag": tag})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let image = &body[0];
    assert_eq!(image["imageDigest"], registry.manifest_digest(), "{body}");
    assert_eq!(image["image_detail"][0]["fulltag"], tag.as_str(), "{body}");
    assert_eq!(
        image["image_detail"][0]["imageId"],
        registry.image_id(),
        "{body}"
    );
    assert_eq!(image["analysis_status"], "not_analyzed");

    let (status, body) = app
        .get(&format!("/v1/images/{}", registry.manifest_digest()))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A tag the registry does not have: a 4xx that says so, not a 500.
    let (status, body) = app
        .post(
            "/v1/images",
            json!({"tag": format!("{}/app:missing", registry.authority)}),
        )
        .await;
    assert!(status.is_client_error(), "{status}: {body}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecr_keys_aws_refuses_are_refused_with_aws_words() {
    let app = HermeticApp::spawn().await;
    app.minter.always(Answer::Fails(ScriptedMinter::refused()));
    let (status, body) = app
        .post(
            "/v1/registries?validate=true",
            json!({"registry": ECR, "registry_user": "AKIAHERMETIC",
                   "registry_pass": "hermetic-aws-secret", "registry_type": "awsecr"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let text = body.to_string();
    assert!(text.contains("UnrecognizedClientException"), "{text}");
    assert!(!text.contains("hermetic-aws-secret"), "{text}");
    assert_eq!(app.minter.calls(), 1);
    let (status, list) = app.get("/v1/registries").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list, json!([]), "nothing stored");
    app.assert_no_secrets(&["hermetic-aws-secret"]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_ecr_registry_is_never_renewed_by_the_running_server() {
    let app = HermeticApp::spawn().await;
    let (status, body) = app
        .post(
            "/v1/registries?validate=false",
            json!({"registry": ECR, "registry_user": "AKIAHERMETIC",
                   "registry_pass": "hermetic-aws-secret", "registry_type": "awsecr"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The credential is resolved (a token minted) without contacting the registry.
    let (status, body) = app
        .post(
            &format!("/v1/registries/{}/check?login=false", enc(ECR)),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        !body.to_string().contains("fake-ecr-token"),
        "no token in the answer: {body}"
    );
    assert_eq!(app.minter.calls(), 1);
    let (status, body) = app.delete(&format!("/v1/registries/{}", enc(ECR))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for _ in 0..2 {
        app.clock.advance(Duration::from_secs(6 * 3600 + 60));
        app.engine.ecr_tokens().renew_due_once().await;
    }
    assert_eq!(app.minter.calls(), 1, "no mint after the delete");
    assert_eq!(app.engine.ecr_tokens().kept(), 0);
    app.assert_no_secrets(&["hermetic-aws-secret", "fake-ecr-token"]);
    app.stop().await;
}

/// `min_password_length` (default 8) on user passwords set through the API: a 5-character one is
/// refused naming the setting; registry passwords are never measured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_passwords_shorter_than_the_minimum_are_refused_naming_the_setting() {
    let app = HermeticApp::spawn().await;
    let (status, body) = app.post("/v1/accounts", json!({"name": "pw-team"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app
        .post(
            "/v1/accounts/pw-team/users",
            json!({"username": "pat", "password": "12345"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("min_password_length"), "{message}");
    assert!(!message.contains("12345"), "{message}");
    let (status, body) = app
        .post(
            "/v1/accounts/pw-team/users",
            json!({"username": "pat", "password": "12345678"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A registry password of one character is the registry's business.
    let (status, body) = app
        .post(
            "/v1/registries?validate=false",
            registry_body("short.example.com", "u", "x"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.stop().await;
}
