//! `regkeep serve`: load the configuration, start, serve until SIGINT/SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use regkeep_server::settings::Settings;
use regkeep_server::{shutdown_signal, telemetry, Application};

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// A YAML configuration file (every key can also be set as a REGKEEP_* variable).
    /// Example: `regkeep serve --config /etc/regkeep/config.yaml`
    #[arg(long, env = "REGKEEP_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// The address to serve on, over the configuration's `listen` (and REGKEEP_LISTEN).
    /// Example: `regkeep serve --listen 0.0.0.0:8228`
    #[arg(long, value_name = "ADDRESS")]
    listen: Option<std::net::SocketAddr>,
}

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let mut settings = Settings::load(args.config.as_deref())?;
    if let Some(listen) = args.listen {
        settings.listen = listen;
    }
    telemetry::init(settings.log_format, &settings.log_level);
    let app = Application::build(&settings)
        .await
        .context("regkeep cannot start")?;
    // A generated admin password is never printed: the log says which file (0600) holds it.
    app.run_until_stopped(shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}
