//! `regkeep registry add|update|del|get|list`, with anchore-cli's arguments.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use regkeep_domain::wire::{RegistryConfiguration, RegistryConfigurationRequest};
use regkeep_domain::{RegistryName, RegistryType, Secret};
use reqwest::Method;

use super::client::{segment, Client};
use super::{output, read_stdin_secret, GlobalArgs};

#[derive(Subcommand, Debug)]
pub enum RegistryCommand {
    /// Register a registry's credentials (validated against the registry unless --skip-validate).
    ///
    /// Example: `regkeep registry add registry.example.com:5000 ci-bot --password-stdin < pass.txt`
    Add(RegistryWrite),
    /// Replace a registry's user, password, type, TLS verification and name.
    ///
    /// Example: `regkeep registry update registry.example.com:5000 ci-bot --password-stdin < new.txt`
    Update(RegistryWrite),
    /// Remove a registry and its stored password. Example: `regkeep registry del registry.example.com:5000`
    Del {
        /// The registry string, as registered.
        registry: String,
    },
    /// Show one registry. Example: `regkeep registry get registry.example.com:5000`
    Get {
        /// The registry string, as registered.
        registry: String,
    },
    /// List the account's registries (with each ECR entry's token expiry and last renewal error).
    List,
    /// Check a registry's stored credential now: log in to the registry with it (for ECR, with
    /// a live token, renewed once if the registry refuses it). Example: `regkeep registry check
    /// registry.example.com:5000`
    Check {
        /// The registry string, as registered.
        registry: String,
        /// Only make sure a credential can be had (for ECR: a live token), without contacting
        /// the registry.
        #[arg(long)]
        no_login: bool,
    },
}

#[derive(Args, Debug)]
pub struct RegistryWrite {
    /// `host[:port][/repository-path][*]`, e.g. `registry.example.com:5000`, `docker.io/myorg/*`,
    /// or `123456789012.dkr.ecr.us-east-1.amazonaws.com`.
    registry: String,
    /// The registry user; for ECR an AWS access key id, `awsauto`, or `_iam_role`.
    registry_user: String,
    /// The password (for ECR the secret access key, `awsauto`, or `ROLE_ARN[;EXTERNAL_ID]`).
    /// Prefer --password-stdin: arguments show in the process list and shell history.
    registry_pass: Option<String>,
    /// Read the password from standard input (first line) instead of an argument.
    #[arg(long)]
    password_stdin: bool,
    /// `docker_v2` or `awsecr`; guessed from the host when not given (with a warning).
    #[arg(long, value_name = "TYPE")]
    registry_type: Option<String>,
    /// Do not verify the registry's TLS certificate (and allow plain HTTP).
    #[arg(long)]
    insecure: bool,
    /// Store without contacting the registry.
    #[arg(long)]
    skip_validate: bool,
    /// A display name (default: the registry string).
    #[arg(long, value_name = "NAME")]
    registry_name: Option<String>,
}

pub async fn run(
    client: &Client,
    global: &GlobalArgs,
    command: RegistryCommand,
) -> anyhow::Result<ExitCode> {
    let answer = match command {
        RegistryCommand::Add(args) => {
            let (request, validate) = request(args)?;
            let path = format!("/registries?validate={validate}");
            client
                .call::<Vec<RegistryConfiguration>, _>(Method::POST, &path, Some(&request))
                .await?
        }
        RegistryCommand::Update(args) => {
            let (request, validate) = request(args)?;
            let path = format!(
                "/registries/{}?validate={validate}",
                segment(&request.registry)
            );
            client
                .call::<Vec<RegistryConfiguration>, _>(Method::PUT, &path, Some(&request))
                .await?
        }
        RegistryCommand::Del { registry } => {
            let path = format!("/registries/{}", segment(&registry));
            let answer = client
                .call::<serde_json::Value, ()>(Method::DELETE, &path, None)
                .await?;
            return output::deleted(answer, global.json, "registry", &registry);
        }
        RegistryCommand::Get { registry } => {
            let path = format!("/registries/{}", segment(&registry));
            client
                .call::<Vec<RegistryConfiguration>, ()>(Method::GET, &path, None)
                .await?
        }
        RegistryCommand::List => {
            client
                .call::<Vec<RegistryConfiguration>, ()>(Method::GET, "/registries", None)
                .await?
        }
        RegistryCommand::Check { registry, no_login } => {
            let path = format!(
                "/registries/{}/check{}",
                segment(&registry),
                if no_login { "?login=false" } else { "" }
            );
            let answer = client
                .call::<serde_json::Value, ()>(Method::POST, &path, None)
                .await?;
            return output::finish(answer, global.json, |report| {
                let name = report["registry"].as_str().unwrap_or(&registry);
                let until = report["token_usable_until"]
                    .as_str()
                    .map(|t| format!("; its token is usable until {t}"))
                    .unwrap_or_default();
                let how = if report["logged_in"] == true {
                    "the registry accepted the stored credential"
                } else {
                    "a credential can be had (the registry was not contacted)"
                };
                let renewed = if report["renewed_after_refusal"] == true {
                    " (the registry refused the token regkeep held; a new one was minted and accepted)"
                } else {
                    ""
                };
                output::line(&format!("{name}: {how}{until}{renewed}"))
            });
        }
    };
    output::finish(answer, global.json, |records| print(records))
}

fn request(args: RegistryWrite) -> anyhow::Result<(RegistryConfigurationRequest, bool)> {
    let pass = match (args.registry_pass, args.password_stdin) {
        (Some(_), true) => anyhow::bail!(
            "give the password either as an argument or with --password-stdin, not both"
        ),
        (Some(p), false) => Secret::new(p),
        (None, true) => read_stdin_secret("password")?,
        (None, false) => anyhow::bail!(
            "no password: give it as the third argument, or better, pipe it with --password-stdin"
        ),
    };
    if args.registry_type.is_none() {
        // Warn as anchore-cli does; an unparsable registry is left for the server to explain.
        if let Ok(name) = args.registry.parse::<RegistryName>() {
            let guessed = RegistryType::guess(&name);
            eprintln!(
                "regkeep: warning: no --registry-type given; guessed `{guessed}` from the host {} (use --registry-type to set it)",
                name.authority()
            );
        }
    }
    let request = RegistryConfigurationRequest {
        registry: args.registry,
        registry_user: args.registry_user,
        registry_pass: pass,
        registry_type: args.registry_type,
        registry_verify: Some(!args.insecure),
        registry_name: args.registry_name,
    };
    Ok((request, !args.skip_validate))
}

fn print(records: &[RegistryConfiguration]) -> anyhow::Result<()> {
    let rows = records
        .iter()
        .map(|r| {
            vec![
                r.registry.clone(),
                r.registry_name.clone(),
                r.registry_type.clone(),
                r.registry_user.clone(),
                r.registry_verify.to_string(),
                r.last_validated
                    .map_or_else(|| "never".to_owned(), |t| t.to_string()),
                r.token_expires_at
                    .map_or_else(|| "-".to_owned(), |t| t.to_string()),
                r.token_last_error.clone().unwrap_or_else(|| "-".to_owned()),
                r.created_at.to_string(),
                r.last_updated.to_string(),
            ]
        })
        .collect();
    output::table(
        &[
            "Registry",
            "Name",
            "Type",
            "User",
            "Verify TLS",
            "Last validated",
            "Token usable until",
            "Token error",
            "Created",
            "Updated",
        ],
        rows,
    )
}
