//! regkeep's Amazon ECR adapter: mints ECR authorization tokens through the AWS SDK for Rust.
//!
//! Layout: this module. [`EcrClient::mint`] takes where the AWS credentials come from
//! ([`AwsCredentialSource`]: static keys, the host's default chain — environment, profile, web
//! identity, container credentials, IMDSv2 — or a role assumed from it) and which registry
//! ([`EcrTarget`]), and calls `GetAuthorizationToken` (ECR private, in the host's region and
//! partition, the FIPS endpoint for FIPS hosts and the dual-stack one for dual-stack hosts) or the
//! `ecr-public` API (us-east-1). SigV4, IMDS, STS, the credential chain and the endpoint names are
//! the SDK's (regkeep only says region, FIPS and dual-stack); standard variables such as
//! `AWS_ENDPOINT_URL_ECR` keep working because the base configuration is the SDK's own `load`.
//! [`EcrClient::with_ca_bundle`] adds regkeep's `tls.ca_bundle` to the roots the SDK's HTTPS
//! client trusts (for AWS, STS and the credential sources alike).
//!
//! Caching, renewal and persistence of tokens are the engine's (the token lifecycle use-case).

use std::fmt;
use std::time::Duration;

use aws_config::meta::region::RegionProviderChain;
use aws_config::sts::AssumeRoleProvider;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use aws_sdk_ecr::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use base64::Engine as _;
use regkeep_domain::{BoxFuture, Secret, Timestamp};
use tokio::sync::OnceCell;
use tracing::{debug, instrument};

/// Where the AWS credentials come from.
#[derive(Clone, Debug, PartialEq)]
pub enum AwsCredentialSource {
    /// An access key id and secret access key.
    StaticKeys {
        access_key_id: String,
        secret_access_key: Secret,
    },
    /// The host's own identity through the AWS default credential chain.
    HostChain,
    /// A role assumed (STS `AssumeRole`) from the host's identity.
    AssumeRole {
        role_arn: String,
        external_id: Option<Secret>,
    },
}

/// Which ECR registry a token is for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum EcrTarget {
    /// A private registry: its 12-digit account, region, whether its host is a FIPS endpoint,
    /// and whether it is the dual-stack (`dkr-ecr`, IPv4 and IPv6) form, whose token then comes
    /// from the dual-stack ECR API (`ecr.<region>.api.aws`).
    Private {
        account: String,
        region: String,
        fips: bool,
        dual_stack: bool,
    },
    /// ECR Public (tokens from the `ecr-public` API in us-east-1).
    Public,
}

/// A minted authorization: the registry user (`AWS`) and password, and when AWS says it expires.
#[derive(Clone)]
pub struct EcrAuthorization {
    pub username: String,
    pub password: Secret,
    pub expires_at: Timestamp,
    pub proxy_endpoint: Option<String>,
}

impl fmt::Debug for EcrAuthorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EcrAuthorization")
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .field("proxy_endpoint", &self.proxy_endpoint)
            .finish()
    }
}

/// Why a token could not be minted. `code` and `message` are AWS's where AWS answered.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EcrError {
    /// AWS refused the credentials or the call (bad keys, no permission, no such role).
    #[error("AWS refused: {code}: {message}{}", status_text(*status))]
    Refused {
        code: String,
        message: String,
        status: Option<u16>,
    },
    /// AWS asks us to slow down.
    #[error("AWS is throttling: {code}: {message}")]
    Throttled { code: String, message: String },
    /// AWS could not be reached or failed on its side; worth retrying.
    #[error("AWS is unavailable: {detail}")]
    Unavailable { detail: String },
    /// `awsauto`/`_iam_role` and the host has no AWS identity.
    #[error("no AWS credentials on this host ({detail}): set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile, web identity (IRSA), container credentials, or an instance role")]
    NoHostCredentials { detail: String },
    /// AWS answered something regkeep cannot use.
    #[error("unexpected answer from AWS: {detail}")]
    Malformed { detail: String },
}

fn status_text(status: Option<u16>) -> String {
    status.map(|s| format!(" (HTTP {s})")).unwrap_or_default()
}

