//! Image records (issue 4, first use-case): resolve a tag (or digest) with the credential that
//! serves it (DESIGN 3.5; anonymous with TLS verification on when none does), and record what it
//! resolved to. regkeep records resolutions; it does not scan.

use regkeep_domain::oci::Platform;
use regkeep_domain::{AccountName, ImageReference, RegistryName};
use regkeep_registry::manifests::ResolvedImage;
use regkeep_registry::{BasicCredentials, Endpoint, RegistryError};
use regkeep_store::{ImageRecord, StoreError};
use tracing::info;

use crate::{Engine, EngineError, ValidationError};

impl Engine {
    /// Resolves `tag` (pinned to `digest` when given) for `platform` (default linux/amd64) and
    /// stores the record.
    ///
    /// # Errors
    /// BadInput for a malformed reference, digest or platform; ResolutionFailed with what the
    /// registry (or AWS) answered.
    pub async fn add_image(
        &self,
        account: &AccountName,
        tag: &str,
        digest: Option<&str>,
        platform: Option<&str>,
    ) -> Result<ImageRecord, EngineError> {
        crate::tag_watch::check_length("tag", tag, 1024)?;
        crate::tag_watch::check_length("digest", digest.unwrap_or_default(), 128)?;
        crate::tag_watch::check_length("platform", platform.unwrap_or_default(), 64)?;
        let text = match digest {
            Some(d) => format!("{tag}@{d}"),
            None => tag.to_owned(),
        };
        let image: ImageReference =
            text.parse()
                .map_err(|e: regkeep_domain::ImageReferenceError| {
                    EngineError::BadInput(e.to_string())
                })?;
        let platform = match platform {
            Some(p) => Platform::parse(p).map_err(EngineError::BadInput)?,
            None => Platform::default_linux(),
        };
        let resolved = self.resolve_image(account, &image, &platform).await?;
        // A digest recorded before is updated in place; a new one counts against the quota.
        if matches!(
            self.store.get_image(account, &resolved.digest).await,
            Err(StoreError::NotFound)
        ) {
            self.check_quota(account, regkeep_store::OwnedTable::Images)
                .await?;
        }
        let now = self.clock.now();
        let mut record = ImageRecord {
            account: account.clone(),
            image_digest: resolved.digest.clone(),
            registry: image.authority().to_owned(),
            repository: image.repository().to_owned(),
            tag: image.tag().map(str::to_owned),
            media_type: resolved.media_type.clone(),
            manifest_digest: resolved.manifest_digest.clone(),
            platform: resolved.platform.to_string(),
            config_digest: resolved.config_digest.clone(),
            image_created: resolved.created.clone(),
            layer_count: i64::try_from(resolved.layers.len()).unwrap_or(i64::MAX),
            total_size: i64::try_from(resolved.total_size).unwrap_or(i64::MAX),
            resolved_at: now,
            created_at: now,
            last_updated: now,
        };
        // A digest recorded before keeps its first created_at.
        record.created_at = self.store.upsert_image(&record).await?;
        info!(image = %image, digest = %record.image_digest, "image resolved");
        Ok(record)
    }

    /// Resolves an image with the credential that serves it.
    pub(crate) async fn resolve_image(
        &self,
        account: &AccountName,
        image: &ImageReference,
        platform: &Platform,
    ) -> Result<ResolvedImage, EngineError> {
        let (client, reference) = (&self.registry_client, image.reference());
        self.with_image_credential(account, image, |endpoint, basic| async move {
            client
                .resolve_image(
                    &endpoint,
                    basic.as_ref(),
                    image.repository(),
                    reference,
                    platform,
                )
                .await
        })
        .await
    }

    /// Runs `call` with the endpoint and credential that serve `image` (DESIGN 3.5): the longest
    /// matching registry of the account, or anonymous with TLS verification on when none
    /// matches. An ECR token the registry refuses is renewed once and `call` run once more.
    ///
    /// # Errors
    /// ResolutionFailed with what the registry (or AWS) answered; storage errors.
    pub(crate) async fn with_image_credential<T, F, Fut>(
        &self,
        account: &AccountName,
        image: &ImageReference,
        call: F,
    ) -> Result<T, EngineError>
    where
        F: Fn(Endpoint, Option<BasicCredentials>) -> Fut,
        Fut: std::future::Future<Output = Result<T, RegistryError>>,
    {
        let registries: Vec<RegistryName> = self.registry_names(account).await?;
        let failed = |source: ValidationError| EngineError::ResolutionFailed {
            image: image.to_string(),
            source,
        };
        let Some(registry) = image.select_credential(&registries) else {
            // No credential matches: anonymous, TLS verified (Anchore turned verification off).
            let endpoint = Endpoint {
                authority: image.authority().to_owned(),
                verify_tls: true,
            };
            return call(endpoint, None)
                .await
                .map_err(|e| failed(ValidationError::Registry(e)));
        };
        let credential = self.resolve_credential(account, registry.as_str()).await?;
        let endpoint = Endpoint {
            authority: image.authority().to_owned(),
            verify_tls: credential.verify_tls,
        };
        let (value, _) = self
            .with_renewal_on_refusal(&credential, failed, |basic| {
                call(endpoint.clone(), Some(basic))
            })
            .await?;
        Ok(value)
    }

    /// # Errors
    /// Storage errors.
    pub async fn list_images(
        &self,
        account: &AccountName,
    ) -> Result<Vec<ImageRecord>, EngineError> {
        Ok(self.store.list_images(account).await?)
    }

    /// # Errors
    /// NotFound.
    pub async fn get_image(
        &self,
        account: &AccountName,
        digest: &str,
    ) -> Result<ImageRecord, EngineError> {
        match self.store.get_image(account, digest).await {
            Ok(r) => Ok(r),
            Err(StoreError::NotFound) => Err(image_not_found(account, digest)),
            Err(e) => Err(e.into()),
        }
    }

    /// # Errors
    /// NotFound.
    pub async fn delete_image(
        &self,
        account: &AccountName,
        digest: &str,
    ) -> Result<(), EngineError> {
        match self.store.delete_image(account, digest).await {
            Ok(()) => Ok(()),
            Err(StoreError::NotFound) => Err(image_not_found(account, digest)),
            Err(e) => Err(e.into()),
        }
    }
}

fn image_not_found(account: &AccountName, digest: &str) -> EngineError {
    EngineError::NotFound(format!(
        "image {digest} is not recorded in account {account}: `GET /v1/images` lists the recorded ones"
    ))
}
