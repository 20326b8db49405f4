//! `docker-credential-regkeep`: the docker credential-helper protocol (`get`, `store`, `erase`,
//! `list`, `version`) as docker, podman, buildah, skopeo and containers/image call it, answered
//! from regkeep's credential handout. Started as `regkeep-credential-provider` (a link or copy
//! of the same binary), it is a kubelet image credential provider
//! (`credentialprovider.kubelet.k8s.io/v1`). No registry secret and no AWS identity on the
//! machine that pulls: only an API key, and one HTTP call to regkeep.
//!
//! Configured by `REGKEEP_URL` and `REGKEEP_API_KEY` / `REGKEEP_API_KEY_FILE`, or
//! `$XDG_CONFIG_HOME/regkeep/helper.yaml` ([`config`]).

mod client;
mod config;
mod docker;
mod error;
mod kubelet;

use std::io::Write as _;
use std::process::ExitCode;

use error::HelperError;

/// The name the kubelet provider is started as.
const PROVIDER_NAME: &str = "regkeep-credential-provider";

fn main() -> ExitCode {
    let mut args = std::env::args();
    let program = args.next().unwrap_or_default();
    let started_as = std::path::Path::new(&program)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let action = args.next();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(&HelperError::Message(format!("cannot start: {e}")), false),
    };
    let mut input = Vec::new();
    let kubelet = started_as.starts_with(PROVIDER_NAME);
    // Read before the runtime runs: a blocking read needs no thread (tokio's stdin would start
    // one, a measurable part of a call that should take milliseconds).
    if !matches!(action.as_deref(), Some("version" | "list")) || kubelet {
        if let Err(e) = read_input(&mut input) {
            return fail(&e, !kubelet);
        }
    }
    let outcome = runtime.block_on(async {
        let config = || config::Config::load();
        if kubelet {
            kubelet::run(&config()?, &input).await
        } else {
            docker::run(action.as_deref(), &input, config).await
        }
    });
    match outcome {
        Ok(output) => {
            let mut stdout = std::io::stdout().lock();
            if stdout.write_all(output.as_bytes()).is_err() || stdout.flush().is_err() {
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e, !kubelet),
    }
}

/// Reads stdin, at most 64 KiB (a server URL, a credential, a kubelet request).
fn read_input(into: &mut Vec<u8>) -> Result<(), HelperError> {
    use std::io::Read as _;
    const MAX_INPUT: u64 = 64 * 1024;
    std::io::stdin()
        .lock()
        .take(MAX_INPUT + 1)
        .read_to_end(into)
        .map_err(|e| HelperError::Message(format!("cannot read stdin: {e}")))?;
    if into.len() as u64 > MAX_INPUT {
        return Err(HelperError::Message(format!(
            "the input is larger than {MAX_INPUT} bytes: give a server URL, a credential or a kubelet request"
        )));
    }
    Ok(())
}

/// The docker protocol's consumers read the error from stdout (and match "credentials not found
/// in native keychain" exactly); a person running it by hand reads stderr: both get it.
fn fail(error: &HelperError, protocol: bool) -> ExitCode {
    let text = error.to_string();
    if protocol {
        println!("{text}");
    }
    if !matches!(error, HelperError::NotFound) || !protocol {
        let name = if protocol {
            "docker-credential-regkeep"
        } else {
            PROVIDER_NAME
        };
        eprintln!("{name}: {text}");
    }
    ExitCode::FAILURE
}
