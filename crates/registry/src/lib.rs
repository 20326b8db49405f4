//! regkeep's client for the Docker Registry HTTP API v2 / OCI distribution.
//!
//! Layout: [`challenge`] parses `WWW-Authenticate`; [`tls`] builds the per-registry TLS
//! settings (system roots, a global CA bundle, a per-registry `certs.d` folder, or no
//! verification); this module owns the HTTP clients and the `/v2/` ping that validation uses,
//! following Basic and Bearer (token realm) challenges.
//!
//! Credentials are sent only to the registry's own host and to the token realm it names;
//! redirects are never followed with credentials.

pub mod blobs;
pub mod challenge;
pub mod manifests;
mod retry;
mod session;
pub mod tls;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use regkeep_domain::Secret;
use reqwest::{header, StatusCode};
use serde::Deserialize;
use tracing::debug;

use challenge::Challenge;
pub use tls::{TlsError, TlsSettings};

/// Connect and total timeouts for every request.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub connect: Duration,
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            total: Duration::from_secs(30),
        }
    }
}

/// A user name and password for a registry. `Debug` redacts the password.
#[derive(Clone, Debug)]
pub struct BasicCredentials {
    pub username: String,
    pub password: Secret,
}

/// Where and how to reach one registry.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// `host[:port]`.
    pub authority: String,
    /// Verify TLS certificates. When false, certificates are not checked and a host that does
    /// not speak TLS at all is reached over plain HTTP.
    pub verify_tls: bool,
}

/// What went wrong talking to a registry. Messages say what was answered and what to do.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("TLS with {url} failed: {detail}. If the registry uses a private CA, put its certificate in the CA bundle (tls.ca_bundle) or in tls.certs_dir/{authority}/ca.crt; or register it with registry_verify=false (--insecure)")]
    Tls {
        url: String,
        authority: String,
        detail: String,
    },
    #[error("could not reach {url}: {detail}. Check the registry address and that it is running")]
    Unreachable { url: String, detail: String },
    #[error("{url} did not answer within {seconds} s")]
    Timeout { url: String, seconds: u64 },
    #[error("{who} refused the credentials: HTTP {status}{answer}")]
    Refused {
        who: String,
        status: u16,
        answer: String,
    },
    #[error("{url} is not a working registry API: {detail}")]
    Protocol { url: String, detail: String },
    #[error("{what} was not found at {url}: check the repository and tag")]
    NotFound { url: String, what: String },
    #[error(transparent)]
    TlsSettings(#[from] TlsError),
}

impl RegistryError {
    /// A short machine-readable kind for API error details.
    pub fn kind(&self) -> &'static str {
        match self {
            RegistryError::Tls { .. } | RegistryError::TlsSettings(_) => "tls",
            RegistryError::Unreachable { .. } => "unreachable",
            RegistryError::Timeout { .. } => "timeout",
            RegistryError::Refused { .. } => "refused",
            RegistryError::Protocol { .. } => "protocol",
            RegistryError::NotFound { .. } => "not_found",
        }
    }

    /// The HTTP status the registry (or its token server) answered, where there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            RegistryError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Authority, verify flag, and the fingerprint of the registry's `certs.d` folder.
type ClientKey = (String, bool, String);

/// The registry client: one reqwest client per TLS setting, reused across calls.
#[derive(Clone)]
pub struct RegistryClient {
    timeouts: Timeouts,
    tls: Arc<TlsSettings>,
    /// Clients keyed by authority, verify flag, and the state of the registry's `certs.d`
    /// folder (so a CA dropped in takes effect without a restart): building one loads root
    /// certificates, so they are made once. A std Mutex: held only to look up or insert, never
    /// across an await.
    clients: Arc<Mutex<HashMap<ClientKey, reqwest::Client>>>,
    /// Pull sessions (base URL and authorization per registry, credential and repository).
    sessions: Arc<session::SessionCache>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("timeouts", &self.timeouts)
            .finish_non_exhaustive()
    }
}

/// Registry error bodies: `{"errors":[{"code","message"}]}`.
#[derive(Deserialize)]
struct ErrorsBody {
    errors: Vec<ErrorEntry>,
}

