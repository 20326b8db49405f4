//! The HTTP client of the CLI: where the server is, who we are, and what an answer means.

use std::process::ExitCode;

use anyhow::Context;
use regkeep_domain::untrusted_text::{for_terminal, json_for_terminal, sanitize};
use regkeep_domain::wire::ErrorBody;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{GlobalArgs, EXIT_FAILURE, EXIT_REFUSED, EXIT_TEMPORARY};

const DEFAULT_URL: &str = "http://127.0.0.1:8228";

pub struct Client {
    http: reqwest::Client,
    /// The API base, ending in `/v1`.
    base: String,
    user: Option<String>,
    pass: Option<regkeep_domain::Secret>,
    as_account: Option<String>,
    /// Presented instead of the user and password when set (`Authorization: Bearer`).
    api_key: Option<regkeep_domain::Secret>,
}

/// A server answer that is not a success: printed, then turned into an exit code.
pub struct Refusal {
    pub status: StatusCode,
    pub body: Option<ErrorBody>,
    pub raw: String,
}

impl Refusal {
    /// Prints the error the way anchore-cli does (message, code, detail; with `--json` the error
    /// object itself on standard output) and gives the exit code ([`exit_code`]).
    pub fn report(&self) -> ExitCode {
        if super::json_errors() {
            let body = self.body.clone().unwrap_or_else(|| ErrorBody {
                message: format!("HTTP {}: {}", self.status, sanitize(&self.raw, 300)),
                httpcode: self.status.as_u16(),
                detail: serde_json::json!({}),
            });
            match serde_json::to_string_pretty(&body) {
                Ok(text) => println!("{text}"),
                Err(_) => eprintln!("regkeep: error: HTTP {}", self.status),
            }
            return ExitCode::from(self.exit_code());
        }
        match &self.body {
            Some(body) => {
                let hint = hint(&body.detail);
                // The server's fix names API paths; with a hint of our own, it is left out.
                let message = match (&hint, body.detail.get("fix").and_then(|f| f.as_str())) {
                    (Some(_), Some(fix)) => without_fix(&body.message, fix),
                    _ => &body.message,
                };
                eprintln!("regkeep: error: {}", for_terminal(message));
                if let Some(hint) = hint {
                    eprintln!("Hint: {}", for_terminal(&hint));
                }
                eprintln!("HTTP code: {}", body.httpcode);
                // Only what the message does not already say (the whole object: --json).
                if let Some(extra) = extra_detail(&body.detail) {
                    eprintln!("Detail: {}", json_for_terminal(&extra.to_string()));
                }
            }
            None => {
                eprintln!(
                    "regkeep: error: HTTP {}: {}",
                    self.status,
                    sanitize(&self.raw, 300)
                );
            }
        }
        ExitCode::from(self.exit_code())
    }

    /// 3 when a retry may help (regkeep or the registry unreachable or slow, throttled, busy, its
    /// disk full); 2 for failed authentication and regkeep's own errors; 1 for every other
    /// refusal (the request itself is wrong: bad input, not found, conflict, forbidden, the
    /// registry refused the credentials).
    pub fn exit_code(&self) -> u8 {
        let reason = self
            .body
            .as_ref()
            .and_then(|b| b.detail.get("reason"))
            .and_then(serde_json::Value::as_str);
        match self.status.as_u16() {
            408 | 429 | 502 | 503 | 504 | 507 => EXIT_TEMPORARY,
            422 if matches!(
                reason,
                Some("unreachable" | "timeout" | "aws_unavailable" | "aws_throttled")
            ) =>
            {
                EXIT_TEMPORARY
            }
            401 => EXIT_FAILURE,
            400..=499 => EXIT_REFUSED,
            _ => EXIT_FAILURE,
        }
    }
}

/// regkeep itself could not be reached (refused, timed out, name unknown): worth a retry.
#[derive(Debug, thiserror::Error)]
#[error("cannot reach regkeep at {url}: is `regkeep serve` running there? (--url / REGKEEP_URL)")]
pub struct Unreachable {
    pub url: String,
    #[source]
    pub cause: reqwest::Error,
}

