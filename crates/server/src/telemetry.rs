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
    // A panic is one log line like any other, with where it happened and never its text: a
    // panic message may quote the value it choked on (a request's input, even a secret).
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(
            location = %location,
            "a task panicked (a bug: please report it with this location)"
        );
    }));
}
