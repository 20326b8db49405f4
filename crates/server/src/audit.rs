//! The audit log: one structured line (target `regkeep::audit`, level info) per authentication
//! failure, per change to accounts, users, passwords, API keys and registries, and per credential
//! handed out, naming who acted, in which account, on what. Only names, ids and addresses: never
//! a password, token or key.

use std::net::IpAddr;

use regkeep_domain::AccountName;
use regkeep_engine::Caller;

/// A change made by `caller` in `account` to `object` (`action`: e.g. `user.password_changed`).
pub fn change(caller: &Caller, action: &str, account: &AccountName, object: &str) {
    tracing::info!(
        target: "regkeep::audit",
        action,
        actor = %caller.user,
        actor_account = %caller.account,
        account = %account,
        object,
        "audit"
    );
}

/// A refused login of `user` from `client` (`reason`: `wrong_credentials`, `throttled`, ...).
pub fn login_refused(user: &str, client: Option<IpAddr>, reason: &str) {
    let user: String = user.chars().take(64).filter(|c| !c.is_control()).collect();
    tracing::info!(
        target: "regkeep::audit",
        action = "login.refused",
        user = %user,
        client = %client.map(|c| c.to_string()).unwrap_or_else(|| "unknown".into()),
        reason,
        "audit"
    );
}

/// A credential handed out to `caller`'s API key: which key, in which account, for which registry
/// entry. Never the credential.
pub fn handout(caller: &Caller, account: &AccountName, registry: &str) {
    let key_id = caller
        .api_key
        .as_ref()
        .map_or_else(String::new, |grant| grant.key_id.to_string());
    tracing::info!(
        target: "regkeep::audit",
        action = "credential.handed_out",
        key_id = %key_id,
        actor = %caller.user,
        account = %account,
        registry,
        "audit"
    );
}
