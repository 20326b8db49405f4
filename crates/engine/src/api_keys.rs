//! API keys (docs/design.md §3.8): credentials for machines. Made, listed and revoked by people
//! (a password login) for their account; presented as `Authorization: Bearer rk_…`.
//!
//! A key is 32 random bytes: no Argon2 (nothing to slow down against a guess of 2^256), only a
//! keyed hash (`ApiKeyRepository::hash_api_key`) compared in constant time. A verified key is
//! remembered with the logins ([`crate::logins::Logins`]), so a busy key costs no database read
//! per request; every write that changes who may use it (revocation, the account's state) ends
//! what is remembered at once. Failed key attempts count against the client address's throttle,
//! the one failed passwords count against (not against the key: its id is no secret, and a
//! per-key block would let anyone lock a key's machines out). The last use is written at most
//! once a minute per key.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore;
use regkeep_domain::api_key::parse_lifetime;
use regkeep_domain::entities::ApiKeyRecord;
use regkeep_domain::untrusted_text::is_bidi_control;
use regkeep_domain::wire::ApiKeyCreationRequest;
use regkeep_domain::{
    AccountName, AccountState, ApiKeyId, ApiKeyToken, Scope, Scopes, Secret, Timestamp,
};
use regkeep_store::StoreError;
use subtle::ConstantTimeEq;
use tracing::info;

use crate::accounts::Accounts;
use crate::error::KeyState;
use crate::{Caller, EngineError, Entity, Named, QuotaKind, Refusal};

/// What an API key lets its caller do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKeyGrant {
    pub key_id: ApiKeyId,
    pub scopes: Scopes,
    pub expires_at: Option<Timestamp>,
    /// The login generation the key was checked under: a revocation or an account change
    /// since moves it on, and [`Accounts::recheck`] then asks the database again.
    pub generation: u64,
}

/// A key just made: its record, and the key itself (shown once, never again).
pub struct NewApiKey {
    pub record: ApiKeyRecord,
    pub key: Secret,
}

impl std::fmt::Debug for NewApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewApiKey")
            .field("record", &self.record)
            .field("key", &"[redacted]")
            .finish()
    }
}

fn throttled(wait: std::time::Duration) -> EngineError {
    EngineError::Throttled {
        retry_after: crate::logins::seconds_up(wait),
    }
}

/// Longest description kept.
const MAX_DESCRIPTION: usize = 256;
/// How often a key's last use is written, at most.
pub(crate) const TOUCH_EVERY: Duration = Duration::from_secs(60);

impl Caller {
    /// Whether the caller may do what needs `scope`: a key only what its scopes name; a
    /// password login everything its user may, except taking credentials out
    /// (`credentials:read`), which is for keys alone.
    ///
    /// # Errors
    /// [`Refusal::KeyScope`], [`Refusal::HandoutNeedsApiKey`].
    pub fn require(&self, scope: Scope) -> Result<(), EngineError> {
        match &self.api_key {
            Some(grant) if grant.scopes.contains(scope) => Ok(()),
            Some(grant) => Err(EngineError::Refused(Refusal::KeyScope {
                key_id: grant.key_id.clone(),
                needed: Some(scope),
            })),
            None if scope == Scope::CredentialsRead => {
                Err(EngineError::Refused(Refusal::HandoutNeedsApiKey {
                    user: self.user.clone(),
                }))
            }
            None => Ok(()),
        }
    }

    /// Refuses API keys: what only people (a password login) may do.
    ///
    /// # Errors
    /// [`Refusal::KeyScope`] without a scope.
    pub fn require_person(&self) -> Result<(), EngineError> {
        match &self.api_key {
            Some(grant) => Err(EngineError::Refused(Refusal::KeyScope {
                key_id: grant.key_id.clone(),
                needed: None,
            })),
            None => Ok(()),
        }
    }
}

/// The state a record shows at `now`.
pub fn key_state(record: &ApiKeyRecord, now: Timestamp) -> Option<KeyState> {
    if let Some(at) = record.revoked_at {
        return Some(KeyState::Revoked(at));
    }
    match record.expires_at {
        Some(at) if at <= now => Some(KeyState::Expired(at)),
        _ => None,
    }
}