impl EcrError {
    /// Whether trying again later may succeed (throttling, unavailability).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            EcrError::Throttled { .. } | EcrError::Unavailable { .. }
        )
    }

    /// Whether AWS asked to slow down.
    pub fn is_throttling(&self) -> bool {
        matches!(self, EcrError::Throttled { .. })
    }

    /// AWS's error code, where there is one.
    pub fn code(&self) -> Option<&str> {
        match self {
            EcrError::Refused { code, .. } | EcrError::Throttled { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// Error codes AWS uses for throttling.
const THROTTLING_CODES: [&str; 5] = [
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "ProvisionedThroughputExceededException",
];

/// Something that mints ECR authorization tokens: [`EcrClient`] through AWS, or a scripted fake
/// in tests of the token lifecycle. The lifecycle (caching, renewal, backoff) is the engine's and
/// sees only this.
pub trait MintEcrTokens: Send + Sync + 'static {
    /// Mints a token for `target` with credentials from `source`.
    ///
    /// # Errors
    /// [`EcrError`] with AWS's code and message where AWS answered.
    fn mint<'a>(
        &'a self,
        source: &'a AwsCredentialSource,
        target: &'a EcrTarget,
    ) -> BoxFuture<'a, Result<EcrAuthorization, EcrError>>;
}

impl MintEcrTokens for EcrClient {
    fn mint<'a>(
        &'a self,
        source: &'a AwsCredentialSource,
        target: &'a EcrTarget,
    ) -> BoxFuture<'a, Result<EcrAuthorization, EcrError>> {
        Box::pin(EcrClient::mint(self, source, target))
    }
}

/// Mints ECR tokens. Cheap to clone.
#[derive(Clone, Debug)]
pub struct EcrClient {
    /// The SDK's base configuration (environment, profile, endpoints, the default credential
    /// chain with its identity cache), loaded once on first use: loading may read files and
    /// must not slow start-up.
    base: std::sync::Arc<OnceCell<SdkConfig>>,
    timeout: Duration,
    /// The roots the SDK's HTTPS client trusts when regkeep has a CA bundle (the platform's
    /// roots plus the bundle); `None`: the SDK's own default client, platform roots only.
    tls: Option<TlsContext>,
}

/// The CA bundle given to [`EcrClient::with_ca_bundle`] cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CaBundleError {
    /// A `CERTIFICATE` block that is not valid PEM/DER or not usable as a root.
    #[error("the CA bundle holds a certificate that cannot be used as a trust anchor: {detail}")]
    BadCertificate { detail: String },
    /// No `CERTIFICATE` block at all.
    #[error("the CA bundle holds no PEM certificate: give a PEM file with one or more `-----BEGIN CERTIFICATE-----` blocks")]
    NoCertificate,
}

impl EcrClient {
    /// `timeout` bounds each AWS operation (all its attempts).
    pub fn new(timeout: Duration) -> Self {
        EcrClient {
            base: std::sync::Arc::new(OnceCell::new()),
            timeout,
            tls: None,
        }
    }

    /// Trusts the PEM certificates of `pem` (regkeep's `tls.ca_bundle`) for every AWS call —
    /// ECR, ECR Public, STS and the HTTPS credential sources — besides the platform's roots (which
    /// the SDK reads, `SSL_CERT_FILE` included). For a TLS-inspecting proxy or a private endpoint
    /// whose certificate a private CA signed. Only the HTTPS client changes: it is the SDK's
    /// own (rustls with aws-lc, proxy settings from the environment), given more roots.
    ///
    /// # Errors
    /// [`CaBundleError`] when `pem` holds no certificate, or one that cannot be a root.
    pub fn with_ca_bundle(mut self, pem: &[u8]) -> Result<Self, CaBundleError> {
        use rustls_pki_types::pem::PemObject as _;
        // Checked here, not by the SDK: its TLS set-up panics on a certificate it cannot parse.
        let mut roots = rustls::RootCertStore::empty();
        for der in rustls_pki_types::CertificateDer::pem_slice_iter(pem) {
            let der = der.map_err(|e| CaBundleError::BadCertificate {
                detail: e.to_string(),
            })?;
            roots.add(der).map_err(|e| CaBundleError::BadCertificate {
                detail: e.to_string(),
            })?;
        }
        if roots.is_empty() {
            return Err(CaBundleError::NoCertificate);
        }
        let trust = TrustStore::default()
            .with_native_roots(true)
            .with_pem_certificate(pem.to_vec());
        let context = TlsContext::builder()
            .with_trust_store(trust)
            .build()
            .map_err(|e| CaBundleError::BadCertificate {
                detail: e.to_string(),
            })?;
        self.tls = Some(context);
        Ok(self)
    }

