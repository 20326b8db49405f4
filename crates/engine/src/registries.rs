//! Registries (docs/design.md §1, 3.1–3.3): parse what clients send, validate credentials against the
//! registry, store them sealed, update, delete, and read them back without the password.

use regkeep_domain::entities::RegistryRecord;
use regkeep_domain::registry_kind::EcrCredentialMode;
use regkeep_domain::wire::RegistryConfigurationRequest;
use regkeep_domain::{AccountName, EcrHost, Host, RegistryName, RegistryType, Secret};
use regkeep_ecr::{AwsCredentialSource, EcrTarget};
use regkeep_registry::{BasicCredentials, Endpoint};
use regkeep_store::StoreError;
use tracing::{info, instrument, warn};

use crate::credentials::ResolvedCredential;
use crate::ecr_tokens::TokenRequest;
use std::sync::Arc;

use regkeep_domain::Clock;
use regkeep_registry::RegistryApi;

use crate::{EngineError, ValidationError};

/// Longest `registry_user` and `registry_name` accepted, in bytes.
const MAX_FIELD_LEN: usize = 255;
/// Longest `registry_pass` accepted, in bytes (ECR tokens are about 2 KiB; keep room).
const MAX_PASS_LEN: usize = 8192;

/// A registry request, parsed.
#[derive(Clone, Debug)]
pub struct RegistrySpec {
    pub registry: RegistryName,
    pub registry_user: String,
    pub registry_pass: Secret,
    pub registry_type: RegistryType,
    /// Whether the type was guessed from the host (clients print a warning).
    pub type_guessed: bool,
    pub registry_verify: bool,
    pub registry_name: String,
}

impl RegistrySpec {
    /// Parses a request body: every field is checked, and each refusal says what to change.
    ///
    /// # Errors
    /// [`EngineError::BadInput`].
    pub fn parse(request: RegistryConfigurationRequest) -> Result<Self, EngineError> {
        let registry: RegistryName = request
            .registry
            .parse()
            .map_err(|e: regkeep_domain::RegistryNameError| EngineError::BadInput(e.to_string()))?;
        let registry_user = request.registry_user;
        check_text("registry_user", &registry_user, MAX_FIELD_LEN)?;
        let registry_pass = request.registry_pass;
        if registry_pass.is_empty() {
            return Err(EngineError::BadInput(
                "registry_pass is empty: give the registry password (or AWS secret access key, or `awsauto`)".into(),
            ));
        }
        if registry_pass.expose().len() > MAX_PASS_LEN {
            return Err(EngineError::BadInput(format!(
                "registry_pass is longer than {MAX_PASS_LEN} bytes"
            )));
        }
        if registry_pass.expose().chars().any(char::is_control) {
            return Err(EngineError::BadInput(
                "registry_pass contains control characters (a stray newline?): remove them".into(),
            ));
        }
        let (registry_type, type_guessed) = match request.registry_type.as_deref().map(str::trim) {
            None | Some("") => (RegistryType::guess(&registry), true),
            Some(text) => (
                RegistryType::parse(text).map_err(|e| EngineError::BadInput(e.to_string()))?,
                false,
            ),
        };
        let registry_name = match request.registry_name {
            Some(name) if !name.is_empty() => {
                check_text("registry_name", &name, MAX_FIELD_LEN)?;
                name
            }
            _ => registry.to_string(),
        };
        Ok(RegistrySpec {
            registry,
            registry_user,
            registry_pass,
            registry_type,
            type_guessed,
            registry_verify: request.registry_verify.unwrap_or(true),
            registry_name,
        })
    }
}

