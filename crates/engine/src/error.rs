//! What can go wrong in a use-case, as data: which kind of thing was missing or already there,
//! which rule refused, what the registry or AWS answered. The server turns these into status
//! codes and messages; the CLI adds its own hints. No HTTP paths and no CLI words here.

use regkeep_domain::{
    AccountName, AccountState, ApiKeyId, RegistryName, Scope, Timestamp, UserName,
};
use regkeep_ecr::EcrError;
use regkeep_registry::RegistryError;
use regkeep_store::StoreError;

/// A boxed error kept whole (its source chain included) for the log.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What kind of thing an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entity {
    Account,
    User,
    /// A user's password credential.
    PasswordCredential,
    Registry,
    /// An image record, by manifest digest.
    Image,
    /// An image record, by `host/repo:tag`.
    ImageTag,
    /// An image record, by image ID (config digest hex).
    ImageId,
    Subscription,
    Event,
    ApiKey,
    /// A registry entry that serves an image or host (the credential handout).
    RegistryFor,
}

impl Entity {
    /// A stable lower-case word for it (API error details).
    pub fn as_str(self) -> &'static str {
        match self {
            Entity::Account => "account",
            Entity::User => "user",
            Entity::PasswordCredential => "password_credential",
            Entity::Registry => "registry",
            Entity::Image => "image",
            Entity::ImageTag => "image_tag",
            Entity::ImageId => "image_id",
            Entity::Subscription => "subscription",
            Entity::Event => "event",
            Entity::ApiKey => "api_key",
            Entity::RegistryFor => "registry_for",
        }
    }
}

/// Something named: what it is, its name, and the account it was looked for in (none for
/// accounts themselves).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Named {
    pub entity: Entity,
    pub name: String,
    pub account: Option<AccountName>,
}

impl Named {
    pub fn new(entity: Entity, name: impl Into<String>, account: Option<&AccountName>) -> Self {
        Named {
            entity,
            name: name.into(),
            account: account.cloned(),
        }
    }
}

/// What a per-account quota counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuotaKind {
    Registries,
    Subscriptions,
    /// Image tags (`image_detail` entries).
    Images,
    Users,
    ApiKeys,
}

/// Why an authenticated caller may not do what it asked (403).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Account and user management needs a user of the admin account.
    NotAdmin { user: UserName },
    /// Only admins act in another account.
    OtherAccount {
        user: UserName,
        account: AccountName,
    },
    /// Users manage only the users of their own account.
    OtherAccountsUsers {
        user: UserName,
        account: AccountName,
    },
    /// The admin account cannot be disabled.
    DisableAdminAccount,
    /// The caller's account is disabled or being deleted.
    AccountNotEnabled {
        account: AccountName,
        state: AccountState,
    },
    /// The account holds its quota of something already.
    Quota {
        account: AccountName,
        kind: QuotaKind,
        limit: u64,
    },
    /// An API key asked for what its scopes do not name (`needed`: the scope that would allow
    /// it; none when no key may do it: managing users, accounts and keys is for people).
    KeyScope {
        key_id: ApiKeyId,
        needed: Option<Scope>,
    },
    /// The credential handout answers API keys only (a password login never gets a secret).
    HandoutNeedsApiKey { user: UserName },
    /// A stored registry password is handed out only when the server allows it.
    StaticPasswordHandout { registry: RegistryName },
    /// A token minted from the host's own AWS identity is handed out only when the server
    /// allows it.
    HostIdentityHandout { registry: RegistryName },
}

/// Why a known API key cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyState {
    Expired(Timestamp),
    Revoked(Timestamp),
}

impl std::fmt::Display for KeyState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyState::Expired(at) => write!(f, "expired at {at}"),
            KeyState::Revoked(at) => write!(f, "was revoked at {at}"),
        }
    }
}

/// An account state change that cannot be made (Anchore answers these with 400).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateChange {
    /// Only a disabled account may be deleted.
    DeleteEnabled { account: AccountName },
    /// An account being deleted stays so.
    BeingDeleted { account: AccountName },
}

impl std::fmt::Display for Named {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.entity {
            Entity::PasswordCredential => "the password credential of user",
            Entity::ImageTag => "an image recorded under",
            Entity::ImageId => "an image with ID",
            Entity::ApiKey => "API key",
            Entity::RegistryFor => "a registry entry that serves",
            other => other.as_str(),
        };
        write!(f, "{what} {}", self.name)?;
        if let Some(account) = &self.account {
            write!(f, " in account {account}")?;
        }
        Ok(())
    }
}

