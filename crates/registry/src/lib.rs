//! regkeep's client for the Docker Registry HTTP API v2 / OCI distribution.
//!
//! Layout: [`challenge`] parses `WWW-Authenticate`; [`tls`] builds the per-registry TLS
//! settings (system roots, a global CA bundle, a per-registry `certs.d` folder, or no
//! verification); [`outbound`] applies the outbound policy where connections are opened;
//! `redirects` follows redirects hop by hop; this module owns the HTTP clients and the `/v2/`
//! ping that validation uses, following Basic and Bearer (token realm) challenges.
//!
//! Every connection passes the outbound policy (docs/design.md §3.7). Credentials are sent only to the
//! registry's own host and to the token realm it names when that realm is HTTPS or on the
//! registry's own host; a token is sent only to the registry whose challenge asked for it;
//! redirects to another host never carry credentials. What a registry or realm answers is read
//! with a cap and sanitised before it reaches a message.

pub mod blobs;
pub mod challenge;
pub mod manifests;
pub mod outbound;
mod redirects;
mod retry;
mod session;
pub mod tls;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use regkeep_domain::oci::Platform;
use regkeep_domain::outbound::OutboundPolicy;
use regkeep_domain::untrusted_text::{sanitize, EXCERPT_CHARS};
use regkeep_domain::{BoxFuture, Digest, Secret};
use reqwest::{header, StatusCode};
use serde::Deserialize;
use tokio::sync::Semaphore;
use tracing::debug;

use blobs::BlobDownload;
use challenge::Challenge;
use manifests::{RawManifest, ResolvedImage};
pub use outbound::AddressRefused;
use outbound::{Guard, GuardedClient, HopClients};
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

/// The outbound policy and the bounds on what registries may make regkeep hold.
#[derive(Clone, Debug)]
pub struct Outbound {
    pub policy: OutboundPolicy,
    /// Largest manifest read.
    pub max_manifest_bytes: usize,
    /// Largest image config read.
    pub max_config_bytes: usize,
    /// Image resolutions (manifests and configs read into memory) running at once, server-wide.
    pub max_concurrent_resolutions: usize,
}

impl Default for Outbound {
    fn default() -> Self {
        Outbound {
            policy: OutboundPolicy::default(),
            max_manifest_bytes: regkeep_domain::oci::MAX_MANIFEST_BYTES,
            max_config_bytes: 8 * 1024 * 1024,
            max_concurrent_resolutions: 16,
        }
    }
}

impl Outbound {
    /// The defaults with loopback allowed (tests and benchmarks against peers on 127.0.0.x).
    pub fn allowing_loopback() -> Self {
        Outbound {
            policy: OutboundPolicy::allowing_loopback(),
            ..Outbound::default()
        }
    }
}

/// A user name and password for a registry. `Debug` redacts the password.
#[derive(Clone, Debug)]
pub struct BasicCredentials {
    pub username: String,
    pub password: Secret,
}

/// What the engine asks of a registry (Docker Registry v2 / OCI distribution): [`RegistryClient`]
/// over HTTP with the outbound policy, or an in-process fake in the engine's unit tests. Every
/// method takes where the registry is and the credential to use (none: anonymous).
pub trait RegistryApi: Send + Sync + 'static {
    /// Logs in (`/v2/`) with `credentials`.
    fn ping<'a>(
        &'a self,
        endpoint: &'a Endpoint,
        credentials: Option<&'a BasicCredentials>,
    ) -> BoxFuture<'a, Result<(), RegistryError>>;

    /// Resolves `reference` (tag or digest) of `repository` to an image for `platform`.
    fn resolve_image<'a>(
        &'a self,
        endpoint: &'a Endpoint,
        credentials: Option<&'a BasicCredentials>,
        repository: &'a str,
        reference: &'a str,
        platform: &'a Platform,
    ) -> BoxFuture<'a, Result<ResolvedImage, RegistryError>>;

    /// The manifest `reference` of `repository`, exactly as served, verified.
    fn fetch_manifest<'a>(
        &'a self,
        endpoint: &'a Endpoint,
        credentials: Option<&'a BasicCredentials>,
        repository: &'a str,
        reference: &'a str,
    ) -> BoxFuture<'a, Result<RawManifest, RegistryError>>;

    /// The digest tag `reference` of `repository` points at now.
    fn manifest_digest<'a>(
        &'a self,
        endpoint: &'a Endpoint,
        credentials: Option<&'a BasicCredentials>,
        repository: &'a str,
        reference: &'a str,
    ) -> BoxFuture<'a, Result<Digest, RegistryError>>;

    /// Opens blob `digest` of `repository` for reading.
    fn open_blob<'a>(
        &'a self,
        endpoint: &'a Endpoint,
        credentials: Option<&'a BasicCredentials>,
        repository: &'a str,
        digest: &'a str,
    ) -> BoxFuture<'a, Result<BlobDownload, RegistryError>>;
}

