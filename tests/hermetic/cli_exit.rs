//! The CLI's exit codes and `--json` errors, against the real server (issue 14, item 5): a script
//! can tell "my input is wrong" (1) from "regkeep refused who I am or broke" (2) from "try again"
//! (3), and read every error as JSON.

use std::process::{Command, Output};

use crate::app::HermeticApp;

const BIN: &str = env!("CARGO_BIN_EXE_regkeep");

async fn regkeep(url: &str, pass: &str, args: &[&str], stdin: Option<&str>) -> Output {
    regkeep_as(url, ("admin", pass), args, stdin).await
}

async fn regkeep_as(
    url: &str,
    (user, pass): (&str, &str),
    args: &[&str],
    stdin: Option<&str>,
) -> Output {
    use std::io::Write as _;
    let mut child = Command::new(BIN)
        .env_clear()
        .env("REGKEEP_URL", url)
        .env("REGKEEP_USER", user)
        .env("REGKEEP_PASS", pass)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap()
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_tell_wrong_input_from_failure_from_try_again() {
    let app = HermeticApp::spawn().await;
    let pass = app.admin_pass.clone();
    // 1: refused (not found).
    let out = regkeep(
        &app.base,
        &pass,
        &["registry", "get", "nowhere.example.com"],
        None,
    )
    .await;
    assert_eq!(code(&out), 1, "{out:?}");
    // The fix is the CLI's command, not the API path the server's message ends with.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("registry nowhere.example.com is not registered")
            && err.contains("Hint: `regkeep registry list`"),
        "{err}"
    );
    assert!(!err.contains("/v1/"), "{err}");
    // 2: authentication failed.
    let out = regkeep(&app.base, "wrong-password", &["registry", "list"], None).await;
    assert_eq!(code(&out), 2, "{out:?}");
    // 3: the registry is unreachable (nothing listens on port 1).
    let out = regkeep(
        &app.base,
        &pass,
        &[
            "registry",
            "add",
            "127.0.0.1:1",
            "u",
            "--password-stdin",
            "--insecure",
            "--registry-type",
            "docker_v2",
        ],
        Some("p\n"),
    )
    .await;
    assert_eq!(code(&out), 3, "{}", String::from_utf8_lossy(&out.stderr));
    // 3: regkeep itself is unreachable.
    let out = regkeep("http://127.0.0.1:1", &pass, &["registry", "list"], None).await;
    assert_eq!(code(&out), 3, "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach regkeep"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_errors_are_the_error_object_on_standard_output() {
    let app = HermeticApp::spawn().await;
    let pass = app.admin_pass.clone();
    let out = regkeep(
        &app.base,
        &pass,
        &["--json", "registry", "get", "nowhere.example.com"],
        None,
    )
    .await;
    assert_eq!(code(&out), 1);
    let error: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(error["httpcode"], 404, "{error}");
    assert_eq!(error["detail"]["reason"], "entity_not_found", "{error}");
    assert!(error["message"]
        .as_str()
        .unwrap()
        .contains("nowhere.example.com"));
    // The API's answer keeps its fix in the message (what anchore-cli shows) and alone.
    let fix = error["detail"]["fix"].as_str().unwrap();
    assert!(fix.contains("GET /v1/registries"), "{error}");
    assert!(error["message"].as_str().unwrap().ends_with(fix), "{error}");
    let out = regkeep(
        &app.base,
        "wrong-password",
        &["--json", "account", "whoami"],
        None,
    )
    .await;
    assert_eq!(code(&out), 2);
    let error: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(error["httpcode"], 401, "{error}");
    app.stop().await;
}

/// Issue 14: a disabled account's user with the right password was told to "give a valid user
/// name and password". They are told the account is disabled and who can enable it; a wrong
/// password is still only a wrong password (nothing said about the account).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_accounts_user_is_told_the_account_is_disabled() {
    let app = HermeticApp::spawn().await;
    let pass = app.admin_pass.clone();
    for (args, stdin) in [
        (&["account", "add", "team-d"][..], None),
        (
            &[
                "user",
                "add",
                "dana",
                "--account",
                "team-d",
                "--password-stdin",
            ][..],
            Some("dana-pass-1\n"),
        ),
        (&["account", "disable", "team-d"][..], None),
    ] {
        let out = regkeep(&app.base, &pass, args, stdin).await;
        assert_eq!(code(&out), 0, "{args:?}: {out:?}");
    }
    let out = regkeep_as(
        &app.base,
        ("dana", "dana-pass-1"),
        &["registry", "list"],
        None,
    )
    .await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(code(&out), 1, "refused, not a failure: {err}");
    assert!(
        err.contains("account team-d is disabled") && err.contains("regkeep account enable team-d"),
        "{err}"
    );
    assert!(!err.contains("valid user name and password"), "{err}");
    assert!(
        !err.contains("/v1/"),
        "the CLI's command, not the API path: {err}"
    );

    let out = regkeep_as(
        &app.base,
        ("dana", "not-her-pass"),
        &["registry", "list"],
        None,
    )
    .await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(code(&out), 2, "{err}");
    assert!(
        !err.contains("disabled"),
        "a wrong password learns nothing: {err}"
    );

    let out = regkeep(&app.base, &pass, &["account", "enable", "team-d"], None).await;
    assert_eq!(code(&out), 0, "{out:?}");
    let out = regkeep_as(
        &app.base,
        ("dana", "dana-pass-1"),
        &["registry", "list"],
        None,
    )
    .await;
    assert_eq!(code(&out), 0, "{out:?}");
    app.stop().await;
}
