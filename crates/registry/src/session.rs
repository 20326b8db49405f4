//! Pull sessions: for one registry, credential and repository, the base URL (HTTPS; plain HTTP
//! only when verification is off and the host does not speak TLS) and the `Authorization` the
//! registry's `/v2/` challenge asks for (Basic with the credentials, or a Bearer token scoped
//! `repository:<repo>:pull`, anonymous when there are no credentials).
//!
//! Finding them costs one or two round trips (the ping, the token server), so sessions are kept
//! in memory — a Bearer session until shortly before its token's `expires_in`, others for a few
//! minutes — and an operation refused with 401 on a kept session is retried once on a fresh one
//! (a token that expired early, a password that changed). Keys hold a SHA-256 of the
//! credentials, never the credentials.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use regkeep_domain::{Secret, TtlMap, WhenFull};
use reqwest::{header, StatusCode};
use sha2::{Digest as _, Sha256};
use tokio::time::Instant;

use crate::challenge::Challenge;
use crate::outbound::GuardedClient;
use crate::redirects::{get_following, same_origin, Start};
use crate::{
    basic_header, needs_credentials, shown_url, unexpected, BasicCredentials, Challenger, Endpoint,
    RegistryClient, RegistryError, Timeouts,
};

/// How long a session without a token (Basic, anonymous) is kept.
const UNTIMED_SESSION: Duration = Duration::from_secs(300);
/// A Bearer token's lifetime when the token server does not say (distribution spec: 60 s).
const DEFAULT_TOKEN_SECONDS: u64 = 60;
/// The longest a Bearer session is kept, whatever the token server says.
const MAX_TOKEN_SECONDS: u64 = 24 * 3600;
/// Sessions kept before expired ones are swept.
const MAX_SESSIONS: usize = 4096;

/// What an operation on one repository talks to.
pub(crate) struct Session {
    pub(crate) http: GuardedClient,
    /// `scheme://host[:port]/` of the registry.
    pub(crate) base: reqwest::Url,
    pub(crate) repository: String,
    authorization: Option<Secret>,
    pub(crate) timeouts: Timeouts,
}

impl Session {
    /// `<base>/v2/<repository>/<rest>`.
    ///
    /// # Errors
    /// `Protocol` when `rest` does not make a URL (the repository and references are parsed
    /// before they get here, so only a registry's odd answer can cause it).
    pub(crate) fn url(&self, rest: &str) -> Result<reqwest::Url, RegistryError> {
        self.base
            .join(&format!("/v2/{}/{rest}", self.repository))
            .map_err(|e| RegistryError::Protocol {
                url: shown_url(&self.base),
                detail: format!("cannot make a URL of {}/{rest}: {e}", self.repository),
            })
    }

    /// Sends `method` to `url` (on the registry's own host) with the session's authorization,
    /// following redirects without it to other hosts; `headers` go to every hop.
    ///
    /// # Errors
    /// As [`get_following`].
    pub(crate) async fn send_following(
        &self,
        method: reqwest::Method,
        url: &reqwest::Url,
        headers: &[(header::HeaderName, &str)],
        timeout: Option<Duration>,
    ) -> Result<(reqwest::Response, reqwest::Url), RegistryError> {
        get_following(
            &self.http,
            Start {
                registry: &self.base,
                url: url.clone(),
                from_internal: false,
            },
            method,
            self.authorization.as_ref(),
            headers,
            timeout,
            &shown_url(url),
            self.timeouts,
        )
        .await
    }

    /// Whether `url` is on the registry's own host (scheme, host and port), i.e. may carry the
    /// session's credentials.
    pub(crate) fn same_origin(&self, url: &reqwest::Url) -> bool {
        same_origin(&self.base, url)
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct SessionKey {
    authority: String,
    verify_tls: bool,
    repository: String,
    credentials: [u8; 32],
}

/// Sessions kept in memory. A std Mutex: held to look up or insert, never across an await.
/// Time is tokio's (so tests with a paused clock see sessions expire).
pub(crate) struct SessionCache(Mutex<TtlMap<SessionKey, Arc<Session>>>);

impl Default for SessionCache {
    fn default() -> Self {
        SessionCache(Mutex::new(TtlMap::new(MAX_SESSIONS, WhenFull::Clear)))
    }
}

impl SessionCache {
    fn get(&self, key: &SessionKey) -> Option<Arc<Session>> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key, Instant::now().into_std()).cloned()
    }

