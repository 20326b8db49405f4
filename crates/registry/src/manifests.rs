//! Manifests and image resolution (OCI distribution spec): a tag or digest to its manifest (OCI
//! or Docker schema 2; an index or manifest list resolved to one platform), digests verified, and
//! the image's config read. Requests run in a kept [`session`](crate::session) so a warm
//! resolution costs only the manifest and config round trips.
//!
//! Why not `oci-client`: its `Client` keeps the first credentials it authenticated a registry
//! with for its lifetime, where regkeep's credentials change under a long-lived client (ECR tokens
//! every few hours, passwords on update), it follows redirects with its own policy, and it has no
//! per-registry TLS settings (`certs.d`, verification off with plain-HTTP fallback). The types
//! regkeep reads are in `regkeep_domain::oci`; the HTTP part is this small module.

use regkeep_domain::oci::{
    Descriptor, ImageConfig, Manifest, Platform, DOCKER_SCHEMA1, MANIFEST_ACCEPT,
};
use regkeep_domain::untrusted_text::{sanitize, EXCERPT_CHARS};
use regkeep_domain::Digest;
use reqwest::{header, StatusCode};
use sha2::{Digest as _, Sha256};

use crate::blobs::open_in;
use crate::session::Session;
use crate::{
    read_capped, refused, shown_url, unexpected, BasicCredentials, Endpoint, Limits,
    RegistryClient, RegistryError,
};

/// A manifest as the registry serves it: the exact bytes (their digest is the image's
/// identity), its media type and its digest, verified.
#[derive(Clone, Debug)]
pub struct RawManifest {
    pub bytes: Vec<u8>,
    pub media_type: String,
    pub digest: Digest,
    pub manifest: Manifest,
}

/// An image, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedImage {
    /// The digest of what the tag points at (the index, for multi-platform images).
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// The platform image's manifest digest (equal to `digest` for single-platform images).
    pub manifest_digest: Digest,
    pub config_digest: Digest,
    pub platform: Platform,
    pub created: Option<String>,
    pub layers: Vec<Descriptor>,
    /// Sum of the layer sizes.
    pub total_size: u64,
}

impl RegistryClient {
    /// Resolves `reference` (a tag or a digest) of `repository` to its manifest, for `platform`
    /// when it is an index, and reads its config.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`] for an unknown repository or tag; `Refused` with the
    /// registry's answer; `Protocol` for schema 1, a digest that does not match, or no manifest for
    /// the platform; transport errors.
    pub async fn resolve_image(
        &self,
        endpoint: &Endpoint,
        credentials: Option<&BasicCredentials>,
        repository: &str,
        reference: &str,
        platform: &Platform,
    ) -> Result<ResolvedImage, RegistryError> {
        let _permit = self.resolution_permit().await;
        let limits = self.limits;
        self.with_session(endpoint, credentials, repository, |session| async move {
            resolve_in(&session, reference, platform, limits).await
        })
        .await
    }

    /// The manifest `reference` (tag or digest) of `repository`, exactly as served, verified.
    ///
    /// # Errors
    /// As [`RegistryClient::resolve_image`].
    pub async fn fetch_manifest(
        &self,
        endpoint: &Endpoint,
        credentials: Option<&BasicCredentials>,
        repository: &str,
        reference: &str,
    ) -> Result<RawManifest, RegistryError> {
        let _permit = self.resolution_permit().await;
        let limits = self.limits;
        self.with_session(endpoint, credentials, repository, |session| async move {
            manifest_in(&session, reference, limits).await
        })
        .await
    }
}

impl RegistryClient {
    /// The digest `reference` (a tag) of `repository` points at now: a HEAD (which registries
    /// such as Docker Hub do not count as a pull), or a GET when the registry's HEAD answer has
    /// no `Docker-Content-Digest`.
    ///
    /// # Errors
    /// As [`RegistryClient::resolve_image`].
    pub async fn manifest_digest(
        &self,
        endpoint: &Endpoint,
        credentials: Option<&BasicCredentials>,
        repository: &str,
        reference: &str,
    ) -> Result<Digest, RegistryError> {
        let _permit = self.resolution_permit().await;
        let limits = self.limits;
        self.with_session(endpoint, credentials, repository, |session| async move {
            let url = session.url(&format!("manifests/{reference}"))?;
            let (response, _) = session
                .send_following(
                    reqwest::Method::HEAD,
                    &url,
                    &[(header::ACCEPT, MANIFEST_ACCEPT)],
                    None,
                )
                .await?;
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                return Err(refused(registry_of(&session), response).await);
            }
            let digest = response
                .headers()
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
                .and_then(|d| Digest::parse(d).ok())
                .filter(Digest::is_sha256);
            match digest {
                Some(d) if status.is_success() => Ok(d),
                // Not found, no header, an odd answer: the GET says what is what.
                _ => Ok(manifest_in(&session, reference, limits).await?.digest),
            }
        })
        .await
    }
}

