//! Tag watching end to end: subscriptions through the API and the CLI, the background poller
//! against the real CNCF registry (a tag moved with skopeo becomes an image record and an event
//! within two intervals), bad input, and — with an injected clock and the ECR-API fixture — 72
//! simulated hours of polling an ECR repository under its real host name across the token's
//! renewals with no failed poll.

use crate::common;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{assert_no_secrets, captured_logs, peers, random_hex, Backend, TestApp};
use regkeep_domain::wire::{RegistryConfigurationRequest, SubscriptionRequest};
use regkeep_domain::{AccountName, Clock, ManualClock, Secret, SystemClock, Timestamp};
use regkeep_ecr::EcrClient;
use regkeep_engine::{Engine, EngineConfig, LifecycleSettings, WatchSettings};
use regkeep_registry::{Outbound, RegistryClient, Timeouts, TlsSettings};
use regkeep_store::{KeySource, Store};
use reqwest::StatusCode;
use serde_json::{json, Value};

on_both_backends!(a_moved_tag_becomes_an_image_and_an_event);

const BIN: &str = env!("CARGO_BIN_EXE_regkeep");
const INTERVAL: u64 = 5;

fn var(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run the tests with scripts/test.sh"))
}

/// skopeo copies `from` to `to` in the plain-HTTP Basic registry (its auth file from the peers).
fn retag(registry: &str, from: &str, to: &str) {
    let authfile = format!("{}/auth.json", var("REGKEEP_TEST_PEERS_DIR"));
    let out = Command::new(var("REGKEEP_TEST_SKOPEO"))
        .args([
            "--insecure-policy",
            "copy",
            "-q",
            "--all",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--authfile",
            &authfile,
            &format!("docker://{registry}/{from}"),
            &format!("docker://{registry}/{to}"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo copy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The size of the arm64 manifest of test/multi (for an index that names it).
async fn arm64_manifest_size(p: &common::Peers) -> usize {
    let response = reqwest::Client::new()
        .get(format!(
            "http://{}/v2/test/multi/manifests/{}",
            p.http,
            var("REGKEEP_TEST_MULTI_ARM64_DIGEST")
        ))
        .basic_auth(&p.user, Some(&p.pass))
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    response.bytes().await.unwrap().len()
}

async fn tag_update_events(app: &TestApp) -> Vec<Value> {
    let (status, list) = app
        .get("/v1/events?event_type=user.checks.tag_update")
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list["results"].as_array().unwrap().clone()
}

async fn a_moved_tag_becomes_an_image_and_an_event(backend: Backend) {
    let p = peers();
    let app = TestApp::spawn_with(backend, |s| s.watch.interval_seconds = INTERVAL).await;
    app.add_plain_http_registry(&p.http, &p.user, &p.pass).await;
    let repo = format!("watch/{}", random_hex(4));
    retag(&p.http, "test/hello:v1", &format!("{repo}:latest"));
    let key = format!("{}/{repo}:latest", p.http);

    // Subscribing polls at once: the answer has the digest the tag points at now. No event yet.
    let (status, subs) = app
        .post(
            "/v1/subscriptions",
            json!({"subscription_type": "tag_update", "subscription_key": key}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{subs}");
    let sub = &subs[0];
    let id = sub["subscription_id"].as_str().unwrap().to_owned();
    assert_eq!(sub["subscription_key"], key.as_str());
    assert_eq!(sub["active"], true);
    assert_eq!(sub["userId"], "admin");
    assert_eq!(
        sub["last_digest"],
        var("REGKEEP_TEST_IMAGE_DIGEST").as_str()
    );
    assert!(sub["last_error"].is_null(), "{sub}");
    assert!(tag_update_events(&app).await.is_empty());
    let (_, images) = app
        .get(&format!("/v1/images/{}", var("REGKEEP_TEST_IMAGE_DIGEST")))
        .await;
    assert_eq!(
        images[0]["image_detail"][0]["fulltag"],
        key.as_str(),
        "{images}"
    );

    // Move the tag: within two intervals the poller records the new image and an event.
    let moved_to = var("REGKEEP_TEST_MULTI_DIGEST");
    retag(&p.http, "test/multi:v1", &format!("{repo}:latest"));
    let pushed = Instant::now();
    let events = loop {
        let events = tag_update_events(&app).await;
        if !events.is_empty() || pushed.elapsed() > Duration::from_secs(2 * INTERVAL) {
            break events;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        events.len(),
        1,
        "one event within two intervals ({INTERVAL} s each): {events:?}"
    );
    let event = &events[0]["event"];
    assert_eq!(event["type"], "user.checks.tag_update");
    assert_eq!(event["level"], "INFO");
    assert_eq!(event["resource"]["type"], "image_tag");
    assert_eq!(event["resource"]["id"], key.as_str());
    assert_eq!(event["resource"]["user_id"], "admin");
    assert_eq!(event["details"]["digest"], moved_to.as_str());
    assert_eq!(
        event["details"]["previous_digest"],
        var("REGKEEP_TEST_IMAGE_DIGEST").as_str()
    );
    assert_eq!(event["details"]["subscription_id"], id.as_str());
    let (status, images) = app.get(&format!("/v1/images/{moved_to}")).await;
    assert_eq!(status, StatusCode::OK, "{images}");
    assert_eq!(
        images[0]["manifest_digest"],
        var("REGKEEP_TEST_MULTI_AMD64_DIGEST").as_str()
    );
    let (_, subs) = app.get(&format!("/v1/subscriptions/{id}")).await;
    assert_eq!(subs[0]["last_digest"], moved_to.as_str());

    // Polls that find nothing new add no event.
    tokio::time::sleep(Duration::from_secs(INTERVAL + 2)).await;
    assert_eq!(tag_update_events(&app).await.len(), 1);

    // A tag whose image has no linux/amd64 (an index of arm64 only) is watched all the same:
    // its record is resolved for the platform it has.
    let arm_only = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": var("REGKEEP_TEST_MULTI_ARM64_DIGEST"),
            "size": arm64_manifest_size(&p).await,
            "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"},
        }],
    });
    let arm_tag = format!("arm-only-{}", random_hex(4));
    let (arm_digest, _) = common::push_manifest(
        &reqwest::Client::new(),
        &format!("http://{}", p.http),
        "test/multi",
        (&p.user, &p.pass),
        &arm_tag,
        "application/vnd.oci.image.index.v1+json",
        &arm_only,
    )
    .await;
    let arm_key = format!("{}/test/multi:{arm_tag}", p.http);
    let (status, subs) = app
        .post(
            "/v1/subscriptions",
            json!({"subscription_type": "tag_update", "subscription_key": arm_key}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{subs}");
    assert_eq!(subs[0]["last_digest"], arm_digest.as_str(), "{subs}");
    assert!(subs[0]["last_error"].is_null(), "{subs}");
    let (_, images) = app.get(&format!("/v1/images/{arm_digest}")).await;
    assert_eq!(images[0]["platform"], "linux/arm64/v8", "{images}");
    let arm_id = subs[0]["subscription_id"].as_str().unwrap().to_owned();
    let (status, body) = app.delete(&format!("/v1/subscriptions/{arm_id}")).await;
    assert_eq!(status, StatusCode::OK, "Anchore answers 200: {body}");
    assert_eq!(body, json!(true));

    // A tag that does not exist: the subscription is kept, with the reason, and one ERROR event.
    let missing = format!("{}/{repo}:nope", p.http);
    let (status, subs) = app
        .post(
            "/v1/subscriptions",
            json!({"subscription_type": "tag_update", "subscription_key": missing}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{subs}");
    assert!(subs[0]["last_digest"].is_null());
    assert!(
        subs[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("not found"),
        "{subs}"
    );
    assert_eq!(subs[0]["failures"], 1);
    let (_, errors) = app.get("/v1/events?level=error").await;
    assert_eq!(
        errors["results"][0]["event"]["type"],
        "system.image_analysis.registry_lookup_failed"
    );
    assert_eq!(
        errors["results"][0]["event"]["resource"]["id"],
        missing.as_str()
    );

    // Bad input: each a 4xx naming the fix; nothing stored.
    for (body, want, says) in [
        (
            json!({"subscription_type": "vuln_update", "subscription_key": key}),
            StatusCode::BAD_REQUEST,
            "tag_update",
        ),
        (
            json!({"subscription_type": "tag_update", "subscription_key": format!("{key}@{moved_to}")}),
            StatusCode::BAD_REQUEST,
            "watch a tag",
        ),
        (
            json!({"subscription_type": "tag_update", "subscription_key": "UPPER/Case:x"}),
            StatusCode::BAD_REQUEST,
            "subscription_key",
        ),
        (
            json!({"subscription_type": "tag_update"}),
            StatusCode::BAD_REQUEST,
            "subscription_key",
        ),
        (
            json!({"subscription_type": "tag_update", "subscription_key": key}),
            StatusCode::CONFLICT,
            "already watches",
        ),
    ] {
        let (status, answer) = app.post("/v1/subscriptions", body.clone()).await;
        assert_eq!(status, want, "{body}: {answer}");
        assert!(
            answer["message"].as_str().unwrap().contains(says),
            "{body}: {answer}"
        );
    }
    let (_, all) = app.get("/v1/subscriptions").await;
    assert_eq!(all.as_array().unwrap().len(), 2, "{all}");
    let (status, _) = app.get("/v1/events?limit=0").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = app.get("/v1/events?since=yesterday").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Another account sees none of it.
    let (status, _) = app
        .post(
            "/v1/accounts",
            json!({"name": "other", "email": "o@example.com"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, theirs) = app
        .request(
            reqwest::Method::GET,
            "/v1/subscriptions",
            None,
            None,
            Some("other"),
        )
        .await;
    assert_eq!(theirs, json!([]));
    let (_, theirs) = app
        .request(
            reqwest::Method::GET,
            "/v1/events",
            None,
            None,
            Some("other"),
        )
        .await;
    assert_eq!(theirs["item_count"], 0);

    // The CLI: list, events, deactivate by deleting.
    let cli = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .env_clear()
            .env("REGKEEP_URL", &app.base)
            .env("REGKEEP_USER", "admin")
            .env("REGKEEP_PASS", &app.admin_pass)
            .output()
            .unwrap()
    };
    let out = cli(&["subscription", "list"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains(&key) && text.contains(&moved_to),
        "{text}"
    );
    let out = cli(&["--json", "event", "list", "--type", "user.checks"]);
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list["item_count"], 1, "{list}");
    let out = cli(&["subscription", "deactivate", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("inactive"));
    let out = cli(&["--json", "subscription", "activate", &id]);
    let subs: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(subs[0]["active"], true, "{subs}");
    let out = cli(&["subscription", "del", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(&["subscription", "del", &id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    let out = cli(&[
        "subscription",
        "add",
        &format!("{}/{repo}:latest", p.http),
        "--inactive",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("inactive"));

    // anchore-cli 0.9.3, unmodified: list, deactivate, activate, get, del by id.
    let anchore = |args: &[&str]| {
        let home = app.data_dir.path().join("anchore-home");
        std::fs::create_dir_all(&home).unwrap();
        let out = Command::new(&p.anchore_cli)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("LC_ALL", "C.UTF-8")
            .env("ANCHORE_CLI_URL", format!("{}/v1", app.base))
            .env("ANCHORE_CLI_USER", "admin")
            .env("ANCHORE_CLI_PASS", &app.admin_pass)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };
    let (code, text) = anchore(&["subscription", "list"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains(&missing) && text.contains("tag_update"),
        "{text}"
    );
    let (code, text) = anchore(&["subscription", "deactivate", "tag_update", &missing]);
    assert_eq!(code, Some(0), "{text}");
    let (_, subs) = app
        .get(&format!("/v1/subscriptions?subscription_key={missing}"))
        .await;
    assert_eq!(subs[0]["active"], false, "{subs}");
    let (code, text) = anchore(&["subscription", "activate", "tag_update", &missing]);
    assert_eq!(code, Some(0), "{text}");
    let (_, subs) = app
        .get(&format!("/v1/subscriptions?subscription_key={missing}"))
        .await;
    assert_eq!(subs[0]["active"], true, "{subs}");
    let missing_id = subs[0]["subscription_id"].as_str().unwrap().to_owned();
    let (code, text) = anchore(&["subscription", "get", &missing_id]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains(&missing), "{text}");
    let (code, text) = anchore(&["subscription", "del", &missing_id]);
    assert_eq!(code, Some(0), "{text}");
    let (status, _) = app.get(&format!("/v1/subscriptions/{missing_id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    assert_no_secrets("server logs", &captured_logs(), &[&p.pass]);
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecr_fixture_72_hours_of_polling_across_token_renewals() {
    crate::skip_without_peers!();
    let _ = captured_logs(); // start capturing now
    let ecr = var("REGKEEP_TEST_REGISTRY_ECR");
    let fixture = common::EcrFixture::reset().await;

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("regkeep.db").display());
    let store = Store::open(&url, &KeySource::File(dir.path().join("secret.key")))
        .await
        .unwrap();
    let start = SystemClock.now().unix();
    let clock = Arc::new(ManualClock::at(Timestamp::from_unix(start)));
    let tls = TlsSettings::new(Some(std::path::Path::new(&var("REGKEEP_TEST_CA"))), None).unwrap();
    let engine = Engine::new(
        store.clone(),
        Arc::new(RegistryClient::new(
            Timeouts::default(),
            tls,
            Outbound::allowing_loopback(),
        )),
        Arc::new(EcrClient::new(Duration::from_secs(10))),
        clock.clone(),
        EngineConfig {
            registry_cache_ttl: Duration::from_secs(5),
            ecr: LifecycleSettings::default(),
            watch: WatchSettings {
                interval: Duration::from_secs(300),
                concurrency: 4,
                registry_requests_per_second: 0,
                batch: 100,
                event_retention: Duration::from_secs(24 * 3600),
            },
            ..EngineConfig::default()
        },
    );
    let admin = AccountName::admin();
    engine
        .accounts()
        .bootstrap_admin(&Secret::new("admin-pass"))
        .await
        .unwrap();
    const TOKEN_LIFE: i64 = 12 * 3600;
    fixture
        .control(json!({"expires_at": start + TOKEN_LIFE}))
        .await;
    engine
        .registries()
        .add_registry(
            &admin,
            RegistryConfigurationRequest {
                registry: ecr.clone(),
                registry_user: "AKIAWATCHTEST".into(),
                registry_pass: Secret::new("watch-test-secret"),
                registry_type: Some("awsecr".into()),
                registry_verify: Some(true),
                registry_name: None,
            },
            true,
        )
        .await
        .unwrap();
    let key = format!("{ecr}/test/hello:v1");
    let sub = engine
        .watch()
        .add_subscription(
            &admin,
            &SubscriptionRequest {
                subscription_type: "tag_update".into(),
                subscription_key: key.clone(),
                subscription_value: None,
                active: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        sub.last_digest.as_ref().map(regkeep_domain::Digest::as_str),
        Some(var("REGKEEP_TEST_IMAGE_DIGEST").as_str())
    );
    assert_eq!(sub.last_error, None);

    // A tag that does not exist: one ERROR event at the start, then paused (it would fail every
    // poll); the event ages out under the retention at the end.
    let missing = engine
        .watch()
        .add_subscription(
            &admin,
            &SubscriptionRequest {
                subscription_type: "tag_update".into(),
                subscription_key: format!("{ecr}/test/none:v1"),
                subscription_value: None,
                active: None,
            },
        )
        .await
        .unwrap();
    assert!(missing.last_error.is_some());
    engine
        .watch()
        .set_subscription_active(&admin, &missing.subscription_id, false)
        .await
        .unwrap();

    // 72 simulated hours in 60 s steps: the renewal task's step and the poller's round at each.
    let (mut polled, mut failed, mut changed) = (0, 0, 0);
    for step in 1..=72 * 60 {
        let now = start + step * 60;
        clock.set(Timestamp::from_unix(now));
        // The fixture's tokens live 12 h on the simulated clock.
        fixture
            .control(json!({"expires_at": now + TOKEN_LIFE}))
            .await;
        engine.ecr_tokens().renew_due_once().await;
        let round = engine.watch().poll_due_once().await.unwrap();
        polled += round.polled;
        failed += round.failed;
        changed += round.changed;
    }
    let renewals = engine.ecr_tokens().aws_calls();
    println!("72 h simulated: {polled} polls, {failed} failed, {changed} changed; GetAuthorizationToken calls: {renewals}");
    assert_eq!(failed, 0, "no poll failed");
    assert_eq!(changed, 0);
    assert!(polled >= 72 * 12 - 1, "a poll every 5 minutes: {polled}");
    // The first mint (validation), then a renewal every half-life: at least six renewals.
    assert!(renewals >= 7, "token renewals: {renewals}");
    let sub = engine
        .watch()
        .get_subscription(&admin, &sub.subscription_id)
        .await
        .unwrap();
    assert_eq!(sub.failures, 0);
    assert_eq!(
        sub.last_polled_at.map(|t| t.unix()),
        Some(start + 72 * 3600)
    );
    // From the store (the engine's registry read cache may hold a record a few seconds old).
    let record = store
        .get_registry(&admin, &ecr.parse().unwrap())
        .await
        .unwrap();
    let status = record.token_status.unwrap();
    assert!(
        status.expires_at.unwrap().unix() > start + 72 * 3600,
        "the token is live at the end"
    );
    let all = regkeep_domain::entities::EventFilter {
        limit: 100,
        ..regkeep_domain::entities::EventFilter::default()
    };
    let (events, _) = engine.watch().list_events(&admin, &all).await.unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].level, "ERROR");
    assert_eq!(
        engine.watch().prune_events().await.unwrap(),
        1,
        "older than the 24 h retention"
    );
    assert!(engine
        .watch()
        .list_events(&admin, &all)
        .await
        .unwrap()
        .0
        .is_empty());
    assert_no_secrets(
        "logs",
        &captured_logs(),
        &["watch-test-secret", "123456789012-auth-token"],
    );
}

/// `subscription poll` (and `POST /v1/subscriptions/{id}/poll`) answers the new digest right after
/// a skopeo tag move, with the poller's interval far away; `subscription activate` answers after
/// its own poll (issue 14, item 4).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_now_answers_the_digest_the_tag_was_just_moved_to() {
    crate::skip_without_peers!();
    let p = peers();
    // The default interval: only an asked-for poll can see the move within this test.
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.add_plain_http_registry(&p.http, &p.user, &p.pass).await;
    let repo = format!("poll/{}", random_hex(4));
    retag(&p.http, "test/hello:v1", &format!("{repo}:latest"));
    let key = format!("{}/{repo}:latest", p.http);
    let (status, subs) = app
        .post(
            "/v1/subscriptions",
            json!({"subscription_type": "tag_update", "subscription_key": key}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{subs}");
    let id = subs[0]["subscription_id"].as_str().unwrap().to_owned();
    assert_eq!(
        subs[0]["last_digest"],
        var("REGKEEP_TEST_IMAGE_DIGEST").as_str()
    );

    let moved_to = var("REGKEEP_TEST_MULTI_DIGEST");
    retag(&p.http, "test/multi:v1", &format!("{repo}:latest"));
    let out = Command::new(BIN)
        .args(["--json", "subscription", "poll", &id])
        .env_clear()
        .env("REGKEEP_URL", &app.base)
        .env("REGKEEP_USER", "admin")
        .env("REGKEEP_PASS", &app.admin_pass)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let polled: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(polled[0]["last_digest"], moved_to.as_str(), "{polled}");
    assert_eq!(
        tag_update_events(&app).await.len(),
        1,
        "the move is an event"
    );

    // Deactivated, moved back, activated: the activation's answer has the poll's digest.
    let (status, _) = app
        .put(&format!("/v1/subscriptions/{id}"), json!({"active": false}))
        .await;
    assert_eq!(status, StatusCode::OK);
    retag(&p.http, "test/hello:v1", &format!("{repo}:latest"));
    let (status, activated) = app
        .put(&format!("/v1/subscriptions/{id}"), json!({"active": true}))
        .await;
    assert_eq!(status, StatusCode::OK, "{activated}");
    assert_eq!(
        activated[0]["last_digest"],
        var("REGKEEP_TEST_IMAGE_DIGEST").as_str(),
        "{activated}"
    );
    let (status, missing) = app.post("/v1/subscriptions/nope/poll", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
    app.finish().await;
}
