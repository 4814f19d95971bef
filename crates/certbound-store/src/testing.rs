//! Running a test suite against every backend: SQLite always, PostgreSQL
//! when one is reachable.
//!
//! [`backends`] yields a [`TestStore`] for SQLite and, when the PostgreSQL
//! server at `CERTBOUND_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) answers, one for PostgreSQL in
//! a fresh schema of its own, so that tests running in parallel never see
//! each other's rows. Without a server the PostgreSQL run is skipped with a
//! loud message, and `CERTBOUND_REQUIRE_ALL=1` (as `.ci/run` sets) turns
//! that skip into a panic. `CERTBOUND_TEST_POSTGRES_URL=off` skips it on
//! purpose.
//!
//! A whole test suite runs on both without touching its bodies: each test
//! becomes a plain `async fn`, [`on_every_backend!`](crate::on_every_backend)
//! makes one `#[tokio::test]` per backend of it (`name::sqlite`,
//! `name::postgres`), and the suite's setup asks [`current`] which store to
//! initialise:
//!
//! ```no_run
//! async fn groups_round_trip() {
//!     let dir = tempfile::tempdir().unwrap();
//!     let store = certbound_store::testing::current().open(dir.path()).await;
//!     // ... the same assertions on both backends ...
//!     # let _ = store;
//! }
//! certbound_store::on_every_backend!(groups_round_trip);
//! ```

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::Connection as _;

use crate::{Backend, Store, sqlite_url};

/// The PostgreSQL server tests use when `CERTBOUND_TEST_POSTGRES_URL` is unset.
pub const DEFAULT_TEST_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// One backend a test runs against.
#[derive(Debug, Clone)]
pub struct TestStore {
    /// Which database.
    pub backend: Backend,
    /// Its URL; `None` for SQLite (the data directory's own `certbound.db`).
    pub url: Option<String>,
}

fn test_postgres_base() -> String {
    std::env::var("CERTBOUND_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| DEFAULT_TEST_POSTGRES_URL.to_string())
}

impl TestStore {
    /// The store URL for a data directory `dir`.
    pub fn url_for(&self, dir: &Path) -> String {
        self.url
            .clone()
            .unwrap_or_else(|| sqlite_url(&dir.join("certbound.db")))
    }

    /// A store URL for one more data directory of the same test: `None` on
    /// SQLite (each directory has its own `certbound.db`), a URL of another
    /// fresh schema on PostgreSQL.
    ///
    /// # Panics
    /// When the PostgreSQL server went away during the test.
    pub async fn fresh_url(&self) -> Option<String> {
        match self.backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(
                create_schema(&test_postgres_base())
                    .await
                    .unwrap_or_else(|e| panic!("a fresh PostgreSQL schema: {e}")),
            ),
        }
    }

    /// Opens the store (SQLite: `dir/certbound.db`), migrated.
    ///
    /// # Panics
    /// When it cannot be opened: this is test support.
    pub async fn open(&self, dir: &Path) -> Store {
        let url = self.url_for(dir);
        Store::connect_and_migrate(&url)
            .await
            .map(|(store, _)| store)
            .unwrap_or_else(|e| panic!("opening the {} test store: {e}", self.backend.name()))
    }
}

tokio::task_local! {
    static CURRENT: TestStore;
}

/// The backend the running test is on ([`run_on`]); SQLite outside of one.
pub fn current() -> TestStore {
    CURRENT.try_with(Clone::clone).unwrap_or(TestStore {
        backend: Backend::Sqlite,
        url: None,
    })
}

/// Runs `test` with [`current`] returning `store`.
pub async fn run_on<F: std::future::Future>(store: TestStore, test: F) -> F::Output {
    CURRENT.scope(store, test).await
}

/// The SQLite test store.
pub fn sqlite() -> TestStore {
    TestStore {
        backend: Backend::Sqlite,
        url: None,
    }
}

