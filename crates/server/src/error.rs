//! [`ApiError`]: every error answer, as `{"message", "httpcode", "detail"}` with the status
//! codes of docs/design.md §1. A 5xx never echoes internal text: it is logged and the client gets a
//! generic message.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use regkeep_domain::wire::ErrorBody;
use regkeep_domain::AccountState;
use regkeep_engine::{EngineError, Entity, KeyState, Named, Refusal, StateChange, ValidationError};
use serde_json::{json, Value};
use tracing::error;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub detail: Value,
    /// Seconds for `Retry-After` (429, 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            detail: json!({}),
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// Ends the message with how to fix it in the API's terms, also given alone as
    /// `detail.fix`, so that a client with its own words for the fix (the CLI names its
    /// commands) can show the message without it.
    fn with_fix(mut self, fix: Option<String>) -> Self {
        if let Some(fix) = fix {
            // One colon a sentence: after Anchore's "...requested: ..." prefix, a semicolon.
            let joint = if self.message.contains(": ") {
                "; "
            } else {
                ": "
            };
            self.message = format!("{}{joint}{fix}", self.message);
            self.detail["fix"] = fix.into();
        }
        self
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            EngineError::Unauthorized.to_string(),
        )
    }
}

impl From<EngineError> for ApiError {
    fn from(err: EngineError) -> Self {
        match err {
            EngineError::BadInput(m) => ApiError::new(StatusCode::BAD_REQUEST, m),
            EngineError::Unauthorized => ApiError::unauthorized(),
            EngineError::Refused(ref refusal) => ApiError {
                detail: refusal_detail(refusal),
                ..ApiError::new(StatusCode::FORBIDDEN, refusal_message(refusal))
            }
            .with_fix(refusal_fix(refusal)),
            EngineError::NotFound(ref named) => ApiError {
                detail: named_detail("entity_not_found", named),
                ..ApiError::new(StatusCode::NOT_FOUND, not_found_message(named))
            }
            .with_fix(not_found_fix(named)),
            EngineError::AlreadyExists(ref named) => {
                // Anchore answers a duplicate account or user with 400; registries and
                // subscriptions keep regkeep's 409.
                let status = match named.entity {
                    Entity::Account | Entity::User => StatusCode::BAD_REQUEST,
                    _ => StatusCode::CONFLICT,
                };
                ApiError {
                    detail: named_detail("already_exists", named),
                    ..ApiError::new(status, exists_message(named))
                }
                .with_fix(exists_fix(named))
            }
            EngineError::InvalidStateChange(ref change) => {
                // Anchore's words (anchore-cli adds a hint when it sees them).
                let (reason, account, message, fix) = match change {
                    StateChange::DeleteEnabled { account } => (
                        "account_enabled",
                        account,
                        format!("Invalid account state change requested: account {account} is enabled"),
                        Some(format!("disable it first with PUT /v1/accounts/{account}/state {{\"state\": \"disabled\"}}")),
                    ),
                    StateChange::BeingDeleted { account } => (
                        "account_deleting",
                        account,
                        format!("Invalid account state change requested: account {account} is being deleted"),
                        None,
                    ),
                };
                ApiError {
                    detail: json!({"reason": reason, "account": account.as_str()}),
                    ..ApiError::new(StatusCode::BAD_REQUEST, message)
                }
                .with_fix(fix)
            }
            EngineError::OwnCredential => ApiError {
                detail: json!({"reason": "own_credential"}),
                ..ApiError::bad_request(
                    "Cannot delete credential used for authentication of the request",
                )
            }
            .with_fix(Some(
                "set a new password instead with POST /v1/user/credentials".to_owned(),
            )),
            EngineError::KeyUnusable { ref key_id, state } => ApiError {
                detail: json!({
                    "reason": match state {
                        KeyState::Expired(_) => "api_key_expired",
                        KeyState::Revoked(_) => "api_key_revoked",
                    },
                    "key_id": key_id.as_str(),
                }),
                ..ApiError::new(StatusCode::UNAUTHORIZED, err.to_string())
            },
            EngineError::Declared { ref file, .. } => ApiError {
                detail: json!({"reason": "declared", "file": file}),
                ..ApiError::new(StatusCode::CONFLICT, err.to_string())
            },
            EngineError::Throttled { retry_after } => ApiError {
                retry_after: Some(retry_after),
                ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, err.to_string())
            },
            EngineError::ValidationFailed {
                ref registry,
                ref source,
            } => unprocessable(&err, ("registry", registry), source),
            EngineError::ResolutionFailed {
                ref image,
                ref source,
            } => unprocessable(&err, ("image", image), source),
            EngineError::Busy => ApiError {
                retry_after: Some(1),
                ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, err.to_string())
            },
            EngineError::StorageFull => {
                error!("a write failed: the database's disk is full");
                ApiError::new(StatusCode::INSUFFICIENT_STORAGE, err.to_string())
            }
            EngineError::Unavailable(ref cause) => {
                error!(cause = %cause, "a write failed: the database cannot be written");
                ApiError {
                    retry_after: Some(30),
                    ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, err.to_string())
                }
            }
            EngineError::Internal(ref source) => {
                error!(error = %error_chain(source.as_ref()), "internal error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error: the server logged the cause; try again, and report it if it persists",
                )
            }
        }
    }
}

