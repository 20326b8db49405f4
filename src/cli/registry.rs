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
    /// Change what you give of a registry (user, password, type, TLS verification, name);
    /// everything else stays as it is, the stored password included. Prints what changed.
    ///
    /// Examples: `regkeep registry update registry.example.com:5000 --registry-name lab`;
    /// `regkeep registry update registry.example.com:5000 ci-bot --password-stdin < new.txt`
    Update(RegistryUpdate),
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

#[derive(Args, Debug)]
pub struct RegistryUpdate {
    /// The registry string, as registered.
    registry: String,
    /// A new registry user (for ECR an AWS access key id, `awsauto` or `_iam_role`). Absent: the
    /// stored one.
    registry_user: Option<String>,
    /// A new password. Absent (and no --password-stdin): the stored one is kept. Prefer
    /// --password-stdin: arguments show in the process list and shell history.
    registry_pass: Option<String>,
    /// Read a new password from standard input (first line).
    #[arg(long)]
    password_stdin: bool,
    /// A new type: `docker_v2` or `awsecr`.
    #[arg(long, value_name = "TYPE")]
    registry_type: Option<String>,
    /// Stop verifying the registry's TLS certificate (and allow plain HTTP).
    #[arg(long, conflicts_with = "verify")]
    insecure: bool,
    /// Verify the registry's TLS certificate again.
    #[arg(long)]
    verify: bool,
    /// Store without contacting the registry (by default the registry is asked when the user,
    /// password, type or TLS verification change).
    #[arg(long)]
    skip_validate: bool,
    /// A new display name.
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
            // A type guessed as ECR is said once, in the answer (docker_v2, the usual guess,
            // goes without saying; an unparsable registry is left for the server to explain).
            let guessed_ecr = args.registry_type.is_none()
                && args
                    .registry
                    .parse::<RegistryName>()
                    .is_ok_and(|name| RegistryType::guess(&name) == RegistryType::AwsEcr);
            let (request, validate) = request(args)?;
            let path = format!("/registries?validate={validate}");
            let answer = client
                .call::<Vec<RegistryConfiguration>, _>(Method::POST, &path, Some(&request))
                .await?;
            return output::finish(answer, global.json, |records| {
                print(records)?;
                if guessed_ecr {
                    output::line("Type awsecr: guessed from the host (--registry-type sets it)")?;
                }
                Ok(())
            });
        }
        RegistryCommand::Update(args) => return update(client, global, args).await,
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

/// `registry update`: reads the record, sends it back with what was given changed (a body without
/// a password keeps the stored one), and says what changed.
async fn update(
    client: &Client,
    global: &GlobalArgs,
    args: RegistryUpdate,
) -> anyhow::Result<ExitCode> {
    let path = format!("/registries/{}", segment(&args.registry));
    let current = match client
        .call::<Vec<RegistryConfiguration>, ()>(Method::GET, &path, None)
        .await?
    {
        Ok(records) => records,
        Err(refusal) => return Ok(refusal.report()),
    };
    let Some(current) = current.into_iter().next() else {
        anyhow::bail!("the server answered no record for {}", args.registry);
    };
    let pass = match (args.registry_pass, args.password_stdin) {
        (Some(_), true) => anyhow::bail!(
            "give the password either as an argument or with --password-stdin, not both"
        ),
        (Some(p), false) => Some(Secret::new(p)),
        (None, true) => Some(read_stdin_secret("password")?),
        (None, false) => None,
    };
    let user = args
        .registry_user
        .unwrap_or_else(|| current.registry_user.clone());
    let registry_type = args
        .registry_type
        .unwrap_or_else(|| current.registry_type.clone());
    let verify = if args.insecure {
        false
    } else if args.verify {
        true
    } else {
        current.registry_verify
    };
    let name = args
        .registry_name
        .unwrap_or_else(|| current.registry_name.clone());
    let mut changes = Vec::new();
    let mut change = |what: &str, from: &str, to: &str| {
        if from != to {
            changes.push(format!("{what} {from} -> {to}"));
        }
    };
    change("user", &current.registry_user, &user);
    change("type", &current.registry_type, &registry_type);
    change(
        "TLS verification",
        &current.registry_verify.to_string(),
        &verify.to_string(),
    );
    change("name", &current.registry_name, &name);
    let credentials_changed = pass.is_some() || !changes.iter().all(|c| c.starts_with("name "));
    if pass.is_some() {
        changes.push("password replaced".into());
    }
    if changes.is_empty() {
        if !global.json {
            output::line(&format!(
                "registry {}: nothing to change (give a new user, password, --registry-type, --insecure/--verify or --registry-name)",
                current.registry
            ))?;
        }
        return output::finish(
            Ok::<_, super::client::Refusal>(vec![current]),
            global.json,
            |_| Ok(()),
        );
    }
    let request = RegistryConfigurationRequest {
        registry: current.registry.clone(),
        registry_user: user,
        // Empty: the server keeps the stored password.
        registry_pass: pass.unwrap_or_default(),
        registry_type: Some(registry_type),
        registry_verify: Some(verify),
        registry_name: Some(name),
    };
    let validate = credentials_changed && !args.skip_validate;
    let answer = client
        .call::<Vec<RegistryConfiguration>, _>(
            Method::PUT,
            &format!("{path}?validate={validate}"),
            Some(&request),
        )
        .await?;
    output::finish(answer, global.json, |records| {
        output::line(&format!(
            "registry {}: {}{}",
            current.registry,
            changes.join("; "),
            if validate {
                " (checked against the registry)"
            } else {
                ""
            }
        ))?;
        print(records)
    })
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
    if records.is_empty() {
        return output::line("No registries: add one with `regkeep registry add`");
    }
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
