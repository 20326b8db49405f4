//! The memory fake keeps the store's contract: one scenario over every repository method, run
//! on the real SQLite [`Store`] and on [`MemoryRepositories`]; each answer is written to a
//! transcript, and the two transcripts must be the same. A fake that drifts from the database
//! (an order, a `NotFound`, a cascade) fails here, not in a unit test that trusted it.

use regkeep_domain::entities::{
    AccountRecord, ApiKeyRecord, EventFilter, EventRecord, ImageRecord, PollOutcome,
    RegistryRecord, SubscriptionRecord, UserRecord,
};
use regkeep_domain::{
    AccountName, AccountState, AccountType, Digest, EcrToken, RegistryType, Secret, Timestamp,
};
use regkeep_store::{KeySource, Store};

use super::MemoryRepositories;
use crate::Repositories;

fn t(seconds: i64) -> Timestamp {
    Timestamp::from_unix(1_800_000_000 + seconds)
}

fn account(name: &str, state: AccountState) -> AccountRecord {
    AccountRecord {
        name: name.parse().unwrap(),
        email: None,
        account_type: AccountType::User,
        state,
        created_at: t(0),
        last_updated: t(0),
    }
}

fn user(name: &str, account: &str) -> UserRecord {
    UserRecord {
        username: name.parse().unwrap(),
        account: account.parse().unwrap(),
        user_type: "native".into(),
        source: None,
        password_hash: format!("hash-of-{name}"),
        created_at: t(1),
        last_updated: t(1),
    }
}

fn api_key(n: u8, account: &str, at: i64) -> ApiKeyRecord {
    ApiKeyRecord {
        key_id: regkeep_domain::ApiKeyId::from_bytes([n; 8]),
        account: account.parse().unwrap(),
        created_by: "alice".parse().unwrap(),
        description: format!("key {n}"),
        scopes: regkeep_domain::Scopes::parse("credentials:read,read").unwrap(),
        key_hash: format!("hash-{n}"),
        created_at: t(at),
        expires_at: n.is_multiple_of(2).then(|| t(1000)),
        last_used_at: None,
        revoked_at: None,
    }
}

fn registry(account: &str, host: &str, token_key: Option<&str>) -> RegistryRecord {
    RegistryRecord {
        account: account.parse().unwrap(),
        registry: host.parse().unwrap(),
        registry_name: host.into(),
        registry_user: "u".into(),
        registry_type: if token_key.is_some() {
            RegistryType::AwsEcr
        } else {
            RegistryType::DockerV2
        },
        registry_verify: true,
        created_at: t(2),
        last_updated: t(2),
        last_validated: Some(t(2)),
        token_key: token_key.map(str::to_owned),
        token_status: None,
        declared_in: None,
        declaration_error: None,
    }
}

fn image(account: &str, digest: u8, config: u8, tag: &str, at: i64) -> ImageRecord {
    ImageRecord {
        account: account.parse().unwrap(),
        image_digest: Digest::of_sha256([digest; 32]),
        registry: "r.example:5000".into(),
        repository: "team/app".into(),
        tag: Some(tag.into()),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        manifest_digest: Digest::of_sha256([digest; 32]),
        platform: "linux/amd64".into(),
        config_digest: Digest::of_sha256([config; 32]),
        image_created: None,
        layer_count: 2,
        total_size: 1234,
        resolved_at: t(at),
        created_at: t(at),
        last_updated: t(at),
        tags: Vec::new(),
    }
}

fn subscription(account: &str, id: &str, key: &str, next: i64) -> SubscriptionRecord {
    SubscriptionRecord {
        account: account.parse().unwrap(),
        subscription_id: id.into(),
        subscription_type: "tag_update".into(),
        subscription_key: key.into(),
        subscription_value: None,
        active: true,
        last_digest: None,
        last_polled_at: None,
        last_error: None,
        failures: 0,
        next_poll_at: t(next),
        created_at: t(next),
        last_updated: t(next),
    }
}

