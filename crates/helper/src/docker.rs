//! The docker credential-helper protocol, as docker-credential-helpers defines it: the action
//! in `argv[1]`; `get` and `erase` read a server URL on stdin, `store` a JSON
//! `{"ServerURL","Username","Secret"}`; `get` answers that JSON, `list` a JSON map of server URL
//! to user name; errors on stdout, exit 1; an unknown host is "credentials not found in native
//! keychain", which consumers take as "no credential: go on anonymously".

use std::collections::BTreeMap;

use regkeep_domain::wire::{CredentialRequest, RegistryConfigurationRequest};
use regkeep_domain::Secret;
use serde::{Deserialize, Serialize};

use crate::client::Regkeep;
use crate::config::Config;
use crate::error::HelperError;

/// What `get` answers and `store` reads (the protocol's field names).
#[derive(Serialize, Deserialize)]
struct Credentials {
    #[serde(rename = "ServerURL")]
    server_url: String,
    #[serde(rename = "Username")]
    username: String,
    #[serde(rename = "Secret")]
    secret: Secret,
}

/// Runs `action` on `input`; gives what goes to stdout.
///
/// # Errors
/// [`HelperError::NotFound`] for an unknown host; a message for anything else.
pub async fn run(
    action: Option<&str>,
    input: &[u8],
    config: impl FnOnce() -> Result<Config, HelperError>,
) -> Result<String, HelperError> {
    match action {
        Some("version") => Ok(format!(
            "docker-credential-regkeep (regkeep) {}\n",
            env!("CARGO_PKG_VERSION")
        )),
        Some("get") => {
            let server_url = server_url(input)?;
            let host = host_of(&server_url)?;
            let config = config()?;
            let handout = Regkeep::new(&config)?
                .resolve(&CredentialRequest {
                    image: None,
                    registry: Some(host),
                })
                .await?
                .ok_or(HelperError::NotFound)?;
            let answer = Credentials {
                server_url,
                username: handout.username,
                secret: handout.secret,
            };
            serde_json::to_string(&answer)
                .map(|json| json + "\n")
                .map_err(|e| HelperError::Message(format!("cannot write the answer: {e}")))
        }
        Some("store") => {
            let given: Credentials = serde_json::from_slice(input).map_err(|e| {
                HelperError::Message(format!(
                    "store reads {{\"ServerURL\", \"Username\", \"Secret\"}} as JSON on stdin: {e}"
                ))
            })?;
            if given.username.is_empty() {
                return Err(HelperError::Message(
                    "no username given: docker login sends one with the password".into(),
                ));
            }
            let host = host_of(&given.server_url)?;
            // A server URL given as http:// is a registry without (verified) TLS: registered
            // as one (registry_verify false), as `--insecure` would.
            let plain = given.server_url.trim().starts_with("http://");
            let config = config()?;
            Regkeep::new(&config)?
                .add_or_update(&RegistryConfigurationRequest {
                    registry: host,
                    registry_user: given.username,
                    registry_pass: given.secret,
                    registry_type: Some("docker_v2".into()),
                    registry_verify: plain.then_some(false),
                    registry_name: None,
                })
                .await?;
            Ok(String::new())
        }
        Some("erase") => {
            let host = host_of(&server_url(input)?)?;
            let config = config()?;
            // `docker logout` runs on any machine; what regkeep keeps is removed only when this
            // helper is configured to (erase_deletes: true).
            if config.erase_deletes {
                Regkeep::new(&config)?.delete(&host).await?;
            }
            Ok(String::new())
        }
        Some("list") => {
            let config = config()?;
            let registries = Regkeep::new(&config)?.registries().await?;
            let listed: BTreeMap<String, String> = registries
                .into_iter()
                .filter(|r| !r.registry.contains('/') && !r.registry.ends_with('*'))
                .map(|r| (r.registry, r.registry_user))
                .collect();
            serde_json::to_string(&listed)
                .map(|json| json + "\n")
                .map_err(|e| HelperError::Message(format!("cannot write the answer: {e}")))
        }
        Some(other) => Err(HelperError::Message(format!(
            "Unknown credential action `{}`: use get, store, erase, list or version",
            other.chars().take(40).collect::<String>()
        ))),
        None => Err(HelperError::Message(
            "Usage: docker-credential-regkeep <store|get|erase|list|version>".into(),
        )),
    }
}

/// The server URL on stdin, trimmed.
fn server_url(input: &[u8]) -> Result<String, HelperError> {
    let text = std::str::from_utf8(input)
        .map_err(|_| HelperError::Message("the server URL on stdin is not UTF-8 text".into()))?
        .trim();
    if text.is_empty() {
        return Err(HelperError::Message(
            "no server URL sent: give it on stdin (e.g. registry.example.com)".into(),
        ));
    }
    Ok(text.to_owned())
}

/// The registry host of a server URL as clients send it: `registry.example.com`,
/// `https://registry.example.com:5000`, `https://index.docker.io/v1/` (regkeep normalises
/// Docker Hub's names itself).
pub fn host_of(server_url: &str) -> Result<String, HelperError> {
    let text = server_url.trim();
    let without_scheme = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
        .unwrap_or(text);
    let host = without_scheme
        .split('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(HelperError::Message(format!(
            "`{}` is not a registry address: give host[:port]",
            text.chars().take(80).collect::<String>()
        )));
    }
    Ok(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_of_server_urls() {
        for (url, host) in [
            ("registry.example.com", "registry.example.com"),
            (
                "https://Registry.Example.com:5000",
                "registry.example.com:5000",
            ),
            ("https://index.docker.io/v1/", "index.docker.io"),
            ("http://127.0.0.1:5000/v2/", "127.0.0.1:5000"),
            ("  reg.example.com\n", "reg.example.com"),
        ] {
            assert_eq!(host_of(url).unwrap(), host);
        }
        assert!(host_of("").is_err());
        assert!(host_of("https:///x").is_err());
    }

    fn no_config() -> Result<Config, HelperError> {
        Err(HelperError::Message("no config in this test".into()))
    }

    #[tokio::test]
    async fn protocol_errors_before_any_call() {
        let version = run(Some("version"), b"", no_config).await.unwrap();
        assert!(version.starts_with("docker-credential-regkeep"));
        for (action, input, words) in [
            (Some("get"), &b""[..], "no server URL"),
            (Some("store"), &b"not json"[..], "store reads"),
            (
                Some("store"),
                &br#"{"ServerURL":"r.example.com","Username":"","Secret":"s"}"#[..],
                "no username",
            ),
            (Some("frobnicate"), &b""[..], "Unknown credential action"),
            (None, &b""[..], "Usage"),
        ] {
            let error = run(action, input, no_config).await.unwrap_err().to_string();
            assert!(error.contains(words), "{action:?}: {error}");
        }
    }
}
