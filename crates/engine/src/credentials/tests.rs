//! The credential handout on the in-memory repositories, the fake registry and the scripted
//! minter: which entry serves, ECR tokens from the lifecycle (no AWS call per handout), stored
//! passwords only when the server allows, and only to keys with `credentials:read`.

use std::time::Duration;

use regkeep_domain::image_reference::EntryScope;
use regkeep_domain::wire::{
    ApiKeyCreationRequest, CredentialRequest, RegistryConfigurationRequest,
};
use regkeep_domain::{AccountName, Clock, Secret};

use crate::testing::{team as team_rig, Team};
use crate::{Caller, EngineConfig, EngineError, Refusal};

const ECR: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";

type Rig = Team;

fn team() -> AccountName {
    "team-a".parse().unwrap()
}

async fn rig(static_passwords: bool) -> Rig {
    rig_with(EngineConfig {
        handout_static_passwords: static_passwords,
        ..EngineConfig::default()
    })
    .await
}

async fn rig_with(config: EngineConfig) -> Rig {
    let rig = team_rig(config).await;
    rig.registry
        .accept("reg.example.com", "robot", "robot-pass");
    let engine = &rig.engine;
    let registries = engine.registries();
    for (host, user, pass, kind) in [
        (ECR, "AKIAHANDOUT", "unit-test-secret-access-key", "awsecr"),
        ("reg.example.com", "robot", "robot-pass", "docker_v2"),
        (
            "reg.example.com/team/app",
            "robot",
            "robot-pass",
            "docker_v2",
        ),
    ] {
        registries
            .add_registry(
                &team(),
                RegistryConfigurationRequest {
                    registry: host.into(),
                    registry_user: user.into(),
                    registry_pass: Secret::new(pass),
                    registry_type: Some(kind.into()),
                    registry_verify: None,
                    registry_name: None,
                },
                false,
            )
            .await
            .unwrap();
    }
    rig
}

impl Rig {
    async fn caller_with_key(&self, scopes: &[&str]) -> Caller {
        let made = self
            .engine
            .accounts()
            .create_api_key(
                &self.alice,
                &team(),
                ApiKeyCreationRequest {
                    scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
                    description: None,
                    expires_in: None,
                },
            )
            .await
            .unwrap();
        self.engine
            .accounts()
            .login_with_api_key(&made.key, None)
            .await
            .unwrap()
    }
}

fn by_image(image: &str) -> CredentialRequest {
    CredentialRequest {
        image: Some(image.into()),
        registry: None,
    }
}

fn by_host(host: &str) -> CredentialRequest {
    CredentialRequest {
        image: None,
        registry: Some(host.into()),
    }
}

#[tokio::test]
async fn ecr_tokens_come_from_the_lifecycle_without_an_aws_call_per_handout() {
    let rig = rig(false).await;
    let key = rig.caller_with_key(&["credentials:read"]).await;
    let registries = rig.engine.registries();
    let first = registries
        .hand_out(&key, &team(), &by_image(&format!("{ECR}/team/app:1")))
        .await
        .unwrap();
    assert_eq!(first.credential.registry.as_str(), ECR);
    assert_eq!(first.host, ECR);
    assert_eq!(first.scope, EntryScope::Host);
    assert_eq!(first.credential.username, "AWS");
    let expires = first.credential.usable_until.unwrap();
    assert!(expires > rig.clock.now());
    for _ in 0..100 {
        let again = registries
            .hand_out(&key, &team(), &by_host(ECR))
            .await
            .unwrap();
        assert_eq!(
            again.credential.password.expose(),
            first.credential.password.expose()
        );
    }
    assert_eq!(rig.minter.calls(), 1, "one AWS call for 101 handouts");
    // Past the renewal point, the lifecycle renews: the next handout gets the new token.
    rig.clock.advance(Duration::from_secs(6 * 3600 + 60));
    rig.engine.ecr_tokens().renew_due_once().await;
    let renewed = registries
        .hand_out(&key, &team(), &by_host(ECR))
        .await
        .unwrap();
    assert_ne!(
        renewed.credential.password.expose(),
        first.credential.password.expose()
    );
    assert_eq!(rig.minter.calls(), 2);
}

