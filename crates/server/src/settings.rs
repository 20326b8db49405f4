//! Configuration: built-in defaults, then one YAML file (`--config` / `REGKEEP_CONFIG`), then
//! `REGKEEP_*` environment variables (upper case; `__` for nesting, e.g.
//! `REGKEEP_REGISTRY__CONNECT_TIMEOUT_SECS`). Defaults make `regkeep serve` work with no file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Yaml};
use figment::Figment;
use regkeep_domain::outbound::IpNetwork;
use regkeep_domain::Secret;
use serde::{Deserialize, Deserializer, Serialize};

/// The top-level keys, which are also the only `REGKEEP_*` variables read as configuration (so
/// the CLI's `REGKEEP_URL`/`REGKEEP_USER`/`REGKEEP_PASS` and `REGKEEP_CONFIG` never collide).
const KEYS: [&str; 26] = [
    "listen",
    "data_dir",
    "database_url",
    "default_admin_password",
    "secret_key_file",
    "secret_key",
    "allow_awsecr_iam_auto",
    "log_format",
    "log_level",
    "registry",
    "tls",
    "auth_cache_seconds",
    "registry_cache_seconds",
    "max_body_bytes",
    "watch",
    "outbound",
    "trusted_proxies",
    "throttle",
    "server",
    "quotas",
    "server_tls",
    "account_purge_seconds",
    "handout",
    "metrics_listen",
    "registries_file",
    "min_password_length",
];

/// Everything `regkeep serve` can be told.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Where the SQLite database, the key file and the generated admin password live.
    pub data_dir: PathBuf,
    /// `sqlite://PATH` or `postgres://...`; empty means the SQLite file in `data_dir`.
    #[serde(default)]
    pub database_url: Option<String>,
    /// The admin user's password at first start; generated (and kept in `data_dir`) when absent.
    #[serde(default, skip_serializing)]
    pub default_admin_password: Option<Secret>,
    /// The sealing key file; created (0600) in `data_dir` on first start when absent.
    #[serde(default)]
    pub secret_key_file: Option<PathBuf>,
    /// The sealing key itself (base64 of 32 bytes), instead of a file.
    #[serde(default, skip_serializing)]
    pub secret_key: Option<Secret>,
    /// Whether `awsecr` registries may use the host's own AWS identity (Anchore's setting).
    pub allow_awsecr_iam_auto: bool,
    /// `text` or `json`.
    pub log_format: LogFormat,
    /// A tracing filter, e.g. `info` or `regkeep=debug,info`.
    pub log_level: String,
    pub registry: RegistrySettings,
    pub tls: TlsConfig,
    /// How long a verified HTTP Basic credential is remembered (Argon2id is slow by design).
    pub auth_cache_seconds: u64,
    /// How long a read registry record is reused. Writes through this process take effect at
    /// once; with several replicas on one PostgreSQL, others' writes show within this time.
    pub registry_cache_seconds: u64,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Tag watching.
    pub watch: WatchConfig,
    /// Where regkeep may connect for its users, and how much it reads (docs/design.md §3.7).
    pub outbound: OutboundConfig,
    /// Proxies (CIDR list) whose `X-Forwarded-For` names the client, for login throttling.
    #[serde(deserialize_with = "networks")]
    pub trusted_proxies: Vec<IpNetwork>,
    /// Throttling of failed password logins.
    pub throttle: ThrottleConfig,
    /// Bounds on inbound connections.
    pub server: ServerConfig,
    /// What one account may hold (0: no limit).
    pub quotas: QuotaConfig,
    /// TLS on the listener (both files, or neither: plain HTTP).
    pub server_tls: ServerTlsConfig,
    /// How often accounts deleted by an admin (state `deleting`) are removed with their users,
    /// registries and records; also once at start.
    pub account_purge_seconds: u64,
    /// The credential handout (`POST /v1/credentials/resolve`).
    pub handout: HandoutConfig,
    /// Where Prometheus scrapes `/metrics` (no authentication: the series name every account's
    /// registries, so keep it on an address only the monitoring can reach). Off when absent.
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
    /// A YAML file of registries declared per account (crate::registries_file), applied at start,
    /// when it changes and on SIGHUP. Absent: no registry is declared (those a file declared
    /// before become ordinary ones).
    #[serde(default)]
    pub registries_file: Option<PathBuf>,
    /// Fewest characters of a user password set through the API or the CLI (default 8, as NIST
    /// SP 800-63B asks; never applied to registry passwords). 0: no minimum.
    #[serde(default = "default_min_password_length")]
    pub min_password_length: usize,
}

fn default_min_password_length() -> usize {
    8
}

