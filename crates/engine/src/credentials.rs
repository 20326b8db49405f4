//! Using stored credentials (docs/design.md §3.3, 3.4): the credential that serves a registry right now
//! — its user and password for `docker_v2`, a live ECR token for `awsecr` — and a check that
//! logs in to the registry with it, renewing a refused ECR token once and retrying once.

use regkeep_domain::image_reference::{select_for_host, EntryScope};
use regkeep_domain::wire::CredentialRequest;
use regkeep_domain::{
    AccountName, EcrCredentialMode, EcrToken, ImageReference, RegistryName, RegistryType, Secret,
    Timestamp,
};
use regkeep_registry::{BasicCredentials, Endpoint, RegistryError};

use crate::ecr_tokens::{TokenError, TokenRequest};
use crate::{EngineError, ValidationError};

/// The credential that serves a registry now. `Debug` redacts the password.
#[derive(Clone)]
pub struct ResolvedCredential {
    pub registry: RegistryName,
    pub verify_tls: bool,
    pub username: String,
    pub password: Secret,
    /// For ECR tokens: until when the token may be used.
    pub usable_until: Option<Timestamp>,
    /// For ECR tokens: what was asked, and the token, to renew after a refusal.
    pub(crate) ecr: Option<(TokenRequest, EcrToken)>,
}

impl std::fmt::Debug for ResolvedCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolvedCredential")
            .field("registry", &self.registry)
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .field("usable_until", &self.usable_until)
            .finish_non_exhaustive()
    }
}

/// What the credential handout answers: the entry that serves, and its credential now.
#[derive(Debug)]
pub struct Handout {
    pub credential: ResolvedCredential,
    /// The host (`host[:port]`) the credential is for.
    pub host: String,
    pub scope: EntryScope,
    pub registry_type: RegistryType,
}

/// What a check found.
#[derive(Clone, Debug)]
pub struct CheckReport {
    pub registry: RegistryName,
    pub checked_at: Timestamp,
    pub usable_until: Option<Timestamp>,
    /// Whether a refused ECR token had to be renewed.
    pub renewed_after_refusal: bool,
}

impl crate::registries::Registries {
    /// The credential that serves `registry` of `account` now.
    ///
    /// # Errors
    /// NotFound; BadInput when the registry uses the host's identity and
    /// `allow_awsecr_iam_auto` is off; ValidationFailed (reason `aws_*`) when no ECR token can be
    /// had, naming AWS's answer.
    pub async fn resolve_credential(
        &self,
        account: &AccountName,
        registry: &str,
    ) -> Result<ResolvedCredential, EngineError> {
        let record = self.get_registry(account, registry).await?;
        let password = self.stored_secret(account, &record.registry).await?;
        match record.registry_type {
            RegistryType::DockerV2 => Ok(ResolvedCredential {
                registry: record.registry,
                verify_tls: record.registry_verify,
                username: record.registry_user,
                password,
                usable_until: None,
                ecr: None,
            }),
            RegistryType::AwsEcr => {
                let request =
                    self.ecr_request(&record.registry, &record.registry_user, &password)?;
                let token = self
                    .ecr_tokens
                    .token(&request)
                    .await
                    .map_err(|e| token_failed(&record.registry, e))?;
                Ok(ResolvedCredential::from_token(
                    record.registry,
                    record.registry_verify,
                    request,
                    token,
                ))
            }
        }
    }

    /// The registry's stored secret, from the cache or the database.
    async fn stored_secret(
        &self,
        account: &AccountName,
        registry: &RegistryName,
    ) -> Result<Secret, EngineError> {
        if let Some(secret) = self.registry_cache.get_secret(account, registry) {
            return Ok(secret);
        }
        let generation = self.registry_cache.generation();
        let secret = self.store.registry_password(account, registry).await?;
        self.registry_cache
            .put_secret(account, registry, &secret, generation);
        Ok(secret)
    }