#[derive(Deserialize)]
struct ErrorEntry {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// Token server answers: `token` (Docker) or `access_token` (OAuth2).
#[derive(Deserialize)]
struct TokenBody {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl RegistryClient {
    pub fn new(timeouts: Timeouts, tls: TlsSettings) -> Self {
        RegistryClient {
            timeouts,
            tls: Arc::new(tls),
            clients: Arc::new(Mutex::new(HashMap::new())),
            sessions: Arc::default(),
        }
    }

    /// Forgets every pull session (the next request to each repository starts with a ping).
    pub fn forget_sessions(&self) {
        self.sessions.clear();
    }

    fn http_client(&self, endpoint: &Endpoint) -> Result<reqwest::Client, RegistryError> {
        let key = (
            endpoint.authority.clone(),
            endpoint.verify_tls,
            self.tls
                .fingerprint(&endpoint.authority, endpoint.verify_tls),
        );
        if let Some(client) = self
            .clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(client.clone());
        }
        let builder = reqwest::Client::builder()
            .connect_timeout(self.timeouts.connect)
            .timeout(self.timeouts.total)
            // Blob downloads lift the total timeout; a stalled read still ends them.
            .read_timeout(self.timeouts.total)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("regkeep/", env!("CARGO_PKG_VERSION")));
        let builder = self
            .tls
            .apply(builder, &endpoint.authority, endpoint.verify_tls)?;
        let client = builder.build().map_err(|e| RegistryError::Protocol {
            url: endpoint.authority.clone(),
            detail: format!("cannot build an HTTP client: {e}"),
        })?;
        self.clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, client.clone());
        Ok(client)
    }

    /// Checks that the registry answers the v2 API and accepts `credentials`: pings `/v2/`,
    /// answers a Basic challenge with the credentials, or fetches a token from the Bearer
    /// realm with them and pings again with the token.
    ///
    /// # Errors
    /// [`RegistryError::Refused`] with what the registry or token server answered; TLS,
    /// reachability, timeout and protocol errors.
    pub async fn ping(
        &self,
        endpoint: &Endpoint,
        credentials: Option<&BasicCredentials>,
    ) -> Result<(), RegistryError> {
        let client = self.http_client(endpoint)?;
        let (base, first) = self.first_contact(&client, endpoint).await?;
        let url = format!("{base}/v2/");
        match first.status() {
            s if s.is_success() => return Ok(()),
            StatusCode::UNAUTHORIZED => {}
            s => return Err(unexpected(&url, s, first).await),
        }
        let challenge = first
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(Challenge::parse);
        let Some(credentials) = credentials else {
            return Err(needs_credentials(&endpoint.authority, first).await);
        };
        let authorization = match challenge {
            Some(Challenge::Basic) | None => basic_header(credentials),
            Some(Challenge::Bearer {
                realm,
                service,
                scope,
            }) => {
                let (token, _) = self
                    .fetch_token(
                        &client,
                        &base,
                        &realm,
                        service.as_deref(),
                        scope.as_deref(),
                        Some(credentials),
                    )
                    .await?;
                format!("Bearer {}", token.expose())
            }
            Some(Challenge::Other(scheme)) => {
                return Err(RegistryError::Protocol {
                    url,
                    detail: format!(
                        "it asks for `{scheme}` authentication; regkeep speaks Basic and Bearer"
                    ),
                })
            }
        };
        let second = send(
            client
                .get(&url)
                .header(header::AUTHORIZATION, authorization),
            &url,
            self.timeouts,
        )
        .await?;
        match second.status() {
            s if s.is_success() => Ok(()),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Err(refused(format!("registry {}", endpoint.authority), second).await)
            }
            s => Err(unexpected(&url, s, second).await),
        }
    }

    /// The first, unauthenticated `GET /v2/`: over HTTPS, or, when verification is off and
    /// HTTPS fails, over plain HTTP (as skopeo does with `--tls-verify=false`).
    async fn first_contact(
        &self,
        client: &reqwest::Client,
        endpoint: &Endpoint,
    ) -> Result<(String, reqwest::Response), RegistryError> {
        let host = api_authority(&endpoint.authority);
        let https = format!("https://{host}");
        let url = format!("{https}/v2/");
        match send(client.get(&url), &url, self.timeouts).await {
            Ok(response) => Ok((https, response)),
            Err(err @ (RegistryError::Tls { .. } | RegistryError::Unreachable { .. }))
                if !endpoint.verify_tls =>
            {
                let http = format!("http://{host}");
                let url = format!("{http}/v2/");
                debug!(registry = %endpoint.authority, "HTTPS failed with verification off; trying plain HTTP");
                match send(client.get(&url), &url, self.timeouts).await {
                    Ok(response) => Ok((http, response)),
                    // Both failed: the HTTPS error is the one that explains more.
                    Err(_) => Err(err),
                }
            }
            Err(err) => Err(err.with_authority(&endpoint.authority)),
        }
    }

    async fn fetch_token(
        &self,
        client: &reqwest::Client,
        registry_base: &str,
        realm: &str,
        service: Option<&str>,
        scope: Option<&str>,
        credentials: Option<&BasicCredentials>,
    ) -> Result<(Secret, Option<u64>), RegistryError> {
        let mut url = url::Url::parse(realm).map_err(|e| RegistryError::Protocol {
            url: realm.to_owned(),
            detail: format!("the Bearer realm is not a URL: {e}"),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(RegistryError::Protocol {
                url: realm.to_owned(),
                detail: "the Bearer realm is not an http(s) URL".into(),
            });
        }
        // A registry reached over HTTPS does not get its credentials sent in clear text to a
        // token server it names.
        if registry_base.starts_with("https://") && url.scheme() == "http" && credentials.is_some()
        {
            return Err(RegistryError::Protocol {
                url: realm.to_owned(),
                detail: "the registry speaks HTTPS but names a plain-HTTP token server: regkeep will not send credentials there in clear text; fix the registry's auth.token.realm".into(),
            });
        }
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            if let Some(scope) = scope {
                for s in scope.split(' ').filter(|s| !s.is_empty()) {
                    query.append_pair("scope", s);
                }
            }
            if let Some(credentials) = credentials {
                query.append_pair("account", &credentials.username);
            }
        }
        let shown = realm.to_owned();
        // Without credentials the token server is asked for an anonymous (pull) token.
        let request = match credentials {
            Some(c) => client
                .get(url)
                .header(header::AUTHORIZATION, basic_header(c)),
            None => client.get(url),
        };
        let response = send(request, &shown, self.timeouts).await?;
        match response.status() {
            s if s.is_success() => {}
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                return Err(refused(format!("token server {shown}"), response).await)
            }
            s => return Err(unexpected(&shown, s, response).await),
        }
        let body: TokenBody = response.json().await.map_err(|e| RegistryError::Protocol {
            url: shown.clone(),
            detail: format!("the token answer is not JSON with a `token`: {e}"),
        })?;
        let expires_in = body.expires_in;
        body.token
            .or(body.access_token)
            .filter(|t| !t.is_empty())
            .map(|t| (Secret::new(t), expires_in))
            .ok_or_else(|| RegistryError::Protocol {
                url: shown,
                detail: "the token answer has no `token` or `access_token`".into(),
            })
    }
}

