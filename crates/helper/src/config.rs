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
        Ok(Config {
            url: url.trim().trim_end_matches('/').to_owned(),
            key,
            ca_file: env("REGKEEP_CA_FILE").map(PathBuf::from).or(file.ca_file),
            erase_deletes: file.erase_deletes,
        })
    }
}