    /// The SDK's default HTTPS client (as `aws-smithy-runtime`'s `default_https_client` builds it:
    /// rustls with aws-lc, the connector settings and sleep of each client, proxy settings from
    /// the environment), trusting `context`'s roots.
    fn https_client(context: TlsContext) -> SharedHttpClient {
        aws_smithy_http_client::Builder::new().build_with_connector_fn(
            move |settings, components| {
                let mut connector = aws_smithy_http_client::ConnectorBuilder::default()
                    .tls_provider(tls::Provider::Rustls(
                        tls::rustls_provider::CryptoMode::AwsLc,
                    ))
                    .tls_context(context.clone());
                connector.set_connector_settings(settings.cloned());
                if let Some(components) = components {
                    connector.set_sleep_impl(components.sleep_impl());
                }
                connector.set_proxy_config(Some(ProxyConfig::from_env()));
                connector.build()
            },
        )
    }

    async fn base(&self) -> &SdkConfig {
        self.base
            .get_or_init(|| async {
                // The base region is where the host's identity is fetched (web identity's and a
                // profile's STS calls): the SDK's own chain, environment then profile, as on EKS
                // where AWS_REGION names the cluster's region (a GovCloud or China web identity
                // token is only good at that partition's STS). IMDS is left out so that loading
                // never waits for it; us-east-1 when nothing says. Each mint sets the registry's
                // own region.
                let region = RegionProviderChain::first_try(
                    aws_config::environment::EnvironmentVariableRegionProvider::new(),
                )
                .or_else(aws_config::profile::ProfileFileRegionProvider::new())
                .or_else(Region::new("us-east-1"));
                let mut loader = aws_config::defaults(BehaviorVersion::latest());
                if let Some(context) = &self.tls {
                    // The loader gives its HTTP client to the credential providers it builds
                    // (web identity's STS, container credentials, profiles' assumed roles) too.
                    loader = loader.http_client(Self::https_client(context.clone()));
                }
                loader
                    .region(region)
                    .timeout_config(
                        aws_config::timeout::TimeoutConfig::builder()
                            .operation_timeout(self.timeout)
                            .connect_timeout(Duration::from_secs(5))
                            .build(),
                    )
                    .load()
                    .await
            })
            .await
    }

