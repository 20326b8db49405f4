//! `regkeep image pull REF --output DIR`: writes an OCI image layout (image-spec
//! `image-layout.md`) that skopeo (`oci:DIR:TAG`) and umoci read.
//!
//! The bytes come through the server's pull-through (`/v1/content/...`), which fetches them
//! with the credential that serves the image: registry passwords and ECR tokens never reach the
//! CLI. Every blob is streamed to a temporary name in `blobs/sha256/`, hashed as it is written,
//! checked against its descriptor (digest and size) and only then renamed to its final name, so
//! an interrupted pull never leaves a half-written blob where a reader would trust it. Memory
//! stays at a few buffers per download whatever the layer size. `index.json` is replaced
//! atomically last; an existing layout keeps its other images.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use futures_util::{StreamExt as _, TryStreamExt as _};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use regkeep_domain::oci::{
    docker_manifest_to_oci, is_sha256_digest, Descriptor, Manifest, Platform, DOCKER_MANIFEST,
    OCI_LAYOUT_FILE, OCI_MANIFEST, REF_NAME_ANNOTATION,
};
use regkeep_domain::ImageReference;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt as _;

use super::client::{Client, Refusal};

/// Blobs downloaded at once.
const PARALLEL_BLOBS: usize = 4;
/// Write buffer per download.
const WRITE_BUFFER: usize = 256 * 1024;
/// Prefix of blobs being written (never a valid digest, so never mistaken for one).
const TEMP_PREFIX: &str = ".partial-";

/// What a pull wrote.
#[derive(Debug, Serialize)]
pub struct PullReport {
    pub image: String,
    /// The digest the reference points at (an index for multi-platform images).
    pub digest: String,
    /// The platform manifest written to the layout.
    pub manifest_digest: String,
    /// The registry's Docker schema 2 manifest digest, when it was rewritten as OCI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub converted_from: Option<String>,
    pub platform: Option<String>,
    pub layers: usize,
    /// Bytes of the blobs (config and layers) in the image.
    pub bytes: u64,
    /// Bytes downloaded now (blobs already in the layout are kept).
    pub downloaded: u64,
    pub output: PathBuf,
    /// The name the image has in the layout (`oci:DIR:NAME`).
    pub ref_name: Option<String>,
}

