//! `regkeep image pull` end to end: the binary pulls through a regkeep served in-process from the
//! real registries the peers seed (pushed with skopeo), writes an OCI image layout, and skopeo
//! copies that layout back into a registry with the same digest. Also: a registry that redirects
//! blobs to another host never sees the credentials there, and an interrupted pull leaves no
//! half-written blob under its final name.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};

use common::{
    assert_no_secrets, captured_logs, peers, random_hex, registry_body, Backend, TestApp,
};
use reqwest::StatusCode;

const BIN: &str = env!("CARGO_BIN_EXE_regkeep");

fn var(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run the tests with scripts/test.sh"))
}

/// The regkeep CLI against `app`, as admin, the password through the environment.
async fn regkeep(app: &TestApp, args: &[&str]) -> Output {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("REGKEEP_URL", &app.base)
        .env("REGKEEP_USER", "admin")
        .env("REGKEEP_PASS", &app.admin_pass);
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn skopeo(args: &[&str]) -> Output {
    Command::new(var("REGKEEP_TEST_SKOPEO"))
        .args(args)
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every blob under its final name in the layout has the digest its name says; gives the names
/// of the temporary files (`.partial-*`) there.
fn verify_layout_blobs(dir: &Path) -> Vec<String> {
    let mut partials = Vec::new();
    for entry in std::fs::read_dir(dir.join("blobs/sha256")).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(".partial-") {
            partials.push(name);
            continue;
        }
        let bytes = std::fs::read(entry.path()).unwrap();
        assert_eq!(
            common::sha256(&bytes),
            format!("sha256:{name}"),
            "blob {name}"
        );
    }
    partials
}

/// [`verify_layout_blobs`], and no temporary file is left.
fn assert_layout_blobs_verified(dir: &Path) {
    let partials = verify_layout_blobs(dir);
    assert!(
        partials.is_empty(),
        "temporary blobs were left: {partials:?}"
    );
}

async fn app_with_registries() -> TestApp {
    let p = peers();
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.tls.ca_bundle = Some(p.ca.clone());
    })
    .await;
    for registry in [&p.http, &p.bearer] {
        app.add_plain_http_registry(registry, &p.user, &p.pass)
            .await;
    }
    let (status, answer) = app
        .post("/v1/registries", registry_body(&p.tls, &p.user, &p.pass))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    app
}

