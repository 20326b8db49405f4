//! API keys on the in-memory repositories and a manual clock: made once, verified by a keyed hash,
//! scoped, revoked and expired at once, throttled like passwords, last use written at most once
//! a minute.

use std::net::IpAddr;
use std::time::Duration;

use regkeep_domain::wire::ApiKeyCreationRequest;
use regkeep_domain::{AccountName, Clock, Scope, Secret};
use regkeep_store::ApiKeyRepository;

use crate::testing::{team as team_rig, Team};
use crate::{Caller, EngineConfig, EngineError, KeyState, LoginLimits, Refusal};

type Rig = Team;

fn team() -> AccountName {
    "team-a".parse().unwrap()
}

async fn rig() -> Rig {
    team_rig(EngineConfig {
        login_cache_ttl: Duration::from_secs(3600),
        login_limits: LoginLimits {
            address_burst: 3,
            address_period: Duration::from_secs(3600),
            user_burst: 3,
            user_period: Duration::from_secs(3600),
        },
        ..EngineConfig::default()
    })
    .await
}

fn request(scopes: &[&str], expires_in: Option<&str>) -> ApiKeyCreationRequest {
    ApiKeyCreationRequest {
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        description: Some("ci runner".into()),
        expires_in: expires_in.map(str::to_owned),
    }
}

impl Rig {
    async fn key(&self, scopes: &[&str], expires_in: Option<&str>) -> Secret {
        self.engine
            .accounts()
            .create_api_key(&self.alice, &team(), request(scopes, expires_in))
            .await
            .unwrap()
            .key
    }

    async fn use_key(&self, key: &Secret) -> Result<Caller, EngineError> {
        self.use_key_from(key, None).await
    }

    async fn use_key_from(
        &self,
        key: &Secret,
        address: Option<IpAddr>,
    ) -> Result<Caller, EngineError> {
        self.engine
            .accounts()
            .login_with_api_key(key, address)
            .await
    }
}

#[tokio::test]
async fn a_key_is_shown_once_kept_as_a_hash_and_carries_its_scopes() {
    let rig = rig().await;
    let made = rig
        .engine
        .accounts()
        .create_api_key(&rig.alice, &team(), request(&["credentials:read"], None))
        .await
        .unwrap();
    let key = made.key.expose().to_owned();
    assert!(key.starts_with("rk_"), "{key}");
    assert!(
        !format!("{made:?}").contains(&key[20..]),
        "Debug shows no key"
    );
    let stored = rig.repos.get_api_key(&made.record.key_id).await.unwrap();
    assert!(!stored.key_hash.contains(&key[20..]));
    assert_ne!(stored.key_hash, key);

    let caller = rig.use_key(&made.key).await.unwrap();
    assert_eq!(caller.account, team());
    let grant = caller.api_key.clone().unwrap();
    assert_eq!(grant.key_id, made.record.key_id);
    caller.require(Scope::CredentialsRead).unwrap();
    for scope in [Scope::Read, Scope::RegistriesWrite] {
        assert!(matches!(
            caller.require(scope),
            Err(EngineError::Refused(Refusal::KeyScope { needed: Some(s), .. })) if s == scope
        ));
    }
    assert!(caller.require_person().is_err());
    // A password login may do everything its user may, but never take credentials out.
    rig.alice.require(Scope::RegistriesWrite).unwrap();
    assert!(matches!(
        rig.alice.require(Scope::CredentialsRead),
        Err(EngineError::Refused(Refusal::HandoutNeedsApiKey { .. }))
    ));
}

#[tokio::test]
async fn keys_cannot_make_keys_nor_reach_another_account() {
    let rig = rig().await;
    let key = rig.key(&["read", "registries:write"], None).await;
    let caller = rig.use_key(&key).await.unwrap();
    assert!(matches!(
        rig.engine
            .accounts()
            .create_api_key(&caller, &team(), request(&["credentials:read"], None))
            .await,
        Err(EngineError::Refused(Refusal::KeyScope { needed: None, .. }))
    ));
    assert!(matches!(
        rig.engine
            .accounts()
            .acting_account(&caller, Some("team-b"))
            .await,
        Err(EngineError::Refused(Refusal::OtherAccount { .. }))
    ));
    // The admin may make a key for another account, which acts there only.
    let made = rig
        .engine
        .accounts()
        .create_api_key(
            &rig.admin,
            &"team-b".parse().unwrap(),
            request(&["read"], None),
        )
        .await
        .unwrap();
    let other = rig.use_key(&made.key).await.unwrap();
    assert_eq!(other.account.as_str(), "team-b");
    assert!(!other.is_admin());
}