    fn put(&self, key: SessionKey, session: Arc<Session>, lifetime: Duration) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now().into_std();
        let Some(until) = now.checked_add(lifetime) else {
            return;
        };
        map.insert(key, session, until, now);
    }

    fn forget(&self, key: &SessionKey) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }

    /// Drops every kept session (tests and benchmarks measuring cold starts).
    pub(crate) fn clear(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

impl RegistryClient {
    /// Runs `operation` in a session for `repository`; when it is refused with 401 on a kept
    /// session, once more on a fresh one.
    pub(crate) async fn with_session<T, F, Fut>(
        &self,
        endpoint: &Endpoint,
        credentials: Option<&BasicCredentials>,
        repository: &str,
        operation: F,
    ) -> Result<T, RegistryError>
    where
        F: Fn(Arc<Session>) -> Fut,
        Fut: std::future::Future<Output = Result<T, RegistryError>>,
    {
        let key = SessionKey {
            authority: endpoint.authority.clone(),
            verify_tls: endpoint.verify_tls,
            repository: repository.to_owned(),
            credentials: fingerprint(credentials),
        };
        if let Some(kept) = self.sessions.get(&key) {
            match operation(kept).await {
                Err(RegistryError::Refused { status: 401, .. }) => self.sessions.forget(&key),
                other => return other,
            }
        }
        let (session, lifetime) = self.open_session(endpoint, credentials, repository).await?;
        let session = Arc::new(session);
        self.sessions.put(key, session.clone(), lifetime);
        operation(session).await
    }

    /// Pings `/v2/` and answers its challenge.
    async fn open_session(
        &self,
        endpoint: &Endpoint,
        credentials: Option<&BasicCredentials>,
        repository: &str,
    ) -> Result<(Session, Duration), RegistryError> {
        let http = self.http_client(endpoint)?;
        let (base, first) = self.first_contact(&http, endpoint).await?;
        let (authorization, lifetime) = match first.status() {
            s if s.is_success() => (None, UNTIMED_SESSION),
            StatusCode::UNAUTHORIZED => {
                let challenge = first
                    .headers()
                    .get(header::WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(Challenge::parse);
                match (challenge, credentials) {
                    (Some(Challenge::Bearer { realm, service, .. }), creds) => {
                        let scope = format!("repository:{repository}:pull");
                        let (token, expires_in) = self
                            .fetch_token(
                                &http,
                                Challenger {
                                    base: &base,
                                    internal: http
                                        .guard()
                                        .answered_from_internal(first.remote_addr()),
                                },
                                &realm,
                                service.as_deref(),
                                Some(&scope),
                                creds,
                            )
                            .await?;
                        (
                            Some(Secret::new(format!("Bearer {}", token.expose()))),
                            token_lifetime(expires_in),
                        )
                    }
                    (_, Some(creds)) => (Some(Secret::new(basic_header(creds))), UNTIMED_SESSION),
                    (_, None) => return Err(needs_credentials(&endpoint.authority, first).await),
                }
            }
            s => return Err(unexpected(&format!("{}v2/", shown_url(&base)), s, first).await),
        };
        Ok((
            Session {
                http,
                base,
                repository: repository.to_owned(),
                authorization,
                timeouts: self.timeouts,
            },
            lifetime,
        ))
    }
}

/// How long a Bearer session is used: 90 % of the token's lifetime, so a request never goes out
/// with a token in its last moments.
fn token_lifetime(expires_in: Option<u64>) -> Duration {
    // A token server's word is not trusted past a day (an absurd `expires_in` must not overflow
    // the clock, nor keep a session forever).
    let seconds = expires_in
        .unwrap_or(DEFAULT_TOKEN_SECONDS)
        .clamp(1, MAX_TOKEN_SECONDS);
    Duration::from_secs(seconds).mul_f64(0.9)
}

fn fingerprint(credentials: Option<&BasicCredentials>) -> [u8; 32] {
    let mut hash = Sha256::new();
    if let Some(c) = credentials {
        hash.update(c.username.as_bytes());
        hash.update([0]);
        hash.update(c.password.expose().as_bytes());
    }
    hash.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_and_fingerprints() {
        assert_eq!(token_lifetime(None), Duration::from_secs(54));
        assert_eq!(token_lifetime(Some(300)), Duration::from_secs(270));
        assert!(token_lifetime(Some(0)) > Duration::ZERO);
        assert_eq!(
            token_lifetime(Some(u64::MAX)),
            Duration::from_secs(24 * 3600).mul_f64(0.9)
        );
        let a = BasicCredentials {
            username: "u".into(),
            password: Secret::new("p1"),
        };
        let b = BasicCredentials {
            username: "u".into(),
            password: Secret::new("p2"),
        };
        assert_ne!(fingerprint(Some(&a)), fingerprint(Some(&b)));
        assert_ne!(fingerprint(Some(&a)), fingerprint(None));
    }
}
