//! HTTP Basic authentication with a short in-memory cache of verified credentials.
//!
//! Argon2id verification costs tens of milliseconds by design, so a verified `Authorization`
//! header is remembered for `auth_cache_seconds`, keyed by an HMAC-SHA256 of the header under a
//! random per-process key: the cache never holds a password or a hash an attacker could test
//! guesses against. Any change to users or accounts through this process clears the cache; other
//! replicas forget within the TTL.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore;
use regkeep_domain::{AccountName, Secret};
use regkeep_engine::Caller;
use sha2::Sha256;

use crate::error::ApiError;
use crate::AppState;

/// The header with which an admin acts in another account (anchore-cli's `--as-account`).
pub const ACCOUNT_HEADER: &str = "x-anchore-account";

/// Most entries kept; past this the cache is cleared (a flood of distinct bad headers must not
/// grow memory).
const MAX_ENTRIES: usize = 10_000;

/// Verified credentials, remembered briefly.
pub struct AuthCache {
    key: [u8; 32],
    ttl: Duration,
    /// A std Mutex: held only to read or insert, never across an await.
    entries: Mutex<HashMap<[u8; 32], (Caller, Instant)>>,
}

impl AuthCache {
    pub fn new(ttl: Duration) -> Self {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        AuthCache {
            key,
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn fingerprint(&self, header: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .expect("HMAC-SHA256 takes a key of any length");
        mac.update(header.as_bytes());
        mac.finalize().into_bytes().into()
    }

    fn get(&self, fingerprint: &[u8; 32]) -> Option<Caller> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(fingerprint)
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(caller, _)| caller.clone())
    }

    fn put(&self, fingerprint: [u8; 32], caller: Caller) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(fingerprint, (caller, Instant::now()));
    }

    /// Forgets every verified credential (after a change to users or accounts).
    pub fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

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
        authenticate(&parts.headers, state)
            .await
            .map(AuthenticatedCaller)
    }
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let caller = authenticate(&parts.headers, state).await?;
        let requested = match parts.headers.get(ACCOUNT_HEADER) {
            Some(value) => Some(value.to_str().map_err(|_| {
                ApiError::bad_request(format!(
                    "{ACCOUNT_HEADER} is not valid text: give an account name"
                ))
            })?),
            None => None,
        };
        let account = state.engine.acting_account(&caller, requested).await?;
        Ok(Authenticated { caller, account })
    }
}

async fn authenticate(headers: &HeaderMap, state: &AppState) -> Result<Caller, ApiError> {
    let header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(ApiError::unauthorized)?;
    let fingerprint = state.auth_cache.fingerprint(header);
    if let Some(caller) = state.auth_cache.get(&fingerprint) {
        return Ok(caller);
    }
    let (user, password) = parse_basic(header).ok_or_else(ApiError::unauthorized)?;
    let caller = state.engine.authenticate(&user, &password).await?;
    state.auth_cache.put(fingerprint, caller.clone());
    Ok(caller)
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
    fn cache_keys_are_not_the_header() {
        let cache = AuthCache::new(Duration::from_secs(30));
        let a = cache.fingerprint("Basic YWRtaW46cGFzcw==");
        assert_ne!(a, cache.fingerprint("Basic YWRtaW46cGFzcx=="));
        assert!(!a.windows(4).any(|w| w == b"YWRt"));
    }
}