/// Why a pull failed: a server refusal (exit code from it) or anything else.
pub enum PullError {
    Refused(Refusal),
    /// The image has no manifest for the platform asked for (the message names those it has).
    NoSuchPlatform(String),
    Other(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for PullError {
    fn from(e: E) -> Self {
        PullError::Other(e.into())
    }
}

/// Refuses a single-platform image whose config names another platform than `platform`.
async fn check_single_platform(
    client: &Client,
    name: &str,
    config: &Descriptor,
    image: &ImageReference,
    platform: &Platform,
) -> Result<(), PullError> {
    let path = format!("/content/{name}/blobs/{}", config.digest);
    let response = match client.get_stream(&path).await? {
        Ok(response) => response,
        Err(refusal) => return Err(PullError::Refused(refusal)),
    };
    // A config is small; bounded all the same (the server bounds what it reads too).
    let bytes = response.bytes().await.context("reading the image config")?;
    if bytes.len() > 8 << 20 {
        return Err(anyhow::anyhow!("the image config of {image} is larger than 8 MiB").into());
    }
    let config: regkeep_domain::oci::ImageConfig =
        serde_json::from_slice(&bytes).unwrap_or_default();
    if let (Some(os), Some(architecture)) = (config.os, config.architecture) {
        let there = Platform {
            os,
            architecture,
            variant: config.variant,
        };
        if !platform.served_by(&there) {
            return Err(PullError::NoSuchPlatform(format!(
                "{image} has only {there} (a single-platform image), not {platform}: leave out --platform, or give --platform {there}"
            )));
        }
    }
    Ok(())
}

/// Pulls `image` for `platform` into the layout at `output`.
///
/// # Errors
/// The server refused (unknown image, credentials refused), a digest did not match, or a local
/// I/O failure.
pub async fn pull(
    client: &Client,
    image: &ImageReference,
    platform: &Platform,
    explicit_platform: bool,
    output: &Path,
) -> Result<PullReport, PullError> {
    let name = format!("{}/{}", image.authority(), image.repository());
    let reference = image.reference();
    let blobs_dir = output.join("blobs").join("sha256");
    tokio::fs::create_dir_all(&blobs_dir)
        .await
        .with_context(|| format!("cannot create {}", blobs_dir.display()))?;
    remove_abandoned_partials(output);
    let (top_bytes, top_type, top_digest) =
        fetch_manifest(client, &name, reference, image.digest()).await?;
    let top: Manifest = serde_json::from_slice(&top_bytes)
        .with_context(|| format!("the manifest of {image} is not JSON"))?;
    let (bytes, media_type, digest, manifest, chosen_platform) = if top.is_index() {
        let entry = top
            .entry_for(platform)
            .map_err(|m| {
                PullError::NoSuchPlatform(format!("{image}: {m} (choose one with --platform)"))
            })?
            .clone();
        let (b, t, d) = fetch_manifest(client, &name, &entry.digest, Some(&entry.digest)).await?;
        let m: Manifest = serde_json::from_slice(&b)
            .with_context(|| format!("the manifest {} is not JSON", entry.digest))?;
        (b, t, d, m, entry.platform.map(|p| p.to_string()))
    } else {
        (top_bytes, top_type, top_digest.clone(), top, None)
    };
    let Some(config) = manifest.config.clone() else {
        return Err(anyhow::anyhow!("the manifest {digest} has no config: not an image").into());
    };
    if explicit_platform && chosen_platform.is_none() {
        // A single-platform image: its config says which platform it is, and a platform asked
        // for by name must be that one. The config comes first (small), the layers only then.
        check_single_platform(client, &name, &config, image, platform).await?;
    }
    for d in std::iter::once(&config).chain(&manifest.layers) {
        if !is_sha256_digest(&d.digest) {
            return Err(anyhow::anyhow!(
                "the manifest names blob `{}`, not a sha256 digest",
                d.digest
            )
            .into());
        }
    }
    // Each blob once: images often repeat a layer (the empty one of buildkit, for instance).
    let mut wanted: Vec<Descriptor> = Vec::new();
    for d in std::iter::once(config).chain(manifest.layers.iter().cloned()) {
        if !wanted.iter().any(|w| w.digest == d.digest) {
            wanted.push(d);
        }
    }
    let total: u64 = wanted.iter().map(|d| d.size).sum();
    let bar = progress_bar(total, manifest.layers.len());
    let shared = Arc::new(Shared {
        client,
        name: &name,
        dir: &blobs_dir,
        bar: &bar,
    });
    let downloaded: u64 = futures_util::stream::iter(wanted.iter().map(|d| {
        let shared = shared.clone();
        async move { shared.fetch_blob(d).await }
    }))
    .buffer_unordered(PARALLEL_BLOBS)
    .try_fold(0u64, |sum, n| async move { Ok(sum + n) })
    .await?;
    // An OCI layout holds OCI manifests: a Docker schema 2 one is rewritten with the OCI media
    // types (as skopeo does when it copies one into a layout); blobs are unchanged.
    let (bytes, media_type, layout_digest, converted_from) = if media_type == DOCKER_MANIFEST
        || manifest.media_type.as_deref() == Some(DOCKER_MANIFEST)
    {
        let oci = docker_manifest_to_oci(&bytes).map_err(|m| anyhow::anyhow!("{image}: {m}"))?;
        let d = regkeep_hex(Sha256::new_with_prefix(&oci));
        (oci, OCI_MANIFEST.to_owned(), d, Some(digest.clone()))
    } else {
        (bytes, media_type, digest.clone(), None)
    };
    write_file_atomically(&blobs_dir, &digest_hex(&layout_digest), &bytes).await?;
    bar.finish_and_clear();
    let ref_name = image.tag().map(str::to_owned);
    write_layout(
        output,
        &media_type,
        &layout_digest,
        bytes.len() as u64,
        ref_name.as_deref(),
    )
    .await?;
    Ok(PullReport {
        image: image.to_string(),
        digest: top_digest,
        manifest_digest: layout_digest,
        converted_from,
        platform: chosen_platform,
        layers: manifest.layers.len(),
        bytes: total,
        downloaded,
        output: output.to_owned(),
        ref_name,
    })
}

struct Shared<'a> {
    client: &'a Client,
    name: &'a str,
    dir: &'a Path,
    bar: &'a ProgressBar,
}

impl Shared<'_> {
    /// Downloads one blob unless the layout already has it; gives the bytes downloaded.
    async fn fetch_blob(&self, descriptor: &Descriptor) -> Result<u64, PullError> {
        let hex = digest_hex(&descriptor.digest);
        let target = self.dir.join(&hex);
        if existing_blob_matches(&target, descriptor).await {
            self.bar.inc(descriptor.size);
            return Ok(0);
        }
        let path = format!("/content/{}/blobs/{}", self.name, descriptor.digest);
        let mut response = match self.client.get_stream(&path).await? {
            Ok(r) => r,
            Err(refusal) => return Err(PullError::Refused(refusal)),
        };
        let temp = self.dir.join(temp_name(&hex));
        let result = async {
            let file = create_temp(&temp)
                .await
                .with_context(|| format!("cannot create {}", temp.display()))?;
            let mut writer = tokio::io::BufWriter::with_capacity(WRITE_BUFFER, file);
            let mut hash = Sha256::new();
            let mut written = 0u64;
            while let Some(chunk) = response
                .chunk()
                .await
                .with_context(|| format!("the download of {} broke off", descriptor.digest))?
            {
                written += chunk.len() as u64;
                if written > descriptor.size {
                    bail!(
                        "blob {} is larger than the {} bytes its manifest says: refusing it",
                        descriptor.digest,
                        descriptor.size
                    );
                }
                hash.update(&chunk);
                writer.write_all(&chunk).await?;
                self.bar.inc(chunk.len() as u64);
            }
            writer.flush().await?;
            let file = writer.into_inner();
            file.sync_data().await?;
            let actual = regkeep_hex(hash);
            if actual != descriptor.digest || written != descriptor.size {
                bail!(
                    "blob {} arrived as {actual} ({written} bytes, {} expected): refusing it",
                    descriptor.digest,
                    descriptor.size
                );
            }
            tokio::fs::rename(&temp, &target)
                .await
                .with_context(|| format!("cannot move the blob to {}", target.display()))?;
            Ok(written)
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&temp).await;
        }
        if self.bar.position() > 0 {
            self.bar
                .set_message(format!("{} done", short(&descriptor.digest)));
        }
        Ok(result?)
    }
}