impl Accounts {
    /// The engine's time now (an answer that shows a key's state shows it at this time).
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Makes an API key for `account` (the caller's, or for an admin any): answers it once.
    ///
    /// # Errors
    /// Refused (an API key asking, another's account, the quota), BadInput (scopes, lifetime,
    /// description), NotFound (the account).
    pub async fn create_api_key(
        &self,
        caller: &Caller,
        account: &AccountName,
        request: ApiKeyCreationRequest,
    ) -> Result<NewApiKey, EngineError> {
        caller.require_person()?;
        let scopes = Scopes::parse(&request.scopes.join(","))
            .map_err(|e| EngineError::BadInput(e.to_string()))?;
        let lifetime = request
            .expires_in
            .as_deref()
            .map(parse_lifetime)
            .transpose()
            .map_err(EngineError::BadInput)?;
        let description = request.description.unwrap_or_default();
        if description.chars().count() > MAX_DESCRIPTION
            || description
                .chars()
                .any(|c| c.is_control() || is_bidi_control(c))
        {
            return Err(EngineError::BadInput(format!(
                "the description is longer than {MAX_DESCRIPTION} characters or holds control or invisible formatting characters: give a shorter line of plain text"
            )));
        }
        // Active keys count (revoked ones stay listed but not against the quota, so rotating keys
        // never runs out).
        crate::check_quota(
            self.quotas.api_keys,
            QuotaKind::ApiKeys,
            account,
            self.api_keys.count_api_keys(account),
        )
        .await?;
        let now = self.clock.now();
        let expires_at = lifetime.map(|d| {
            Timestamp::from_unix(
                now.unix()
                    .saturating_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
            )
        });
        let mut id = [0u8; 8];
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut id);
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let token = ApiKeyToken::new(ApiKeyId::from_bytes(id), &URL_SAFE_NO_PAD.encode(secret))
            .ok_or_else(|| EngineError::internal("a new API key did not parse"))?;
        let record = ApiKeyRecord {
            key_id: token.id.clone(),
            account: account.clone(),
            created_by: caller.user.clone(),
            description,
            scopes,
            key_hash: self.api_keys.hash_api_key(token.secret.expose().as_bytes()),
            created_at: now,
            expires_at,
            last_used_at: None,
            revoked_at: None,
        };
        match self.api_keys.insert_api_key(&record).await {
            Ok(()) => {}
            // 64 random bits collided, or the account went away meanwhile.
            Err(StoreError::AlreadyExists) => {
                return Err(EngineError::internal("a new API key's id was taken"))
            }
            Err(e) => return Err(e.into()),
        }
        info!(key_id = %record.key_id, account = %account, user = %caller.user, scopes = %scopes, "API key created");
        Ok(NewApiKey {
            record,
            key: token.reveal(),
        })
    }

    /// The account's keys (never a key itself).
    ///
    /// # Errors
    /// Storage errors.
    pub async fn list_api_keys(
        &self,
        account: &AccountName,
    ) -> Result<Vec<ApiKeyRecord>, EngineError> {
        Ok(self.api_keys.list_api_keys(account).await?)
    }

    /// Revokes one of the account's keys: refused from the next request on.
    ///
    /// # Errors
    /// Refused (an API key asking), BadInput (not a key id), NotFound.
    pub async fn revoke_api_key(
        &self,
        caller: &Caller,
        account: &AccountName,
        key_id: &str,
    ) -> Result<ApiKeyRecord, EngineError> {
        caller.require_person()?;
        let id: ApiKeyId =
            key_id
                .parse()
                .map_err(|e: regkeep_domain::api_key::ApiKeyIdError| {
                    EngineError::BadInput(e.to_string())
                })?;
        match self
            .api_keys
            .revoke_api_key(account, &id, self.clock.now())
            .await
        {
            // Remembered keys are forgotten by the repository wrapper (ForgetKeysOnRevoke) when
            // this revoked it; revoking a revoked key changes nothing.
            Ok(_) => {}
            Err(StoreError::NotFound) => {
                return Err(EngineError::NotFound(Named::new(
                    Entity::ApiKey,
                    id.as_str(),
                    Some(account),
                )))
            }
            Err(e) => return Err(e.into()),
        }
        info!(key_id = %id, account = %account, user = %caller.user, "API key revoked");
        Ok(self.api_keys.get_api_key(&id).await?)
    }

    /// Checks again, just before a secret is handed out, that the caller's key may still be
    /// used: a request authenticated before a revocation, an expiry or an account change (a
    /// body that took its time to arrive) gets nothing. Cheap when nothing changed since the
    /// key was checked (the login generation is the same); else the database is asked.
    ///
    /// # Errors
    /// KeyUnusable, Refused (account not enabled), Unauthorized (the key is gone).
    pub async fn recheck(&self, caller: &Caller) -> Result<(), EngineError> {
        let Some(grant) = &caller.api_key else {
            return Ok(());
        };
        let now = self.clock.now();
        if let Some(at) = grant.expires_at.filter(|at| *at <= now) {
            return Err(EngineError::KeyUnusable {
                key_id: grant.key_id.clone(),
                state: KeyState::Expired(at),
            });
        }
        if self.logins.generation() == grant.generation {
            return Ok(());
        }
        let record = match self.api_keys.get_api_key(&grant.key_id).await {
            Ok(record) => record,
            Err(StoreError::NotFound) => return Err(EngineError::Unauthorized),
            Err(e) => return Err(e.into()),
        };
        if let Some(state) = key_state(&record, now) {
            return Err(EngineError::KeyUnusable {
                key_id: grant.key_id.clone(),
                state,
            });
        }
        let account = self.store.get_account(&record.account).await?;
        if account.state != AccountState::Enabled {
            return Err(EngineError::Refused(Refusal::AccountNotEnabled {
                account: account.name,
                state: account.state,
            }));
        }
        Ok(())
    }

