//! Accounts and users (docs/design.md §2): the admin bootstrap, authentication, who may act in which
//! account, and account and user management.

use regkeep_domain::entities::{AccountRecord, ApiKeyRecord, UserRecord};
use regkeep_domain::wire::{AccessCredential, AccountCreationRequest, UserCreationRequest};
use regkeep_domain::{
    AccountName, AccountState, AccountType, ApiKeyId, BoxFuture, Clock, Secret, Timestamp, UserName,
};
use regkeep_store::{AccountRepository, ApiKeyRepository, Change, StoreError};
use tracing::info;

use std::sync::Arc;

use crate::{passwords, Caller, EngineError, Entity, Named, Refusal, StateChange};

/// The user type of users made through the API (Anchore's name).
const NATIVE_USER: &str = "native";
/// The `meta` marker set once the admin was created.
const ADMIN_SEEDED: &str = "admin_seeded";

/// Accounts, users and who may log in: the admin bootstrap, password checks (on the Argon2id
/// pool), the login cache and the login throttles. One job of the engine; [`crate::Engine::accounts`]
/// gives it.
pub struct Accounts {
    /// Every write through it ends the remembered logins ([`ForgetOnWrite`]).
    pub(crate) store: Arc<dyn AccountRepository>,
    /// Revoking through it ends remembered keys ([`ForgetKeysOnRevoke`]).
    pub(crate) api_keys: Arc<dyn ApiKeyRepository>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) quotas: crate::Quotas,
    pub(crate) logins: Arc<crate::logins::Logins>,
    pub(crate) hashers: Arc<passwords::PasswordHashers>,
    /// Fewest characters of a password set through the API (`min_password_length`).
    pub(crate) min_password_length: usize,
}

/// The accounts' repository as the engine uses it: every write that changed a row ends the
/// remembered logins (a password changed, a user deleted or an account disabled is refused from
/// the next request on, whatever was in flight), and a write to an account's state ends the
/// cached registry records too. The caches are forgotten here, in one place, instead of after
/// each write by hand: a new write method cannot be added without deciding what it forgets.
pub(crate) struct ForgetOnWrite {
    pub(crate) inner: Arc<dyn AccountRepository>,
    /// Where the other replicas hear of it.
    pub(crate) database: Arc<dyn regkeep_store::Database>,
    pub(crate) logins: Arc<crate::logins::Logins>,
    pub(crate) registry_cache: Arc<crate::registry_cache::RegistryCache>,
}

impl ForgetOnWrite {
    /// Awaits `write`; when it changed a row, forgets the logins (and, for `account_state`, the
    /// cached registries).
    fn forgetting<'a, T: Send + 'a>(
        &'a self,
        account_state: bool,
        write: BoxFuture<'a, Result<T, StoreError>>,
    ) -> BoxFuture<'a, Result<T, StoreError>> {
        Box::pin(async move {
            let written = write.await?;
            self.logins.invalidate();
            crate::announce(self.database.as_ref(), Change::Logins).await;
            if account_state {
                self.registry_cache.clear();
                crate::announce(self.database.as_ref(), Change::Registries).await;
            }
            Ok(written)
        })
    }
}

/// The API keys' repository as the engine uses it: a revocation ends the remembered keys at
/// once (as [`ForgetOnWrite`] does for logins). A new key needs nothing forgotten; a last-use
/// time changes nobody's rights.
pub(crate) struct ForgetKeysOnRevoke {
    pub(crate) inner: Arc<dyn ApiKeyRepository>,
    pub(crate) database: Arc<dyn regkeep_store::Database>,
    pub(crate) logins: Arc<crate::logins::Logins>,
}

