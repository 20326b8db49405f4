//! Resolving an image: its manifest (OCI or Docker schema 2; an index or manifest list resolved
//! to one platform), digests verified, and its config blob (OCI distribution spec).
//!
//! Authentication follows the registry's `/v2/` challenge: Basic with the credentials, or a
//! Bearer token scoped to `repository:<repo>:pull`. Blob downloads that redirect to another host
//! (ECR → S3) follow the redirect without credentials.

use reqwest::{header, StatusCode};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::challenge::Challenge;
use crate::{
    basic_header, refused, send, unexpected, BasicCredentials, Endpoint, RegistryClient,
    RegistryError,
};

/// Media types regkeep asks for, most specific first.
const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_SCHEMA1: [&str; 2] = [
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];
/// Largest manifest accepted.
const MAX_MANIFEST: usize = 4 * 1024 * 1024;

/// An operating system / architecture / variant, e.g. `linux/arm64/v8`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// Parses `os/arch[/variant]`.
    ///
    /// # Errors
    /// A message saying the form when it does not fit.
    pub fn parse(text: &str) -> Result<Platform, String> {
        let parts: Vec<&str> = text.split('/').collect();
        match parts.as_slice() {
            [os, arch] if !os.is_empty() && !arch.is_empty() => {
                Ok(Platform { os: (*os).into(), architecture: (*arch).into(), variant: None })
            }
            [os, arch, variant] if !os.is_empty() && !arch.is_empty() && !variant.is_empty() => Ok(Platform {
                os: (*os).into(),
                architecture: (*arch).into(),
                variant: Some((*variant).into()),
            }),
            _ => Err(format!("platform `{text}` is not `os/arch[/variant]`, e.g. `linux/amd64` or `linux/arm64/v8`")),
        }
    }

    /// linux/amd64.
    pub fn default_linux() -> Platform {
        Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// A content descriptor.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub platform: Option<DescriptorPlatform>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct DescriptorPlatform {
    pub os: String,
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize, Default)]
struct ImageConfig {
    #[serde(default)]
    created: Option<String>,
    #[serde(default)]
    architecture: Option<String>,
    #[serde(default)]
    os: Option<String>,
    #[serde(default)]
    variant: Option<String>,
}

