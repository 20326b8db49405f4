//! Authentication: HTTP Basic for people, `Authorization: Bearer rk_…` for API keys. The work
//! behind it (the verified-credential cache, single-flight, the bound on Argon2id, key hashes,
//! throttling of failures) is the engine's (`engine::logins`, `engine::api_keys`), beside the
//! writes that must end a login; this module parses the header, finds the client's address (the
//! peer, or `X-Forwarded-For` when the peer is one of `trusted_proxies`), and holds an API key to
//! what its scopes name for the route asked ([`needed_scope`]).

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use regkeep_domain::outbound::IpNetwork;
use regkeep_domain::{AccountName, ApiKeyToken, Scope, Secret};
use regkeep_engine::{Caller, EngineError};

use crate::audit;
use crate::error::ApiError;
use crate::AppState;

/// Longest `Authorization` header read (a user name is at most 128 bytes, a password 1024).
const MAX_AUTHORIZATION: usize = 4096;

/// The header with which an admin acts in another account (anchore-cli's `--as-account`).
pub const ACCOUNT_HEADER: &str = "x-anchore-account";

/// An authenticated request: who called, and the account it acts in.
#[derive(Clone, Debug)]
pub struct Authenticated {
    pub caller: Caller,
    pub account: AccountName,
}

/// An authenticated request whose `x-anchore-account` is not looked at (the API root, which
/// anchore-cli calls with the header before every command; the command itself is then refused
/// with a clear 403 if the account is not the caller's to use).
#[derive(Clone, Debug)]
pub struct AuthenticatedCaller(pub Caller);

impl FromRequestParts<AppState> for AuthenticatedCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        authenticate(parts, state).await.map(AuthenticatedCaller)
    }
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let caller = authenticate(parts, state).await?;
        let requested = match parts.headers.get(ACCOUNT_HEADER) {
            Some(value) => Some(value.to_str().map_err(|_| {
                ApiError::bad_request(format!(
                    "{ACCOUNT_HEADER} is not valid text: give an account name"
                ))
            })?),
            None => None,
        };
        let account = state
            .engine
            .accounts()
            .acting_account(&caller, requested)
            .await?;
        Ok(Authenticated { caller, account })
    }
}

async fn authenticate(parts: &Parts, state: &AppState) -> Result<Caller, ApiError> {
    let header = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(ApiError::unauthorized)?;
    let address = client_address(parts, &state.trusted_proxies);
    // No user name and password of regkeep's is longer: nothing bigger is parsed or remembered.
    if header.len() > MAX_AUTHORIZATION {
        audit::login_refused("", address, "oversized_authorization");
        return Err(ApiError::unauthorized());
    }
    let caller = match parse_bearer(header) {
        Some(key) => key_login(&key, address, state).await?,
        None => password_login(header, address, state).await?,
    };
    // Every route says what an API key needs to call it; a password login passes all but the
    // credential handout, which is for keys alone.
    let route = parts
        .extensions
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    let allowed = match needed_scope(&parts.method, route) {
        Some(scope) => caller.require(scope),
        None => caller.require_person(),
    };
    if let Err(refused) = allowed {
        if let Some(grant) = &caller.api_key {
            audit::login_refused(
                &format!("apikey:{}", grant.key_id),
                address,
                "api_key_scope",
            );
        }
        return Err(refused.into());
    }
    Ok(caller)
}

/// What an API key needs to call `method` on `route` (the matched route pattern): the handout
/// needs `credentials:read`; every GET `read`; registry writes `registries:write`. `None`: no key
/// may (accounts, users, passwords, API keys, images and subscriptions are changed by people).
pub fn needed_scope(method: &Method, route: Option<&str>) -> Option<Scope> {
    match (method, route) {
        (&Method::POST, Some("/v1/credentials/resolve")) => Some(Scope::CredentialsRead),
        (&Method::GET | &Method::HEAD, _) => Some(Scope::Read),
        (
            &Method::POST | &Method::PUT | &Method::DELETE,
            Some("/v1/registries" | "/v1/registries/{*registry}"),
        ) => Some(Scope::RegistriesWrite),
        _ => None,
    }
}