#[tokio::test]
async fn wrong_unknown_and_malformed_keys_are_refused_and_throttled() {
    let rig = rig().await;
    let key = rig.key(&["read"], None).await;
    let address: IpAddr = "203.0.113.7".parse().unwrap();
    // Used from that address before the guesses: remembered as verified.
    rig.use_key_from(&key, Some(address)).await.unwrap();
    let text = key.expose().to_owned();
    let mut wrong = text.clone();
    let last = wrong.pop().unwrap();
    wrong.push(if last == 'A' { 'B' } else { 'A' });
    let unknown = format!("rk_0000000000000000_{}", &text[20..]);
    for bad in [wrong.as_str(), unknown.as_str(), "rk_nothing", "Basic abc"] {
        assert!(
            matches!(
                rig.use_key(&Secret::new(bad)).await,
                Err(EngineError::Unauthorized)
            ),
            "{bad}"
        );
    }
    // Guesses from one address (keys that do not exist): past the burst (3), refused without a
    // check.
    let mut throttled = false;
    for _ in 0..5 {
        if let Err(EngineError::Throttled { retry_after }) = rig
            .use_key_from(&Secret::new(&unknown), Some(address))
            .await
        {
            assert!(retry_after >= 1);
            throttled = true;
        }
    }
    assert!(throttled, "repeated wrong keys are throttled");
    // Wrong secrets for a key count against the address too (from an address the key was not
    // used from, they are refused there up front).
    assert!(matches!(
        rig.use_key_from(&Secret::new(&wrong), Some(address)).await,
        Err(EngineError::Unauthorized | EngineError::Throttled { .. })
    ));
    assert!(matches!(
        rig.use_key_from(&Secret::new(&wrong), Some("203.0.113.99".parse().unwrap()))
            .await,
        Err(EngineError::Unauthorized)
    ));
    // Others' failures from a shared address never lock out a key used from there lately...
    rig.use_key_from(&key, Some(address)).await.unwrap();
    // ...not even once its remembered record is gone (another key's revocation forgets keys).
    let other = rig.key(&["read"], None).await;
    let other_id = rig.use_key(&other).await.unwrap().api_key.unwrap().key_id;
    rig.engine
        .accounts()
        .revoke_api_key(&rig.alice, &team(), other_id.as_str())
        .await
        .unwrap();
    rig.use_key_from(&key, Some(address)).await.unwrap();
    // ...but a key not checked before is refused there without a lookup.
    let fresh = rig.key(&["read"], None).await;
    assert!(matches!(
        rig.use_key_from(&fresh, Some(address)).await,
        Err(EngineError::Throttled { .. })
    ));
    // The key itself is not blocked: from another address it still works.
    rig.use_key_from(&key, Some("198.51.100.1".parse().unwrap()))
        .await
        .unwrap();
}

#[tokio::test]
async fn revocation_and_expiry_take_effect_at_once() {
    let rig = rig().await;
    let key = rig.key(&["read"], None).await;
    let caller = rig.use_key(&key).await.unwrap();
    let id = caller.api_key.unwrap().key_id;
    rig.use_key(&key).await.unwrap();
    let revoked = rig
        .engine
        .accounts()
        .revoke_api_key(&rig.alice, &team(), id.as_str())
        .await
        .unwrap();
    assert!(revoked.revoked_at.is_some());
    assert!(matches!(
        rig.use_key(&key).await,
        Err(EngineError::KeyUnusable {
            state: KeyState::Revoked(_),
            ..
        })
    ));
    // Another account's key cannot be revoked by its id.
    let other = rig
        .engine
        .accounts()
        .create_api_key(
            &rig.admin,
            &"team-b".parse().unwrap(),
            request(&["read"], None),
        )
        .await
        .unwrap();
    assert!(matches!(
        rig.engine
            .accounts()
            .revoke_api_key(&rig.alice, &team(), other.record.key_id.as_str())
            .await,
        Err(EngineError::NotFound(_))
    ));

    let short = rig.key(&["read"], Some("1h")).await;
    rig.use_key(&short).await.unwrap();
    rig.clock.advance(Duration::from_secs(3600));
    assert!(matches!(
        rig.use_key(&short).await,
        Err(EngineError::KeyUnusable {
            state: KeyState::Expired(_),
            ..
        })
    ));
}

