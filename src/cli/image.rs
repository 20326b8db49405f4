//! `regkeep image add|get|list|del|pull`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use regkeep_domain::oci::Platform;
use regkeep_domain::wire::{ImageAddRequest, ImageRecord};
use regkeep_domain::ImageReference;
use reqwest::Method;

use super::client::{segment, Client};
use super::pull::{creations_settled, pull, remove_partials, PullError};
use super::{output, GlobalArgs, EXIT_FAILURE};

#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// Resolve an image now, with the credential that serves it, and record its digest.
    ///
    /// Example: `regkeep image add registry.example.com:5000/team/app:1.2 --platform linux/arm64`
    Add {
        /// `[host[:port]/]repository[:tag][@sha256:digest]`, e.g. `registry.example.com/team/app:1.2`.
        image: String,
        /// Pin the tag to this digest (`sha256:...`).
        #[arg(long, value_name = "DIGEST")]
        digest: Option<String>,
        /// The platform to resolve a multi-platform image to, `os/arch[/variant]` (default linux/amd64).
        #[arg(long, value_name = "PLATFORM")]
        platform: Option<String>,
    },
    /// Show a recorded image. Example: `regkeep image get sha256:4826a1a6...`
    Get {
        /// The image digest, the image ID (64 hex digits) or a tag it was added under
        /// (`host/repo:tag`), as `image list` shows them.
        image: String,
    },
    /// List the recorded images: one line per tag each was added under.
    List,
    /// Forget a recorded image (nothing is deleted from the registry).
    /// Example: `regkeep image del sha256:4826a1a6...`
    Del {
        /// The image digest, or the image ID (64 hex digits: every record with that ID).
        image: String,
    },
    /// Download an image into an OCI image layout directory (for `skopeo copy oci:DIR:TAG`, umoci, ...).
    ///
    /// The server fetches it with the credential that serves it; the credentials never reach this
    /// command. Every blob is verified against its digest before it gets its final name.
    /// Example: `regkeep image pull registry.example.com/team/app:1.2 --output ./app-layout`
    Pull {
        /// `[host[:port]/]repository[:tag][@sha256:digest]`.
        image: String,
        /// The layout directory (created if missing; an existing layout keeps its other images).
        #[arg(long, short, value_name = "DIR")]
        output: PathBuf,
        /// The platform to pull from a multi-platform image, `os/arch[/variant]` (default linux/amd64).
        #[arg(long, value_name = "PLATFORM")]
        platform: Option<String>,
    },
}

pub async fn run(
    client: &Client,
    global: &GlobalArgs,
    command: ImageCommand,
) -> anyhow::Result<ExitCode> {
    let answer = match command {
        ImageCommand::Add {
            image,
            digest,
            platform,
        } => {
            let request = ImageAddRequest {
                tag: image,
                digest,
                platform,
            };
            let answer = client
                .call::<Vec<ImageRecord>, _>(Method::POST, "/images", Some(&request))
                .await?;
            if let Ok(records) = &answer {
                for r in records {
                    if let (Some(now), Some(tag)) =
                        (&r.tag_points_at, request.tag.split('@').next())
                    {
                        // On stderr: the record was made as asked; this only informs.
                        eprintln!(
                            "regkeep: note: {} points at {now} now; recorded {} as asked",
                            regkeep_domain::untrusted_text::for_terminal(tag),
                            r.image_digest
                        );
                    }
                }
            }
            answer
        }
        ImageCommand::Get { image } => {
            // 64 hex digits are an image ID, or an image digest written without `sha256:`.
            if is_image_id(&image) {
                let by_id = client
                    .call::<Vec<ImageRecord>, ()>(
                        Method::GET,
                        &format!("/images/by_id/{image}"),
                        None,
                    )
                    .await?;
                let answer = match by_id {
                    Err(refusal) if refusal.status == reqwest::StatusCode::NOT_FOUND => {
                        let by_digest = format!("/images/{}", segment(&format!("sha256:{image}")));
                        client
                            .call::<Vec<ImageRecord>, ()>(Method::GET, &by_digest, None)
                            .await?
                            .map_err(|_| refusal)
                    }
                    other => other,
                };
                return output::finish(answer, global.json, |records| print(records));
            }
            let path = if image.starts_with("sha256:") {
                format!("/images/{}", segment(&image))
            } else {
                format!("/images?fulltag={}", segment(&image))
            };
            client
                .call::<Vec<ImageRecord>, ()>(Method::GET, &path, None)
                .await?
        }
        ImageCommand::List => {
            client
                .call::<Vec<ImageRecord>, ()>(Method::GET, "/images", None)
                .await?
        }
        ImageCommand::Del { image } => {
            let path = if is_image_id(&image) {
                format!("/images/by_id/{image}")
            } else {
                format!("/images/{}", segment(&image))
            };
            let answer = client
                .call::<serde_json::Value, ()>(Method::DELETE, &path, None)
                .await?;
            return output::deleted(answer, global.json, "image record", &image);
        }
        ImageCommand::Pull {
            image,
            output: dir,
            platform,
        } => {
            return run_pull(client, global, &image, &dir, platform.as_deref()).await;
        }
    };
    output::finish(answer, global.json, |records| print(records))
}