    /// Mints a token for `target` with credentials from `source`.
    ///
    /// # Errors
    /// [`EcrError`] with AWS's code and message where AWS answered.
    #[instrument(skip_all, fields(target = ?target))]
    pub async fn mint(
        &self,
        source: &AwsCredentialSource,
        target: &EcrTarget,
    ) -> Result<EcrAuthorization, EcrError> {
        let base = self.base().await;
        let region = match target {
            EcrTarget::Private { region, .. } => region.clone(),
            EcrTarget::Public => "us-east-1".to_owned(),
        };
        let credentials = self.credentials_provider(base, source, &region).await?;
        match target {
            EcrTarget::Private {
                account,
                fips,
                dual_stack,
                ..
            } => {
                // FIPS and dual-stack are the SDK's endpoint parameters: its endpoint rules
                // pick the host (`api.ecr.<region>.<suffix>`, `ecr.<region>.api.aws`, ...) for
                // the region's partition; an operator's `AWS_ENDPOINT_URL_ECR` still wins. A
                // dual-stack host turns dual-stack on; another leaves the operator's
                // `AWS_USE_DUALSTACK_ENDPOINT` as it is (an IPv6-only host wants it everywhere).
                let mut config = aws_sdk_ecr::config::Builder::from(base)
                    .region(Region::new(region))
                    .use_fips(*fips);
                if *dual_stack {
                    config = config.use_dual_stack(true);
                }
                if let Some(provider) = credentials {
                    config = config.credentials_provider(provider);
                }
                let client = aws_sdk_ecr::Client::from_conf(config.build());
                // `registryIds` is deprecated (a token serves every registry the principal may
                // reach) but still honoured; docs/design.md §3.3 names the account, and the answer's
                // proxyEndpoint then names the right registry.
                #[allow(deprecated)]
                let output = client
                    .get_authorization_token()
                    .registry_ids(account.clone())
                    .send()
                    .await
                    .map_err(|e| classify(e, source))?;
                let data =
                    output
                        .authorization_data()
                        .first()
                        .ok_or_else(|| EcrError::Malformed {
                            detail: "no authorizationData in the answer".into(),
                        })?;
                decode(
                    data.authorization_token(),
                    data.expires_at(),
                    data.proxy_endpoint().map(str::to_owned),
                )
            }
            EcrTarget::Public => {
                let mut config =
                    aws_sdk_ecrpublic::config::Builder::from(base).region(Region::new(region));
                if let Some(provider) = credentials {
                    config = config.credentials_provider(provider);
                }
                let client = aws_sdk_ecrpublic::Client::from_conf(config.build());
                let output = client
                    .get_authorization_token()
                    .send()
                    .await
                    .map_err(|e| classify(e, source))?;
                let data = output
                    .authorization_data()
                    .ok_or_else(|| EcrError::Malformed {
                        detail: "no authorizationData in the answer".into(),
                    })?;
                decode(data.authorization_token(), data.expires_at(), None)
            }
        }
    }

    /// The credentials provider for `source`; `None` means the base configuration's own chain.
    async fn credentials_provider(
        &self,
        base: &SdkConfig,
        source: &AwsCredentialSource,
        region: &str,
    ) -> Result<Option<SharedCredentialsProvider>, EcrError> {
        match source {
            AwsCredentialSource::StaticKeys {
                access_key_id,
                secret_access_key,
            } => {
                let credentials = Credentials::new(
                    access_key_id.clone(),
                    secret_access_key.expose().to_owned(),
                    None,
                    None,
                    "regkeep-registry",
                );
                Ok(Some(SharedCredentialsProvider::new(credentials)))
            }
            AwsCredentialSource::HostChain => {
                if base.credentials_provider().is_none() {
                    return Err(EcrError::NoHostCredentials {
                        detail: "the AWS SDK found no credential provider".into(),
                    });
                }
                Ok(None)
            }
            AwsCredentialSource::AssumeRole {
                role_arn,
                external_id,
            } => {
                let mut builder = AssumeRoleProvider::builder(role_arn.clone())
                    .session_name("regkeep")
                    .region(Region::new(region.to_owned()));
                if let Some(external) = external_id {
                    builder = builder.external_id(external.expose().to_owned());
                }
                let provider = builder.configure(base).build().await;
                Ok(Some(SharedCredentialsProvider::new(provider)))
            }
        }
    }
}

/// `base64("AWS:<password>")` → user and password.
fn decode(
    token: Option<&str>,
    expires_at: Option<&aws_smithy_types::DateTime>,
    proxy_endpoint: Option<String>,
) -> Result<EcrAuthorization, EcrError> {
    let token = token.ok_or_else(|| EcrError::Malformed {
        detail: "no authorizationToken in the answer".into(),
    })?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .map_err(|_| EcrError::Malformed {
            detail: "the authorizationToken is not base64".into(),
        })?;
    let text = String::from_utf8(decoded).map_err(|_| EcrError::Malformed {
        detail: "the authorizationToken is not text".into(),
    })?;
    let (username, password) = text.split_once(':').ok_or_else(|| EcrError::Malformed {
        detail: "the authorizationToken is not `user:password`".into(),
    })?;
    let expires_at = expires_at
        .map(|t| Timestamp::from_unix(t.secs()))
        .ok_or_else(|| EcrError::Malformed {
            detail: "no expiresAt in the answer".into(),
        })?;
    Ok(EcrAuthorization {
        username: username.to_owned(),
        password: Secret::new(password),
        expires_at,
        proxy_endpoint,
    })
}