/// What the credential handout gives out: ECR tokens always; stored docker_v2 passwords only
/// when `static_passwords` is on (a long-lived password is a different risk than a 12-hour
/// token).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HandoutConfig {
    pub static_passwords: bool,
    /// Whether ECR tokens minted from this server's own AWS identity (`awsauto`, `_iam_role`
    /// registries) are handed out: they carry the host role's rights.
    pub host_identity_tokens: bool,
}

/// The listener's certificate chain and key, PEM; reloaded when they change or on SIGHUP.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerTlsConfig {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

/// Per-account limits, so one tenant cannot fill the disk for all (0: no limit).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuotaConfig {
    pub registries_per_account: u64,
    pub subscriptions_per_account: u64,
    pub images_per_account: u64,
    pub users_per_account: u64,
    /// Revoked keys included (they stay listed).
    pub api_keys_per_account: u64,
}

impl Default for QuotaConfig {
    fn default() -> Self {
        let q = regkeep_engine::Quotas::default();
        QuotaConfig {
            registries_per_account: q.registries,
            subscriptions_per_account: q.subscriptions,
            images_per_account: q.images,
            users_per_account: q.users,
            api_keys_per_account: q.api_keys,
        }
    }
}

/// What anyone who reaches the port can make regkeep hold. The defaults fit the common 1024
/// file-descriptor limit with room for the database and outbound connections.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Connections open at once; at the limit the oldest one not serving a request is closed.
    pub max_connections: usize,
    /// A request head must arrive within this after the connection opens or its previous
    /// response (also how long an idle keep-alive connection is kept).
    pub header_timeout_secs: u64,
    /// A request body must arrive whole within this.
    pub body_timeout_secs: u64,
    /// A connection on which no byte moves for this long is closed.
    pub idle_timeout_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_connections: 512,
            header_timeout_secs: 10,
            body_timeout_secs: 30,
            idle_timeout_secs: 60,
        }
    }
}

/// Failed logins allowed per client address and per user name: a burst, then one per period.
/// Past that, logins that are not already verified get 429 with `Retry-After`; an address that
/// logged in as a user before is not held back by that user's throttle.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThrottleConfig {
    pub address_burst: u32,
    pub address_period_secs: u64,
    pub user_burst: u32,
    pub user_period_secs: u64,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        let limits = regkeep_engine::LoginLimits::default();
        ThrottleConfig {
            address_burst: limits.address_burst,
            address_period_secs: limits.address_period.as_secs(),
            user_burst: limits.user_burst,
            user_period_secs: limits.user_period.as_secs(),
        }
    }
}

impl ThrottleConfig {
    pub fn limits(&self) -> regkeep_engine::LoginLimits {
        regkeep_engine::LoginLimits {
            address_burst: self.address_burst.max(1),
            address_period: std::time::Duration::from_secs(self.address_period_secs.max(1)),
            user_burst: self.user_burst.max(1),
            user_period: std::time::Duration::from_secs(self.user_period_secs.max(1)),
        }
    }
}

/// The outbound policy's settings and the bounds on what registries may make regkeep hold.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundConfig {
    /// Whether registries on loopback (and on regkeep's own address) may be used. Off: a user
    /// cannot make regkeep read services of the machine it runs on.
    pub allow_loopback: bool,
    /// Networks never connected to (CIDR list, or one string with commas).
    #[serde(deserialize_with = "networks")]
    pub denied_networks: Vec<IpNetwork>,
    /// Networks always allowed, over `denied_networks`, loopback and the private-range rules (never
    /// over the always-refused addresses: link-local, metadata, multicast...).
    #[serde(deserialize_with = "networks")]
    pub allowed_networks: Vec<IpNetwork>,
    /// Largest manifest read.
    pub max_manifest_bytes: usize,
    /// Largest image config read.
    pub max_config_bytes: usize,
    /// Image resolutions running at once, server-wide (each may hold a manifest and a config).
    pub max_concurrent_resolutions: usize,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        let defaults = regkeep_registry::Outbound::default();
        OutboundConfig {
            allow_loopback: defaults.policy.allow_loopback,
            denied_networks: Vec::new(),
            allowed_networks: Vec::new(),
            max_manifest_bytes: defaults.max_manifest_bytes,
            max_config_bytes: defaults.max_config_bytes,
            max_concurrent_resolutions: defaults.max_concurrent_resolutions,
        }
    }
}