/// The message without its trailing fix (`<what>: <fix>` or `<what>; <fix>`, the server's `detail.fix`).
fn without_fix<'a>(message: &'a str, fix: &str) -> &'a str {
    match message
        .strip_suffix(fix)
        .map(|what| what.trim_end_matches([':', ';', ' ']))
    {
        Some(what) if !what.trim().is_empty() => what,
        _ => message,
    }
}

/// The keys of an error's `detail` that its message does not already say: the machine-readable
/// reason and the names it was about are in the sentence; an empty list of error codes says
/// nothing. `None` when nothing is left.
fn extra_detail(detail: &serde_json::Value) -> Option<serde_json::Value> {
    let mut extra = detail.as_object()?.clone();
    for said in ["reason", "kind", "name", "account", "state", "fix"] {
        extra.remove(said);
    }
    if extra
        .get("error_codes")
        .and_then(serde_json::Value::as_array)
        .is_some_and(Vec::is_empty)
    {
        extra.remove("error_codes");
    }
    (!extra.is_empty()).then_some(serde_json::Value::Object(extra))
}

/// What to run next, in this CLI's words, for an error the server describes in `detail` (the
/// server's messages name API paths; the commands are the CLI's to name).
fn hint(detail: &serde_json::Value) -> Option<String> {
    let text = |key: &str| detail.get(key).and_then(serde_json::Value::as_str);
    let account = text("account").unwrap_or("ACCOUNT");
    let name = text("name").unwrap_or("NAME");
    let hint = match (text("reason")?, text("kind")) {
        ("entity_not_found", Some("registry")) => {
            "`regkeep registry list` shows the registered ones".into()
        }
        ("entity_not_found", Some("account")) => "`regkeep account list` shows the accounts".into(),
        ("entity_not_found", Some("user")) => {
            format!("`regkeep user list --account {account}` shows its users")
        }
        ("entity_not_found", Some("image" | "image_id")) => {
            "`regkeep image list` shows the recorded ones".into()
        }
        ("entity_not_found", Some("image_tag")) => {
            format!("add it with `regkeep image add {name}`")
        }
        ("entity_not_found", Some("subscription")) => {
            "`regkeep subscription list` shows them".into()
        }
        ("entity_not_found", Some("event")) => "`regkeep event list` shows the events".into(),
        ("entity_not_found", Some("api_key")) => "`regkeep apikey list` shows the keys".into(),
        ("entity_not_found", Some("registry_for")) => {
            "register one with `regkeep registry add HOST USER --password-stdin` (a repository-scoped entry serves only its repository)".into()
        }
        ("handout_needs_api_key", _) => {
            "make a key with `regkeep apikey create --scope credentials:read --output FILE` and give it with --api-key-file FILE".into()
        }
        ("already_exists", Some("registry")) => {
            format!("change it with `regkeep registry update {name} ...`")
        }
        ("account_enabled", _) => format!("disable it first: `regkeep account disable {account}`"),
        ("account_not_enabled", _) if text("state") == Some("disabled") => {
            format!("an admin enables the account with `regkeep account enable {account}`")
        }
        ("own_credential", _) => "set a new password instead: `regkeep user setpassword`".into(),
        ("tls", _) => "when the certificate is the problem and you trust the network, `--insecure` registers the registry without TLS verification".into(),
        _ if detail.get("needs_credential") == Some(&serde_json::Value::Bool(true)) => {
            let registry = text("image")
                .and_then(|image| image.split('/').next())
                .or(text("registry"))
                .unwrap_or("REGISTRY");
            format!("register a credential with `regkeep registry add {registry} USER --password-stdin`")
        }
        _ => return None,
    };
    Some(hint)
}

fn env_either(primary: &str, fallback: &str) -> Option<String> {
    std::env::var(primary)
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(|| std::env::var(fallback).ok().filter(|v| !v.is_empty()))
}

