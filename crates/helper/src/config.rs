//! Where regkeep is and which API key to present: `REGKEEP_URL`, `REGKEEP_API_KEY` or
//! `REGKEEP_API_KEY_FILE`, `REGKEEP_CA_FILE`, over `$XDG_CONFIG_HOME/regkeep/helper.yaml`
//! (`~/.config/regkeep/helper.yaml`): `url`, `key_file`, `ca_file`, `erase_deletes`.

use std::path::{Path, PathBuf};

use figment::providers::{Format as _, Yaml};
use figment::Figment;
use regkeep_domain::Secret;
use serde::Deserialize;

use crate::error::HelperError;

/// The helper's configuration.
#[derive(Debug)]
pub struct Config {
    /// `https://…`, or `http://` to loopback only.
    pub url: String,
    pub key: Secret,
    pub ca_file: Option<PathBuf>,
    /// Whether `erase` (`docker logout`) removes the registry from regkeep.
    pub erase_deletes: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    url: Option<String>,
    key_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    #[serde(default)]
    erase_deletes: bool,
}

/// regkeep's URL must be HTTPS unless it is on this machine: the key (and, for `store`, a
/// registry password) goes with every request.
fn check_url(url: &str) -> Result<(), HelperError> {
    if url.starts_with("https://") {
        return Ok(());
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(HelperError::Message(format!(
            "REGKEEP_URL `{}` must start with https:// (or http:// on this machine)",
            url.chars().take(100).collect::<String>()
        )));
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    };
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err(HelperError::Message(format!(
            "REGKEEP_URL `{}` is plain HTTP to another machine: the API key would cross the network in clear; use https://",
            url.chars().take(100).collect::<String>()
        )))
    }
}

impl Config {
    /// # Errors
    /// A sentence naming what is missing or unreadable and how to give it.
    pub fn load() -> Result<Config, HelperError> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let file_path = env("REGKEEP_HELPER_CONFIG").map(PathBuf::from).or_else(|| {
            let base = env("XDG_CONFIG_HOME")
                .map(PathBuf::from)
                .or_else(|| env("HOME").map(|h| Path::new(&h).join(".config")))?;
            Some(base.join("regkeep").join("helper.yaml"))
        });
        let file = match &file_path {
            Some(path) if path.exists() => Figment::from(Yaml::file(path))
                .extract::<File>()
                .map_err(|e| {
                    HelperError::Message(format!(
                        "{} is not a valid helper configuration: {e}",
                        path.display()
                    ))
                })?,
            _ => File::default(),
        };
        let url = env("REGKEEP_URL").or(file.url).ok_or_else(|| {
            HelperError::Message(
                "regkeep's address is not configured: set REGKEEP_URL (e.g. https://regkeep.example.com:8228), or url in ~/.config/regkeep/helper.yaml".into(),
            )
        })?;
        let key = match (env("REGKEEP_API_KEY"), env("REGKEEP_API_KEY_FILE").map(PathBuf::from).or(file.key_file)) {
            (Some(key), _) => Secret::new(key.trim()),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    HelperError::Message(format!("cannot read the API key file {}: {e}", path.display()))
                })?;
                Secret::new(text.trim())
            }
            (None, None) => {
                return Err(HelperError::Message(
                    "no API key is configured: set REGKEEP_API_KEY_FILE (a file holding a key made with `regkeep apikey create --scope credentials:read`), REGKEEP_API_KEY, or key_file in ~/.config/regkeep/helper.yaml".into(),
                ))
            }
        };
        let url = url.trim().trim_end_matches('/').to_owned();
        check_url(&url)?;
        Ok(Config {
            url,
            key,
            ca_file: env("REGKEEP_CA_FILE").map(PathBuf::from).or(file.ca_file),
            erase_deletes: file.erase_deletes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::check_url;

    #[test]
    fn plain_http_only_to_this_machine() {
        for ok in [
            "https://regkeep.example.com:8228",
            "http://127.0.0.1:8228",
            "http://localhost:8228",
            "http://[::1]:8228",
            "http://127.0.0.1",
        ] {
            assert!(check_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://regkeep.example.com:8228",
            "http://10.0.0.5:8228",
            "ftp://x",
            "regkeep.example.com",
            "http://127.0.0.1.evil.example:80",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }
}
