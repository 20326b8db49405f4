//! The ECR token lifecycle (DESIGN 3.4): one entry per (AWS identity, partition, region,
//! registry account); sealed copies persisted so a restart or another replica reuses a valid
//! token; renewal at half of the token's life, in the background; single-flight minting; on AWS
//! errors the current token is served until it truly expires, and retries back off exponentially
//! with jitter (longer when AWS throttles); a token that arrives already expired (clock skew) is
//! used for a floor of 60 s instead of causing a call on every use.
//!
//! Time comes from the injected [`Clock`], so tests and the long-run benchmark drive it; the
//! background task's one step, [`EcrTokens::renew_due_once`], is public for the same reason.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rand::Rng;
use regkeep_domain::{Clock, Secret, Timestamp};
use regkeep_ecr::{AwsCredentialSource, EcrClient, EcrError, EcrTarget};
use regkeep_store::{Store, StoredToken};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Tuning of the lifecycle. Defaults are the production values.
#[derive(Clone, Debug)]
pub struct LifecycleSettings {
    /// A token that arrives with less life than this is used for this long anyway.
    pub floor: Duration,
    /// A token is not handed out in its last `margin` (a pull needs some life left).
    pub margin: Duration,
    /// First retry delay after a failed renewal; doubles per failure.
    pub min_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
    /// Extra factor on the delay when AWS throttles.
    pub throttle_factor: u32,
    /// How often the background task looks for due renewals.
    pub tick: Duration,
}

impl Default for LifecycleSettings {
    fn default() -> Self {
        LifecycleSettings {
            floor: Duration::from_secs(60),
            margin: Duration::from_secs(30),
            min_backoff: Duration::from_secs(5),
            max_backoff: Duration::from_secs(300),
            throttle_factor: 4,
            tick: Duration::from_secs(15),
        }
    }
}

/// What to mint a token for, and the cache key it lives under.
#[derive(Clone, Debug)]
pub struct TokenRequest {
    pub key: String,
    pub source: AwsCredentialSource,
    pub target: EcrTarget,
}

/// A registry credential minted from AWS. `Debug` redacts the password.
#[derive(Clone)]
pub struct Token {
    pub username: String,
    pub password: Secret,
    /// When the token stops being handed out (AWS's expiry less the margin, or the floor).
    pub usable_until: Timestamp,
    pub obtained_at: Timestamp,
    /// When a background renewal is due.
    pub renew_at: Timestamp,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .field("usable_until", &self.usable_until)
            .field("renew_at", &self.renew_at)
            .finish()
    }
}