impl RegistryApi for RegistryClient {
    fn ping<'a>(
        &'a self,
        endpoint: &'a Endpoint,
        credentials: Option<&'a BasicCredentials>,
    ) -> BoxFuture<'a, Result<(), RegistryError>> {
        Box::pin(RegistryClient::ping(self, endpoint, credentials))
    }

    fn resolve_image<'a>(
        &'a self,
        endpoint: &'a Endpoint,
        credentials: Option<&'a BasicCredentials>,
        repository: &'a str,
        reference: &'a str,
        platform: &'a Platform,
    ) -> BoxFuture<'a, Result<ResolvedImage, RegistryError>> {
        Box::pin(RegistryClient::resolve_image(
            self,
            endpoint,
            credentials,
            repository,
            reference,
            platform,
        ))
    }

    fn fetch_manifest<'a>(
        &'a self,
        endpoint: &'a Endpoint,
        credentials: Option<&'a BasicCredentials>,
        repository: &'a str,
        reference: &'a str,
    ) -> BoxFuture<'a, Result<RawManifest, RegistryError>> {
        Box::pin(RegistryClient::fetch_manifest(
            self,
            endpoint,
            credentials,
            repository,
            reference,
        ))
    }

    fn manifest_digest<'a>(
        &'a self,
        endpoint: &'a Endpoint,
        credentials: Option<&'a BasicCredentials>,
        repository: &'a str,
        reference: &'a str,
    ) -> BoxFuture<'a, Result<Digest, RegistryError>> {
        Box::pin(RegistryClient::manifest_digest(
            self,
            endpoint,
            credentials,
            repository,
            reference,
        ))
    }

    fn open_blob<'a>(
        &'a self,
        endpoint: &'a Endpoint,
        credentials: Option<&'a BasicCredentials>,
        repository: &'a str,
        digest: &'a str,
    ) -> BoxFuture<'a, Result<BlobDownload, RegistryError>> {
        Box::pin(RegistryClient::open_blob(
            self,
            endpoint,
            credentials,
            repository,
            digest,
        ))
    }
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
    #[error("TLS with {url} failed: {detail}{advice}")]
    Tls {
        url: String,
        detail: String,
        /// What to do about it ([`tls_advice`]): where the CA certificate goes, or nothing when
        /// certificates are not being verified.
        advice: String,
    },
    /// A TLS hello answered in plain HTTP.
    #[error("{url} answered in plain HTTP, not TLS: the registry does not speak TLS on that port. If you trust the network to it, register it without TLS verification (--insecure, registry_verify=false): regkeep then uses plain HTTP")]
    PlainHttp { url: String },
    #[error("could not reach {url}: {detail}. Check the registry address and that it is running")]
    Unreachable { url: String, detail: String },
    #[error("{url} did not answer within {seconds} s")]
    Timeout { url: String, seconds: u64 },
    #[error("{who} refused the credentials: HTTP {status}{answer}{}", if *.anonymous { "; regkeep holds no credential for it: register one for it" } else { "" })]
    Refused {
        who: String,
        status: u16,
        answer: String,
        /// No credential was sent: the registry wants one regkeep does not hold.
        anonymous: bool,
    },
    #[error("{url} is not a working registry API: {detail}")]
    Protocol { url: String, detail: String },
    #[error("{what} was not found at {url}: check the repository and tag")]
    NotFound { url: String, what: String },
    #[error(transparent)]
    TlsSettings(#[from] TlsError),
    /// The outbound policy refused the address (nothing was sent there).
    #[error(transparent)]
    AddressRefused(AddressRefused),
}

