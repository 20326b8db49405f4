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
