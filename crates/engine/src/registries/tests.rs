//! Registries and the ECR tokens they own, on a real SQLite store with the scripted minter: a
//! deleted or re-keyed registry's token is never renewed again.

use std::sync::Arc;
use std::time::Duration;

use regkeep_domain::entities::AccountRecord;
use regkeep_domain::wire::RegistryConfigurationRequest;
use regkeep_domain::{
    AccountName, AccountState, AccountType, Clock, ManualClock, Secret, Timestamp,
};
use regkeep_store::{KeySource, Store};

use crate::testing::{FakeRegistryApi, ScriptedMinter};
use crate::{Engine, EngineConfig};

const ECR: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
const HALF_LIFE: Duration = Duration::from_secs(6 * 3600 + 60);

struct Rig {
    _dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
    minter: Arc<ScriptedMinter>,
    engine: Engine,
    store: Store,
}

async fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("regkeep.db").display());
    let store = Store::open(&url, &KeySource::File(dir.path().join("secret.key")))
        .await
        .unwrap();
    let clock = Arc::new(ManualClock::at(Timestamp::from_unix(1_800_000_000)));
    let minter = ScriptedMinter::new(clock.clone());
    let engine = Engine::new(
        store.clone(),
        FakeRegistryApi::new(),
        minter.clone(),
        clock.clone(),
        EngineConfig::default(),
    );
    for name in ["team-a", "team-b"] {
        store
            .insert_account(&AccountRecord {
                name: name.parse().unwrap(),
                email: None,
                account_type: AccountType::User,
                state: AccountState::Enabled,
                created_at: clock.now(),
                last_updated: clock.now(),
            })
            .await
            .unwrap();
    }
    Rig {
        _dir: dir,
        clock,
        minter,
        engine,
        store,
    }
}

fn account(name: &str) -> AccountName {
    name.parse().unwrap()
}

fn ecr_registry(key_id: &str) -> RegistryConfigurationRequest {
    RegistryConfigurationRequest {
        registry: ECR.into(),
        registry_user: key_id.into(),
        registry_pass: Secret::new("unit-test-secret-access-key"),
        registry_type: Some("awsecr".into()),
        registry_verify: None,
        registry_name: None,
    }
}

impl Rig {
    /// Adds the ECR registry to `account` and uses it (one token minted or reused).
    async fn add_and_use(&self, account_name: &str, key_id: &str) {
        self.engine
            .registries()
            .add_registry(&account(account_name), ecr_registry(key_id), false)
            .await
            .unwrap();
        self.engine
            .registries()
            .resolve_credential(&account(account_name), ECR)
            .await
            .unwrap();
    }

    /// Runs the renewal step past two renewal points; gives the mint calls it made.
    async fn renewals_over_two_half_lives(&self) -> u64 {
        let before = self.minter.calls();
        for _ in 0..2 {
            self.clock.advance(HALF_LIFE);
            self.engine.ecr_tokens().renew_due_once().await;
        }
        self.minter.calls() - before
    }
}

#[tokio::test]
async fn a_deleted_ecr_registry_is_never_renewed_again() {
    let rig = rig().await;
    rig.add_and_use("team-a", "AKIAOWNED").await;
    assert_eq!(rig.minter.calls(), 1);
    rig.engine
        .registries()
        .delete_registry(&account("team-a"), ECR)
        .await
        .unwrap();
    assert_eq!(rig.engine.ecr_tokens().kept(), 0);
    assert_eq!(rig.renewals_over_two_half_lives().await, 0);
    assert!(
        rig.store.used_ecr_token_keys().await.unwrap().is_empty(),
        "no registry uses a token"
    );
    assert_eq!(
        rig.store
            .delete_unused_ecr_tokens(Timestamp::from_unix(i64::MAX))
            .await
            .unwrap(),
        0,
        "the token row went with the registry"
    );
}

