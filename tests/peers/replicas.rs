//! Several replicas on one PostgreSQL: what one replica writes, the others stop believing at once
//! (LISTEN/NOTIFY), not when their caches expire. The caches here live ten minutes, so only a
//! notification can explain the second replica's answer.

use crate::common;

use std::time::Duration;

use common::{Backend, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Asks until `check` holds (the notification travels through PostgreSQL); fails after 10 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let mut last = String::new();
    for _ in 0..200 {
        match check().await {
            Ok(()) => return,
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: never happened; last answer {last}");
}

fn long_caches(s: &mut regkeep_server::settings::Settings) {
    s.auth_cache_seconds = 600;
    s.registry_cache_seconds = 600;
}

async fn as_user(app: &TestApp, user: &str, pass: &str, path: &str) -> (StatusCode, Value) {
    app.request(Method::GET, path, None, Some((user, pass)), None)
        .await
}

async fn bearer(app: &TestApp, key: &str, path: &str) -> StatusCode {
    app.http
        .get(format!("{}{path}", app.base))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_forget_what_another_replica_changed() {
    crate::skip_without_peers!();
    let a = TestApp::spawn_with(Backend::Postgres, long_caches).await;
    let mut b = a.replica(long_caches).await;
    a.add_account_with_user("team-r", "rita", "rita-pass-1")
        .await;

    // B remembers rita's login; A changes her password: B refuses the old one, takes the new.
    assert_eq!(
        as_user(&b, "rita", "rita-pass-1", "/v1/registries").await.0,
        StatusCode::OK
    );
    let (status, body) = a
        .post(
            "/v1/accounts/team-r/users/rita/credentials",
            json!({"type": "password", "value": "rita-pass-2"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    eventually("B refuses rita's old password", || async {
        match as_user(&b, "rita", "rita-pass-1", "/v1/registries").await {
            (StatusCode::UNAUTHORIZED, _) => Ok(()),
            (s, body) => Err(format!("{s} {body}")),
        }
    })
    .await;
    assert_eq!(
        as_user(&b, "rita", "rita-pass-2", "/v1/registries").await.0,
        StatusCode::OK
    );

    // A registry record B has cached: renamed on A, B shows the new name.
    let (status, body) = a
        .request(
            Method::POST,
            "/v1/registries?validate=false",
            Some(json!({"registry": "reg.example.com", "registry_user": "u",
                        "registry_pass": "p", "registry_type": "docker_v2",
                        "registry_name": "before"})),
            Some(("rita", "rita-pass-2")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, record) = as_user(&b, "rita", "rita-pass-2", "/v1/registries/reg.example.com").await;
    assert_eq!(record[0]["registry_name"], "before");
    let (status, body) = a
        .request(
            Method::PUT,
            "/v1/registries/reg.example.com?validate=false",
            Some(json!({"registry": "reg.example.com", "registry_user": "u",
                        "registry_pass": "p", "registry_type": "docker_v2",
                        "registry_name": "after"})),
            Some(("rita", "rita-pass-2")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    eventually("B shows the renamed registry", || async {
        let (_, record) =
            as_user(&b, "rita", "rita-pass-2", "/v1/registries/reg.example.com").await;
        if record[0]["registry_name"] == "after" {
            Ok(())
        } else {
            Err(record.to_string())
        }
    })
    .await;

    // An API key used on B, revoked on A: B refuses it.
    let (status, made) = a
        .request(
            Method::POST,
            "/v1/apikeys",
            Some(json!({"scopes": ["read"]})),
            Some(("rita", "rita-pass-2")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let key = made["key"].as_str().unwrap().to_owned();
    assert_eq!(bearer(&b, &key, "/v1/registries").await, StatusCode::OK);
    let id = made["key_id"].as_str().unwrap();
    let (status, _) = a
        .request(
            Method::DELETE,
            &format!("/v1/apikeys/{id}"),
            None,
            Some(("rita", "rita-pass-2")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    eventually("B refuses the revoked key", || async {
        match bearer(&b, &key, "/v1/registries").await {
            StatusCode::UNAUTHORIZED => Ok(()),
            s => Err(s.to_string()),
        }
    })
    .await;

    // The account disabled on A: B refuses rita's (remembered) login.
    let (status, body) = a
        .put("/v1/accounts/team-r/state", json!({"state": "disabled"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    eventually("B refuses a disabled account's user", || async {
        match as_user(&b, "rita", "rita-pass-2", "/v1/registries").await {
            (StatusCode::FORBIDDEN, _) => Ok(()),
            (s, body) => Err(format!("{s} {body}")),
        }
    })
    .await;
    b.stop().await;
    a.finish().await;
}

/// Three replicas cold-started together on one PostgreSQL, 300 uses of one ECR registry spread
/// across them while the (ECR-API fixture's) answer is held back: one GetAuthorizationToken call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecr_fixture_three_replicas_cold_started_together_make_one_aws_call() {
    crate::skip_without_peers!();
    let fixture = common::EcrFixture::reset().await;
    fixture
        .control(json!({"lifetime_seconds": 43200, "delay_seconds": 1.0}))
        .await;
    let a = TestApp::spawn(Backend::Postgres).await;
    let mut b = a.replica(|_| {}).await;
    let mut c = a.replica(|_| {}).await;
    let ecr = common::var("REGKEEP_TEST_REGISTRY_ECR");
    let (status, body) = a
        .post(
            "/v1/registries?validate=false",
            json!({"registry": ecr, "registry_user": "AKIAREPLICAS",
                   "registry_pass": "replicas-secret", "registry_type": "awsecr"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let path = format!("/v1/registries/{}/check?login=false", common::enc(&ecr));
    let mut uses = Vec::new();
    for i in 0..300 {
        let app = [&a, &b, &c][i % 3];
        let (base, pass, http, path) = (
            app.base.clone(),
            app.admin_pass.clone(),
            app.http.clone(),
            path.clone(),
        );
        uses.push(tokio::spawn(async move {
            http.post(format!("{base}{path}"))
                .basic_auth("admin", Some(pass))
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for used in uses {
        assert_eq!(used.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(fixture.calls().await, 1, "one AWS call for three replicas");
    let aws_calls: u64 = [&a, &b, &c]
        .iter()
        .map(|app| app.engine.ecr_tokens().aws_calls())
        .sum();
    assert_eq!(aws_calls, 1);
    fixture.control(json!({"delay_seconds": 0.0})).await;
    c.stop().await;
    b.stop().await;
    a.finish().await;
}