impl QuotaKind {
    /// What is counted, and the setting that bounds it.
    pub fn what_and_setting(self) -> (&'static str, &'static str) {
        match self {
            QuotaKind::Registries => ("registries", "quotas.registries_per_account"),
            QuotaKind::Subscriptions => ("subscriptions", "quotas.subscriptions_per_account"),
            QuotaKind::Images => (
                "image tags (image_detail entries)",
                "quotas.images_per_account",
            ),
            QuotaKind::Users => ("users", "quotas.users_per_account"),
            QuotaKind::ApiKeys => ("API keys", "quotas.api_keys_per_account"),
        }
    }
}

/// In the domain's words (no API paths, no CLI commands): what a background task records, and
/// what a log line says. The server words its answers itself.
impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NotAdmin { user } => write!(f, "user {user} is not an admin: account and user management needs a user of the admin account"),
            Refusal::OtherAccount { user, account } => write!(f, "user {user} may not act in account {account}: only admin users act in other accounts"),
            Refusal::OtherAccountsUsers { user, account } => write!(f, "user {user} may not manage the users of account {account}: users manage those of their own account; an admin, those of any"),
            Refusal::DisableAdminAccount => write!(f, "the admin account cannot be disabled"),
            Refusal::AccountNotEnabled { account, state } => write!(f, "account {account} is {}, and its users cannot use the API", match state {
                AccountState::Deleting => "being deleted",
                _ => "disabled",
            }),
            Refusal::Quota { account, kind, limit } => {
                let (what, setting) = kind.what_and_setting();
                write!(f, "account {account} holds {limit} {what}, its quota ({setting}): delete some first, or ask an operator to raise {setting}")
            }
            Refusal::KeyScope { key_id, needed: Some(scope) } => write!(f, "API key {key_id} does not have scope {}: use a key made with that scope", scope.as_str()),
            Refusal::KeyScope { key_id, needed: None } => write!(f, "API key {key_id} cannot do this: managing accounts, users and API keys needs a user's password login"),
            Refusal::HandoutNeedsApiKey { user } => write!(f, "user {user} logged in with a password: credentials are handed out only to API keys with scope credentials:read"),
            Refusal::StaticPasswordHandout { registry } => write!(f, "registry {registry} has a stored password, and this server hands out only short-lived tokens: an operator may set handout.static_passwords: true to hand out stored passwords too"),
            Refusal::HostIdentityHandout { registry } => write!(f, "registry {registry} uses this server's own AWS identity (awsauto or _iam_role), whose tokens this server does not hand out: register the registry with an access key of its own, or an operator may set handout.host_identity_tokens: true"),
        }
    }
}

impl std::fmt::Display for StateChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StateChange::DeleteEnabled { account } => {
                write!(
                    f,
                    "account {account} is enabled: disable it before deleting it"
                )
            }
            StateChange::BeingDeleted { account } => {
                write!(f, "account {account} is being deleted")
            }
        }
    }
}

/// Errors of the use-cases. Each variant is one kind of answer to the client.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The input is malformed (the message says what is wrong with it, in the domain's words).
    #[error("{0}")]
    BadInput(String),
    /// No or wrong credentials.
    #[error("authentication failed: give a valid user name and password (HTTP Basic)")]
    Unauthorized,
    /// Authenticated but not allowed.
    #[error("{0}")]
    Refused(Refusal),
    /// It does not exist.
    #[error("{0} does not exist")]
    NotFound(Named),
    /// It exists already.
    #[error("{0} exists already")]
    AlreadyExists(Named),
    /// An account state change that cannot be made.
    #[error("{0}")]
    InvalidStateChange(StateChange),
    /// The user asked to remove the credential it authenticated with.
    #[error("the credential used for this request cannot be deleted")]
    OwnCredential,
    /// The registry (or AWS) refused or could not check the credentials.
    #[error("validating credentials for registry {registry} failed: {source}")]
    ValidationFailed {
        registry: String,
        #[source]
        source: ValidationError,
    },
    /// An image could not be resolved, with what the registry (or AWS) answered.
    #[error("resolving image {image} failed: {source}")]
    ResolutionFailed {
        image: String,
        #[source]
        source: ValidationError,
    },
    /// The registry is declared in the registries file: only the file changes or removes it.
    #[error("registry {registry} is declared in the registries file {file}: change or remove it there (the file is applied again when it changes and on SIGHUP)")]
    Declared { registry: String, file: String },
    /// An API key whose secret matched, but which may no longer be used.
    #[error("API key {key_id} {state}: make a new key")]
    KeyUnusable { key_id: ApiKeyId, state: KeyState },
    /// Too many failed logins from this address or for this user: the seconds to wait.
    #[error("too many failed logins: wait {retry_after} s and try again with the right password")]
    Throttled { retry_after: u64 },
    /// Too many password checks are waiting: retry in a second.
    #[error("the server is busy checking passwords: try again in a second")]
    Busy,
    /// The database's disk is full. Nothing was written.
    #[error("the server's storage is full: nothing was written. An operator must free space on the disk that holds regkeep's database; then try again")]
    StorageFull,
    /// The database cannot be written now (the cause is for the log).
    #[error("the server cannot write its database now: nothing was written; try again later (the cause is in the server's log)")]
    Unavailable(String),
    /// Something broke inside; the source chain is for the log, never for clients.
    #[error("internal error: {0}")]
    Internal(#[source] BoxError),
}