#[tokio::test]
async fn pulled_layouts_round_trip_through_skopeo_with_the_same_digest() {
    crate::skip_without_peers!();
    let p = peers();
    let app = app_with_registries().await;
    let work = tempfile::tempdir().unwrap();
    let cases = [
        (
            &p.http,
            "test/hello:v1",
            None,
            var("REGKEEP_TEST_IMAGE_DIGEST"),
        ),
        (
            &p.tls,
            "test/hello-v2s2:v1",
            None,
            var("REGKEEP_TEST_V2S2_DIGEST"),
        ),
        (
            &p.bearer,
            "test/multi:v1",
            Some("linux/arm64"),
            var("REGKEEP_TEST_MULTI_ARM64_DIGEST"),
        ),
        (
            &p.http,
            "test/multi:v1",
            None,
            var("REGKEEP_TEST_MULTI_AMD64_DIGEST"),
        ),
    ];
    for (i, (registry, image, platform, want)) in cases.into_iter().enumerate() {
        let what = format!("{registry}/{image} {platform:?}");
        let dir = work.path().join(format!("layout-{i}"));
        let reference = format!("{registry}/{image}");
        let mut args = vec![
            "--json",
            "image",
            "pull",
            &reference,
            "--output",
            dir.to_str().unwrap(),
        ];
        if let Some(platform) = platform {
            args.extend(["--platform", platform]);
        }
        let out = regkeep(&app, &args).await;
        assert!(out.status.success(), "{what}: {}", text(&out));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        // A Docker schema 2 manifest is rewritten with OCI media types (a layout holds OCI
        // manifests); the registry's digest is reported as converted_from.
        let want = if image.contains("v2s2") {
            assert_eq!(report["converted_from"], want.as_str(), "{what}");
            assert_ne!(report["manifest_digest"], want.as_str(), "{what}");
            report["manifest_digest"].as_str().unwrap().to_owned()
        } else {
            assert_eq!(report["manifest_digest"], want.as_str(), "{what}");
            want
        };
        assert!(report["downloaded"].as_u64().unwrap() > 0, "{what}");
        assert_layout_blobs_verified(&dir);
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
        assert_eq!(index["manifests"][0]["digest"], want.as_str(), "{what}");
        assert_eq!(
            index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
            "v1"
        );

        // skopeo reads the layout and pushes it back, unchanged.
        let target = format!("{}/roundtrip/{}-{}:v1", p.anon, random_hex(4), i);
        let out = skopeo(&[
            "--insecure-policy",
            "copy",
            "-q",
            "--dest-tls-verify=false",
            &format!("oci:{}:v1", dir.display()),
            &format!("docker://{target}"),
        ]);
        assert!(out.status.success(), "{what}: skopeo copy: {}", text(&out));
        let out = skopeo(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{target}"),
        ]);
        assert!(out.status.success(), "{what}: {}", text(&out));
        assert_eq!(
            common::sha256(&out.stdout),
            want,
            "{what}: the digest after the round trip"
        );

        // umoci unpacks it (the one-layer hello image: its file is there).
        if image == "test/hello:v1" {
            let bundle = work.path().join(format!("bundle-{i}"));
            let out = Command::new("umoci")
                .args([
                    "unpack",
                    "--rootless",
                    "--image",
                    &format!("{}:v1", dir.display()),
                    bundle.to_str().unwrap(),
                ])
                .output()
                .unwrap();
            assert!(out.status.success(), "umoci unpack: {}", text(&out));
            assert_eq!(
                std::fs::read_to_string(bundle.join("rootfs/hello.txt")).unwrap(),
                "hello from the regkeep test image\n"
            );
        }

        // Pulling again into the same layout downloads nothing: every blob is already there.
        let out = regkeep(&app, &args).await;
        assert!(out.status.success(), "{what}: {}", text(&out));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["downloaded"], 0, "{what}");
    }

    // On a terminal (a pseudo-terminal from script(1)) the pull shows its progress bar; elsewhere
    // (every run above: pipes) it prints only its result line.
    let dir = work.path().join("tty");
    let command = format!(
        "{BIN} image pull {}/test/hello:v1 --output {}",
        p.http,
        dir.display()
    );
    let mut script = Command::new("script");
    script
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .env("REGKEEP_URL", &app.base)
        .env("REGKEEP_USER", "admin")
        .env("REGKEEP_PASS", &app.admin_pass);
    // Off the runtime's thread: the server answering it runs on this (current-thread) runtime.
    let out = tokio::task::spawn_blocking(move || script.output().unwrap())
        .await
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        shown.contains("layers") && shown.contains("B/"),
        "no progress bar on a terminal: {shown:?}"
    );
    assert!(shown.contains("Pulled "), "{shown:?}");
    let out = regkeep(
        &app,
        &[
            "image",
            "pull",
            &format!("{}/test/hello:v1", p.http),
            "--output",
            work.path().join("pipe").to_str().unwrap(),
        ],
    )
    .await;
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "nothing but the result off a terminal: {}",
        text(&out)
    );

    // The index digest of the multi-platform image is what skopeo pushed; the layout holds the
    // platform manifest.
    let out = regkeep(
        &app,
        &[
            "--json",
            "image",
            "pull",
            &format!("{}/test/multi:v1", p.http),
            "--output",
            work.path().join("m").to_str().unwrap(),
            "--platform",
            "linux/s390x",
        ],
    )
    .await;
    // A platform the image lacks is a refusal (exit 1), naming those it has.
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("linux/amd64, linux/arm64/v8"), "{stderr}");

    // Unknown tag: the server's refusal, exit 1, nothing written under a final name.
    let dir = work.path().join("missing");
    let out = regkeep(
        &app,
        &[
            "image",
            "pull",
            &format!("{}/test/hello:nope", p.http),
            "--output",
            dir.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not found"),
        "{}",
        text(&out)
    );
    assert!(!dir.join("index.json").exists());

    assert_no_secrets("server logs", &captured_logs(), &[&p.pass]);
    app.finish().await;
}

