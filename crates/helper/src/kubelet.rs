//! The kubelet image credential provider (`credentialprovider.kubelet.k8s.io/v1`): a
//! `CredentialProviderRequest` on stdin, a `CredentialProviderResponse` on stdout.
//!
//! - `cacheKeyType` is `Registry` when the serving entry is a whole host, `Image` when it is
//!   repository-scoped or a wildcard, so the kubelet never reuses one repository's credential
//!   for the whole host.
//! - `cacheDuration` is at most half the token's remaining life (the kubelet asks again while
//!   the token still has half its life left), and a few minutes for stored passwords (they may
//!   change).
//! - `auth` is keyed by what the entry covers (`host`, `host/repo`, or the wildcard's prefix),
//!   which the kubelet matches against the image as it matches `matchImages`.

use std::collections::BTreeMap;

use regkeep_domain::wire::{CredentialHandout, CredentialRequest};
use regkeep_domain::{Clock, Secret, SystemClock, Timestamp};
use serde::{Deserialize, Serialize};

use crate::client::Regkeep;
use crate::config::Config;
use crate::error::HelperError;

pub const API_VERSION: &str = "credentialprovider.kubelet.k8s.io/v1";

/// How long the kubelet may keep a stored password.
const STATIC_CACHE_SECONDS: i64 = 300;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialProviderRequest {
    pub api_version: String,
    pub kind: String,
    pub image: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialProviderResponse {
    pub api_version: String,
    pub kind: String,
    pub cache_key_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_duration: Option<String>,
    pub auth: BTreeMap<String, AuthConfig>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct AuthConfig {
    pub username: String,
    pub password: Secret,
}

/// Answers one request.
///
/// # Errors
/// A malformed request, regkeep unreachable or refusing (the kubelet logs the message).
pub async fn run(config: &Config, input: &[u8]) -> Result<String, HelperError> {
    let request: CredentialProviderRequest = serde_json::from_slice(input).map_err(|e| {
        HelperError::Message(format!(
            "stdin is not a CredentialProviderRequest ({e}): the kubelet sends one"
        ))
    })?;
    if request.api_version != API_VERSION || request.kind != "CredentialProviderRequest" {
        return Err(HelperError::Message(format!(
            "this provider speaks {API_VERSION} CredentialProviderRequest: set apiVersion: {API_VERSION} for it in the kubelet's CredentialProviderConfig"
        )));
    }
    let handout = Regkeep::new(config)?
        .resolve(&CredentialRequest {
            image: Some(request.image.clone()),
            registry: None,
        })
        .await?;
    let response = respond(handout, SystemClock.now());
    serde_json::to_string(&response)
        .map(|json| json + "\n")
        .map_err(|e| HelperError::Message(format!("cannot write the answer: {e}")))
}

/// The response for what the handout gave (`None`: no entry serves the image: an empty `auth`,
/// and the kubelet pulls anonymously), at `now`.
pub fn respond(handout: Option<CredentialHandout>, now: Timestamp) -> CredentialProviderResponse {
    let Some(handout) = handout else {
        return CredentialProviderResponse {
            api_version: API_VERSION.into(),
            kind: "CredentialProviderResponse".into(),
            cache_key_type: "Image".into(),
            cache_duration: Some("0s".into()),
            auth: BTreeMap::new(),
        };
    };
    let whole_host = handout.scope == "host";
    let key = auth_key(&handout);
    let seconds = match handout.expires_at {
        Some(expires) => (expires.unix() - now.unix()).max(0) / 2,
        None => STATIC_CACHE_SECONDS,
    };
    let mut auth = BTreeMap::new();
    auth.insert(
        key,
        AuthConfig {
            username: handout.username,
            password: handout.secret,
        },
    );
    CredentialProviderResponse {
        api_version: API_VERSION.into(),
        kind: "CredentialProviderResponse".into(),
        cache_key_type: if whole_host { "Registry" } else { "Image" }.into(),
        cache_duration: Some(format!("{seconds}s")),
        auth,
    }
}

/// What the entry covers, in the kubelet's matching terms: `host`, `host/repo`, or for a
/// wildcard entry the prefix before its `*`.
fn auth_key(handout: &CredentialHandout) -> String {
    handout
        .registry
        .trim_end_matches('*')
        .trim_end_matches('/')
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handout(registry: &str, scope: &str, expires_at: Option<i64>) -> CredentialHandout {
        CredentialHandout {
            registry: registry.into(),
            host: registry
                .split('/')
                .next()
                .unwrap()
                .trim_end_matches('*')
                .into(),
            scope: scope.into(),
            username: "AWS".into(),
            secret: Secret::new("token"),
            expires_at: expires_at.map(Timestamp::from_unix),
            registry_type: "awsecr".into(),
        }
    }

    #[test]
    fn responses_carry_the_right_cache_key_and_duration() {
        let now = Timestamp::from_unix(1_000_000);
        let ecr = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
        let r = respond(Some(handout(ecr, "host", Some(1_000_000 + 43_200))), now);
        assert_eq!(r.cache_key_type, "Registry");
        assert_eq!(r.cache_duration.as_deref(), Some("21600s"));
        assert_eq!(r.auth[ecr].username, "AWS");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["apiVersion"], API_VERSION);
        assert_eq!(json["kind"], "CredentialProviderResponse");
        assert_eq!(json["auth"][ecr]["password"], "token");

        let r = respond(
            Some(handout("reg.example.com/team/app", "repository", None)),
            now,
        );
        assert_eq!(r.cache_key_type, "Image");
        assert_eq!(r.cache_duration.as_deref(), Some("300s"));
        assert!(r.auth.contains_key("reg.example.com/team/app"));

        let r = respond(
            Some(handout(
                "reg.example.com/team/*",
                "wildcard",
                Some(1_000_010),
            )),
            now,
        );
        assert_eq!(r.cache_key_type, "Image");
        assert_eq!(r.cache_duration.as_deref(), Some("5s"));
        assert!(r.auth.contains_key("reg.example.com/team"));

        // An expired token is never cached.
        let r = respond(Some(handout(ecr, "host", Some(999_000))), now);
        assert_eq!(r.cache_duration.as_deref(), Some("0s"));

        let r = respond(None, now);
        assert!(r.auth.is_empty());
    }
}
