//! The token lifecycle on the fakes: a manual clock, a scripted minter and an in-memory
//! repository. Each test runs in milliseconds; the same behaviours against a real ECR API are in
//! the peer suite (`ecr` tests against the ECR-API fixture and moto).

use std::sync::Arc;
use std::time::Duration;

use regkeep_domain::{Clock, ManualClock, Secret, Timestamp};
use regkeep_ecr::{AwsCredentialSource, EcrTarget};
use regkeep_store::EcrTokenRepository as _;

use super::{EcrTokens, LifecycleSettings, TokenError, TokenRequest};
use crate::testing::{Answer, MemoryTokenRepository, ScriptedMinter};

const HOUR: u64 = 3600;

struct Rig {
    clock: Arc<ManualClock>,
    minter: Arc<ScriptedMinter>,
    repo: Arc<MemoryTokenRepository>,
    tokens: Arc<EcrTokens>,
}

fn settings() -> LifecycleSettings {
    LifecycleSettings {
        min_backoff: Duration::from_secs(10),
        max_backoff: Duration::from_secs(600),
        ..LifecycleSettings::default()
    }
}

fn rig() -> Rig {
    let clock = Arc::new(ManualClock::at(Timestamp::from_unix(1_800_000_000)));
    let minter = ScriptedMinter::new(clock.clone());
    let repo = MemoryTokenRepository::new();
    let tokens = Arc::new(EcrTokens::new(
        minter.clone(),
        repo.clone(),
        clock.clone(),
        settings(),
    ));
    Rig {
        clock,
        minter,
        repo,
        tokens,
    }
}

impl Rig {
    /// The same repository and minter, a new process (a restart, or another replica).
    fn another_process(&self) -> Arc<EcrTokens> {
        Arc::new(EcrTokens::new(
            self.minter.clone(),
            self.repo.clone(),
            self.clock.clone(),
            settings(),
        ))
    }

    fn advance(&self, seconds: u64) {
        self.clock.advance(Duration::from_secs(seconds));
    }
}

fn request_for(access_key_id: &str) -> TokenRequest {
    TokenRequest {
        key: format!("keys:{access_key_id}:fp|aws|us-east-1|123456789012"),
        source: AwsCredentialSource::StaticKeys {
            access_key_id: access_key_id.into(),
            secret_access_key: Secret::new("unit-test-secret-key"),
        },
        target: EcrTarget::Private {
            account: "123456789012".into(),
            region: "us-east-1".into(),
            fips: false,
            dual_stack: false,
        },
    }
}

fn request() -> TokenRequest {
    request_for("AKIAUNITTEST")
}