/// Sorts an SDK error into refused / throttled / unavailable, with AWS's code and message.
///
/// moto (and some proxies) answer the JSON ECR API with an XML `<ErrorResponse>`; the SDK then
/// finds no code, so the raw body is read for `<Code>` and `<Message>` — the smallest piece that
/// fills that gap.
fn classify<E, R>(err: SdkError<E, R>, source: &AwsCredentialSource) -> EcrError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug + RawBody + 'static,
{
    debug!(error = %DisplayErrorContext(&err), "AWS call failed");
    let detail = concise(&err);
    match &err {
        SdkError::ServiceError(context) => {
            let status = context.raw().status();
            let body = context.raw().body_text();
            let service = context.err();
            let code = service
                .code()
                .map(str::to_owned)
                .or_else(|| xml_field(&body, "Code"))
                .unwrap_or_else(|| format!("HTTP{status}"));
            let message = service
                .message()
                .map(str::to_owned)
                .or_else(|| xml_field(&body, "Message"))
                .unwrap_or_else(|| first_chars(&body, 300));
            // What AWS (or a proxy in the way) sent: bounded, no control characters.
            let code = regkeep_domain::untrusted_text::sanitize(&code, 64);
            let message = regkeep_domain::untrusted_text::sanitize(&message, 300);
            if THROTTLING_CODES.contains(&code.as_str()) || status == 429 {
                EcrError::Throttled { code, message }
            } else if status >= 500 {
                EcrError::Unavailable {
                    detail: format!("{code}: {message} (HTTP {status})"),
                }
            } else {
                EcrError::Refused {
                    code,
                    message,
                    status: Some(status),
                }
            }
        }
        SdkError::TimeoutError(_) => EcrError::Unavailable {
            detail: "the call timed out".into(),
        },
        SdkError::DispatchFailure(failure) if !failure.is_io() && !failure.is_timeout() => {
            credential_or_unavailable(&err, detail, source)
        }
        SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            EcrError::Unavailable { detail }
        }
        _ => credential_or_unavailable(&err, detail, source),
    }
}

/// A failure before AWS answered, sorted by the SDK's error types found in its source chain (never
/// by words): a credentials provider that found nothing is a missing host identity; STS's answer
/// to an `AssumeRole` is sorted as any AWS answer (refused, throttled, unavailable); another
/// credentials-provider failure is the credentials'; the rest is AWS being unreachable.
fn credential_or_unavailable(
    err: &(dyn std::error::Error + 'static),
    detail: String,
    source: &AwsCredentialSource,
) -> EcrError {
    use aws_credential_types::provider::error::CredentialsError;
    let (mut provider_failed, mut not_loaded, mut timed_out) = (false, false, false);
    let mut sts = None;
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(credentials) = e.downcast_ref::<CredentialsError>() {
            provider_failed = true;
            not_loaded |= matches!(credentials, CredentialsError::CredentialsNotLoaded(_));
            timed_out |= matches!(credentials, CredentialsError::ProviderTimedOut(_));
        }
        if sts.is_none() {
            sts = e
                .downcast_ref::<StsError>()
                .and_then(|e| sts_verdict(e, &detail));
        }
        next = e.source();
    }
    if !provider_failed || (timed_out && !not_loaded) {
        return EcrError::Unavailable { detail };
    }
    match source {
        AwsCredentialSource::StaticKeys { .. } => EcrError::Refused {
            code: "InvalidCredentials".into(),
            message: detail,
            status: None,
        },
        AwsCredentialSource::AssumeRole { .. } if !not_loaded => {
            sts.unwrap_or(EcrError::NoHostCredentials { detail })
        }
        AwsCredentialSource::HostChain | AwsCredentialSource::AssumeRole { .. } => {
            EcrError::NoHostCredentials {
                detail: innermost(err),
            }
        }
    }
}

/// STS's error for an `AssumeRole` call, as the SDK's assume-role provider reports it.
type StsError = aws_sdk_sts::error::SdkError<
    aws_sdk_sts::operation::assume_role::AssumeRoleError,
    aws_smithy_runtime_api::client::orchestrator::HttpResponse,
>;