#[tokio::test]
async fn re_keying_a_registry_stops_renewals_with_the_old_keys() {
    let rig = rig().await;
    rig.add_and_use("team-a", "AKIAOLDKEY").await;
    rig.engine
        .registries()
        .update_registry(&account("team-a"), ECR, ecr_registry("AKIANEWKEY"), false)
        .await
        .unwrap();
    rig.engine
        .registries()
        .resolve_credential(&account("team-a"), ECR)
        .await
        .unwrap();
    assert_eq!(rig.engine.ecr_tokens().kept(), 1);
    assert_eq!(rig.renewals_over_two_half_lives().await, 2);
    let key_ids: Vec<String> = rig
        .minter
        .sources()
        .into_iter()
        .map(|s| match s {
            regkeep_ecr::AwsCredentialSource::StaticKeys { access_key_id, .. } => access_key_id,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        key_ids,
        ["AKIAOLDKEY", "AKIANEWKEY", "AKIANEWKEY", "AKIANEWKEY"]
    );
}

#[tokio::test]
async fn a_token_two_registries_share_stays_until_the_last_goes() {
    let rig = rig().await;
    rig.add_and_use("team-a", "AKIASHARED").await;
    rig.add_and_use("team-b", "AKIASHARED").await;
    assert_eq!(
        rig.minter.calls(),
        1,
        "one token for the same keys and registry"
    );
    rig.engine
        .registries()
        .delete_registry(&account("team-a"), ECR)
        .await
        .unwrap();
    assert_eq!(rig.engine.ecr_tokens().kept(), 1);
    assert_eq!(rig.renewals_over_two_half_lives().await, 2);
    rig.engine
        .registries()
        .delete_registry(&account("team-b"), ECR)
        .await
        .unwrap();
    assert_eq!(rig.engine.ecr_tokens().kept(), 0);
    assert_eq!(rig.renewals_over_two_half_lives().await, 0);
}

#[tokio::test]
async fn a_purged_account_takes_its_tokens_along() {
    let rig = rig().await;
    rig.add_and_use("team-a", "AKIAPURGED").await;
    rig.store
        .set_account_state(&account("team-a"), AccountState::Deleting, rig.clock.now())
        .await
        .unwrap();
    assert_eq!(rig.engine.purge_deleted_accounts().await.unwrap(), 1);
    assert_eq!(rig.engine.ecr_tokens().kept(), 0);
    assert_eq!(rig.renewals_over_two_half_lives().await, 0);
}

/// A host's form decides the SDK's endpoint parameters: FIPS and dual-stack reach the minter, and
/// a dual-stack host's token entry is its own (its renewals must keep to the dual-stack API).
#[tokio::test]
async fn fips_and_dual_stack_hosts_reach_the_minter_and_key_their_own_tokens() {
    use regkeep_ecr::EcrTarget;
    let rig = rig().await;
    let pass = Secret::new("unit-test-secret-key");
    let request = |host: &str| {
        rig.engine
            .registries()
            .ecr_request(&host.parse().unwrap(), "AKIAUNITTEST", &pass)
            .unwrap()
    };
    let plain = request("123456789012.dkr.ecr.us-east-1.amazonaws.com");
    let fips = request("123456789012.dkr.ecr-fips.us-east-1.amazonaws.com");
    let dual = request("123456789012.dkr-ecr.us-east-1.on.aws");
    let both = request("123456789012.dkr-ecr-fips.us-east-1.on.aws");
    let flags = |r: &crate::ecr_tokens::TokenRequest| match &r.target {
        EcrTarget::Private {
            fips, dual_stack, ..
        } => (*fips, *dual_stack),
        EcrTarget::Public => panic!("a private host"),
    };
    assert_eq!(flags(&plain), (false, false));
    assert_eq!(flags(&fips), (true, false));
    assert_eq!(flags(&dual), (false, true));
    assert_eq!(flags(&both), (true, true));
    let keys: std::collections::BTreeSet<&str> = [&plain, &fips, &dual, &both]
        .iter()
        .map(|r| r.key.as_str())
        .collect();
    assert_eq!(keys.len(), 4, "one token entry per endpoint: {keys:?}");
    assert!(dual.key.contains("|us-east-1-dualstack|"), "{}", dual.key);
    assert!(
        plain.key.ends_with("|aws|us-east-1|123456789012"),
        "the keys of other hosts are as they were: {}",
        plain.key
    );
}

/// An update without a password keeps the stored secret only for the same user, type and TLS
/// verification: otherwise a user (or an API key that may write registries) could have a secret
/// they never knew handed out or sent elsewhere, e.g. an ECR secret key as a docker_v2 password.
#[tokio::test]
async fn a_kept_password_serves_only_what_it_was_given_for() {
    let t = crate::testing::team(EngineConfig::default()).await;
    let registries = t.engine.registries();
    let a = account("team-a");
    registries
        .add_registry(&a, ecr_registry("AKIAKEPT"), false)
        .await
        .unwrap();
    let kept = |change: &dyn Fn(&mut RegistryConfigurationRequest)| {
        let mut request = ecr_registry("AKIAKEPT");
        request.registry_pass = Secret::default();
        change(&mut request);
        request
    };
    for (what, request) in [
        (
            "type",
            kept(&|r| r.registry_type = Some("docker_v2".into())),
        ),
        ("user", kept(&|r| r.registry_user = "AKIAOTHER".into())),
        ("verify", kept(&|r| r.registry_verify = Some(false))),
    ] {
        let refused = registries.update_registry(&a, ECR, request, false).await;
        assert!(
            matches!(&refused, Err(crate::EngineError::BadInput(m)) if m.contains("needs its password too")),
            "{what}: {refused:?}"
        );
    }
    // The name alone: the stored secret is kept.
    let renamed = registries
        .update_registry(
            &a,
            ECR,
            kept(&|r| r.registry_name = Some("prod".into())),
            false,
        )
        .await
        .unwrap();
    assert_eq!(renamed.record.registry_name, "prod");
    assert_eq!(renamed.record.registry_type.as_str(), "awsecr");
}
