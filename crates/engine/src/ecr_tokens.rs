//! The ECR token lifecycle (docs/design.md §3.4): one entry per (AWS identity, partition, region,
//! registry account); sealed copies persisted so a restart or another replica reuses a valid
//! token; renewal at half of the token's life, in the background; single-flight minting; on AWS
//! errors the current token is served until it truly expires, and retries back off exponentially
//! with jitter (longer when AWS throttles); a token that arrives already expired (clock skew) is
//! used for a floor of 60 s instead of causing a call on every use.
//!
//! Every entry has owners: the registries whose `token_key` names it. Deleting or re-keying a
//! registry releases its key ([`EcrTokens::release`]): the entry and its persisted row go when no
//! other registry uses them. A periodic sweep ([`EcrTokens::sweep_once`]) removes what other
//! replicas released and what a failed add left behind.
//!
//! Time comes from the injected [`Clock`], AWS from a [`MintEcrTokens`] and persistence from an
//! [`EcrTokenRepository`], so unit tests drive the whole lifecycle with a manual clock, a scripted
//! minter and an in-memory repository (`crate::testing`, built for tests only); the background task's steps,
//! [`EcrTokens::renew_due_once`] and [`EcrTokens::sweep_once`], are public for the same reason.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rand::Rng;
use regkeep_domain::{Backoff, Clock, EcrToken, Secret, Timestamp};
use regkeep_ecr::{AwsCredentialSource, EcrError, EcrTarget, MintEcrTokens};
use regkeep_store::{EcrTokenRepository, StoreError};
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
    /// How often tokens no registry uses are removed (memory and database).
    pub sweep: Duration,
    /// A token this young is never swept: it may be validating a registry not yet stored.
    pub sweep_grace: Duration,
    /// How long a replica's lease on minting a token lasts (longer than an AWS call takes): a
    /// replica killed mid-mint delays the others by at most this.
    pub lease: Duration,
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
            sweep: Duration::from_secs(300),
            sweep_grace: Duration::from_secs(600),
            lease: Duration::from_secs(30),
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
    Store(#[source] Arc<StoreError>),
}

impl From<StoreError> for TokenError {
    fn from(error: StoreError) -> Self {
        TokenError::Store(Arc::new(error))
    }
}

struct Entry {
    request: Mutex<TokenRequest>,
    /// The token in use. A std RwLock: read on every use, written on renewal, never held
    /// across an await.
    current: RwLock<Option<EcrToken>>,
    /// Held while minting: one AWS call at a time per entry (single-flight).
    attempts: tokio::sync::Mutex<Attempts>,
    /// A background renewal has been started and has not finished: uses start no other.
    renewal_pending: AtomicBool,
    /// Unix time before which no renewal is tried (the backoff after a failure), readable
    /// without the attempts lock so busy uses do not start renewals that would only back off.
    not_before: AtomicI64,
    /// When the entry was made (a young entry is never swept).
    created: Timestamp,
    /// No registry uses the key any more: whatever is still minted with it is not persisted.
    released: AtomicBool,
}

#[derive(Default)]
struct Attempts {
    failures: u32,
    next_attempt: Option<Timestamp>,
    last_error: Option<EcrError>,
}

impl Entry {
    fn current(&self) -> Option<EcrToken> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_current(&self, token: Option<EcrToken>) {
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
    client: Arc<dyn MintEcrTokens>,
    store: Arc<dyn EcrTokenRepository>,
    clock: Arc<dyn Clock>,
    settings: LifecycleSettings,
    entries: Mutex<HashMap<String, Arc<Entry>>>,
    /// The renewal loop's last pass (`GET /v1/system`).
    heartbeat: crate::heartbeat::Heartbeat,
    /// When the last sweep ran.
    last_sweep: AtomicI64,
    /// What operators see (AWS calls, renewals by outcome, tokens' remaining life).
    metrics: crate::metrics::EngineMetrics,
    /// This process's name on minting leases (replicas sharing one database mint each token
    /// once between them).
    holder: String,
}

impl EcrTokens {
    pub fn new(
        client: Arc<dyn MintEcrTokens>,
        store: Arc<dyn EcrTokenRepository>,
        clock: Arc<dyn Clock>,
        settings: LifecycleSettings,
    ) -> Self {
        let now = clock.now().unix();
        EcrTokens {
            client,
            store,
            clock,
            settings,
            entries: Mutex::new(HashMap::new()),
            heartbeat: crate::heartbeat::Heartbeat::default(),
            last_sweep: AtomicI64::new(now),
            metrics: crate::metrics::EngineMetrics::default(),
            holder: {
                let mut id = [0u8; 8];
                rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
                id.iter().map(|b| format!("{b:02x}")).collect()
            },
        }
    }

