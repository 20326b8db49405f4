//! `docker-credential-regkeep` and `regkeep-credential-provider`, the built binary, against the
//! real server on port 0 (SQLite, the scripted ECR minter, an in-process registry): the docker
//! helper protocol byte for byte and the kubelet provider's answers. No root, no peer process.

#[path = "../../../tests/hermetic/fake_registry.rs"]
#[allow(dead_code)]
mod fake_registry;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use regkeep_domain::{Clock, ManualClock, Secret, SystemClock};
use regkeep_engine::testing::ScriptedMinter;
use regkeep_server::settings::Settings;
use regkeep_server::Application;
use serde_json::{json, Value};

use fake_registry::{Auth, FakeRegistry, PASS, USER};

const ECR: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
const HELPER: &str = env!("CARGO_BIN_EXE_docker-credential-regkeep");

struct Server {
    base: String,
    admin_pass: String,
    dir: tempfile::TempDir,
    http: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn server() -> Server {
    server_with(false).await
}

async fn server_with(static_passwords: bool) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let admin_pass = "helper-admin-pass".to_owned();
    let settings = Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().join("data"),
        default_admin_password: Some(Secret::new(&admin_pass)),
        outbound: regkeep_server::settings::OutboundConfig {
            allow_loopback: true,
            ..Default::default()
        },
        ..Settings::default()
    };
    let mut settings = settings;
    settings.handout.static_passwords = static_passwords;
    let clock = Arc::new(ManualClock::at(SystemClock.now()));
    let minter = ScriptedMinter::new(clock.clone());
    let app = Application::build_with(&settings, clock, minter)
        .await
        .unwrap();
    let base = format!("http://{}", app.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    Server {
        base,
        admin_pass,
        dir,
        http: reqwest::Client::new(),
        _stop: tx,
    }
}

impl Server {
    async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .basic_auth("admin", Some(&self.admin_pass));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    /// A key of the admin account with `scopes`, written to a file; its path.
    async fn key_file(&self, name: &str, scopes: &[&str]) -> PathBuf {
        let made = self
            .admin(
                reqwest::Method::POST,
                "/v1/apikeys",
                Some(json!({"scopes": scopes})),
            )
            .await;
        let path = self.dir.path().join(name);
        std::fs::write(&path, made["key"].as_str().unwrap()).unwrap();
        path
    }
}

