//! `regkeep`: the service (`regkeep serve`) and its command-line client.
//!
//! Exit codes: 0 success; 1 the server refused the request (4xx other than 401: bad input,
//! not found, conflict, validation failed); 2 the server was unreachable, authentication
//! failed (401), or something broke (5xx, start-up errors).

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
            ExitCode::from(cli::EXIT_FAILURE)
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