/// An error and its sources, `: `-separated, for the log.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(e) = next {
        text.push_str(": ");
        text.push_str(&e.to_string());
        next = e.source();
    }
    text
}

fn named_detail(reason: &str, named: &Named) -> Value {
    let mut detail = json!({"reason": reason, "kind": named.entity.as_str(), "name": named.name});
    if let Some(account) = &named.account {
        detail["account"] = account.as_str().into();
    }
    detail
}

fn not_found_message(named: &Named) -> String {
    let name = &named.name;
    let account = named.account.as_ref().map_or("", |a| a.as_str());
    match named.entity {
        Entity::Account => format!("account {name} does not exist"),
        Entity::User => format!("user {name} does not exist in account {account}"),
        Entity::PasswordCredential => format!("user {name} has no password credential"),
        Entity::Registry => format!("registry {name} is not registered in account {account}"),
        Entity::Image => format!("image {name} is not recorded in account {account}"),
        Entity::ImageTag => format!("no image of account {account} is recorded under {name}"),
        Entity::ImageId => format!("no image with ID {name} is recorded in account {account}"),
        Entity::Subscription => format!("subscription {name} does not exist in account {account}"),
        Entity::Event => format!("event {name} does not exist in account {account}"),
        Entity::ApiKey => format!("API key {name} does not exist in account {account}"),
        Entity::RegistryFor => format!("no registry of account {account} serves {name}"),
    }
}

/// How to find or make what was not found, in the API's terms ([`ApiError::with_fix`]).
fn not_found_fix(named: &Named) -> Option<String> {
    let account = named.account.as_ref().map_or("", |a| a.as_str());
    let fix = match named.entity {
        Entity::Account => "GET /v1/accounts lists the accounts".to_owned(),
        Entity::User => format!("GET /v1/accounts/{account}/users lists its users"),
        Entity::PasswordCredential => return None,
        Entity::Registry => "the registry list (GET /v1/registries) shows the registered ones".to_owned(),
        Entity::Image | Entity::ImageId => "GET /v1/images lists the recorded ones".to_owned(),
        Entity::ImageTag => "add it with POST /v1/images".to_owned(),
        Entity::Subscription => "GET /v1/subscriptions lists them".to_owned(),
        Entity::Event => "GET /v1/events lists its events".to_owned(),
        Entity::ApiKey => "GET /v1/apikeys lists its keys".to_owned(),
        Entity::RegistryFor => "register one (POST /v1/registries); a repository-scoped entry serves only its repository".to_owned(),
    };
    Some(fix)
}

