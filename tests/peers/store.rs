//! The two migration trees (`crates/store/migrations/{sqlite,postgres}`) give the same tables,
//! columns and NOT NULL constraints: a schema change made in one tree only fails here.

use crate::common::{Backend, TestDatabase};
use regkeep_store::{KeySource, Store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_migration_trees_make_the_same_tables_and_columns() {
    crate::skip_without_peers!();
    let dir = tempfile::tempdir().unwrap();
    let key = KeySource::File(dir.path().join("secret.key"));
    let sqlite_url = format!("sqlite://{}", dir.path().join("regkeep.db").display());
    let sqlite = Store::open(&sqlite_url, &key).await.unwrap();
    let database = TestDatabase::create(Backend::Postgres).await;
    let postgres = Store::open(database.url.as_deref().unwrap(), &key)
        .await
        .unwrap();
    let (lite, pg) = (
        sqlite.schema().await.unwrap(),
        postgres.schema().await.unwrap(),
    );
    assert_eq!(sqlite.schema_version(), postgres.schema_version());
    assert!(
        lite.contains_key("registries") && lite.contains_key("ecr_tokens"),
        "{lite:?}"
    );
    for table in lite.keys().chain(pg.keys()) {
        assert_eq!(
            lite.get(table),
            pg.get(table),
            "table {table}: SQLite's columns (left) and PostgreSQL's (right) differ"
        );
    }
    postgres.close().await;
    database.drop_database().await;
}

/// A store on `backend` in a fresh database (SQLite in a temporary directory); keep the directory
/// while the store is used.
async fn open_store(backend: Backend) -> (tempfile::TempDir, TestDatabase, Store) {
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::create(backend).await;
    let url = database
        .url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("regkeep.db").display()));
    let store = Store::open(&url, &KeySource::File(dir.path().join("secret.key")))
        .await
        .unwrap();
    (dir, database, store)
}

/// The ECR token rows' release and sweep, on the backend's own SQL: a row goes when no registry
/// uses its key (and only then), unused rows go after the grace.
async fn ecr_token_rows_are_released_and_swept(backend: Backend) {
    use regkeep_domain::entities::{AccountRecord, RegistryRecord};
    use regkeep_domain::{AccountState, AccountType, EcrToken, RegistryType, Secret, Timestamp};
    let (_dir, database, store) = open_store(backend).await;
    let t = Timestamp::from_unix;
    store
        .insert_account(&AccountRecord {
            name: "team".parse().unwrap(),
            email: None,
            account_type: AccountType::User,
            state: AccountState::Enabled,
            created_at: t(0),
            last_updated: t(0),
        })
        .await
        .unwrap();
    let token = |at: i64| EcrToken {
        username: "AWS".into(),
        password: Secret::new("store-test-token"),
        usable_until: t(at + 3600),
        obtained_at: t(at),
        renew_at: t(at + 1800),
    };
    for key in ["used", "unused-old", "unused-young"] {
        let at = if key == "unused-young" { 1000 } else { 100 };
        store.save_ecr_token(key, &token(at)).await.unwrap();
    }
    let record = RegistryRecord {
        account: "team".parse().unwrap(),
        registry: "123456789012.dkr.ecr.us-east-1.amazonaws.com"
            .parse()
            .unwrap(),
        registry_name: "ecr".into(),
        registry_user: "AKIA".into(),
        registry_type: RegistryType::AwsEcr,
        registry_verify: true,
        created_at: t(0),
        last_updated: t(0),
        last_validated: None,
        token_key: Some("used".into()),
        token_status: None,
        declared_in: None,
        declaration_error: None,
    };
    store
        .insert_registry(&record, &Secret::new("store-test-secret"))
        .await
        .unwrap();
    assert_eq!(
        store.used_ecr_token_keys().await.unwrap(),
        ["used".to_owned()].into_iter().collect()
    );
    // A key a registry uses is not released; an unused one is.
    assert!(!store.release_ecr_token("used").await.unwrap());
    assert!(store.load_ecr_token("used").await.unwrap().is_some());
    assert!(store.release_ecr_token("unused-old").await.unwrap());
    assert!(store.load_ecr_token("unused-old").await.unwrap().is_none());
    // The sweep spares what a registry uses and what was written after the cutoff.
    store
        .save_ecr_token("unused-old", &token(100))
        .await
        .unwrap();
    assert_eq!(store.delete_unused_ecr_tokens(t(500)).await.unwrap(), 1);
    assert!(store
        .load_ecr_token("unused-young")
        .await
        .unwrap()
        .is_some());
    assert!(store.load_ecr_token("used").await.unwrap().is_some());
    store.close().await;
    database.drop_database().await;
}

/// The minting lease on the backend's own SQL: one holder at a time, extended by its holder,
/// free again once its deadline passed; and the change notifications reach a listener
/// (PostgreSQL; SQLite has no other process to tell).
async fn ecr_leases_and_change_notifications(backend: Backend) {
    use regkeep_domain::Timestamp;
    let (_dir, database, store) = open_store(backend).await;
    let t = Timestamp::from_unix;
    assert!(store.try_ecr_lease("k", "a", t(130), t(100)).await.unwrap());
    assert!(
        !store.try_ecr_lease("k", "b", t(140), t(110)).await.unwrap(),
        "held by a"
    );
    assert!(
        store.try_ecr_lease("k", "a", t(150), t(120)).await.unwrap(),
        "a extends it"
    );
    assert!(!store.try_ecr_lease("k", "b", t(160), t(149)).await.unwrap());
    assert!(
        store.try_ecr_lease("k", "b", t(180), t(150)).await.unwrap(),
        "a's ran out"
    );
    assert!(
        store
            .try_ecr_lease("other", "a", t(180), t(150))
            .await
            .unwrap(),
        "per key"
    );

    let feed = store.listen().await.unwrap();
    match backend {
        Backend::Sqlite => assert!(feed.is_none()),
        Backend::Postgres => {
            let mut feed = feed.expect("PostgreSQL listens");
            store.announce(regkeep_store::Change::Keys).await.unwrap();
            let heard = tokio::time::timeout(std::time::Duration::from_secs(10), feed.next())
                .await
                .expect("a notification arrives")
                .unwrap();
            assert_eq!(heard, Some(regkeep_store::Change::Keys));
        }
    }
    store.close().await;
    database.drop_database().await;
}

on_both_backends!(
    ecr_token_rows_are_released_and_swept,
    ecr_leases_and_change_notifications
);