/// A CIDR list from YAML (`[10.0.0.0/8, fd00::/8]`) or from one environment variable
/// (`10.0.0.0/8,fd00::/8`).
fn networks<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<IpNetwork>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Networks {
        One(String),
        Many(Vec<String>),
    }
    let items = match Networks::deserialize(deserializer)? {
        Networks::One(s) => s
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        Networks::Many(v) => v,
    };
    items
        .iter()
        .map(|s| s.parse().map_err(serde::de::Error::custom))
        .collect()
}

/// How watched tags are polled.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WatchConfig {
    /// Seconds between two polls of one watched tag.
    pub interval_seconds: u64,
    /// Polls in flight at once.
    pub concurrency: usize,
    /// Requests per second the poller sends to one registry (0: no limit).
    pub registry_requests_per_second: u32,
    /// Days events are kept (0: forever).
    pub event_retention_days: u64,
}

/// Timeouts for talking to registries.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrySettings {
    pub connect_timeout_secs: u64,
    pub request_timeout_secs: u64,
}

/// Extra trust for registries with private CAs.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// A PEM bundle of CA certificates trusted for every registry and for AWS (ECR, STS, the
    /// credential sources), besides the built-in and platform roots.
    #[serde(default)]
    pub ca_bundle: Option<PathBuf>,
    /// A folder of per-registry CAs: `<certs_dir>/<host[:port]>/*.crt`. Default `data_dir/certs.d`.
    #[serde(default)]
    pub certs_dir: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// A configuration problem, with where it came from.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct SettingsError(String);

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8228)),
            data_dir: default_data_dir(),
            database_url: None,
            default_admin_password: None,
            secret_key_file: None,
            secret_key: None,
            allow_awsecr_iam_auto: false,
            log_format: LogFormat::Text,
            log_level: "info".into(),
            registry: RegistrySettings {
                connect_timeout_secs: 10,
                request_timeout_secs: 30,
            },
            tls: TlsConfig::default(),
            auth_cache_seconds: 30,
            registry_cache_seconds: 5,
            max_body_bytes: 64 * 1024,
            watch: WatchConfig {
                interval_seconds: 300,
                concurrency: 8,
                registry_requests_per_second: 10,
                event_retention_days: 30,
            },
            outbound: OutboundConfig::default(),
            trusted_proxies: Vec::new(),
            throttle: ThrottleConfig::default(),
            server: ServerConfig::default(),
            quotas: QuotaConfig::default(),
            server_tls: ServerTlsConfig::default(),
            account_purge_seconds: 30,
            handout: HandoutConfig::default(),
            metrics_listen: None,
            registries_file: None,
            min_password_length: default_min_password_length(),
        }
    }
}

impl Settings {
    /// Loads defaults, then `file` (when given), then the environment.
    ///
    /// # Errors
    /// [`SettingsError`] naming the key or file that is wrong.
    pub fn load(file: Option<&Path>) -> Result<Settings, SettingsError> {
        Self::load_from(file, Env::prefixed("REGKEEP_"))
    }

    /// As [`Settings::load`], with the environment provider given (tests pass their own).
    ///
    /// # Errors
    /// [`SettingsError`].
    pub fn load_from(file: Option<&Path>, env: Env) -> Result<Settings, SettingsError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(SettingsError(format!(
                    "config file {} does not exist: check --config / REGKEEP_CONFIG",
                    path.display()
                )));
            }
            figment = figment.merge(Yaml::file(path));
        }
        let env = env.split("__").filter(|key| {
            // Keys keep the variable's case (`LISTEN`): compare without it.
            let top = key.as_str().split('.').next().unwrap_or_default();
            KEYS.iter().any(|k| k.eq_ignore_ascii_case(top))
        });
        figment = figment.merge(env);
        let mut settings: Settings = figment
            .extract()
            .map_err(|e| SettingsError(e.to_string()))?;
        if settings.database_url.as_deref().is_some_and(str::is_empty) {
            settings.database_url = None;
        }
        if settings
            .default_admin_password
            .as_ref()
            .is_some_and(Secret::is_empty)
        {
            settings.default_admin_password = None;
        }
        if settings.secret_key.as_ref().is_some_and(Secret::is_empty) {
            settings.secret_key = None;
        }
        Ok(settings)
    }

    /// The database URL in effect.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("regkeep.db").display()),
        }
    }

    /// The key file in effect.
    pub fn secret_key_file(&self) -> PathBuf {
        self.secret_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("secret.key"))
    }

    /// Where a generated admin password is kept.
    pub fn admin_password_file(&self) -> PathBuf {
        self.data_dir.join("admin_password")
    }

    /// The per-registry CA folder in effect.
    pub fn certs_dir(&self) -> PathBuf {
        self.tls
            .certs_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("certs.d"))
    }
}