fn exists_message(named: &Named) -> String {
    let name = &named.name;
    let account = named.account.as_ref().map_or("", |a| a.as_str());
    match named.entity {
        Entity::Account => format!("Account already exists: account {name} exists (or is being deleted); choose another name"),
        Entity::User => format!("User already exists: user {name} exists (user names are unique across accounts); choose another name"),
        Entity::Registry => format!("registry {name} is already registered"),
        Entity::Subscription => format!("account {account} already watches {name}"),
        other => format!("{} {name} exists already in account {account}", other.as_str()),
    }
}

/// How to change what exists instead, in the API's terms ([`ApiError::with_fix`]).
fn exists_fix(named: &Named) -> Option<String> {
    match named.entity {
        Entity::Registry => {
            Some("change it with PUT /v1/registries/{registry} (registry update)".to_owned())
        }
        Entity::Subscription => Some("GET /v1/subscriptions lists it".to_owned()),
        _ => None,
    }
}

fn refusal_detail(refusal: &Refusal) -> Value {
    let mut detail = json!({"reason": refusal_reason(refusal)});
    match refusal {
        Refusal::AccountNotEnabled { account, state } => {
            detail["account"] = account.as_str().into();
            detail["state"] = state.as_str().into();
        }
        Refusal::OtherAccount { account, .. }
        | Refusal::OtherAccountsUsers { account, .. }
        | Refusal::Quota { account, .. } => detail["account"] = account.as_str().into(),
        Refusal::KeyScope { key_id, needed } => {
            detail["key_id"] = key_id.as_str().into();
            detail["needed_scope"] = needed.map(regkeep_domain::Scope::as_str).into();
        }
        Refusal::StaticPasswordHandout { registry } => {
            detail["registry"] = registry.as_str().into();
            detail["setting"] = "handout.static_passwords".into();
        }
        Refusal::HostIdentityHandout { registry } => {
            detail["registry"] = registry.as_str().into();
            detail["setting"] = "handout.host_identity_tokens".into();
        }
        Refusal::NotAdmin { .. }
        | Refusal::DisableAdminAccount
        | Refusal::HandoutNeedsApiKey { .. } => {}
    }
    detail
}

fn refusal_reason(refusal: &Refusal) -> &'static str {
    match refusal {
        Refusal::NotAdmin { .. } => "not_admin",
        Refusal::OtherAccount { .. } => "other_account",
        Refusal::OtherAccountsUsers { .. } => "other_accounts_users",
        Refusal::DisableAdminAccount => "admin_account",
        Refusal::AccountNotEnabled { .. } => "account_not_enabled",
        Refusal::Quota { .. } => "quota",
        Refusal::KeyScope {
            needed: Some(_), ..
        } => "api_key_scope",
        Refusal::KeyScope { needed: None, .. } => "people_only",
        Refusal::HandoutNeedsApiKey { .. } => "handout_needs_api_key",
        Refusal::StaticPasswordHandout { .. } => "static_password_handout",
        Refusal::HostIdentityHandout { .. } => "host_identity_handout",
    }
}

/// The engine's own words, except where the API says more: the header anchore-cli sets for
/// another account, and Anchore's phrase (with the path that enables an account) for an account
/// that is not enabled.
fn refusal_message(refusal: &Refusal) -> String {
    match refusal {
        Refusal::OtherAccount { user, account } => format!("user {user} may not act in account {account}: only admin users may use x-anchore-account (--as-account)"),
        Refusal::AccountNotEnabled { account, state: AccountState::Deleting } => format!("Not authorized. Account not enabled: account {account} is being deleted, and its users can no longer use the API"),
        Refusal::AccountNotEnabled { account, .. } => format!("Not authorized. Account not enabled: account {account} is disabled, and its users cannot use the API until an admin enables it"),
        Refusal::HandoutNeedsApiKey { user } => format!("user {user} logged in with a password: credentials are handed out only to API keys with scope credentials:read"),
        Refusal::NotAdmin { .. }
        | Refusal::OtherAccountsUsers { .. }
        | Refusal::DisableAdminAccount
        | Refusal::Quota { .. }
        | Refusal::KeyScope { .. }
        | Refusal::StaticPasswordHandout { .. }
        | Refusal::HostIdentityHandout { .. } => refusal.to_string(),
    }
}

