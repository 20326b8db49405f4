//! In-process fakes of the engine's adapters, behind the same traits as the real ones, for the
//! fast test tiers: a scripted ECR token minter ([`ScriptedMinter`], the real one is
//! `regkeep_ecr::EcrClient` against AWS or moto) and an in-memory token repository
//! ([`MemoryTokenRepository`], the real one is `regkeep_store::Store`). Built for this crate's unit
//! tests and, with the `testing` feature, for the hermetic integration tests. Never used by the
//! server.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use regkeep_domain::{BoxFuture, Clock, EcrToken, Secret, Timestamp};
use regkeep_ecr::{AwsCredentialSource, EcrAuthorization, EcrError, EcrTarget, MintEcrTokens};
use regkeep_store::{EcrTokenRepository, StoreError};

/// What the scripted minter answers.
#[derive(Clone, Debug)]
pub enum Answer {
    /// A token that lives this many seconds from the clock's now (negative: already expired).
    Lives(i64),
    /// This error.
    Fails(EcrError),
}

/// Mints fake ECR tokens on the injected clock: each answer is the next scripted one, or the
/// standing answer when the script is empty. Passwords are `fake-ecr-token-N` (N counts mints), so
/// tests tell tokens apart. Can hold every call at a gate to show single-flight.
pub struct ScriptedMinter {
    clock: Arc<dyn Clock>,
    state: Mutex<MinterState>,
    calls: AtomicU64,
    waiting: AtomicU64,
    gate: tokio::sync::watch::Sender<bool>,
}

struct MinterState {
    standing: Answer,
    script: VecDeque<Answer>,
    sources: Vec<AwsCredentialSource>,
}

impl ScriptedMinter {
    /// A minter whose tokens live 12 hours, as ECR's do.
    pub fn new(clock: Arc<dyn Clock>) -> Arc<Self> {
        Arc::new(ScriptedMinter {
            clock,
            state: Mutex::new(MinterState {
                standing: Answer::Lives(12 * 3600),
                script: VecDeque::new(),
                sources: Vec::new(),
            }),
            calls: AtomicU64::new(0),
            waiting: AtomicU64::new(0),
            gate: tokio::sync::watch::Sender::new(true),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, MinterState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every later call answers `answer` (until changed), after the scripted ones.
    pub fn always(&self, answer: Answer) {
        self.state().standing = answer;
    }

    /// The next call answers `answer`.
    pub fn then(&self, answer: Answer) {
        self.state().script.push_back(answer);
    }

    /// Calls wait at the gate until [`ScriptedMinter::open`].
    pub fn close(&self) {
        self.gate.send_replace(false);
    }

    pub fn open(&self) {
        self.gate.send_replace(true);
    }

    /// Mint calls made (counted when they start).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    /// Calls waiting at the closed gate.
    pub fn waiting(&self) -> u64 {
        self.waiting.load(Ordering::SeqCst)
    }

    /// The credential sources the calls used, in order.
    pub fn sources(&self) -> Vec<AwsCredentialSource> {
        self.state().sources.clone()
    }

    /// An AWS refusal as AWS words one.
    pub fn refused() -> EcrError {
        EcrError::Refused {
            code: "UnrecognizedClientException".into(),
            message: "The security token included in the request is invalid.".into(),
            status: Some(400),
        }
    }

    /// AWS throttling.
    pub fn throttled() -> EcrError {
        EcrError::Throttled {
            code: "ThrottlingException".into(),
            message: "Rate exceeded".into(),
        }
    }

    /// AWS unreachable.
    pub fn unavailable() -> EcrError {
        EcrError::Unavailable {
            detail: "dispatch failure: connection refused".into(),
        }
    }
}

impl MintEcrTokens for ScriptedMinter {
    fn mint<'a>(
        &'a self,
        source: &'a AwsCredentialSource,
        _target: &'a EcrTarget,
    ) -> BoxFuture<'a, std::result::Result<EcrAuthorization, EcrError>> {
        Box::pin(async move {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            let mut gate = self.gate.subscribe();
            if !*gate.borrow() {
                self.waiting.fetch_add(1, Ordering::SeqCst);
                let _ = gate.wait_for(|open| *open).await;
                self.waiting.fetch_sub(1, Ordering::SeqCst);
            }
            let answer = {
                let mut state = self.state();
                state.sources.push(source.clone());
                let standing = state.standing.clone();
                state.script.pop_front().unwrap_or(standing)
            };
            match answer {
                Answer::Lives(seconds) => Ok(EcrAuthorization {
                    username: "AWS".into(),
                    password: Secret::new(format!("fake-ecr-token-{n}")),
                    expires_at: Timestamp::from_unix(self.clock.now().unix() + seconds),
                    proxy_endpoint: None,
                }),
                Answer::Fails(error) => Err(error),
            }
        })
    }
}

/// Tokens kept in memory, with the set of keys "registries use" set by the test.
#[derive(Default)]
pub struct MemoryTokenRepository {
    rows: Mutex<HashMap<String, Row>>,
    used: Mutex<HashSet<String>>,
}

#[derive(Clone, Default)]
struct Row {
    token: Option<EcrToken>,
    last_error: Option<String>,
    updated_at: i64,
}

type Result<T> = std::result::Result<T, StoreError>;

impl MemoryTokenRepository {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Some registry now uses `key`.
    pub fn use_key(&self, key: &str) {
        self.used_set().insert(key.to_owned());
    }

    /// No registry uses `key` any more (as another replica's delete would leave it).
    pub fn unuse_key(&self, key: &str) {
        self.used_set().remove(key);
    }

    /// Whether a row is kept under `key`.
    pub fn has_row(&self, key: &str) -> bool {
        self.rows_map().contains_key(key)
    }

    /// The last error recorded under `key`.
    pub fn last_error(&self, key: &str) -> Option<String> {
        self.rows_map().get(key).and_then(|r| r.last_error.clone())
    }

    fn rows_map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Row>> {
        self.rows.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn used_set(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.used.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl EcrTokenRepository for MemoryTokenRepository {
    fn load<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<EcrToken>>> {
        let token = self.rows_map().get(key).and_then(|r| r.token.clone());
        Box::pin(async move { Ok(token) })
    }

    fn save<'a>(&'a self, key: &'a str, token: &'a EcrToken) -> BoxFuture<'a, Result<()>> {
        self.rows_map().insert(
            key.to_owned(),
            Row {
                token: Some(token.clone()),
                last_error: None,
                updated_at: token.obtained_at.unix(),
            },
        );
        Box::pin(async { Ok(()) })
    }

    fn record_error<'a>(
        &'a self,
        key: &'a str,
        error: &'a str,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<()>> {
        let mut rows = self.rows_map();
        let row = rows.entry(key.to_owned()).or_default();
        row.last_error = Some(error.to_owned());
        row.updated_at = now.unix();
        Box::pin(async { Ok(()) })
    }

    fn release<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool>> {
        let unused = !self.used_set().contains(key);
        if unused {
            self.rows_map().remove(key);
        }
        Box::pin(async move { Ok(unused) })
    }

    fn used_keys(&self) -> BoxFuture<'_, Result<HashSet<String>>> {
        let used = self.used_set().clone();
        Box::pin(async move { Ok(used) })
    }

    fn delete_unused(&self, written_before: Timestamp) -> BoxFuture<'_, Result<u64>> {
        let used = self.used_set().clone();
        let mut rows = self.rows_map();
        let before = rows.len();
        rows.retain(|key, row| used.contains(key) || row.updated_at >= written_before.unix());
        let removed = (before - rows.len()) as u64;
        Box::pin(async move { Ok(removed) })
    }
}
