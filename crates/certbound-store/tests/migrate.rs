//! Schema upgrades: SQLite upgrades itself when opened; a PostgreSQL store
//! (shared by instances) refuses to be used until `certbound migrate`
//! (`Store::connect_and_migrate`) brought it up to date.

use certbound_store::testing::{fresh_postgres, sqlite};
use certbound_store::{Backend, Store, StoreError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_postgres_schema_is_refused_until_migrated() {
    let Some(url) = fresh_postgres().await else {
        return;
    };
    assert_eq!(Backend::of_url(&url).unwrap(), Backend::Postgres);
    let pending = match Store::connect(&url).await {
        Err(StoreError::SchemaBehind { pending, .. }) => pending,
        other => panic!("an empty schema was accepted: {other:?}"),
    };
    assert!(pending.len() >= 5, "{pending:?}");
    assert!(pending[0].starts_with("1 "), "{pending:?}");
    // The message says what to do.
    let message = Store::connect(&url).await.unwrap_err().to_string();
    assert!(message.contains("certbound migrate"), "{message}");
    assert_eq!(Store::migration_plan(&url).await.unwrap(), pending);

    let (store, applied) = Store::connect_and_migrate(&url).await.unwrap();
    assert_eq!(applied, pending);
    store.close().await;
    assert!(Store::migration_plan(&url).await.unwrap().is_empty());
    let store = Store::connect(&url).await.unwrap();
    assert!(store.list_apis().await.unwrap().is_empty());
    // Migrating again is a no-op.
    let (_, again) = Store::connect_and_migrate(&url).await.unwrap();
    assert!(again.is_empty());
}

#[tokio::test]
async fn sqlite_upgrades_itself_when_opened() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite().url_for(dir.path());
    assert!(!Store::migration_plan(&url).await.unwrap().is_empty());
    let store = Store::connect(&url).await.unwrap();
    assert!(store.pending_migrations().await.unwrap().is_empty());
    assert_eq!(store.backend(), Backend::Sqlite);
}

#[tokio::test]
async fn other_urls_are_refused_with_the_accepted_forms() {
    for url in ["mysql://root@localhost/db", "certbound.db", ""] {
        let message = Store::connect(url).await.unwrap_err().to_string();
        assert!(
            message.contains("sqlite://") && message.contains("postgres://"),
            "{url}: {message}"
        );
    }
    // A password never shows in the message.
    let message = Store::connect("mysql://u:s3cret@h/db")
        .await
        .unwrap_err()
        .to_string();
    assert!(!message.contains("s3cret"), "{message}");
}
