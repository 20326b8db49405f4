//! `regkeep`: the service (`regkeep serve`) and its command-line client.
//!
//! Exit codes (README, `--help`): 0 success; 1 refused by regkeep; 2 a local problem, failed
//! authentication or an error of regkeep's own; 3 temporary (unreachable, timed out, throttled,
//! busy); 130 interrupted.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::run() {
        Ok(code) => code,
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            // The chain can hold what a server or registry answered.
            eprintln!(
                "regkeep: {}",
                regkeep_domain::untrusted_text::for_terminal(&format!("{err:#}"))
            );
            if err.chain().any(|c| c.is::<cli::Unreachable>()) {
                ExitCode::from(cli::EXIT_TEMPORARY)
            } else {
                ExitCode::from(cli::EXIT_FAILURE)
            }
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
