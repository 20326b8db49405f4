//! Logging: `tracing` to stderr, as text or JSON, filtered by `log_level` (or `RUST_LOG`).
//! Spans are made with `skip_all`, and secrets are `Secret`s whose `Debug` is redacted, so no
//! secret reaches a log line.

use tracing_subscriber::EnvFilter;

use crate::settings::LogFormat;

/// Installs the global subscriber. A second call (tests) is ignored.
pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