impl ApiKeyRepository for ForgetKeysOnRevoke {
    fn insert_api_key<'a>(&'a self, key: &'a ApiKeyRecord) -> StoreFuture<'a, ()> {
        self.inner.insert_api_key(key)
    }
    fn get_api_key<'a>(&'a self, key_id: &'a ApiKeyId) -> StoreFuture<'a, ApiKeyRecord> {
        self.inner.get_api_key(key_id)
    }
    fn list_api_keys<'a>(&'a self, account: &'a AccountName) -> StoreFuture<'a, Vec<ApiKeyRecord>> {
        self.inner.list_api_keys(account)
    }
    fn revoke_api_key<'a>(
        &'a self,
        account: &'a AccountName,
        key_id: &'a ApiKeyId,
        now: Timestamp,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let revoked = self.inner.revoke_api_key(account, key_id, now).await?;
            // Keys only (remembered password logins stay: no Argon2 re-checks for all), and on
            // every revocation, a repeated one too: the first one's forgetting may not have run
            // (its request cancelled after the write).
            self.logins.forget_keys();
            crate::announce(self.database.as_ref(), Change::Keys).await;
            Ok(revoked)
        })
    }
    fn touch_api_key<'a>(&'a self, key_id: &'a ApiKeyId, now: Timestamp) -> StoreFuture<'a, ()> {
        self.inner.touch_api_key(key_id, now)
    }
    fn revoke_api_keys_made_by<'a>(
        &'a self,
        user: &'a UserName,
        now: Timestamp,
    ) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            let revoked = self.inner.revoke_api_keys_made_by(user, now).await?;
            self.logins.forget_keys();
            crate::announce(self.database.as_ref(), Change::Keys).await;
            Ok(revoked)
        })
    }
    fn count_api_keys<'a>(&'a self, account: &'a AccountName) -> StoreFuture<'a, u64> {
        self.inner.count_api_keys(account)
    }
    fn hash_api_key(&self, secret: &[u8]) -> String {
        self.inner.hash_api_key(secret)
    }
}

type StoreFuture<'a, T> = BoxFuture<'a, Result<T, StoreError>>;

impl AccountRepository for ForgetOnWrite {
    fn has_marker<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool> {
        self.inner.has_marker(key)
    }
    fn set_marker<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()> {
        self.inner.set_marker(key)
    }
    fn insert_account<'a>(&'a self, account: &'a AccountRecord) -> StoreFuture<'a, ()> {
        // A new account has no cached logins: nothing to forget.
        self.inner.insert_account(account)
    }
    fn get_account<'a>(&'a self, name: &'a AccountName) -> StoreFuture<'a, AccountRecord> {
        self.inner.get_account(name)
    }
    fn list_accounts(&self) -> StoreFuture<'_, Vec<AccountRecord>> {
        self.inner.list_accounts()
    }
    fn set_account_state<'a>(
        &'a self,
        name: &'a AccountName,
        state: AccountState,
        now: Timestamp,
    ) -> StoreFuture<'a, ()> {
        self.forgetting(true, self.inner.set_account_state(name, state, now))
    }
    fn delete_account<'a>(&'a self, name: &'a AccountName) -> StoreFuture<'a, ()> {
        self.forgetting(true, self.inner.delete_account(name))
    }
    fn insert_user<'a>(&'a self, user: &'a UserRecord) -> StoreFuture<'a, ()> {
        // A new user has no cached login: nothing to forget.
        self.inner.insert_user(user)
    }
    fn get_user<'a>(&'a self, username: &'a UserName) -> StoreFuture<'a, UserRecord> {
        self.inner.get_user(username)
    }
    fn list_users<'a>(&'a self, account: &'a AccountName) -> StoreFuture<'a, Vec<UserRecord>> {
        self.inner.list_users(account)
    }
    fn set_user_password_hash<'a>(
        &'a self,
        account: &'a AccountName,
        username: &'a UserName,
        hash: &'a str,
        now: Timestamp,
    ) -> StoreFuture<'a, ()> {
        self.forgetting(
            false,
            self.inner
                .set_user_password_hash(account, username, hash, now),
        )
    }
    fn delete_user<'a>(
        &'a self,
        account: &'a AccountName,
        username: &'a UserName,
    ) -> StoreFuture<'a, ()> {
        self.forgetting(false, self.inner.delete_user(account, username))
    }
    fn count_users<'a>(&'a self, account: &'a AccountName) -> StoreFuture<'a, u64> {
        self.inner.count_users(account)
    }
}

