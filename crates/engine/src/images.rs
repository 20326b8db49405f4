//! Image records (issue 4, first use-case): resolve a tag (or digest) with the credential that
//! serves it (docs/design.md §3.5; anonymous with TLS verification on when none does), and record what it
//! resolved to. regkeep records resolutions; it does not scan.

use regkeep_domain::entities::ImageRecord;
use regkeep_domain::oci::Platform;
use regkeep_domain::{AccountName, Digest, ImageReference, RegistryName, Timestamp};
use regkeep_registry::manifests::ResolvedImage;
use regkeep_registry::{BasicCredentials, Endpoint, RegistryError};
use regkeep_store::StoreError;
use tracing::info;

use crate::{EngineError, ValidationError};

/// Images: resolving references with the credential that serves them, recording what they
/// resolved to (every tag of a digest), and the pull-through of manifests and blobs. One job of
/// the engine; [`crate::Engine::images`] gives it.
pub struct Images {
    pub(crate) store: std::sync::Arc<dyn regkeep_store::ImageRepository>,
    pub(crate) registry_client: std::sync::Arc<dyn regkeep_registry::RegistryApi>,
    pub(crate) clock: std::sync::Arc<dyn regkeep_domain::Clock>,
    pub(crate) quotas: crate::Quotas,
    pub(crate) registries: std::sync::Arc<crate::Registries>,
}

