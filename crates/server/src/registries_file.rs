//! `registries_file`: registries declared in a YAML file, GitOps style (docs/design.md §3.10).
//! Applied in the background at start, when the file changes (checked every few seconds) and on
//! SIGHUP; the engine makes the declared registries what the file says. Secrets are never written
//! in the file: each entry names an environment variable or a file that holds its password, or
//! uses the host's AWS identity (`user: awsauto`).
//!
//! ```yaml
//! registries:
//!   - account: team-a
//!     registry: registry.example.com:5000
//!     user: robot
//!     password_env: TEAM_A_REGISTRY_PASS      # or password_file: /run/secrets/team-a
//!     type: docker_v2                         # optional: guessed from the host
//!     verify: true                            # optional: TLS verification (default true)
//!     name: lab                               # optional: display name
//!     validate: true                          # optional: check before storing (default true)
//!   - account: team-a
//!     registry: 123456789012.dkr.ecr.us-east-1.amazonaws.com
//!     user: awsauto                           # the host's AWS identity (allow_awsecr_iam_auto)
//! ```
//!
//! A file that cannot be read or parsed as a whole changes nothing (the declared registries stay
//! as they are) and is logged; an entry that is wrong is logged and kept on its record, and the
//! others are applied.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use regkeep_domain::wire::RegistryConfigurationRequest;
use regkeep_domain::Secret;
use regkeep_engine::registries::{DeclaredEntry, ReconcileReport};
use regkeep_engine::Engine;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

/// How often the file is looked at for a change.
const WATCH_EVERY: Duration = Duration::from_secs(3);
/// Largest registries file read (a few thousand entries).
const MAX_FILE_BYTES: u64 = 4 << 20;
/// Largest password file read.
const MAX_SECRET_BYTES: u64 = 64 << 10;

/// The file, and the engine that applies it.
pub struct RegistriesFile {
    path: PathBuf,
    engine: Engine,
}

/// The file's shape: entries are read one by one, so one wrong entry never hides the others.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileShape {
    #[serde(default)]
    registries: Vec<serde_json::Value>,
}

/// One entry, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    /// Required; read from the raw entry (so an entry that does not parse still names it).
    #[serde(rename = "account")]
    _account: String,
    registry: String,
    user: String,
    #[serde(default)]
    password_env: Option<String>,
    #[serde(default)]
    password_file: Option<PathBuf>,
    /// Only to refuse it with a message that says why.
    #[serde(default)]
    password: Option<serde_json::Value>,
    #[serde(default, rename = "type")]
    registry_type: Option<String>,
    #[serde(default)]
    verify: Option<bool>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    validate: Option<bool>,
}

impl RegistriesFile {
    pub fn new(path: PathBuf, engine: Engine) -> Self {
        RegistriesFile { path, engine }
    }

