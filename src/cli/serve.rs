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
}

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let settings = Settings::load(args.config.as_deref())?;
    telemetry::init(settings.log_format, &settings.log_level);
    let app = Application::build(&settings)
        .await
        .context("regkeep cannot start")?;
    // A generated admin password is never printed: the log says which file (0600) holds it.
    app.run_until_stopped(shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}