impl RegistryError {
    /// A short machine-readable kind for API error details.
    pub fn kind(&self) -> &'static str {
        match self {
            RegistryError::Tls { .. }
            | RegistryError::TlsSettings(_)
            | RegistryError::PlainHttp { .. } => "tls",
            RegistryError::Unreachable { .. } => "unreachable",
            RegistryError::Timeout { .. } => "timeout",
            RegistryError::Refused { .. } => "refused",
            RegistryError::Protocol { .. } => "protocol",
            RegistryError::NotFound { .. } => "not_found",
            RegistryError::AddressRefused(_) => "address_refused",
        }
    }

    /// Whether the registry asked for a credential regkeep does not hold.
    pub fn needs_credential(&self) -> bool {
        matches!(
            self,
            RegistryError::Refused {
                anonymous: true,
                ..
            }
        )
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

/// Clients kept before the cache is emptied (each holds a connection pool and root certificates).
const MAX_CLIENTS: usize = 1024;

/// The registry client: one reqwest client per registry and TLS setting, reused across calls.
#[derive(Clone)]
pub struct RegistryClient {
    timeouts: Timeouts,
    tls: Arc<TlsSettings>,
    policy: Arc<OutboundPolicy>,
    limits: Limits,
    /// Permits for image resolutions in flight (`Outbound::max_concurrent_resolutions`).
    resolutions: Arc<Semaphore>,
    /// Clients keyed by authority, verify flag, and the state of the registry's `certs.d`
    /// folder (so a CA dropped in takes effect without a restart): building one loads root
    /// certificates, so they are made once. Each carries the outbound guard of its registry. A
    /// std Mutex: held only to look up or insert, never across an await.
    clients: Arc<Mutex<HashMap<ClientKey, GuardedClient>>>,
    /// Pull sessions (base URL and authorization per registry, credential and repository).
    sessions: Arc<session::SessionCache>,
}

/// Sizes read at most.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) manifest_bytes: usize,
    pub(crate) config_bytes: usize,
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
    pub fn new(timeouts: Timeouts, tls: TlsSettings, outbound: Outbound) -> Self {
        RegistryClient {
            timeouts,
            tls: Arc::new(tls),
            policy: Arc::new(outbound.policy),
            limits: Limits {
                manifest_bytes: outbound.max_manifest_bytes,
                config_bytes: outbound.max_config_bytes,
            },
            resolutions: Arc::new(Semaphore::new(outbound.max_concurrent_resolutions.max(1))),
            clients: Arc::new(Mutex::new(HashMap::new())),
            sessions: Arc::default(),
        }
    }

    /// A permit to hold a resolution's manifests and config in memory.
    pub(crate) async fn resolution_permit(&self) -> tokio::sync::SemaphorePermit<'_> {
        // The semaphore is never closed, so acquiring cannot fail.
        self.resolutions
            .acquire()
            .await
            .expect("the resolution semaphore is never closed")
    }

    /// Forgets every pull session (the next request to each repository starts with a ping).
    pub fn forget_sessions(&self) {
        self.sessions.clear();
    }

    fn http_client(&self, endpoint: &Endpoint) -> Result<GuardedClient, RegistryError> {
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
        let guard = Arc::new(Guard::new(self.policy.clone()));
        let builder = outbound::base_builder(&guard, self.timeouts);
        let builder = self
            .tls
            .apply(builder, &endpoint.authority, endpoint.verify_tls)?;
        let client = builder.build().map_err(|e| RegistryError::Protocol {
            url: endpoint.authority.clone(),
            detail: format!("cannot build an HTTP client: {e}"),
        })?;
        let hops = HopClients {
            tls: self.tls.clone(),
            authority: endpoint.authority.clone(),
            verify_tls: endpoint.verify_tls,
            timeouts: self.timeouts,
        };
        let client = GuardedClient::new(client, guard, hops);
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if clients.len() >= MAX_CLIENTS {
            clients.clear();
        }
        clients.insert(key, client.clone());
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
        let url = base.join("/v2/").map_err(|e| bad_url(&base, e))?;
        match first.status() {
            s if s.is_success() => return Ok(()),
            StatusCode::UNAUTHORIZED => {}
            s => return Err(unexpected(&shown_url(&url), s, first).await),
        }
        let challenge = first
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(Challenge::parse);
        let Some(credentials) = credentials else {
            return Err(needs_credentials(&endpoint.authority, first).await);
        };
        let from_internal = client.guard().answered_from_internal(first.remote_addr());
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
                        Challenger {
                            base: &base,
                            internal: from_internal,
                        },
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
                    url: shown_url(&url),
                    detail: format!(
                        "it asks for `{}` authentication; regkeep speaks Basic and Bearer",
                        sanitize(&scheme, 40)
                    ),
                })
            }
        };
        let second = send(
            client
                .get(&url)?
                .header(header::AUTHORIZATION, authorization),
            &shown_url(&url),
            self.timeouts,
        )
        .await?;
        match second.status() {
            s if s.is_success() => Ok(()),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Err(refused(format!("registry {}", endpoint.authority), second).await)
            }
            s => Err(unexpected(&shown_url(&url), s, second).await),
        }
    }

    /// The first, unauthenticated `GET /v2/`: over HTTPS, or, when verification is off and
    /// HTTPS fails, over plain HTTP (as skopeo does with `--tls-verify=false`). Answers the base
    /// URL (`scheme://host[:port]`) that worked.
    async fn first_contact(
        &self,
        client: &GuardedClient,
        endpoint: &Endpoint,
    ) -> Result<(reqwest::Url, reqwest::Response), RegistryError> {
        let host = api_authority(&endpoint.authority);
        let https = registry_base("https", host)?;
        let url = https.join("/v2/").map_err(|e| bad_url(&https, e))?;
        match send(client.get(&url)?, &shown_url(&url), self.timeouts).await {
            Ok(response) => Ok((https, response)),
            Err(
                err @ (RegistryError::Tls { .. }
                | RegistryError::PlainHttp { .. }
                | RegistryError::Unreachable { .. }),
            ) if !endpoint.verify_tls => {
                let http = registry_base("http", host)?;
                let url = http.join("/v2/").map_err(|e| bad_url(&http, e))?;
                debug!(registry = %endpoint.authority, "HTTPS failed with verification off; trying plain HTTP");
                match send(client.get(&url)?, &shown_url(&url), self.timeouts).await {
                    Ok(response) => Ok((http, response)),
                    // Both failed: the HTTPS error is the one that explains more.
                    Err(_) => Err(err.with_endpoint_advice(&self.tls, endpoint)),
                }
            }
            Err(err) => Err(err.with_endpoint_advice(&self.tls, endpoint)),
        }
    }

    /// A token from the Bearer `realm` the registry at `registry_base` named.
    ///
    /// The realm must be HTTPS when the registry is; `credentials` go to it only when it is HTTPS
    /// or on the registry's own host (as Docker does), and never follow a redirect to another
    /// host. The realm's address, and every redirect hop's, passes the outbound policy (an
    /// internal one only when the registry is internal itself). The token is the caller's to
    /// send to this registry only.
    async fn fetch_token(
        &self,
        client: &GuardedClient,
        challenger: Challenger<'_>,
        realm: &str,
        service: Option<&str>,
        scope: Option<&str>,
        credentials: Option<&BasicCredentials>,
    ) -> Result<(Secret, Option<u64>), RegistryError> {
        let Challenger {
            base: registry_base,
            internal: from_internal,
        } = challenger;
        let shown_realm = sanitize(realm, EXCERPT_CHARS);
        let mut url = reqwest::Url::parse(realm).map_err(|e| RegistryError::Protocol {
            url: shown_realm.clone(),
            detail: format!("the Bearer realm is not a URL: {e}"),
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(RegistryError::Protocol {
                url: shown_realm,
                detail: "the Bearer realm is not an http(s) URL with a host".into(),
            });
        }
        // Credentials never travel inside the realm URL itself.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        // A realm on an address the policy refuses whatever the hop is refused as such, before
        // any other rule speaks (the hop rule is applied when it is requested).
        client.check_hop_url(&url, from_internal)?;
        if registry_base.scheme() == "https" && url.scheme() == "http" {
            return Err(RegistryError::Protocol {
                url: shown_url(&url),
                detail: "the registry speaks HTTPS but names a plain-HTTP token server: regkeep will not fetch tokens in clear text from it; fix the registry's auth.token.realm".into(),
            });
        }
        let same_host = url.host() == registry_base.host();
        if credentials.is_some() && url.scheme() == "http" && !same_host {
            return Err(RegistryError::Protocol {
                url: shown_url(&url),
                detail: "the registry names a plain-HTTP token server on another host: regkeep sends credentials only to an HTTPS token server or one on the registry's own host; fix the registry's auth.token.realm".into(),
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
        let shown = shown_url(&url);
        // Without credentials the token server is asked for an anonymous (pull) token.
        let authorization = credentials.map(|c| Secret::new(basic_header(c)));
        let (response, _) = redirects::get_following(
            client,
            redirects::Start {
                registry: registry_base,
                url,
                from_internal,
            },
            reqwest::Method::GET,
            authorization.as_ref(),
            &[],
            None,
            &shown,
            self.timeouts,
        )
        .await?;
        match response.status() {
            s if s.is_success() => {}
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                return Err(refused(format!("token server {shown}"), response).await)
            }
            s => return Err(unexpected(&shown, s, response).await),
        }
        let bytes =
            read_capped(response, MAX_TOKEN_BODY)
                .await
                .ok_or_else(|| RegistryError::Protocol {
                    url: shown.clone(),
                    detail: format!(
                        "the token answer is larger than {MAX_TOKEN_BODY} bytes, or broke off"
                    ),
                })?;
        let body: TokenBody =
            serde_json::from_slice(&bytes).map_err(|_| RegistryError::Protocol {
                url: shown.clone(),
                detail: "the token answer is not JSON with a `token`".into(),
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

/// The registry whose challenge named a token realm: its base URL, and whether the challenge
/// came from an internal address (then the realm may be internal too).
pub(crate) struct Challenger<'a> {
    pub(crate) base: &'a reqwest::Url,
    pub(crate) internal: bool,
}

/// Largest token answer read.
const MAX_TOKEN_BODY: usize = 64 * 1024;

/// `scheme://host[:port]` of a registry.
fn registry_base(scheme: &str, authority: &str) -> Result<reqwest::Url, RegistryError> {
    reqwest::Url::parse(&format!("{scheme}://{authority}")).map_err(|e| RegistryError::Protocol {
        url: sanitize(authority, EXCERPT_CHARS),
        detail: format!("not a usable registry address: {e}"),
    })
}

fn bad_url(base: &reqwest::Url, err: url::ParseError) -> RegistryError {
    RegistryError::Protocol {
        url: shown_url(base),
        detail: err.to_string(),
    }
}

/// A URL as messages show it: scheme, host, port and path, without user info or query (a
/// presigned storage URL carries its signature there), sanitised.
pub(crate) fn shown_url(url: &reqwest::Url) -> String {
    let text = format!(
        "{}://{}",
        url.scheme(),
        &url[url::Position::BeforeHost..url::Position::AfterPath]
    );
    sanitize(&text, EXCERPT_CHARS)
}

impl RegistryError {
    /// Advice for a TLS failure with the registry itself, now that the endpoint is known: the
    /// real file its CA certificate is read from (only the client knows the folder), or none
    /// when certificates are not verified (a CA is then not the problem, and `--insecure` was
    /// given already).
    fn with_endpoint_advice(self, tls: &TlsSettings, endpoint: &Endpoint) -> Self {
        match self {
            RegistryError::Tls { url, detail, .. } => RegistryError::Tls {
                url,
                detail,
                advice: if endpoint.verify_tls {
                    tls_advice(&tls.ca_file_hint(&endpoint.authority))
                } else {
                    String::new()
                },
            },
            other => other,
        }
    }
}

/// The end of a TLS failure's message: where a private CA's certificate goes. The path names
/// a file on the regkeep host: a tenant cannot put it there, so the message says who does.
fn tls_advice(ca_file: &str) -> String {
    format!(". If the registry uses a private CA, its certificate goes in {ca_file} on the regkeep host (or in the CA bundle, tls.ca_bundle), which regkeep's operator does; or register the registry without TLS verification (--insecure, registry_verify=false)")
}

/// [`tls_advice`] for any host `url` is on, naming the folder by its setting.
fn other_host_advice(url: &str) -> String {
    tls_advice(&format!("tls.certs_dir/{}/ca.crt", url_authority(url)))
}

/// `host[:port]` of a URL (the port only when not the scheme's default), as the certs folder
/// names it; the URL as given when it does not parse.
fn url_authority(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(parsed) => match (parsed.host_str(), parsed.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            _ => url.to_owned(),
        },
        Err(_) => url.to_owned(),
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
    let mut deepest = String::new();
    let (mut tls, mut eof, mut plain_http) = (false, false, false);
    for e in causes(&err) {
        // The outbound policy refused the address in the resolver: nothing was sent.
        if let Some(refused) = e.downcast_ref::<AddressRefused>() {
            return RegistryError::AddressRefused(refused.clone());
        }
        // rustls's own error: a certificate, the handshake, a plain-HTTP answer to a hello.
        tls |= e.is::<rustls::Error>();
        // The answer to the TLS hello was not TLS: the registry speaks plain HTTP on that port.
        plain_http |= matches!(
            e.downcast_ref::<rustls::Error>(),
            Some(rustls::Error::InvalidMessage(
                rustls::InvalidMessage::InvalidContentType
            ))
        );
        eof |= e
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::UnexpectedEof);
        deepest = sanitize(&e.to_string(), EXCERPT_CHARS);
    }
    if err.is_timeout() {
        return RegistryError::Timeout {
            url: url.to_owned(),
            seconds: timeouts.total.as_secs(),
        };
    }
    // A server that closes the connection during the TLS handshake (an unknown SNI name, a
    // client certificate required) leaves no rustls error, only an end of stream while
    // connecting over HTTPS: that is TLS failing too, not an unreachable host.
    let handshake_cut = err.is_connect() && url.starts_with("https://") && eof;
    if plain_http {
        return RegistryError::PlainHttp {
            url: url.to_owned(),
        };
    }
    if tls || handshake_cut {
        let detail = if tls {
            deepest
        } else {
            "the server closed the connection during the TLS handshake (it may not speak TLS on this port, may want a client certificate or another host name, or nothing may be running behind it)".to_owned()
        };
        // A host other than the registry's own (a token realm, a redirect's storage host) is
        // named by the setting: the client that knows the folder fills in the registry's own.
        return RegistryError::Tls {
            url: url.to_owned(),
            advice: other_host_advice(url),
            detail,
        };
    }
    RegistryError::Unreachable {
        url: url.to_owned(),
        detail: deepest,
    }
}

/// `err` and its causes, looking inside `io::Error`s: an `io::Error`'s `source()` skips the error
/// it wraps (where the TLS stream puts rustls's error), so that one is stepped into instead.
fn causes<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(err), |e| {
        match e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        }
    })
}

/// What a refusing server answered: its error codes and messages, or the start of its body.
async fn refused(who: String, response: reqwest::Response) -> RegistryError {
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .map(|c| sanitize(c, EXCERPT_CHARS));
    let mut answer = summarize_body(response).await;
    if let Some(c) = challenge {
        answer.push_str(&format!(" (WWW-Authenticate: {c})"));
    }
    RegistryError::Refused {
        who,
        status,
        answer,
        anonymous: false,
    }
}

/// A registry that asks for credentials when regkeep has none for it.
async fn needs_credentials(authority: &str, response: reqwest::Response) -> RegistryError {
    match refused(format!("registry {authority}"), response).await {
        RegistryError::Refused { status, answer, .. } => RegistryError::Refused {
            who: format!("registry {authority}"),
            status,
            answer,
            anonymous: true,
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
                    " (it asked to wait {} before retrying; regkeep waits at most {} s)",
                    sanitize(v, 40),
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

/// `: CODE message; ...` from a registry error body, or an excerpt of the body: at most
/// [`EXCERPT_CHARS`] characters, without control characters or terminal escapes.
async fn summarize_body(response: reqwest::Response) -> String {
    let Some(bytes) = read_capped(response, MAX_ERROR_BODY).await else {
        return String::new();
    };
    let text = match serde_json::from_slice::<ErrorsBody>(&bytes) {
        Ok(body) if !body.errors.is_empty() => body
            .errors
            .iter()
            .map(|e| format!("{} {}", e.code, e.message))
            .collect::<Vec<_>>()
            .join("; "),
        _ => String::from_utf8_lossy(&bytes).into_owned(),
    };
    let short = sanitize(&text, EXCERPT_CHARS);
    if short.is_empty() {
        String::new()
    } else {
        format!(": {short}")
    }
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

    /// The policy holds where connections are opened: a name resolving to loopback is refused in
    /// the resolver (the refusal found by type in reqwest's error chain), a literal address before
    /// the request is built; nothing is sent either way.
    #[tokio::test]
    async fn refused_addresses_are_refused_before_connecting() {
        let client = RegistryClient::new(
            Timeouts::default(),
            TlsSettings::default(),
            Outbound::default(),
        );
        for authority in [
            "localhost:9",
            "127.0.0.1:9",
            "[::1]:9",
            "169.254.169.254",
            "2130706433:9",
        ] {
            for verify_tls in [true, false] {
                let endpoint = Endpoint {
                    authority: authority.into(),
                    verify_tls,
                };
                let err = client.ping(&endpoint, None).await.unwrap_err();
                assert_eq!(err.kind(), "address_refused", "{authority}: {err}");
                assert!(
                    err.to_string().contains("regkeep does not connect to"),
                    "{err}"
                );
            }
        }
        let lenient = RegistryClient::new(
            Timeouts::default(),
            TlsSettings::default(),
            Outbound::allowing_loopback(),
        );
        let endpoint = Endpoint {
            authority: "169.254.169.254".into(),
            verify_tls: false,
        };
        let err = lenient.ping(&endpoint, None).await.unwrap_err();
        assert_eq!(err.kind(), "address_refused", "{err}");
    }

    /// A server that hangs up during the TLS handshake is a TLS failure (with its advice), not
    /// an unreachable host: the hang-up leaves no rustls error, only an end of stream.
    #[tokio::test]
    async fn a_handshake_cut_short_is_a_tls_failure() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                // Reads the ClientHello, then hangs up.
                let mut hello = [0u8; 4096];
                let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut hello).await;
                drop(socket);
            }
        });
        let certs = tempfile::tempdir().unwrap();
        let client = RegistryClient::new(
            Timeouts::default(),
            TlsSettings::new(None, Some(certs.path().to_owned())).unwrap(),
            Outbound::allowing_loopback(),
        );
        let mut endpoint = Endpoint {
            authority: authority.clone(),
            verify_tls: true,
        };
        let err = client.ping(&endpoint, None).await.unwrap_err();
        assert_eq!(err.kind(), "tls", "{err}");
        // The advice names the real file the registry's CA is read from.
        let ca_file = certs.path().join(&authority).join("ca.crt");
        assert!(
            err.to_string().contains(&format!(
                "its certificate goes in {} on the regkeep host",
                ca_file.display()
            )),
            "{err}"
        );
        // Not verifying: no CA advice, no `--insecure` (given already).
        endpoint.verify_tls = false;
        let err = client.ping(&endpoint, None).await.unwrap_err();
        assert_eq!(err.kind(), "tls", "{err}");
        assert!(
            !err.to_string().contains("CA") && !err.to_string().contains("--insecure"),
            "{err}"
        );
    }

    #[test]
    fn a_tls_failure_with_another_host_names_that_host() {
        let advice = other_host_advice("https://auth.example.com:8443/token");
        assert!(
            advice.contains("goes in tls.certs_dir/auth.example.com:8443/ca.crt on"),
            "{advice}"
        );
        let advice = other_host_advice("https://storage.example.com/blob");
        assert!(
            advice.contains("goes in tls.certs_dir/storage.example.com/ca.crt on"),
            "{advice}"
        );
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