    /// The credential handout (docs/design.md §3.8): the credential of the registry entry that
    /// serves `request`'s image (the matching rules of §3.5) or whole host, for a caller whose
    /// API key has `credentials:read`. ECR tokens come from the token lifecycle (no AWS call
    /// when a live one is kept); a stored docker_v2 password only when the server allows it.
    ///
    /// # Errors
    /// Refused (no key, no scope, a stored password the server keeps), BadInput (neither or both
    /// of image and registry, or one that does not parse), NotFound (no entry serves it), and
    /// as [`crate::Registries::resolve_credential`].
    pub async fn hand_out(
        &self,
        caller: &crate::Caller,
        account: &AccountName,
        request: &CredentialRequest,
    ) -> Result<Handout, EngineError> {
        caller.require(regkeep_domain::Scope::CredentialsRead)?;
        let names = self.registry_names(account).await?;
        let (wanted, entry) = match (&request.image, &request.registry) {
            (Some(image), None) => {
                let reference: ImageReference = image.trim().parse().map_err(
                    |e: regkeep_domain::ImageReferenceError| EngineError::BadInput(e.to_string()),
                )?;
                (image.trim(), reference.select_credential(&names).cloned())
            }
            (None, Some(host)) => {
                let authority: RegistryName = host.trim().parse().map_err(
                    |e: regkeep_domain::RegistryNameError| EngineError::BadInput(e.to_string()),
                )?;
                if authority.path().is_some() || authority.is_wildcard() {
                    return Err(EngineError::BadInput(format!(
                        "registry `{authority}` is not a host: give host[:port], or ask by image for a repository"
                    )));
                }
                (
                    host.trim(),
                    select_for_host(authority.authority(), &names).cloned(),
                )
            }
            _ => {
                return Err(EngineError::BadInput(
                    "give either image (host/repository[:tag]) or registry (host[:port]), not both and not neither".into(),
                ))
            }
        };
        let Some(entry) = entry else {
            return Err(EngineError::NotFound(crate::Named::new(
                crate::Entity::RegistryFor,
                regkeep_domain::untrusted_text::sanitize(wanted, 300),
                Some(account),
            )));
        };
        let record = self.get_registry(account, entry.as_str()).await?;
        if record.registry_type == RegistryType::DockerV2 && !self.handout_static_passwords {
            return Err(EngineError::Refused(
                crate::Refusal::StaticPasswordHandout {
                    registry: record.registry,
                },
            ));
        }
        // A token of the host's own identity carries the host role's ECR rights, which no
        // account's key should take out unless the operator says so.
        if record.registry_type == RegistryType::AwsEcr && !self.handout_host_identity_tokens {
            let secret = self.stored_secret(account, &record.registry).await?;
            let host_identity = EcrCredentialMode::from_user_pass(&record.registry_user, &secret)
                .is_ok_and(|mode| mode.uses_host_identity());
            if host_identity {
                return Err(EngineError::Refused(crate::Refusal::HostIdentityHandout {
                    registry: record.registry,
                }));
            }
        }
        let credential = self.resolve_credential(account, entry.as_str()).await?;
        // Decided again on what was minted: the entry may have changed between the two reads.
        let minted_from_host = credential.ecr.as_ref().is_some_and(|(request, _)| {
            !matches!(
                request.source,
                regkeep_ecr::AwsCredentialSource::StaticKeys { .. }
            )
        });
        if minted_from_host && !self.handout_host_identity_tokens {
            return Err(EngineError::Refused(crate::Refusal::HostIdentityHandout {
                registry: credential.registry,
            }));
        }
        Ok(Handout {
            scope: EntryScope::of(&entry),
            host: entry.authority().to_owned(),
            registry_type: record.registry_type,
            credential,
        })
    }