/// `$XDG_DATA_HOME/regkeep`, else `~/.local/share/regkeep`, else `./regkeep-data`.
fn default_data_dir() -> PathBuf {
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("regkeep");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(home).join(".local/share/regkeep");
    }
    PathBuf::from("regkeep-data")
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error
mod tests {
    use super::*;

    #[test]
    fn file_then_environment() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "c.yaml",
                "listen: 127.0.0.1:9000\nallow_awsecr_iam_auto: true\nregistry:\n  connect_timeout_secs: 3\n  request_timeout_secs: 7\n",
            )?;
            jail.set_env("REGKEEP_LISTEN", "127.0.0.1:9100");
            jail.set_env("REGKEEP_REGISTRY__REQUEST_TIMEOUT_SECS", "9");
            jail.set_env("REGKEEP_URL", "http://ignored");
            jail.set_env("REGKEEP_CONFIG", "ignored");
            let s = Settings::load(Some(Path::new("c.yaml"))).map_err(|e| e.to_string())?;
            assert_eq!(s.listen.port(), 9100);
            assert!(s.allow_awsecr_iam_auto);
            assert_eq!(s.registry.connect_timeout_secs, 3);
            assert_eq!(s.registry.request_timeout_secs, 9);
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("c.yaml", "lisen: 127.0.0.1:9000\n")?;
            let err = Settings::load(Some(Path::new("c.yaml")))
                .unwrap_err()
                .to_string();
            assert!(err.contains("lisen"), "{err}");
            jail.create_file("d.yaml", "allow_awsecr_iam_auto: maybe\n")?;
            assert!(Settings::load(Some(Path::new("d.yaml"))).is_err());
            assert!(Settings::load(Some(Path::new("missing.yaml")))
                .unwrap_err()
                .to_string()
                .contains("does not exist"));
            Ok(())
        });
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("REGKEEP_DEFAULT_ADMIN_PASSWORD", "settings-secret-1");
            jail.set_env("REGKEEP_SECRET_KEY", "c2V0dGluZ3Mtc2VjcmV0LTI=");
            let s = Settings::load(None).map_err(|e| e.to_string())?;
            assert_eq!(
                s.default_admin_password.as_ref().map(Secret::expose),
                Some("settings-secret-1")
            );
            let shown = format!("{s:?}");
            assert!(
                !shown.contains("settings-secret-1") && !shown.contains("c2V0dGluZ3Mtc2VjcmV0LTI="),
                "{shown}"
            );
            Ok(())
        });
    }

    #[test]
    fn defaults_need_no_file() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("XDG_DATA_HOME", "/tmp/xdg");
            let s = Settings::load(None).map_err(|e| e.to_string())?;
            assert_eq!(s.listen.to_string(), "127.0.0.1:8228");
            assert_eq!(s.data_dir, PathBuf::from("/tmp/xdg/regkeep"));
            assert_eq!(s.database_url(), "sqlite:///tmp/xdg/regkeep/regkeep.db");
            assert!(!s.allow_awsecr_iam_auto);
            assert!(!s.outbound.allow_loopback);
            assert_eq!(s.outbound.max_config_bytes, 8 * 1024 * 1024);
            assert_eq!(s.outbound.max_manifest_bytes, 4 * 1024 * 1024);
            assert_eq!(s.outbound.max_concurrent_resolutions, 16);
            Ok(())
        });
    }

    #[test]
    fn outbound_networks_from_file_and_environment() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "c.yaml",
                "outbound:\n  denied_networks: [10.0.0.0/8, 'fd00::/8']\n  allow_loopback: true\n",
            )?;
            let s = Settings::load(Some(Path::new("c.yaml"))).map_err(|e| e.to_string())?;
            assert!(s.outbound.allow_loopback);
            assert_eq!(s.outbound.denied_networks.len(), 2);
            jail.set_env(
                "REGKEEP_OUTBOUND__ALLOWED_NETWORKS",
                "10.1.0.0/16, 192.168.5.0/24",
            );
            jail.set_env("REGKEEP_OUTBOUND__ALLOW_LOOPBACK", "false");
            let s = Settings::load(Some(Path::new("c.yaml"))).map_err(|e| e.to_string())?;
            assert!(!s.outbound.allow_loopback);
            assert_eq!(
                s.outbound
                    .allowed_networks
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>(),
                ["10.1.0.0/16", "192.168.5.0/24"]
            );
            jail.set_env("REGKEEP_OUTBOUND__DENIED_NETWORKS", "10.0.0.0/33");
            let err = Settings::load(None).unwrap_err().to_string();
            assert!(err.contains("10.0.0.0/33") && err.contains("CIDR"), "{err}");
            Ok(())
        });
    }
}