impl Accounts {
    /// The password hashing threads (their verification count shows single-flight at work).
    pub fn password_hashers(&self) -> &passwords::PasswordHashers {
        &self.hashers
    }

    /// Whether this database still needs its admin: never seeded, and no account at all. A
    /// database made before the marker existed (it has accounts) is marked as seeded, so that
    /// deleting the admin later never brings it back.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn needs_admin_seed(&self) -> Result<bool, EngineError> {
        if self.store.has_marker(ADMIN_SEEDED).await? {
            return Ok(false);
        }
        if !self.store.list_accounts().await?.is_empty() {
            self.store.set_marker(ADMIN_SEEDED).await?;
            return Ok(false);
        }
        Ok(true)
    }

    /// Creates the admin account and user with `password`, once in a database's life (a marker
    /// in the database, not the absence of a user named admin, says it was done).
    ///
    /// # Errors
    /// Storage errors.
    pub async fn bootstrap_admin(&self, password: &Secret) -> Result<bool, EngineError> {
        if !self.needs_admin_seed().await? {
            return Ok(false);
        }
        let now = self.clock.now();
        let admin = AccountRecord {
            name: AccountName::admin(),
            email: None,
            account_type: AccountType::Admin,
            state: AccountState::Enabled,
            created_at: now,
            last_updated: now,
        };
        ignore_exists(self.store.insert_account(&admin).await)?;
        let user = UserRecord {
            username: UserName::admin(),
            account: AccountName::admin(),
            user_type: NATIVE_USER.into(),
            source: None,
            password_hash: self.hashers.hash(password).await?,
            created_at: now,
            last_updated: now,
        };
        ignore_exists(self.store.insert_user(&user).await)?;
        self.store.set_marker(ADMIN_SEEDED).await?;
        info!("created the admin account and user");
        Ok(true)
    }

    /// Checks a user name and password.
    ///
    /// # Errors
    /// [`EngineError::Unauthorized`] for an unknown user, a wrong password, or a disabled account.
    pub async fn authenticate(
        &self,
        username: &str,
        password: &Secret,
    ) -> Result<Caller, EngineError> {
        let user = match username.parse::<UserName>() {
            Ok(name) => match self.store.get_user(&name).await {
                Ok(user) => Some(user),
                Err(StoreError::NotFound) => None,
                Err(e) => return Err(e.into()),
            },
            Err(_) => None,
        };
        // An unknown user is checked against a hash that matches nothing, so that unknown and known
        // user names take the same time to refuse.
        // A user whose password credential was deleted has none: the same check, never a match.
        let hash = match &user {
            Some(u) if !u.password_hash.is_empty() => u.password_hash.clone(),
            _ => passwords::unmatchable_hash(&self.hashers).await?,
        };
        let matches = self.hashers.verify(password, hash).await?;
        let Some(user) = user.filter(|u| matches && !u.password_hash.is_empty()) else {
            return Err(EngineError::Unauthorized);
        };
        // The account's state is checked by the caller of this (a right password of a disabled
        // account's user is a 403, not a failed login).
        let account = self.store.get_account(&user.account).await?;
        Ok(Caller {
            user: user.username,
            account: user.account,
            account_type: account.account_type,
            account_state: account.state,
            api_key: None,
        })
    }

    /// The account the caller acts in: its own, or for an admin, the one named by
    /// `x-anchore-account`.
    ///
    /// # Errors
    /// [`EngineError::Refused`] when a non-admin names another account;
    /// [`EngineError::NotFound`] when the named account does not exist.
    pub async fn acting_account(
        &self,
        caller: &Caller,
        requested: Option<&str>,
    ) -> Result<AccountName, EngineError> {
        let Some(requested) = requested.filter(|r| !r.is_empty()) else {
            return Ok(caller.account.clone());
        };
        let name: AccountName =
            requested
                .parse()
                .map_err(|e: regkeep_domain::account::NameError| {
                    EngineError::BadInput(format!("x-anchore-account: {e}"))
                })?;
        if name == caller.account {
            return Ok(name);
        }
        if !caller.is_admin() {
            return Err(EngineError::Refused(Refusal::OtherAccount {
                user: caller.user.clone(),
                account: name,
            }));
        }
        self.account_record(&name).await?;
        Ok(name)
    }

    /// The record of the account a caller acts in (as settled by [`Accounts::acting_account`]).
    ///
    /// # Errors
    /// NotFound; storage errors.
    pub async fn acting_account_record(
        &self,
        account: &AccountName,
    ) -> Result<AccountRecord, EngineError> {
        self.account_record(account).await
    }

    /// The caller's own user.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn own_user(&self, caller: &Caller) -> Result<UserRecord, EngineError> {
        self.user_record(&caller.account, &caller.user).await
    }

    /// # Errors
    /// [`EngineError::Refused`] for non-admins.
    pub async fn list_accounts(&self, caller: &Caller) -> Result<Vec<AccountRecord>, EngineError> {
        require_admin(caller)?;
        Ok(self.store.list_accounts().await?)
    }

    /// # Errors
    /// [`EngineError::Refused`] for non-admins (other than for their own account), NotFound.
    pub async fn get_account(
        &self,
        caller: &Caller,
        name: &str,
    ) -> Result<AccountRecord, EngineError> {
        let name = parse_account(name)?;
        if name != caller.account {
            require_admin(caller)?;
        }
        self.account_record(&name).await
    }

    /// # Errors
    /// BadInput, Forbidden, Conflict.
    pub async fn create_account(
        &self,
        caller: &Caller,
        request: AccountCreationRequest,
    ) -> Result<AccountRecord, EngineError> {
        require_admin(caller)?;
        let name = parse_account(&request.name)?;
        let email = match request.email.map(|e| e.trim().to_owned()).filter(|e| !e.is_empty()) {
            Some(e) if e.len() > 254 || e.chars().any(char::is_control) || !e.contains('@') => {
                return Err(EngineError::BadInput(format!(
                    "email `{}` is not an email address: give one like `ops@example.com`, or leave it out",
                    e.chars().take(80).collect::<String>()
                )))
            }
            other => other,
        };
        let now = self.clock.now();
        let record = AccountRecord {
            name: name.clone(),
            email,
            account_type: AccountType::User,
            state: AccountState::Enabled,
            created_at: now,
            last_updated: now,
        };
        match self.store.insert_account(&record).await {
            Ok(()) => Ok(record),
            // The server answers 400, as Anchore does (its clients test for it).
            Err(StoreError::AlreadyExists) => Err(EngineError::AlreadyExists(Named::new(
                Entity::Account,
                name.as_str(),
                None,
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// # Errors
    /// BadInput, Forbidden, NotFound.
    pub async fn set_account_state(
        &self,
        caller: &Caller,
        name: &str,
        state: &str,
    ) -> Result<AccountRecord, EngineError> {
        require_admin(caller)?;
        let name = parse_account(name)?;
        let state = AccountState::parse(state)
            .filter(|s| *s != AccountState::Deleting)
            .ok_or_else(|| {
                EngineError::BadInput(format!(
                    "state `{}` is not known: use `enabled` or `disabled`",
                    regkeep_domain::untrusted_text::sanitize(state, 40)
                ))
            })?;
        if name == AccountName::admin() && state == AccountState::Disabled {
            return Err(EngineError::Refused(Refusal::DisableAdminAccount));
        }
        if self.account_record(&name).await?.state == AccountState::Deleting {
            return Err(EngineError::InvalidStateChange(StateChange::BeingDeleted {
                account: name,
            }));
        }
        let changed = self
            .store
            .set_account_state(&name, state, self.clock.now())
            .await;
        match changed {
            // A disabled account's users are refused from the next request on (ForgetOnWrite).
            Ok(()) => self.account_record(&name).await,
            // Gone (404), or marked deleting by a request that raced this one.
            Err(StoreError::NotFound) => Err(EngineError::BadInput(format!(
                "Invalid account state change requested: account {} is being deleted",
                self.account_record(&name).await?.name
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes a disabled account, as Anchore does: the account is marked `deleting` at once (its
    /// users are refused from the next request on) and answered; its users, registries, sealed
    /// secrets and records are removed by [`crate::Engine::purge_deleted_accounts`] in the background.
    /// Deleting an account already being deleted answers it again.
    ///
    /// # Errors
    /// Forbidden (not admin, or the admin account), NotFound, BadInput (still enabled).
    pub async fn delete_account(
        &self,
        caller: &Caller,
        name: &str,
    ) -> Result<AccountRecord, EngineError> {
        require_admin(caller)?;
        let name = parse_account(name)?;
        let record = self.account_record(&name).await?;
        // 400, as Anchore answers.
        if record.account_type == AccountType::Admin || name == caller.account {
            return Err(EngineError::BadInput(format!(
                "Account cannot be deleted: account {name} is an admin account or your own"
            )));
        }
        match record.state {
            AccountState::Deleting => return Ok(record),
            // Anchore's message (anchore-cli adds a hint when it sees it) and status.
            AccountState::Enabled => {
                return Err(EngineError::InvalidStateChange(
                    StateChange::DeleteEnabled { account: name },
                ))
            }
            AccountState::Disabled => {}
        }
        let changed = self
            .store
            .set_account_state(&name, AccountState::Deleting, self.clock.now())
            .await;
        match changed {
            Ok(()) => {
                info!(account = %name, "account marked for deletion");
                self.account_record(&name).await
            }
            // Gone, or marked deleting by a request that raced this one: answered as it is.
            Err(StoreError::NotFound) => self.account_record(&name).await,
            Err(e) => Err(e.into()),
        }
    }

    /// # Errors
    /// Forbidden, NotFound.
    pub async fn list_users(
        &self,
        caller: &Caller,
        account: &str,
    ) -> Result<Vec<UserRecord>, EngineError> {
        let account = parse_account(account)?;
        require_admin_or_own(caller, &account)?;
        self.account_record(&account).await?;
        Ok(self.store.list_users(&account).await?)
    }

    /// # Errors
    /// Forbidden, NotFound.
    pub async fn get_user(
        &self,
        caller: &Caller,
        account: &str,
        username: &str,
    ) -> Result<UserRecord, EngineError> {
        let account = parse_account(account)?;
        let username = parse_user(username)?;
        require_admin_or_own(caller, &account)?;
        self.user_record(&account, &username).await
    }

    /// # Errors
    /// BadInput, Forbidden, NotFound (account), Conflict (user name taken in any account).
    pub async fn create_user(
        &self,
        caller: &Caller,
        account: &str,
        request: UserCreationRequest,
    ) -> Result<UserRecord, EngineError> {
        let account = parse_account(account)?;
        require_admin_or_own(caller, &account)?;
        let username = parse_user(&request.username)?;
        if self.account_record(&account).await?.state == AccountState::Deleting {
            return Err(EngineError::BadInput(format!(
                "account {account} is being deleted: it takes no new users"
            )));
        }
        crate::check_quota(
            self.quotas.users,
            crate::QuotaKind::Users,
            &account,
            self.store.count_users(&account),
        )
        .await?;
        self.check_new_password(&request.password)?;
        let now = self.clock.now();
        let record = UserRecord {
            username: username.clone(),
            account,
            user_type: NATIVE_USER.into(),
            source: None,
            password_hash: self.hashers.hash(&request.password).await?,
            created_at: now,
            last_updated: now,
        };
        match self.store.insert_user(&record).await {
            Ok(()) => Ok(record),
            // The server answers 400, as Anchore does.
            Err(StoreError::AlreadyExists) => Err(EngineError::AlreadyExists(Named::new(
                Entity::User,
                username.as_str(),
                Some(&record.account),
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// # Errors
    /// Forbidden (not admin, or deleting yourself), NotFound.
    pub async fn delete_user(
        &self,
        caller: &Caller,
        account: &str,
        username: &str,
    ) -> Result<(), EngineError> {
        let account = parse_account(account)?;
        require_admin_or_own(caller, &account)?;
        let username = parse_user(username)?;
        // 400, as Anchore answers.
        if username == caller.user {
            return Err(EngineError::BadInput(
                "Cannot delete credential used for authentication of the request: you cannot delete the user you are logged in as; log in as another user of the account".into(),
            ));
        }
        // The keys the user made, in any account, end first (offboarding leaves no working key
        // behind; if this fails the user stays, and deleting again does it).
        self.user_record(&account, &username).await?;
        self.revoke_keys_made_by(&username).await?;
        match self.store.delete_user(&account, &username).await {
            // Refused from the next request on, whatever was in flight (ForgetOnWrite).
            Ok(()) => Ok(()),
            Err(StoreError::NotFound) => Err(not_found_user(&account, &username)),
            Err(e) => Err(e.into()),
        }
    }

    /// Sets a user's password. Admins may set anyone's; a user those of its own account.
    ///
    /// # Errors
    /// BadInput (type is not `password`, empty value), Forbidden, NotFound.
    pub async fn set_user_password(
        &self,
        caller: &Caller,
        account: &str,
        username: &str,
        credential: AccessCredential,
    ) -> Result<UserRecord, EngineError> {
        let account = parse_account(account)?;
        let username = parse_user(username)?;
        require_admin_or_own(caller, &account)?;
        check_credential_type(&credential.credential_type)?;
        self.check_new_password(&credential.value)?;
        self.user_record(&account, &username).await?;
        let hash = self.hashers.hash(&credential.value).await?;
        // The write names the account: a user deleted and re-created in another account while
        // the hash was computed is not touched (NotFound).
        match self
            .store
            .set_user_password_hash(&account, &username, &hash, self.clock.now())
            .await
        {
            // The old password is refused from the next request on (ForgetOnWrite).
            Ok(()) => {}
            Err(StoreError::NotFound) => return Err(not_found_user(&account, &username)),
            Err(e) => return Err(e.into()),
        }
        self.user_record(&account, &username).await
    }

    /// A password set through the API is at least `min_password_length` characters (NIST SP
    /// 800-63B asks for 8). The message names the setting, never the password or its length.
    fn check_new_password(&self, password: &Secret) -> Result<(), EngineError> {
        if password.expose().chars().count() < self.min_password_length {
            return Err(EngineError::BadInput(format!(
                "the password is shorter than {} characters (the server's min_password_length): choose a longer one",
                self.min_password_length
            )));
        }
        Ok(())
    }

    /// The credentials a user has (a password, or none once deleted), never their value.
    ///
    /// # Errors
    /// Forbidden (another account's user, for a non-admin), NotFound.
    pub async fn list_credentials(
        &self,
        caller: &Caller,
        account: &str,
        username: &str,
    ) -> Result<Vec<CredentialSummary>, EngineError> {
        let account = parse_account(account)?;
        let username = parse_user(username)?;
        require_admin_or_own(caller, &account)?;
        let user = self.user_record(&account, &username).await?;
        Ok(credential_summaries(&user))
    }

    /// The caller's own credentials.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn own_credentials(
        &self,
        caller: &Caller,
    ) -> Result<Vec<CredentialSummary>, EngineError> {
        Ok(credential_summaries(&self.own_user(caller).await?))
    }

    /// Deletes a user's password: the user can no longer log in (until given a new one). A
    /// caller cannot delete its own (it would lock itself out mid-request).
    ///
    /// # Errors
    /// BadInput (type is not `password`), Forbidden, NotFound (also when it has none).
    pub async fn delete_credential(
        &self,
        caller: &Caller,
        account: &str,
        username: &str,
        credential_type: &str,
    ) -> Result<(), EngineError> {
        let account = parse_account(account)?;
        let username = parse_user(username)?;
        require_admin_or_own(caller, &account)?;
        check_credential_type(credential_type)?;
        if username == caller.user {
            return Err(EngineError::OwnCredential);
        }
        let user = self.user_record(&account, &username).await?;
        if user.password_hash.is_empty() {
            return Err(EngineError::not_found(
                Entity::PasswordCredential,
                username.as_str(),
                &account,
            ));
        }
        match self
            .store
            .set_user_password_hash(&account, &username, "", self.clock.now())
            .await
        {
            // Refused from the next request on (ForgetOnWrite).
            Ok(()) => {}
            Err(StoreError::NotFound) => return Err(not_found_user(&account, &username)),
            Err(e) => return Err(e.into()),
        }
        info!(user = %username, account = %account, "deleted a user's password credential");
        Ok(())
    }

    pub(crate) async fn account_record(
        &self,
        name: &AccountName,
    ) -> Result<AccountRecord, EngineError> {
        match self.store.get_account(name).await {
            Ok(r) => Ok(r),
            Err(StoreError::NotFound) => Err(not_found_account(name)),
            Err(e) => Err(e.into()),
        }
    }

    async fn user_record(
        &self,
        account: &AccountName,
        username: &UserName,
    ) -> Result<UserRecord, EngineError> {
        match self.store.get_user(username).await {
            Ok(user) if &user.account == account => Ok(user),
            Ok(_) | Err(StoreError::NotFound) => Err(not_found_user(account, username)),
            Err(e) => Err(e.into()),
        }
    }
}

fn require_admin(caller: &Caller) -> Result<(), EngineError> {
    if caller.is_admin() {
        Ok(())
    } else {
        Err(EngineError::Refused(Refusal::NotAdmin {
            user: caller.user.clone(),
        }))
    }
}

/// Users manage the users of their own account, as Anchore's do; admins those of every account.
fn require_admin_or_own(caller: &Caller, account: &AccountName) -> Result<(), EngineError> {
    if caller.is_admin() || &caller.account == account {
        Ok(())
    } else {
        Err(EngineError::Refused(Refusal::OtherAccountsUsers {
            user: caller.user.clone(),
            account: account.clone(),
        }))
    }
}

/// A credential a user has, without its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialSummary {
    /// `password` (the only type).
    pub credential_type: &'static str,
    /// When it was set.
    pub created_at: regkeep_domain::Timestamp,
}

fn credential_summaries(user: &UserRecord) -> Vec<CredentialSummary> {
    if user.password_hash.is_empty() {
        return Vec::new();
    }
    vec![CredentialSummary {
        credential_type: PASSWORD_CREDENTIAL,
        created_at: user.last_updated,
    }]
}

/// The one credential type of users (Anchore's name).
const PASSWORD_CREDENTIAL: &str = "password";

fn check_credential_type(credential_type: &str) -> Result<(), EngineError> {
    if credential_type == PASSWORD_CREDENTIAL {
        Ok(())
    } else {
        Err(EngineError::BadInput(format!(
            "credential type `{}` is not supported: use `password`",
            regkeep_domain::untrusted_text::sanitize(credential_type, 40)
        )))
    }
}

fn parse_account(name: &str) -> Result<AccountName, EngineError> {
    name.parse()
        .map_err(|e: regkeep_domain::account::NameError| EngineError::BadInput(e.to_string()))
}

fn parse_user(name: &str) -> Result<UserName, EngineError> {
    name.parse()
        .map_err(|e: regkeep_domain::account::NameError| EngineError::BadInput(e.to_string()))
}

fn not_found_account(name: &AccountName) -> EngineError {
    EngineError::NotFound(Named::new(Entity::Account, name.as_str(), None))
}

fn not_found_user(account: &AccountName, user: &UserName) -> EngineError {
    EngineError::not_found(Entity::User, user.as_str(), account)
}

fn ignore_exists(result: Result<(), StoreError>) -> Result<(), EngineError> {
    match result {
        Ok(()) | Err(StoreError::AlreadyExists) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests;
