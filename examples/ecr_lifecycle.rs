//! Benchmark of the ECR token lifecycle (issue 3): a simulated 48 hours (injected clock) at 100
//! resolutions per second for 3 registries that share one AWS identity and account, 12-hour
//! tokens, against the ECR-API fixture. Counts AWS calls and failed resolutions, then measures warm
//! resolution latency in-process.
//!
//! Run it with the peers up: `bench/ecr.sh` (it runs this inside the test namespace).

use std::sync::Arc;
use std::time::{Duration, Instant};

use regkeep_domain::{Clock, ManualClock, Secret, SystemClock, Timestamp};
use regkeep_ecr::{AwsCredentialSource, EcrClient, EcrTarget};
use regkeep_engine::ecr_tokens::{EcrTokens, LifecycleSettings, TokenRequest};
use regkeep_store::{KeySource, Store};

const TOKEN_LIFE: i64 = 12 * 3600;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let fixture = std::env::var("REGKEEP_TEST_ECR_FIXTURE_URL").map_err(|_| {
        anyhow::anyhow!("REGKEEP_TEST_ECR_FIXTURE_URL is not set: run bench/ecr.sh")
    })?;
    std::env::set_var("AWS_ENDPOINT_URL_ECR", &fixture);
    let http = reqwest::Client::new();
    http.post(format!("{fixture}/_reset"))
        .send()
        .await?
        .error_for_status()?;

    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("regkeep.db").display());
    let store = Store::open(&url, &KeySource::File(dir.path().join("secret.key"))).await?;
    let start = SystemClock.now().unix();
    let clock = Arc::new(ManualClock::at(Timestamp::from_unix(start)));
    let tokens = Arc::new(EcrTokens::new(
        Arc::new(EcrClient::new(Duration::from_secs(10))),
        Arc::new(store),
        clock.clone(),
        LifecycleSettings::default(),
    ));
    // Three registries (e.g. three repository-scoped entries of one account) with the same keys:
    // one identity × partition × region × account, so one cache entry.
    let request = TokenRequest {
        key: "keys:AKIABENCH:fp|aws|us-east-1|123456789012".into(),
        source: AwsCredentialSource::StaticKeys {
            access_key_id: "AKIABENCH".into(),
            secret_access_key: Secret::new("bench-secret"),
        },
        target: EcrTarget::Private {
            account: "123456789012".into(),
            region: "us-east-1".into(),
            fips: false,
            dual_stack: false,
        },
    };
    let registries = 3;
    let per_second = 100;
    let hours = 48;
    let tick = 15; // the background task's period, in simulated seconds
    let mut failed = 0u64;
    let mut resolutions = 0u64;
    let wall = Instant::now();
    for second in 0..hours * 3600 {
        let now = start + second;
        clock.set(Timestamp::from_unix(now));
        if second % tick == 0 {
            // The fixture's tokens live 12 h on the simulated clock.
            http.post(format!("{fixture}/_control"))
                .json(&serde_json::json!({"expires_at": now + TOKEN_LIFE}))
                .send()
                .await?
                .error_for_status()?;
            tokens.renew_due_once().await;
        }
        for _ in 0..per_second {
            resolutions += 1;
            if tokens.token(&request).await.is_err() {
                failed += 1;
            }
        }
    }
    let simulated = wall.elapsed();
    let calls: serde_json::Value = http
        .get(format!("{fixture}/_calls"))
        .send()
        .await?
        .json()
        .await?;
    println!("== ECR token lifecycle, simulated {hours} h, {per_second} resolutions/s over {registries} registries sharing one identity and account, {TOKEN_LIFE} s tokens");
    println!("resolutions: {resolutions}, failed: {failed}");
    println!(
        "AWS GetAuthorizationToken calls: regkeep counted {}, the fixture answered {} (goal 8: the first mint and one per 6 h half-life)",
        tokens.aws_calls(),
        calls["GetAuthorizationToken"]
    );
    println!(
        "wall time of the simulation: {:.1} s",
        simulated.as_secs_f64()
    );

    // Warm latency in-process.
    let mut samples = Vec::with_capacity(100_000);
    for _ in 0..100_000 {
        let t = Instant::now();
        let _ = tokens.token(&request).await?;
        samples.push(t.elapsed());
    }
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 - 1.0) * p) as usize];
    println!(
        "warm resolution in-process (100,000 calls): p50 {:?}, p99 {:?}, max {:?}",
        pct(0.50),
        pct(0.99),
        samples[samples.len() - 1]
    );
    Ok(())
}
