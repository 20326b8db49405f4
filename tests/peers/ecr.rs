//! The ECR token lifecycle (docs/design.md §3.4) driven by an injected clock against the small ECR-API
//! fixture (`fixtures/ecr_api.py`, since moto cannot choose token lifetimes or fail on demand).
//! The fixture counts the GetAuthorizationToken calls it answers; tests that use it run one at a
//! time (nextest test group `ecr-fixture`, `.config/nextest.toml`).

use crate::common;

use common::EcrFixture;

use std::sync::Arc;
use std::time::Duration;

use regkeep_domain::{Clock, ManualClock, Secret, SystemClock};
use regkeep_ecr::{AwsCredentialSource, EcrClient, EcrTarget};
use regkeep_engine::ecr_tokens::{EcrTokens, LifecycleSettings, TokenRequest};
use regkeep_store::{KeySource, Store};
use serde_json::json;

fn request() -> TokenRequest {
    TokenRequest {
        key: "keys:AKIATEST:fp|aws|us-east-1|123456789012".into(),
        source: AwsCredentialSource::StaticKeys {
            access_key_id: "AKIATEST".into(),
            secret_access_key: Secret::new("fixture-secret-key"),
        },
        target: EcrTarget::Private {
            account: "123456789012".into(),
            region: "us-east-1".into(),
            fips: false,
            dual_stack: false,
        },
    }
}

async fn store(dir: &std::path::Path) -> Store {
    let url = format!("sqlite://{}", dir.join("regkeep.db").display());
    Store::open(&url, &KeySource::File(dir.join("secret.key")))
        .await
        .unwrap()
}

/// A token lifecycle on the store in `dir`, with the test clock and an AWS timeout in seconds.
async fn lifecycle(
    dir: &std::path::Path,
    clock: &Arc<ManualClock>,
    timeout_secs: u64,
) -> Arc<EcrTokens> {
    Arc::new(EcrTokens::new(
        Arc::new(EcrClient::new(Duration::from_secs(timeout_secs))),
        Arc::new(store(dir).await),
        clock.clone(),
        settings(),
    ))
}

