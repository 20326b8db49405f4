//! Tag watching (issue 4.6): `tag_update` subscriptions (Anchore's shape), a poller that asks
//! each watched tag's registry what the tag points at now, and the event log.
//!
//! A poll costs one manifest GET in a kept registry session; only a new digest costs a full
//! resolution (platform manifest and config), which becomes an image record and a
//! `user.checks.tag_update` event. Time comes from the injected clock, so days of polling can
//! be simulated. Polls run with bounded concurrency and a per-registry rate limit; each poll is
//! claimed in the database first, so replicas sharing PostgreSQL never poll the same tag twice.
//! The credential serving each poll is resolved at poll time: ECR tokens renewed since the last
//! poll are simply used.

use std::num::NonZeroU32;
use std::time::Duration;

use futures_util::StreamExt as _;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use rand::RngCore as _;
use regkeep_domain::entities::{EventFilter, EventRecord, PollOutcome, SubscriptionRecord};
use regkeep_domain::oci::Platform;
use regkeep_domain::wire::SubscriptionRequest;
use regkeep_domain::{AccountName, ImageReference, Timestamp};
use regkeep_store::StoreError;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::EngineError;

/// The subscription type regkeep watches.
pub const TAG_UPDATE: &str = "tag_update";
/// The event of a watched tag pointing at a new digest.
pub const EVENT_TAG_UPDATE: &str = "user.checks.tag_update";
/// The event of a watched tag that could not be polled (Anchore's name for a failed lookup).
pub const EVENT_LOOKUP_FAILED: &str = "system.image_analysis.registry_lookup_failed";

/// An event type regkeep writes: what `GET /v1/event_types` lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventType {
    /// Fully qualified: `category.subcategory.name`.
    pub event_type: &'static str,
    /// `INFO` or `ERROR`.
    pub level: &'static str,
    pub message: &'static str,
    pub resource_type: &'static str,
}

const TAG_UPDATE_EVENT: EventType = EventType {
    event_type: EVENT_TAG_UPDATE,
    level: "INFO",
    message: "A watched tag points at a new image digest",
    resource_type: "image_tag",
};

const LOOKUP_FAILED_EVENT: EventType = EventType {
    event_type: EVENT_LOOKUP_FAILED,
    level: "ERROR",
    message: "A watched tag could not be looked up in its registry",
    resource_type: "image_reference",
};

/// Every event type regkeep writes.
pub const EVENT_TYPES: [EventType; 2] = [TAG_UPDATE_EVENT, LOOKUP_FAILED_EVENT];

/// How the poller runs.
#[derive(Clone, Debug)]
pub struct WatchSettings {
    /// How often each watched tag is polled.
    pub interval: Duration,
    /// Polls in flight at once.
    pub concurrency: usize,
    /// Requests per second to one registry (host:port) from the poller; 0: no limit.
    pub registry_requests_per_second: u32,
    /// Most subscriptions taken in one round.
    pub batch: i64,
    /// Events older than this are deleted (checked hourly); zero keeps them forever.
    pub event_retention: Duration,
}