    /// Logs in to the registry with its credential now (`/v2/` ping). A 401/403 to an ECR
    /// token regkeep believed valid renews the token once and retries once.
    ///
    /// # Errors
    /// As [`crate::Registries::resolve_credential`]; ValidationFailed with the registry's answer.
    pub async fn check_registry(
        &self,
        account: &AccountName,
        registry: &str,
    ) -> Result<CheckReport, EngineError> {
        let credential = self.resolve_credential(account, registry).await?;
        let endpoint = &Endpoint {
            authority: credential.registry.authority().to_owned(),
            verify_tls: credential.verify_tls,
        };
        let failed = |source| EngineError::ValidationFailed {
            registry: credential.registry.to_string(),
            source,
        };
        let client = &self.registry_client;
        let ((), renewed) = self
            .with_renewal_on_refusal(&credential, failed, |basic| async move {
                client.ping(endpoint, Some(&basic)).await
            })
            .await?;
        Ok(CheckReport {
            registry: credential.registry.clone(),
            checked_at: self.clock.now(),
            usable_until: renewed
                .as_ref()
                .map(|t| t.usable_until)
                .or(credential.usable_until),
            renewed_after_refusal: renewed.is_some(),
        })
    }

    /// Runs `call` with `credential`; when the registry refuses an ECR token regkeep believed
    /// valid (401/403), renews the token once and runs `call` once more — never more. Gives the
    /// renewed token when there was one. The one place of that rule, for validation, checks and
    /// image resolution alike.
    ///
    /// # Errors
    /// `failed` of what the registry or AWS answered; Internal for the token store.
    pub(crate) async fn with_renewal_on_refusal<T, F, Fut>(
        &self,
        credential: &ResolvedCredential,
        failed: impl Fn(ValidationError) -> EngineError,
        call: F,
    ) -> Result<(T, Option<EcrToken>), EngineError>
    where
        F: Fn(BasicCredentials) -> Fut,
        Fut: std::future::Future<Output = Result<T, RegistryError>>,
    {
        let first = call(credential.basic()).await;
        match (first, &credential.ecr) {
            (
                Err(RegistryError::Refused {
                    status: 401 | 403, ..
                }),
                Some((request, token)),
            ) => {
                let renewed = self
                    .ecr_tokens
                    .renew_after_rejection(request, token)
                    .await
                    .map_err(|e| from_token_error(e, &failed))?;
                let basic = BasicCredentials {
                    username: renewed.username.clone(),
                    password: renewed.password.clone(),
                };
                let value = call(basic)
                    .await
                    .map_err(|e| failed(ValidationError::Registry(e)))?;
                Ok((value, Some(renewed)))
            }
            (result, _) => result
                .map(|v| (v, None))
                .map_err(|e| failed(ValidationError::Registry(e))),
        }
    }
}

impl ResolvedCredential {
    /// A credential made of a freshly minted ECR token (validation of new credentials).
    pub(crate) fn from_token(
        registry: RegistryName,
        verify_tls: bool,
        request: TokenRequest,
        token: EcrToken,
    ) -> Self {
        ResolvedCredential {
            registry,
            verify_tls,
            username: token.username.clone(),
            password: token.password.clone(),
            usable_until: Some(token.usable_until),
            ecr: Some((request, token)),
        }
    }

    fn basic(&self) -> BasicCredentials {
        BasicCredentials {
            username: self.username.clone(),
            password: self.password.clone(),
        }
    }
}

/// A token that cannot be had: AWS's answer through `failed`; a token-store failure is internal.
pub(crate) fn from_token_error(
    error: TokenError,
    failed: impl Fn(ValidationError) -> EngineError,
) -> EngineError {
    match error {
        TokenError::Aws(aws) | TokenError::BackingOff(aws, _) => failed(ValidationError::Aws(aws)),
        store @ TokenError::Store(_) => EngineError::Internal(Box::new(store)),
    }
}

fn token_failed(registry: &RegistryName, error: TokenError) -> EngineError {
    from_token_error(error, |source| EngineError::ValidationFailed {
        registry: registry.to_string(),
        source,
    })
}

#[cfg(test)]
mod tests;
