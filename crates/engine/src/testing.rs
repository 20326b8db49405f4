//! In-process fakes of the engine's adapters, behind the same traits as the real ones, for the
//! fast test tiers: a scripted ECR token minter ([`ScriptedMinter`], the real one is
//! `regkeep_ecr::EcrClient` against AWS or moto), an in-memory token repository
//! ([`MemoryTokenRepository`]) and every other repository in memory ([`MemoryRepositories`]; the
//! real ones are `regkeep_store::Store`), and a fake registry ([`FakeRegistryApi`]). Built for this
//! crate's unit tests and, with the `testing` feature, for the hermetic integration tests. Never
//! used by the server.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use regkeep_domain::{BoxFuture, Clock, EcrToken, Secret, Timestamp};
use regkeep_ecr::{AwsCredentialSource, EcrAuthorization, EcrError, EcrTarget, MintEcrTokens};
use regkeep_store::{EcrTokenRepository, StoreError};

#[cfg(test)]
mod contract;
mod memory;
pub use memory::{MemoryRepositories, INJECTED_CAUSE};

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
    /// Minting leases: key → (holder, until).
    leases: Mutex<HashMap<String, (String, i64)>>,
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

    /// Exactly these keys are used by some registry (what [`MemoryRepositories`] keeps in step
    /// with its registries).
    pub fn set_used(&self, keys: HashSet<String>) {
        *self.used_set() = keys;
    }

    /// The token and last error kept under `key`, when a row is.
    pub fn row_status(&self, key: &str) -> Option<(Option<EcrToken>, Option<String>)> {
        self.rows_map()
            .get(key)
            .map(|r| (r.token.clone(), r.last_error.clone()))
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

    fn try_lease<'a>(
        &'a self,
        key: &'a str,
        holder: &'a str,
        until: Timestamp,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<bool>> {
        let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        let free = leases
            .get(key)
            .is_none_or(|(h, u)| *u <= now.unix() || h == holder);
        if free {
            leases.insert(key.to_owned(), (holder.to_owned(), until.unix()));
        }
        Box::pin(async move { Ok(free) })
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

/// One call the fake registry answered: where, with which user (none: anonymous), what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryCall {
    pub authority: String,
    pub verify_tls: bool,
    pub user: Option<String>,
    pub operation: &'static str,
    pub repository: Option<String>,
}

/// A registry API in memory: images by (authority, repository, tag), credentials each
/// authority accepts (none listed: anonymous access), and a log of every call. Passwords are
/// compared, never kept in the log. A password can be refused a set number of times (an ECR
/// token the registry no longer honours).
#[derive(Default)]
pub struct FakeRegistryApi {
    state: Mutex<FakeRegistryState>,
}

#[derive(Default)]
struct FakeRegistryState {
    images: HashMap<(String, String, String), regkeep_registry::manifests::ResolvedImage>,
    accepted: HashMap<String, Vec<(String, String)>>,
    refuse_next: HashMap<String, u32>,
    calls: Vec<RegistryCall>,
}

impl FakeRegistryApi {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, FakeRegistryState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `authority` accepts `user`/`password` (and, from now on, nothing anonymous).
    pub fn accept(&self, authority: &str, user: &str, password: &str) {
        self.state()
            .accepted
            .entry(authority.to_owned())
            .or_default()
            .push((user.to_owned(), password.to_owned()));
    }

    /// The next `times` calls that present `password` are refused with 401.
    pub fn refuse_password(&self, password: &str, times: u32) {
        self.state().refuse_next.insert(password.to_owned(), times);
    }

    /// Serves `authority/repository:tag` as a single-platform linux/amd64 image whose digests
    /// derive from `seed`.
    pub fn serve(&self, authority: &str, repository: &str, tag: &str, seed: u8) {
        let digest = |b: u8| regkeep_domain::Digest::of_sha256([b; 32]);
        let image = regkeep_registry::manifests::ResolvedImage {
            digest: digest(seed),
            media_type: regkeep_domain::oci::OCI_MANIFEST.into(),
            manifest_digest: digest(seed),
            config_digest: digest(seed.wrapping_add(1)),
            platform: regkeep_domain::oci::Platform::default_linux(),
            created: None,
            layers: Vec::new(),
            total_size: 0,
        };
        self.state().images.insert(
            (authority.to_owned(), repository.to_owned(), tag.to_owned()),
            image,
        );
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<RegistryCall> {
        self.state().calls.clone()
    }

    /// Logs the call and checks its credential.
    fn enter(
        &self,
        endpoint: &regkeep_registry::Endpoint,
        credentials: Option<&regkeep_registry::BasicCredentials>,
        operation: &'static str,
        repository: Option<&str>,
    ) -> std::result::Result<(), regkeep_registry::RegistryError> {
        let mut state = self.state();
        state.calls.push(RegistryCall {
            authority: endpoint.authority.clone(),
            verify_tls: endpoint.verify_tls,
            user: credentials.map(|c| c.username.clone()),
            operation,
            repository: repository.map(str::to_owned),
        });
        let refused = || regkeep_registry::RegistryError::Refused {
            who: format!("registry {}", endpoint.authority),
            status: 401,
            answer: String::new(),
            anonymous: credentials.is_none(),
        };
        if let Some(c) = credentials {
            if let Some(left) = state.refuse_next.get_mut(c.password.expose()) {
                if *left > 0 {
                    *left -= 1;
                    return Err(refused());
                }
            }
        }
        match (state.accepted.get(&endpoint.authority), credentials) {
            (None, _) => Ok(()),
            (Some(accepted), Some(c))
                if accepted
                    .iter()
                    .any(|(u, p)| *u == c.username && p == c.password.expose()) =>
            {
                Ok(())
            }
            _ => Err(refused()),
        }
    }

    fn image(
        &self,
        endpoint: &regkeep_registry::Endpoint,
        repository: &str,
        reference: &str,
    ) -> std::result::Result<
        regkeep_registry::manifests::ResolvedImage,
        regkeep_registry::RegistryError,
    > {
        let state = self.state();
        let key = (
            endpoint.authority.clone(),
            repository.to_owned(),
            reference.to_owned(),
        );
        state
            .images
            .get(&key)
            .or_else(|| {
                state.images.iter().find_map(|((a, r, _), image)| {
                    (*a == endpoint.authority
                        && r == repository
                        && image.digest.as_str() == reference)
                        .then_some(image)
                })
            })
            .cloned()
            .ok_or_else(|| regkeep_registry::RegistryError::NotFound {
                url: format!(
                    "https://{}/v2/{repository}/manifests/{reference}",
                    endpoint.authority
                ),
                what: format!("manifest {reference} of {repository}"),
            })
    }
}

type RegistryResult<T> = std::result::Result<T, regkeep_registry::RegistryError>;

impl regkeep_registry::RegistryApi for FakeRegistryApi {
    fn ping<'a>(
        &'a self,
        endpoint: &'a regkeep_registry::Endpoint,
        credentials: Option<&'a regkeep_registry::BasicCredentials>,
    ) -> BoxFuture<'a, RegistryResult<()>> {
        let answer = self.enter(endpoint, credentials, "ping", None);
        Box::pin(async move { answer })
    }

    fn resolve_image<'a>(
        &'a self,
        endpoint: &'a regkeep_registry::Endpoint,
        credentials: Option<&'a regkeep_registry::BasicCredentials>,
        repository: &'a str,
        reference: &'a str,
        _platform: &'a regkeep_domain::oci::Platform,
    ) -> BoxFuture<'a, RegistryResult<regkeep_registry::manifests::ResolvedImage>> {
        let answer = self
            .enter(endpoint, credentials, "resolve_image", Some(repository))
            .and_then(|()| self.image(endpoint, repository, reference));
        Box::pin(async move { answer })
    }

    fn fetch_manifest<'a>(
        &'a self,
        endpoint: &'a regkeep_registry::Endpoint,
        credentials: Option<&'a regkeep_registry::BasicCredentials>,
        repository: &'a str,
        _reference: &'a str,
    ) -> BoxFuture<'a, RegistryResult<regkeep_registry::manifests::RawManifest>> {
        let answer = self
            .enter(endpoint, credentials, "fetch_manifest", Some(repository))
            .and_then(|()| {
                Err(regkeep_registry::RegistryError::Protocol {
                    url: endpoint.authority.clone(),
                    detail: "the fake registry serves no manifest bytes".into(),
                })
            });
        Box::pin(async move { answer })
    }

    fn manifest_digest<'a>(
        &'a self,
        endpoint: &'a regkeep_registry::Endpoint,
        credentials: Option<&'a regkeep_registry::BasicCredentials>,
        repository: &'a str,
        reference: &'a str,
    ) -> BoxFuture<'a, RegistryResult<regkeep_domain::Digest>> {
        let answer = self
            .enter(endpoint, credentials, "manifest_digest", Some(repository))
            .and_then(|()| self.image(endpoint, repository, reference))
            .map(|image| image.digest);
        Box::pin(async move { answer })
    }

    fn open_blob<'a>(
        &'a self,
        endpoint: &'a regkeep_registry::Endpoint,
        credentials: Option<&'a regkeep_registry::BasicCredentials>,
        repository: &'a str,
        digest: &'a str,
    ) -> BoxFuture<'a, RegistryResult<regkeep_registry::blobs::BlobDownload>> {
        let answer = self
            .enter(endpoint, credentials, "open_blob", Some(repository))
            .map(|()| {
                regkeep_registry::blobs::BlobDownload::from_bytes(
                    digest,
                    &endpoint.authority,
                    b"{}",
                    1,
                )
            });
        Box::pin(async move { answer })
    }
}