impl EngineError {
    /// An internal error from a message (for faults that have no error value of their own).
    pub fn internal(message: impl Into<String>) -> Self {
        EngineError::Internal(message.into().into())
    }

    pub(crate) fn not_found(
        entity: Entity,
        name: impl Into<String>,
        account: &AccountName,
    ) -> Self {
        EngineError::NotFound(Named::new(entity, name, Some(account)))
    }
}

/// What refused or failed during validation: the registry, or AWS while minting a token.
#[derive(Debug, thiserror::Error)]
pub enum ValidationError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Aws(#[from] EcrError),
}

impl ValidationError {
    /// A short machine-readable kind for API error details.
    pub fn kind(&self) -> &'static str {
        match self {
            ValidationError::Registry(e) => e.kind(),
            ValidationError::Aws(EcrError::Refused { .. }) => "aws_refused",
            ValidationError::Aws(EcrError::Throttled { .. }) => "aws_throttled",
            ValidationError::Aws(EcrError::NoHostCredentials { .. }) => "aws_no_credentials",
            ValidationError::Aws(_) => "aws_unavailable",
        }
    }

    /// The HTTP status the registry or AWS answered, where there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            ValidationError::Registry(e) => e.status(),
            ValidationError::Aws(EcrError::Refused { status, .. }) => *status,
            ValidationError::Aws(_) => None,
        }
    }

    /// AWS's error code, where AWS answered.
    pub fn aws_code(&self) -> Option<&str> {
        match self {
            ValidationError::Aws(e) => e.code(),
            ValidationError::Registry(_) => None,
        }
    }
}

impl From<StoreError> for EngineError {
    fn from(err: StoreError) -> Self {
        if !matches!(err, StoreError::NotFound | StoreError::AlreadyExists) {
            crate::metrics::DATABASE_ERRORS.inc();
        }
        match err {
            StoreError::Full => EngineError::StorageFull,
            StoreError::Unwritable(cause) => EngineError::Unavailable(cause),
            other => EngineError::Internal(Box::new(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a background task records (a subscription's `last_error`, an event's cause) is this
    /// text: people's words, never a `Debug` dump.
    #[test]
    fn errors_read_as_sentences() {
        let account: AccountName = "acme".parse().unwrap();
        let quota = EngineError::Refused(Refusal::Quota {
            account: account.clone(),
            kind: QuotaKind::Images,
            limit: 10,
        });
        assert_eq!(
            quota.to_string(),
            "account acme holds 10 image tags (image_detail entries), its quota (quotas.images_per_account): delete some first, or ask an operator to raise quotas.images_per_account"
        );
        let missing = EngineError::not_found(Entity::Registry, "r.example.com", &account);
        assert_eq!(
            missing.to_string(),
            "registry r.example.com in account acme does not exist"
        );
        let state = EngineError::InvalidStateChange(StateChange::DeleteEnabled { account });
        assert_eq!(
            state.to_string(),
            "account acme is enabled: disable it before deleting it"
        );
        for e in [quota, missing, state] {
            let text = e.to_string();
            assert!(
                !text.contains('{') && !text.contains("AccountName"),
                "{text}"
            );
        }
    }
}