impl Client {
    pub fn new(global: &GlobalArgs) -> anyhow::Result<Client> {
        let url = global
            .url
            .clone()
            .or_else(|| env_either("REGKEEP_URL", "ANCHORE_CLI_URL"))
            .unwrap_or_else(|| DEFAULT_URL.to_owned());
        // `127.0.0.1:8228` is taken as http://127.0.0.1:8228 (a scheme-less address is what
        // people type).
        let url = if url.contains("://") {
            url
        } else {
            format!("http://{url}")
        };
        let parsed = url::Url::parse(&url)
            .with_context(|| format!("--url `{url}` is not a URL: give one like {DEFAULT_URL}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            anyhow::bail!("--url `{url}` must start with http:// or https://");
        }
        let trimmed = url.trim_end_matches('/');
        let base = if trimmed.ends_with("/v1") {
            trimmed.to_owned()
        } else {
            format!("{trimmed}/v1")
        };
        let mut builder = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(120))
            .read_timeout(std::time::Duration::from_secs(120))
            .user_agent(concat!("regkeep-cli/", env!("CARGO_PKG_VERSION")));
        // A server whose certificate comes from a private CA: trust that CA too.
        if let Some(ca) = std::env::var_os("REGKEEP_CA_FILE").filter(|v| !v.is_empty()) {
            let path = std::path::PathBuf::from(ca);
            let pem = std::fs::read(&path).with_context(|| {
                format!(
                    "cannot read REGKEEP_CA_FILE {}: give a PEM file of CA certificates",
                    path.display()
                )
            })?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem).with_context(|| {
                format!(
                    "REGKEEP_CA_FILE {} holds no PEM certificate",
                    path.display()
                )
            })? {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build()?;
        Ok(Client {
            http,
            base,
            user: global
                .user
                .clone()
                .or_else(|| env_either("REGKEEP_USER", "ANCHORE_CLI_USER")),
            pass: global
                .pass
                .clone()
                .or_else(|| env_either("REGKEEP_PASS", "ANCHORE_CLI_PASS"))
                .map(regkeep_domain::Secret::new),
            as_account: global.as_account.clone(),
            api_key: None,
        })
    }

    /// A client that presents the API key in `path` (its first line) instead of a password.
    pub fn with_api_key_file(
        global: &GlobalArgs,
        path: &std::path::Path,
    ) -> anyhow::Result<Client> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "cannot read the API key file {}: give a file holding a key made with `regkeep apikey create --scope credentials:read --output FILE`",
                path.display()
            )
        })?;
        let key = text.lines().next().unwrap_or_default().trim().to_owned();
        if key.is_empty() {
            anyhow::bail!("the API key file {} is empty", path.display());
        }
        let mut client = Client::new(global)?;
        client.api_key = Some(regkeep_domain::Secret::new(key));
        Ok(client)
    }

    fn authorize(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match (&self.api_key, &self.user) {
            (Some(key), _) => request.bearer_auth(key.expose()),
            (None, Some(user)) => request.basic_auth(user, self.pass.as_ref().map(|p| p.expose())),
            (None, None) => request,
        }
    }

    /// Starts a GET whose answer is read as it arrives (pull content): the whole-request
    /// timeout is lifted, a stalled read still ends it. `Ok(Err(refusal))` on a server error.
    pub async fn get_stream(
        &self,
        path: &str,
    ) -> anyhow::Result<Result<reqwest::Response, Refusal>> {
        let url = format!("{}{path}", self.base);
        let mut request = self
            .http
            .get(&url)
            .timeout(std::time::Duration::from_secs(6 * 3600));
        request = self.authorize(request);
        if let Some(account) = &self.as_account {
            request = request.header("x-anchore-account", account);
        }
        let response = request.send().await.map_err(|e| self.unreachable(e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(Ok(response));
        }
        let bytes = response.bytes().await.unwrap_or_default();
        Ok(Err(Refusal {
            status,
            body: serde_json::from_slice(&bytes).ok(),
            raw: String::from_utf8_lossy(&bytes).into_owned(),
        }))
    }

    /// A request that got no answer: [`Unreachable`] (exit code 3) with the cause under it.
    fn unreachable(&self, error: reqwest::Error) -> anyhow::Error {
        anyhow::Error::new(Unreachable {
            url: self.base.clone(),
            cause: error,
        })
    }

    /// Sends a request; `Ok(Err(refusal))` when the server answered with an error.
    pub async fn call<T: DeserializeOwned, B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> anyhow::Result<Result<T, Refusal>> {
        let url = format!("{}{path}", self.base);
        let mut request = self.authorize(self.http.request(method, &url));
        if let Some(account) = &self.as_account {
            request = request.header("x-anchore-account", account);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| self.unreachable(e))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .context("reading the server's answer")?;
        if status.is_success() {
            let text = if bytes.is_empty() {
                &b"null"[..]
            } else {
                &bytes[..]
            };
            let value = serde_json::from_slice(text).with_context(|| {
                format!("the server's answer to {path} is not what regkeep expects")
            })?;
            return Ok(Ok(value));
        }
        Ok(Err(Refusal {
            status,
            body: serde_json::from_slice(&bytes).ok(),
            raw: String::from_utf8_lossy(&bytes).into_owned(),
        }))
    }
}

