//! Blobs: opened as a stream of chunks (layers, passed through to a pull) or read whole and
//! verified (configs). A registry that redirects a blob to another host (ECR → S3, a CDN) is
//! followed without the registry's credentials: only the registry's own origin gets them. Error
//! messages name the registry URL, never the redirect target (a presigned URL carries a signature).

use std::time::Duration;

use regkeep_domain::oci::{is_sha256_digest, sha256_digest_text};
use reqwest::{header, StatusCode};
use sha2::{Digest as _, Sha256};

use crate::session::Session;
use crate::{
    classify, refused, send, unexpected, BasicCredentials, Endpoint, RegistryClient, RegistryError,
};

/// Redirects followed for one blob.
const MAX_REDIRECTS: usize = 5;
/// The total time one blob download may take (a stalled read ends it sooner: the client's read
/// timeout).
const BLOB_TIMEOUT: Duration = Duration::from_secs(6 * 3600);

/// An open blob download.
pub struct BlobDownload {
    /// The digest asked for.
    pub digest: String,
    /// Its size, when the registry said.
    pub size: Option<u64>,
    /// The registry URL it came from (for messages).
    pub url: String,
    response: reqwest::Response,
    timeouts: crate::Timeouts,
}

impl std::fmt::Debug for BlobDownload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobDownload")
            .field("digest", &self.digest)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl BlobDownload {
    /// The next chunk, `None` at the end.
    ///
    /// # Errors
    /// The transfer broke off or stalled.
    pub async fn chunk(&mut self) -> Result<Option<bytes::Bytes>, RegistryError> {
        self.response
            .chunk()
            .await
            .map_err(|e| classify(e, &self.url, self.timeouts))
    }

    /// Reads the whole blob (at most `limit` bytes) and checks its digest.
    ///
    /// # Errors
    /// Larger than `limit`, a digest mismatch, or the transfer failed.
    pub async fn read_verified(mut self, limit: usize) -> Result<Vec<u8>, RegistryError> {
        let mut bytes = Vec::new();
        let mut hash = Sha256::new();
        while let Some(chunk) = self.chunk().await? {
            if bytes.len() + chunk.len() > limit {
                return Err(RegistryError::Protocol {
                    url: self.url,
                    detail: format!("the blob is larger than {limit} bytes"),
                });
            }
            hash.update(&chunk);
            bytes.extend_from_slice(&chunk);
        }
        let actual = hex_digest(hash);
        if actual != self.digest {
            return Err(RegistryError::Protocol {
                url: self.url,
                detail: format!(
                    "the blob's digest is {actual}, not {}: refusing it",
                    self.digest
                ),
            });
        }
        Ok(bytes)
    }
}

/// `sha256:<hex>` of a finished hash.
pub fn hex_digest(hash: Sha256) -> String {
    sha256_digest_text(hash.finalize().into())
}

impl RegistryClient {
    /// Opens blob `digest` of `repository` for reading.
    ///
    /// # Errors
    /// NotFound; Refused with the registry's answer; Protocol for a digest that is not
    /// `sha256:<64 hex>` or a bad redirect; transport errors.
    pub async fn open_blob(
        &self,
        endpoint: &Endpoint,
        credentials: Option<&BasicCredentials>,
        repository: &str,
        digest: &str,
    ) -> Result<BlobDownload, RegistryError> {
        if !is_sha256_digest(digest) {
            return Err(RegistryError::Protocol {
                url: endpoint.authority.clone(),
                detail: format!("`{digest}` is not a sha256 digest (sha256: and 64 hex digits)"),
            });
        }
        self.with_session(endpoint, credentials, repository, |session| async move {
            open_in(&session, digest).await
        })
        .await
    }
}

/// Where a registry may send regkeep on a redirect to another host: anywhere public, but not to a
/// loopback, link-local (cloud metadata, 169.254.169.254), private or unspecified address unless
/// the registry itself is on such an address (a lab registry redirecting to a local store). A
/// registry cannot turn regkeep's pull-through into a reader of the server's own network.
async fn allowed_redirect(
    session: &Session,
    next: &reqwest::Url,
    url: &str,
) -> Result<(), RegistryError> {
    let refuse = || RegistryError::Protocol {
        url: url.to_owned(),
        detail: format!(
            "the registry redirected the download to {}, an internal address: refused",
            next.host_str().unwrap_or("?")
        ),
    };
    let registry_internal = match reqwest::Url::parse(&session.base) {
        Ok(base) => resolves_internal(&base).await,
        Err(_) => false,
    };
    if !registry_internal && resolves_internal(next).await {
        return Err(refuse());
    }
    Ok(())
}

/// Whether `url`'s host is, or resolves to, an internal address (unresolvable counts as not:
/// the request then fails on its own).
async fn resolves_internal(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return internal(ip);
    }
    let port = url.port_or_known_default().unwrap_or(443);
    match tokio::net::lookup_host((host, port)).await {
        Ok(mut addresses) => addresses.any(|a| internal(a.ip())),
        Err(_) => false,
    }
}

fn internal(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64 // 100.64/10 (CGNAT)
        }
        std::net::IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (v6.segments()[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || v6.to_ipv4_mapped().is_some_and(|v4| internal(std::net::IpAddr::V4(v4)))
        }
    }
}

pub(crate) async fn open_in(
    session: &Session,
    digest: &str,
) -> Result<BlobDownload, RegistryError> {
    let url = session.url(&format!("blobs/{digest}"));
    let mut response = send(
        session.get(&url).timeout(BLOB_TIMEOUT),
        &url,
        session.timeouts,
    )
    .await?;
    let mut at = reqwest::Url::parse(&url).map_err(|e| RegistryError::Protocol {
        url: url.clone(),
        detail: e.to_string(),
    })?;
    let mut hops = 0;
    while response.status().is_redirection() {
        hops += 1;
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok());
        let next = match location.map(|l| at.join(l)) {
            Some(Ok(next)) if hops <= MAX_REDIRECTS && matches!(next.scheme(), "http" | "https") => next,
            _ => {
                return Err(RegistryError::Protocol {
                    url,
                    detail: format!(
                        "the blob download redirected without a usable Location, or more than {MAX_REDIRECTS} times"
                    ),
                })
            }
        };
        // Credentials go to the registry's own origin only.
        let request = if session.same_origin(&next) {
            session.get(next.as_str())
        } else {
            allowed_redirect(session, &next, &url).await?;
            session.http.get(next.as_str())
        };
        response = send(request.timeout(BLOB_TIMEOUT), &url, session.timeouts).await?;
        at = next;
    }
    let storage = !session.same_origin(&at);
    match response.status() {
        // Blob storage elsewhere (S3, a CDN) refusing is not the registry refusing its
        // credentials: no token renewal follows, and the message says where it happened.
        s if storage && !s.is_success() => Err(RegistryError::Protocol {
            url: url.clone(),
            detail: format!(
                "the registry redirected the download to {} which answered HTTP {s}",
                at.host_str().unwrap_or("another host")
            ),
        }),
        s if s.is_success() => Ok(BlobDownload {
            digest: digest.to_owned(),
            size: response.content_length(),
            url,
            response,
            timeouts: session.timeouts,
        }),
        StatusCode::NOT_FOUND => Err(RegistryError::NotFound {
            url,
            what: format!("blob {digest} of {}", session.repository),
        }),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            Err(refused(format!("registry {}", session.base), response).await)
        }
        s => Err(unexpected(&url, s, response).await),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["52.216.0.1", "8.8.8.8", "2600:1f18::1", "100.128.0.1"] {
            assert!(!internal(ip.parse().unwrap()), "{ip}");
        }
    }
}
