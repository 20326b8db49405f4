//! The bridges with real consumers: skopeo (containers/image) pulls through
//! `docker-credential-regkeep` with an `auth.json` that holds only `credHelpers` — no registry
//! secret and no AWS identity on its side — from the htpasswd registry, the Bearer registry and
//! the registry under the real ECR host name with a moto-minted token; and it fails with the
//! helper's message when the key lacks the scope or is revoked.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{peers, var, Backend, TestApp};
use reqwest::StatusCode;
use serde_json::json;

/// The helper the workspace built beside this test binary (target/<profile>/).
fn helper_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let helper = dir.join("docker-credential-regkeep");
    assert!(
        helper.exists(),
        "{} is not built: run `cargo nextest run --workspace` (scripts/test.sh), which builds it",
        helper.display()
    );
    helper
}

struct Consumer {
    dir: tempfile::TempDir,
    path_env: String,
}

impl Consumer {
    /// A machine with skopeo, the helper on its PATH, an auth.json naming the helper for
    /// `registries`, and the key in a file: nothing else.
    fn new(registries: &[&str]) -> Consumer {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        std::os::unix::fs::symlink(helper_binary(), bin.join("docker-credential-regkeep")).unwrap();
        let helpers: serde_json::Map<String, serde_json::Value> = registries
            .iter()
            .map(|r| ((*r).to_owned(), json!("regkeep")))
            .collect();
        std::fs::write(
            dir.path().join("auth.json"),
            json!({ "credHelpers": helpers }).to_string(),
        )
        .unwrap();
        // The private CA of the TLS registries, where skopeo's --cert-dir reads it.
        let certs = dir.path().join("certs");
        std::fs::create_dir(&certs).unwrap();
        std::fs::copy(var("REGKEEP_TEST_CA"), certs.join("ca.crt")).unwrap();
        let path_env = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Consumer { dir, path_env }
    }

    fn key_file(&self, key: &str) -> PathBuf {
        let path = self.dir.path().join("regkeep.key");
        std::fs::write(&path, key).unwrap();
        path
    }

    /// `skopeo ARGS` with only this machine's environment.
    fn skopeo(&self, app: &TestApp, args: &[&str]) -> Output {
        Command::new(var("REGKEEP_TEST_SKOPEO"))
            .args(args)
            .env_clear()
            .env("PATH", &self.path_env)
            .env("HOME", self.dir.path())
            .env("REGKEEP_URL", &app.base)
            .env("REGKEEP_API_KEY_FILE", self.dir.path().join("regkeep.key"))
            .output()
            .unwrap()
    }

    fn authfile(&self) -> String {
        self.dir.path().join("auth.json").display().to_string()
    }

    fn certs(&self) -> String {
        self.dir.path().join("certs").display().to_string()
    }
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn key(app: &TestApp, scopes: &[&str]) -> (String, String) {
    let (status, made) = app
        .post(
            "/v1/apikeys",
            json!({"scopes": scopes, "description": "skopeo"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    (
        made["key"].as_str().unwrap().to_owned(),
        made["key_id"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_skopeo_pulls_through_the_credential_helper_with_no_secret_of_its_own() {
    crate::skip_without_peers!();
    crate::ecr_aws::aws_environment(&var("REGKEEP_TEST_MOTO_URL"));
    let p = peers();
    let ecr = var("REGKEEP_TEST_REGISTRY_ECR");
    let digest = var("REGKEEP_TEST_IMAGE_DIGEST");
    let ca = p.ca.clone();
    let app = TestApp::spawn_with(Backend::Sqlite, move |s| {
        s.tls.ca_bundle = Some(ca);
        s.handout.static_passwords = true;
    })
    .await;
    for registry in [&p.http, &p.bearer] {
        app.add_plain_http_registry(registry, &p.user, &p.pass)
            .await;
    }
    let (status, answer) = app
        .post(
            "/v1/registries",
            json!({"registry": ecr, "registry_user": var("REGKEEP_TEST_AWS_ACCESS_KEY_ID"),
                   "registry_pass": var("REGKEEP_TEST_AWS_SECRET_ACCESS_KEY")}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    let consumer = Consumer::new(&[&p.http, &p.bearer, &ecr]);
    let (reader, reader_id) = key(&app, &["credentials:read"]).await;
    consumer.key_file(&reader);
    let work = tempfile::tempdir().unwrap();
    for (i, (what, registry, tls)) in [
        ("htpasswd registry", &p.http, false),
        ("Bearer registry", &p.bearer, false),
        ("ECR under its real name, moto's token", &ecr, true),
    ]
    .into_iter()
    .enumerate()
    {
        let image = format!("docker://{registry}/test/hello:v1");
        let certs = consumer.certs();
        let authfile = consumer.authfile();
        let mut inspect = vec!["inspect", "--authfile", authfile.as_str()];
        let mut copy = vec!["copy", "--authfile", authfile.as_str()];
        if tls {
            inspect.extend(["--cert-dir", certs.as_str()]);
            copy.extend(["--src-cert-dir", certs.as_str()]);
        } else {
            inspect.push("--tls-verify=false");
            copy.push("--src-tls-verify=false");
        }
        inspect.push(&image);
        let out = consumer.skopeo(&app, &inspect);
        assert!(
            out.status.success(),
            "{what}: skopeo inspect: {}",
            text(&out)
        );
        let inspected: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(inspected["Digest"], digest.as_str(), "{what}");

        let target = format!("dir:{}", work.path().join(format!("copy-{i}")).display());
        copy.extend([image.as_str(), target.as_str()]);
        let out = consumer.skopeo(&app, &copy);
        assert!(out.status.success(), "{what}: skopeo copy: {}", text(&out));
    }

    // Without the registry's own entry in regkeep a host is unknown: skopeo goes anonymous and
    // the registry refuses (the helper answered "not found", not an error).
    // A key without credentials:read, and a revoked key: skopeo fails with the helper's words.
    let (status, _) = app.delete(&format!("/v1/apikeys/{reader_id}")).await;
    assert_eq!(status, StatusCode::OK);
    let (reader_only, _) = key(&app, &["read"]).await;
    for (what, key, words) in [
        ("revoked key", reader.as_str(), "revoked"),
        (
            "key without credentials:read",
            reader_only.as_str(),
            "credentials:read",
        ),
    ] {
        consumer.key_file(key);
        let image = format!("docker://{ecr}/test/hello:v1");
        let out = consumer.skopeo(
            &app,
            &[
                "inspect",
                "--authfile",
                &consumer.authfile(),
                "--cert-dir",
                &consumer.certs(),
                &image,
            ],
        );
        assert!(!out.status.success(), "{what}: {}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(words),
            "{what}: skopeo shows the helper's message: {}",
            text(&out)
        );
    }

    common::assert_no_secrets(
        "the server's logs",
        &common::captured_logs(),
        &[
            &reader[20..],
            &p.pass,
            &var("REGKEEP_TEST_AWS_SECRET_ACCESS_KEY"),
        ],
    );
}