/// GETs a manifest through the server and checks its digest (against `pinned` when given, else
/// against the digest the server reported).
async fn fetch_manifest(
    client: &Client,
    name: &str,
    reference: &str,
    pinned: Option<&str>,
) -> Result<(Vec<u8>, String, String), PullError> {
    let path = format!("/content/{name}/manifests/{reference}");
    let response = match client.get_stream(&path).await? {
        Ok(r) => r,
        Err(refusal) => return Err(PullError::Refused(refusal)),
    };
    let header = |n: &str| {
        response
            .headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let media_type = header("content-type").unwrap_or_default();
    let reported = header("docker-content-digest");
    let bytes = response
        .bytes()
        .await
        .context("reading a manifest")?
        .to_vec();
    let actual = regkeep_hex(Sha256::new_with_prefix(&bytes));
    if let Some(expected) = pinned.map(str::to_owned).or(reported) {
        if expected != actual {
            return Err(anyhow::anyhow!(
                "the manifest of {name}@{reference} is {actual}, not {expected}: refusing it"
            )
            .into());
        }
    }
    Ok((bytes, media_type, actual))
}

async fn existing_blob_matches(path: &Path, descriptor: &Descriptor) -> bool {
    let Ok(meta) = tokio::fs::metadata(path).await else {
        return false;
    };
    if meta.len() != descriptor.size {
        return false;
    }
    let path = path.to_owned();
    let expected = descriptor.digest.clone();
    tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::open(path)?;
        let mut hash = Sha256::new();
        std::io::copy(&mut file, &mut hash)?;
        Ok::<_, std::io::Error>(regkeep_hex(hash) == expected)
    })
    .await
    .ok()
    .and_then(Result::ok)
    .unwrap_or(false)
}

/// Writes `bytes` to `dir/name` through a temporary file and a rename.
async fn write_file_atomically(dir: &Path, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let temp = dir.join(temp_name(name));
    let target = dir.join(name);
    let result = async {
        let mut file = create_temp(&temp).await?;
        file.write_all(bytes).await?;
        file.sync_data().await?;
        tokio::fs::rename(&temp, &target).await
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&temp).await;
    }
    result.with_context(|| format!("cannot write {}", target.display()))
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LayoutIndex {
    schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    manifests: Vec<serde_json::Value>,
}

