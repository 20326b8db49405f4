//! Credential selection and image resolution on the fakes: the fake registry API (which
//! credential arrived where), the scripted ECR minter, a manual clock, a real SQLite store.

use std::sync::Arc;

use regkeep_domain::entities::AccountRecord;
use regkeep_domain::wire::RegistryConfigurationRequest;
use regkeep_domain::{AccountName, AccountState, AccountType, ManualClock, Secret, Timestamp};
use regkeep_store::{KeySource, Store};

use crate::testing::{FakeRegistryApi, RegistryCall, ScriptedMinter};
use crate::{Engine, EngineConfig, EngineError};

const ECR: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";

struct Rig {
    _dir: tempfile::TempDir,
    registry: Arc<FakeRegistryApi>,
    minter: Arc<ScriptedMinter>,
    engine: Engine,
}

async fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("regkeep.db").display());
    let store = Store::open(&url, &KeySource::File(dir.path().join("secret.key")))
        .await
        .unwrap();
    let clock = Arc::new(ManualClock::at(Timestamp::from_unix(1_800_000_000)));
    let minter = ScriptedMinter::new(clock.clone());
    let registry = FakeRegistryApi::new();
    let engine = Engine::new(
        store.clone(),
        registry.clone(),
        minter.clone(),
        clock.clone(),
        EngineConfig::default(),
    );
    store
        .insert_account(&AccountRecord {
            name: team(),
            email: None,
            account_type: AccountType::User,
            state: AccountState::Enabled,
            created_at: Timestamp::from_unix(0),
            last_updated: Timestamp::from_unix(0),
        })
        .await
        .unwrap();
    Rig {
        _dir: dir,
        registry,
        minter,
        engine,
    }
}

fn team() -> AccountName {
    "team".parse().unwrap()
}

fn registry(name: &str, user: &str, pass: &str, kind: &str) -> RegistryConfigurationRequest {
    RegistryConfigurationRequest {
        registry: name.into(),
        registry_user: user.into(),
        registry_pass: Secret::new(pass),
        registry_type: Some(kind.into()),
        registry_verify: None,
        registry_name: None,
    }
}

impl Rig {
    async fn register(&self, name: &str, user: &str, pass: &str) {
        self.engine
            .registries()
            .add_registry(&team(), registry(name, user, pass, "docker_v2"), false)
            .await
            .unwrap();
    }

    async fn add(&self, image: &str) -> Result<crate::images::AddedImage, EngineError> {
        self.engine
            .images()
            .add_image(&team(), image, None, None)
            .await
    }

    /// The resolutions the registry saw, in order.
    fn resolutions(&self) -> Vec<RegistryCall> {
        self.registry
            .calls()
            .into_iter()
            .filter(|c| c.operation == "resolve_image")
            .collect()
    }
}

#[tokio::test]
async fn the_longest_matching_registry_serves_an_image() {
    let rig = rig().await;
    let host = "reg.example.com";
    for (name, user) in [
        (host.to_owned(), "host-user"),
        (format!("{host}/team/*"), "team-user"),
        (format!("{host}/team/app"), "app-user"),
    ] {
        rig.register(&name, user, &format!("{user}-pass")).await;
        rig.registry.accept(host, user, &format!("{user}-pass"));
    }
    for (repository, expected) in [
        ("team/app", "app-user"),
        ("team/other", "team-user"),
        ("team/app/sub", "team-user"),
        ("lib/x", "host-user"),
    ] {
        rig.registry.serve(host, repository, "1", 7);
        rig.add(&format!("{host}/{repository}:1")).await.unwrap();
        let last = rig.resolutions().pop().unwrap();
        assert_eq!(last.user.as_deref(), Some(expected), "{repository}");
        assert_eq!(last.repository.as_deref(), Some(repository));
    }
}

#[tokio::test]
async fn an_unregistered_registry_is_reached_anonymously_with_tls_verified() {
    let rig = rig().await;
    rig.register("reg.example.com", "u", "p").await;
    rig.registry.serve("other.example.com", "x", "1", 3);
    let added = rig.add("other.example.com/x:1").await.unwrap();
    assert_eq!(
        added.record.image_digest,
        regkeep_domain::Digest::of_sha256([3; 32])
    );
    let call = rig.resolutions().pop().unwrap();
    assert_eq!(call.user, None);
    assert!(call.verify_tls, "anonymous access verifies TLS");
}

#[tokio::test]
async fn a_refused_ecr_token_is_renewed_once_and_the_resolution_retried_once() {
    let rig = rig().await;
    rig.engine
        .registries()
        .add_registry(
            &team(),
            registry(ECR, "AKIAUNIT", "unit-secret-key", "awsecr"),
            false,
        )
        .await
        .unwrap();
    rig.registry.serve(ECR, "app", "1", 9);
    // The registry no longer honours the first token (revoked, or clocks disagree).
    rig.registry.refuse_password("fake-ecr-token-1", 1);
    rig.add(&format!("{ECR}/app:1")).await.unwrap();
    assert_eq!(rig.minter.calls(), 2, "one renewal");
    assert_eq!(rig.resolutions().len(), 2, "one retry");

    // Refused again with the renewed token too: the error, after one renewal and one retry.
    rig.registry.refuse_password("fake-ecr-token-2", 1);
    rig.registry.refuse_password("fake-ecr-token-3", 1);
    let err = rig.add(&format!("{ECR}/app:1")).await.unwrap_err();
    assert!(
        matches!(&err, EngineError::ResolutionFailed { source, .. } if source.status() == Some(401)),
        "{err}"
    );
    assert_eq!(rig.minter.calls(), 3, "never more than one renewal");
    assert_eq!(rig.resolutions().len(), 4, "never more than one retry");
    assert!(
        !err.to_string().contains("fake-ecr-token"),
        "no token in the error: {err}"
    );
}

#[tokio::test]
async fn a_missing_tag_is_a_resolution_failure_naming_it() {
    let rig = rig().await;
    rig.register("reg.example.com", "u", "p").await;
    rig.registry.accept("reg.example.com", "u", "p");
    let err = rig.add("reg.example.com/app:missing").await.unwrap_err();
    match err {
        EngineError::ResolutionFailed { image, source } => {
            assert_eq!(image, "reg.example.com/app:missing");
            assert_eq!(source.kind(), "not_found");
        }
        other => panic!("{other}"),
    }
}

#[tokio::test]
async fn a_wrong_stored_password_is_refused_by_the_registry_not_by_regkeep() {
    let rig = rig().await;
    rig.register("reg.example.com", "u", "wrong").await;
    rig.registry.accept("reg.example.com", "u", "right");
    rig.registry.serve("reg.example.com", "app", "1", 1);
    let err = rig.add("reg.example.com/app:1").await.unwrap_err();
    assert!(
        matches!(&err, EngineError::ResolutionFailed { source, .. } if source.kind() == "refused"),
        "{err}"
    );
    assert!(!err.to_string().contains("wrong"), "{err}");
}