/// Yields until `done` holds (the spawned work it waits for runs on this runtime).
async fn until(what: &str, done: impl Fn() -> bool) {
    for _ in 0..10_000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("never happened: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_start_makes_one_call_however_many_wait() {
    let rig = rig();
    rig.minter.close();
    let mut waiters = Vec::new();
    for _ in 0..50 {
        let tokens = rig.tokens.clone();
        waiters.push(tokio::spawn(async move { tokens.token(&request()).await }));
    }
    until("the first mint waits at the gate", || {
        rig.minter.waiting() == 1
    })
    .await;
    rig.minter.open();
    let mut passwords = std::collections::HashSet::new();
    for waiter in waiters {
        let token = waiter.await.unwrap().unwrap();
        passwords.insert(token.password.expose().to_owned());
    }
    assert_eq!(rig.minter.calls(), 1, "one AWS call for 50 cold callers");
    assert_eq!(passwords.len(), 1, "every caller got the one token");
    assert_eq!(rig.tokens.aws_calls(), 1);
}

#[tokio::test]
async fn renewal_comes_at_half_life_and_the_old_token_serves_until_then() {
    let rig = rig();
    let first = rig.tokens.token(&request()).await.unwrap();
    assert_eq!(first.renew_at.unix() - first.obtained_at.unix(), 6 * 3600);
    // 12 h life less the 30 s margin.
    assert_eq!(
        first.usable_until.unix() - first.obtained_at.unix(),
        12 * 3600 - 30
    );
    rig.advance(6 * HOUR - 60);
    assert_eq!(rig.tokens.renew_due_once().await, (0, 0));
    assert_eq!(rig.minter.calls(), 1);
    rig.advance(120);
    assert_eq!(rig.tokens.renew_due_once().await, (1, 0));
    assert_eq!(rig.minter.calls(), 2);
    let second = rig.tokens.token(&request()).await.unwrap();
    assert_ne!(second.password.expose(), first.password.expose());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_use_past_half_life_gets_the_current_token_and_renews_in_the_background() {
    let rig = rig();
    let first = rig.tokens.token(&request()).await.unwrap();
    rig.advance(7 * HOUR);
    rig.minter.close();
    for _ in 0..20 {
        let token = rig.tokens.token(&request()).await.unwrap();
        assert_eq!(token.password.expose(), first.password.expose());
    }
    until("one background renewal waits", || rig.minter.waiting() == 1).await;
    assert_eq!(rig.minter.calls(), 2, "one renewal for 20 uses");
    rig.minter.open();
    let key = request().key;
    until("the renewal is stored", || {
        futures_util::FutureExt::now_or_never(rig.repo_token(&key))
            .flatten()
            .is_some_and(|t| t.password.expose() != first.password.expose())
    })
    .await;
    let renewed = rig.tokens.token(&request()).await.unwrap();
    assert_ne!(renewed.password.expose(), first.password.expose());
}

impl Rig {
    async fn repo_token(&self, key: &str) -> Option<regkeep_domain::EcrToken> {
        use regkeep_store::EcrTokenRepository;
        self.repo.load(key).await.ok().flatten()
    }
}

#[tokio::test]
async fn while_aws_fails_the_valid_token_keeps_serving_and_retries_back_off() {
    let rig = rig();
    let first = rig.tokens.token(&request()).await.unwrap();
    rig.minter
        .always(Answer::Fails(ScriptedMinter::unavailable()));
    rig.advance(6 * HOUR + 60);
    assert_eq!(rig.tokens.renew_due_once().await, (0, 1));
    assert!(rig
        .repo
        .last_error(&request().key)
        .is_some_and(|e| e.contains("unavailable")));
    let calls = rig.minter.calls();
    // Static stability: every use gets the still-valid token, with no AWS call.
    for _ in 0..100 {
        let token = rig.tokens.token(&request()).await.unwrap();
        assert_eq!(token.password.expose(), first.password.expose());
    }
    // Backing off (at least 10 s × 0.5): an immediate pass makes no call.
    assert_eq!(rig.tokens.renew_due_once().await, (0, 0));
    assert_eq!(rig.minter.calls(), calls);
    // After the backoff (at most 10 s × 1.5) the next pass tries again.
    rig.advance(16);
    assert_eq!(rig.tokens.renew_due_once().await, (0, 1));
    assert_eq!(rig.minter.calls(), calls + 1);

    // Past the expiry with AWS still down: an error that names AWS's answer and when the next
    // attempt is, and no call within the backoff.
    rig.advance(6 * HOUR);
    let calls = rig.minter.calls();
    match rig.tokens.token(&request()).await {
        Err(TokenError::Aws(e)) => assert!(e.to_string().contains("unavailable"), "{e}"),
        other => panic!("expected AWS's error, got {other:?}"),
    }
    let err = rig.tokens.token(&request()).await.unwrap_err();
    assert!(err.to_string().contains("next attempt"), "{err}");
    assert_eq!(
        rig.minter.calls(),
        calls + 1,
        "one attempt, then backing off"
    );

    // AWS back: the first attempt after the backoff succeeds and clears the error.
    rig.minter.always(Answer::Lives(12 * 3600));
    rig.advance(700);
    let token = rig.tokens.token(&request()).await.unwrap();
    assert_ne!(token.password.expose(), first.password.expose());
    assert_eq!(rig.repo.last_error(&request().key), None);
}

#[tokio::test]
async fn throttling_backs_off_longer_than_unavailability() {
    // min_backoff 10 s: an unavailable AWS is retried within 15 s (10 × 1.5 jitter); a
    // throttling one not before 20 s (10 × 4 × 0.5).
    for (answer, wait, retried) in [
        (ScriptedMinter::unavailable(), 16, true),
        (ScriptedMinter::throttled(), 19, false),
    ] {
        let rig = rig();
        rig.minter.always(Answer::Fails(answer.clone()));
        rig.tokens.token(&request()).await.unwrap_err();
        assert_eq!(rig.minter.calls(), 1);
        rig.advance(wait);
        let _ = rig.tokens.token(&request()).await;
        assert_eq!(
            rig.minter.calls() == 2,
            retried,
            "{answer}: after {wait} s, retried: {}",
            rig.minter.calls() == 2
        );
    }
}

#[tokio::test]
async fn backoff_grows_and_is_capped() {
    let rig = rig();
    for failures in 1..=12 {
        let d = rig.tokens.backoff(failures, false).as_secs_f64();
        let base = (10.0 * 2f64.powi(failures as i32 - 1)).min(600.0);
        assert!(
            d >= base * 0.5 && d < base * 1.5,
            "failure {failures}: {d} s"
        );
        let throttled = rig.tokens.backoff(failures, true).as_secs_f64();
        assert!(throttled < 600.0 * 1.5, "capped: {throttled}");
    }
}

#[tokio::test]
async fn a_token_expired_on_arrival_is_used_for_the_floor_not_remade_per_use() {
    let rig = rig();
    rig.minter.always(Answer::Lives(-100));
    for _ in 0..200 {
        rig.tokens.token(&request()).await.unwrap();
    }
    assert_eq!(rig.minter.calls(), 1, "not one call per use");
    rig.advance(50);
    rig.tokens.token(&request()).await.unwrap();
    assert_eq!(rig.minter.calls(), 1, "still within the 60 s floor");
    rig.advance(15);
    rig.tokens.token(&request()).await.unwrap();
    assert_eq!(rig.minter.calls(), 2, "after the floor, one new call");
}

#[tokio::test]
async fn a_refused_token_is_renewed_once_and_a_stale_refusal_makes_no_call() {
    let rig = rig();
    let first = rig.tokens.token(&request()).await.unwrap();
    let renewed = rig
        .tokens
        .renew_after_rejection(&request(), &first)
        .await
        .unwrap();
    assert_ne!(renewed.password.expose(), first.password.expose());
    assert_eq!(rig.minter.calls(), 2);
    // A second caller that was refused with the old token gets the new one, with no call.
    let again = rig
        .tokens
        .renew_after_rejection(&request(), &first)
        .await
        .unwrap();
    assert_eq!(again.password.expose(), renewed.password.expose());
    assert_eq!(rig.minter.calls(), 2);
}

#[tokio::test]
async fn another_process_reuses_the_persisted_token() {
    let rig = rig();
    let first = rig.tokens.token(&request()).await.unwrap();
    let restarted = rig.another_process();
    let token = restarted.token(&request()).await.unwrap();
    assert_eq!(token.password.expose(), first.password.expose());
    assert_eq!(rig.minter.calls(), 1);
}

#[tokio::test]
async fn a_released_token_is_forgotten_and_never_renewed() {
    let rig = rig();
    let key = request().key;
    rig.tokens.token(&request()).await.unwrap();
    assert_eq!(rig.tokens.kept(), 1);
    assert!(rig.repo.has_row(&key));
    // No registry uses the key any more (deleted or re-keyed).
    rig.tokens.release(&key).await.unwrap();
    assert_eq!(rig.tokens.kept(), 0);
    assert!(!rig.repo.has_row(&key));
    for _ in 0..3 {
        rig.advance(6 * HOUR + 60);
        assert_eq!(rig.tokens.renew_due_once().await, (0, 0));
    }
    assert_eq!(rig.minter.calls(), 1, "no renewal after the release");
}

#[tokio::test]
async fn a_token_another_registry_still_uses_survives_a_release() {
    let rig = rig();
    let key = request().key;
    rig.repo.use_key(&key);
    rig.tokens.token(&request()).await.unwrap();
    rig.tokens.release(&key).await.unwrap();
    assert_eq!(rig.tokens.kept(), 1);
    assert!(rig.repo.has_row(&key));
    rig.advance(6 * HOUR + 60);
    assert_eq!(rig.tokens.renew_due_once().await, (1, 0));
}

#[tokio::test]
async fn the_sweep_removes_what_no_registry_uses_once_past_the_grace() {
    let rig = rig();
    let (used, unused) = (request_for("AKIAUSED"), request_for("AKIAUNUSED"));
    rig.repo.use_key(&used.key);
    rig.tokens.token(&used).await.unwrap();
    rig.tokens.token(&unused).await.unwrap();
    // Young: kept (it may be validating a registry not yet stored).
    assert_eq!(rig.tokens.sweep_once().await.unwrap(), 0);
    assert_eq!(rig.tokens.kept(), 2);
    rig.advance(601);
    assert_eq!(rig.tokens.sweep_once().await.unwrap(), 1);
    assert_eq!(rig.tokens.kept(), 1);
    assert!(rig.repo.has_row(&used.key));
    assert!(!rig.repo.has_row(&unused.key));
    // Released through another replica: this one forgets it at its next sweep.
    rig.repo.unuse_key(&used.key);
    rig.advance(601);
    assert_eq!(rig.tokens.sweep_once().await.unwrap(), 1);
    rig.advance(6 * HOUR);
    assert_eq!(rig.tokens.renew_due_once().await, (0, 0));
    assert_eq!(rig.minter.calls(), 2);
}

#[tokio::test]
async fn new_keys_mint_with_the_new_credentials() {
    let rig = rig();
    rig.tokens.token(&request_for("AKIAOLD")).await.unwrap();
    rig.tokens
        .release(&request_for("AKIAOLD").key)
        .await
        .unwrap();
    rig.tokens.token(&request_for("AKIANEW")).await.unwrap();
    let ids: Vec<String> = rig
        .minter
        .sources()
        .into_iter()
        .map(|s| match s {
            AwsCredentialSource::StaticKeys { access_key_id, .. } => access_key_id,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(ids, ["AKIAOLD", "AKIANEW"]);
    rig.advance(6 * HOUR + 60);
    assert_eq!(rig.tokens.renew_due_once().await, (1, 0));
    assert_eq!(
        rig.minter.sources().len(),
        3,
        "only the new key's token is renewed"
    );
}

#[test]
fn errors_name_aws_and_never_the_token() {
    let e = TokenError::BackingOff(ScriptedMinter::throttled(), Timestamp::from_unix(0));
    let text = e.to_string();
    assert!(text.contains("ThrottlingException"), "{text}");
    assert!(text.contains("next attempt"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_during_a_renewal_leaves_neither_row_nor_entry() {
    let rig = rig();
    let key = request().key;
    rig.tokens.token(&request()).await.unwrap();
    rig.advance(6 * HOUR + 60);
    rig.minter.close();
    let renewing = {
        let tokens = rig.tokens.clone();
        tokio::spawn(async move { tokens.renew_due_once().await })
    };
    until("the renewal waits at the gate", || {
        rig.minter.waiting() == 1
    })
    .await;
    let releasing = {
        let (tokens, key) = (rig.tokens.clone(), key.clone());
        tokio::spawn(async move { tokens.release(&key).await })
    };
    // The release waits for the mint in flight; the mint then saves its row...
    tokio::time::sleep(Duration::from_millis(20)).await;
    rig.minter.open();
    assert_eq!(renewing.await.unwrap(), (1, 0));
    releasing.await.unwrap().unwrap();
    // ...which the release removes, with the entry.
    assert!(!rig.repo.has_row(&key), "the renewed token's row is gone");
    assert_eq!(rig.tokens.kept(), 0);
    let calls = rig.minter.calls();
    rig.advance(6 * HOUR + 60);
    assert_eq!(rig.tokens.renew_due_once().await, (0, 0));
    assert_eq!(rig.minter.calls(), calls);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_queued_behind_a_release_starts_again_on_a_fresh_entry() {
    let rig = rig();
    let key = request().key;
    rig.tokens.token(&request()).await.unwrap();
    rig.advance(13 * HOUR);
    rig.minter.close();
    let first = {
        let tokens = rig.tokens.clone();
        tokio::spawn(async move { tokens.token(&request()).await })
    };
    until("the expired token's mint waits", || {
        rig.minter.waiting() == 1
    })
    .await;
    let queued = {
        let tokens = rig.tokens.clone();
        tokio::spawn(async move { tokens.token(&request()).await })
    };
    let releasing = {
        let (tokens, key) = (rig.tokens.clone(), key.clone());
        tokio::spawn(async move { tokens.release(&key).await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    rig.minter.open();
    first.await.unwrap().unwrap();
    releasing.await.unwrap().unwrap();
    // Whichever ran first, the queued caller got a token, and no entry is left marked released
    // in use: either it was served before the release, or it started again on a fresh entry.
    let token = queued.await.unwrap().unwrap();
    assert!(token.password.expose().starts_with("fake-ecr-token-"));
    assert!(rig.tokens.kept() <= 1);
}

/// Replicas on one database (docs/design.md §3.9): the lease decides who mints; the others take
/// what it stored.
#[tokio::test]
async fn replicas_cold_started_together_mint_once() {
    let rig = rig();
    let replicas: Vec<Arc<EcrTokens>> = (0..3).map(|_| rig.another_process()).collect();
    rig.minter.close();
    let mut uses = Vec::new();
    for replica in &replicas {
        for _ in 0..100 {
            let replica = replica.clone();
            uses.push(tokio::spawn(async move { replica.token(&request()).await }));
        }
    }
    while rig.minter.waiting() == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // Everyone asked while the one mint is held: then it answers.
    tokio::time::sleep(Duration::from_millis(50)).await;
    rig.minter.open();
    let mut passwords = std::collections::HashSet::new();
    for used in uses {
        let token = used.await.unwrap().unwrap();
        passwords.insert(token.password.expose().to_owned());
    }
    assert_eq!(
        rig.minter.calls(),
        1,
        "300 uses on 3 replicas: one AWS call"
    );
    assert_eq!(passwords.len(), 1);
}

#[tokio::test]
async fn replicas_renew_once_between_them() {
    let rig = rig();
    let replicas: Vec<Arc<EcrTokens>> = (0..3).map(|_| rig.another_process()).collect();
    for replica in &replicas {
        replica.token(&request()).await.unwrap();
    }
    assert_eq!(rig.minter.calls(), 1);
    for round in 1..=4 {
        rig.advance(6 * HOUR + 60);
        for replica in &replicas {
            replica.renew_due_once().await;
        }
        assert_eq!(
            rig.minter.calls(),
            1 + round,
            "one renewal per half-life for all"
        );
        let wanted = request();
        let mut passwords = std::collections::HashSet::new();
        for replica in &replicas {
            let token = replica.token(&wanted).await.unwrap();
            passwords.insert(token.password.expose().to_owned());
        }
        assert_eq!(
            passwords.len(),
            1,
            "every replica hands out the renewed token"
        );
    }
}

#[tokio::test]
async fn a_replica_killed_holding_the_lease_delays_the_others_by_one_lease() {
    let rig = rig();
    let now = rig.clock.now();
    // A replica took the lease and died before storing anything.
    assert!(rig
        .repo
        .try_lease(
            &request().key,
            "killed-replica",
            Timestamp::from_unix(now.unix() + 30),
            now,
        )
        .await
        .unwrap());
    let survivor = rig.another_process();
    let waiting = tokio::spawn(async move { survivor.token(&request()).await });
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(!waiting.is_finished(), "waits for the holder's token");
    assert_eq!(rig.minter.calls(), 0);
    rig.advance(31);
    let token = waiting.await.unwrap().unwrap();
    assert_eq!(
        rig.minter.calls(),
        1,
        "the lease ended: the survivor minted"
    );
    assert!(token.usable_until > rig.clock.now());
}