async fn key_login(
    key: &Secret,
    address: Option<IpAddr>,
    state: &AppState,
) -> Result<Caller, ApiError> {
    match state
        .engine
        .accounts()
        .login_with_api_key(key, address)
        .await
    {
        Ok(caller) => Ok(caller),
        Err(err) => {
            // The id is public (it names the key in lists); a key that does not parse is named
            // by nothing it holds.
            let name = ApiKeyToken::parse(key.expose())
                .map_or_else(|| "apikey:".to_owned(), |t| format!("apikey:{}", t.id));
            let reason = match &err {
                EngineError::Unauthorized => "wrong_api_key",
                EngineError::KeyUnusable { .. } => "api_key_unusable",
                EngineError::Throttled { .. } => "throttled",
                EngineError::Refused(_) => "account_not_enabled",
                _ => "error",
            };
            audit::login_refused(&name, address, reason);
            state.engine.metrics().auth_failure("api_key", reason);
            Err(err.into())
        }
    }
}

async fn password_login(
    header: &str,
    address: Option<IpAddr>,
    state: &AppState,
) -> Result<Caller, ApiError> {
    let Some((user, password)) = parse_basic(header) else {
        audit::login_refused("", address, "malformed_authorization");
        return Err(ApiError::unauthorized());
    };
    match state
        .engine
        .accounts()
        .login(&user, &password, address)
        .await
    {
        Ok(caller) => Ok(caller),
        Err(err) => {
            let reason = match &err {
                EngineError::Unauthorized => "wrong_credentials_or_disabled",
                EngineError::Throttled { .. } => "throttled",
                _ => "error",
            };
            audit::login_refused(&user, address, reason);
            state.engine.metrics().auth_failure("password", reason);
            Err(err.into())
        }
    }
}

/// The client's address: the peer's, or, when the peer is a trusted proxy, the last address in
/// `X-Forwarded-For` that is not one of the trusted proxies (each proxy appends the address it
/// got the request from, so the entries before the first untrusted one from the right are the
/// client's to forge).
pub fn client_address(parts: &Parts, trusted_proxies: &[IpNetwork]) -> Option<IpAddr> {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())?;
    forwarded_client(peer, &parts.headers, trusted_proxies)
}

fn forwarded_client(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNetwork]) -> Option<IpAddr> {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(peer) {
        return Some(peer);
    }
    let mut client = peer;
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !is_trusted(ip) {
                    break;
                }
            }
            // An entry that is no address: the proxies' chain is broken; trust what came before.
            Err(_) => break,
        }
    }
    Some(client)
}

/// `Bearer <key>` → the key (whatever it holds: the engine parses it).
fn parse_bearer(header: &str) -> Option<Secret> {
    let (scheme, key) = header.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| Secret::new(key.trim()))
}

/// `Basic base64(user:password)` → (user, password).
fn parse_basic(header: &str) -> Option<(String, Secret)> {
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = BASE64.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), Secret::new(password)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_basic_headers() {
        let header = format!("Basic {}", BASE64.encode("admin:pa:ss"));
        let (user, pass) = parse_basic(&header).unwrap();
        assert_eq!(user, "admin");
        assert_eq!(pass.expose(), "pa:ss");
        assert!(parse_basic("Bearer abc").is_none());
        assert!(parse_basic("Basic !!!").is_none());
        assert!(parse_basic(&format!("Basic {}", BASE64.encode("nocolon"))).is_none());
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let trusted: Vec<IpNetwork> = vec!["10.0.0.0/8".parse().unwrap()];
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "6.6.6.6, 203.0.113.9, 10.0.0.2".parse().unwrap(),
        );
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // An untrusted peer's header is ignored.
        assert_eq!(
            forwarded_client(ip("198.51.100.1"), &headers, &trusted),
            Some(ip("198.51.100.1"))
        );
        // Through trusted proxies: the last untrusted hop, not the forgeable first one.
        assert_eq!(
            forwarded_client(ip("10.0.0.1"), &headers, &trusted),
            Some(ip("203.0.113.9"))
        );
        assert_eq!(
            forwarded_client(ip("10.0.0.1"), &HeaderMap::new(), &trusted),
            Some(ip("10.0.0.1"))
        );
        assert_eq!(
            forwarded_client(ip("10.0.0.1"), &headers, &[]),
            Some(ip("10.0.0.1"))
        );
    }
}
