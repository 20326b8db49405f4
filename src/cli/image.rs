//! `regkeep image add|get|list|del|pull`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use regkeep_domain::oci::Platform;
use regkeep_domain::wire::{ImageAddRequest, ImageRecord};
use regkeep_domain::ImageReference;
use reqwest::Method;

use super::client::{segment, Client};
use super::pull::{pull, remove_partials, PullError};
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
        /// The image digest, as `image list` shows it.
        digest: String,
    },
    /// List the recorded images.
    List,
    /// Forget a recorded image (nothing is deleted from the registry).
    /// Example: `regkeep image del sha256:4826a1a6...`
    Del {
        /// The image digest.
        digest: String,
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
            client
                .call::<Vec<ImageRecord>, _>(Method::POST, "/images", Some(&request))
                .await?
        }
        ImageCommand::Get { digest } => {
            client
                .call::<Vec<ImageRecord>, ()>(
                    Method::GET,
                    &format!("/images/{}", segment(&digest)),
                    None,
                )
                .await?
        }
        ImageCommand::List => {
            client
                .call::<Vec<ImageRecord>, ()>(Method::GET, "/images", None)
                .await?
        }
        ImageCommand::Del { digest } => {
            let path = format!("/images/{}", segment(&digest));
            let answer = client
                .call::<serde_json::Value, ()>(Method::DELETE, &path, None)
                .await?;
            return output::deleted(answer, global.json, "image record", &digest);
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
    let platform = match platform {
        Some(p) => Platform::parse(p).map_err(|m| anyhow::anyhow!(m))?,
        None => Platform::default_linux(),
    };
    let result = tokio::select! {
        r = pull(client, &reference, &platform, dir) => r,
        _ = tokio::signal::ctrl_c() => {
            remove_partials(dir);
            eprintln!("regkeep: interrupted: no partial blob was left under its final name in {}", dir.display());
            return Ok(ExitCode::from(130));
        }
    };
    if result.is_err() {
        remove_partials(dir);
    }
    match result {
        Ok(report) => {
            if global.json {
                output::json(&report)?;
            } else {
                output::line(&format!(
                    "Pulled {} ({}) into {}: {} layers, {} bytes ({} downloaded){}",
                    report.image,
                    report.manifest_digest,
                    report.output.display(),
                    report.layers,
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
        Err(PullError::Other(e)) => {
            eprintln!(
                "regkeep: error: {}",
                regkeep_domain::untrusted_text::for_terminal(&format!("{e:#}"))
            );
            Ok(ExitCode::from(EXIT_FAILURE))
        }
    }
}

fn print(records: &[ImageRecord]) -> anyhow::Result<()> {
    let rows = records
        .iter()
        .map(|r| {
            let detail = r.image_detail.first();
            vec![
                detail
                    .and_then(|d| d.fulltag.clone())
                    .or_else(|| detail.map(|d| d.fulldigest.clone()))
                    .unwrap_or_default(),
                r.image_digest.clone(),
                r.platform.clone(),
                r.layer_count.to_string(),
                r.image_size.to_string(),
                r.resolution_status.clone(),
                r.resolved_at.to_string(),
            ]
        })
        .collect();
    output::table(
        &[
            "Image", "Digest", "Platform", "Layers", "Size", "Status", "Resolved",
        ],
        rows,
    )
}