    /// Revokes every key `user` made, in any account (a deleted user's keys end with it:
    /// deleting a user is how people are offboarded). Gives how many.
    pub(crate) async fn revoke_keys_made_by(
        &self,
        user: &regkeep_domain::UserName,
    ) -> Result<u64, EngineError> {
        let revoked = self
            .api_keys
            .revoke_api_keys_made_by(user, self.clock.now())
            .await?;
        if revoked > 0 {
            info!(user = %user, revoked, "revoked the API keys a deleted user made");
        }
        Ok(revoked)
    }

    /// Authenticates a request that presents an API key (`Authorization: Bearer`).
    ///
    /// # Errors
    /// Unauthorized (unknown key, wrong secret, malformed), KeyUnusable (expired, revoked: only
    /// for the right secret), Refused (the account is not enabled), Throttled.
    pub async fn login_with_api_key(
        &self,
        presented: &Secret,
        address: Option<std::net::IpAddr>,
    ) -> Result<Caller, EngineError> {
        let logins = &self.logins;
        let address = address.map(crate::logins::client_key);
        let Some(token) = ApiKeyToken::parse(presented.expose()) else {
            if let Some(wait) = logins.blocked_address(None, address) {
                return Err(throttled(wait));
            }
            logins.failed_key(address);
            return Err(EngineError::Unauthorized);
        };
        // A blocked address is refused before any work, unless this key was used from it lately.
        if let Some(wait) = logins.blocked_address(Some(&token.id), address) {
            return Err(throttled(wait));
        }
        let mut looked_up = false;
        let known = match logins.known_key(&token.id) {
            Some(known) => known,
            None => {
                looked_up = true;
                let generation = logins.generation();
                let record = match self.api_keys.get_api_key(&token.id).await {
                    Ok(record) => record,
                    Err(StoreError::NotFound) => {
                        logins.failed_key(address);
                        return Err(EngineError::Unauthorized);
                    }
                    Err(e) => return Err(e.into()),
                };
                // The user who made it must still exist (keys of users deleted before deletion
                // revoked them, or made while the deletion ran, end with them).
                let maker_exists = match self.store.get_user(&record.created_by).await {
                    Ok(_) => true,
                    Err(StoreError::NotFound) => false,
                    Err(e) => return Err(e.into()),
                };
                let account = self.store.get_account(&record.account).await?;
                let known = crate::logins::KnownKey {
                    caller: Caller {
                        user: record.created_by.clone(),
                        account: record.account.clone(),
                        account_type: account.account_type,
                        account_state: account.state,
                        api_key: Some(ApiKeyGrant {
                            key_id: record.key_id.clone(),
                            scopes: record.scopes,
                            expires_at: record.expires_at,
                            generation,
                        }),
                    },
                    record,
                    maker_exists,
                };
                // Remembered as looked up (the secret is compared on every request).
                logins.remember_key(known, generation)
            }
        };
        let hash = self.api_keys.hash_api_key(token.secret.expose().as_bytes());
        let matches: bool = hash
            .as_bytes()
            .ct_eq(known.record.key_hash.as_bytes())
            .into();
        if !matches {
            logins.failed_key(address);
            return Err(EngineError::Unauthorized);
        }
        if looked_up {
            // Recorded when the key is looked up (at least once per login-cache lifetime while
            // it is used), not on every request.
            logins.key_used_from(&token.id, address);
        }
        let now = self.clock.now();
        if let Some(state) = key_state(&known.record, now) {
            return Err(EngineError::KeyUnusable {
                key_id: token.id,
                state,
            });
        }
        if !known.maker_exists {
            tracing::warn!(key_id = %token.id, user = %known.record.created_by, "refused an API key whose maker was deleted");
            return Err(EngineError::Unauthorized);
        }
        if logins.touch_due(&token.id, Instant::now()) {
            // At most once a minute per key: a busy key costs no write per request.
            if let Err(e) = self.api_keys.touch_api_key(&token.id, now).await {
                tracing::warn!(key_id = %token.id, error = %e, "recording an API key's last use failed");
            }
        }
        crate::logins::enabled_only(known.caller.clone())
    }
}

#[cfg(test)]
mod tests;