    /// Reads the file and applies it. `None` when the file could not be read or parsed (logged;
    /// nothing changed) or the database failed.
    pub async fn apply(&self, why: &str) -> Option<ReconcileReport> {
        // Records and answers name the file, not where it is on the server (every user of an
        // account reads `declared_in`); the log has the path.
        let file = self.path.file_name().map_or_else(
            || self.path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let entries = match read_entries(&self.path) {
            Ok(entries) => entries,
            Err(problem) => {
                error!(path = %self.path.display(), why, error = %problem, "the registries file was not applied: the declared registries stay as they were");
                return None;
            }
        };
        match self.engine.apply_declared_registries(&file, entries).await {
            Ok(report) => {
                if report.skipped {
                    info!(
                        file,
                        why,
                        "another replica is applying the registries file; trying again shortly"
                    );
                }
                Some(report)
            }
            Err(e) => {
                error!(file, why, error = %e, "the registries file could not be applied");
                None
            }
        }
    }

    /// Applies the file now, then again on SIGHUP and whenever it changes, until `cancel`. An
    /// application that could not finish (another replica held the lease, the database failed) is
    /// tried again at the next look.
    pub async fn watch_until_stopped(self: Arc<Self>, cancel: CancellationToken) {
        use crate::reload::stamp;
        let mut seen = stamp(&self.path);
        let mut pending = self.apply("start").await.is_none_or(|r| r.skipped);
        let mut hangups = crate::reload::Hangups::new();
        loop {
            let why = tokio::select! {
                () = cancel.cancelled() => return,
                () = hangups.next() => "SIGHUP",
                () = tokio::time::sleep(WATCH_EVERY) => {
                    let now = stamp(&self.path);
                    if now != seen {
                        seen = now;
                        "the file changed"
                    } else if pending {
                        "an earlier application did not finish"
                    } else {
                        continue;
                    }
                }
            };
            pending = self.apply(why).await.is_none_or(|r| r.skipped);
        }
    }
}

/// The file's entries, each with its secret read (or why it cannot be).
fn read_entries(path: &Path) -> Result<Vec<DeclaredEntry>, String> {
    let text = read_bounded(path, MAX_FILE_BYTES)?;
    refuse_aliases(&text)?;
    use figment::providers::Format as _;
    let shape: FileShape = figment::Figment::from(figment::providers::Yaml::string(&text))
        .extract()
        .map_err(|e| format!("it is not a registries file: {e}"))?;
    Ok(shape
        .registries
        .into_iter()
        .enumerate()
        .map(|(i, v)| entry(i, v))
        .collect())
}

fn entry(index: usize, value: serde_json::Value) -> DeclaredEntry {
    let field = |name: &str| {
        value
            .get(name)
            .and_then(serde_json::Value::as_str)
            .map_or_else(|| format!("(entry {})", index + 1), str::to_owned)
    };
    let (account, registry) = (field("account"), field("registry"));
    let request = serde_json::from_value::<Entry>(value)
        .map_err(|e| format!("entry {}: {e}", index + 1))
        .and_then(|entry| {
            let validate = entry.validate.unwrap_or(true);
            request(entry).map(|r| (r, validate))
        });
    match request {
        Ok((request, validate)) => DeclaredEntry {
            account,
            registry,
            request: Ok(request),
            validate,
        },
        Err(why) => DeclaredEntry {
            account,
            registry,
            request: Err(why),
            validate: true,
        },
    }
}

/// The registry request an entry amounts to, its secret read from where it says.
fn request(entry: Entry) -> Result<RegistryConfigurationRequest, String> {
    if entry.password.is_some() {
        return Err("`password` is not read: secrets are never written in the registries file; name an environment variable (password_env) or a file (password_file)".into());
    }
    let pass = match (&entry.password_env, &entry.password_file) {
        (Some(_), Some(_)) => {
            return Err("give one of password_env and password_file, not both".into())
        }
        // Neither the variable's name nor the file's path is repeated: the error is shown to
        // every user of the account, and a name written by mistake may be the secret itself.
        (Some(variable), None) => match std::env::var(variable) {
            Ok(value) if !value.is_empty() => Secret::new(value),
            _ => {
                return Err(
                    "password_env: that variable is not set (or is empty) in regkeep's environment"
                        .into(),
                )
            }
        },
        (None, Some(file)) => {
            let text = read_bounded(file, MAX_SECRET_BYTES).map_err(|e| {
                let why = e.rsplit(": ").next().unwrap_or("cannot be read").to_owned();
                format!("password_file: that file cannot be used ({why})")
            })?;
            // One trailing newline is the file's, not the password's.
            let text = text
                .strip_suffix("\r\n")
                .or_else(|| text.strip_suffix('\n'))
                .unwrap_or(&text);
            Secret::new(text)
        }
        (None, None) if entry.user == "awsauto" => Secret::new("awsauto"),
        (None, None) => {
            return Err("no password: name an environment variable (password_env) or a file (password_file) that holds it, or use `user: awsauto` for ECR with the host's AWS identity".into())
        }
    };
    Ok(RegistryConfigurationRequest {
        registry: entry.registry,
        registry_user: entry.user,
        registry_pass: pass,
        registry_type: entry.registry_type,
        registry_verify: entry.verify,
        registry_name: entry.name,
    })
}

/// Refuses YAML aliases (`*name`): the YAML reader expands every alias before regkeep sees the
/// document, and a few kilobytes of nested aliases expand to gigabytes (a "billion laughs" file).
/// A registries file has no use for them. The scan is of the text, outside quoted scalars and
/// comments: an alias is a `*` where a value starts, followed by a name.
fn refuse_aliases(text: &str) -> Result<(), String> {
    for (number, line) in text.lines().enumerate() {
        let mut quote: Option<char> = None;
        let mut previous = ' ';
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None if c == '"' || c == '\'' => quote = Some(c),
                None if c == '#' && previous.is_whitespace() => break,
                None if c == '*'
                    && matches!(previous, ' ' | '\t' | '[' | '{' | ',' | ':' | '-')
                    && chars
                        .peek()
                        .is_some_and(|n| n.is_alphanumeric() || *n == '_' || *n == '-') =>
                {
                    return Err(format!(
                        "line {}: YAML aliases (`*name`) are not accepted in a registries file: write each entry out",
                        number + 1
                    ));
                }
                None => {}
            }
            previous = c;
        }
    }
    Ok(())
}