impl Default for WatchSettings {
    fn default() -> Self {
        WatchSettings {
            interval: Duration::from_secs(300),
            concurrency: 8,
            registry_requests_per_second: 10,
            batch: 1000,
            event_retention: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// What one round of polling did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PollSummary {
    pub polled: usize,
    /// Tags found pointing at a new digest.
    pub changed: usize,
    pub failed: usize,
}

/// The poller's per-registry rate limiter.
pub(crate) struct RegistryLimiter(Option<DefaultKeyedRateLimiter<String>>);

impl RegistryLimiter {
    pub(crate) fn new(per_second: u32) -> Self {
        RegistryLimiter(
            NonZeroU32::new(per_second).map(|n| RateLimiter::keyed(Quota::per_second(n))),
        )
    }

    async fn wait(&self, registry: &str) {
        if let Some(limiter) = &self.0 {
            limiter.until_key_ready(&registry.to_owned()).await;
        }
    }
}

/// Tag watching: subscriptions, the poller (claims in the database, a deadline per poll, a
/// request rate per registry), and the event log. One job of the engine; [`crate::Engine::watch`]
/// gives it. Cheap to clone (each poll runs on a clone).
#[derive(Clone)]
pub struct TagWatch {
    pub(crate) store: std::sync::Arc<dyn regkeep_store::WatchRepository>,
    pub(crate) clock: std::sync::Arc<dyn regkeep_domain::Clock>,
    pub(crate) settings: WatchSettings,
    pub(crate) quotas: crate::Quotas,
    pub(crate) registry_client: std::sync::Arc<dyn regkeep_registry::RegistryApi>,
    pub(crate) images: std::sync::Arc<crate::Images>,
    pub(crate) limiter: std::sync::Arc<RegistryLimiter>,
    /// The poller's last pass (`GET /v1/system`).
    pub(crate) heartbeat: std::sync::Arc<crate::heartbeat::Heartbeat>,
    pub(crate) metrics: crate::metrics::EngineMetrics,
}

impl TagWatch {
    /// The poller's last pass.
    pub fn heartbeat(&self) -> &crate::heartbeat::Heartbeat {
        &self.heartbeat
    }

    /// Creates a subscription and, when active, polls it at once so the answer shows the
    /// digest the tag points at now (or why it could not be had).
    ///
    /// # Errors
    /// BadInput for an unknown type or a key that is not `host/repo:tag`; Conflict when the
    /// account already has it.
    pub async fn add_subscription(
        &self,
        account: &AccountName,
        request: &SubscriptionRequest,
    ) -> Result<SubscriptionRecord, EngineError> {
        if request.subscription_type != TAG_UPDATE {
            return Err(EngineError::BadInput(format!(
                "subscription_type `{}` is not supported: regkeep watches `{TAG_UPDATE}` (a tag's digest)",
                request.subscription_type
            )));
        }
        check_length("subscription_key", &request.subscription_key, MAX_KEY_LEN)?;
        if let Some(value) = &request.subscription_value {
            check_length("subscription_value", value, MAX_VALUE_LEN)?;
        }
        let key = watched_tag(&request.subscription_key)?;
        crate::check_quota(
            self.quotas.subscriptions,
            crate::QuotaKind::Subscriptions,
            account,
            self.store.count_subscriptions(account),
        )
        .await?;
        let now = self.clock.now();
        let record = SubscriptionRecord {
            account: account.clone(),
            subscription_id: random_id(),
            subscription_type: TAG_UPDATE.into(),
            subscription_key: key.to_string(),
            subscription_value: request.subscription_value.clone(),
            active: request.active.unwrap_or(true),
            last_digest: None,
            last_polled_at: None,
            last_error: None,
            failures: 0,
            next_poll_at: now,
            created_at: now,
            last_updated: now,
        };
        match self.store.insert_subscription(&record).await {
            Ok(()) => {}
            Err(StoreError::AlreadyExists) => {
                return Err(EngineError::AlreadyExists(crate::Named::new(
                    crate::Entity::Subscription,
                    key.to_string(),
                    Some(account),
                )))
            }
            Err(e) => return Err(e.into()),
        }
        info!(%account, tag = %key, id = %record.subscription_id, "tag watch added");
        if record.active {
            let next = self.next_poll(now);
            if self
                .store
                .claim_poll(account, &record.subscription_id, now, next)
                .await?
            {
                // A failed first poll is kept on the subscription (last_error) and logged as an
                // event; the subscription stands and the poller keeps trying.
                if let Err(error) = self.poll_one(&record, &RegistryLimiter::new(0)).await {
                    info!(%account, tag = %key, %error, "the first poll of a new tag watch failed");
                }
            }
        }
        self.get_subscription(account, &record.subscription_id)
            .await
    }

    /// # Errors
    /// Storage errors.
    pub async fn list_subscriptions(
        &self,
        account: &AccountName,
    ) -> Result<Vec<SubscriptionRecord>, EngineError> {
        Ok(self.store.list_subscriptions(account).await?)
    }

    /// # Errors
    /// NotFound.
    pub async fn get_subscription(
        &self,
        account: &AccountName,
        id: &str,
    ) -> Result<SubscriptionRecord, EngineError> {
        self.store
            .get_subscription(account, id)
            .await
            .map_err(|e| subscription_error(e, account, id))
    }

    /// Turns a subscription on (polled at once: the answer is the record after that poll) or
    /// off.
    ///
    /// # Errors
    /// NotFound.
    pub async fn set_subscription_active(
        &self,
        account: &AccountName,
        id: &str,
        active: bool,
    ) -> Result<SubscriptionRecord, EngineError> {
        let now = self.clock.now();
        self.store
            .set_subscription_active(account, id, active, now, now)
            .await
            .map_err(|e| subscription_error(e, account, id))?;
        if active {
            return self.poll_subscription_now(account, id).await;
        }
        self.get_subscription(account, id).await
    }

    /// Polls one subscription now, whatever its schedule (`subscription poll`), and answers the
    /// record after the poll: the digest the tag points at now, or why it could not be had. The
    /// poll is claimed as the poller claims one, so the poller (of any replica) does not poll it
    /// at the same moment; when it just did, its result is the answer.
    ///
    /// # Errors
    /// NotFound; storage errors (a failed poll is in the record, not an error).
    pub async fn poll_subscription_now(
        &self,
        account: &AccountName,
        id: &str,
    ) -> Result<SubscriptionRecord, EngineError> {
        let record = self.get_subscription(account, id).await?;
        let next = self.next_poll(self.clock.now());
        if self
            .store
            .claim_poll(account, id, record.next_poll_at, next)
            .await?
        {
            match tokio::time::timeout(
                POLL_DEADLINE,
                self.poll_one(&record, &RegistryLimiter::new(0)),
            )
            .await
            {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => info!(%account, id, %error, "a poll asked for failed"),
                Err(_) => warn!(%account, id, "a poll asked for took too long and was stopped"),
            }
        }
        self.get_subscription(account, id).await
    }

    /// # Errors
    /// NotFound.
    pub async fn delete_subscription(
        &self,
        account: &AccountName,
        id: &str,
    ) -> Result<(), EngineError> {
        self.store
            .delete_subscription(account, id)
            .await
            .map_err(|e| subscription_error(e, account, id))
    }

    /// The account's events matching `filter`, newest first; the flag says whether more follow.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn list_events(
        &self,
        account: &AccountName,
        filter: &EventFilter,
    ) -> Result<(Vec<EventRecord>, bool), EngineError> {
        let mut asked = filter.clone();
        asked.limit = filter.limit + 1;
        let mut events = self.store.list_events(account, &asked).await?;
        let more = events.len() > usize::try_from(filter.limit).unwrap_or(usize::MAX);
        events.truncate(usize::try_from(filter.limit).unwrap_or(usize::MAX));
        Ok((events, more))
    }

    /// One of the account's events.
    ///
    /// # Errors
    /// NotFound; storage errors.
    pub async fn get_event(
        &self,
        account: &AccountName,
        uuid: &str,
    ) -> Result<EventRecord, EngineError> {
        match self.store.get_event(account, uuid).await {
            Ok(event) => Ok(event),
            Err(StoreError::NotFound) => Err(event_not_found(account, uuid)),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes one of the account's events.
    ///
    /// # Errors
    /// NotFound; storage errors.
    pub async fn delete_event(&self, account: &AccountName, uuid: &str) -> Result<(), EngineError> {
        match self.store.delete_event(account, uuid).await {
            Ok(()) => Ok(()),
            Err(StoreError::NotFound) => Err(event_not_found(account, uuid)),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes the account's events (all, or those in `[since, before)`); gives their ids.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn delete_events(
        &self,
        account: &AccountName,
        since: Option<Timestamp>,
        before: Option<Timestamp>,
    ) -> Result<Vec<String>, EngineError> {
        Ok(self.store.delete_events(account, since, before).await?)
    }

    /// One round: every due subscription (up to the batch) is claimed and polled, with bounded
    /// concurrency and the per-registry rate limit.
    ///
    /// # Errors
    /// Storage errors reading what is due (a failed poll is counted, not an error).
    pub async fn poll_due_once(&self) -> Result<PollSummary, EngineError> {
        let now = self.clock.now();
        let due = self
            .store
            .due_subscriptions(now, self.settings.batch)
            .await?;
        let next = self.next_poll(now);
        let outcomes: Vec<Result<Option<bool>, EngineError>> = futures_util::stream::iter(due)
            .map(|subscription| async move {
                let claimed = self
                    .store
                    .claim_poll(
                        &subscription.account,
                        &subscription.subscription_id,
                        subscription.next_poll_at,
                        next,
                    )
                    .await?;
                if !claimed {
                    return Ok(None);
                }
                // Each poll on a task of its own, with a deadline: one registry that answers a
                // byte at a time, or a bug that panics on what a registry sent, cannot hold up
                // or end the polling of every other account.
                let engine = self.clone();
                let poll = tokio::spawn(async move {
                    let limiter = engine.limiter.clone();
                    tokio::time::timeout(POLL_DEADLINE, engine.poll_one(&subscription, &limiter))
                        .await
                });
                match poll.await {
                    Ok(Ok(outcome)) => outcome.map(Some),
                    Ok(Err(_)) => Err(EngineError::internal(format!(
                        "a tag poll took longer than {} s and was stopped",
                        POLL_DEADLINE.as_secs()
                    ))),
                    Err(e) => Err(EngineError::Internal(Box::new(e))),
                }
            })
            .buffer_unordered(self.settings.concurrency.max(1))
            .collect()
            .await;
        let mut summary = PollSummary::default();
        for outcome in outcomes {
            match outcome {
                Ok(None) => {}
                Ok(Some(changed)) => {
                    summary.polled += 1;
                    summary.changed += usize::from(changed);
                }
                Err(e) => {
                    summary.polled += 1;
                    summary.failed += 1;
                    warn!(error = %e, "a tag poll failed");
                }
            }
        }
        Ok(summary)
    }

    /// Polls due subscriptions every `tick`, and applies the event retention hourly, until
    /// `stop` is cancelled.
    pub async fn run_watch_until_stopped(&self, tick: Duration, stop: CancellationToken) {
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut retention = tokio::time::interval(Duration::from_secs(3600));
        retention.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.heartbeat.started(tick);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = interval.tick() => {
                    match self.poll_due_once().await {
                        Ok(summary) => self.heartbeat.passed(summary.failed > 0),
                        Err(e) => {
                            self.heartbeat.passed(true);
                            warn!(error = %e, "the tag watch round failed; retrying at the next tick");
                        }
                    }
                }
                _ = retention.tick() => {
                    if let Err(e) = self.prune_events().await {
                        warn!(error = %e, "pruning old events failed; retrying in an hour");
                    }
                }
            }
        }
    }

    /// Deletes events older than the retention (none when it is zero); gives how many.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn prune_events(&self) -> Result<u64, EngineError> {
        let keep = self.settings.event_retention;
        if keep.is_zero() {
            return Ok(0);
        }
        let seconds = i64::try_from(keep.as_secs()).unwrap_or(i64::MAX);
        let before = Timestamp::from_unix(self.clock.now().unix().saturating_sub(seconds));
        let pruned = self.store.prune_events(before).await?;
        if pruned > 0 {
            info!(pruned, %before, "old events deleted (watch.event_retention_days)");
        }
        Ok(pruned)
    }

    /// Polls one claimed subscription: gives whether the tag moved; an error when the poll
    /// failed (stored on the subscription, and an event on the first failure in a row).
    async fn poll_one(
        &self,
        subscription: &SubscriptionRecord,
        limiter: &RegistryLimiter,
    ) -> Result<bool, EngineError> {
        let account = &subscription.account;
        let image = watched_tag(&subscription.subscription_key)?;
        limiter.wait(image.authority()).await;
        let result = async {
            let digest = self.current_digest(account, &image).await?;
            if subscription.last_digest.as_ref() == Some(&digest) {
                return Ok((digest, false));
            }
            // A new digest: record the image (resolved at that digest) before telling anyone.
            // linux/amd64 when the image has it, else the first platform of its index (an
            // arm64-only or Windows tag is still watched).
            let pinned = image.with_digest(&digest);
            let manifest = self.images.fetch_manifest(account, &pinned).await?;
            let platform = manifest
                .manifest
                .is_index()
                .then(|| {
                    let default = Platform::default_linux();
                    match manifest.manifest.entry_for(&default) {
                        Ok(_) => None,
                        Err(_) => manifest
                            .manifest
                            .manifests
                            .iter()
                            .find_map(|d| d.platform.as_ref().map(ToString::to_string)),
                    }
                })
                .flatten();
            self.images
                .add_image(
                    account,
                    &image.to_string(),
                    Some(digest.as_str()),
                    platform.as_deref(),
                )
                .await?;
            Ok::<_, EngineError>((digest, true))
        }
        .await;
        let now = self.clock.now();
        match result {
            Ok((digest, moved)) => {
                let changed = moved && subscription.last_digest.is_some();
                // The event first: should storing the poll fail, the next poll finds the move
                // again (an event twice) rather than never (an event lost).
                if changed {
                    info!(%account, tag = %image, %digest, "watched tag moved");
                    self.record_event(
                        account,
                        &TAG_UPDATE_EVENT,
                        &image.to_string(),
                        serde_json::json!({
                            "subscription_id": subscription.subscription_id,
                            "previous_digest": subscription.last_digest,
                            "digest": digest,
                        }),
                    )
                    .await?;
                }
                self.store
                    .record_poll(
                        account,
                        &subscription.subscription_id,
                        &PollOutcome {
                            last_digest: Some(digest.clone()),
                            last_error: None,
                            failures: 0,
                            polled_at: now,
                        },
                    )
                    .await?;
                self.poll_counted(if changed { "changed" } else { "unchanged" });
                Ok(changed)
            }
            Err(error) => {
                self.poll_counted("failed");
                let message = error.to_string();
                self.store
                    .record_poll(
                        account,
                        &subscription.subscription_id,
                        &PollOutcome {
                            last_digest: subscription.last_digest.clone(),
                            last_error: Some(message.clone()),
                            failures: subscription.failures + 1,
                            polled_at: now,
                        },
                    )
                    .await?;
                if subscription.failures == 0 {
                    self.record_event(
                        account,
                        &LOOKUP_FAILED_EVENT,
                        &image.to_string(),
                        serde_json::json!({
                            "subscription_id": subscription.subscription_id,
                            "cause": message,
                        }),
                    )
                    .await?;
                }
                Err(error)
            }
        }
    }

    fn poll_counted(&self, outcome: &str) {
        self.metrics
            .tag_polls
            .get_or_create(&crate::metrics::PollLabels {
                outcome: outcome.into(),
            })
            .inc();
    }

    async fn record_event(
        &self,
        account: &AccountName,
        kind: &EventType,
        resource_id: &str,
        details: serde_json::Value,
    ) -> Result<(), EngineError> {
        self.store
            .insert_event(&EventRecord {
                account: account.clone(),
                generated_uuid: random_id(),
                created_at: self.clock.now(),
                event_type: kind.event_type.into(),
                level: kind.level.into(),
                message: kind.message.into(),
                resource_type: kind.resource_type.into(),
                resource_id: resource_id.into(),
                details: details.to_string(),
            })
            .await?;
        Ok(())
    }

    /// The digest `image`'s tag points at now (a HEAD where the registry allows), with the
    /// credential that serves it.
    async fn current_digest(
        &self,
        account: &AccountName,
        image: &ImageReference,
    ) -> Result<regkeep_domain::Digest, EngineError> {
        let (client, reference) = (&self.registry_client, image.reference());
        self.images
            .with_image_credential(account, image, |endpoint, basic| async move {
                client
                    .manifest_digest(&endpoint, basic.as_ref(), image.repository(), reference)
                    .await
            })
            .await
    }

    fn next_poll(&self, now: Timestamp) -> Timestamp {
        let seconds = i64::try_from(self.settings.interval.as_secs().max(1)).unwrap_or(i64::MAX);
        Timestamp::from_unix(now.unix().saturating_add(seconds))
    }
}

/// A watched key: an image reference with a tag and no digest, normalised.
fn watched_tag(key: &str) -> Result<ImageReference, EngineError> {
    let image: ImageReference = key
        .parse()
        .map_err(|e: regkeep_domain::ImageReferenceError| {
            EngineError::BadInput(format!("subscription_key: {e}"))
        })?;
    if image.digest().is_some() {
        return Err(EngineError::BadInput(format!(
            "subscription_key `{key}` names a digest, which never changes: watch a tag, e.g. registry.example.com/team/app:latest"
        )));
    }
    Ok(image)
}

fn subscription_error(error: StoreError, account: &AccountName, id: &str) -> EngineError {
    match error {
        StoreError::NotFound => EngineError::not_found(crate::Entity::Subscription, id, account),
        other => other.into(),
    }
}

/// 32 random hex digits (Anchore's ids are UUID hex).
fn random_id() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The longest one poll may take (its registry calls have their own timeouts; this bounds a
/// registry that keeps each of them alive by trickling bytes).
const POLL_DEADLINE: Duration = Duration::from_secs(120);

/// Longest subscription key (an image reference) accepted.
const MAX_KEY_LEN: usize = 1024;
/// Longest subscription value accepted (Anchore stores it; regkeep shows it back).
const MAX_VALUE_LEN: usize = 1024;

/// Refuses a text longer than `max` bytes, naming the field.
/// Free text from a request that is stored or searched for: bounded, and without control
/// characters (PostgreSQL's text cannot hold U+0000 at all, and none belongs in these fields).
pub(crate) fn check_length(field: &str, value: &str, max: usize) -> Result<(), EngineError> {
    if value.len() > max {
        return Err(EngineError::BadInput(format!(
            "{field} is {} bytes long; at most {max} are accepted",
            value.len()
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(EngineError::BadInput(format!(
            "{field} contains control characters: remove them"
        )));
    }
    Ok(())
}

fn event_not_found(account: &AccountName, uuid: &str) -> EngineError {
    EngineError::not_found(
        crate::Entity::Event,
        regkeep_domain::untrusted_text::sanitize(uuid, 80),
        account,
    )
}
