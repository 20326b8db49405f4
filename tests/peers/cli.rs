//! The `regkeep` binary end to end: `regkeep serve` as a real process, driven by anchore-cli
//! 0.9.3 (unmodified) and by regkeep's own CLI, on SQLite and PostgreSQL. Also start-up,
//! first-start admin password, and graceful shutdown.

use crate::common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{assert_no_secrets, peers, random_hex, Backend, TestDatabase};

on_both_backends!(
    anchore_cli_registry_commands,
    anchore_cli_account_commands,
    anchore_cli_image_commands,
    regkeep_cli_commands
);

const BIN: &str = env!("CARGO_BIN_EXE_regkeep");

/// `regkeep serve` running as a child process.
struct Served {
    child: Child,
    url: String,
    data_dir: PathBuf,
    stderr: Arc<Mutex<String>>,
}

impl Served {
    /// Starts `regkeep serve` with JSON logs, waits until it says where it listens.
    fn start(
        data_dir: &Path,
        database: &TestDatabase,
        admin_pass: Option<&str>,
        extra_env: &[(&str, &str)],
    ) -> Served {
        let mut command = Command::new(BIN);
        command
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", data_dir)
            .env("REGKEEP_LISTEN", "127.0.0.1:0")
            .env("REGKEEP_DATA_DIR", data_dir)
            .env("REGKEEP_LOG_FORMAT", "json")
            .env(
                "REGKEEP_LOG_LEVEL",
                "debug,hyper=info,sqlx=info,rustls=info",
            )
            .env("REGKEEP_REGISTRY__CONNECT_TIMEOUT_SECS", "5")
            // The peers live on 127.0.0.x.
            .env("REGKEEP_OUTBOUND__ALLOW_LOOPBACK", "true")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(url) = &database.url {
            command.env("REGKEEP_DATABASE_URL", url);
        }
        if let Some(pass) = admin_pass {
            // Through the environment: never in the process arguments.
            command.env("REGKEEP_DEFAULT_ADMIN_PASSWORD", pass);
        }
        for (k, v) in extra_env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("regkeep serve starts");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let reader = BufReader::new(child.stderr.take().unwrap());
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in reader.lines().map_while(Result::ok) {
                sink.lock().unwrap().push_str(&line);
                sink.lock().unwrap().push('\n');
                if line.contains("regkeep is serving") {
                    let _ = tx.send(line);
                }
            }
        });
        let line = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                panic!("regkeep serve did not start:\n{}", stderr.lock().unwrap());
            }
        };
        let record: serde_json::Value = serde_json::from_str(&line).unwrap();
        let listen = record["fields"]["listen"]
            .as_str()
            .expect("listen field")
            .to_owned();
        Served {
            child,
            url: format!("http://{listen}"),
            data_dir: data_dir.to_owned(),
            stderr,
        }
    }

    fn logs(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// SIGTERM, then wait (bounded) for a clean exit.
    fn terminate(self) -> (std::process::ExitStatus, String) {
        self.stop_with("-TERM")
    }

    /// Sends `signal` (`-TERM`, `-INT`), then waits (bounded) for the exit.
    fn stop_with(mut self, signal: &str) -> (std::process::ExitStatus, String) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader thread drain the last lines.
                std::thread::sleep(Duration::from_millis(100));
                return (status, self.logs());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("regkeep did not stop within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs anchore-cli against `served` with a scratch HOME and no ANCHORE_CLI_* leaking in.
fn anchore(served: &Served, auth: (&str, &str), args: &[&str]) -> Output {
    let cli = peers().anchore_cli;
    let home = served.data_dir.join("anchore-home");
    std::fs::create_dir_all(&home).unwrap();
    Command::new(cli)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("LANG", "C.UTF-8")
        .args([
            "--url",
            &format!("{}/v1", served.url),
            "--u",
            auth.0,
            "--p",
            auth.1,
        ])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("anchore-cli runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[track_caller]
fn expect(output: &Output, code: i32, contains: &[&str]) {
    let all = text(output);
    assert_eq!(
        output.status.code(),
        Some(code),
        "exit code; output:\n{all}"
    );
    for want in contains {
        assert!(all.contains(want), "output should contain {want:?}:\n{all}");
    }
    assert!(
        !all.contains("WARNING: failed to format output"),
        "anchore-cli could not read our answer:\n{all}"
    );
    assert!(!all.contains("Traceback"), "anchore-cli crashed:\n{all}");
}

async fn anchore_cli_registry_commands(backend: Backend) {
    let p = peers();
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::create(backend).await;
    let admin_pass = format!("adm-{}", random_hex(6));
    let served = Served::start(dir.path(), &database, Some(&admin_pass), &[]);
    let admin = ("admin", admin_pass.as_str());

    // add: plain-HTTP registry with --insecure; wrong password; TLS with an unknown CA.
    let out = anchore(
        &served,
        admin,
        &["registry", "add", &p.http, &p.user, &p.pass, "--insecure"],
    );
    expect(
        &out,
        0,
        &[
            &format!("Registry: {}", p.http),
            "Type: docker_v2",
            "Verify TLS: False",
            &format!("User: {}", p.user),
        ],
    );
    let out = anchore(
        &served,
        admin,
        &[
            "registry",
            "add",
            &format!("{}/wrong", p.http),
            &p.user,
            "wrong-pass-9",
            "--insecure",
        ],
    );
    expect(&out, 1, &["Error:", "HTTP Code: 422", "UNAUTHORIZED"]);
    let out = anchore(
        &served,
        admin,
        &["registry", "add", &p.tls, &p.user, &p.pass],
    );
    expect(&out, 1, &["HTTP Code: 422", "CA"]);
    // --registry-type, --registry-name, Bearer token auth.
    let out = anchore(
        &served,
        admin,
        &[
            "registry",
            "add",
            &p.bearer,
            &p.user,
            &p.pass,
            "--insecure",
            "--registry-type",
            "docker_v2",
            "--registry-name",
            "tokens",
        ],
    );
    expect(&out, 0, &["Name: tokens"]);
    // No --registry-type on an ECR host: anchore-cli guesses awsecr; --skip-validate stores it.
    let ecr = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
    let out = anchore(
        &served,
        admin,
        &[
            "registry",
            "add",
            ecr,
            "AKIAEXAMPLE",
            "aws-secret-9",
            "--skip-validate",
        ],
    );
    expect(
        &out,
        0,
        &["setting registry type to 'awsecr'", "Type: awsecr"],
    );
    // --skip-validate stores an unreachable registry.
    let out = anchore(
        &served,
        admin,
        &[
            "registry",
            "add",
            "127.0.0.1:1",
            "u",
            "p-unused",
            "--skip-validate",
        ],
    );
    expect(&out, 0, &["Registry: 127.0.0.1:1"]);

    // list, get, --json.
    let out = anchore(&served, admin, &["registry", "list"]);
    expect(
        &out,
        0,
        &["Registry", &p.http, &p.bearer, ecr, "127.0.0.1:1"],
    );
    assert!(
        !text(&out).contains(&format!("{}/wrong", p.http)),
        "the refused registry was not stored"
    );
    let out = anchore(&served, admin, &["registry", "get", &p.http]);
    expect(
        &out,
        0,
        &[&format!("Registry: {}", p.http), "Created: ", "Updated: "],
    );
    let out = anchore(&served, admin, &["--json", "registry", "list"]);
    expect(&out, 0, &[]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 4);

    // update: right (validated), wrong (refused), and ECR (Anchore's own update failed here).
    let out = anchore(
        &served,
        admin,
        &[
            "registry",
            "update",
            &p.http,
            &p.user,
            &p.pass,
            "--insecure",
            "--registry-name",
            "renamed",
        ],
    );
    expect(&out, 0, &["Name: renamed"]);
    let out = anchore(
        &served,
        admin,
        &[
            "registry",
            "update",
            &p.http,
            &p.user,
            "wrong-pass-9",
            "--insecure",
        ],
    );
    expect(&out, 1, &["HTTP Code: 422"]);
    let out = anchore(
        &served,
        admin,
        &[
            "registry",
            "update",
            ecr,
            "AKIAOTHER",
            "aws-secret-10",
            "--registry-type",
            "awsecr",
            "--skip-validate",
        ],
    );
    expect(&out, 0, &["User: AKIAOTHER"]);

    // del, del again, get deleted.
    let out = anchore(&served, admin, &["registry", "del", "127.0.0.1:1"]);
    expect(&out, 0, &["Success"]);
    let out = anchore(&served, admin, &["registry", "del", "127.0.0.1:1"]);
    expect(&out, 1, &["HTTP Code: 404"]);
    let out = anchore(&served, admin, &["registry", "get", "127.0.0.1:1"]);
    expect(&out, 1, &["HTTP Code: 404"]);

    // --as-account: an admin acting in another account.
    let out = anchore(&served, admin, &["account", "add", "team-x"]);
    expect(&out, 0, &["Name: team-x"]);
    let out = anchore(
        &served,
        admin,
        &[
            "--as-account",
            "team-x",
            "registry",
            "add",
            "x.example.com",
            "u",
            "p-x",
            "--skip-validate",
        ],
    );
    expect(&out, 0, &["Registry: x.example.com"]);
    let out = anchore(
        &served,
        admin,
        &["--as-account", "team-x", "registry", "list"],
    );
    expect(&out, 0, &["x.example.com"]);
    assert!(!text(&out).contains(&p.http));
    let out = anchore(&served, admin, &["registry", "list"]);
    assert!(!text(&out).contains("x.example.com"));

    // A wrong password: exit 2.
    let out = anchore(
        &served,
        ("admin", "not-the-password"),
        &["registry", "list"],
    );
    expect(&out, 2, &[]);

    let logs = served.logs();
    drop(served);
    assert_no_secrets(
        "regkeep's logs",
        &logs,
        &[
            &p.pass,
            "wrong-pass-9",
            "aws-secret-9",
            "aws-secret-10",
            "p-x",
            &admin_pass,
        ],
    );
    database.drop_database().await;
}

async fn anchore_cli_account_commands(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::create(backend).await;
    let admin_pass = format!("adm-{}", random_hex(6));
    let served = Served::start(dir.path(), &database, Some(&admin_pass), &[]);
    let admin = ("admin", admin_pass.as_str());

    expect(
        &anchore(&served, admin, &["account", "whoami"]),
        0,
        &[
            "Username: admin",
            "AccountName: admin",
            "AccountType: admin",
        ],
    );
    expect(
        &anchore(
            &served,
            admin,
            &["account", "add", "team-y", "--email", "y@example.com"],
        ),
        0,
        &["Name: team-y", "Email: y@example.com", "State: enabled"],
    );
    expect(
        &anchore(&served, admin, &["account", "add", "team-y"]),
        1,
        &["HTTP Code: 400", "Account already exists"],
    );
    expect(
        &anchore(&served, admin, &["account", "get", "team-y"]),
        0,
        &["Name: team-y", "Type: user"],
    );
    expect(
        &anchore(&served, admin, &["account", "list"]),
        0,
        &["team-y", "admin"],
    );

    expect(
        &anchore(
            &served,
            admin,
            &[
                "account",
                "user",
                "add",
                "yuri",
                "yuri-pass-1",
                "--account",
                "team-y",
            ],
        ),
        0,
        &["Name: yuri", "Type: native"],
    );
    expect(
        &anchore(
            &served,
            admin,
            &["account", "user", "list", "--account", "team-y"],
        ),
        0,
        &["yuri"],
    );
    expect(
        &anchore(
            &served,
            admin,
            &["account", "user", "get", "yuri", "--account", "team-y"],
        ),
        0,
        &["Name: yuri"],
    );
    expect(
        &anchore(&served, ("yuri", "yuri-pass-1"), &["account", "whoami"]),
        0,
        &["Username: yuri", "AccountName: team-y"],
    );
    // A non-admin acting in another account is forbidden.
    expect(
        &anchore(
            &served,
            ("yuri", "yuri-pass-1"),
            &["--as-account", "admin", "registry", "list"],
        ),
        1,
        &["HTTP Code: 403"],
    );

    expect(
        &anchore(
            &served,
            admin,
            &[
                "account",
                "user",
                "setpassword",
                "yuri-pass-2",
                "--username",
                "yuri",
                "--account",
                "team-y",
            ],
        ),
        0,
        &["Password (re)set success"],
    );
    expect(
        &anchore(&served, ("yuri", "yuri-pass-1"), &["account", "whoami"]),
        2,
        &[],
    );
    expect(
        &anchore(&served, ("yuri", "yuri-pass-2"), &["account", "whoami"]),
        0,
        &["Username: yuri"],
    );

    // Deleting an enabled account is refused; anchore-cli explains with its own note.
    expect(
        &anchore(&served, admin, &["account", "del", "team-y", "--dontask"]),
        1,
        &["accounts must be disabled"],
    );
    expect(
        &anchore(&served, admin, &["account", "disable", "team-y"]),
        0,
        &["Success"],
    );
    // The right password of a disabled account's user: 403, as Anchore answers (GET /v1 lets
    // anchore-cli through, so it prints the reason; its `whoami` exits 2 on any error).
    expect(
        &anchore(&served, ("yuri", "yuri-pass-2"), &["account", "whoami"]),
        2,
        &["HTTP Code: 403", "Account not enabled"],
    );
    expect(
        &anchore(&served, admin, &["account", "enable", "team-y"]),
        0,
        &["Success"],
    );
    expect(
        &anchore(&served, ("yuri", "yuri-pass-2"), &["account", "whoami"]),
        0,
        &[],
    );
    expect(
        &anchore(
            &served,
            admin,
            &["account", "user", "del", "yuri", "--account", "team-y"],
        ),
        0,
        &["Success"],
    );
    expect(
        &anchore(
            &served,
            admin,
            &["account", "user", "del", "yuri", "--account", "team-y"],
        ),
        1,
        &["HTTP Code: 404"],
    );
    expect(
        &anchore(&served, admin, &["account", "disable", "team-y"]),
        0,
        &["Success"],
    );
    expect(
        &anchore(&served, admin, &["account", "del", "team-y", "--dontask"]),
        0,
        &["Success"],
    );
    // Deleting: shown as such until the background pass (or the next start) removes it.
    expect(
        &anchore(&served, admin, &["account", "get", "team-y"]),
        0,
        &["Name: team-y", "State: deleting"],
    );
    expect(
        &anchore(&served, admin, &["account", "list"]),
        0,
        &["deleting"],
    );
    let (status, mut logs) = served.terminate();
    assert!(status.success(), "{logs}");
    let served = Served::start(dir.path(), &database, None, &[]);
    expect(
        &anchore(&served, admin, &["account", "get", "team-y"]),
        1,
        &["HTTP Code: 404"],
    );

    // A user of an account manages that account's users (not another's), and its own password.
    expect(
        &anchore(&served, admin, &["account", "add", "team-w"]),
        0,
        &["Name: team-w"],
    );
    expect(
        &anchore(
            &served,
            admin,
            &[
                "account",
                "user",
                "add",
                "wanda",
                "wanda-pass-1",
                "--account",
                "team-w",
            ],
        ),
        0,
        &["Name: wanda"],
    );
    let wanda = ("wanda", "wanda-pass-1");
    expect(
        &anchore(
            &served,
            wanda,
            &["account", "user", "add", "walt", "walt-pass-1"],
        ),
        0,
        &["Name: walt", "Type: native"],
    );
    expect(
        &anchore(&served, wanda, &["account", "user", "list"]),
        0,
        &["wanda", "walt"],
    );
    expect(
        &anchore(
            &served,
            wanda,
            &["--as-account", "team-w", "account", "user", "list"],
        ),
        0,
        &["walt"],
    );
    expect(
        &anchore(&served, wanda, &["account", "user", "del", "walt"]),
        0,
        &["Success"],
    );
    expect(
        &anchore(
            &served,
            wanda,
            &["account", "user", "list", "--account", "admin"],
        ),
        1,
        &["HTTP Code: 403"],
    );
    expect(
        &anchore(
            &served,
            wanda,
            &[
                "account",
                "user",
                "setpassword",
                "wanda-pass-2",
                "--username",
                "wanda",
            ],
        ),
        0,
        &["Password (re)set success"],
    );
    expect(
        &anchore(&served, ("wanda", "wanda-pass-2"), &["account", "whoami"]),
        0,
        &["Username: wanda"],
    );

    // Events: list --since (Python's datetime text), get by id; system status.
    let store = regkeep_store::Store::open(
        &served_database_url(&database, dir.path()),
        &regkeep_store::KeySource::File(dir.path().join("secret.key")),
    )
    .await
    .unwrap();
    store
        .insert_event(&regkeep_domain::entities::EventRecord {
            account: "admin".parse().unwrap(),
            generated_uuid: "cli-event-1".into(),
            created_at: regkeep_domain::Timestamp::parse_rfc3339("2026-12-01T06:00:00Z").unwrap(),
            event_type: "user.checks.tag_update".into(),
            level: "INFO".into(),
            message: "A watched tag points at a new image digest".into(),
            resource_type: "image_tag".into(),
            resource_id: "r.example.com/app:1".into(),
            details: r#"{"digest": "sha256:abc"}"#.into(),
        })
        .await
        .unwrap();
    store.close().await;
    expect(
        &anchore(
            &served,
            admin,
            &["event", "list", "--since", "2026-12-01 05:59:59.262543"],
        ),
        0,
        &[
            "user.checks.tag_update",
            "r.example.com/app:1",
            "cli-event-1",
        ],
    );
    let out = anchore(
        &served,
        admin,
        &["event", "list", "--since", "2026-12-01 06:00:01"],
    );
    expect(&out, 0, &[]);
    assert!(!text(&out).contains("cli-event-1"), "{}", text(&out));
    expect(
        &anchore(&served, admin, &["event", "get", "cli-event-1"]),
        0,
        &[
            "type: user.checks.tag_update",
            "level: INFO",
            "digest: sha256:abc",
        ],
    );
    expect(
        &anchore(&served, admin, &["system", "status"]),
        0,
        &[
            "Service regkeep-api (",
            "): up",
            "Service database (",
            "Service ecr-token-renewal (",
            "Service tag-watcher (",
            "Engine DB Version: ",
            concat!("Engine Code Version: ", env!("CARGO_PKG_VERSION")),
        ],
    );
    let out = anchore(&served, admin, &["system", "status"]);
    assert!(!text(&out).contains("Not Found"), "{}", text(&out));

    logs.push_str(&served.logs());
    drop(served);
    assert_no_secrets(
        "regkeep's logs",
        &logs,
        &[
            "yuri-pass-1",
            "yuri-pass-2",
            "wanda-pass-1",
            "wanda-pass-2",
            "walt-pass-1",
            &admin_pass,
        ],
    );
    database.drop_database().await;
}

/// Runs `regkeep` (client) with `env` and optional stdin.
/// anchore-cli 0.9.3's image commands print what they print against Anchore: records with
/// every tag, the image ID, and regkeep's honest `not_analyzed`; get and del by tag, image ID
/// and digest.
async fn anchore_cli_image_commands(backend: Backend) {
    let p = peers();
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::create(backend).await;
    let admin_pass = format!("adm-{}", random_hex(6));
    let served = Served::start(dir.path(), &database, Some(&admin_pass), &[]);
    let admin = ("admin", admin_pass.as_str());
    let digest = common::var("REGKEEP_TEST_IMAGE_DIGEST");
    expect(
        &anchore(
            &served,
            admin,
            &["registry", "add", &p.http, &p.user, &p.pass, "--insecure"],
        ),
        0,
        &["Verify TLS: False"],
    );
    let alias = format!("cli-{}", random_hex(4));
    common::copy_tag(&p.http, "test/hello", "v1", &alias).await;
    let (v1, aliased) = (
        format!("{}/test/hello:v1", p.http),
        format!("{}/test/hello:{alias}", p.http),
    );

    let out = anchore(&served, admin, &["image", "add", &v1]);
    expect(
        &out,
        0,
        &[
            &format!("Image Digest: {digest}"),
            "Analysis Status: not_analyzed",
            "Image Type: docker",
            "Analyzed At: None",
            &format!("Full Tag: {v1}"),
        ],
    );
    let all = text(&out);
    let image_id = all
        .lines()
        .find_map(|l| l.strip_prefix("Image ID: "))
        .expect("an Image ID line")
        .trim()
        .to_owned();
    assert_eq!(image_id.len(), 64, "{all}");
    // The second tag of the same digest: both listed.
    expect(
        &anchore(&served, admin, &["image", "add", &aliased]),
        0,
        &[&format!("Full Tag: {v1}"), &format!("Full Tag: {aliased}")],
    );
    for args in [&["image", "list"][..], &["image", "list", "--full"][..]] {
        let out = anchore(&served, admin, args);
        expect(&out, 0, &[&v1, &aliased, &digest, "not_analyzed"]);
        assert!(!text(&out).contains("failed to format"), "{}", text(&out));
    }
    expect(
        &anchore(&served, admin, &["image", "list", "--full"]),
        0,
        &[&image_id],
    );
    // get by tag (anchore-cli asks GET /images?fulltag=), by image ID, by digest.
    for wanted in [aliased.as_str(), image_id.as_str(), digest.as_str()] {
        expect(
            &anchore(&served, admin, &["image", "get", wanted]),
            0,
            &[
                &format!("Image Digest: {digest}"),
                &format!("Image ID: {image_id}"),
            ],
        );
    }
    // del by image ID (anchore-cli finds the digest through the fulltag filter): gone.
    expect(
        &anchore(&served, admin, &["image", "del", &image_id]),
        0,
        &["Success"],
    );
    expect(
        &anchore(&served, admin, &["image", "get", &digest]),
        1,
        &["HTTP Code: 404"],
    );
    // del by digest.
    expect(
        &anchore(&served, admin, &["image", "add", &v1]),
        0,
        &[&digest],
    );
    expect(
        &anchore(&served, admin, &["image", "del", &digest]),
        0,
        &["Success"],
    );
    let out = anchore(&served, admin, &["--json", "image", "list"]);
    expect(&out, 0, &["[]"]);
    let logs = served.logs();
    drop(served);
    assert_no_secrets("regkeep's logs", &logs, &[&p.pass, &admin_pass]);
    database.drop_database().await;
}

fn regkeep(env: &[(&str, &str)], args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(BIN)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
    }
    child.wait_with_output().unwrap()
}

async fn regkeep_cli_commands(backend: Backend) {
    let p = peers();
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::create(backend).await;
    let admin_pass = format!("adm-{}", random_hex(6));
    let served = Served::start(dir.path(), &database, Some(&admin_pass), &[]);
    let env = [
        ("REGKEEP_URL", served.url.as_str()),
        ("REGKEEP_USER", "admin"),
        ("REGKEEP_PASS", admin_pass.as_str()),
    ];

    // add with --password-stdin: the password is in neither the arguments nor the output.
    let out = regkeep(
        &env,
        &[
            "registry",
            "add",
            &p.http,
            &p.user,
            "--password-stdin",
            "--insecure",
        ],
        Some(&format!("{}\n", p.pass)),
    );
    expect(&out, 0, &[&p.http, "docker_v2"]);
    assert!(
        !text(&out).contains("guessed"),
        "the usual guess (docker_v2) goes without a warning: {}",
        text(&out)
    );
    let out = regkeep(
        &env,
        &[
            "registry",
            "add",
            &format!("{}/w", p.http),
            &p.user,
            "--password-stdin",
            "--insecure",
        ],
        Some("wrong-pass-7\n"),
    );
    expect(&out, 1, &["HTTP code: 422", "UNAUTHORIZED"]);
    let out = regkeep(
        &env,
        &[
            "registry",
            "add",
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
            "AKIAX",
            "--password-stdin",
            "--skip-validate",
        ],
        Some("aws-secret-7\n"),
    );
    expect(&out, 0, &["Type awsecr: guessed from the host", "awsecr"]);
    // Neither argument nor stdin: a clear local error.
    let out = regkeep(
        &env,
        &["registry", "add", "r.example.com", "u", "--skip-validate"],
        None,
    );
    expect(&out, 2, &["--password-stdin"]);
    // Empty stdin.
    let out = regkeep(
        &env,
        &[
            "registry",
            "add",
            "r.example.com",
            "u",
            "--password-stdin",
            "--skip-validate",
        ],
        Some(""),
    );
    expect(&out, 2, &["standard input held no password"]);

    // list (table and JSON), get, update, del.
    let out = regkeep(&env, &["registry", "list"], None);
    expect(&out, 0, &["Registry", "Last validated", &p.http]);
    let out = regkeep(&env, &["--json", "registry", "list"], None);
    expect(&out, 0, &[]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    let out = regkeep(&env, &["registry", "get", "unknown.example.com"], None);
    expect(&out, 1, &["HTTP code: 404", "registry list"]);
    let out = regkeep(
        &env,
        &[
            "registry",
            "update",
            &p.http,
            &p.user,
            "--password-stdin",
            "--insecure",
            "--registry-name",
            "cli-named",
        ],
        Some(&p.pass),
    );
    expect(&out, 0, &["cli-named"]);
    let out = regkeep(&env, &["registry", "del", &p.http], None);
    expect(&out, 0, &["Deleted registry"]);
    let out = regkeep(&env, &["registry", "del", &p.http], None);
    expect(&out, 1, &["HTTP code: 404"]);

    // Bad input answered by the server: exit 1 with its message.
    let out = regkeep(
        &env,
        &[
            "registry",
            "add",
            "https://r.example.com",
            "u",
            "--password-stdin",
            "--skip-validate",
        ],
        Some("x\n"),
    );
    expect(&out, 1, &["scheme", "HTTP code: 400"]);

    // Accounts and users.
    expect(
        &regkeep(
            &env,
            &["account", "add", "team-z", "--email", "z@example.com"],
            None,
        ),
        0,
        &["team-z"],
    );
    expect(
        &regkeep(&env, &["account", "list"], None),
        0,
        &["team-z", "admin"],
    );
    expect(
        &regkeep(&env, &["account", "get", "team-z"], None),
        0,
        &["z@example.com"],
    );
    expect(
        &regkeep(&env, &["account", "whoami"], None),
        0,
        &["Username:", "admin"],
    );
    expect(
        &regkeep(
            &env,
            &[
                "user",
                "add",
                "zoe",
                "--account",
                "team-z",
                "--password-stdin",
            ],
            Some("zoe-pass-1\n"),
        ),
        0,
        &["zoe"],
    );
    expect(
        &regkeep(&env, &["user", "list", "--account", "team-z"], None),
        0,
        &["zoe", "native"],
    );
    let zoe = [
        ("REGKEEP_URL", served.url.as_str()),
        ("REGKEEP_USER", "zoe"),
        ("REGKEEP_PASS", "zoe-pass-1"),
    ];
    expect(&regkeep(&zoe, &["account", "whoami"], None), 0, &["team-z"]);
    expect(
        &regkeep(&zoe, &["--as-account", "admin", "registry", "list"], None),
        1,
        &["HTTP code: 403"],
    );
    expect(
        &regkeep(
            &env,
            &[
                "user",
                "setpassword",
                "zoe",
                "--account",
                "team-z",
                "--password-stdin",
            ],
            Some("zoe-pass-2\n"),
        ),
        0,
        &["updated"],
    );
    expect(
        &regkeep(&zoe, &["account", "whoami"], None),
        2,
        &["HTTP code: 401"],
    );
    expect(
        &regkeep(
            &env,
            &[
                "--as-account",
                "team-z",
                "registry",
                "add",
                "z.example.com",
                "u",
                "--password-stdin",
                "--skip-validate",
            ],
            Some("z-pass\n"),
        ),
        0,
        &["z.example.com"],
    );
    expect(
        &regkeep(&env, &["user", "del", "zoe", "--account", "team-z"], None),
        0,
        &["Deleted user zoe"],
    );
    expect(
        &regkeep(&env, &["account", "del", "team-z"], None),
        1,
        &["disable it first"],
    );
    expect(
        &regkeep(&env, &["account", "disable", "team-z"], None),
        0,
        &["disabled"],
    );
    expect(
        &regkeep(&env, &["account", "enable", "team-z"], None),
        0,
        &["enabled"],
    );
    expect(
        &regkeep(&env, &["account", "disable", "team-z"], None),
        0,
        &["disabled"],
    );
    expect(
        &regkeep(&env, &["account", "del", "team-z"], None),
        0,
        &["Account team-z is deleting"],
    );

    // anchore-cli's environment variables work as a fallback, with its /v1 URL.
    let anchore_env = [
        ("ANCHORE_CLI_URL", &format!("{}/v1", served.url)[..]),
        ("ANCHORE_CLI_USER", "admin"),
        ("ANCHORE_CLI_PASS", admin_pass.as_str()),
    ];
    expect(
        &regkeep(&anchore_env, &["registry", "list"], None),
        0,
        &["123456789012.dkr.ecr.eu-west-1.amazonaws.com"],
    );

    // Wrong credentials: 2. Unreachable server: 2, saying so.
    let wrong = [
        ("REGKEEP_URL", served.url.as_str()),
        ("REGKEEP_USER", "admin"),
        ("REGKEEP_PASS", "nope"),
    ];
    expect(
        &regkeep(&wrong, &["registry", "list"], None),
        2,
        &["HTTP code: 401"],
    );
    expect(
        &regkeep(
            &[("REGKEEP_URL", "http://127.0.0.1:1")],
            &["registry", "list"],
            None,
        ),
        3,
        &["cannot reach regkeep"],
    );

    let logs = served.logs();
    drop(served);
    assert_no_secrets(
        "regkeep's logs",
        &logs,
        &[
            &p.pass,
            "wrong-pass-7",
            "aws-secret-7",
            "zoe-pass-1",
            "zoe-pass-2",
            "z-pass",
            &admin_pass,
        ],
    );
    database.drop_database().await;
}

#[test]
fn first_start_generates_and_keeps_the_admin_password() {
    crate::skip_without_peers!();
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("fresh");
    let database = TestDatabase::sqlite();
    let served = Served::start(&data, &database, None, &[]);
    let file = data.join("admin_password");
    let password = std::fs::read_to_string(&file).unwrap().trim().to_owned();
    assert!(password.len() >= 20);
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(data.join("secret.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(&data).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let env = [
        ("REGKEEP_URL", served.url.as_str()),
        ("REGKEEP_USER", "admin"),
        ("REGKEEP_PASS", password.as_str()),
    ];
    expect(&regkeep(&env, &["account", "whoami"], None), 0, &["admin"]);
    let (status, logs) = served.terminate();
    assert!(status.success(), "SIGTERM is a clean exit: {status}");
    assert!(logs.contains("regkeep stopped"));
    assert!(
        !logs.contains(&password),
        "the generated password is never printed"
    );
    assert!(
        logs.contains(&file.display().to_string()),
        "the log says where the password is: {logs}"
    );

    // Second start: nothing generated, nothing printed, the kept password still works.
    let served = Served::start(&data, &database, None, &[]);
    let env = [
        ("REGKEEP_URL", served.url.as_str()),
        ("REGKEEP_USER", "admin"),
        ("REGKEEP_PASS", password.as_str()),
    ];
    expect(&regkeep(&env, &["account", "whoami"], None), 0, &["admin"]);
    // A second admin-account user changes the admin's password (the generated file goes), then
    // deletes the admin.
    expect(
        &regkeep(
            &env,
            &[
                "user",
                "add",
                "root2",
                "--account",
                "admin",
                "--password-stdin",
            ],
            Some("root2-pass-1\n"),
        ),
        0,
        &["root2"],
    );
    let root2 = [
        ("REGKEEP_URL", served.url.as_str()),
        ("REGKEEP_USER", "root2"),
        ("REGKEEP_PASS", "root2-pass-1"),
    ];
    expect(
        &regkeep(
            &root2,
            &[
                "user",
                "setpassword",
                "admin",
                "--account",
                "admin",
                "--password-stdin",
            ],
            Some("admin-rotated-1\n"),
        ),
        0,
        &["updated"],
    );
    assert!(
        !file.exists(),
        "the generated password file is removed once the admin's password changes"
    );
    expect(
        &regkeep(
            &root2,
            &["user", "del", "admin", "--account", "admin"],
            None,
        ),
        0,
        &[],
    );
    let (status, logs) = served.terminate();
    assert!(status.success());
    assert!(!logs.contains(&password), "not printed again");
    assert!(
        logs.contains("removed the generated password file"),
        "{logs}"
    );
    assert!(!logs.contains("admin-rotated-1") && !logs.contains("root2-pass-1"));

    // Restart: the deleted admin is not re-created, with neither the first nor the rotated password.
    let served = Served::start(&data, &database, None, &[]);
    for pass in [password.as_str(), "admin-rotated-1"] {
        let env = [
            ("REGKEEP_URL", served.url.as_str()),
            ("REGKEEP_USER", "admin"),
            ("REGKEEP_PASS", pass),
        ];
        expect(
            &regkeep(&env, &["account", "whoami"], None),
            2,
            &["HTTP code: 401"],
        );
    }
    let root2 = [
        ("REGKEEP_URL", served.url.as_str()),
        ("REGKEEP_USER", "root2"),
        ("REGKEEP_PASS", "root2-pass-1"),
    ];
    let users = regkeep(
        &root2,
        &["--json", "user", "list", "--account", "admin"],
        None,
    );
    expect(&users, 0, &["root2"]);
    let users: serde_json::Value = serde_json::from_slice(&users.stdout).unwrap();
    assert!(
        users
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["username"] != "admin"),
        "admin came back: {users}"
    );
    assert!(!file.exists(), "no password file generated again");
    let (status, _) = served.terminate();
    assert!(status.success());
}

#[test]
fn start_up_errors_are_clear() {
    crate::skip_without_peers!();
    let dir = tempfile::tempdir().unwrap();
    // A config file with a typo.
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "lisen: 127.0.0.1:0\n").unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .env("REGKEEP_DATA_DIR", dir.path().join("d"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("lisen") && err.contains("configuration error"),
        "{err}"
    );

    // A data directory whose key file was replaced: refused, data untouched.
    let data = dir.path().join("data");
    let database = TestDatabase::sqlite();
    let served = Served::start(&data, &database, Some("first-admin-pass"), &[]);
    // SIGINT (Ctrl-C) is a clean stop too.
    let (status, logs) = served.stop_with("-INT");
    assert!(status.success(), "SIGINT is a clean exit: {status}");
    assert!(logs.contains("regkeep stopped"));
    std::fs::write(
        data.join("secret.key"),
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("serve")
        .env("REGKEEP_DATA_DIR", &data)
        .env("REGKEEP_LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("regkeep: regkeep cannot start") && err.contains("another key"),
        "{err}"
    );
}

/// A CA and a server certificate for 127.0.0.1 it signed, made with openssl: (ca, cert, key).
fn ca_and_server_cert(
    dir: &std::path::Path,
    name: &str,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let path = |suffix: &str| dir.join(format!("{name}-{suffix}"));
    let run = |args: &[&str]| {
        let status = Command::new("openssl")
            .args(args)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "openssl {args:?}");
    };
    let p = |suffix: &str| path(suffix).display().to_string();
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        &format!("/CN=ca-{name}"),
        "-keyout",
        &p("ca-key.pem"),
        "-out",
        &p("ca.pem"),
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        &p("key.pem"),
        "-out",
        &p("csr.pem"),
    ]);
    std::fs::write(
        path("ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        &p("csr.pem"),
        "-CA",
        &p("ca.pem"),
        "-CAkey",
        &p("ca-key.pem"),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &p("ext"),
        "-out",
        &p("cert.pem"),
    ]);
    (path("ca.pem"), path("cert.pem"), path("key.pem"))
}

/// TLS on the listener: anchore-cli and the regkeep CLI work over https with the CA given; plain
/// HTTP and an unknown CA do not; a new certificate takes effect on SIGHUP without a restart; a
/// non-loopback listener without TLS warns.
#[test]
fn tls_listener_serves_both_clients_and_reloads() {
    crate::skip_without_peers!();
    let dir = tempfile::tempdir().unwrap();
    let (cert, server_cert, key) = ca_and_server_cert(dir.path(), "first");
    let (cert_file, key_file) = (dir.path().join("tls.pem"), dir.path().join("tls-key.pem"));
    std::fs::copy(&server_cert, &cert_file).unwrap();
    std::fs::copy(&key, &key_file).unwrap();
    let data = dir.path().join("data");
    let database = TestDatabase::sqlite();
    let (cert_env, key_env) = (
        cert_file.display().to_string(),
        key_file.display().to_string(),
    );
    let served = Served::start(
        &data,
        &database,
        Some("tls-admin-pass"),
        &[
            ("REGKEEP_SERVER_TLS__CERT_FILE", cert_env.as_str()),
            ("REGKEEP_SERVER_TLS__KEY_FILE", key_env.as_str()),
        ],
    );
    let https = served.url.replacen("http://", "https://", 1);
    let with_ca = |ca: &std::path::Path| {
        let ca = ca.display().to_string();
        regkeep(
            &[
                ("REGKEEP_URL", https.as_str()),
                ("REGKEEP_USER", "admin"),
                ("REGKEEP_PASS", "tls-admin-pass"),
                ("REGKEEP_CA_FILE", ca.as_str()),
            ],
            &["account", "whoami"],
            None,
        )
    };
    expect(&with_ca(&cert), 0, &["admin"]);
    // Without the CA, the CLI refuses the certificate.
    let out = regkeep(
        &[
            ("REGKEEP_URL", https.as_str()),
            ("REGKEEP_USER", "admin"),
            ("REGKEEP_PASS", "tls-admin-pass"),
        ],
        &["account", "whoami"],
        None,
    );
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    // Plain HTTP to the TLS port gets nowhere.
    let out = regkeep(
        &[
            ("REGKEEP_URL", served.url.as_str()),
            ("REGKEEP_USER", "admin"),
            ("REGKEEP_PASS", "tls-admin-pass"),
        ],
        &["account", "whoami"],
        None,
    );
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    // anchore-cli (Python requests) with the CA bundle.
    let home = data.join("anchore-home");
    std::fs::create_dir_all(&home).unwrap();
    let out = Command::new(peers().anchore_cli)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("LANG", "C.UTF-8")
        .env("REQUESTS_CA_BUNDLE", &cert)
        .args([
            "--url",
            &format!("{https}/v1"),
            "--u",
            "admin",
            "--p",
            "tls-admin-pass",
        ])
        .args(["registry", "list"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "anchore-cli over TLS: {}", text(&out));

    // A renewed certificate (another key) replaces the files; SIGHUP reloads it.
    let (second, second_cert, second_key) = ca_and_server_cert(dir.path(), "second");
    std::fs::copy(&second_cert, &cert_file).unwrap();
    std::fs::copy(&second_key, &key_file).unwrap();
    let pid = served.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(20);
    while with_ca(&second).status.code() != Some(0) {
        assert!(
            Instant::now() < deadline,
            "the new certificate was never served"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_ne!(
        with_ca(&cert).status.code(),
        Some(0),
        "the old certificate is no longer served"
    );
    let (status, logs) = served.terminate();
    assert!(status.success());
    assert!(logs.contains("reloaded the TLS certificate"), "{logs}");
    assert!(!logs.contains("tls-admin-pass"));

    // Plain HTTP on a non-loopback address warns.
    let served = Served::start(
        &dir.path().join("data2"),
        &database,
        Some("tls-admin-pass"),
        &[("REGKEEP_LISTEN", "0.0.0.0:0")],
    );
    let (_, logs) = served.terminate();
    assert!(
        logs.contains("serving plain HTTP on a non-loopback address"),
        "{logs}"
    );
}

/// The database `Served::start` gave regkeep: the test database, or the SQLite file in its
/// data folder.
fn served_database_url(database: &TestDatabase, data_dir: &Path) -> String {
    database
        .url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("regkeep.db").display()))
}

/// The registries file, on the real binary: entries added at start with secrets from the
/// environment and from a file; one whose password the registry refuses shows the refusal on its
/// record while the others work; the API's own entry is never touched; the CLI cannot delete a
/// declared entry; after an edit and SIGHUP, a removed entry is gone and a changed one changed. No
/// secret reaches the log or the database file in plain text.
#[test]
fn the_registries_file_is_applied_at_start_and_on_sighup() {
    crate::skip_without_peers!();
    let p = peers();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let database = TestDatabase::sqlite();
    let admin_pass = format!("admin-{}", random_hex(8));
    let secret_file = dir.path().join("bearer.pass");
    std::fs::write(&secret_file, format!("{}\n", p.pass)).unwrap();
    let wrong_file = dir.path().join("wrong.pass");
    std::fs::write(&wrong_file, "declared-wrong-password\n").unwrap();
    let file = dir.path().join("registries.yaml");
    let team = format!("{}/declared-team", p.http);
    let write_file = |entries: &[String]| {
        std::fs::write(&file, format!("registries:\n{}", entries.join(""))).unwrap();
    };
    let http_entry = |name: &str| {
        format!(
            "  - {{account: gitops, registry: \"{}\", user: {}, password_env: GITOPS_REGISTRY_PASS, verify: false, name: {name}}}\n",
            p.http, p.user
        )
    };
    let bearer_entry = format!(
        "  - {{account: gitops, registry: \"{}\", user: {}, password_file: \"{}\", verify: false}}\n",
        p.bearer,
        p.user,
        secret_file.display()
    );
    let wrong_entry = format!(
        "  - {{account: gitops, registry: \"{team}\", user: {}, password_file: \"{}\", verify: false}}\n",
        p.user,
        wrong_file.display()
    );
    // The account does not exist yet: the first application refuses every entry, and says why.
    write_file(&[http_entry("lab"), bearer_entry.clone(), wrong_entry.clone()]);
    let file_text = file.display().to_string();
    let served = Served::start(
        &data,
        &database,
        Some(&admin_pass),
        &[
            ("REGKEEP_REGISTRIES_FILE", file_text.as_str()),
            ("GITOPS_REGISTRY_PASS", p.pass.as_str()),
        ],
    );
    let env = [
        ("REGKEEP_URL", served.url.as_str()),
        ("REGKEEP_USER", "admin"),
        ("REGKEEP_PASS", admin_pass.as_str()),
    ];
    let wait_for = |what: &str, done: &dyn Fn(&serde_json::Value) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = regkeep(
                &env,
                &["--json", "--as-account", "gitops", "registry", "list"],
                None,
            );
            let list: serde_json::Value =
                serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
            if done(&list) {
                return list;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: {list}\n{}",
                served.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let until_logged = |needle: &str| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !served.logs().contains(needle) {
            assert!(Instant::now() < deadline, "{needle}:\n{}", served.logs());
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    until_logged("account gitops does not exist");
    expect(&regkeep(&env, &["account", "add", "gitops"], None), 0, &[]);
    // Made through the API before the file names it: the file's entry for it is refused.
    expect(
        &regkeep(
            &env,
            &[
                "--as-account",
                "gitops",
                "registry",
                "add",
                &p.anon,
                "api-user",
                "api-pass",
                "--insecure",
                "--skip-validate",
            ],
            None,
        ),
        0,
        &[],
    );
    let anon_entry = format!(
        "  - {{account: gitops, registry: \"{}\", user: other, password_env: GITOPS_REGISTRY_PASS, verify: false}}\n",
        p.anon
    );
    // A change to the file is applied without a signal.
    write_file(&[
        http_entry("lab"),
        bearer_entry.clone(),
        wrong_entry.clone(),
        anon_entry.clone(),
    ]);
    let kill = |signal: &str| {
        let pid = served.child.id().to_string();
        assert!(Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap()
            .success());
    };
    let declared = |list: &serde_json::Value| -> Vec<serde_json::Value> {
        list.as_array()
            .map(|l| {
                l.iter()
                    .filter(|r| r.get("declared_in").is_some())
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    };
    let list = wait_for("three declared entries", &|l| declared(l).len() == 3);
    let find = |list: &serde_json::Value, registry: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|r| r["registry"] == registry)
            .cloned()
            .unwrap_or_else(|| panic!("{registry} in {list}"))
    };
    let http = find(&list, &p.http);
    assert_eq!(
        http["declared_in"], "registries.yaml",
        "the file, not where it is on the server: {http}"
    );
    assert_eq!(http["registry_name"], "lab");
    assert!(http.get("declaration_error").is_none(), "{http}");
    assert!(!http["last_validated"].is_null(), "validated: {http}");
    let bearer = find(&list, &p.bearer);
    assert!(
        bearer.get("declaration_error").is_none(),
        "the secret file's password works: {bearer}"
    );
    let wrong = find(&list, &team);
    let error = wrong["declaration_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("refused") || error.contains("401"),
        "{wrong}"
    );
    let api = find(&list, &p.anon);
    assert!(
        api.get("declared_in").is_none(),
        "the API's entry stays the API's: {api}"
    );
    assert_eq!(api["registry_user"], "api-user");
    until_logged("added through the API");

    // The declared entries work: the registry check logs in with the file's credentials.
    expect(
        &regkeep(
            &env,
            &["--as-account", "gitops", "registry", "check", &p.bearer],
            None,
        ),
        0,
        &[],
    );
    // The CLI (API) cannot delete a declared entry, and says where it is declared.
    expect(
        &regkeep(
            &env,
            &["--as-account", "gitops", "registry", "del", &p.http],
            None,
        ),
        1,
        &["registries.yaml"],
    );

    // Edit: the bearer entry goes, the http entry is renamed. The file keeps its size and
    // modification time, so only SIGHUP can make it applied.
    let before = std::fs::metadata(&file).unwrap();
    let blank = format!("#{}\n", " ".repeat(bearer_entry.len() - 2));
    write_file(&[http_entry("new"), blank, wrong_entry.clone(), anon_entry]);
    assert_eq!(std::fs::metadata(&file).unwrap().len(), before.len());
    let mtime = before
        .modified()
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let stamp = format!("@{}.{:09}", mtime.as_secs(), mtime.subsec_nanos());
    assert!(Command::new("touch")
        .args(["-m", "-d", &stamp])
        .arg(&file)
        .status()
        .unwrap()
        .success());
    std::thread::sleep(Duration::from_secs(4));
    let list = wait_for("nothing applied before the signal", &|l| {
        declared(l).len() == 3
    });
    assert_eq!(find(&list, &p.http)["registry_name"], "lab");
    kill("-HUP");
    let list = wait_for("the edit applied", &|l| {
        declared(l).len() == 2
            && l.as_array()
                .unwrap()
                .iter()
                .any(|r| r["registry_name"] == "new")
    });
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["registry"] != p.bearer.as_str()));
    assert_eq!(find(&list, &p.anon)["registry_user"], "api-user");

    let (status, logs) = served.terminate();
    assert!(status.success());
    for secret in [p.pass.as_str(), "declared-wrong-password", "api-pass"] {
        assert!(!logs.contains(secret), "{secret} in the log");
    }
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("regkeep.db")
        {
            let bytes = std::fs::read(&path).unwrap();
            for secret in [p.pass.as_str(), "declared-wrong-password"] {
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "{secret} in {}",
                    path.display()
                );
            }
        }
    }
}

/// `registry update` changes only what is given (issue 14, item 1): a rename keeps the user, the
/// password and TLS verification off; a new password alone keeps the name; nothing given changes
/// nothing; each says what changed. anchore-cli's PUT (which always sends the password) is
/// unchanged (its suites run elsewhere), and a PUT without a password keeps the stored one.
#[test]
fn registry_update_changes_only_what_is_given() {
    crate::skip_without_peers!();
    let p = peers();
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::sqlite();
    let admin_pass = format!("adm-{}", random_hex(6));
    let served = Served::start(dir.path(), &database, Some(&admin_pass), &[]);
    let env = [
        ("REGKEEP_URL", served.url.as_str()),
        ("REGKEEP_USER", "admin"),
        ("REGKEEP_PASS", admin_pass.as_str()),
    ];
    let add = [
        "registry",
        "add",
        &p.http,
        &p.user,
        "--password-stdin",
        "--insecure",
        "--registry-name",
        "lab-http-2",
    ];
    expect(
        &regkeep(&env, &add, Some(&format!("{}\n", p.pass))),
        0,
        &["lab-http-2"],
    );
    let get = |field: &str| -> serde_json::Value {
        let out = regkeep(&env, &["--json", "registry", "get", &p.http], None);
        let records: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        records[0][field].clone()
    };

    let validated = get("last_validated");
    assert!(validated.is_string(), "added with a check: {validated}");
    // A rename: nothing else changes, the registry is not asked, and the answer says what changed.
    let out = regkeep(
        &env,
        &[
            "registry",
            "update",
            &p.http,
            "--registry-name",
            "lab-renamed",
        ],
        None,
    );
    expect(&out, 0, &["name lab-http-2 -> lab-renamed"]);
    assert!(
        !text(&out).contains("checked against the registry"),
        "{}",
        text(&out)
    );
    assert_eq!(
        get("last_validated"),
        validated,
        "a rename checks nothing and loses nothing"
    );
    assert_eq!(get("registry_name"), "lab-renamed");
    assert_eq!(get("registry_verify"), false, "--insecure is kept");
    assert_eq!(get("registry_user"), p.user.as_str());
    // The stored password still works.
    expect(
        &regkeep(&env, &["registry", "check", &p.http], None),
        0,
        &[],
    );

    // A wrong new password is refused by the registry and nothing is stored.
    let out = regkeep(
        &env,
        &["registry", "update", &p.http, "--password-stdin"],
        Some("not-the-password\n"),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    expect(
        &regkeep(&env, &["registry", "check", &p.http], None),
        0,
        &[],
    );
    // The right one, with verification back on and off again: each change is named.
    let out = regkeep(
        &env,
        &[
            "registry",
            "update",
            &p.http,
            "--password-stdin",
            "--verify",
            "--skip-validate",
        ],
        Some(&format!("{}\n", p.pass)),
    );
    expect(
        &out,
        0,
        &["TLS verification false -> true", "password replaced"],
    );
    assert_eq!(get("registry_name"), "lab-renamed", "the name stays");
    // Turning verification off, or changing the user or type, keeps no stored password: whoever
    // may update a registry must not send a password they never knew elsewhere.
    let out = regkeep(&env, &["registry", "update", &p.http, "--insecure"], None);
    expect(&out, 1, &["needs its password too"]);
    let out = regkeep(&env, &["registry", "update", &p.http, "someone-else"], None);
    expect(&out, 1, &["needs its password too"]);
    assert_eq!(get("registry_verify"), true, "nothing changed");
    let out = regkeep(
        &env,
        &[
            "registry",
            "update",
            &p.http,
            "--insecure",
            "--password-stdin",
        ],
        Some(&format!("{}\n", p.pass)),
    );
    expect(
        &out,
        0,
        &[
            "TLS verification true -> false",
            "checked against the registry",
        ],
    );

    // Nothing given: nothing changes.
    let out = regkeep(&env, &["registry", "update", &p.http], None);
    expect(&out, 0, &["nothing to change"]);
    assert!(!text(&out).contains(&p.pass));
    served.terminate();
}

/// A platform asked for by name that the image does not have is refused (exit 1) naming the
/// platforms it has, for a single-platform image and for an index, by `image add` and
/// `image pull` (issue 14, item 2); without --platform the single-platform image is recorded.
#[test]
fn a_platform_the_image_lacks_is_refused_naming_those_it_has() {
    crate::skip_without_peers!();
    let p = peers();
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::sqlite();
    let admin_pass = format!("adm-{}", random_hex(6));
    let served = Served::start(dir.path(), &database, Some(&admin_pass), &[]);
    let env = [
        ("REGKEEP_URL", served.url.as_str()),
        ("REGKEEP_USER", "admin"),
        ("REGKEEP_PASS", admin_pass.as_str()),
    ];
    expect(
        &regkeep(
            &env,
            &[
                "registry",
                "add",
                &p.http,
                &p.user,
                "--password-stdin",
                "--insecure",
                "--registry-type",
                "docker_v2",
            ],
            Some(&format!("{}\n", p.pass)),
        ),
        0,
        &[],
    );
    let single = format!("{}/test/hello:v1", p.http);
    let multi = format!("{}/test/multi:v1", p.http);
    for image in [&single, &multi] {
        let out = regkeep(
            &env,
            &["image", "add", image, "--platform", "windows/amd64"],
            None,
        );
        expect(&out, 1, &["linux/amd64"]);
        let layout = dir.path().join("layout");
        let out = regkeep(
            &env,
            &[
                "image",
                "pull",
                image,
                "--platform",
                "windows/amd64",
                "--output",
                layout.to_str().unwrap(),
            ],
            None,
        );
        expect(&out, 1, &["linux/amd64", "windows/amd64"]);
    }
    let out = regkeep(
        &env,
        &["image", "add", &single, "--platform", "linux/arm64"],
        None,
    );
    expect(&out, 1, &["has only linux/amd64"]);
    expect(&regkeep(&env, &["image", "add", &single], None), 0, &[]);
    expect(
        &regkeep(
            &env,
            &["image", "add", &multi, "--platform", "linux/arm64"],
            None,
        ),
        0,
        &[],
    );
    served.terminate();
}
