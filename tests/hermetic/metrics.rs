//! `/metrics` on its own address: after a scripted run (a renewal, a failed renewal, a handout,
//! a failed login, API requests), the series say so, in the OpenMetrics text format, and carry
//! no secret. The peer tier parses the same text with Prometheus's own Python parser.

use regkeep_engine::testing::{Answer, ScriptedMinter};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::app::HermeticApp;

const ECR: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";

/// The value of the series `name` exactly as written (labels included), if present.
fn value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_happened_and_stay_off_the_api() {
    let app =
        HermeticApp::spawn_with(|s| s.metrics_listen = Some("127.0.0.1:0".parse().unwrap())).await;
    // A renewal that works, one that AWS refuses.
    let (status, body) = app
        .post(
            "/v1/registries?validate=false",
            json!({"registry": ECR, "registry_user": "AKIAMETRICS",
                   "registry_pass": "metrics-aws-secret", "registry_type": "awsecr"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app
        .post(
            &format!("/v1/registries/{}/check?login=false", crate::app::enc(ECR)),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.minter.then(Answer::Fails(ScriptedMinter::refused()));
    let (status, _) = app
        .post(
            "/v1/registries?validate=true",
            json!({"registry": "210987654321.dkr.ecr.eu-west-1.amazonaws.com",
                   "registry_user": "AKIAREFUSED", "registry_pass": "refused-secret",
                   "registry_type": "awsecr"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // A handout, a failed login, a listing.
    let (status, made) = app
        .post("/v1/apikeys", json!({"scopes": ["credentials:read"]}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let key = made["key"].as_str().unwrap().to_owned();
    let (status, handout) = app
        .with_key(
            &key,
            Method::POST,
            "/v1/credentials/resolve",
            Some(json!({"registry": ECR})),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{handout}");
    let (status, _) = app
        .as_user(
            "admin",
            "not-the-password",
            Method::GET,
            "/v1/registries",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.get("/v1/registries").await.0, StatusCode::OK);

    let url = app.metrics_url.clone().expect("metrics_listen is served");
    let response = reqwest::get(&url).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = response.text().await.unwrap();
    for (series, want) in [
        ("regkeep_aws_calls_total", 2.0),
        ("regkeep_ecr_renewals_total{outcome=\"ok\"}", 1.0),
        (
            "regkeep_ecr_renewals_total{outcome=\"UnrecognizedClientException\"}",
            1.0,
        ),
        (
            "regkeep_credential_handouts_total{registry_type=\"awsecr\"}",
            1.0,
        ),
        (
            "regkeep_auth_failures_total{kind=\"password\",reason=\"wrong_credentials_or_disabled\"}",
            1.0,
        ),
        (
            "regkeep_http_request_duration_seconds_count{route=\"/v1/registries\",method=\"GET\",status=\"200\"}",
            1.0,
        ),
        (
            "regkeep_http_request_duration_seconds_count{route=\"/v1/registries\",method=\"GET\",status=\"401\"}",
            1.0,
        ),
        (
            "regkeep_http_request_duration_seconds_count{route=\"/v1/credentials/resolve\",method=\"POST\",status=\"200\"}",
            1.0,
        ),
    ] {
        assert_eq!(value(&text, series), Some(want), "{series} in:\n{text}");
    }
    let left = value(
        &text,
        "regkeep_ecr_token_seconds_left{ecr_host=\"123456789012.dkr.ecr.us-east-1\"}",
    )
    .expect("the kept token's remaining life");
    assert!(left > 11.0 * 3600.0, "{left}");
    assert!(text.trim_end().ends_with("# EOF"));
    assert!(!text.contains(&key[20..]) && !text.contains(handout["secret"].as_str().unwrap()));
    assert!(!text.contains("metrics-aws-secret") && !text.contains("AKIAMETRICS"));
    // Never on the API.
    assert_eq!(app.get("/metrics").await.0, StatusCode::NOT_FOUND);
    app.stop().await;
}