/// Percent-encodes a path segment (every `/` and `:` too, as anchore-cli does).
pub fn segment(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detail_shows_only_what_the_message_does_not_say() {
        let not_found = serde_json::json!({"error_codes": [], "reason": "entity_not_found",
            "kind": "registry", "name": "r.example.com", "account": "admin"});
        assert_eq!(extra_detail(&not_found), None);
        let refused = serde_json::json!({"error_codes": [], "reason": "refused",
            "registry_status": 401, "registry_answer": "UNAUTHORIZED"});
        assert_eq!(
            extra_detail(&refused),
            Some(serde_json::json!({"registry_status": 401, "registry_answer": "UNAUTHORIZED"}))
        );
        assert_eq!(
            extra_detail(&serde_json::json!({"error_codes": ["E1"]})),
            Some(serde_json::json!({"error_codes": ["E1"]}))
        );
    }

    #[test]
    fn the_servers_fix_is_left_out_only_when_it_ends_the_message() {
        let fix = "GET /v1/accounts lists the accounts";
        assert_eq!(
            without_fix(
                "account nope does not exist: GET /v1/accounts lists the accounts",
                fix
            ),
            "account nope does not exist"
        );
        assert_eq!(
            without_fix("something else entirely", fix),
            "something else entirely"
        );
        assert_eq!(without_fix(fix, fix), fix, "never an empty message");
        let odd = format!(": {fix}");
        assert_eq!(without_fix(&odd, fix), odd, "never an empty message");
    }

    #[test]
    fn exit_codes_follow_what_a_retry_can_change() {
        let refusal = |status: u16, reason: Option<&str>| Refusal {
            status: StatusCode::from_u16(status).unwrap(),
            body: Some(ErrorBody {
                message: String::new(),
                httpcode: status,
                detail: reason.map_or(serde_json::json!({}), |r| serde_json::json!({"reason": r})),
            }),
            raw: String::new(),
        };
        for (status, reason, code) in [
            (400, None, 1),
            (403, None, 1),
            (404, None, 1),
            (409, None, 1),
            (422, Some("refused"), 1),
            (422, Some("unreachable"), 3),
            (422, Some("timeout"), 3),
            (422, Some("aws_unavailable"), 3),
            (401, None, 2),
            (500, None, 2),
            (429, None, 3),
            (503, None, 3),
            (507, None, 3),
        ] {
            assert_eq!(
                refusal(status, reason).exit_code(),
                code,
                "{status} {reason:?}"
            );
        }
    }
}