    /// Counts into `metrics` (the engine's) instead of a private set.
    #[must_use]
    pub fn with_metrics(mut self, metrics: crate::metrics::EngineMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Sets `metrics`' token gauges to the seconds each kept token has left now.
    pub fn refresh_gauges(&self, metrics: &crate::metrics::EngineMetrics) {
        let now = self.clock.now().unix();
        let gauges = &metrics.token_seconds_left;
        gauges.clear();
        let entries: Vec<Arc<Entry>> = self
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for entry in entries {
            if let Some(token) = entry.current() {
                let host = match &entry.request().target {
                    EcrTarget::Private {
                        account, region, ..
                    } => format!("{account}.dkr.ecr.{region}"),
                    EcrTarget::Public => "public.ecr.aws".to_owned(),
                };
                gauges
                    .get_or_create(&crate::metrics::TokenLabels { ecr_host: host })
                    .set(token.usable_until.unix() - now);
            }
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

    /// Minting attempts made so far (the `regkeep_aws_calls_total` counter it counts into).
    pub fn aws_calls(&self) -> u64 {
        self.metrics.aws_calls.get()
    }

    fn entry(&self, request: &TokenRequest) -> Arc<Entry> {
        let created = self.clock.now();
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
                    created,
                    released: AtomicBool::new(false),
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
    pub async fn token(self: &Arc<Self>, request: &TokenRequest) -> Result<EcrToken, TokenError> {
        loop {
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
            if entry.released.load(Ordering::Acquire) {
                // Released while this caller waited (its registry went, maybe a new one with
                // the same key came): start again on the current entry.
                continue;
            }
            let now = self.clock.now();
            if let Some(token) = entry.current().filter(|t| now < t.usable_until) {
                return Ok(token);
            }
            if let Some(token) = self.load_persisted(&request.key, now).await? {
                entry.set_current(Some(token.clone()));
                return Ok(token);
            }
            if let (Some(next), Some(error)) = (attempts.next_attempt, attempts.last_error.clone())
            {
                if now < next {
                    return Err(TokenError::BackingOff(error, next));
                }
            }
            return self
                .coordinated_mint(&entry, &mut attempts, true)
                .await
                .map_err(TokenError::Aws)?
                .ok_or_else(|| {
                    TokenError::Aws(EcrError::Unavailable {
                        detail: "another replica holds the lease on this token and stored none"
                            .into(),
                    })
                });
        }
    }

    /// Mints a new token now (validation of new credentials), replacing any cached one.
    ///
    /// # Errors
    /// [`EcrError`] as AWS answered.
    pub async fn mint_now(self: &Arc<Self>, request: &TokenRequest) -> Result<EcrToken, EcrError> {
        loop {
            let entry = self.entry(request);
            let mut attempts = entry.attempts.lock().await;
            if entry.released.load(Ordering::Acquire) {
                continue;
            }
            *entry.request.lock().unwrap_or_else(|p| p.into_inner()) = request.clone();
            return self.mint_locked(&entry, &mut attempts).await;
        }
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
        rejected: &EcrToken,
    ) -> Result<EcrToken, TokenError> {
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
                    let _ = this.coordinated_mint(&entry, &mut attempts, false).await;
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
            match self.coordinated_mint(&entry, &mut attempts, false).await {
                Ok(Some(_)) => renewed += 1,
                // Another replica holds the lease: it renews, this one loads its token later.
                Ok(None) => {}
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
                    let mut sweep_failed = false;
                    let now = self.clock.now().unix();
                    if now - self.last_sweep.load(Ordering::Relaxed) >= secs(self.settings.sweep) {
                        self.last_sweep.store(now, Ordering::Relaxed);
                        if let Err(e) = self.sweep_once().await {
                            warn!(error = %e, "removing unused ECR tokens failed; trying again later");
                            sweep_failed = true;
                        }
                    }
                    self.heartbeat.passed(failed > 0 || sweep_failed);
                    if renewed + failed > 0 {
                        info!(renewed, failed, "ECR token renewal pass");
                    }
                }
            }
        }
    }

    /// A registry no longer uses `key` (deleted, re-keyed, its account purged): when no other
    /// registry does, its persisted token goes and this process forgets it (no more renewals
    /// with credentials that may be revoked).
    ///
    /// # Errors
    /// The token store's.
    pub async fn release(&self, key: &str) -> Result<(), TokenError> {
        let entry = self
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned();
        // With the entry's attempts held, no mint of it is in flight: one that was has saved
        // its row by now, and the release below removes that row too.
        let no_mint = match &entry {
            Some(entry) => Some(entry.attempts.lock().await),
            None => None,
        };
        let unused = self.store.release(key).await?;
        if let (true, Some(entry)) = (unused, &entry) {
            entry.released.store(true, Ordering::Release);
            entry.set_current(None);
            let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            if entries.get(key).is_some_and(|e| Arc::ptr_eq(e, entry)) {
                entries.remove(key);
            }
        }
        drop(no_mint);
        Ok(())
    }

    /// Forgets the tokens no registry uses (released through another replica, or minted for an
    /// add that failed) and removes their persisted rows; entries younger than the grace are
    /// kept. Gives how many entries went from memory.
    ///
    /// # Errors
    /// The token store's.
    pub async fn sweep_once(&self) -> Result<usize, TokenError> {
        let used = self.store.used_keys().await?;
        let now = self.clock.now();
        let cutoff = Timestamp::from_unix(now.unix() - secs(self.settings.sweep_grace));
        let removed = {
            let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            let before = entries.len();
            entries.retain(|key, entry| {
                let last = entry
                    .current()
                    .map_or(entry.created, |t| t.obtained_at.max(entry.created));
                used.contains(key) || last > cutoff
            });
            before - entries.len()
        };
        let rows = self.store.delete_unused(cutoff).await?;
        if removed > 0 || rows > 0 {
            info!(
                entries = removed,
                rows, "removed ECR tokens no registry uses"
            );
        }
        Ok(removed)
    }

    async fn load_persisted(
        &self,
        key: &str,
        now: Timestamp,
    ) -> Result<Option<EcrToken>, TokenError> {
        let stored = self.store.load(key).await?;
        Ok(stored.filter(|t| now < t.usable_until))
    }

    /// Takes the lease `key` for `ttl` (one replica at a time does what it guards). A database
    /// that cannot be asked grants it: one process is the common case, and the guarded work is
    /// safe to repeat.
    pub(crate) async fn try_lease(&self, key: &str, ttl: Duration) -> bool {
        let now = self.clock.now();
        let until = Timestamp::from_unix(now.unix().saturating_add(secs(ttl)));
        match self.store.try_lease(key, &self.holder, until, now).await {
            Ok(taken) => taken,
            Err(e) => {
                warn!(error = %e, "cannot take a lease; going ahead without it");
                true
            }
        }
    }

    /// Ends this replica's lease `key` early (it expires now).
    pub(crate) async fn end_lease(&self, key: &str) {
        let now = self.clock.now();
        if let Err(e) = self.store.try_lease(key, &self.holder, now, now).await {
            warn!(error = %e, "cannot end a lease; it expires by itself");
        }
    }

    /// Mints with the other replicas in mind (docs/design.md §3.9): a token another replica
    /// stored since (still before its renewal point) is taken instead; else the lease on the key
    /// decides who mints. `waiting` (a caller has no usable token): wait for the holder's token,
    /// or for its lease to end, then take over. Not waiting (a background renewal): `Ok(None)`
    /// when another replica holds the lease. A database that cannot be asked does not stop a
    /// mint: availability before saving an AWS call.
    async fn coordinated_mint(
        &self,
        entry: &Entry,
        attempts: &mut Attempts,
        waiting: bool,
    ) -> Result<Option<EcrToken>, EcrError> {
        let key = entry.request().key;
        loop {
            let now = self.clock.now();
            let known = entry.current().map(|t| t.obtained_at);
            if let Ok(Some(stored)) = self.store.load(&key).await {
                let newer = known.is_none_or(|at| stored.obtained_at > at);
                if newer && now < stored.renew_at {
                    entry.set_current(Some(stored.clone()));
                    *attempts = Attempts::default();
                    entry.not_before.store(0, Ordering::Relaxed);
                    return Ok(Some(stored));
                }
            }
            let until = Timestamp::from_unix(now.unix().saturating_add(secs(self.settings.lease)));
            match self.store.try_lease(&key, &self.holder, until, now).await {
                Ok(true) => return self.mint_locked(entry, attempts).await.map(Some),
                Err(e) => {
                    warn!(error = %e, "cannot take the minting lease; minting without it");
                    return self.mint_locked(entry, attempts).await.map(Some);
                }
                Ok(false) if !waiting => return Ok(None),
                Ok(false) => tokio::time::sleep(LEASE_POLL).await,
            }
        }
    }

    /// One AWS call, with the entry's attempts lock held.
    async fn mint_locked(
        &self,
        entry: &Entry,
        attempts: &mut Attempts,
    ) -> Result<EcrToken, EcrError> {
        let request = entry.request();
        self.metrics.aws_calls.inc();
        let result = self.client.mint(&request.source, &request.target).await;
        match &result {
            Ok(_) => self.metrics.renewal("ok"),
            Err(e) => self
                .metrics
                .renewal(e.code().unwrap_or(if e.is_throttling() {
                    "throttled"
                } else {
                    "unavailable"
                })),
        }
        let now = self.clock.now();
        match result {
            Ok(auth) => {
                let token = self.shape(auth.username, auth.password, auth.expires_at, now);
                entry.set_current(Some(token.clone()));
                *attempts = Attempts::default();
                entry.not_before.store(0, Ordering::Relaxed);
                if entry.released.load(Ordering::Acquire) {
                    // Its registry went while this mint was waiting: used once, not kept.
                } else if let Err(e) = self.store.save(&request.key, &token).await {
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
                if entry.released.load(Ordering::Acquire) {
                    // No registry uses the key any more: nothing to record.
                } else if let Err(e) = self
                    .store
                    .record_error(&request.key, &error.to_string(), now)
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
    ) -> EcrToken {
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
        EcrToken {
            username,
            password,
            usable_until,
            obtained_at: now,
            renew_at,
        }
    }

    /// The shared schedule (exponential, ±50 % jitter, capped), longer when throttled; at
    /// least a second.
    fn backoff(&self, failures: u32, throttled: bool) -> Duration {
        let schedule = Backoff {
            first: self.settings.min_backoff,
            max: self.settings.max_backoff,
        };
        let factor = if throttled {
            self.settings.throttle_factor
        } else {
            1
        };
        let jitter = rand::thread_rng().gen_range(regkeep_domain::backoff::JITTER);
        schedule
            .delay(failures.saturating_sub(1), factor, jitter)
            .max(Duration::from_secs(1))
    }
}

/// How often a caller waiting on another replica's mint looks for its token.
const LEASE_POLL: Duration = Duration::from_millis(100);

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4)
}

#[cfg(test)]
mod tests;