#[tokio::test]
async fn a_disabled_account_s_keys_are_refused() {
    let rig = rig().await;
    let key = rig.key(&["read"], None).await;
    rig.use_key(&key).await.unwrap();
    rig.engine
        .accounts()
        .set_account_state(&rig.admin, "team-a", "disabled")
        .await
        .unwrap();
    assert!(matches!(
        rig.use_key(&key).await,
        Err(EngineError::Refused(Refusal::AccountNotEnabled { .. }))
    ));
}

#[tokio::test]
async fn last_use_is_written_at_most_once_a_minute() {
    let rig = rig().await;
    let key = rig.key(&["read"], None).await;
    let id = rig.use_key(&key).await.unwrap().api_key.unwrap().key_id;
    let first = rig.repos.get_api_key(&id).await.unwrap().last_used_at;
    assert_eq!(first, Some(rig.clock.now()));
    rig.clock.advance(Duration::from_secs(30));
    for _ in 0..10 {
        rig.use_key(&key).await.unwrap();
    }
    let after = rig.repos.get_api_key(&id).await.unwrap().last_used_at;
    assert_eq!(after, first, "no write within the minute");
}

#[tokio::test]
async fn bad_requests_say_what_to_give() {
    let rig = rig().await;
    let accounts = rig.engine.accounts();
    for (scopes, expires, words) in [
        (vec![], None, "no scope given"),
        (vec!["admin"], None, "not a scope"),
        (vec!["read"], Some("forever"), "not a key lifetime"),
        (vec!["read"], Some("9é"), "not a key lifetime"),
    ] {
        match accounts
            .create_api_key(&rig.alice, &team(), request(&scopes, expires))
            .await
        {
            Err(EngineError::BadInput(message)) => assert!(message.contains(words), "{message}"),
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn a_bidi_override_in_a_description_is_refused() {
    let rig = rig().await;
    let mut request = request(&["read"], None);
    request.description = Some("ci \u{202e}yek nimda".into());
    assert!(matches!(
        rig.engine
            .accounts()
            .create_api_key(&rig.alice, &team(), request)
            .await,
        Err(EngineError::BadInput(_))
    ));
}

#[tokio::test]
async fn an_admin_account_key_is_no_admin() {
    let rig = rig().await;
    let made = rig
        .engine
        .accounts()
        .create_api_key(
            &rig.admin,
            &AccountName::admin(),
            request(&["read", "credentials:read", "registries:write"], None),
        )
        .await
        .unwrap();
    let key = rig.use_key(&made.key).await.unwrap();
    assert!(!key.is_admin());
    assert!(matches!(
        rig.engine
            .accounts()
            .acting_account(&key, Some("team-a"))
            .await,
        Err(EngineError::Refused(Refusal::OtherAccount { .. }))
    ));
    assert!(matches!(
        rig.engine.accounts().list_accounts(&key).await,
        Err(EngineError::Refused(Refusal::NotAdmin { .. }))
    ));
}

#[tokio::test]
async fn a_checked_key_is_checked_again_before_a_secret_goes_out() {
    let rig = rig().await;
    let key = rig.key(&["credentials:read"], Some("1h")).await;
    let caller = rig.use_key(&key).await.unwrap();
    rig.engine.accounts().recheck(&caller).await.unwrap();
    // Revoked after the request was authenticated (its body still on the way).
    let id = caller.api_key.clone().unwrap().key_id;
    rig.engine
        .accounts()
        .revoke_api_key(&rig.alice, &team(), id.as_str())
        .await
        .unwrap();
    assert!(matches!(
        rig.engine.accounts().recheck(&caller).await,
        Err(EngineError::KeyUnusable {
            state: KeyState::Revoked(_),
            ..
        })
    ));
    // Expired meanwhile.
    let key = rig.key(&["credentials:read"], Some("1h")).await;
    let caller = rig.use_key(&key).await.unwrap();
    rig.clock.advance(Duration::from_secs(3600));
    assert!(matches!(
        rig.engine.accounts().recheck(&caller).await,
        Err(EngineError::KeyUnusable {
            state: KeyState::Expired(_),
            ..
        })
    ));
    // The account disabled meanwhile.
    let key = rig.key(&["credentials:read"], None).await;
    let caller = rig.use_key(&key).await.unwrap();
    rig.engine
        .accounts()
        .set_account_state(&rig.admin, "team-a", "disabled")
        .await
        .unwrap();
    assert!(matches!(
        rig.engine.accounts().recheck(&caller).await,
        Err(EngineError::Refused(Refusal::AccountNotEnabled { .. }))
    ));
}

#[tokio::test]
async fn a_deleted_user_s_keys_end_with_it() {
    let rig = rig().await;
    let key = rig.key(&["read"], None).await;
    rig.use_key(&key).await.unwrap();
    rig.engine
        .accounts()
        .delete_user(&rig.admin, "team-a", "alice")
        .await
        .unwrap();
    assert!(matches!(
        rig.use_key(&key).await,
        Err(EngineError::KeyUnusable {
            state: KeyState::Revoked(_),
            ..
        })
    ));
}

#[tokio::test]
async fn revoking_twice_changes_nothing_and_spares_password_logins() {
    let rig = rig().await;
    let key = rig.key(&["read"], None).await;
    let id = rig.use_key(&key).await.unwrap().api_key.unwrap().key_id;
    let accounts = rig.engine.accounts();
    let first = accounts
        .revoke_api_key(&rig.alice, &team(), id.as_str())
        .await
        .unwrap();
    accounts
        .login("alice", &Secret::new("alice-password"), None)
        .await
        .unwrap();
    let checked = accounts.password_hashers().verifications();
    rig.clock.advance(Duration::from_secs(5));
    let again = accounts
        .revoke_api_key(&rig.alice, &team(), id.as_str())
        .await
        .unwrap();
    assert_eq!(again.revoked_at, first.revoked_at, "the first time stays");
    accounts
        .login("alice", &Secret::new("alice-password"), None)
        .await
        .unwrap();
    assert_eq!(
        accounts.password_hashers().verifications(),
        checked,
        "a revocation forgets keys, not remembered passwords"
    );
}

#[tokio::test]
async fn revoked_keys_do_not_count_against_the_quota() {
    let rig = team_rig(EngineConfig {
        quotas: crate::Quotas {
            api_keys: 2,
            ..crate::Quotas::default()
        },
        ..EngineConfig::default()
    })
    .await;
    let (accounts, admin) = (rig.engine.accounts(), &rig.admin);
    let mine = AccountName::admin();
    let first = accounts
        .create_api_key(admin, &mine, request(&["read"], None))
        .await
        .unwrap();
    accounts
        .create_api_key(admin, &mine, request(&["read"], None))
        .await
        .unwrap();
    assert!(matches!(
        accounts
            .create_api_key(admin, &mine, request(&["read"], None))
            .await,
        Err(EngineError::Refused(Refusal::Quota { .. }))
    ));
    accounts
        .revoke_api_key(admin, &mine, first.record.key_id.as_str())
        .await
        .unwrap();
    accounts
        .create_api_key(admin, &mine, request(&["read"], None))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_deleted_admin_s_keys_in_other_accounts_end_too() {
    let rig = rig().await;
    let accounts = rig.engine.accounts();
    accounts
        .create_user(
            &rig.admin,
            "admin",
            regkeep_domain::wire::UserCreationRequest {
                username: "ops".into(),
                password: Secret::new("ops-password-1"),
            },
        )
        .await
        .unwrap();
    let ops = accounts
        .login("ops", &Secret::new("ops-password-1"), None)
        .await
        .unwrap();
    let made = accounts
        .create_api_key(&ops, &team(), request(&["credentials:read"], None))
        .await
        .unwrap();
    rig.use_key(&made.key).await.unwrap();
    accounts
        .delete_user(&rig.admin, "admin", "ops")
        .await
        .unwrap();
    assert!(matches!(
        rig.use_key(&made.key).await,
        Err(EngineError::KeyUnusable {
            state: KeyState::Revoked(_),
            ..
        })
    ));
}

#[tokio::test]
async fn a_key_whose_maker_is_gone_is_refused_even_unrevoked() {
    use regkeep_store::AccountRepository as _;
    let rig = rig().await;
    let key = rig.key(&["read"], None).await;
    // The user removed behind the engine's back (as data from before keys were revoked with
    // their maker would be): the key's lookup finds no maker.
    rig.repos
        .delete_user(&team(), &"alice".parse().unwrap())
        .await
        .unwrap();
    assert!(matches!(
        rig.use_key(&key).await,
        Err(EngineError::Unauthorized)
    ));
}