/// Why no token could be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TokenError {
    /// AWS said no, or could not be reached, and no valid token is left.
    #[error("no valid ECR token: {0}")]
    Aws(#[source] EcrError),
    /// Retries are backing off after `0`; no valid token is left.
    #[error("no valid ECR token; the last attempt failed ({0}); next attempt at {1}")]
    BackingOff(#[source] EcrError, Timestamp),
    /// The token store failed.
    #[error("the token store failed: {0}")]
    Store(String),
}

struct Entry {
    request: Mutex<TokenRequest>,
    /// The token in use. A std RwLock: read on every use, written on renewal, never held
    /// across an await.
    current: RwLock<Option<Token>>,
    /// Held while minting: one AWS call at a time per entry (single-flight).
    attempts: tokio::sync::Mutex<Attempts>,
    /// A background renewal has been started and has not finished: uses start no other.
    renewal_pending: AtomicBool,
    /// Unix time before which no renewal is tried (the backoff after a failure), readable
    /// without the attempts lock so busy uses do not start renewals that would only back off.
    not_before: AtomicI64,
}

#[derive(Default)]
struct Attempts {
    failures: u32,
    next_attempt: Option<Timestamp>,
    last_error: Option<EcrError>,
}

impl Entry {
    fn current(&self) -> Option<Token> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_current(&self, token: Option<Token>) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = token;
    }

    fn request(&self) -> TokenRequest {
        self.request
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The token cache and its renewal. Share it in an `Arc`.
pub struct EcrTokens {
    client: EcrClient,
    store: Store,
    clock: Arc<dyn Clock>,
    settings: LifecycleSettings,
    entries: Mutex<HashMap<String, Arc<Entry>>>,
    /// AWS calls made (minting attempts), for tests and benchmarks.
    aws_calls: AtomicU64,
    /// The renewal loop's last pass (`GET /v1/system`).
    heartbeat: crate::heartbeat::Heartbeat,
}

impl EcrTokens {
    pub fn new(
        client: EcrClient,
        store: Store,
        clock: Arc<dyn Clock>,
        settings: LifecycleSettings,
    ) -> Self {
        EcrTokens {
            client,
            store,
            clock,
            settings,
            entries: Mutex::new(HashMap::new()),
            aws_calls: AtomicU64::new(0),
            heartbeat: crate::heartbeat::Heartbeat::default(),
        }
    }

    /// The renewal loop's last pass.
    pub fn heartbeat(&self) -> &crate::heartbeat::Heartbeat {
        &self.heartbeat
    }

    /// How many tokens are kept in memory.
    pub fn kept(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Minting attempts made so far by this process.
    pub fn aws_calls(&self) -> u64 {
        self.aws_calls.load(Ordering::Relaxed)
    }

    fn entry(&self, request: &TokenRequest) -> Arc<Entry> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .entry(request.key.clone())
            .or_insert_with(|| {
                Arc::new(Entry {
                    request: Mutex::new(request.clone()),
                    current: RwLock::new(None),
                    attempts: tokio::sync::Mutex::new(Attempts::default()),
                    renewal_pending: AtomicBool::new(false),
                    not_before: AtomicI64::new(0),
                })
            })
            .clone()
    }

    /// A usable token for `request`: the cached one, or a persisted one, or a new one (one AWS
    /// call however many callers wait). Past the half-life the cached token is still returned
    /// and a renewal starts in the background.
    ///
    /// # Errors
    /// [`TokenError`] when no usable token exists and none can be minted now.
    pub async fn token(self: &Arc<Self>, request: &TokenRequest) -> Result<Token, TokenError> {
        let entry = self.entry(request);
        let now = self.clock.now();
        if let Some(token) = entry.current() {
            if now < token.renew_at {
                return Ok(token);
            }
            if now < token.usable_until {
                self.renew_in_background(entry.clone());
                return Ok(token);
            }
        }
        let mut attempts = entry.attempts.lock().await;
        let now = self.clock.now();
        if let Some(token) = entry.current().filter(|t| now < t.usable_until) {
            return Ok(token);
        }
        if let Some(token) = self.load_persisted(&request.key, now).await? {
            entry.set_current(Some(token.clone()));
            return Ok(token);
        }
        if let (Some(next), Some(error)) = (attempts.next_attempt, attempts.last_error.clone()) {
            if now < next {
                return Err(TokenError::BackingOff(error, next));
            }
        }
        self.mint_locked(&entry, &mut attempts)
            .await
            .map_err(TokenError::Aws)
    }

    /// Mints a new token now (validation of new credentials), replacing any cached one.
    ///
    /// # Errors
    /// [`EcrError`] as AWS answered.
    pub async fn mint_now(self: &Arc<Self>, request: &TokenRequest) -> Result<Token, EcrError> {
        let entry = self.entry(request);
        *entry.request.lock().unwrap_or_else(|p| p.into_inner()) = request.clone();
        let mut attempts = entry.attempts.lock().await;
        self.mint_locked(&entry, &mut attempts).await
    }

    /// A registry refused `rejected` although it looked valid (revoked, or clocks disagree):
    /// forget it and mint once more. Callers retry their request once with the result, never
    /// more.
    ///
    /// # Errors
    /// [`TokenError`] when the new mint fails.
    pub async fn renew_after_rejection(
        self: &Arc<Self>,
        request: &TokenRequest,
        rejected: &Token,
    ) -> Result<Token, TokenError> {
        let entry = self.entry(request);
        let mut attempts = entry.attempts.lock().await;
        if let Some(current) = entry.current() {
            if current.password != rejected.password {
                // Another caller already replaced it.
                return Ok(current);
            }
        }
        warn!("a registry refused an ECR token regkeep believed valid; minting a new one");
        entry.set_current(None);
        self.mint_locked(&entry, &mut attempts)
            .await
            .map_err(TokenError::Aws)
    }

    fn renew_in_background(self: &Arc<Self>, entry: Arc<Entry>) {
        if self.clock.now().unix() < entry.not_before.load(Ordering::Relaxed)
            || entry.renewal_pending.swap(true, Ordering::AcqRel)
        {
            // Backing off, or one is already under way.
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            // Someone else may be minting already: then there is nothing to add.
            if let Ok(mut attempts) = entry.attempts.try_lock() {
                let now = this.clock.now();
                if this.is_due(&entry, &attempts, now) {
                    let _ = this.mint_locked(&entry, &mut attempts).await;
                }
            }
            entry.renewal_pending.store(false, Ordering::Release);
        });
    }

    fn is_due(&self, entry: &Entry, attempts: &Attempts, now: Timestamp) -> bool {
        let due = entry.current().is_none_or(|t| now >= t.renew_at);
        let allowed = attempts.next_attempt.is_none_or(|next| now >= next);
        due && allowed
    }

    /// Renews every entry whose renewal is due and not backing off: the background task's
    /// single step. Returns (renewed, failed).
    pub async fn renew_due_once(self: &Arc<Self>) -> (usize, usize) {
        let entries: Vec<Arc<Entry>> = self
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        let (mut renewed, mut failed) = (0, 0);
        for entry in entries {
            let Ok(mut attempts) = entry.attempts.try_lock() else {
                continue;
            };
            if entry.current().is_none() || !self.is_due(&entry, &attempts, self.clock.now()) {
                continue;
            }
            match self.mint_locked(&entry, &mut attempts).await {
                Ok(_) => renewed += 1,
                Err(_) => failed += 1,
            }
        }
        (renewed, failed)
    }

    /// Renews due tokens every `tick` until `cancel` fires.
    pub async fn run_until_stopped(self: Arc<Self>, cancel: CancellationToken) {
        self.heartbeat.started(self.settings.tick);
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(self.settings.tick) => {
                    let (renewed, failed) = self.renew_due_once().await;
                    self.heartbeat.passed(failed > 0);
                    if renewed + failed > 0 {
                        info!(renewed, failed, "ECR token renewal pass");
                    }
                }
            }
        }
    }

    async fn load_persisted(&self, key: &str, now: Timestamp) -> Result<Option<Token>, TokenError> {
        let stored = self
            .store
            .load_ecr_token(key)
            .await
            .map_err(|e| TokenError::Store(e.to_string()))?;
        Ok(stored
            .map(|s| Token {
                username: s.username,
                password: s.password,
                usable_until: s.expires_at,
                obtained_at: s.obtained_at,
                renew_at: s.renew_at,
            })
            .filter(|t| now < t.usable_until))
    }

    /// One AWS call, with the entry's attempts lock held.
    async fn mint_locked(&self, entry: &Entry, attempts: &mut Attempts) -> Result<Token, EcrError> {
        let request = entry.request();
        self.aws_calls.fetch_add(1, Ordering::Relaxed);
        let result = self.client.mint(&request.source, &request.target).await;
        let now = self.clock.now();
        match result {
            Ok(auth) => {
                let token = self.shape(auth.username, auth.password, auth.expires_at, now);
                entry.set_current(Some(token.clone()));
                *attempts = Attempts::default();
                entry.not_before.store(0, Ordering::Relaxed);
                let stored = StoredToken {
                    username: token.username.clone(),
                    password: token.password.clone(),
                    expires_at: token.usable_until,
                    obtained_at: token.obtained_at,
                    renew_at: token.renew_at,
                };
                if let Err(e) = self.store.save_ecr_token(&request.key, &stored).await {
                    // The token works; only sharing it failed. Keep going.
                    warn!(error = %e, "could not persist an ECR token");
                }
                Ok(token)
            }
            Err(error) => {
                attempts.failures += 1;
                let delay = self.backoff(attempts.failures, error.is_throttling());
                let next = Timestamp::from_unix(
                    now.unix() + i64::try_from(delay.as_secs()).unwrap_or(i64::MAX / 2),
                );
                attempts.next_attempt = Some(next);
                entry.not_before.store(next.unix(), Ordering::Relaxed);
                attempts.last_error = Some(error.clone());
                warn!(error = %error, failures = attempts.failures, next_attempt = %next, "ECR token renewal failed");
                if let Err(e) = self
                    .store
                    .record_ecr_error(&request.key, &error.to_string(), now)
                    .await
                {
                    warn!(error = %e, "could not record an ECR renewal error");
                }
                Err(error)
            }
        }
    }

    /// The token's times: usable until AWS's expiry less the margin, renewed at half its life;
    /// a token with less than the floor left is used for the floor.
    fn shape(
        &self,
        username: String,
        password: Secret,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Token {
        let floor = secs(self.settings.floor);
        let margin = secs(self.settings.margin);
        let life = expires_at.unix() - now.unix();
        let (usable_until, renew_at) = if life < floor + margin {
            warn!(
                expires_at = %expires_at,
                now = %now,
                "AWS sent an ECR token that is (nearly) expired on arrival: clocks disagree; using it for {floor} s"
            );
            let until = Timestamp::from_unix(now.unix() + floor);
            (until, until)
        } else {
            (
                Timestamp::from_unix(expires_at.unix() - margin),
                Timestamp::from_unix(now.unix() + life / 2),
            )
        };
        Token {
            username,
            password,
            usable_until,
            obtained_at: now,
            renew_at,
        }
    }

    /// Exponential backoff with ±50 % jitter, longer when throttled, capped.
    fn backoff(&self, failures: u32, throttled: bool) -> Duration {
        let base = self.settings.min_backoff.as_secs_f64()
            * 2f64.powi(
                i32::try_from(failures.saturating_sub(1))
                    .unwrap_or(30)
                    .min(30),
            );
        let base = if throttled {
            base * f64::from(self.settings.throttle_factor)
        } else {
            base
        };
        let capped = base.min(self.settings.max_backoff.as_secs_f64());
        let jittered = capped * rand::thread_rng().gen_range(0.5..1.5);
        Duration::from_secs_f64(jittered.max(1.0))
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_debug_is_redacted() {
        let token = Token {
            username: "AWS".into(),
            password: Secret::new("debug-ecr-token"),
            usable_until: Timestamp::from_unix(2),
            obtained_at: Timestamp::from_unix(0),
            renew_at: Timestamp::from_unix(1),
        };
        assert!(!format!("{token:?}").contains("debug-ecr-token"));
    }
}