#[tokio::test]
async fn stored_passwords_only_when_the_server_allows() {
    let rig = rig(false).await;
    let key = rig.caller_with_key(&["credentials:read"]).await;
    let refused = rig
        .engine
        .registries()
        .hand_out(&key, &team(), &by_host("reg.example.com"))
        .await;
    assert!(matches!(
        refused,
        Err(EngineError::Refused(Refusal::StaticPasswordHandout { .. }))
    ));
    assert!(refused
        .unwrap_err()
        .to_string()
        .contains("handout.static_passwords"));

    let rig = self::rig(true).await;
    let key = rig.caller_with_key(&["credentials:read"]).await;
    let registries = rig.engine.registries();
    let host = registries
        .hand_out(&key, &team(), &by_host("reg.example.com"))
        .await
        .unwrap();
    assert_eq!(host.credential.password.expose(), "robot-pass");
    assert_eq!(host.credential.usable_until, None);
    // The longest match: the repository's own entry.
    let repo = registries
        .hand_out(&key, &team(), &by_image("reg.example.com/team/app:2"))
        .await
        .unwrap();
    assert_eq!(
        repo.credential.registry.as_str(),
        "reg.example.com/team/app"
    );
    assert_eq!(repo.scope, EntryScope::Repository);
}

#[tokio::test]
async fn only_keys_with_the_scope_and_only_what_an_entry_serves() {
    let rig = rig(true).await;
    let registries = rig.engine.registries();
    assert!(matches!(
        registries
            .hand_out(&rig.alice, &team(), &by_host(ECR))
            .await,
        Err(EngineError::Refused(Refusal::HandoutNeedsApiKey { .. }))
    ));
    let reader = rig.caller_with_key(&["read", "registries:write"]).await;
    assert!(matches!(
        registries.hand_out(&reader, &team(), &by_host(ECR)).await,
        Err(EngineError::Refused(Refusal::KeyScope { .. }))
    ));
    let key = rig.caller_with_key(&["credentials:read"]).await;
    for unknown in [
        by_host("unknown.example.com"),
        by_image("unknown.example.com/x:1"),
    ] {
        assert!(matches!(
            registries.hand_out(&key, &team(), &unknown).await,
            Err(EngineError::NotFound(_))
        ));
    }
    for bad in [
        CredentialRequest::default(),
        CredentialRequest {
            image: Some("reg.example.com/x".into()),
            registry: Some("reg.example.com".into()),
        },
        by_host("https://reg.example.com"),
        by_host("reg.example.com/team/app"),
        by_image("UPPER/Case:1"),
    ] {
        assert!(
            matches!(
                registries.hand_out(&key, &team(), &bad).await,
                Err(EngineError::BadInput(_))
            ),
            "{bad:?}"
        );
    }
    assert_eq!(rig.minter.calls(), 0, "nothing minted for refusals");
}

#[tokio::test]
async fn tokens_of_the_host_s_own_identity_only_when_the_server_allows() {
    for allowed in [false, true] {
        let rig = rig_with(EngineConfig {
            allow_awsecr_iam_auto: true,
            handout_host_identity_tokens: allowed,
            ..EngineConfig::default()
        })
        .await;
        let host = "210987654321.dkr.ecr.eu-west-1.amazonaws.com";
        rig.engine
            .registries()
            .add_registry(
                &team(),
                RegistryConfigurationRequest {
                    registry: host.into(),
                    registry_user: "awsauto".into(),
                    registry_pass: Secret::new("awsauto"),
                    registry_type: Some("awsecr".into()),
                    registry_verify: None,
                    registry_name: None,
                },
                false,
            )
            .await
            .unwrap();
        let key = rig.caller_with_key(&["credentials:read"]).await;
        let answer = rig
            .engine
            .registries()
            .hand_out(&key, &team(), &by_host(host))
            .await;
        if allowed {
            assert_eq!(answer.unwrap().credential.username, "AWS");
        } else {
            assert!(matches!(
                answer,
                Err(EngineError::Refused(Refusal::HostIdentityHandout { .. }))
            ));
            assert_eq!(rig.minter.calls(), 0, "refused before any AWS call");
            // Static keys of the account's own are handed out as before.
            rig.engine
                .registries()
                .hand_out(&key, &team(), &by_host(ECR))
                .await
                .unwrap();
        }
    }
}
