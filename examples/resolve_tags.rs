//! Benchmark (bench/tags.sh): resolving 500 tags through regkeep's API with a stored credential,
//! against the Bearer-token registry of the test peers (bench/seed-images.sh pushed
//! `bench/tags:t000`..`t499`, each a distinct image). A regkeep is served in-process on a fresh
//! SQLite; `POST /v1/images` resolves each tag (manifest and config, digests verified) and
//! stores its record.
//!
//! Prints the warm per-tag latency (sequential, one request at a time) and the wall time of all
//! 500 at a concurrency of 32.

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

    let resolve = |i: usize| {
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
    // Warm: the registry session (token), the credential, the API's auth cache.
    resolve(0).await?;

    let mut samples: Vec<Duration> = Vec::with_capacity(TAGS);
    let sequential = Instant::now();
    for i in 0..TAGS {
        samples.push(resolve(i).await?);
    }
    let sequential = sequential.elapsed();
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 - 1.0) * p) as usize];

    let concurrent = Instant::now();
    let results: Vec<anyhow::Result<Duration>> = futures_util::stream::iter(0..TAGS)
        .map(resolve)
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let concurrent = concurrent.elapsed();
    let failed = results.iter().filter(|r| r.is_err()).count();

    println!("== regkeep: {TAGS} tags of {registry}/bench/tags through POST /v1/images (stored Bearer-registry credential)");
    println!(
        "sequential warm: total {:.3} s, mean {:.2} ms/tag, p50 {:.2} ms, p99 {:.2} ms",
        sequential.as_secs_f64(),
        sequential.as_secs_f64() * 1000.0 / TAGS as f64,
        pct(0.5).as_secs_f64() * 1000.0,
        pct(0.99).as_secs_f64() * 1000.0
    );
    println!(
        "concurrent ({CONCURRENCY} in flight): all {TAGS} in {:.3} s, {failed} failed",
        concurrent.as_secs_f64()
    );
    println!("REGKEEP_PER_TAG_MS={:.3}", pct(0.5).as_secs_f64() * 1000.0);
    println!("REGKEEP_ALL_SECONDS={:.3}", concurrent.as_secs_f64());
    let _ = stop.send(());
    server.await??;
    anyhow::ensure!(failed == 0, "{failed} resolutions failed");
    Ok(())
}