#[tokio::test]
async fn a_blob_redirect_to_another_host_carries_no_credentials() {
    crate::skip_without_peers!();
    let p = peers();
    let front = var("REGKEEP_TEST_REGISTRY_REDIRECT");
    let seen_url = var("REGKEEP_TEST_REDIRECT_SEEN_URL");
    let http = reqwest::Client::new();
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.add_plain_http_registry(&front, &p.user, &p.pass).await;
    http.post(seen_url.replace("/_seen", "/_reset"))
        .send()
        .await
        .unwrap();

    // Resolution reads the config blob through the redirect.
    let (status, answer) = app
        .post(
            "/v1/images",
            serde_json::json!({"tag": format!("{front}/test/hello:v1")}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer[0]["imageDigest"],
        var("REGKEEP_TEST_IMAGE_DIGEST").as_str()
    );
    // A pull reads the layer through it too.
    let dir = tempfile::tempdir().unwrap();
    let out = regkeep(
        &app,
        &[
            "image",
            "pull",
            &format!("{front}/test/hello:v1"),
            "--output",
            dir.path().to_str().unwrap(),
        ],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    assert_layout_blobs_verified(dir.path());

    let seen: serde_json::Value = http
        .get(&seen_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(seen["requests"].as_u64().unwrap() >= 2, "{seen}");
    assert_eq!(seen["with_authorization"], 0, "{seen}");
    app.finish().await;
}

/// Pushes a one-layer image whose layer is `size` random bytes to `repo:v1` of the anonymous
/// registry; gives the layer's digest.
async fn push_big_image(repo: &str, size: usize) -> String {
    use rand::RngCore as _;
    let base = format!("http://{}", peers().anon);
    let http = reqwest::Client::new();
    let mut layer = vec![0u8; size];
    rand::thread_rng().fill_bytes(&mut layer);
    let none = ("", "");
    let (layer_digest, layer_size) = common::push_blob(&http, &base, repo, none, &layer).await;
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let (config_digest, config_size) = common::push_blob(&http, &base, repo, none, config).await;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer_size}],
    });
    common::push_manifest(
        &http,
        &base,
        repo,
        none,
        "v1",
        "application/vnd.oci.image.manifest.v1+json",
        &manifest,
    )
    .await;
    layer_digest
}

