//! What can go wrong in a use-case, as data: which kind of thing was missing or already there,
//! which rule refused, what the registry or AWS answered. The server turns these into status
//! codes and messages; the CLI adds its own hints. No HTTP paths and no CLI words here.

use regkeep_domain::{AccountName, AccountState, UserName};
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
}

/// An account state change that cannot be made (Anchore answers these with 400).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateChange {
    /// Only a disabled account may be deleted.
    DeleteEnabled { account: AccountName },
    /// An account being deleted stays so.
    BeingDeleted { account: AccountName },
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
    #[error("refused: {0:?}")]
    Refused(Refusal),
    /// It does not exist.
    #[error("{} {} does not exist", .0.entity.as_str(), .0.name)]
    NotFound(Named),
    /// It exists already.
    #[error("{} {} exists already", .0.entity.as_str(), .0.name)]
    AlreadyExists(Named),
    /// An account state change that cannot be made.
    #[error("invalid account state change: {0:?}")]
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
        match err {
            StoreError::Full => EngineError::StorageFull,
            StoreError::Unwritable(cause) => EngineError::Unavailable(cause),
            other => EngineError::Internal(Box::new(other)),
        }
    }
}
