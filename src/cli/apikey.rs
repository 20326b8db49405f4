//! `regkeep apikey create|list|revoke` (people manage keys with their password) and
//! `regkeep auth export` (a key with `credentials:read` writes a Kubernetes dockerconfigjson
//! Secret or a containers auth.json from the handout).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use clap::{Subcommand, ValueEnum};
use regkeep_domain::untrusted_text::for_terminal;
use regkeep_domain::wire::{ApiKey, ApiKeyCreationRequest, CredentialHandout, CredentialRequest};
use regkeep_domain::Timestamp;
use reqwest::Method;
use serde_json::json;

use super::client::{segment, Client};
use super::{output, GlobalArgs};

#[derive(Subcommand, Debug)]
pub enum ApikeyCommand {
    /// Make an API key for the account; it is shown once.
    ///
    /// Example: `regkeep apikey create --scope credentials:read --expires 90d --output node.key`
    Create {
        /// What the key may do, comma-separated: credentials:read (the credential handout:
        /// docker-credential-regkeep, the kubelet provider, `auth export`), registries:write
        /// (add, update, delete registries), read (every GET).
        #[arg(long, value_name = "SCOPE[,SCOPE]", required = true)]
        scope: String,
        /// Lifetime, e.g. 90d, 12h, 30m (default: the key does not expire).
        #[arg(long, value_name = "LIFETIME")]
        expires: Option<String>,
        /// What the key is for (shown in `apikey list`).
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
        /// Write the key to this file (created with mode 0600; refused if it exists) instead of
        /// printing it.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// List the account's keys (never a key itself).
    List,
    /// Revoke a key: refused from the next request on. Example: `regkeep apikey revoke 0123456789abcdef`
    Revoke {
        /// The key's id (`apikey list`).
        key_id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum AuthCommand {
    /// Write the credentials regkeep hands out for registries or images to a file format other
    /// tools read: a Kubernetes `kubernetes.io/dockerconfigjson` Secret or a containers
    /// `auth.json`. Uses an API key with credentials:read.
    ///
    /// Example: `regkeep auth export --format dockerconfigjson --registry 123456789012.dkr.ecr.us-east-1.amazonaws.com --api-key-file ci.key --output pull-secret.json`
    Export {
        /// What to write: a Kubernetes pull Secret or a containers auth.json.
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// A registry host to export (repeatable).
        #[arg(long = "registry", value_name = "HOST[:PORT]")]
        registries: Vec<String>,
        /// An image whose serving entry to export (repeatable): for repository-scoped entries.
        #[arg(long = "image", value_name = "IMAGE")]
        images: Vec<String>,
        /// The file holding the API key (scope credentials:read).
        #[arg(long, value_name = "FILE", env = "REGKEEP_API_KEY_FILE")]
        api_key_file: PathBuf,
        /// The Secret's name (dockerconfigjson).
        #[arg(long, default_value = "regkeep-pull-secret")]
        name: String,
        /// The Secret's namespace (dockerconfigjson; none: the one kubectl applies to).
        #[arg(long)]
        namespace: Option<String>,
        /// Write to this file (mode 0600; replaced if it exists) instead of standard output.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ExportFormat {
    /// A Kubernetes Secret of type kubernetes.io/dockerconfigjson (JSON; kubectl apply -f).
    Dockerconfigjson,
    /// A containers auth.json (podman, skopeo, buildah: --authfile).
    Authjson,
}

pub async fn run_apikey(
    client: &Client,
    global: &GlobalArgs,
    command: ApikeyCommand,
) -> anyhow::Result<ExitCode> {
    match command {
        ApikeyCommand::Create {
            scope,
            expires,
            description,
            output,
        } => {
            if let Some(path) = &output {
                if path.exists() {
                    anyhow::bail!(
                        "{} exists: give a new file for the key (it is written once, mode 0600)",
                        path.display()
                    );
                }
            }
            let request = ApiKeyCreationRequest {
                scopes: scope.split(',').map(|s| s.trim().to_owned()).collect(),
                description,
                expires_in: expires,
            };
            let answer = client
                .call::<ApiKey, _>(Method::POST, "/apikeys", Some(&request))
                .await?;
            let made = match answer {
                Ok(made) => made,
                Err(refusal) => return Ok(refusal.report()),
            };
            let key = made
                .key
                .as_ref()
                .context("the server answered without the key")?;
            match &output {
                Some(path) => {
                    write_private(path, &format!("{}\n", key.expose()), false)?;
                    if global.json {
                        output::json(&ApiKey { key: None, ..made })?;
                    } else {
                        output::line(&format!(
                            "Created API key {} ({}); the key is in {}",
                            made.key_id,
                            made.scopes.join(","),
                            path.display()
                        ))?;
                    }
                }
                None if global.json => output::json(&made)?,
                None => {
                    output::line(&format!(
                        "Created API key {} ({}). The key is shown once, now:",
                        made.key_id,
                        made.scopes.join(",")
                    ))?;
                    output::line(key.expose())?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ApikeyCommand::List => {
            let answer = client
                .call::<Vec<ApiKey>, ()>(Method::GET, "/apikeys", None)
                .await?;
            output::finish(answer, global.json, |keys| {
                if keys.is_empty() {
                    return output::line("No API keys: make one with `regkeep apikey create`");
                }
                output::table(
                    &[
                        "Key id",
                        "Scopes",
                        "State",
                        "Expires",
                        "Last used",
                        "Description",
                    ],
                    keys.iter()
                        .map(|k| {
                            vec![
                                k.key_id.clone(),
                                k.scopes.join(","),
                                k.state.clone(),
                                time_or(k.expires_at, "never"),
                                time_or(k.last_used_at, "never"),
                                k.description.clone(),
                            ]
                        })
                        .collect(),
                )
            })
        }
        ApikeyCommand::Revoke { key_id } => {
            let path = format!("/apikeys/{}", segment(&key_id));
            let answer = client
                .call::<ApiKey, ()>(Method::DELETE, &path, None)
                .await?;
            output::finish(answer, global.json, |k| {
                output::line(&format!("Revoked API key {}", k.key_id))
            })
        }
    }
}

fn time_or(time: Option<Timestamp>, none: &str) -> String {
    time.map_or_else(|| none.to_owned(), |t| t.to_string())
}

pub async fn run_auth(global: &GlobalArgs, command: AuthCommand) -> anyhow::Result<ExitCode> {
    let AuthCommand::Export {
        format,
        registries,
        images,
        api_key_file,
        name,
        namespace,
        output,
    } = command;
    if registries.is_empty() && images.is_empty() {
        anyhow::bail!("nothing to export: give --registry HOST or --image IMAGE (repeatable)");
    }
    let client = Client::with_api_key_file(global, &api_key_file)?;
    let wanted = registries
        .iter()
        .map(|r| CredentialRequest {
            image: None,
            registry: Some(r.clone()),
        })
        .chain(images.iter().map(|i| CredentialRequest {
            image: Some(i.clone()),
            registry: None,
        }));
    let mut handouts = Vec::new();
    for request in wanted {
        match client
            .call::<CredentialHandout, _>(Method::POST, "/credentials/resolve", Some(&request))
            .await?
        {
            Ok(handout) => handouts.push(handout),
            Err(refusal) => return Ok(refusal.report()),
        }
    }
    let text = render(format, &handouts, &name, namespace.as_deref())?;
    match &output {
        Some(path) => write_private(path, &text, true)?,
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(text.as_bytes())?;
            stdout.flush()?;
        }
    }
    // Expiry on stderr: the file formats have no place for it (the Secret carries it as an
    // annotation too).
    for h in &handouts {
        match h.expires_at {
            Some(at) => eprintln!(
                "{}: expires at {at}; export again before then",
                for_terminal(&h.registry)
            ),
            None => eprintln!(
                "{}: a stored password (no expiry)",
                for_terminal(&h.registry)
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The file for `handouts`: `auths` keyed by what each entry covers.
pub fn render(
    format: ExportFormat,
    handouts: &[CredentialHandout],
    name: &str,
    namespace: Option<&str>,
) -> anyhow::Result<String> {
    let mut auths = BTreeMap::new();
    for h in handouts {
        let key = h
            .registry
            .trim_end_matches('*')
            .trim_end_matches('/')
            .to_owned();
        let auth = BASE64.encode(format!("{}:{}", h.username, h.secret.expose()));
        auths.insert(key, json!({ "auth": auth }));
    }
    let config = json!({ "auths": auths });
    let value = match format {
        ExportFormat::Authjson => config,
        ExportFormat::Dockerconfigjson => {
            let earliest = handouts.iter().filter_map(|h| h.expires_at).min();
            let mut metadata = json!({ "name": name });
            if let Some(ns) = namespace {
                metadata["namespace"] = ns.into();
            }
            if let Some(at) = earliest {
                metadata["annotations"] = json!({ "regkeep.io/expires-at": at.to_string() });
            }
            json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "kubernetes.io/dockerconfigjson",
                "metadata": metadata,
                "data": { ".dockerconfigjson": BASE64.encode(config.to_string()) },
            })
        }
    };
    Ok(serde_json::to_string_pretty(&value)? + "\n")
}

/// Writes `text` to `path` readable by its owner only. `replace`: an existing file is replaced —
/// by a new file (0600, never following a link) renamed over it, so an old file's wider mode or
/// a link planted there is never written through.
fn write_private(path: &Path, text: &str, replace: bool) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let target = if replace {
        let name = path
            .file_name()
            .with_context(|| format!("{} names no file", path.display()))?;
        let mut temporary = name.to_os_string();
        temporary.push(format!(".regkeep-{}.tmp", std::process::id()));
        path.with_file_name(temporary)
    } else {
        path.to_owned()
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&target)
        .with_context(|| format!("cannot write {}", target.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", target.display()))?;
    if replace {
        std::fs::rename(&target, path).with_context(|| {
            let _ = std::fs::remove_file(&target);
            format!("cannot replace {}", path.display())
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use regkeep_domain::Secret;

    fn handout(registry: &str, expires: Option<i64>) -> CredentialHandout {
        CredentialHandout {
            registry: registry.into(),
            host: registry.split('/').next().unwrap().into(),
            scope: "host".into(),
            username: "AWS".into(),
            secret: Secret::new("tok"),
            expires_at: expires.map(Timestamp::from_unix),
            registry_type: "awsecr".into(),
        }
    }

    #[test]
    fn exports_in_the_formats_kubernetes_and_containers_read() {
        let handouts = [
            handout("a.example.com", Some(2_000_000_000)),
            handout("b.example.com/team/*", Some(1_900_000_000)),
        ];
        let auth: serde_json::Value =
            serde_json::from_str(&render(ExportFormat::Authjson, &handouts, "x", None).unwrap())
                .unwrap();
        assert_eq!(
            auth["auths"]["a.example.com"]["auth"],
            BASE64.encode("AWS:tok")
        );
        assert!(auth["auths"]["b.example.com/team"].is_object(), "{auth}");

        let secret: serde_json::Value = serde_json::from_str(
            &render(
                ExportFormat::Dockerconfigjson,
                &handouts,
                "pull",
                Some("ci"),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(secret["type"], "kubernetes.io/dockerconfigjson");
        assert_eq!(secret["metadata"]["namespace"], "ci");
        assert_eq!(
            secret["metadata"]["annotations"]["regkeep.io/expires-at"],
            Timestamp::from_unix(1_900_000_000).to_string()
        );
        let inner = BASE64
            .decode(secret["data"][".dockerconfigjson"].as_str().unwrap())
            .unwrap();
        let inner: serde_json::Value = serde_json::from_slice(&inner).unwrap();
        assert_eq!(inner, auth);
    }
}