/// Starts `regkeep image pull` and stops it with `signal` once a layer is being written.
/// Gives the exit status and whether the signal caught it mid-download.
fn interrupt_pull(
    app: &TestApp,
    image: &str,
    dir: &Path,
    signal: &str,
) -> (std::process::ExitStatus, bool) {
    let mut child = Command::new(BIN)
        .args(["image", "pull", image, "--output", dir.to_str().unwrap()])
        .env_clear()
        .env("REGKEEP_URL", &app.base)
        .env("REGKEEP_USER", "admin")
        .env("REGKEEP_PASS", &app.admin_pass)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let blobs = dir.join("blobs/sha256");
    let mut caught = false;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status, caught);
        }
        let partial = std::fs::read_dir(&blobs)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                e.file_name().to_string_lossy().starts_with(".partial-")
                    && e.metadata().is_ok_and(|m| m.len() > 0)
            });
        if partial && !caught {
            caught = true;
            let pid = child.id().to_string();
            assert!(Command::new("kill")
                .args([signal, &pid])
                .status()
                .unwrap()
                .success());
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_pull_leaves_no_half_written_blob_under_its_final_name() {
    crate::skip_without_peers!();
    let p = peers();
    let app = TestApp::spawn(Backend::Sqlite).await;
    // The registry has no authentication but speaks plain HTTP: registered with verification
    // off (an unregistered one is reached with TLS verification on).
    app.add_plain_http_registry(&p.anon, "nobody", "unused")
        .await;
    let repo = format!("big/{}", random_hex(4));
    let layer = push_big_image(&repo, 128 * 1024 * 1024).await;
    let image = format!("{}/{repo}:v1", p.anon);
    let work = tempfile::tempdir().unwrap();

    // Killed outright (SIGKILL: no chance to clean up) while the layer streams in.
    let dir = work.path().join("killed");
    let (app_ref, image_ref, dir_ref) = (&app, image.clone(), dir.clone());
    let (status, caught) =
        tokio::task::block_in_place(|| interrupt_pull(app_ref, &image_ref, &dir_ref, "-KILL"));
    assert!(caught, "the pull was stopped while writing the layer");
    assert!(!status.success());
    assert!(!dir
        .join("blobs/sha256")
        .join(layer.trim_start_matches("sha256:"))
        .exists());
    assert!(
        !dir.join("index.json").exists(),
        "no index names an incomplete image"
    );
    verify_layout_blobs(&dir);
    // Pulled again, it completes, every blob verifies, and the killed pull's temporary file
    // (its process gone) is swept.
    let out = regkeep(
        &app,
        &["image", "pull", &image, "--output", dir.to_str().unwrap()],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    assert_layout_blobs_verified(&dir);
    assert!(dir
        .join("blobs/sha256")
        .join(layer.trim_start_matches("sha256:"))
        .exists());

    // Interrupted with SIGINT (Ctrl-C): exit 130 and its temporary files are removed.
    let dir = work.path().join("interrupted");
    let dir_ref = dir.clone();
    let (status, caught) =
        tokio::task::block_in_place(|| interrupt_pull(&app, &image, &dir_ref, "-INT"));
    assert!(caught);
    assert_eq!(status.code(), Some(130));
    assert_layout_blobs_verified(&dir);
    assert!(!dir.join("index.json").exists());
    app.finish().await;
}

#[tokio::test]
async fn image_commands_add_get_list_del() {
    crate::skip_without_peers!();
    let p = peers();
    let app = app_with_registries().await;
    let digest = var("REGKEEP_TEST_MULTI_DIGEST");
    let image = format!("{}/test/multi:v1", p.bearer);
    let out = regkeep(
        &app,
        &[
            "--json",
            "image",
            "add",
            &image,
            "--platform",
            "linux/arm64",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let added: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(added[0]["imageDigest"], digest.as_str());
    assert_eq!(added[0]["platform"], "linux/arm64/v8");
    assert_eq!(
        added[0]["manifest_digest"],
        var("REGKEEP_TEST_MULTI_ARM64_DIGEST").as_str()
    );
    assert_eq!(added[0]["image_detail"][0]["fulltag"], image.as_str());

    let out = regkeep(&app, &["image", "list"]).await;
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && table.contains(&image) && table.contains(&digest),
        "{table}"
    );
    assert!(table.contains("resolved"), "{table}");
    let out = regkeep(&app, &["--json", "image", "get", &digest]).await;
    assert!(out.status.success(), "{}", text(&out));
    let out = regkeep(&app, &["image", "del", &digest]).await;
    assert!(out.status.success(), "{}", text(&out));
    let out = regkeep(&app, &["image", "get", &digest]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not recorded"),
        "{}",
        text(&out)
    );

    // An older digest under its tag: recorded as asked, and a note names where the tag points
    // now (the index; its linux/amd64 manifest is the older digest).
    let amd64 = var("REGKEEP_TEST_MULTI_AMD64_DIGEST");
    let out = regkeep(&app, &["image", "add", &image, "--digest", &amd64]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!(
            "{image} points at {digest} now; recorded {amd64} as asked"
        )),
        "{}",
        text(&out)
    );
    // get by tag and by image ID; del by image ID.
    let out = regkeep(&app, &["--json", "image", "get", &image]).await;
    assert!(out.status.success(), "{}", text(&out));
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        got[0]["imageDigest"],
        amd64.as_str(),
        "the tag was added at it last"
    );
    let image_id = got[0]["image_detail"][0]["imageId"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = regkeep(&app, &["image", "list"]).await;
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&image_id[..12]),
        "{}",
        text(&out)
    );
    let out = regkeep(&app, &["image", "del", &image_id]).await;
    assert!(out.status.success(), "{}", text(&out));
    let out = regkeep(&app, &["image", "get", &amd64]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));

    // Bad input: a clear local error, exit 2 (pull) or the server's 400, exit 1 (add).
    let out = regkeep(&app, &["image", "add", "Bad Reference"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let out = regkeep(
        &app,
        &["image", "pull", "Bad Reference", "--output", "/tmp/x"],
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = regkeep(
        &app,
        &[
            "image",
            "pull",
            &image,
            "--output",
            "/tmp/x",
            "--platform",
            "linux",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("os/arch"),
        "{}",
        text(&out)
    );
    app.finish().await;
}

#[tokio::test]
async fn a_repeated_layer_is_pulled_once_and_the_layout_reads_back() {
    crate::skip_without_peers!();
    let p = peers();
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.add_plain_http_registry(&p.anon, "nobody", "unused")
        .await;
    // Two layers with the same digest, as buildkit's empty layer often is.
    let base = format!("http://{}", p.anon);
    let repo = format!("repeat/{}", random_hex(4));
    let http = reqwest::Client::new();
    let none = ("", "");
    let (layer, layer_size) =
        common::push_blob(&http, &base, &repo, none, b"the same layer twice").await;
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let (config_digest, config_size) = common::push_blob(&http, &base, &repo, none, config).await;
    let layer_descriptor = serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": layer_size});
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": [layer_descriptor, layer_descriptor],
    });
    let (digest, _) = common::push_manifest(
        &http,
        &base,
        &repo,
        none,
        "v1",
        "application/vnd.oci.image.manifest.v1+json",
        &manifest,
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let out = regkeep(
        &app,
        &[
            "--json",
            "image",
            "pull",
            &format!("{}/{repo}:v1", p.anon),
            "--output",
            dir.path().to_str().unwrap(),
        ],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["manifest_digest"], digest.as_str());
    assert_eq!(report["layers"], 2);
    assert_eq!(
        report["bytes"],
        (layer_size + config_size) as u64,
        "each blob counted once"
    );
    assert_layout_blobs_verified(dir.path());
    let out = skopeo(&["inspect", &format!("oci:{}:v1", dir.path().display())]);
    assert!(out.status.success(), "{}", text(&out));
    app.finish().await;
}
