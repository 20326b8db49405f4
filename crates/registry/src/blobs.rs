//! Blobs: opened as a stream of chunks (layers, passed through to a pull) or read whole and
//! verified (configs). A registry that redirects a blob to another host (ECR → S3, a CDN) is
//! followed without the registry's credentials: only the registry's own origin gets them. Error
//! messages name the registry URL, never the redirect target (a presigned URL carries a signature).

use std::time::Duration;

use regkeep_domain::oci::is_sha256_digest;
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
    use std::fmt::Write as _;
    let mut out = String::with_capacity(71);
    out.push_str("sha256:");
    for b in hash.finalize() {
        let _ = write!(out, "{b:02x}");
    }
    out
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
            session.http.get(next.as_str())
        };
        response = send(request.timeout(BLOB_TIMEOUT), &url, session.timeouts).await?;
        at = next;
    }
    match response.status() {
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