fn event(account: &str, id: &str, kind: &str, at: i64) -> EventRecord {
    EventRecord {
        account: account.parse().unwrap(),
        generated_uuid: id.into(),
        created_at: t(at),
        event_type: kind.into(),
        level: "INFO".into(),
        message: format!("event {id}"),
        resource_type: "tag".into(),
        resource_id: "r.example:5000/team/app:1".into(),
        details: "{}".into(),
    }
}

/// Runs every method with answers worth comparing; each answer is one transcript line.
async fn scenario(repos: Repositories) -> Vec<String> {
    let mut log = Vec::new();
    macro_rules! say {
        ($what:expr) => {
            log.push(format!("{}: {:?}", stringify!($what), $what))
        };
    }
    let (a, b, gone): (AccountName, AccountName, AccountName) = (
        "team-a".parse().unwrap(),
        "team-b".parse().unwrap(),
        "gone".parse().unwrap(),
    );
    let accounts = repos.accounts.clone();
    say!(accounts.has_marker("seeded").await);
    say!(accounts.set_marker("seeded").await);
    say!(accounts.set_marker("seeded").await);
    say!(accounts.has_marker("seeded").await);
    for name in ["team-b", "team-a", "gone"] {
        say!(
            accounts
                .insert_account(&account(name, AccountState::Enabled))
                .await
        );
    }
    say!(
        accounts
            .insert_account(&account("team-a", AccountState::Enabled))
            .await
    );
    say!(accounts.get_account(&a).await);
    say!(accounts.get_account(&"nobody".parse().unwrap()).await);
    say!(accounts.list_accounts().await);
    say!(accounts.insert_user(&user("alice", "team-a")).await);
    say!(accounts.insert_user(&user("bob", "team-a")).await);
    say!(accounts.insert_user(&user("alice", "team-b")).await);
    say!(accounts.insert_user(&user("carol", "gone")).await);
    say!(accounts.count_users(&a).await);
    say!(accounts.list_users(&a).await);
    say!(
        accounts
            .set_user_password_hash(&b, &"alice".parse().unwrap(), "other", t(5))
            .await
    );
    say!(
        accounts
            .set_user_password_hash(&a, &"alice".parse().unwrap(), "new", t(5))
            .await
    );
    say!(accounts.get_user(&"alice".parse().unwrap()).await);
    say!(accounts.delete_user(&b, &"bob".parse().unwrap()).await);
    say!(accounts.delete_user(&a, &"bob".parse().unwrap()).await);
    say!(accounts.delete_user(&a, &"bob".parse().unwrap()).await);

    let keys = repos.api_keys.clone();
    let key_id = |n: u8| regkeep_domain::ApiKeyId::from_bytes([n; 8]);
    for (n, account, at) in [(2, "team-a", 3), (1, "team-a", 3), (3, "gone", 1)] {
        say!(keys.insert_api_key(&api_key(n, account, at)).await);
    }
    say!(keys.insert_api_key(&api_key(1, "team-b", 9)).await);
    say!(keys.get_api_key(&key_id(1)).await);
    say!(keys.get_api_key(&key_id(9)).await);
    say!(keys.list_api_keys(&a).await);
    say!(keys.count_api_keys(&a).await);
    say!(keys.revoke_api_key(&b, &key_id(1), t(7)).await);
    say!(keys.revoke_api_key(&a, &key_id(1), t(7)).await);
    say!(keys.revoke_api_key(&a, &key_id(1), t(8)).await);
    say!(keys.touch_api_key(&key_id(2), t(9)).await);
    say!(keys.touch_api_key(&key_id(9), t(9)).await);
    say!(keys.list_api_keys(&a).await);

    let registries = repos.registries.clone();
    let pass = Secret::new("registry-pass");
    say!(
        registries
            .insert_registry(&registry("team-a", "z.example:5000", None), &pass)
            .await
    );
    say!(
        registries
            .insert_registry(&registry("team-a", "a.example", Some("key-1")), &pass)
            .await
    );
    say!(
        registries
            .insert_registry(&registry("team-a", "a.example", None), &pass)
            .await
    );
    say!(
        registries
            .insert_registry(&registry("gone", "g.example", Some("key-2")), &pass)
            .await
    );
    say!(
        registries
            .update_registry(&registry("team-b", "a.example", None), &pass)
            .await
    );
    let mut renamed = registry("team-a", "z.example:5000", None);
    renamed.registry_name = "renamed".into();
    renamed.created_at = t(99);
    say!(
        registries
            .update_registry(&renamed, &Secret::new("new-pass"))
            .await
    );
    say!(registries
        .registry_password(&a, &"z.example:5000".parse().unwrap())
        .await
        .map(|s| s.expose().to_owned()));
    say!(registries.count_registries(&a).await);
    // The token's state is read with the record.
    let token = EcrToken {
        username: "AWS".into(),
        password: Secret::new("token"),
        usable_until: t(3600),
        obtained_at: t(10),
        renew_at: t(1800),
    };
    say!(repos.ecr_tokens.save("key-1", &token).await);
    say!(
        repos
            .ecr_tokens
            .record_error("key-1", "throttled", t(20))
            .await
    );
    say!(registries.list_registries(&a).await);
    say!(repos.ecr_tokens.used_keys().await.map(sorted));
    // Declared entries: listed across accounts, their error kept, handed back to the API.
    let mut declared = registry("team-b", "d.example", None);
    declared.declared_in = Some("/etc/regkeep/registries.yaml".into());
    say!(registries.insert_registry(&declared, &pass).await);
    say!(
        registries
            .set_declaration_error(
                &"team-b".parse().unwrap(),
                &"d.example".parse().unwrap(),
                Some("refused")
            )
            .await
    );
    say!(
        registries
            .set_declaration_error(&a, &"missing.example".parse().unwrap(), None)
            .await
    );
    say!(registries.list_declared_registries().await);
    say!(registries.undeclare_registries().await);
    say!(registries.list_declared_registries().await);

    let images = repos.images.clone();
    say!(images.upsert_image(&image("team-a", 1, 9, "1.0", 30)).await);
    say!(images.upsert_image(&image("team-a", 2, 9, "2.0", 20)).await);
    say!(
        images
            .upsert_image(&image("team-a", 1, 9, "latest", 40))
            .await
    );
    say!(images.upsert_image(&image("team-a", 1, 9, "1.0", 50)).await);
    say!(images.count_image_tags(&a).await);
    say!(images.list_images(&a).await);
    let one = image("team-a", 1, 9, "", 0).image_digest;
    let config = image("team-a", 1, 9, "", 0).config_digest;
    say!(images.get_image(&a, &one).await);
    say!(images.get_image(&b, &one).await);
    say!(images.images_by_config(&a, &config).await);
    say!(images.delete_image(&a, &one).await);
    say!(images.delete_image(&a, &one).await);
    say!(images.list_images(&a).await);

    let watch = repos.watch.clone();
    say!(
        watch
            .insert_subscription(&subscription("team-a", "s1", "r/app:1", 100))
            .await
    );
    say!(
        watch
            .insert_subscription(&subscription("team-a", "s2", "r/app:1", 100))
            .await
    );
    say!(
        watch
            .insert_subscription(&subscription("team-a", "s3", "r/app:2", 50))
            .await
    );
    say!(
        watch
            .insert_subscription(&subscription("team-b", "s4", "r/app:1", 10))
            .await
    );
    say!(watch.count_subscriptions(&a).await);
    say!(
        accounts
            .set_account_state(&b, AccountState::Disabled, t(60))
            .await
    );
    say!(watch.due_subscriptions(t(100), 10).await);
    say!(watch.due_subscriptions(t(100), 1).await);
    say!(watch.claim_poll(&a, "s3", t(50), t(400)).await);
    say!(watch.claim_poll(&a, "s3", t(50), t(500)).await);
    let outcome = PollOutcome {
        last_digest: Some(Digest::of_sha256([0xab; 32])),
        last_error: None,
        failures: 0,
        polled_at: t(101),
    };
    say!(watch.record_poll(&a, "s3", &outcome).await);
    say!(watch.record_poll(&a, "missing", &outcome).await);
    say!(
        watch
            .set_subscription_active(&a, "s1", false, t(700), t(102))
            .await
    );
    say!(
        watch
            .set_subscription_active(&a, "missing", false, t(700), t(102))
            .await
    );
    say!(watch.get_subscription(&a, "s3").await);
    say!(watch.get_subscription(&b, "s3").await);
    say!(watch.list_subscriptions(&a).await);
    say!(watch.delete_subscription(&a, "s1").await);
    say!(watch.delete_subscription(&a, "s1").await);
    for (id, kind, at) in [
        ("e1", "user.checks.tag_update", 10),
        ("e2", "system.poll.failed", 20),
        ("e3", "user.checks.tag_update", 30),
        ("e4", "user.image.added", 40),
    ] {
        say!(watch.insert_event(&event("team-a", id, kind, at)).await);
    }
    say!(
        watch
            .insert_event(&event("team-b", "e5", "user.x", 15))
            .await
    );
    let all = EventFilter {
        limit: 100,
        ..EventFilter::default()
    };
    say!(watch.list_events(&a, &all).await);
    say!(
        watch
            .list_events(
                &a,
                &EventFilter {
                    event_type: Some("user.checks".into()),
                    since: Some(t(20)),
                    ..all.clone()
                }
            )
            .await
    );
    say!(
        watch
            .list_events(
                &a,
                &EventFilter {
                    limit: 1,
                    offset: 1,
                    ..all.clone()
                }
            )
            .await
    );
    say!(watch.get_event(&a, "e2").await);
    say!(watch.get_event(&b, "e2").await);
    say!(watch.delete_event(&a, "e2").await);
    say!(watch.delete_event(&a, "e2").await);
    say!(watch.delete_events(&a, Some(t(30)), Some(t(40))).await);
    say!(watch.prune_events(t(20)).await);
    say!(watch.list_events(&a, &all).await);
    say!(watch.list_events(&b, &all).await);

    // An account being deleted keeps that state; deleting it takes what it owned.
    say!(
        accounts
            .set_account_state(&gone, AccountState::Deleting, t(200))
            .await
    );
    say!(
        accounts
            .set_account_state(&gone, AccountState::Enabled, t(201))
            .await
    );
    say!(accounts.delete_account(&gone).await);
    say!(accounts.delete_account(&gone).await);
    say!(accounts.get_user(&"carol".parse().unwrap()).await);
    say!(keys.get_api_key(&key_id(3)).await);
    say!(registries.list_registries(&gone).await);
    say!(repos.ecr_tokens.used_keys().await.map(sorted));
    say!(
        registries
            .delete_registry(&a, &"a.example".parse().unwrap())
            .await
    );
    say!(
        registries
            .delete_registry(&a, &"a.example".parse().unwrap())
            .await
    );
    say!(repos.ecr_tokens.release("key-1").await);
    say!(repos.ecr_tokens.load("key-1").await);
    say!(repos.database.check_file());
    log
}

fn sorted(keys: std::collections::HashSet<String>) -> Vec<String> {
    let mut keys: Vec<String> = keys.into_iter().collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn the_memory_fake_answers_as_the_sqlite_store_does() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("regkeep.db").display());
    let store = Store::open(&url, &KeySource::File(dir.path().join("secret.key")))
        .await
        .unwrap();
    let real = scenario(Repositories::from(store)).await;
    let fake = scenario(MemoryRepositories::new().repositories()).await;
    assert!(real.len() > 90, "the scenario ran: {} answers", real.len());
    for (line, (r, f)) in real.iter().zip(&fake).enumerate() {
        assert_eq!(r, f, "answer {line} differs (left: SQLite, right: memory)");
    }
    assert_eq!(real.len(), fake.len());
    // The scenario saw both kinds of answer, so the comparison means something.
    assert!(real.iter().any(|l| l.contains("Err(NotFound)")));
    assert!(real.iter().any(|l| l.contains("Err(AlreadyExists)")));
}