/// A PostgreSQL test store in a fresh schema, or `None` after a loud skip
/// (see [`fresh_postgres`]).
pub async fn postgres() -> Option<TestStore> {
    fresh_postgres().await.map(|url| TestStore {
        backend: Backend::Postgres,
        url: Some(url),
    })
}

/// Makes two tests of each `async fn` named: `name::sqlite` and
/// `name::postgres` (skipped loudly without a server), each with [`current`]
/// set to its backend. Multi-threaded runtime with 2 workers, as the rest of
/// the suites.
#[macro_export]
macro_rules! on_every_backend {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $crate::testing::run_on($crate::testing::sqlite(), super::$name()).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(store) = $crate::testing::postgres().await {
                    $crate::testing::run_on(store, super::$name()).await
                }
            }
        }
    )+};
}

/// SQLite, and PostgreSQL in a fresh schema when a server is reachable (see
/// the module docs).
///
/// # Panics
/// When PostgreSQL is unreachable and `CERTBOUND_REQUIRE_ALL=1`.
pub async fn backends() -> Vec<TestStore> {
    let mut out = vec![TestStore {
        backend: Backend::Sqlite,
        url: None,
    }];
    if let Some(url) = fresh_postgres().await {
        out.push(TestStore {
            backend: Backend::Postgres,
            url: Some(url),
        });
    }
    out
}

/// A URL of the test PostgreSQL server whose `search_path` is a new, empty
/// schema; `None` (after a loud message) when no server is reachable.
///
/// # Panics
/// When no server is reachable and `CERTBOUND_REQUIRE_ALL=1`.
pub async fn fresh_postgres() -> Option<String> {
    let base = test_postgres_base();
    if base == "off" {
        return None;
    }
    match create_schema(&base).await {
        Ok(url) => Some(url),
        Err(e) => {
            let what = format!(
                "PostgreSQL at {} ({e}); start it (pg_ctlcluster ... main start) or set \
                 CERTBOUND_TEST_POSTGRES_URL",
                crate::redact_url(&base)
            );
            if std::env::var("CERTBOUND_REQUIRE_ALL").as_deref() == Ok("1") {
                panic!("{what} is required (CERTBOUND_REQUIRE_ALL=1) but unreachable");
            }
            eprintln!("\n*** SKIPPED: the PostgreSQL run of this test: {what} ***\n");
            None
        }
    }
}

/// Drops the test schemas of test processes that are gone (their name holds
/// the process id), once per process, so that the test database does not
/// grow run after run.
async fn drop_schemas_of_finished_runs(conn: &mut sqlx::PgConnection) -> Result<(), sqlx::Error> {
    static DONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if DONE.swap(true, Ordering::Relaxed) {
        return Ok(());
    }
    let schemas: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'cb\\_test\\_%'",
    )
    .fetch_all(&mut *conn)
    .await?;
    for schema in schemas {
        let pid = schema.split('_').nth(2).and_then(|p| p.parse::<u32>().ok());
        let alive = pid.is_none_or(|p| Path::new(&format!("/proc/{p}")).exists());
        if !alive {
            // Another test process may be dropping it too: ignore failures.
            let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                .execute(&mut *conn)
                .await;
        }
    }
    Ok(())
}

/// Creates a new schema on the server at `base`; returns `base` with its
/// `search_path` set to it.
async fn create_schema(base: &str) -> Result<String, sqlx::Error> {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let schema = format!(
        "cb_test_{}_{}_{:08x}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
    );
    let mut conn = sqlx::PgConnection::connect(base).await?;
    drop_schemas_of_finished_runs(&mut conn).await?;
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    let sep = if base.contains('?') { '&' } else { '?' };
    Ok(format!("{base}{sep}options=-c%20search_path%3D{schema}"))
}

impl Store {
    /// One text value from a query such as `SHOW ssl` (tests read server
    /// settings with it).
    ///
    /// # Errors
    /// [`crate::StoreError::Db`].
    pub async fn setting_sql(&self, sql: &str) -> Result<String, crate::StoreError> {
        Ok(sqlx::query_scalar(sql).fetch_one(&self.pool).await?)
    }

