//! Benchmark (bench/tags.sh): resolving 500 tags through regkeep's API with a stored credential,
//! against the Bearer-token registry of the test peers (bench/seed-images.sh pushed
//! `bench/tags:t000`..`t499`, each a distinct image). A regkeep is served in-process on a fresh
//! SQLite; `POST /v1/images` resolves each tag (manifest and config, digests verified) and
//! stores its record.
//!
//! Two measures, each warm, sequential (per-tag latency) and then all 500 at a concurrency of 32:
//! - resolve: `GET /v1/content/<image>/manifests/<tag>`, the tag's manifest and digest through the
//!   stored credential — the work `skopeo inspect --raw` does;
//! - resolve and record: `POST /v1/images`, which also reads the config and stores the record.

use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use regkeep_domain::Secret;
use regkeep_server::settings::Settings;
use regkeep_server::Application;

const TAGS: usize = 500;
const CONCURRENCY: usize = 32;

fn var(name: &str) -> anyhow::Result<String> {
    std::env::var(name).map_err(|_| anyhow::anyhow!("{name} is not set: run bench/tags.sh"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let registry = var("REGKEEP_TEST_REGISTRY_BEARER")?;
    let (user, pass) = (
        var("REGKEEP_TEST_REGISTRY_USER")?,
        var("REGKEEP_TEST_REGISTRY_PASS")?,
    );
    let dir = tempfile::tempdir()?;
    let admin = "bench-admin-password";
    let settings = Settings {
        listen: "127.0.0.1:0".parse()?,
        data_dir: dir.path().to_owned(),
        default_admin_password: Some(Secret::new(admin)),
        log_level: "warn".into(),
        // The benchmark's registry lives on 127.0.0.1.
        outbound: regkeep_server::settings::OutboundConfig {
            allow_loopback: true,
            ..Default::default()
        },
        ..Settings::default()
    };
    let app = Application::build(&settings).await?;
    let base = format!("http://{}/v1", app.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    let answer = http
        .post(format!("{base}/registries"))
        .basic_auth("admin", Some(admin))
        .json(&serde_json::json!({"registry": registry, "registry_user": user, "registry_pass": pass, "registry_verify": false}))
        .send()
        .await?;
    anyhow::ensure!(
        answer.status().is_success(),
        "adding the registry: {}",
        answer.text().await?
    );

    let record = |i: usize| {
        let (http, base) = (http.clone(), base.clone());
        let tag = format!("{registry}/bench/tags:t{i:03}");
        async move {
            let start = Instant::now();
            let answer = http
                .post(format!("{base}/images"))
                .basic_auth("admin", Some(admin))
                .json(&serde_json::json!({ "tag": tag }))
                .send()
                .await?;
            anyhow::ensure!(
                answer.status().is_success(),
                "{tag}: {}",
                answer.text().await?
            );
            let records: serde_json::Value = answer.json().await?;
            anyhow::ensure!(records[0]["imageDigest"]
                .as_str()
                .is_some_and(|d| d.starts_with("sha256:")));
            Ok(start.elapsed())
        }
    };
    let resolve = |i: usize| {
        let (http, base) = (http.clone(), base.clone());
        let url = format!("{base}/content/{registry}/bench/tags/manifests/t{i:03}");
        async move {
            let start = Instant::now();
            let answer = http
                .get(&url)
                .basic_auth("admin", Some(admin))
                .send()
                .await?;
            anyhow::ensure!(
                answer.status().is_success(),
                "{url}: {}",
                answer.text().await?
            );
            let digest = answer.headers().get("docker-content-digest").cloned();
            let _ = answer.bytes().await?;
            anyhow::ensure!(digest.is_some(), "{url}: no digest");
            Ok(start.elapsed())
        }
    };
    // Warm: the registry session (token), the credential, the API's auth cache.
    record(0).await?;
    resolve(0).await?;
    let (seq_resolve, all_resolve) = measure(&resolve).await?;
    let (seq_record, all_record) = measure(&record).await?;
    let per_tag = |total: Duration| total.as_secs_f64() * 1000.0 / TAGS as f64;
    let (resolve_each, record_each) = (per_tag(seq_resolve.1), per_tag(seq_record.1));
    println!("== regkeep: {TAGS} tags of {registry}/bench/tags, stored Bearer-registry credential");
    for (what, (mut samples, total), all) in [
        (
            "resolve (GET /v1/content/.../manifests/TAG)",
            seq_resolve,
            all_resolve,
        ),
        (
            "resolve and record (POST /v1/images)",
            seq_record,
            all_record,
        ),
    ] {
        samples.sort();
        let pct =
            |p: f64| samples[((samples.len() as f64 - 1.0) * p) as usize].as_secs_f64() * 1000.0;
        println!(
            "{what}: sequential warm mean {:.2} ms/tag, p50 {:.2} ms, p99 {:.2} ms; all {TAGS} with {CONCURRENCY} in flight: {:.3} s",
            total.as_secs_f64() * 1000.0 / TAGS as f64,
            pct(0.5),
            pct(0.99),
            all.as_secs_f64()
        );
    }
    println!("REGKEEP_PER_TAG_MS={resolve_each:.3}");
    println!("REGKEEP_ALL_SECONDS={:.3}", all_resolve.as_secs_f64());
    println!("REGKEEP_RECORD_PER_TAG_MS={record_each:.3}");
    println!("REGKEEP_RECORD_ALL_SECONDS={:.3}", all_record.as_secs_f64());
    let _ = stop.send(());
    server.await??;
    Ok(())
}

/// Sequential samples and their total, then the wall time of all at once (bounded concurrency).
async fn measure<F, Fut>(call: &F) -> anyhow::Result<((Vec<Duration>, Duration), Duration)>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Duration>>,
{
    let mut samples = Vec::with_capacity(TAGS);
    let start = Instant::now();
    for i in 0..TAGS {
        samples.push(call(i).await?);
    }
    let sequential = start.elapsed();
    let start = Instant::now();
    let results: Vec<anyhow::Result<Duration>> = futures_util::stream::iter(0..TAGS)
        .map(call)
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let all = start.elapsed();
    let failed = results.iter().filter(|r| r.is_err()).count();
    anyhow::ensure!(failed == 0, "{failed} of {TAGS} failed");
    Ok(((samples, sequential), all))
}
