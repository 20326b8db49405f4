//! Pull-through of image content: the manifests and blobs of an image, fetched with the
//! credential that serves it (docs/design.md §3.5) and handed on as the registry served them. This is how
//! `regkeep image pull` gets an image's bytes while the registry credentials, and ECR tokens,
//! never leave the server.

use regkeep_domain::oci::is_sha256_digest;
use regkeep_domain::{AccountName, ImageReference};
use regkeep_registry::blobs::BlobDownload;
use regkeep_registry::manifests::RawManifest;

use crate::EngineError;

impl crate::images::Images {
    /// The manifest `image` names (by digest when it has one, else by tag), exactly as served,
    /// its digest verified.
    ///
    /// # Errors
    /// ResolutionFailed with what the registry (or AWS) answered.
    pub async fn fetch_manifest(
        &self,
        account: &AccountName,
        image: &ImageReference,
    ) -> Result<RawManifest, EngineError> {
        let (client, reference) = (&self.registry_client, image.reference());
        self.with_image_credential(account, image, |endpoint, basic| async move {
            client
                .fetch_manifest(&endpoint, basic.as_ref(), image.repository(), reference)
                .await
        })
        .await
    }

    /// Opens blob `digest` of `image`'s repository. The caller verifies the digest of what it
    /// reads (the bytes stream through; nothing is buffered here).
    ///
    /// # Errors
    /// BadInput for a digest that is not `sha256:<64 hex>`; ResolutionFailed with what the
    /// registry (or AWS) answered.
    pub async fn open_blob(
        &self,
        account: &AccountName,
        image: &ImageReference,
        digest: &str,
    ) -> Result<BlobDownload, EngineError> {
        if !is_sha256_digest(digest) {
            return Err(EngineError::BadInput(format!(
                "`{digest}` is not a blob digest: give sha256: and 64 lower-case hex digits"
            )));
        }
        let client = &self.registry_client;
        self.with_image_credential(account, image, |endpoint, basic| async move {
            client
                .open_blob(&endpoint, basic.as_ref(), image.repository(), digest)
                .await
        })
        .await
    }
}