impl RegistryError {
    fn with_authority(self, authority: &str) -> Self {
        match self {
            RegistryError::Tls { url, detail, .. } => RegistryError::Tls {
                url,
                authority: authority.to_owned(),
                detail,
            },
            other => other,
        }
    }
}

/// Where a registry's API is served: Docker Hub's images are named `docker.io/...` but its API
/// answers at `registry-1.docker.io` (as every Docker client knows); others at their own name.
fn api_authority(authority: &str) -> &str {
    if authority.eq_ignore_ascii_case("docker.io") {
        "registry-1.docker.io"
    } else {
        authority
    }
}

fn basic_header(credentials: &BasicCredentials) -> String {
    use base64::Engine as _;
    let raw = format!("{}:{}", credentials.username, credentials.password.expose());
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// Every registry request is an idempotent GET: 429 and 502/503/504 are retried ([`retry`]).
async fn send(
    request: reqwest::RequestBuilder,
    url: &str,
    timeouts: Timeouts,
) -> Result<reqwest::Response, RegistryError> {
    retry::send_retrying(request, url, timeouts).await
}

/// Sorts a transport error into TLS, timeout or unreachable, keeping the deepest cause's text.
fn classify(err: reqwest::Error, url: &str, timeouts: Timeouts) -> RegistryError {
    // reqwest's own message names the URL it was fetching, which after a redirect can be a
    // presigned storage URL carrying a signature: never shown.
    let err = err.without_url();
    let mut chain = Vec::new();
    let mut source: Option<&dyn std::error::Error> = Some(&err);
    while let Some(e) = source {
        chain.push(e.to_string());
        source = e.source();
    }
    let deepest = chain.last().cloned().unwrap_or_default();
    let joined = chain.join(": ").to_ascii_lowercase();
    if err.is_timeout() {
        return RegistryError::Timeout {
            url: url.to_owned(),
            seconds: timeouts.total.as_secs(),
        };
    }
    let tls_words = [
        "certificate",
        "tls",
        "handshake",
        "ssl",
        "invalidcontenttype",
        "corrupt message",
    ];
    if tls_words.iter().any(|w| joined.contains(w)) {
        return RegistryError::Tls {
            url: url.to_owned(),
            authority: String::new(),
            detail: deepest,
        };
    }
    RegistryError::Unreachable {
        url: url.to_owned(),
        detail: deepest,
    }
}

/// What a refusing server answered: its error codes and messages, or the start of its body.
async fn refused(who: String, response: reqwest::Response) -> RegistryError {
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut answer = summarize_body(response).await;
    if let Some(c) = challenge {
        answer.push_str(&format!(" (WWW-Authenticate: {c})"));
    }
    RegistryError::Refused {
        who,
        status,
        answer,
    }
}

/// A registry that asks for credentials when regkeep has none for it.
async fn needs_credentials(authority: &str, response: reqwest::Response) -> RegistryError {
    match refused(format!("registry {authority}"), response).await {
        RegistryError::Refused { status, answer, .. } => RegistryError::Refused {
            who: format!("registry {authority}"),
            status,
            answer: format!("{answer}; regkeep holds no credential for it: register one with `regkeep registry add {authority} USER --password-stdin`"),
        },
        other => other,
    }
}

async fn unexpected(url: &str, status: StatusCode, response: reqwest::Response) -> RegistryError {
    if status == StatusCode::TOO_MANY_REQUESTS {
        let wait = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                format!(
                    " (it asked to wait {v} before retrying; regkeep waits at most {} s)",
                    retry::MAX_RETRY_AFTER.as_secs()
                )
            })
            .unwrap_or_default();
        let answer = summarize_body(response).await;
        return RegistryError::Protocol {
            url: url.to_owned(),
            detail: format!("it is rate-limiting regkeep: HTTP 429{answer}{wait}"),
        };
    }
    let answer = summarize_body(response).await;
    RegistryError::Protocol {
        url: url.to_owned(),
        detail: format!("it answered HTTP {status}{answer}"),
    }
}

