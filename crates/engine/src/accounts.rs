//! Accounts and users (DESIGN 2): the admin bootstrap, authentication, who may act in which
//! account, and account and user management.

use regkeep_domain::wire::{AccessCredential, AccountCreationRequest, UserCreationRequest};
use regkeep_domain::{AccountName, AccountState, AccountType, Secret, UserName};
use regkeep_store::{AccountRecord, StoreError, UserRecord};
use tracing::info;

use crate::{passwords, Caller, Engine, EngineError};

/// The user type of users made through the API (Anchore's name).
const NATIVE_USER: &str = "native";
/// The `meta` marker set once the admin was created.
const ADMIN_SEEDED: &str = "admin_seeded";

impl Engine {
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
        let hash = match &user {
            Some(u) => u.password_hash.clone(),
            None => passwords::unmatchable_hash(&self.hashers).await?,
        };
        let matches = self.hashers.verify(password, hash).await?;
        let Some(user) = user.filter(|_| matches) else {
            return Err(EngineError::Unauthorized);
        };
        let account = self.store.get_account(&user.account).await?;
        if account.state != AccountState::Enabled {
            return Err(EngineError::Unauthorized);
        }
        Ok(Caller {
            user: user.username,
            account: user.account,
            account_type: account.account_type,
        })
    }

    /// The account the caller acts in: its own, or for an admin, the one named by
    /// `x-anchore-account`.
    ///
    /// # Errors
    /// [`EngineError::Forbidden`] when a non-admin names another account;
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
            return Err(EngineError::Forbidden(format!(
                "user {} may not act in account {name}: only admin users may use x-anchore-account (--as-account)",
                caller.user
            )));
        }
        self.account_record(&name).await?;
        Ok(name)
    }

    /// The record of the account a caller acts in (as settled by [`Engine::acting_account`]).
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
    /// [`EngineError::Forbidden`] for non-admins.
    pub async fn list_accounts(&self, caller: &Caller) -> Result<Vec<AccountRecord>, EngineError> {
        require_admin(caller)?;
        Ok(self.store.list_accounts().await?)
    }

    /// # Errors
    /// [`EngineError::Forbidden`] for non-admins (other than for their own account), NotFound.
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
            Err(StoreError::AlreadyExists) => Err(EngineError::Conflict(format!(
                "account {name} already exists"
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
        let state = AccountState::parse(state).ok_or_else(|| {
            EngineError::BadInput(format!(
                "state `{state}` is not known: use `enabled` or `disabled`"
            ))
        })?;
        if name == AccountName::admin() && state == AccountState::Disabled {
            return Err(EngineError::Forbidden(
                "the admin account cannot be disabled".into(),
            ));
        }
        let changed = self
            .store
            .set_account_state(&name, state, self.clock.now())
            .await;
        // A disabled account's users are refused from the next request on.
        self.logins.invalidate();
        match changed {
            Ok(()) => self.account_record(&name).await,
            Err(StoreError::NotFound) => Err(not_found_account(&name)),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes a disabled account with its users and registries.
    ///
    /// # Errors
    /// Forbidden (not admin, or the admin account), NotFound, Conflict (still enabled).
    pub async fn delete_account(&self, caller: &Caller, name: &str) -> Result<(), EngineError> {
        require_admin(caller)?;
        let name = parse_account(name)?;
        let record = self.account_record(&name).await?;
        if record.account_type == AccountType::Admin || name == caller.account {
            return Err(EngineError::Forbidden(format!(
                "account {name} cannot be deleted: it is an admin account or your own"
            )));
        }
        if record.state != AccountState::Disabled {
            return Err(EngineError::Conflict(format!(
                "Invalid account state change requested: account {name} is enabled; disable it first (PUT /v1/accounts/{name}/state {{\"state\": \"disabled\"}}, or `regkeep account disable {name}`)"
            )));
        }
        let deleted = self.store.delete_account(&name).await;
        self.registry_cache.clear();
        self.logins.invalidate();
        match deleted {
            Ok(()) => {
                info!(account = %name, "deleted account with its users and registries");
                Ok(())
            }
            Err(StoreError::NotFound) => Err(not_found_account(&name)),
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
        require_admin(caller)?;
        let account = parse_account(account)?;
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
        if username != caller.user {
            require_admin(caller)?;
        }
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
        require_admin(caller)?;
        let account = parse_account(account)?;
        let username = parse_user(&request.username)?;
        self.account_record(&account).await?;
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
            Err(StoreError::AlreadyExists) => Err(EngineError::Conflict(format!(
                "user {username} already exists (user names are unique across accounts)"
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
        require_admin(caller)?;
        let account = parse_account(account)?;
        let username = parse_user(username)?;
        if username == caller.user {
            return Err(EngineError::Forbidden(
                "you cannot delete the user you are logged in as".into(),
            ));
        }
        let deleted = self.store.delete_user(&account, &username).await;
        self.logins.invalidate();
        match deleted {
            Ok(()) => Ok(()),
            Err(StoreError::NotFound) => Err(not_found_user(&account, &username)),
            Err(e) => Err(e.into()),
        }
    }

    /// Sets a user's password. Admins may set anyone's; a user may set its own.
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
        if username != caller.user {
            require_admin(caller)?;
        }
        if credential.credential_type != "password" {
            return Err(EngineError::BadInput(format!(
                "credential type `{}` is not supported: use `password`",
                credential.credential_type
            )));
        }
        self.user_record(&account, &username).await?;
        let hash = self.hashers.hash(&credential.value).await?;
        let changed = self
            .store
            .set_user_password_hash(&username, &hash, self.clock.now())
            .await;
        // The old password is refused from the next request on, whatever was in flight.
        self.logins.invalidate();
        changed?;
        self.user_record(&account, &username).await
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
        Err(EngineError::Forbidden(format!(
            "user {} is not an admin: account and user management needs a user of the admin account",
            caller.user
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
    EngineError::NotFound(format!(
        "account {name} does not exist: `regkeep account list` shows the accounts"
    ))
}

fn not_found_user(account: &AccountName, user: &UserName) -> EngineError {
    EngineError::NotFound(format!(
        "user {user} does not exist in account {account}: `regkeep user list --account {account}` shows its users"
    ))
}

fn ignore_exists(result: Result<(), StoreError>) -> Result<(), EngineError> {
    match result {
        Ok(()) | Err(StoreError::AlreadyExists) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