/// What STS's answer to `AssumeRole` means: throttling and 5xx are passing; another answer
/// refuses the role (`AssumeRoleFailed`, STS's code in the message); no answer is AWS being
/// unreachable. `None` when STS was never asked (the request could not be built).
fn sts_verdict(error: &StsError, detail: &str) -> Option<EcrError> {
    match error {
        SdkError::ServiceError(context) => {
            let status = context.raw().status().as_u16();
            // As for ECR: an XML error the SDK did not read is read here (moto, some proxies).
            let body = first_chars(
                &String::from_utf8_lossy(context.raw().body().bytes().unwrap_or_default()),
                4096,
            );
            let code = context
                .err()
                .code()
                .map(str::to_owned)
                .or_else(|| xml_field(&body, "Code"))
                .unwrap_or_else(|| "Unknown".into());
            let message = context
                .err()
                .message()
                .map(str::to_owned)
                .or_else(|| xml_field(&body, "Message"))
                .unwrap_or_default();
            Some(
                if THROTTLING_CODES.contains(&code.as_str()) || status == 429 {
                    EcrError::Throttled { code, message }
                } else if status >= 500 {
                    EcrError::Unavailable {
                        detail: format!("STS {code}: {message} (HTTP {status})"),
                    }
                } else {
                    EcrError::Refused {
                        code: "AssumeRoleFailed".into(),
                        message: if message.is_empty() {
                            detail.to_owned()
                        } else {
                            format!("STS {code}: {message}")
                        },
                        status: Some(status),
                    }
                },
            )
        }
        // Only a failure of the connection itself is STS being unreachable: a dispatch failure
        // before anything was sent (the base identity failing) is not STS's answer.
        SdkError::DispatchFailure(failure) if !failure.is_io() && !failure.is_timeout() => None,
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            Some(EcrError::Unavailable {
                detail: detail.to_owned(),
            })
        }
        _ => None,
    }
}

/// Reading the body of a raw HTTP response as text.
pub trait RawBody {
    fn status(&self) -> u16;
    fn body_text(&self) -> String;
}

impl RawBody for aws_smithy_runtime_api::http::Response {
    fn status(&self) -> u16 {
        self.status().as_u16()
    }

    fn body_text(&self) -> String {
        self.body()
            .bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default()
    }
}

fn xml_field(body: &str, field: &str) -> Option<String> {
    let open = format!("<{field}>");
    let close = format!("</{field}>");
    let start = body.find(&open)? + open.len();
    let end = body[start..].find(&close)? + start;
    let value = body[start..end].trim();
    (!value.is_empty()).then(|| value.to_owned())
}

/// An error and its causes in a few words, for people: each cause's own text (never its `Debug`
/// form, which for the SDK's errors runs to kilobytes), a cause its predecessor already says
/// left out, the whole bounded.
fn concise(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        let text = first_line(&e.to_string());
        let text = text.as_str();
        if !text.is_empty() && !parts.last().is_some_and(|last| last.contains(text)) {
            parts.push(text.to_owned());
        }
        next = e.source();
    }
    let joined = parts.join(": ");
    if joined.chars().count() > MAX_DETAIL_CHARS {
        format!("{}…", first_chars(&joined, MAX_DETAIL_CHARS))
    } else {
        joined
    }
}