/// Reads at most `limit` bytes of a body, chunk by chunk (a registry that sends no
/// Content-Length cannot make regkeep buffer more); `None` when it is longer or breaks off.
pub(crate) async fn read_capped(mut response: reqwest::Response, limit: usize) -> Option<Vec<u8>> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.ok()? {
        if bytes.len() + chunk.len() > limit {
            return None;
        }
        bytes.extend_from_slice(&chunk);
    }
    Some(bytes)
}

/// Largest error body read for a message.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// `: CODE: message; ...` from a registry error body, or the body's first 200 characters.
async fn summarize_body(response: reqwest::Response) -> String {
    let Some(bytes) = read_capped(response, MAX_ERROR_BODY).await else {
        return String::new();
    };
    if let Ok(body) = serde_json::from_slice::<ErrorsBody>(&bytes) {
        let parts: Vec<String> = body
            .errors
            .iter()
            .map(|e| format!("{} {}", e.code, e.message).trim().to_owned())
            .collect();
        if !parts.is_empty() {
            return format!(": {}", parts.join("; "));
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    let text = text.trim();
    if text.is_empty() {
        return String::new();
    }
    let short: String = text.chars().take(200).collect();
    format!(": {short}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_api_host() {
        assert_eq!(api_authority("docker.io"), "registry-1.docker.io");
        assert_eq!(api_authority("ghcr.io"), "ghcr.io");
        assert_eq!(api_authority("127.0.0.1:5000"), "127.0.0.1:5000");
    }

    #[test]
    fn credentials_debug_is_redacted() {
        let c = BasicCredentials {
            username: "u".into(),
            password: Secret::new("registry-debug-secret"),
        };
        assert!(!format!("{c:?}").contains("registry-debug-secret"));
        assert!(basic_header(&c).starts_with("Basic "));
    }
}