async fn run_pull(
    client: &Client,
    global: &GlobalArgs,
    image: &str,
    dir: &std::path::Path,
    platform: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let reference: ImageReference = image
        .parse()
        .map_err(|e: regkeep_domain::ImageReferenceError| anyhow::anyhow!("{e}"))?;
    let explicit = platform.is_some();
    let platform = match platform {
        Some(p) => Platform::parse(p).map_err(|m| anyhow::anyhow!(m))?,
        None => Platform::default_linux(),
    };
    let result = tokio::select! {
        r = pull(client, &reference, &platform, explicit, dir) => r,
        _ = tokio::signal::ctrl_c() => {
            // The dropped pull may still be creating a file on the blocking pool.
            creations_settled().await;
            remove_partials(dir);
            eprintln!("regkeep: interrupted: no partial blob was left under its final name in {}", dir.display());
            return Ok(ExitCode::from(super::EXIT_INTERRUPTED));
        }
    };
    if result.is_err() {
        creations_settled().await;
        remove_partials(dir);
    }
    match result {
        Ok(report) => {
            if global.json {
                output::json(&report)?;
            } else {
                output::line(&format!(
                    "Pulled {} ({}) into {}: {} layer{}, {} bytes ({} downloaded){}",
                    report.image,
                    report.manifest_digest,
                    report.output.display(),
                    report.layers,
                    if report.layers == 1 { "" } else { "s" },
                    report.bytes,
                    report.downloaded,
                    report
                        .ref_name
                        .as_ref()
                        .map(|n| format!("; skopeo name oci:{}:{n}", report.output.display()))
                        .unwrap_or_default()
                ))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(PullError::Refused(refusal)) => Ok(refusal.report()),
        Err(PullError::NoSuchPlatform(message)) => {
            eprintln!(
                "regkeep: error: {}",
                regkeep_domain::untrusted_text::for_terminal(&message)
            );
            Ok(ExitCode::from(super::EXIT_REFUSED))
        }
        Err(PullError::Other(e)) => {
            eprintln!(
                "regkeep: error: {}",
                regkeep_domain::untrusted_text::for_terminal(&format!("{e:#}"))
            );
            Ok(ExitCode::from(EXIT_FAILURE))
        }
    }
}

/// Anchore's image ID: 64 hex digits.
fn is_image_id(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// One line per tag (and registry) each image was added under.
fn print(records: &[ImageRecord]) -> anyhow::Result<()> {
    if records.is_empty() {
        return output::line("No images: record one with `regkeep image add`");
    }
    let mut rows = Vec::new();
    for r in records {
        let row = |name: String| {
            vec![
                name,
                r.image_digest.clone(),
                r.image_detail
                    .first()
                    .map(|d| short_id(&d.image_id))
                    .unwrap_or_default(),
                r.platform.clone(),
                r.layer_count.to_string(),
                r.image_size.to_string(),
                r.resolution_status.clone(),
                r.resolved_at.to_string(),
            ]
        };
        if r.image_detail.is_empty() {
            rows.push(row(String::new()));
        }
        for d in &r.image_detail {
            rows.push(row(d
                .fulltag
                .clone()
                .unwrap_or_else(|| d.fulldigest.clone())));
        }
    }
    output::table(
        &[
            "Image", "Digest", "Image ID", "Platform", "Layers", "Size", "Status", "Resolved",
        ],
        rows,
    )
}

/// The first 12 hex digits of an image ID, as docker shows them.
fn short_id(id: &str) -> String {
    id.chars().take(12).collect()
}