async fn resolve_in(
    session: &Session,
    reference: &str,
    platform: &Platform,
    limits: Limits,
) -> Result<ResolvedImage, RegistryError> {
    let top = manifest_in(session, reference, limits).await?;
    let (manifest_digest, manifest) = if top.manifest.is_index() {
        let entry = top
            .manifest
            .entry_for(platform)
            .map_err(|detail| RegistryError::Protocol {
                url: format!(
                    "{}v2/{}/manifests/{reference}",
                    shown_url(&session.base),
                    session.repository
                ),
                detail,
            })?;
        let chosen = manifest_in(session, &entry.digest, limits).await?;
        (chosen.digest, chosen.manifest)
    } else {
        (top.digest.clone(), top.manifest)
    };
    let config = manifest.config.ok_or_else(|| RegistryError::Protocol {
        url: format!(
            "{}v2/{}/manifests/{manifest_digest}",
            shown_url(&session.base),
            session.repository
        ),
        detail: "the manifest has no config".into(),
    })?;
    let config_blob = open_in(session, &config.digest, None)
        .await?
        .read_verified(limits.config_bytes)
        .await?;
    // A config regkeep cannot read still resolves: the fields are informative. Parsed from the
    // chunks as they arrived: only the few fields regkeep shows are kept.
    let image_config: ImageConfig =
        serde_json::from_reader::<_, ImageConfig>(std::io::BufReader::new(config_blob.reader()))
            .unwrap_or_default()
            .cleaned();
    drop(config_blob);
    let total_size = manifest.layers.iter().map(|l| l.size).sum();
    Ok(ResolvedImage {
        digest: top.digest,
        media_type: top.media_type,
        manifest_digest,
        // Every digest of a validated manifest is one (`Manifest::validate`).
        config_digest: Digest::parse(&config.digest).map_err(|e| RegistryError::Protocol {
            url: shown_url(&session.base),
            detail: e.to_string(),
        })?,
        platform: Platform {
            os: image_config.os.unwrap_or_else(|| platform.os.clone()),
            architecture: image_config
                .architecture
                .unwrap_or_else(|| platform.architecture.clone()),
            variant: image_config.variant,
        },
        created: image_config.created,
        layers: manifest.layers,
        total_size,
    })
}

/// `registry https://host:port/`, as refusals name it.
fn registry_of(session: &Session) -> String {
    format!("registry {}", shown_url(&session.base))
}

async fn manifest_in(
    session: &Session,
    reference: &str,
    limits: Limits,
) -> Result<RawManifest, RegistryError> {
    let max = limits.manifest_bytes;
    let target = session.url(&format!("manifests/{reference}"))?;
    let url = shown_url(&target);
    let (response, _) = session
        .send_following(
            reqwest::Method::GET,
            &target,
            &[(header::ACCEPT, MANIFEST_ACCEPT)],
            None,
        )
        .await?;
    let status = response.status();
    if status == StatusCode::NOT_FOUND {
        return Err(RegistryError::NotFound {
            url,
            what: format!("{}:{reference}", session.repository),
        });
    }
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        return Err(refused(registry_of(session), response).await);
    }
    if !status.is_success() {
        return Err(unexpected(&url, status, response).await);
    }
    // Only a well-formed digest is believed (and ever named in a message).
    let header_digest = response
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .filter(|d| regkeep_domain::oci::is_sha256_digest(d))
        .map(str::to_owned);
    let content_type = content_media_type(response.headers());
    if response.content_length().is_some_and(|n| n > max as u64) {
        return Err(too_large(url, max));
    }
    let Some(bytes) = read_capped(response, max).await else {
        return Err(RegistryError::Protocol {
            url,
            detail: format!(
                "the manifest is larger than {max} bytes (outbound.max_manifest_bytes), or its transfer broke off"
            ),
        });
    };
    let digest = Digest::of_sha256(Sha256::digest(&bytes).into());
    let expected = if reference.starts_with("sha256:") {
        Some(reference.to_owned())
    } else {
        header_digest
    };
    if let Some(expected) = expected {
        if expected.starts_with("sha256:") && expected != digest.as_str() {
            return Err(RegistryError::Protocol {
                url,
                detail: format!("the manifest's digest is {digest}, not {expected}: refusing it"),
            });
        }
    }
    let manifest: Manifest =
        serde_json::from_slice(&bytes).map_err(|e| RegistryError::Protocol {
            url: url.clone(),
            detail: format!(
                "the manifest is not JSON: {}",
                sanitize(&e.to_string(), EXCERPT_CHARS)
            ),
        })?;
    manifest
        .validate()
        .map_err(|problem| RegistryError::Protocol {
            url: url.clone(),
            detail: format!("the manifest is malformed: {problem}"),
        })?;
    let media_type = manifest
        .media_type
        .clone()
        .or(content_type)
        .unwrap_or_default();
    if DOCKER_SCHEMA1.contains(&media_type.as_str()) {
        return Err(RegistryError::Protocol {
            url,
            detail: "Docker image manifest schema 1 is not supported (deprecated since 2017): push the image again with a current client".into(),
        });
    }
    Ok(RawManifest {
        bytes: bytes.to_vec(),
        media_type,
        digest,
        manifest,
    })
}

/// The answer's `Content-Type` without parameters, when it reads as a media type: it is shown
/// and stored as the image's media type when the manifest names none, so it is held to the
/// same rule as the manifest's own `mediaType` (`Manifest::validate`).
fn content_media_type(headers: &reqwest::header::HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().trim().to_owned())
        .filter(|t| regkeep_domain::oci::media_type_ok(t))
}

fn too_large(url: String, max: usize) -> RegistryError {
    RegistryError::Protocol {
        url,
        detail: format!("the manifest is larger than {max} bytes (outbound.max_manifest_bytes)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blobs::hex_digest;

    #[test]
    fn a_content_type_counts_only_when_it_reads_as_a_media_type() {
        let of = |value: &str| {
            let mut headers = reqwest::header::HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, value.parse().unwrap());
            content_media_type(&headers)
        };
        assert_eq!(
            of("application/vnd.oci.image.manifest.v1+json; charset=utf-8").as_deref(),
            Some("application/vnd.oci.image.manifest.v1+json")
        );
        for odd in ["<b>hi</b>", "text/html\tx", "a b/c", &"x/".repeat(200)] {
            assert_eq!(of(odd), None, "{odd}");
        }
    }

    #[test]
    fn digests() {
        assert_eq!(
            hex_digest(Sha256::new_with_prefix(b"")),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