    /// Runs one SQL statement; returns the rows it changed (tests make a row
    /// look like one an older version wrote, for example).
    ///
    /// # Errors
    /// [`crate::StoreError::Db`].
    pub async fn execute_sql(&self, sql: &str) -> Result<u64, crate::StoreError> {
        Ok(sqlx::query(sql).execute(&self.pool).await?.rows_affected())
    }

    /// Registers `n` synthetic devices `syn-<i>`, each with one active
    /// certificate of `der_len` bytes and the group `group`, in one write
    /// transaction, straight in SQL (no CA work): for benchmarks of the
    /// registry's size (`certbound-snapshot-size`).
    ///
    /// # Errors
    /// [`crate::StoreError::Db`].
    pub async fn bulk_insert_synthetic_devices(
        &self,
        n: u64,
        group: &str,
        der_len: usize,
    ) -> Result<(), crate::StoreError> {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        let der_len = i64::try_from(der_len).unwrap_or(0);
        let (seq, thumb, der) = match self.backend {
            Backend::Sqlite => (
                "WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < $1) ",
                "printf('%064x', i)",
                "randomblob($3)",
            ),
            Backend::Postgres => (
                "",
                "lpad(to_hex(i), 64, '0')",
                "decode(repeat('ab', CAST($3 AS INTEGER)), 'hex')",
            ),
        };
        let from = match self.backend {
            Backend::Sqlite => "FROM seq",
            Backend::Postgres => "FROM generate_series(1, $1) AS s(i)",
        };
        let mut tx = self.begin_write().await?;
        sqlx::query(&format!(
            "{seq}INSERT INTO devices (id, status, created_at, updated_at) \
             SELECT 'syn-' || i, 'active', $2, $2 {from}"
        ))
        .bind(n)
        .bind(1_i64)
        .execute(&mut *tx)
        .await?;
        sqlx::query(&format!(
            "{seq}INSERT INTO device_groups (device_id, group_name) SELECT 'syn-' || i, $2 {from}"
        ))
        .bind(n)
        .bind(group)
        .execute(&mut *tx)
        .await?;
        sqlx::query(&format!(
            "{seq}INSERT INTO certificates (serial, device_id, thumbprint, not_before, not_after, der, status, created_at) \
             SELECT 'syn' || i, 'syn-' || i, {thumb}, 1, 4000000000, {der}, 'active', $2 {from}"
        ))
        .bind(n)
        .bind(1_i64)
        .bind(der_len)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// A certificate record for tests that need many devices fast: `n` makes
/// the serial and thumbprint unique; the DER is a few placeholder bytes
/// (no public key is derived from it).
pub fn fake_cert(device_id: &str, n: u64, not_before: u64, not_after: u64) -> crate::CertRecord {
    crate::CertRecord {
        serial: format!("{n:016x}"),
        device_id: device_id.to_string(),
        thumbprint: format!("{n:064x}"),
        not_before,
        not_after,
        status: "active".into(),
        der: vec![0x30, 0x00],
    }
}

/// Registers `count` devices `<prefix><number, 6 digits>` (numbers from
/// `first`), each with one certificate valid from `not_before` to
/// `not_after`, in `groups`, in batches of 10 000 per transaction
/// ([`crate::Store::create_devices_bulk`]): 100 000 take seconds on SQLite.
///
/// # Errors
/// Store errors (a device already registered: [`crate::StoreError::Conflict`]).
pub async fn bulk_devices(
    store: &crate::Store,
    prefix: &str,
    first: u64,
    count: u64,
    groups: &[String],
    not_before: u64,
    not_after: u64,
) -> Result<(), crate::StoreError> {
    let mut n = first;
    let end = first + count;
    while n < end {
        let upto = (n + 10_000).min(end);
        let certs: Vec<crate::CertRecord> = (n..upto)
            .map(|i| fake_cert(&format!("{prefix}{i:06}"), i, not_before, not_after))
            .collect();
        store
            .create_devices_bulk(&certs, groups, "test", not_before)
            .await?;
        n = upto;
    }
    Ok(())
}
