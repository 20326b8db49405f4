//! Using stored credentials (DESIGN 3.3, 3.4): the credential that serves a registry right now
//! — its user and password for `docker_v2`, a live ECR token for `awsecr` — and a check that
//! logs in to the registry with it, renewing a refused ECR token once and retrying once.

use regkeep_domain::{AccountName, RegistryName, RegistryType, Secret, Timestamp};
use regkeep_registry::{BasicCredentials, Endpoint, RegistryError};

use crate::ecr_tokens::{Token, TokenError, TokenRequest};
use crate::{Engine, EngineError, ValidationError};

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
    pub(crate) ecr: Option<(TokenRequest, Token)>,
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

/// What a check found.
#[derive(Clone, Debug)]
pub struct CheckReport {
    pub registry: RegistryName,
    pub checked_at: Timestamp,
    pub usable_until: Option<Timestamp>,
    /// Whether a refused ECR token had to be renewed.
    pub renewed_after_refusal: bool,
}

impl Engine {
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
        let password = match self.registry_cache.get_secret(account, &record.registry) {
            Some(secret) => secret,
            None => {
                let generation = self.registry_cache.generation();
                let secret = self
                    .store
                    .registry_password(account, &record.registry)
                    .await?;
                self.registry_cache
                    .put_secret(account, &record.registry, &secret, generation);
                secret
            }
        };
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
                Ok(ResolvedCredential {
                    registry: record.registry,
                    verify_tls: record.registry_verify,
                    username: token.username.clone(),
                    password: token.password.clone(),
                    usable_until: Some(token.usable_until),
                    ecr: Some((request, token)),
                })
            }
        }
    }

    /// Logs in to the registry with its credential now (`/v2/` ping). A 401/403 to an ECR
    /// token regkeep believed valid renews the token once and retries once.
    ///
    /// # Errors
    /// As [`Engine::resolve_credential`]; ValidationFailed with the registry's answer.
    pub async fn check_registry(
        &self,
        account: &AccountName,
        registry: &str,
    ) -> Result<CheckReport, EngineError> {
        let credential = self.resolve_credential(account, registry).await?;
        let endpoint = Endpoint {
            authority: credential.registry.authority().to_owned(),
            verify_tls: credential.verify_tls,
        };
        let failed = |source: RegistryError| EngineError::ValidationFailed {
            registry: credential.registry.to_string(),
            source: ValidationError::Registry(source),
        };
        let basic = BasicCredentials {
            username: credential.username.clone(),
            password: credential.password.clone(),
        };
        let mut report = CheckReport {
            registry: credential.registry.clone(),
            checked_at: self.clock.now(),
            usable_until: credential.usable_until,
            renewed_after_refusal: false,
        };
        match (
            self.registry_client.ping(&endpoint, Some(&basic)).await,
            &credential.ecr,
        ) {
            (Ok(()), _) => Ok(report),
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
                    .map_err(|e| token_failed(&credential.registry, e))?;
                let basic = BasicCredentials {
                    username: renewed.username,
                    password: renewed.password,
                };
                self.registry_client
                    .ping(&endpoint, Some(&basic))
                    .await
                    .map_err(failed)?;
                report.usable_until = Some(renewed.usable_until);
                report.renewed_after_refusal = true;
                Ok(report)
            }
            (Err(e), _) => Err(failed(e)),
        }
    }
}

fn token_failed(registry: &RegistryName, error: TokenError) -> EngineError {
    match error {
        TokenError::Aws(aws) | TokenError::BackingOff(aws, _) => EngineError::ValidationFailed {
            registry: registry.to_string(),
            source: ValidationError::Aws(aws),
        },
        TokenError::Store(m) => EngineError::Internal(m),
    }
}