/// An image, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedImage {
    /// The digest of what the tag points at (the index, for multi-platform images).
    pub digest: String,
    /// Its media type.
    pub media_type: String,
    /// The platform image's manifest digest (equal to `digest` for single-platform images).
    pub manifest_digest: String,
    pub config_digest: String,
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
        let session = self.session(endpoint, credentials, repository).await?;
        let (digest, media_type, manifest) = session.manifest(self, reference).await?;
        let (manifest_digest, manifest) = if manifest.manifests.is_empty() {
            (digest.clone(), manifest)
        } else {
            let chosen = manifest
                .manifests
                .iter()
                .find(|d| {
                    d.platform
                        .as_ref()
                        .is_some_and(|p| matches_platform(p, platform))
                })
                .ok_or_else(|| RegistryError::Protocol {
                    url: session.url(&format!("manifests/{reference}")),
                    detail: format!(
                        "the index has no manifest for {platform}; it has {}",
                        manifest
                            .manifests
                            .iter()
                            .filter_map(|d| d
                                .platform
                                .as_ref()
                                .map(|p| format!("{}/{}", p.os, p.architecture)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                })?;
            let (d, _, m) = session.manifest(self, &chosen.digest).await?;
            (d, m)
        };
        let config = manifest.config.ok_or_else(|| RegistryError::Protocol {
            url: session.url(&format!("manifests/{manifest_digest}")),
            detail: "the manifest has no config".into(),
        })?;
        let config_bytes = session.blob(&config.digest).await?;
        let image_config: ImageConfig = serde_json::from_slice(&config_bytes).unwrap_or_default();
        let total_size = manifest.layers.iter().map(|l| l.size).sum();
        Ok(ResolvedImage {
            digest,
            media_type,
            manifest_digest,
            config_digest: config.digest,
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

    /// Finds the base URL and the authorization for pulling from `repository`.
    async fn session(
        &self,
        endpoint: &Endpoint,
        credentials: Option<&BasicCredentials>,
        repository: &str,
    ) -> Result<Session, RegistryError> {
        let http = self.http_client(endpoint)?;
        let (base, first) = self.first_contact(&http, endpoint).await?;
        let authorization = match first.status() {
            s if s.is_success() => None,
            StatusCode::UNAUTHORIZED => {
                let challenge = first
                    .headers()
                    .get(header::WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(Challenge::parse);
                match (challenge, credentials) {
                    (Some(Challenge::Bearer { realm, service, .. }), creds) => {
                        let scope = format!("repository:{repository}:pull");
                        let token = self
                            .fetch_token(&http, &realm, service.as_deref(), Some(&scope), creds)
                            .await?;
                        Some(format!("Bearer {}", token.expose()))
                    }
                    (_, Some(creds)) => Some(basic_header(creds)),
                    (_, None) => {
                        return Err(refused(format!("registry {}", endpoint.authority), first).await)
                    }
                }
            }
            s => return Err(unexpected(&format!("{base}/v2/"), s, first).await),
        };
        Ok(Session {
            http,
            base,
            repository: repository.to_owned(),
            authorization,
            timeouts: self.timeouts,
        })
    }
}

fn matches_platform(candidate: &DescriptorPlatform, wanted: &Platform) -> bool {
    candidate.os == wanted.os
        && candidate.architecture == wanted.architecture
        && (wanted.variant.is_none() || candidate.variant == wanted.variant)
}

/// What one image resolution talks to.
struct Session {
    http: reqwest::Client,
    base: String,
    repository: String,
    authorization: Option<String>,
    timeouts: crate::Timeouts,
}

impl Session {
    fn url(&self, rest: &str) -> String {
        format!("{}/v2/{}/{rest}", self.base, self.repository)
    }

    fn get(&self, url: &str) -> reqwest::RequestBuilder {
        let request = self.http.get(url);
        match &self.authorization {
            Some(a) => request.header(header::AUTHORIZATION, a),
            None => request,
        }
    }

    async fn manifest(
        &self,
        _client: &RegistryClient,
        reference: &str,
    ) -> Result<(String, String, Manifest), RegistryError> {
        let url = self.url(&format!("manifests/{reference}"));
        let response = send(
            self.get(&url).header(header::ACCEPT, ACCEPT),
            &url,
            self.timeouts,
        )
        .await?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            return Err(RegistryError::NotFound {
                url,
                what: format!("{}:{reference}", self.repository),
            });
        }
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(refused(format!("registry {}", self.base), response).await);
        }
        if !status.is_success() {
            return Err(unexpected(&url, status, response).await);
        }
        let header_digest = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or_default().trim().to_owned());
        let bytes = response
            .bytes()
            .await
            .map_err(|e| RegistryError::Protocol {
                url: url.clone(),
                detail: e.to_string(),
            })?;
        if bytes.len() > MAX_MANIFEST {
            return Err(RegistryError::Protocol {
                url,
                detail: format!("the manifest is larger than {MAX_MANIFEST} bytes"),
            });
        }
        let digest = sha256_digest(&bytes);
        let expected = if reference.starts_with("sha256:") {
            Some(reference.to_owned())
        } else {
            header_digest
        };
        if let Some(expected) = expected {
            if expected.starts_with("sha256:") && expected != digest {
                return Err(RegistryError::Protocol {
                    url,
                    detail: format!(
                        "the manifest's digest is {digest}, not {expected}: refusing it"
                    ),
                });
            }
        }
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| RegistryError::Protocol {
                url: url.clone(),
                detail: format!("the manifest is not JSON: {e}"),
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
        Ok((digest, media_type, manifest))
    }

    /// Reads a small blob (a config), following a redirect to another host without credentials,
    /// and checks its digest.
    async fn blob(&self, digest: &str) -> Result<Vec<u8>, RegistryError> {
        let url = self.url(&format!("blobs/{digest}"));
        let mut response = send(self.get(&url), &url, self.timeouts).await?;
        let mut hops = 0;
        while response.status().is_redirection() && hops < 5 {
            let location = response
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| RegistryError::Protocol {
                    url: url.clone(),
                    detail: "a redirect without Location".into(),
                })?;
            let next = reqwest::Url::parse(&url)
                .and_then(|u| u.join(location))
                .map_err(|e| RegistryError::Protocol {
                    url: url.clone(),
                    detail: format!("a bad redirect: {e}"),
                })?;
            let same_host = reqwest::Url::parse(&self.base).is_ok_and(|b| {
                b.host_str() == next.host_str()
                    && b.port_or_known_default() == next.port_or_known_default()
            });
            // Credentials go to the registry's own host only (ECR blobs redirect to S3).
            let request = if same_host {
                self.get(next.as_str())
            } else {
                self.http.get(next.as_str())
            };
            response = send(request, next.as_str(), self.timeouts).await?;
            hops += 1;
        }
        if response.status() == StatusCode::NOT_FOUND {
            return Err(RegistryError::NotFound {
                url,
                what: digest.to_owned(),
            });
        }
        if !response.status().is_success() {
            let status = response.status();
            return Err(unexpected(&url, status, response).await);
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| RegistryError::Protocol {
                url: url.clone(),
                detail: e.to_string(),
            })?;
        let actual = sha256_digest(&bytes);
        if digest.starts_with("sha256:") && actual != digest {
            return Err(RegistryError::Protocol {
                url,
                detail: format!("the blob's digest is {actual}, not {digest}: refusing it"),
            });
        }
        Ok(bytes.to_vec())
    }
}

fn sha256_digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    format!(
        "sha256:{}",
        hash.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms() {
        assert_eq!(
            Platform::parse("linux/arm64/v8").unwrap().to_string(),
            "linux/arm64/v8"
        );
        assert_eq!(
            Platform::parse("linux/amd64").unwrap(),
            Platform::default_linux()
        );
        assert!(Platform::parse("linux").unwrap_err().contains("os/arch"));
        assert!(Platform::parse("linux//x").is_err());
        let arm = DescriptorPlatform {
            os: "linux".into(),
            architecture: "arm64".into(),
            variant: Some("v8".into()),
        };
        assert!(matches_platform(
            &arm,
            &Platform::parse("linux/arm64").unwrap()
        ));
        assert!(!matches_platform(
            &arm,
            &Platform::parse("linux/arm64/v7").unwrap()
        ));
    }

    #[test]
    fn digests() {
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