/// A regular file's text, refused past `max` bytes (read through a limit: `/dev/zero` or a
/// `/proc` file reports no size worth trusting; a FIFO would block).
fn read_bounded(path: &Path, max: u64) -> Result<String, String> {
    use std::io::Read as _;
    let shown = path.display();
    let file = std::fs::File::open(path).map_err(|e| format!("{shown} cannot be read: {e}"))?;
    let metadata = file
        .metadata()
        .map_err(|e| format!("{shown} cannot be read: {e}"))?;
    if !metadata.is_file() {
        return Err(format!("{shown} is not a regular file"));
    }
    let mut text = String::new();
    file.take(max + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("{shown} cannot be read as text: {e}"))?;
    if text.len() as u64 > max {
        return Err(format!("{shown} is larger than {max} bytes"));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(yaml: &str) -> Result<Vec<DeclaredEntry>, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registries.yaml");
        std::fs::write(&path, yaml).unwrap();
        read_entries(&path)
    }

    #[test]
    fn secrets_come_from_the_environment_a_file_or_awsauto_never_the_file_itself() {
        let dir = tempfile::tempdir().unwrap();
        let secret_file = dir.path().join("pass");
        std::fs::write(&secret_file, "from-a-file\n").unwrap();
        // This test's own variable; no other test reads it.
        std::env::set_var("REGKEEP_TEST_DECLARED_PASS", "from-the-env");
        let yaml = format!(
            "registries:\n\
             - {{account: a, registry: r1.example.com, user: u, password_env: REGKEEP_TEST_DECLARED_PASS}}\n\
             - {{account: a, registry: r2.example.com, user: u, password_file: {}}}\n\
             - {{account: a, registry: 123456789012.dkr.ecr.us-east-1.amazonaws.com, user: awsauto}}\n\
             - {{account: a, registry: r3.example.com, user: u, password: written-here}}\n\
             - {{account: a, registry: r4.example.com, user: u}}\n\
             - {{account: a, registry: r5.example.com, user: u, password_env: REGKEEP_TEST_UNSET_VARIABLE}}\n\
             - {{account: a, registry: r6.example.com, user: u, password_env: X, password_file: /x}}\n\
             - {{account: a, registry: r7.example.com, user: u, password_env: X, colour: blue}}\n\
             - {{account: a, registry: r8.example.com, user: u, password_file: /nonexistent/pass, verify: false, validate: false}}\n",
            secret_file.display()
        );
        let read = entries(&yaml).unwrap();
        let pass = |i: usize| {
            read[i]
                .request
                .as_ref()
                .unwrap()
                .registry_pass
                .expose()
                .to_owned()
        };
        assert_eq!(pass(0), "from-the-env");
        assert_eq!(pass(1), "from-a-file", "one trailing newline dropped");
        assert_eq!(pass(2), "awsauto");
        let why = |i: usize| read[i].request.as_ref().unwrap_err().clone();
        assert!(
            why(3).contains("never written in the registries file"),
            "{}",
            why(3)
        );
        assert!(
            !why(3).contains("written-here"),
            "the secret is not repeated: {}",
            why(3)
        );
        assert!(why(4).contains("no password"), "{}", why(4));
        assert!(why(5).contains("variable is not set"), "{}", why(5));
        assert!(
            !why(5).contains("REGKEEP_TEST_UNSET_VARIABLE"),
            "the name is not repeated"
        );
        assert!(why(6).contains("not both"), "{}", why(6));
        assert!(
            why(7).contains("colour"),
            "unknown fields are named: {}",
            why(7)
        );
        assert!(
            why(8).contains("password_file: that file cannot be used"),
            "{}",
            why(8)
        );
        assert!(
            !why(8).contains("/nonexistent/pass"),
            "the path is not repeated"
        );
        assert_eq!(read[8].registry, "r8.example.com");
        assert_eq!(read[8].account, "a");
    }

    #[test]
    fn aliases_are_refused_before_the_yaml_reader_expands_them() {
        let bomb = "registries: [{account: &a [x, x, x], registry: r, user: [*a, *a, *a]}]";
        assert!(entries(bomb).unwrap_err().contains("aliases"));
        let list = "a: &x [1]\nregistries:\n  - *x\n";
        assert!(entries(list).unwrap_err().contains("line 3"));
        // Stars that are no alias: wildcards, quoted text, comments.
        let fine = "registries: # *not an alias\n  - {account: a, registry: \"docker.io/org/*\", user: u, password_env: \"*X\"}\n  - {account: a, registry: docker.io/team/*, user: u, password_env: Y}\n";
        assert_eq!(entries(fine).unwrap().len(), 2);
    }

    #[test]
    fn secret_files_are_read_bounded_and_only_when_regular() {
        let why = |path: &str| read_bounded(Path::new(path), MAX_SECRET_BYTES).unwrap_err();
        assert!(
            why("/dev/zero").contains("not a regular file"),
            "{}",
            why("/dev/zero")
        );
        assert!(
            why("/tmp").contains("not a regular file") || why("/tmp").contains("cannot be read")
        );
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; (MAX_SECRET_BYTES + 1) as usize]).unwrap();
        assert!(read_bounded(&big, MAX_SECRET_BYTES)
            .unwrap_err()
            .contains("larger than"));
    }

    #[test]
    fn a_file_that_is_not_a_registries_file_is_refused_whole() {
        for bad in [
            "registries: {a: 1}",
            "- just\n- a list",
            "registry: x",
            "registries: [1, 2",
        ] {
            assert!(entries(bad).is_err(), "{bad}");
        }
        assert!(entries("registries: []").unwrap().is_empty());
        let dir = tempfile::tempdir().unwrap();
        assert!(read_entries(&dir.path().join("missing.yaml"))
            .unwrap_err()
            .contains("cannot be read"));
    }
}