/// Runs the helper (as `program`, a path whose file name says which protocol) with `args`,
/// `stdin`, and only the environment given: (exit code, stdout, stderr).
fn run(program: &Path, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> (i32, String, String) {
    let mut child = Command::new(program)
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docker_helper_protocol_byte_for_byte() {
    let server = server().await;
    let registry = FakeRegistry::start(Auth::Basic).await;
    server
        .admin(
            reqwest::Method::POST,
            "/v1/registries?validate=false",
            Some(json!({"registry": ECR, "registry_user": "AKIAHELPER",
                        "registry_pass": "helper-aws-secret", "registry_type": "awsecr"})),
        )
        .await;
    let reader = server.key_file("reader.key", &["credentials:read"]).await;
    let writer = server
        .key_file(
            "writer.key",
            &["registries:write", "read", "credentials:read"],
        )
        .await;
    let helper = Path::new(HELPER);
    let env = |key: &Path| {
        vec![
            ("REGKEEP_URL", server.base.clone()),
            ("REGKEEP_API_KEY_FILE", key.display().to_string()),
            ("HOME", server.dir.path().display().to_string()),
        ]
    };
    let with = |key: &Path| -> Vec<(&'static str, String)> { env(key) };
    let as_refs = |v: &Vec<(&'static str, String)>| -> Vec<(&'static str, String)> { v.clone() };
    let call = |args: &[&str], stdin: &str, env: &Vec<(&'static str, String)>| {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        run(helper, args, stdin, &env)
    };
    let reader_env = as_refs(&with(&reader));
    let writer_env = as_refs(&with(&writer));

    // get: the ECR token, in the protocol's JSON, ServerURL as it was sent.
    let (code, out, err) = call(&["get"], &format!("https://{ECR}\n"), &reader_env);
    assert_eq!(code, 0, "{out} {err}");
    let answer: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        answer.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["Secret", "ServerURL", "Username"]
    );
    assert_eq!(answer["ServerURL"], format!("https://{ECR}"));
    assert_eq!(answer["Username"], "AWS");
    assert!(answer["Secret"]
        .as_str()
        .unwrap()
        .starts_with("fake-ecr-token-"));
    assert!(out.ends_with('\n'));

    // An unknown host: exactly the text consumers match, on stdout, exit 1.
    let (code, out, _) = call(&["get"], "unknown.example.com", &reader_env);
    assert_eq!(
        (code, out.as_str()),
        (1, "credentials not found in native keychain\n")
    );

    // store (docker login): registered in regkeep, validated against the registry.
    // The fake registry speaks plain HTTP: the server URL says so, as docker sends it for an
    // insecure registry.
    let server_url = format!("http://{}", registry.authority);
    let login = json!({"ServerURL": server_url, "Username": USER, "Secret": PASS}).to_string();
    let (code, out, err) = call(&["store"], &login, &reader_env);
    assert_eq!(code, 1, "a key without registries:write cannot store");
    assert!(out.contains("registries:write"), "{out}");
    assert!(err.contains("registries:write"), "{err}");
    let bad = json!({"ServerURL": server_url, "Username": USER, "Secret": "wrong"}).to_string();
    let (code, out, _) = call(&["store"], &bad, &writer_env);
    assert_eq!(
        code, 1,
        "a wrong password is refused by the registry: {out}"
    );
    assert!(out.contains("regkeep refused"), "{out}");
    let (code, out, err) = call(&["store"], &login, &writer_env);
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
    // docker login to the ECR host never turns the ECR entry into a stored password.
    let ecr_login =
        json!({"ServerURL": ECR, "Username": "AWS", "Secret": "a-copied-token"}).to_string();
    let (code, out, _) = call(&["store"], &ecr_login, &writer_env);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("awsecr registry"), "{out}");
    // Again (docker login twice): an update, not a failure.
    let (code, _, err) = call(&["store"], &login, &writer_env);
    assert_eq!(code, 0, "{err}");
    let listed = server
        .admin(reqwest::Method::GET, "/v1/registries", None)
        .await;
    assert!(listed.to_string().contains(&registry.authority), "{listed}");

    // list: server URL → user name.
    let (code, out, _) = call(&["list"], "", &writer_env);
    assert_eq!(code, 0);
    let map: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(map[&registry.authority], USER);
    assert_eq!(map[ECR], "AKIAHELPER");

    // A stored password is not handed out unless the server allows it.
    let (code, out, _) = call(&["get"], &registry.authority, &reader_env);
    assert_eq!(code, 1);
    assert!(out.contains("handout.static_passwords"), "{out}");

    // erase (docker logout): nothing removed unless the helper is configured to.
    let (code, out, _) = call(&["erase"], &registry.authority, &writer_env);
    assert_eq!((code, out.as_str()), (0, ""));
    let listed = server
        .admin(reqwest::Method::GET, "/v1/registries", None)
        .await;
    assert!(listed.to_string().contains(&registry.authority));
    let config_dir = server.dir.path().join("xdg").join("regkeep");
    std::fs::create_dir_all(&config_dir).unwrap();
    std::fs::write(
        config_dir.join("helper.yaml"),
        format!(
            "url: {}\nkey_file: {}\nerase_deletes: true\n",
            server.base,
            writer.display()
        ),
    )
    .unwrap();
    let xdg = server.dir.path().join("xdg").display().to_string();
    let file_env = vec![("XDG_CONFIG_HOME", xdg)];
    let (code, out, err) = call(&["erase"], &registry.authority, &file_env);
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
    let listed = server
        .admin(reqwest::Method::GET, "/v1/registries", None)
        .await;
    assert!(
        !listed.to_string().contains(&registry.authority),
        "{listed}"
    );

    // Malformed input and missing configuration: a clear line, exit 1.
    let (code, out, _) = call(&["store"], "{not json", &writer_env);
    assert_eq!(code, 1);
    assert!(out.starts_with("store reads"), "{out}");
    let (code, out, _) = call(&["get"], ECR, &vec![]);
    assert_eq!(code, 1);
    assert!(out.contains("REGKEEP_URL"), "{out}");
    let (code, out, _) = call(&["version"], "", &vec![]);
    assert_eq!(code, 0);
    assert!(out.starts_with("docker-credential-regkeep"));

    // A revoked key: the helper says so.
    let id = std::fs::read_to_string(&reader).unwrap()[3..19].to_owned();
    server
        .admin(reqwest::Method::DELETE, &format!("/v1/apikeys/{id}"), None)
        .await;
    let (code, out, _) = call(&["get"], ECR, &reader_env);
    assert_eq!(code, 1);
    assert!(out.contains("revoked"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubelet_provider_answers_in_the_kubelet_s_types() {
    let server = server_with(true).await;
    for (registry, kind) in [(ECR, "awsecr"), ("reg.example.com/team/*", "docker_v2")] {
        server
            .admin(
                reqwest::Method::POST,
                "/v1/registries?validate=false",
                Some(json!({"registry": registry, "registry_user": "AKIAKUBELET",
                            "registry_pass": "kubelet-aws-secret", "registry_type": kind})),
            )
            .await;
    }
    let key = server.key_file("node.key", &["credentials:read"]).await;
    // The same binary, started under the provider's name.
    let provider = server.dir.path().join("regkeep-credential-provider");
    std::os::unix::fs::symlink(HELPER, &provider).unwrap();
    let env = [
        ("REGKEEP_URL", server.base.as_str()),
        ("REGKEEP_API_KEY_FILE", key.to_str().unwrap()),
    ];
    let request = |image: &str| {
        json!({"apiVersion": "credentialprovider.kubelet.k8s.io/v1",
               "kind": "CredentialProviderRequest", "image": image})
        .to_string()
    };
    let (code, out, err) = run(&provider, &[], &request(&format!("{ECR}/team/app:1")), &env);
    assert_eq!(code, 0, "{err}");
    let answer: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(answer["apiVersion"], "credentialprovider.kubelet.k8s.io/v1");
    assert_eq!(answer["kind"], "CredentialProviderResponse");
    assert_eq!(answer["cacheKeyType"], "Registry");
    assert_eq!(answer["auth"][ECR]["username"], "AWS");
    // Half the token's life (the scripted tokens live 12 h, less the lifecycle's margin).
    let seconds: i64 = answer["cacheDuration"]
        .as_str()
        .unwrap()
        .trim_end_matches('s')
        .parse()
        .unwrap();
    assert!((5 * 3600..=6 * 3600).contains(&seconds), "{answer}");

    // A wildcard entry: keyed by its prefix, cached per image, a stored password briefly.
    let (code, out, err) = run(&provider, &[], &request("reg.example.com/team/app:2"), &env);
    assert_eq!(code, 0, "{err}");
    let answer: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(answer["cacheKeyType"], "Image", "{answer}");
    assert_eq!(answer["cacheDuration"], "300s");
    assert_eq!(
        answer["auth"]["reg.example.com/team"]["username"],
        "AKIAKUBELET"
    );

    let (code, out, _) = run(&provider, &[], &request("unknown.example.com/x:1"), &env);
    assert_eq!(code, 0);
    let answer: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(answer["auth"], json!({}));

    let (code, _, err) = run(&provider, &[], "{\"kind\": 1}", &env);
    assert_eq!(code, 1);
    assert!(err.contains("CredentialProviderRequest"), "{err}");
}