fn settings() -> LifecycleSettings {
    LifecycleSettings {
        min_backoff: Duration::from_secs(10),
        max_backoff: Duration::from_secs(600),
        ..LifecycleSettings::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecr_fixture_cold_cache_single_flight_and_restart_reuse() {
    crate::skip_without_peers!();
    let fixture = EcrFixture::reset().await;
    fixture.control(json!({"lifetime_seconds": 43200})).await;
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at(SystemClock.now()));
    let tokens = lifecycle(dir.path(), &clock, 10).await;

    // 1,000 concurrent resolutions on a cold cache: exactly one AWS call.
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let tokens = tokens.clone();
        tasks.push(tokio::spawn(async move { tokens.token(&request()).await }));
    }
    for task in tasks {
        let token = task.await.unwrap().expect("every resolution succeeds");
        assert_eq!(token.username, "AWS");
        assert_eq!(token.password.expose(), "123456789012-auth-token");
    }
    assert_eq!(tokens.aws_calls(), 1);
    assert_eq!(fixture.calls().await, 1);

    // A restart (a new cache on the same store) reuses the persisted token: zero calls.
    let restarted = lifecycle(dir.path(), &clock, 10).await;
    let token = restarted.token(&request()).await.unwrap();
    assert_eq!(token.password.expose(), "123456789012-auth-token");
    assert_eq!(restarted.aws_calls(), 0);
    assert_eq!(fixture.calls().await, 1);

    // AWS unreachable (nothing listens there) while the token is valid: every resolution
    // succeeds from the persisted copy.
    std::env::set_var("AWS_ENDPOINT_URL_ECR", "http://127.0.0.1:1");
    let offline = lifecycle(dir.path(), &clock, 5).await;
    for _ in 0..100 {
        assert!(offline.token(&request()).await.is_ok());
    }
    // Expired and still unreachable: a clear error that names the cause.
    clock.advance(Duration::from_secs(13 * 3600));
    let err = offline
        .token(&request())
        .await
        .expect_err("expired and unreachable");
    assert!(err.to_string().contains("unavailable"), "{err}");
    assert_eq!(fixture.calls().await, 1);

    // Nothing in the database file holds the token in plain text.
    let mut dump = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().contains("regkeep.db") {
            dump.extend(std::fs::read(&path).unwrap());
        }
    }
    common::assert_no_secrets(
        "the SQLite files",
        &String::from_utf8_lossy(&dump),
        &["123456789012-auth-token", "fixture-secret-key"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecr_fixture_renewal_at_half_life_and_failures_keep_the_valid_token() {
    crate::skip_without_peers!();
    let fixture = EcrFixture::reset().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at(SystemClock.now()));
    fixture.lifetime_from(&clock, 43200).await;
    let tokens = lifecycle(dir.path(), &clock, 10).await;
    tokens.token(&request()).await.unwrap();
    assert_eq!(fixture.calls().await, 1);

    // Before half-life nothing is due; after it, the background step renews once.
    clock.advance(Duration::from_secs(6 * 3600 - 60));
    assert_eq!(tokens.renew_due_once().await, (0, 0));
    clock.advance(Duration::from_secs(120));
    fixture.lifetime_from(&clock, 43200).await;
    assert_eq!(tokens.renew_due_once().await, (1, 0));
    assert_eq!(fixture.calls().await, 2);

    // AWS unavailable at the next half-life: renewal fails, every use still gets the valid token.
    fixture.control(json!({"fail": "unavailable"})).await;
    clock.advance(Duration::from_secs(6 * 3600 + 60));
    assert_eq!(tokens.renew_due_once().await, (0, 1));
    for _ in 0..100 {
        assert!(tokens.token(&request()).await.is_ok());
    }
    // Backing off: an immediate second pass makes no call.
    let calls = fixture.calls().await;
    assert_eq!(tokens.renew_due_once().await, (0, 0));
    assert_eq!(fixture.calls().await, calls);

    // Past the expiry, with AWS still down: a clear error naming AWS's answer.
    clock.advance(Duration::from_secs(6 * 3600 + 60));
    let err = tokens
        .token(&request())
        .await
        .expect_err("expired and unrenewable");
    let text = err.to_string();
    assert!(
        text.contains("ServiceUnavailable") || text.contains("unavailable"),
        "{text}"
    );

    // AWS back: the next attempt after the backoff succeeds.
    clock.advance(Duration::from_secs(700));
    fixture
        .control(json!({"fail": null, "expires_at": clock.now().unix() + 43200}))
        .await;
    assert!(tokens.token(&request()).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecr_fixture_token_expired_on_arrival_is_used_for_the_floor() {
    crate::skip_without_peers!();
    let fixture = EcrFixture::reset().await;
    let now = SystemClock.now();
    // The answer says the token expired 100 s ago (clocks disagree, or moto).
    fixture
        .control(json!({"expires_at": now.unix() - 100}))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at(now));
    let tokens = lifecycle(dir.path(), &clock, 10).await;
    for _ in 0..200 {
        tokens
            .token(&request())
            .await
            .expect("used despite the expiry in the answer");
    }
    assert_eq!(fixture.calls().await, 1, "not one call per use");
    clock.advance(Duration::from_secs(50));
    tokens.token(&request()).await.unwrap();
    assert_eq!(fixture.calls().await, 1, "still within the 60 s floor");
    clock.advance(Duration::from_secs(15));
    tokens.token(&request()).await.unwrap();
    assert_eq!(fixture.calls().await, 2, "after the floor, one new call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecr_fixture_throttling_backs_off_longer() {
    crate::skip_without_peers!();
    let fixture = EcrFixture::reset().await;
    fixture.control(json!({"fail": "throttle"})).await;
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at(SystemClock.now()));
    let tokens = lifecycle(dir.path(), &clock, 10).await;
    let err = tokens.token(&request()).await.expect_err("throttled");
    assert!(err.to_string().contains("ThrottlingException"), "{err}");
    let calls = fixture.calls().await;
    // Within the throttled backoff (at least min_backoff × throttle_factor × 0.5 = 20 s), uses
    // get the cause without calling AWS again.
    clock.advance(Duration::from_secs(15));
    let err = tokens
        .token(&request())
        .await
        .expect_err("still backing off");
    assert!(err.to_string().contains("next attempt"), "{err}");
    assert_eq!(fixture.calls().await, calls);
}