/// Writes `oci-layout` and adds the manifest to `index.json` (replacing an entry of the same
/// name, keeping the others).
async fn write_layout(
    output: &Path,
    media_type: &str,
    digest: &str,
    size: u64,
    ref_name: Option<&str>,
) -> anyhow::Result<()> {
    write_file_atomically(output, "oci-layout", OCI_LAYOUT_FILE.as_bytes()).await?;
    let index_path = output.join("index.json");
    let mut index = match tokio::fs::read(&index_path).await {
        Ok(bytes) => serde_json::from_slice::<LayoutIndex>(&bytes).with_context(|| {
            format!(
                "{} exists but is not an image layout index: choose an empty --output directory",
                index_path.display()
            )
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => LayoutIndex {
            schema_version: 2,
            media_type: Some(regkeep_domain::oci::OCI_INDEX.to_owned()),
            manifests: Vec::new(),
        },
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", index_path.display())),
    };
    let name_of = |entry: &serde_json::Value| {
        entry
            .pointer(&format!(
                "/annotations/{}",
                REF_NAME_ANNOTATION.replace('/', "~1")
            ))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    index.manifests.retain(|entry| match ref_name {
        Some(name) => name_of(entry).as_deref() != Some(name),
        None => entry.get("digest").and_then(|d| d.as_str()) != Some(digest),
    });
    let mut entry = serde_json::json!({"mediaType": media_type, "digest": digest, "size": size});
    if let Some(name) = ref_name {
        entry["annotations"] = serde_json::json!({ REF_NAME_ANNOTATION: name });
    }
    index.manifests.push(entry);
    let bytes = serde_json::to_vec(&index)?;
    write_file_atomically(output, "index.json", &bytes).await
}

fn progress_bar(total: u64, layers: usize) -> ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(total), target);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(format!("{layers} layers"));
    bar
}

fn digest_hex(digest: &str) -> String {
    digest.trim_start_matches("sha256:").to_owned()
}

fn short(digest: &str) -> &str {
    let hex = digest.trim_start_matches("sha256:");
    &hex[..hex.len().min(12)]
}

fn regkeep_hex(hash: Sha256) -> String {
    regkeep_domain::oci::sha256_digest_text(hash.finalize().into())
}

/// A temporary name in the layout, unique to this process and this write:
/// `.partial-<pid>-<n>-<final name>`.
fn temp_name(name: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{TEMP_PREFIX}{}-{n}-{name}", std::process::id())
}

/// Temporary files being created right now (on the blocking pool, where a dropped pull cannot
/// stop them).
static CREATING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Creates a temporary file, counted in [`CREATING`] until the creation has really happened or
/// failed: a pull dropped on Ctrl-C leaves creations in flight, and cleaning up before they land
/// would miss their files.
async fn create_temp(path: &Path) -> std::io::Result<tokio::fs::File> {
    use std::sync::atomic::Ordering;
    let path = path.to_owned();
    CREATING.fetch_add(1, Ordering::SeqCst);
    let created = tokio::task::spawn_blocking(move || {
        let file = std::fs::File::create(&path);
        CREATING.fetch_sub(1, Ordering::SeqCst);
        file
    })
    .await
    .map_err(std::io::Error::other)??;
    Ok(tokio::fs::File::from_std(created))
}

/// Waits until no temporary file is being created (at most 10 s: a hung disk must not hang the
/// exit).
pub async fn creations_settled() {
    for _ in 0..1000 {
        if CREATING.load(std::sync::atomic::Ordering::SeqCst) == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Removes temporary files that pulls killed outright (no chance to clean up) left in the
/// layout: those whose process no longer runs. Linux only (it asks `/proc`); elsewhere they stay.
fn remove_abandoned_partials(output: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    for dir in [output.to_owned(), output.join("blobs").join("sha256")] {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let pid = name
                .to_string_lossy()
                .strip_prefix(TEMP_PREFIX)
                .and_then(|rest| rest.split('-').next())
                .and_then(|pid| pid.parse::<u32>().ok());
            if let Some(pid) = pid {
                if !Path::new("/proc").join(pid.to_string()).exists() {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
    }
}

/// Removes the temporary files this process left in the layout (after an interruption or a
/// failure: downloads in flight are dropped with the pull).
pub fn remove_partials(output: &Path) {
    let prefix = format!("{TEMP_PREFIX}{}-", std::process::id());
    for dir in [output.to_owned(), output.join("blobs").join("sha256")] {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with(&prefix) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
    }
}