fn check_text(field: &str, value: &str, max: usize) -> Result<(), EngineError> {
    if value.trim().is_empty() {
        return Err(EngineError::BadInput(format!(
            "{field} is empty: give a value"
        )));
    }
    if value.trim() != value {
        return Err(EngineError::BadInput(format!(
            "{field} starts or ends with whitespace: remove it"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(EngineError::BadInput(format!(
            "{field} contains control characters: remove them"
        )));
    }
    if value.len() > max {
        return Err(EngineError::BadInput(format!(
            "{field} is longer than {max} bytes"
        )));
    }
    Ok(())
}

/// What add/update did, for the answer.
#[derive(Clone, Debug)]
pub struct Saved {
    pub record: RegistryRecord,
    pub type_guessed: bool,
}

/// Registries and the credentials that serve them: add, validate, update, delete and read
/// registries (with their cache), resolve a registry's credential now (its password, or a live ECR
/// token from the token lifecycle), and renew-once on a refused token. One job of the engine;
/// [`crate::Engine::registries`] gives it.
pub struct Registries {
    pub(crate) store: Arc<dyn regkeep_store::RegistryRepository>,
    pub(crate) registry_client: Arc<dyn RegistryApi>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) allow_awsecr_iam_auto: bool,
    /// Whether the credential handout gives out stored docker_v2 passwords too.
    pub(crate) handout_static_passwords: bool,
    /// Whether it gives out tokens minted from the host's own AWS identity.
    pub(crate) handout_host_identity_tokens: bool,
    pub(crate) quotas: crate::Quotas,
    pub(crate) registry_cache: Arc<crate::registry_cache::RegistryCache>,
    pub(crate) ecr_tokens: Arc<crate::EcrTokens>,
    /// Where the other replicas hear of registry writes.
    pub(crate) database: Arc<dyn regkeep_store::Database>,
}

impl Registries {
    /// After a registry write: this process's cached records go, and the other replicas hear of
    /// it.
    async fn registries_changed(&self) {
        self.registry_cache.clear();
        crate::announce(self.database.as_ref(), regkeep_store::Change::Registries).await;
    }

    /// The ECR token lifecycle (its background task is the server's to run).
    pub fn ecr_tokens(&self) -> &Arc<crate::EcrTokens> {
        &self.ecr_tokens
    }

    /// The names of the account's registries (for credential selection), from the cache when
    /// it has them.
    pub(crate) async fn registry_names(
        &self,
        account: &AccountName,
    ) -> Result<Vec<RegistryName>, EngineError> {
        if let Some(names) = self.registry_cache.get_names(account) {
            return Ok(names);
        }
        let generation = self.registry_cache.generation();
        let names: Vec<RegistryName> = self
            .store
            .list_registries(account)
            .await?
            .into_iter()
            .map(|r| r.registry)
            .collect();
        self.registry_cache.put_names(account, &names, generation);
        Ok(names)
    }

    /// Lists the account's registries.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn list_registries(
        &self,
        account: &AccountName,
    ) -> Result<Vec<RegistryRecord>, EngineError> {
        Ok(self.store.list_registries(account).await?)
    }

    /// One registry of the account.
    ///
    /// # Errors
    /// [`EngineError::BadInput`] for a malformed name; [`EngineError::NotFound`].
    pub async fn get_registry(
        &self,
        account: &AccountName,
        registry: &str,
    ) -> Result<RegistryRecord, EngineError> {
        let registry = parse_registry(registry)?;
        if let Some(record) = self.registry_cache.get(account, &registry) {
            return Ok(record);
        }
        let generation = self.registry_cache.generation();
        match self.store.get_registry(account, &registry).await {
            Ok(record) => {
                self.registry_cache.put(&record, generation);
                Ok(record)
            }
            Err(StoreError::NotFound) => Err(not_found(account, &registry)),
            Err(e) => Err(e.into()),
        }
    }

    /// Adds a registry: checks the input, refuses a duplicate, validates the credentials
    /// against the registry when `validate`, then stores them sealed. Nothing is stored when any
    /// step fails.
    ///
    /// # Errors
    /// BadInput, Conflict, ValidationFailed.
    #[instrument(skip_all, fields(account = %account, registry = %request.registry))]
    pub async fn add_registry(
        &self,
        account: &AccountName,
        request: RegistryConfigurationRequest,
        validate: bool,
    ) -> Result<Saved, EngineError> {
        let spec = RegistrySpec::parse(request)?;
        let ecr = self.check_type_rules(&spec)?;
        match self.store.get_registry(account, &spec.registry).await {
            Ok(_) => return Err(conflict(account, &spec.registry)),
            Err(StoreError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
        crate::check_quota(
            self.quotas.registries,
            crate::QuotaKind::Registries,
            account,
            self.store.count_registries(account),
        )
        .await?;
        let validated = self.validated_at(&spec, ecr.as_ref(), validate).await?;
        let now = self.clock.now();
        let record = RegistryRecord {
            account: account.clone(),
            registry: spec.registry.clone(),
            registry_name: spec.registry_name.clone(),
            registry_user: spec.registry_user.clone(),
            registry_type: spec.registry_type,
            registry_verify: spec.registry_verify,
            created_at: now,
            last_updated: now,
            last_validated: validated,
            token_key: ecr.map(|r| r.key),
            token_status: None,
            declared_in: None,
            declaration_error: None,
        };
        let inserted = self
            .store
            .insert_registry(&record, &spec.registry_pass)
            .await;
        self.registries_changed().await;
        match inserted {
            Ok(()) => {}
            Err(StoreError::AlreadyExists) => return Err(conflict(account, &spec.registry)),
            Err(e) => return Err(e.into()),
        }
        info!(registry_type = %record.registry_type, validated = validate, "registry added");
        Ok(Saved {
            record,
            type_guessed: spec.type_guessed,
        })
    }

    /// Updates a registry: replaces its user, password, type, verify flag and name (nothing
    /// else), validating first when `validate`. The path's registry and the body's must agree.
    ///
    /// # Errors
    /// BadInput, NotFound, ValidationFailed.
    #[instrument(skip_all, fields(account = %account, registry = %path_registry))]
    pub async fn update_registry(
        &self,
        account: &AccountName,
        path_registry: &str,
        request: RegistryConfigurationRequest,
        validate: bool,
    ) -> Result<Saved, EngineError> {
        let path_name = parse_registry(path_registry)?;
        let mut request = request;
        let password_kept = request.registry_pass.is_empty();
        if password_kept {
            // An update without a password keeps the stored one.
            request.registry_pass = match self.store.registry_password(account, &path_name).await {
                Ok(stored) => stored,
                Err(StoreError::NotFound) => return Err(not_found(account, &path_name)),
                Err(e) => return Err(e.into()),
            };
        }
        let spec = RegistrySpec::parse(request)?;
        if spec.registry != path_name {
            return Err(EngineError::BadInput(format!(
                "the registry in the path ({path_name}) and in the body ({}) differ: to rename a registry, delete it and add it again",
                spec.registry
            )));
        }
        let ecr = self.check_type_rules(&spec)?;
        let existing = match self.store.get_registry(account, &spec.registry).await {
            Ok(r) => r,
            Err(StoreError::NotFound) => return Err(not_found(account, &spec.registry)),
            Err(e) => return Err(e.into()),
        };
        if let Some(file) = existing.declared_in {
            return Err(EngineError::Declared {
                registry: spec.registry.to_string(),
                file,
            });
        }
        if password_kept {
            check_kept_password(&existing, &spec)?;
        }
        // Not checked now: the last check still stands when the credential and how it is
        // presented did not change (a rename); otherwise it is unknown.
        let unchanged = password_kept
            && existing.registry_user == spec.registry_user
            && existing.registry_type == spec.registry_type
            && existing.registry_verify == spec.registry_verify;
        let validated = match self.validated_at(&spec, ecr.as_ref(), validate).await? {
            None if unchanged => existing.last_validated,
            checked => checked,
        };
        let previous_key = existing.token_key.clone();
        let record = RegistryRecord {
            registry_name: spec.registry_name.clone(),
            registry_user: spec.registry_user.clone(),
            registry_type: spec.registry_type,
            registry_verify: spec.registry_verify,
            last_updated: self.clock.now(),
            last_validated: validated,
            token_key: ecr.map(|r| r.key),
            ..existing
        };
        let updated = self
            .store
            .update_registry(&record, &spec.registry_pass)
            .await;
        self.registries_changed().await;
        match updated {
            Ok(()) => {}
            Err(StoreError::NotFound) => return Err(not_found(account, &spec.registry)),
            Err(e) => return Err(e.into()),
        }
        if let Some(old_key) = previous_key.filter(|old| record.token_key.as_ref() != Some(old)) {
            self.release_token(&old_key).await;
        }
        info!(registry_type = %record.registry_type, validated = validate, "registry updated");
        Ok(Saved {
            record,
            type_guessed: spec.type_guessed,
        })
    }

    /// Removes a registry and its sealed password.
    ///
    /// # Errors
    /// BadInput, NotFound.
    pub async fn delete_registry(
        &self,
        account: &AccountName,
        registry: &str,
    ) -> Result<(), EngineError> {
        let registry = parse_registry(registry)?;
        let token_key = match self.store.get_registry(account, &registry).await {
            Ok(RegistryRecord {
                declared_in: Some(file),
                ..
            }) => {
                return Err(EngineError::Declared {
                    registry: registry.to_string(),
                    file,
                })
            }
            Ok(record) => record.token_key,
            Err(StoreError::NotFound) => return Err(not_found(account, &registry)),
            Err(e) => return Err(e.into()),
        };
        let deleted = self.store.delete_registry(account, &registry).await;
        self.registries_changed().await;
        match deleted {
            Ok(()) => {
                info!(account = %account, registry = %registry, "registry deleted");
                if let Some(key) = token_key {
                    self.release_token(&key).await;
                }
                Ok(())
            }
            Err(StoreError::NotFound) => Err(not_found(account, &registry)),
            Err(e) => Err(e.into()),
        }
    }

    /// A registry stopped using the ECR token under `key`: the token goes when no other registry
    /// uses it. A failure is logged; the lifecycle's sweep removes the token later.
    pub(crate) async fn release_token(&self, key: &str) {
        if let Err(e) = self.ecr_tokens.release(key).await {
            warn!(error = %e, "could not release an ECR token no longer used; the periodic sweep will");
        }
    }

    /// The rules that depend on the type: an `awsecr` registry needs an ECR host and a readable
    /// credential mode (and the setting for host-identity modes); its token request comes back.
    fn check_type_rules(&self, spec: &RegistrySpec) -> Result<Option<TokenRequest>, EngineError> {
        match spec.registry_type {
            RegistryType::AwsEcr => self
                .ecr_request(&spec.registry, &spec.registry_user, &spec.registry_pass)
                .map(Some),
            RegistryType::DockerV2 => Ok(None),
        }
    }

    /// When `validate`: checks the credentials and gives the time they were found good;
    /// otherwise `None` (never checked).
    async fn validated_at(
        &self,
        spec: &RegistrySpec,
        ecr: Option<&TokenRequest>,
        validate: bool,
    ) -> Result<Option<regkeep_domain::Timestamp>, EngineError> {
        if !validate {
            return Ok(None);
        }
        self.validate(spec, ecr).await?;
        Ok(Some(self.clock.now()))
    }

    async fn validate(
        &self,
        spec: &RegistrySpec,
        ecr: Option<&TokenRequest>,
    ) -> Result<(), EngineError> {
        let failed = |source: ValidationError| {
            warn!(error = %source, "registry validation failed");
            EngineError::ValidationFailed {
                registry: spec.registry.to_string(),
                source,
            }
        };
        let endpoint = Endpoint {
            authority: spec.registry.authority().to_owned(),
            verify_tls: spec.registry_verify,
        };
        match (spec.registry_type, ecr) {
            (RegistryType::AwsEcr, Some(request)) => {
                // Mint with the new credentials (AWS's refusal is the answer), then log in to
                // the registry with the token; a refused token is renewed once and retried once.
                let token = self
                    .ecr_tokens
                    .mint_now(request)
                    .await
                    .map_err(|e| failed(ValidationError::Aws(e)))?;
                let credential = ResolvedCredential::from_token(
                    spec.registry.clone(),
                    spec.registry_verify,
                    request.clone(),
                    token,
                );
                let (client, endpoint) = (&self.registry_client, &endpoint);
                self.with_renewal_on_refusal(&credential, failed, |basic| async move {
                    client.ping(endpoint, Some(&basic)).await
                })
                .await
                .map(|_| ())
            }
            _ => {
                let credentials = BasicCredentials {
                    username: spec.registry_user.clone(),
                    password: spec.registry_pass.clone(),
                };
                self.registry_client
                    .ping(&endpoint, Some(&credentials))
                    .await
                    .map_err(|e| failed(ValidationError::Registry(e)))
            }
        }
    }

    /// What to mint an ECR token for, for an `awsecr` registry with this user and password;
    /// enforces `allow_awsecr_iam_auto` (at add, update and every use).
    ///
    /// # Errors
    /// [`EngineError::BadInput`] for a host that is not ECR, an unreadable credential, or a
    /// host-identity mode while the setting is off.
    pub fn ecr_request(
        &self,
        registry: &RegistryName,
        user: &str,
        pass: &Secret,
    ) -> Result<TokenRequest, EngineError> {
        let host = match registry.host() {
            Host::Dns(h) => EcrHost::parse(h),
            _ => None,
        };
        let Some(host) = host else {
            return Err(EngineError::BadInput(format!(
                "registry {registry} is not an Amazon ECR host, so registry_type `awsecr` cannot serve it: ECR hosts look like `123456789012.dkr.ecr.us-east-1.amazonaws.com` or `public.ecr.aws`; use `docker_v2` for other registries"
            )));
        };
        let mode = EcrCredentialMode::from_user_pass(user, pass)
            .map_err(|e| EngineError::BadInput(e.to_string()))?;
        if mode.uses_host_identity() && !self.allow_awsecr_iam_auto {
            return Err(EngineError::BadInput(
                "using the host's own AWS identity (`awsauto`, `_iam_role`) is turned off: set `allow_awsecr_iam_auto: true` in the configuration (or REGKEEP_ALLOW_AWSECR_IAM_AUTO=true) to allow it, or give an access key id and secret access key".into(),
            ));
        }
        let (identity, source) = match mode {
            EcrCredentialMode::StaticKeys {
                access_key_id,
                secret_access_key,
            } => (
                format!(
                    "keys:{access_key_id}:{}",
                    self.store
                        .fingerprint(secret_access_key.expose().as_bytes())
                ),
                AwsCredentialSource::StaticKeys {
                    access_key_id,
                    secret_access_key,
                },
            ),
            EcrCredentialMode::HostIdentity => ("host".to_owned(), AwsCredentialSource::HostChain),
            EcrCredentialMode::AssumeRole {
                role_arn,
                external_id,
            } => (
                format!(
                    "role:{role_arn}:{}",
                    external_id.as_ref().map_or_else(String::new, |e| self
                        .store
                        .fingerprint(e.expose().as_bytes()))
                ),
                AwsCredentialSource::AssumeRole {
                    role_arn,
                    external_id,
                },
            ),
        };
        let (key, target) = match host {
            EcrHost::Private {
                account,
                region,
                partition,
                fips,
                dual_stack,
            } => (
                // A dual-stack host's entry is its own: its renewals must go to the dual-stack
                // API (an IPv6-only host reaches no other), whoever registered the account first.
                format!(
                    "{identity}|{partition}|{region}{}{}|{account}",
                    if fips { "-fips" } else { "" },
                    if dual_stack { "-dualstack" } else { "" }
                ),
                EcrTarget::Private {
                    account,
                    region,
                    fips,
                    dual_stack,
                },
            ),
            EcrHost::Public => (
                format!("{identity}|aws|us-east-1|public"),
                EcrTarget::Public,
            ),
        };
        Ok(TokenRequest {
            key,
            source,
            target,
        })
    }
}

/// A stored secret is kept (an update without a password) only for what it was given for: the
/// same user and type, and TLS verification not turned off. Otherwise whoever may update a
/// registry could send a password they never knew somewhere else: an AWS secret key handed out
/// as a `docker_v2` password, or a password sent over unverified TLS.
fn check_kept_password(existing: &RegistryRecord, spec: &RegistrySpec) -> Result<(), EngineError> {
    let what = if existing.registry_type != spec.registry_type {
        "the type"
    } else if existing.registry_user != spec.registry_user {
        "the user"
    } else if existing.registry_verify && !spec.registry_verify {
        "TLS verification (turned off)"
    } else {
        return Ok(());
    };
    Err(EngineError::BadInput(format!(
        "changing {what} of registry {} needs its password too: give registry_pass (regkeep registry update ... --password-stdin); the stored one is kept only for the same user, type and TLS verification",
        spec.registry
    )))
}

fn parse_registry(text: &str) -> Result<RegistryName, EngineError> {
    text.parse()
        .map_err(|e: regkeep_domain::RegistryNameError| EngineError::BadInput(e.to_string()))
}

fn not_found(account: &AccountName, registry: &RegistryName) -> EngineError {
    EngineError::not_found(crate::Entity::Registry, registry.as_str(), account)
}

fn conflict(account: &AccountName, registry: &RegistryName) -> EngineError {
    EngineError::AlreadyExists(crate::Named::new(
        crate::Entity::Registry,
        registry.as_str(),
        Some(account),
    ))
}

mod declared;
pub use declared::{DeclaredEntry, ReconcileReport};

#[cfg(test)]
mod tests;