/// The deepest cause's first line: the most specific words (for a credential chain that found
/// nothing, `no credentials found in chain`).
fn innermost(err: &(dyn std::error::Error + 'static)) -> String {
    let mut deepest = err;
    while let Some(next) = deepest.source() {
        deepest = next;
    }
    first_line(&deepest.to_string())
}

/// A cause's first line, without a trailing `Attempted:`-style lead-in to the lines dropped.
fn first_line(text: &str) -> String {
    let line = text.trim().lines().next().unwrap_or_default().trim();
    let line = line.strip_suffix("Attempted:").unwrap_or(line).trim_end();
    // Some of the SDK's texts end in a `Debug` rendering (`unhandled error: Error { ... }`).
    let line = line.split_once(" { ").map_or(line, |(before, _)| before);
    line.trim_end_matches('.').to_owned()
}

/// Longest cause text carried into an answer (the whole message stays under 300 characters).
const MAX_DETAIL_CHARS: usize = 200;

fn first_chars(text: &str, n: usize) -> String {
    text.trim().chars().take(n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_told_in_a_few_words_never_debug_text() {
        #[derive(Debug)]
        struct Layer(&'static str, Option<Box<Layer>>);
        impl fmt::Display for Layer {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.0)
            }
        }
        impl std::error::Error for Layer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                self.1.as_deref().map(|e| e as _)
            }
        }
        let chain = Layer(
            "dispatch failure",
            Some(Box::new(Layer(
                "io error",
                Some(Box::new(Layer(
                    "client error (Connect)",
                    Some(Box::new(Layer("Connection refused (os error 111)", None))),
                ))),
            ))),
        );
        assert_eq!(
            concise(&chain),
            "dispatch failure: io error: client error (Connect): Connection refused (os error 111)"
        );
        let long = Layer(Box::leak("x".repeat(1000).into_boxed_str()), None);
        assert!(concise(&long).chars().count() <= MAX_DETAIL_CHARS + 1);
        // A real SDK error: a dispatch failure as the SDK builds it.
        let sdk: SdkError<
            aws_sdk_ecr::operation::get_authorization_token::GetAuthorizationTokenError,
            (),
        > = SdkError::dispatch_failure(aws_smithy_runtime_api::client::result::ConnectorError::io(
            Box::new(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "Connection refused",
            )),
        ));
        let text = concise(&sdk);
        for never in ["{", "DispatchFailure", "Extensions", "ConnectorError"] {
            assert!(!text.contains(never), "{text}");
        }
        assert!(text.contains("Connection refused"), "{text}");
        let verbose = DisplayErrorContext(&sdk).to_string();
        assert!(
            verbose.contains("DispatchFailure"),
            "the SDK's own context is Debug text: {verbose}"
        );
    }

    #[test]
    fn decodes_tokens() {
        let token = base64::engine::general_purpose::STANDARD.encode("AWS:secret-password");
        let at = aws_smithy_types::DateTime::from_secs(1_800_000_000);
        let auth = decode(Some(&token), Some(&at), None).unwrap();
        assert_eq!(auth.username, "AWS");
        assert_eq!(auth.password.expose(), "secret-password");
        assert_eq!(auth.expires_at.unix(), 1_800_000_000);
        assert!(!format!("{auth:?}").contains("secret-password"));
        assert!(decode(Some("!!!"), Some(&at), None).is_err());
        assert!(decode(Some(&token), None, None).is_err());
    }

    #[test]
    fn debug_never_shows_secrets() {
        let keys = AwsCredentialSource::StaticKeys {
            access_key_id: "AKIAEXAMPLE".into(),
            secret_access_key: Secret::new("debug-aws-secret"),
        };
        let role = AwsCredentialSource::AssumeRole {
            role_arn: "arn:aws:iam::123456789012:role/r".into(),
            external_id: Some(Secret::new("debug-external-id")),
        };
        for shown in [format!("{keys:?}"), format!("{role:?}")] {
            assert!(
                !shown.contains("debug-aws-secret") && !shown.contains("debug-external-id"),
                "{shown}"
            );
        }
    }

    #[test]
    fn a_ca_bundle_without_a_usable_certificate_is_refused() {
        let client = || EcrClient::new(Duration::from_secs(1));
        let no_certificate = [
            &b""[..],
            b"not PEM at all",
            b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n",
        ];
        for pem in no_certificate {
            assert!(matches!(
                client().with_ca_bundle(pem),
                Err(CaBundleError::NoCertificate)
            ));
        }
        // A CERTIFICATE block whose DER is no certificate: refused here, not a panic in the SDK's
        // TLS set-up on the first call.
        let bad = b"-----BEGIN CERTIFICATE-----\nAAECAwQFBgcICQ==\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            client().with_ca_bundle(bad),
            Err(CaBundleError::BadCertificate { .. })
        ));
    }

    #[test]
    fn reads_xml_errors() {
        let body = "<ErrorResponse><Errors><Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match</Message></Error></Errors></ErrorResponse>";
        assert_eq!(
            xml_field(body, "Code").as_deref(),
            Some("SignatureDoesNotMatch")
        );
        assert!(xml_field(body, "Message")
            .unwrap()
            .starts_with("The request signature"));
        assert_eq!(xml_field("{}", "Code"), None);
    }
}
