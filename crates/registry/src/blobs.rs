//! Blobs: opened as a stream of chunks (layers, passed through to a pull) or read whole and
//! verified (configs). A registry that redirects a blob to another host (ECR → S3, a CDN) is
//! followed without the registry's credentials: only the registry's own origin gets them, and
//! every hop passes the outbound policy (`redirects`). Error messages name the registry URL,
//! never the redirect target's query (a presigned URL carries a signature).

use std::time::Duration;

use regkeep_domain::oci::{is_sha256_digest, sha256_digest_text};
use reqwest::StatusCode;
use sha2::{Digest as _, Sha256};

use crate::session::Session;
use crate::{
    classify, refused, shown_url, unexpected, BasicCredentials, Endpoint, RegistryClient,
    RegistryError,
};
/// The total time one blob download may take (a stalled read ends it sooner: the client's read
/// timeout).
const BLOB_TIMEOUT: Duration = Duration::from_secs(6 * 3600);

/// Chunks smaller than this are gathered into segments of about this size when a blob is read
/// whole.
const SEGMENT: usize = 64 * 1024;

/// An open blob download.
pub struct BlobDownload {
    /// The digest asked for.
    pub digest: String,
    /// Its size, when the registry said.
    pub size: Option<u64>,
    /// The registry URL it came from (for messages).
    pub url: String,
    body: Body,
}

/// Where a download's bytes come from.
enum Body {
    /// A registry's answer, read as it arrives.
    Http {
        response: reqwest::Response,
        timeouts: crate::Timeouts,
    },
    /// Bytes already at hand (an in-process fake registry behind [`crate::RegistryApi`]).
    Chunks(std::collections::VecDeque<bytes::Bytes>),
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
        match &mut self.body {
            Body::Http { response, timeouts } => response
                .chunk()
                .await
                .map_err(|e| classify(e, &self.url, *timeouts)),
            Body::Chunks(chunks) => Ok(chunks.pop_front()),
        }
    }

    /// A download of `bytes` already at hand, in `chunks` pieces of at most `chunk` bytes (what
    /// a fake registry hands out; `digest` is what was asked for, checked on a verified read).
    pub fn from_bytes(digest: &str, url: &str, bytes: &[u8], chunk: usize) -> BlobDownload {
        BlobDownload {
            digest: digest.to_owned(),
            size: Some(bytes.len() as u64),
            url: url.to_owned(),
            body: Body::Chunks(
                bytes
                    .chunks(chunk.max(1))
                    .map(bytes::Bytes::copy_from_slice)
                    .collect(),
            ),
        }
    }

    /// Reads the whole blob (at most `limit` bytes) and checks its digest. The chunks are kept
    /// as they arrive (no buffer that doubles as it grows: what is held is what was sent), and a
    /// declared size over `limit` is refused before anything is read.
    ///
    /// # Errors
    /// Larger than `limit`, a digest mismatch, or the transfer failed.
    pub async fn read_verified(mut self, limit: usize) -> Result<VerifiedBlob, RegistryError> {
        let too_large = |url: String| RegistryError::Protocol {
            url,
            detail: format!("the blob is larger than {limit} bytes"),
        };
        if self.size.is_some_and(|n| n > limit as u64) {
            return Err(too_large(self.url));
        }
        let mut chunks = Vec::new();
        // Small chunks are copied into segments of SEGMENT bytes: a registry sending one byte
        // per chunk must not cost a chunk's bookkeeping per byte.
        let mut segment: Vec<u8> = Vec::new();
        let mut read = 0usize;
        let mut hash = Sha256::new();
        while let Some(chunk) = self.chunk().await? {
            read += chunk.len();
            if read > limit {
                return Err(too_large(self.url));
            }
            hash.update(&chunk);
            if chunk.len() >= SEGMENT && segment.is_empty() {
                chunks.push(chunk);
                continue;
            }
            segment.extend_from_slice(&chunk);
            if segment.len() >= SEGMENT {
                chunks.push(bytes::Bytes::from(std::mem::take(&mut segment)));
            }
        }
        if !segment.is_empty() {
            chunks.push(bytes::Bytes::from(segment));
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
        Ok(VerifiedBlob { chunks })
    }
}

/// A blob read whole and verified, as the chunks it arrived in.
#[derive(Debug)]
pub struct VerifiedBlob {
    chunks: Vec<bytes::Bytes>,
}

impl VerifiedBlob {
    /// Its bytes as one reader (for parsing without copying them into one buffer).
    pub fn reader(&self) -> impl std::io::Read + '_ {
        BlobReader {
            chunks: &self.chunks,
            at: 0,
            offset: 0,
        }
    }
}

struct BlobReader<'a> {
    chunks: &'a [bytes::Bytes],
    at: usize,
    offset: usize,
}

impl std::io::Read for BlobReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while let Some(chunk) = self.chunks.get(self.at) {
            let rest = &chunk[self.offset..];
            if rest.is_empty() {
                self.at += 1;
                self.offset = 0;
                continue;
            }
            let n = rest.len().min(buf.len());
            buf[..n].copy_from_slice(&rest[..n]);
            self.offset += n;
            return Ok(n);
        }
        Ok(0)
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
            open_in(&session, digest, Some(BLOB_TIMEOUT)).await
        })
        .await
    }
}

/// Opens blob `digest`; `timeout` bounds the whole transfer ([`BLOB_TIMEOUT`] for layers passed
/// through, the client's total timeout for configs read whole: a registry trickling a config
/// byte by byte cannot hold a resolution for hours).
pub(crate) async fn open_in(
    session: &Session,
    digest: &str,
    timeout: Option<Duration>,
) -> Result<BlobDownload, RegistryError> {
    let url = session.url(&format!("blobs/{digest}"))?;
    let shown = shown_url(&url);
    let (response, at) = session
        .send_following(reqwest::Method::GET, &url, &[], timeout)
        .await?;
    let storage = !session.same_origin(&at);
    match response.status() {
        // Blob storage elsewhere (S3, a CDN) refusing is not the registry refusing its
        // credentials: no token renewal follows, and the message says where it happened.
        s if storage && !s.is_success() => Err(RegistryError::Protocol {
            url: shown,
            detail: format!(
                "the registry redirected the download to {} which answered HTTP {s}",
                at.host_str().unwrap_or("another host")
            ),
        }),
        s if s.is_success() => Ok(BlobDownload {
            digest: digest.to_owned(),
            size: response.content_length(),
            url: shown,
            body: Body::Http {
                response,
                timeouts: session.timeouts,
            },
        }),
        StatusCode::NOT_FOUND => Err(RegistryError::NotFound {
            url: shown,
            what: format!("blob {digest} of {}", session.repository),
        }),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            Err(refused(format!("registry {}", shown_url(&session.base)), response).await)
        }
        s => Err(unexpected(&shown, s, response).await),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    #[test]
    fn verified_blob_reads_across_chunks() {
        let blob = VerifiedBlob {
            chunks: vec![
                bytes::Bytes::from_static(b"{\"os\":"),
                bytes::Bytes::new(),
                bytes::Bytes::from_static(b"\"linux\"}"),
            ],
        };
        let mut text = String::new();
        blob.reader().read_to_string(&mut text).unwrap();
        assert_eq!(text, "{\"os\":\"linux\"}");
        let v: serde_json::Value = serde_json::from_reader(blob.reader()).unwrap();
        assert_eq!(v["os"], "linux");
    }
}
