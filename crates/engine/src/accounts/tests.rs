//! Accounts and logins on the in-memory repositories: every write that changes who may log in
//! ends the remembered logins at once (the cache is forgotten by the repository wrapper, not by
//! each use-case), and a purge takes an account's registries and tokens.

use std::time::Duration;

use regkeep_domain::wire::{AccessCredential, RegistryConfigurationRequest};
use regkeep_domain::Secret;

use crate::testing::{team, Team, ALICE_PASSWORD};
use crate::{Caller, EngineConfig, EngineError};

type Rig = Team;

async fn rig() -> Rig {
    team(EngineConfig {
        login_cache_ttl: Duration::from_secs(3600),
        ..EngineConfig::default()
    })
    .await
}

impl Rig {
    async fn login(&self, user: &str, password: &str) -> Result<Caller, EngineError> {
        self.engine
            .accounts()
            .login(user, &Secret::new(password), None)
            .await
    }

    fn verifications(&self) -> u64 {
        self.engine.accounts().password_hashers().verifications()
    }
}

#[tokio::test]
async fn a_remembered_login_ends_when_the_password_changes() {
    let rig = rig().await;
    rig.login("alice", ALICE_PASSWORD).await.unwrap();
    let checked = rig.verifications();
    rig.login("alice", ALICE_PASSWORD).await.unwrap();
    assert_eq!(
        rig.verifications(),
        checked,
        "the second login is remembered"
    );

    rig.engine
        .accounts()
        .set_user_password(
            &rig.admin,
            "team-a",
            "alice",
            AccessCredential {
                credential_type: "password".into(),
                value: Secret::new("second-password"),
            },
        )
        .await
        .unwrap();
    assert!(matches!(
        rig.login("alice", ALICE_PASSWORD).await,
        Err(EngineError::Unauthorized)
    ));
    rig.login("alice", "second-password").await.unwrap();
}

#[tokio::test]
async fn a_remembered_login_ends_when_the_user_or_its_password_is_deleted() {
    let rig = rig().await;
    rig.login("alice", ALICE_PASSWORD).await.unwrap();
    rig.engine
        .accounts()
        .delete_credential(&rig.admin, "team-a", "alice", "password")
        .await
        .unwrap();
    assert!(matches!(
        rig.login("alice", ALICE_PASSWORD).await,
        Err(EngineError::Unauthorized)
    ));

    let rig = self::rig().await;
    rig.login("alice", ALICE_PASSWORD).await.unwrap();
    rig.engine
        .accounts()
        .delete_user(&rig.admin, "team-a", "alice")
        .await
        .unwrap();
    assert!(matches!(
        rig.login("alice", ALICE_PASSWORD).await,
        Err(EngineError::Unauthorized)
    ));
}

#[tokio::test]
async fn a_remembered_login_ends_when_the_account_is_disabled() {
    let rig = rig().await;
    rig.login("alice", ALICE_PASSWORD).await.unwrap();
    rig.engine
        .accounts()
        .set_account_state(&rig.admin, "team-a", "disabled")
        .await
        .unwrap();
    assert!(
        matches!(
            rig.login("alice", ALICE_PASSWORD).await,
            Err(EngineError::Refused(_))
        ),
        "the right password of a disabled account's user is refused"
    );
    rig.engine
        .accounts()
        .set_account_state(&rig.admin, "team-a", "enabled")
        .await
        .unwrap();
    rig.login("alice", ALICE_PASSWORD).await.unwrap();
}

#[tokio::test]
async fn a_purged_account_takes_its_users_and_registries() {
    let rig = rig().await;
    let team: regkeep_domain::AccountName = "team-a".parse().unwrap();
    let ecr = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
    let registries = rig.engine.registries();
    let request = RegistryConfigurationRequest {
        registry: ecr.into(),
        registry_user: "AKIAPURGED".into(),
        registry_pass: Secret::new("unit-test-secret-access-key"),
        registry_type: Some("awsecr".into()),
        registry_verify: None,
        registry_name: None,
    };
    registries
        .add_registry(&team, request, false)
        .await
        .unwrap();
    registries.resolve_credential(&team, ecr).await.unwrap();
    assert_eq!(rig.minter.calls(), 1);
    assert_eq!(rig.engine.ecr_tokens().kept(), 1);
    let token_key = registries
        .get_registry(&team, ecr)
        .await
        .unwrap()
        .token_key
        .unwrap();
    assert!(rig.repos.tokens().has_row(&token_key));

    let accounts = rig.engine.accounts();
    accounts
        .set_account_state(&rig.admin, "team-a", "disabled")
        .await
        .unwrap();
    accounts.delete_account(&rig.admin, "team-a").await.unwrap();
    assert_eq!(rig.engine.purge_deleted_accounts().await.unwrap(), 1);
    assert!(matches!(
        rig.login("alice", ALICE_PASSWORD).await,
        Err(EngineError::Unauthorized)
    ));
    assert!(rig
        .repos
        .stored_secret(&team, &ecr.parse().unwrap())
        .is_none());
    assert_eq!(rig.engine.ecr_tokens().kept(), 0, "its token was released");
    assert!(!rig.repos.tokens().has_row(&token_key), "its token row too");
    for _ in 0..2 {
        rig.clock.advance(Duration::from_secs(6 * 3600 + 60));
        rig.engine.ecr_tokens().renew_due_once().await;
    }
    assert_eq!(rig.minter.calls(), 1, "never renewed after the purge");
    assert!(matches!(
        accounts.get_account(&rig.admin, "team-a").await,
        Err(EngineError::NotFound(_))
    ));
}

/// A user password set through the API is at least `min_password_length` characters (counted in
/// characters, not bytes); the refusal names the setting and never the password.
#[tokio::test]
async fn user_passwords_are_at_least_the_minimum_length() {
    use regkeep_domain::wire::UserCreationRequest;
    let rig = team(EngineConfig {
        min_password_length: 8,
        ..EngineConfig::default()
    })
    .await;
    let accounts = rig.engine.accounts();
    let short = accounts
        .create_user(
            &rig.admin,
            "team-a",
            UserCreationRequest {
                username: "shorty".into(),
                password: Secret::new("abc12"),
            },
        )
        .await;
    match short {
        Err(EngineError::BadInput(m)) => {
            assert!(m.contains("min_password_length") && m.contains('8'), "{m}");
            assert!(!m.contains("abc12"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    // Eight characters, multi-byte ones counted as one each.
    accounts
        .create_user(
            &rig.admin,
            "team-a",
            UserCreationRequest {
                username: "eight".into(),
                password: Secret::new("pässwörd"),
            },
        )
        .await
        .unwrap();
    let change = |value: &str| AccessCredential {
        credential_type: "password".into(),
        value: Secret::new(value),
    };
    assert!(matches!(
        accounts
            .set_user_password(&rig.admin, "team-a", "alice", change("short"))
            .await,
        Err(EngineError::BadInput(_))
    ));
    accounts
        .set_user_password(&rig.admin, "team-a", "alice", change("long-enough"))
        .await
        .unwrap();
}
