//! The store backend a test runs on (`certbound_store::testing`): `init`
//! options that put a data directory's registry on it.

/// `init` options with a store of its own on the backend under test
/// (SQLite: the data directory's file; PostgreSQL: a fresh schema).
pub async fn test_init_options() -> certbound_broker::registry::InitOptions {
    certbound_broker::registry::InitOptions {
        store_url: certbound_broker::store::testing::current()
            .fresh_url()
            .await,
        ..Default::default()
    }
}