/// How to lift a refusal, in the API's terms ([`ApiError::with_fix`]).
fn refusal_fix(refusal: &Refusal) -> Option<String> {
    match refusal {
        Refusal::AccountNotEnabled {
            account,
            state: AccountState::Disabled,
        } => Some(format!(
            "PUT /v1/accounts/{account}/state with {{\"state\": \"enabled\"}}"
        )),
        Refusal::HandoutNeedsApiKey { .. } => Some("make one with POST /v1/apikeys".to_owned()),
        _ => None,
    }
}

/// 422 for what a registry (or AWS) refused or failed: `detail` names the subject (`registry` or
/// `image`), the reason, the registry's status, AWS's code and the answer.
fn unprocessable(err: &EngineError, subject: (&str, &str), source: &ValidationError) -> ApiError {
    let mut detail = json!({
        "needs_credential": matches!(source, ValidationError::Registry(e) if e.needs_credential()),
        "reason": source.kind(),
        "registry_status": source.status(),
        "aws_code": source.aws_code(),
        "answer": source.to_string(),
    });
    detail[subject.0] = subject.1.into();
    ApiError {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        message: err.to_string(),
        detail,
        retry_after: None,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // Anchore's error detail always holds `error_codes` (empty: regkeep has none of its own).
        let mut detail = self.detail;
        if let Some(fields) = detail.as_object_mut() {
            fields
                .entry("error_codes")
                .or_insert_with(|| Value::Array(Vec::new()));
        }
        let body = ErrorBody {
            message: self.message,
            httpcode: self.status.as_u16(),
            detail,
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"regkeep\""),
            );
        }
        response
    }
}

/// Largest framework error text carried into a JSON answer (axum's rejections are one line).
const MAX_FRAMEWORK_TEXT: usize = 1024;

/// Makes every error answer JSON: axum answers a bad query string, a path it cannot decode or a
/// method a route does not serve with `text/plain` (or nothing); clients written against
/// Anchore read `{message, httpcode, detail}` from every error. Answers that are already JSON,
/// and every success, pass untouched.
pub async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_FRAMEWORK_TEXT)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let text = regkeep_domain::untrusted_text::sanitize(&text, MAX_FRAMEWORK_TEXT);
    let message = match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            let allowed = parts
                .headers
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            format!("this path does not answer that method: use one of {allowed}")
        }
        StatusCode::BAD_REQUEST if !text.is_empty() => {
            format!("{text}: fix the request (the API is described in README, section API)")
        }
        _ if !text.is_empty() => text,
        _ => status
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase(),
    };
    let mut answer = ApiError::new(status, message).into_response();
    // Allow (405) and Retry-After are kept; the length and type are the new body's.
    for name in [header::ALLOW, header::RETRY_AFTER, header::WWW_AUTHENTICATE] {
        if let Some(value) = parts.headers.get(&name) {
            answer.headers_mut().insert(name, value.clone());
        }
    }
    answer
}

/// The answer for a path no route serves.
pub async fn unknown_route(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    let path = regkeep_domain::untrusted_text::sanitize(uri.path(), 200);
    // Methods are any token a client sends: bounded like the path.
    let method = regkeep_domain::untrusted_text::sanitize(method.as_str(), 20);
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "no such path: {method} {path}; the API's paths are under /v1 (README, section API)"
        ),
    )
}