impl Images {
    /// Resolves `tag` (pinned to `digest` when given) for `platform` (default linux/amd64) and
    /// stores the record, with the tag among the digest's tags. A digest the tag no longer
    /// points at is accepted (recording an older image under its tag is a real use, and Anchore
    /// accepts it); the answer then names the digest the tag points at now.
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
    ) -> Result<AddedImage, EngineError> {
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
        let explicit = platform.is_some();
        let platform = match platform {
            Some(p) => Platform::parse(p).map_err(EngineError::BadInput)?,
            None => Platform::default_linux(),
        };
        let resolved = self.resolve_image(account, &image, &platform).await?;
        // A single-platform image is what it is; a platform asked for by name must be it (a
        // multi-platform image without it was refused while resolving, naming those it has).
        if explicit && !platform.served_by(&resolved.platform) {
            return Err(EngineError::BadInput(format!(
                "{image} has only {} (a single-platform image), not {platform}: leave out the platform, or give {}",
                resolved.platform, resolved.platform
            )));
        }
        let tag_points_at = match (digest, image.tag()) {
            (Some(_), Some(tag)) => self.tag_digest_now(account, &image, tag).await,
            _ => None,
        }
        .filter(|now| *now != resolved.digest);
        // A reference with neither tag nor digest was resolved as `latest`.
        let tag = match (image.tag(), image.digest()) {
            (Some(t), _) => Some(t.to_owned()),
            (None, None) => Some("latest".to_owned()),
            (None, Some(_)) => None,
        };
        // A tag the digest was recorded under before is updated in place; a new one (a new
        // digest, or a new tag of a recorded one) counts against the quota: every tag is a row.
        let is_new = match self.store.get_image(account, &resolved.digest).await {
            Ok(held) => !held.tags.iter().any(|t| {
                t.registry == image.authority()
                    && t.repository == image.repository()
                    && t.tag == tag
            }),
            Err(StoreError::NotFound) => true,
            Err(e) => return Err(e.into()),
        };
        if is_new {
            crate::check_quota(
                self.quotas.images,
                crate::QuotaKind::Images,
                account,
                self.store.count_image_tags(account),
            )
            .await?;
        }
        let now = self.clock.now();
        let mut record = ImageRecord {
            account: account.clone(),
            image_digest: resolved.digest.clone(),
            registry: image.authority().to_owned(),
            repository: image.repository().to_owned(),
            tag,
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
            tags: Vec::new(),
        };
        // A digest recorded before keeps its first created_at; the answer lists all its tags.
        record.created_at = self.store.upsert_image(&record).await?;
        info!(image = %image, digest = %record.image_digest, "image resolved");
        let record = self
            .get_image(account, record.image_digest.as_str())
            .await?;
        Ok(AddedImage {
            record,
            tag_points_at,
        })
    }

    /// The digest `tag` of `image`'s repository points at now; `None` when the registry does
    /// not say (the add itself succeeded: this only informs).
    async fn tag_digest_now(
        &self,
        account: &AccountName,
        image: &ImageReference,
        tag: &str,
    ) -> Option<Digest> {
        let client = &self.registry_client;
        let answer = self
            .with_image_credential(account, image, |endpoint, basic| async move {
                client
                    .manifest_digest(&endpoint, basic.as_ref(), image.repository(), tag)
                    .await
            })
            .await;
        match answer {
            Ok(digest) => Some(digest),
            Err(e) => {
                info!(image = %image, error = %e, "the tag's current digest could not be had");
                None
            }
        }
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

    /// Runs `call` with the endpoint and credential that serve `image` (docs/design.md §3.5): the longest
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
        let registries: Vec<RegistryName> = self.registries.registry_names(account).await?;
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
        let credential = self
            .registries
            .resolve_credential(account, registry.as_str())
            .await?;
        let endpoint = Endpoint {
            authority: image.authority().to_owned(),
            verify_tls: credential.verify_tls,
        };
        let (value, _) = self
            .registries
            .with_renewal_on_refusal(&credential, failed, |basic| {
                call(endpoint.clone(), Some(basic))
            })
            .await?;
        Ok(value)
    }

    /// The account's images; with `fulltag`, those recorded under that tag (only the one the
    /// tag was most recently added at, unless `history`), or, as Anchore reads the same
    /// parameter, those of that image ID (64 hex) or image digest (`sha256:…`).
    ///
    /// # Errors
    /// BadInput for a `fulltag` that is none of these; NotFound when a `fulltag` matches no
    /// image; storage errors.
    pub async fn list_images(
        &self,
        account: &AccountName,
        fulltag: Option<&str>,
        history: bool,
    ) -> Result<Vec<ImageRecord>, EngineError> {
        let Some(wanted) = fulltag.map(str::trim) else {
            return Ok(self.store.list_images(account).await?);
        };
        crate::tag_watch::check_length("fulltag", wanted, 1024)?;
        if is_image_id(wanted) {
            return self.images_by_id(account, wanted).await;
        }
        if wanted.starts_with("sha256:") {
            return Ok(vec![self.get_image(account, wanted).await?]);
        }
        let image: ImageReference =
            wanted
                .parse()
                .map_err(|e: regkeep_domain::ImageReferenceError| {
                    EngineError::BadInput(format!(
                        "fulltag {wanted:?} is not an image reference ({e}): give host/repository:tag, an image ID or an image digest"
                    ))
                })?;
        let tag = image.tag().unwrap_or("latest");
        let is_wanted = |t: &regkeep_domain::entities::ImageTagRecord| {
            t.registry == image.authority()
                && t.repository == image.repository()
                && t.tag.as_deref() == Some(tag)
        };
        let mut found: Vec<(Timestamp, ImageRecord)> = self
            .store
            .list_images(account)
            .await?
            .into_iter()
            .filter_map(|record| {
                let seen = record
                    .tags
                    .iter()
                    .filter(|t| is_wanted(t))
                    .map(|t| t.last_updated)
                    .max()?;
                Some((seen, record))
            })
            .collect();
        if found.is_empty() {
            return Err(EngineError::not_found(
                crate::Entity::ImageTag,
                format!("{}/{}:{tag}", image.authority(), image.repository()),
                account,
            ));
        }
        if !history {
            // The digest the tag was most recently added at (ties: the later record).
            found.sort_by_key(|(seen, _)| *seen);
            found.drain(..found.len() - 1);
        }
        Ok(found.into_iter().map(|(_, record)| record).collect())
    }

    /// The images whose image ID (config digest hex, Anchore's `imageId`) is `image_id`.
    ///
    /// # Errors
    /// BadInput for an ID that is not 64 hex digits; NotFound when none has it.
    pub async fn images_by_id(
        &self,
        account: &AccountName,
        image_id: &str,
    ) -> Result<Vec<ImageRecord>, EngineError> {
        if !is_image_id(image_id) {
            return Err(EngineError::BadInput(format!(
                "{:?} is not an image ID: give the 64 hex digits of the image's config digest (`imageId` in the image record)",
                regkeep_domain::untrusted_text::sanitize(image_id, 80)
            )));
        }
        let config_digest = Digest::parse(&format!("sha256:{}", image_id.to_ascii_lowercase()))
            .map_err(|e| EngineError::BadInput(e.to_string()))?;
        let found = self.store.images_by_config(account, &config_digest).await?;
        if found.is_empty() {
            return Err(EngineError::not_found(
                crate::Entity::ImageId,
                image_id,
                account,
            ));
        }
        Ok(found)
    }

    /// Deletes every image whose image ID is `image_id`; answers their digests.
    ///
    /// # Errors
    /// As [`Images::images_by_id`].
    pub async fn delete_images_by_id(
        &self,
        account: &AccountName,
        image_id: &str,
    ) -> Result<Vec<Digest>, EngineError> {
        let mut deleted = Vec::new();
        for image in self.images_by_id(account, image_id).await? {
            match self.store.delete_image(account, &image.image_digest).await {
                // Deleted meanwhile by another request: gone either way.
                Ok(()) | Err(StoreError::NotFound) => deleted.push(image.image_digest),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(deleted)
    }

    /// # Errors
    /// NotFound.
    pub async fn get_image(
        &self,
        account: &AccountName,
        digest: &str,
    ) -> Result<ImageRecord, EngineError> {
        // Text that is no digest names no image (404, as for any digest not recorded).
        let Ok(parsed) = Digest::parse(digest) else {
            return Err(image_not_found(account, digest));
        };
        match self.store.get_image(account, &parsed).await {
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
        let Ok(parsed) = Digest::parse(digest) else {
            return Err(image_not_found(account, digest));
        };
        match self.store.delete_image(account, &parsed).await {
            Ok(()) => Ok(()),
            Err(StoreError::NotFound) => Err(image_not_found(account, digest)),
            Err(e) => Err(e.into()),
        }
    }
}

/// What [`Images::add_image`] answers.
#[derive(Clone, Debug)]
pub struct AddedImage {
    /// The record, with every tag of its digest.
    pub record: ImageRecord,
    /// When a digest was given and the tag points at another one now: that one.
    pub tag_points_at: Option<Digest>,
}

/// Anchore's image ID: the 64 hex digits of the config digest.
fn is_image_id(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

fn image_not_found(account: &AccountName, digest: &str) -> EngineError {
    EngineError::not_found(crate::Entity::Image, digest, account)
}

#[cfg(test)]
mod tests;