/// The admin's password in [`team`]'s engine.
pub const ADMIN_PASSWORD: &str = "admin-password-1";
/// The password of `alice`, a user of `team-a`, in [`team`]'s engine.
pub const ALICE_PASSWORD: &str = "alice-password";

/// An engine on the in-memory repositories, a manual clock, the scripted minter and the fake
/// registry, with the admin seeded and logged in, accounts `team-a` and `team-b`, and `alice`
/// of `team-a` logged in: where the engine's unit tests start.
pub struct Team {
    pub engine: crate::Engine,
    pub repos: Arc<MemoryRepositories>,
    pub minter: Arc<ScriptedMinter>,
    pub registry: Arc<FakeRegistryApi>,
    pub clock: Arc<regkeep_domain::ManualClock>,
    pub admin: crate::Caller,
    pub alice: crate::Caller,
}

/// [`Team`] with `config`.
///
/// # Panics
/// When the set-up fails (a test's precondition).
pub async fn team(config: crate::EngineConfig) -> Team {
    use regkeep_domain::wire::{AccountCreationRequest, UserCreationRequest};
    let clock = Arc::new(regkeep_domain::ManualClock::at(Timestamp::from_unix(
        1_800_000_000,
    )));
    let repos = MemoryRepositories::new();
    let minter = ScriptedMinter::new(clock.clone());
    let registry = FakeRegistryApi::new();
    let engine = crate::Engine::new(
        repos.repositories(),
        registry.clone(),
        minter.clone(),
        clock.clone(),
        config,
    );
    let accounts = engine.accounts();
    assert!(accounts
        .bootstrap_admin(&Secret::new(ADMIN_PASSWORD))
        .await
        .expect("the admin is seeded"));
    let admin = accounts
        .login("admin", &Secret::new(ADMIN_PASSWORD), None)
        .await
        .expect("the admin logs in");
    for name in ["team-a", "team-b"] {
        accounts
            .create_account(
                &admin,
                AccountCreationRequest {
                    name: name.into(),
                    email: None,
                },
            )
            .await
            .expect("the account is made");
    }
    accounts
        .create_user(
            &admin,
            "team-a",
            UserCreationRequest {
                username: "alice".into(),
                password: Secret::new(ALICE_PASSWORD),
            },
        )
        .await
        .expect("alice is made");
    let alice = accounts
        .login("alice", &Secret::new(ALICE_PASSWORD), None)
        .await
        .expect("alice logs in");
    Team {
        engine,
        repos,
        minter,
        registry,
        clock,
        admin,
        alice,
    }
}
