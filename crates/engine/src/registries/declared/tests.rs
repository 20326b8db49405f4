//! The registries file's reconciliation, on the in-memory repositories and the fake registry.

use regkeep_domain::wire::RegistryConfigurationRequest;
use regkeep_domain::Secret;

use super::DeclaredEntry;
use crate::testing::{team, Team};
use crate::{EngineConfig, EngineError};

const FILE: &str = "/etc/regkeep/registries.yaml";

fn entry(account: &str, registry: &str, user: &str, pass: &str) -> DeclaredEntry {
    DeclaredEntry {
        account: account.into(),
        registry: registry.into(),
        request: Ok(RegistryConfigurationRequest {
            registry: registry.into(),
            registry_user: user.into(),
            registry_pass: Secret::new(pass),
            registry_type: Some("docker_v2".into()),
            registry_verify: None,
            registry_name: None,
        }),
        validate: true,
    }
}

async fn names(t: &Team, account: &str) -> Vec<(String, Option<String>, Option<String>)> {
    t.engine
        .registries()
        .list_registries(&account.parse().unwrap())
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.registry.to_string(), r.declared_in, r.declaration_error))
        .collect()
}

#[tokio::test]
async fn the_file_adds_changes_and_removes_only_what_it_declares() {
    let t = team(EngineConfig::default()).await;
    for host in ["one.example.com", "two.example.com", "api.example.com"] {
        t.registry.accept(host, "robot", "right-pass");
    }
    // Made through the API: never the file's.
    t.engine
        .registries()
        .add_registry(
            &"team-a".parse().unwrap(),
            entry("team-a", "api.example.com", "robot", "right-pass")
                .request
                .unwrap(),
            true,
        )
        .await
        .unwrap();
    let report = t
        .engine
        .apply_declared_registries(
            FILE,
            vec![
                entry("team-a", "one.example.com", "robot", "right-pass"),
                entry("team-b", "two.example.com", "robot", "right-pass"),
                entry("team-a", "api.example.com", "robot", "right-pass"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        (report.added, report.changed, report.removed),
        (2, 0, 0),
        "{report:?}"
    );
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert!(
        report.failed[0].contains("added through the API"),
        "{report:?}"
    );
    assert_eq!(
        names(&t, "team-a").await,
        vec![
            ("api.example.com".into(), None, None),
            ("one.example.com".into(), Some(FILE.into()), None),
        ]
    );

    // The same file again: nothing to do.
    let again = t
        .engine
        .apply_declared_registries(
            FILE,
            vec![
                entry("team-a", "one.example.com", "robot", "right-pass"),
                entry("team-b", "two.example.com", "robot", "right-pass"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        (again.added, again.changed, again.removed, again.unchanged),
        (0, 0, 0, 2)
    );

    // A new password changes the entry; an entry left out is removed; the API's stays.
    t.registry.accept("one.example.com", "robot", "new-pass");
    let changed = t
        .engine
        .apply_declared_registries(
            FILE,
            vec![entry("team-a", "one.example.com", "robot", "new-pass")],
        )
        .await
        .unwrap();
    assert_eq!(
        (changed.added, changed.changed, changed.removed),
        (0, 1, 1),
        "{changed:?}"
    );
    assert!(names(&t, "team-b").await.is_empty());
    let credential = t
        .engine
        .registries()
        .resolve_credential(&"team-a".parse().unwrap(), "one.example.com")
        .await
        .unwrap();
    assert_eq!(credential.password.expose(), "new-pass");
    assert_eq!(names(&t, "team-a").await.len(), 2);
}

#[tokio::test]
async fn a_refused_entry_shows_its_error_and_the_others_work() {
    let t = team(EngineConfig::default()).await;
    t.registry.accept("good.example.com", "robot", "right-pass");
    t.registry.accept("bad.example.com", "robot", "right-pass");
    let mut unusable = entry("team-a", "gone.example.com", "robot", "x");
    unusable.request = Err("password_env GONE is not set".into());
    let report = t
        .engine
        .apply_declared_registries(
            FILE,
            vec![
                entry("team-a", "good.example.com", "robot", "right-pass"),
                entry("team-a", "bad.example.com", "robot", "wrong-pass"),
                unusable,
                entry("no-such-account", "x.example.com", "robot", "right-pass"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        report.added, 2,
        "the refused one is stored with its error: {report:?}"
    );
    assert_eq!(report.failed.len(), 2, "{report:?}");
    assert!(
        report.failed.iter().any(|f| f.contains("GONE is not set")),
        "{report:?}"
    );
    assert!(
        report
            .failed
            .iter()
            .any(|f| f.contains("account no-such-account does not exist")),
        "{report:?}"
    );
    let listed = names(&t, "team-a").await;
    let bad = listed.iter().find(|r| r.0 == "bad.example.com").unwrap();
    assert!(
        bad.2.as_deref().unwrap().contains("bad.example.com"),
        "{bad:?}"
    );
    assert!(!bad.2.as_deref().unwrap().contains("wrong-pass"), "{bad:?}");
    let good = listed.iter().find(|r| r.0 == "good.example.com").unwrap();
    assert_eq!(good.2, None);

    // Fixed at the registry: applying again checks the failed entry again and clears its error.
    t.registry.accept("bad.example.com", "robot", "wrong-pass");
    // A declared entry whose new version cannot be used is kept (with the error), not removed.
    let mut now_unusable = entry("team-a", "good.example.com", "robot", "x");
    now_unusable.request = Err("password_file /x cannot be read".into());
    let report = t
        .engine
        .apply_declared_registries(
            FILE,
            vec![
                now_unusable,
                entry("team-a", "bad.example.com", "robot", "wrong-pass"),
            ],
        )
        .await
        .unwrap();
    assert_eq!((report.changed, report.removed), (1, 0), "{report:?}");
    let listed = names(&t, "team-a").await;
    assert_eq!(
        listed.iter().find(|r| r.0 == "bad.example.com").unwrap().2,
        None
    );
    assert!(listed
        .iter()
        .find(|r| r.0 == "good.example.com")
        .unwrap()
        .2
        .as_deref()
        .unwrap()
        .contains("cannot be read"));
}

#[tokio::test]
async fn declared_entries_are_refused_to_the_api_until_no_file_declares_them() {
    let t = team(EngineConfig::default()).await;
    t.registry.accept("one.example.com", "robot", "right-pass");
    t.engine
        .apply_declared_registries(
            FILE,
            vec![entry("team-a", "one.example.com", "robot", "right-pass")],
        )
        .await
        .unwrap();
    let registries = t.engine.registries();
    let account = "team-a".parse().unwrap();
    let update = registries
        .update_registry(
            &account,
            "one.example.com",
            entry("team-a", "one.example.com", "robot", "right-pass")
                .request
                .unwrap(),
            false,
        )
        .await;
    assert!(
        matches!(&update, Err(EngineError::Declared { file, .. }) if file == FILE),
        "{update:?}"
    );
    assert!(update.unwrap_err().to_string().contains(FILE));
    let delete = registries
        .delete_registry(&account, "one.example.com")
        .await;
    assert!(
        matches!(delete, Err(EngineError::Declared { .. })),
        "{delete:?}"
    );

    assert_eq!(registries.undeclare_all().await.unwrap(), 1);
    registries
        .delete_registry(&account, "one.example.com")
        .await
        .unwrap();
}

#[tokio::test]
async fn one_replica_at_a_time_applies_the_file() {
    use regkeep_domain::{Clock, Timestamp};
    use regkeep_store::EcrTokenRepository;
    let t = team(EngineConfig::default()).await;
    t.registry.accept("one.example.com", "robot", "right-pass");
    // Another replica is applying the file.
    let now = t.clock.now();
    let until = Timestamp::from_unix(now.unix() + 300);
    assert!(t
        .repos
        .tokens()
        .try_lease(super::LEASE_KEY, "another-replica", until, now)
        .await
        .unwrap());
    let entries = || vec![entry("team-a", "one.example.com", "robot", "right-pass")];
    let report = t
        .engine
        .apply_declared_registries(FILE, entries())
        .await
        .unwrap();
    assert!(report.skipped, "{report:?}");
    assert!(names(&t, "team-a").await.is_empty(), "nothing applied");
    // Its lease ends (it finished, or it was killed and the deadline passed): this one applies,
    // and ends its own lease after, so the other can apply at once.
    t.clock.advance(std::time::Duration::from_secs(301));
    let report = t
        .engine
        .apply_declared_registries(FILE, entries())
        .await
        .unwrap();
    assert_eq!((report.skipped, report.added), (false, 1), "{report:?}");
    let now = t.clock.now();
    assert!(t
        .repos
        .tokens()
        .try_lease(
            super::LEASE_KEY,
            "another-replica",
            Timestamp::from_unix(now.unix() + 300),
            now
        )
        .await
        .unwrap());
}

/// A database that cannot be written: each entry says so in plain words on its record (every
/// user of the account reads it) without the cause, which names server paths; an error return
/// still ends the lease; once the database is writable again, the next application does it all.
#[tokio::test]
async fn a_storage_failure_is_said_in_plain_words_and_ends_the_lease() {
    use crate::testing::INJECTED_CAUSE;
    use regkeep_domain::{Clock, Timestamp};
    use regkeep_store::EcrTokenRepository;
    let t = team(EngineConfig::default()).await;
    for host in ["one.example.com", "two.example.com"] {
        t.registry.accept(host, "robot", "right-pass");
    }
    let one = || entry("team-a", "one.example.com", "robot", "right-pass");
    let renamed = || {
        let mut e = one();
        if let Ok(request) = &mut e.request {
            request.registry_name = Some("renamed".into());
        }
        e
    };
    let two = || entry("team-a", "two.example.com", "robot", "right-pass");
    let apply = |entries| t.engine.apply_declared_registries(FILE, entries);
    assert_eq!(apply(vec![one()]).await.unwrap().added, 1);

    t.repos.fail_registry_writes(true);
    let report = apply(vec![renamed(), two()]).await.unwrap();
    assert_eq!(report.failed.len(), 2, "{report:?}");
    for failure in &report.failed {
        assert!(failure.contains("could not store this entry"), "{failure}");
        assert!(!failure.contains(INJECTED_CAUSE), "{failure}");
    }
    let listed = names(&t, "team-a").await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let on_record = listed[0].2.clone().unwrap_or_default();
    assert!(
        on_record.contains("could not store this entry"),
        "{listed:?}"
    );
    assert!(!on_record.contains(INJECTED_CAUSE), "{listed:?}");

    // Removing fails: the application stops with the error, and its lease ends anyway.
    let err = apply(vec![two()]).await.unwrap_err();
    assert!(matches!(err, EngineError::Unavailable(_)), "{err:?}");
    assert!(!err.to_string().contains(INJECTED_CAUSE), "{err}");
    // Another replica can take the lease at once (this one would get its own back anyway).
    let now = t.clock.now();
    assert!(
        t.repos
            .tokens()
            .try_lease(
                super::LEASE_KEY,
                "another-replica",
                Timestamp::from_unix(now.unix() + 300),
                now
            )
            .await
            .unwrap(),
        "the failed application ended its lease"
    );
    t.clock.advance(std::time::Duration::from_secs(301));

    t.repos.fail_registry_writes(false);
    let report = apply(vec![renamed(), two()]).await.unwrap();
    assert_eq!(
        (report.added, report.changed, report.failed.len()),
        (1, 1, 0),
        "{report:?}"
    );
    let listed = names(&t, "team-a").await;
    assert!(
        listed
            .iter()
            .all(|(_, declared, error)| declared.is_some() && error.is_none()),
        "{listed:?}"
    );
}
