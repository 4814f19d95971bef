//! # certbound-store
//!
//! The registry database of certbound: APIs, groups, grants, devices,
//! certificates, clients, claims, issued-token records, status lists, the
//! signing-key ring and the audit log, through sqlx with embedded
//! migrations. Every SQL statement of certbound lives in this crate.
//!
//! Most operations are methods of [`Store`], one transaction each. What
//! must run inside a caller's transaction takes the connection instead:
//! [`insert_client`] and friends, and the [`policy`] module, whose
//! functions read and write APIs, groups, clients and audit events for
//! `certbound policy export|plan|apply` (one transaction per apply).

use std::path::Path;
use std::str::FromStr;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use sqlx::any::AnyPoolOptions;
use sqlx::{Any, AnyPool, Executor as _, Row, Transaction};

pub mod error;
pub use error::StoreError;

/// The embedded schema migrations of each backend (`migrations/sqlite`,
/// `migrations/postgres`: the same versions, each in its own dialect).
static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Every write transaction on PostgreSQL takes this transaction-scoped
/// advisory lock first, so that writers are serialised as SQLite's `BEGIN
/// IMMEDIATE` serialises them (the store's read-then-write checks rely on it).
const PG_WRITE_LOCK: i64 = 0x6365_7274_626e_6431; // "certbnd1"

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite (WAL, `synchronous=FULL`): the embedded default, one data directory.
    Sqlite,
    /// PostgreSQL: several instances share one registry.
    Postgres,
}

impl Backend {
    /// `sqlite` or `postgres`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// The backend a store URL names: `sqlite:...`, or `postgres://` /
    /// `postgresql://`.
    ///
    /// # Errors
    /// [`StoreError::Url`] for anything else.
    pub fn of_url(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(StoreError::Url(redact_url(url)))
        }
    }
}

/// `url` without its password (for messages and logs).
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// The `sqlite://` URL of a database file (created when missing).
pub fn sqlite_url(path: &Path) -> String {
    let mut out = String::from("sqlite://");
    for c in path.to_string_lossy().chars() {
        match c {
            '%' => out.push_str("%25"),
            '?' => out.push_str("%3F"),
            '#' => out.push_str("%23"),
            c => out.push(c),
        }
    }
    out.push_str("?mode=rwc");
    out
}

/// Device status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceStatus {
    /// May get tokens.
    Active,
    /// Temporarily refused.
    Suspended,
    /// Permanently refused.
    Revoked,
}

impl DeviceStatus {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceStatus::Active => "active",
            DeviceStatus::Suspended => "suspended",
            DeviceStatus::Revoked => "revoked",
        }
    }
}

impl FromStr for DeviceStatus {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "active" => Ok(DeviceStatus::Active),
            "suspended" => Ok(DeviceStatus::Suspended),
            "revoked" => Ok(DeviceStatus::Revoked),
            other => Err(StoreError::Invalid(format!(
                "unknown device status {other:?}"
            ))),
        }
    }
}

/// An API (resource server).
#[derive(Debug, Clone, Serialize)]
pub struct Api {
    /// Identifier (the `aud`).
    pub id: String,
    /// Token format (`cwt`).
    pub format: String,
    /// Token lifetime, seconds.
    pub ttl_secs: u64,
    /// Permissions.
    pub scopes: Vec<String>,
}

/// A grant of a group, client or role.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Grant {
    /// The API.
    pub api_id: String,
    /// Granted scopes (may contain `{device}`).
    pub scopes: Vec<String>,
}

/// A device.
#[derive(Debug, Clone, Serialize)]
pub struct Device {
    /// Device id.
    pub id: String,
    /// Status.
    pub status: DeviceStatus,
    /// Groups.
    pub groups: Vec<String>,
    /// Creation time, Unix seconds.
    pub created_at: u64,
    /// Last status change, Unix seconds.
    pub updated_at: u64,
}

/// A certificate record.
#[derive(Debug, Clone, Serialize)]
pub struct CertRecord {
    /// Serial, lowercase hex.
    pub serial: String,
    /// Owner.
    pub device_id: String,
    /// SHA-256 of the DER, lowercase hex.
    pub thumbprint: String,
    /// Validity start.
    pub not_before: u64,
    /// Validity end.
    pub not_after: u64,
    /// `active` or `revoked`.
    pub status: String,
    /// The certificate.
    #[serde(skip)]
    pub der: Vec<u8>,
}

impl CertRecord {
    /// The certificate's public key (SEC1 point), recorded with it so that
    /// the keys of revoked certificates are found by an index
    /// ([`Store::revoked_serial_with_key`]); `None` for a DER that does not
    /// parse (the check then parses the row).
    pub fn public_key(&self) -> Option<Vec<u8>> {
        certbound_pki::public_key_sec1(&self.der).ok()
    }

    /// The record of a certificate just issued to `device_id` (active).
    pub fn issued(device_id: &str, cert: &certbound_pki::IssuedCert) -> Self {
        Self {
            serial: cert.serial_hex.clone(),
            device_id: device_id.to_string(),
            thumbprint: hex::encode(cert.thumbprint),
            not_before: cert.not_before,
            not_after: cert.not_after,
            status: "active".into(),
            der: cert.der.clone(),
        }
    }
}

/// The registry facts behind one token decision (see [`Store::token_view`]).
#[derive(Debug, Clone)]
pub struct TokenView {
    /// The certificate DER.
    pub der: Vec<u8>,
    /// Its serial.
    pub serial: String,
    /// Certificate not revoked.
    pub cert_active: bool,
    /// The owning device.
    pub device_id: String,
    /// The device's status.
    pub device_status: DeviceStatus,
    /// Token lifetime of the requested API; `None`: no such API.
    pub api_ttl: Option<u64>,
    /// Scopes granted to the device for that API (union over its groups and
    /// their roles, with
    /// `{device}` placeholders); `None`: no grant.
    pub granted: Option<Vec<String>>,
    /// The device's effective attributes (its own, then its groups', see
    /// [`attributes::effective_attributes`]).
    pub attributes: attributes::Attributes,
    /// The custom claims the API declares (empty: none, or no such API).
    pub claims: Vec<attributes::ClaimDecl>,
}

/// One audit event.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEvent {
    /// Unix milliseconds.
    pub ts_ms: u64,
    /// Who.
    pub actor: String,
    /// What, e.g. `token.issued`.
    pub action: String,
    /// On what.
    pub subject: String,
    /// `ok` or an error code.
    pub outcome: String,
    /// Free text.
    pub detail: String,
}

/// Where a PostgreSQL store is, as `certbound doctor` judges it
/// ([`Store::postgres_target`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresTarget {
    /// The host of the URL.
    pub host: String,
    /// Loopback or a Unix socket: the connection does not cross a network.
    pub local: bool,
    /// The URL asks for `sslmode=verify-full`.
    pub verified: bool,
}

/// For a PostgreSQL URL: its host, whether that host is this machine
/// (loopback or a Unix socket), and whether the URL asks for the server's
/// certificate to be verified (`sslmode=verify-full`). `None` for anything
/// that is not a valid PostgreSQL URL.
pub fn postgres_target(url: &str) -> Option<PostgresTarget> {
    if Backend::of_url(url).ok()? != Backend::Postgres {
        return None;
    }
    let options: sqlx::postgres::PgConnectOptions = url.parse().ok()?;
    let host = options.get_host().to_owned();
    let local = options.get_socket().is_some()
        || host.starts_with('/')
        || host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    Some(PostgresTarget {
        host,
        local,
        verified: matches!(
            options.get_ssl_mode(),
            sqlx::postgres::PgSslMode::VerifyFull
        ),
    })
}

/// A write transaction from [`Store::begin_write`] or
/// [`Store::begin_log_write`]: the connection (through `Deref`), and a
/// commit that counts registry writes once they are visible.
#[derive(Debug)]
pub struct WriteTx {
    tx: Transaction<'static, Any>,
    writes: Option<Arc<AtomicU64>>,
    /// SQLite: this process's turn to write (see [`Store`]), held until the
    /// transaction ends. Declared after `tx`, so dropped after it.
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl WriteTx {
    /// Commits; a registry write then moves the store's write counter.
    pub async fn commit(self) -> Result<(), StoreError> {
        let WriteTx { tx, writes, _turn } = self;
        tx.commit().await?;
        if let Some(writes) = &writes {
            writes.fetch_add(1, Ordering::AcqRel);
        }
        drop(_turn);
        Ok(())
    }

    /// Rolls back (as dropping it does).
    pub async fn rollback(self) -> Result<(), StoreError> {
        let WriteTx { tx, _turn, .. } = self;
        tx.rollback().await?;
        drop(_turn);
        Ok(())
    }
}

impl std::ops::Deref for WriteTx {
    type Target = sqlx::AnyConnection;
    fn deref(&self) -> &sqlx::AnyConnection {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.tx
    }
}

/// SQLite's busy timeout on every connection (`PRAGMA busy_timeout = 10000` in `connect`).
const SQLITE_BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Handle to the database (cheap to clone).
///
/// Write transactions ([`Store::begin_write`]) are serialised: on SQLite they
/// start with `BEGIN IMMEDIATE` (a deferred transaction that reads and then
/// writes fails at once with SQLITE_BUSY, no busy timeout applies, when
/// another connection committed in between); on PostgreSQL they take one
/// transaction-scoped advisory lock. On SQLite, the writers of one process
/// also queue for their turn in memory first: SQLite makes a writer that
/// finds the database locked sleep and retry (its busy handler sleeps up to
/// 100 ms a time), which under load stalled the batch writers behind one
/// another for far longer than the writes themselves took.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Write transactions this process started through any clone of this
    /// store (see [`snapshot::Snapshot::refresh_if_written`]).
    writes: Arc<AtomicU64>,
    /// The URL it was opened with (for the change-feed listener).
    url: Arc<StoreUrl>,
    /// SQLite: whose turn it is to write, among this process's writers.
    turn: Arc<tokio::sync::Mutex<()>>,
}

/// A store URL that never shows its password ([`redact_url`]) when printed.
struct StoreUrl(String);

impl std::fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&redact_url(&self.0))
    }
}

fn split_scopes(s: &str) -> Vec<String> {
    s.split(' ')
        .filter(|x| !x.is_empty())
        .map(String::from)
        .collect()
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Store {
    /// Opens (creating if needed) the SQLite database at `path` and applies
    /// migrations.
    ///
    /// Every connection runs with `synchronous=FULL`: in WAL mode each commit
    /// syncs the WAL before it returns, so a committed revocation or issued
    /// token record survives a power loss (with `NORMAL` the last commits
    /// before the loss could roll back). Writes are batched (audit, token
    /// records) or operator-driven, so this costs one fsync per batch; see
    /// docs/operations.md for the measured cost.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        Self::connect(&sqlite_url(path)).await
    }

    /// Connects to the store at `url` (`sqlite://<path>?mode=rwc`, see
    /// [`sqlite_url`]; or `postgres://user@host:port/db`) and applies the
    /// migrations of that backend.
    ///
    /// # Errors
    /// [`StoreError::Url`] for an unsupported URL, [`StoreError::Db`] when the
    /// database cannot be reached, [`StoreError::Migrate`] when its schema
    /// cannot be brought up to date.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of_url(url)?;
        let pool = match backend {
            Backend::Sqlite => {
                AnyPoolOptions::new()
                    .max_connections(4)
                    // A local file does not go stale: no ping (one more
                    // hand-off to the connection's worker thread) per acquire.
                    .test_before_acquire(false)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute(
                                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                                 PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;",
                            )
                            .await?;
                            Ok(())
                        })
                    })
                    .connect(url)
                    .await?
            }
            Backend::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(8)
                    .connect(url)
                    .await?
            }
        };
        let store = Self {
            pool,
            backend,
            writes: Arc::default(),
            url: Arc::new(StoreUrl(url.to_string())),
            turn: Arc::default(),
        };
        match backend {
            // The embedded default upgrades itself when opened.
            Backend::Sqlite => store.migrate().await?,
            // Several instances share a PostgreSQL schema: upgrading it is
            // an operator's step (`certbound migrate`), never a side effect
            // of one instance starting.
            Backend::Postgres => {
                let pending = store.pending_migrations().await?;
                if !pending.is_empty() {
                    return Err(StoreError::SchemaBehind {
                        url: redact_url(url),
                        pending,
                    });
                }
            }
        }
        Ok(store)
    }

    /// Connects to the store at `url` and brings its schema up to date:
    /// `certbound init` and `certbound migrate`. Returns the migrations
    /// applied (`version description`).
    ///
    /// # Errors
    /// As [`Store::connect`].
    pub async fn connect_and_migrate(url: &str) -> Result<(Self, Vec<String>), StoreError> {
        let plain = Self::connect_plain(url).await?;
        let pending = plain.pending_migrations().await?;
        plain.migrate().await?;
        plain.close().await;
        Ok((Self::connect(url).await?, pending))
    }

    /// The migrations the store at `url` lacks (`version description`),
    /// without applying them: `certbound migrate --dry-run`.
    ///
    /// # Errors
    /// As [`Store::connect`].
    pub async fn migration_plan(url: &str) -> Result<Vec<String>, StoreError> {
        let plain = Self::connect_plain(url).await?;
        let pending = plain.pending_migrations().await;
        plain.close().await;
        pending
    }

    /// One connection, no migration, no pragmas.
    async fn connect_plain(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of_url(url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .connect(url)
            .await?;
        Ok(Self {
            pool,
            backend,
            writes: Arc::default(),
            url: Arc::new(StoreUrl(url.to_string())),
            turn: Arc::default(),
        })
    }

    fn migrator(&self) -> &'static sqlx::migrate::Migrator {
        match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATOR,
            Backend::Postgres => &POSTGRES_MIGRATOR,
        }
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        Ok(self.migrator().run(&self.pool).await?)
    }

    /// The migrations this build has that the database has not applied yet,
    /// as `version description`.
    pub async fn pending_migrations(&self) -> Result<Vec<String>, StoreError> {
        let exists: Option<String> = match self.backend {
            Backend::Sqlite => sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
            )
            .fetch_optional(&self.pool)
            .await?,
            Backend::Postgres => {
                sqlx::query_scalar("SELECT CAST(to_regclass('_sqlx_migrations') AS TEXT)")
                    .fetch_optional(&self.pool)
                    .await?
                    .flatten()
            }
        };
        let applied: Vec<i64> = if exists.is_some() {
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success = TRUE")
                .fetch_all(&self.pool)
                .await?
        } else {
            Vec::new()
        };
        Ok(self
            .migrator()
            .iter()
            .filter(|m| !applied.contains(&m.version))
            .map(|m| format!("{} {}", m.version, m.description))
            .collect())
    }

    /// How many registry write transactions this process committed on this
    /// store (plus registry writes made outside one).
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Acquire)
    }

    /// Whether this store's connections to PostgreSQL are encrypted (TLS,
    /// from `pg_stat_ssl`); `None` for SQLite (a local file). Request TLS
    /// with `sslmode=require` in the URL, and verification of the server
    /// with `sslmode=verify-full` (`sslrootcert=<CA file>` for a private CA).
    ///
    /// # Errors
    /// [`StoreError::Db`] when the store cannot be read.
    pub async fn tls_in_use(&self) -> Result<Option<bool>, StoreError> {
        match self.backend {
            Backend::Sqlite => Ok(None),
            Backend::Postgres => Ok(Some(
                sqlx::query_scalar::<_, bool>(
                    "SELECT COALESCE((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), FALSE)",
                )
                .fetch_one(&self.pool)
                .await?,
            )),
        }
    }

    /// For a PostgreSQL store, where it is ([`postgres_target`]); `None`
    /// for SQLite.
    pub fn postgres_target(&self) -> Option<PostgresTarget> {
        match self.backend {
            Backend::Postgres => postgres_target(&self.url.0),
            Backend::Sqlite => None,
        }
    }

    /// The database this store talks to.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A write transaction to the registry the snapshot mirrors (devices,
    /// certificates, groups, grants, APIs, clients), serialised with every
    /// other writer (see [`Store`]). Its commit moves the write counter, so
    /// this instance's snapshot refreshes before its next lookup; counting
    /// at the commit (not at the start) means a refresh that ran while the
    /// transaction was open cannot hide it.
    pub async fn begin_write(&self) -> Result<WriteTx, StoreError> {
        let (tx, turn) = self.begin_serialised().await?;
        Ok(WriteTx {
            tx,
            writes: Some(self.writes.clone()),
            _turn: turn,
        })
    }

    /// Counts a registry write made outside [`Store::begin_write`] (so this
    /// instance's snapshot refreshes before its next lookup).
    pub(crate) fn note_registry_write(&self) {
        self.writes.fetch_add(1, Ordering::AcqRel);
    }

    /// A write transaction to what the snapshot does not mirror (audit
    /// events, issued-token records, status-list blocks, the key ring,
    /// service settings), serialised like [`Store::begin_write`] but leaving
    /// the write counter alone: the token path's own records must not make
    /// every next lookup re-read the change feed.
    pub async fn begin_log_write(&self) -> Result<WriteTx, StoreError> {
        let (tx, turn) = self.begin_serialised().await?;
        Ok(WriteTx {
            tx,
            writes: None,
            _turn: turn,
        })
    }

    async fn begin_serialised(
        &self,
    ) -> Result<
        (
            Transaction<'static, Any>,
            Option<tokio::sync::OwnedMutexGuard<()>>,
        ),
        StoreError,
    > {
        match self.backend {
            Backend::Sqlite => {
                // As long as SQLite's own busy timeout at most; then it is
                // SQLite's lock alone, as without the queue.
                let turn =
                    tokio::time::timeout(SQLITE_BUSY_TIMEOUT, Arc::clone(&self.turn).lock_owned())
                        .await
                        .ok();
                Ok((self.pool.begin_with("BEGIN IMMEDIATE").await?, turn))
            }
            Backend::Postgres => {
                let mut tx = self.pool.begin().await?;
                sqlx::query("SELECT count(*) FROM (SELECT pg_advisory_xact_lock($1)) AS locked")
                    .bind(PG_WRITE_LOCK)
                    .execute(&mut *tx)
                    .await?;
                Ok((tx, None))
            }
        }
    }

    /// The SQL aggregate that joins text values with a separator:
    /// `group_concat` on SQLite, `string_agg` on PostgreSQL.
    fn string_agg(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "group_concat",
            Backend::Postgres => "string_agg",
        }
    }

    /// Closes the pool (flushes WAL).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    // === APIs ===

    /// Registers an API.
    pub async fn create_api(&self, api: &Api, now: u64) -> Result<(), StoreError> {
        if self.get_api(&api.id).await?.is_some() {
            return Err(StoreError::Conflict {
                kind: "API",
                name: api.id.clone(),
            });
        }
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO apis (id, format, ttl_secs, scopes, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&api.id)
        .bind(&api.format)
        .bind(to_i64(api.ttl_secs))
        .bind(api.scopes.join(" "))
        .bind(to_i64(now))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Looks an API up.
    pub async fn get_api(&self, id: &str) -> Result<Option<Api>, StoreError> {
        let row = sqlx::query("SELECT id, format, ttl_secs, scopes FROM apis WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| Api {
            id: r.get("id"),
            format: r.get("format"),
            ttl_secs: to_u64(r.get("ttl_secs")),
            scopes: split_scopes(r.get("scopes")),
        }))
    }

    /// All APIs.
    pub async fn list_apis(&self) -> Result<Vec<Api>, StoreError> {
        let rows = sqlx::query("SELECT id, format, ttl_secs, scopes FROM apis ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| Api {
                id: r.get("id"),
                format: r.get("format"),
                ttl_secs: to_u64(r.get("ttl_secs")),
                scopes: split_scopes(r.get("scopes")),
            })
            .collect())
    }

    // === groups ===

    /// Creates a group with its grants.
    pub async fn create_group(
        &self,
        name: &str,
        grants: &[Grant],
        now: u64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let exists = sqlx::query("SELECT 1 FROM groups WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_some() {
            return Err(StoreError::Conflict {
                kind: "group",
                name: name.into(),
            });
        }
        sqlx::query("INSERT INTO groups (name, created_at) VALUES ($1, $2)")
            .bind(name)
            .bind(to_i64(now))
            .execute(&mut *tx)
            .await?;
        groups::insert_grants(&mut tx, name, grants).await?;
        tx.commit().await?;
        Ok(())
    }

    /// True when the group exists.
    pub async fn group_exists(&self, name: &str) -> Result<bool, StoreError> {
        Ok(sqlx::query("SELECT 1 FROM groups WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .is_some())
    }

    /// Groups with their grants.
    pub async fn list_groups(&self) -> Result<Vec<(String, Vec<Grant>)>, StoreError> {
        let names: Vec<String> = sqlx::query_scalar("SELECT name FROM groups ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::new();
        for name in names {
            let rows = sqlx::query(
                "SELECT api_id, scopes FROM grants WHERE group_name = $1 ORDER BY api_id",
            )
            .bind(&name)
            .fetch_all(&self.pool)
            .await?;
            let grants = rows
                .into_iter()
                .map(|r| Grant {
                    api_id: r.get("api_id"),
                    scopes: split_scopes(r.get("scopes")),
                })
                .collect();
            out.push((name, grants));
        }
        Ok(out)
    }

    // === devices and certificates ===

    /// Registers a device with its first certificate, atomically.
    pub async fn create_device(
        &self,
        id: &str,
        groups: &[String],
        cert: &CertRecord,
        now: u64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        insert_device(&mut tx, id, groups, cert, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Looks a device up.
    pub async fn get_device(&self, id: &str) -> Result<Option<Device>, StoreError> {
        let Some(row) =
            sqlx::query("SELECT id, status, created_at, updated_at FROM devices WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
        else {
            return Ok(None);
        };
        let groups: Vec<String> = sqlx::query_scalar(
            "SELECT group_name FROM device_groups WHERE device_id = $1 ORDER BY group_name",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(Some(Device {
            id: row.get("id"),
            status: row.get::<String, _>("status").parse()?,
            groups,
            created_at: to_u64(row.get("created_at")),
            updated_at: to_u64(row.get("updated_at")),
        }))
    }

    /// All devices, ordered by id.
    pub async fn list_devices(&self) -> Result<Vec<Device>, StoreError> {
        let sql = format!(
            "SELECT d.id, d.status, d.created_at, d.updated_at, \
             COALESCE((SELECT {}(group_name, ' ') FROM device_groups WHERE device_id = d.id), '') AS groups \
             FROM devices d ORDER BY d.id",
            self.string_agg()
        );
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.into_iter()
            .map(|r| {
                Ok(Device {
                    id: r.get("id"),
                    status: r.get::<String, _>("status").parse()?,
                    groups: split_scopes(r.get("groups")),
                    created_at: to_u64(r.get("created_at")),
                    updated_at: to_u64(r.get("updated_at")),
                })
            })
            .collect()
    }

    /// Ids of every device that is not active (suspended or revoked).
    pub async fn inactive_devices(&self) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT id FROM devices WHERE status != 'active'")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Changes a device's status. Revoked is final: a revoked device can be
    /// neither suspended nor resumed ([`StoreError::Revoked`]; revoking it
    /// again changes nothing). Revoking also revokes, in the same
    /// transaction, its certificates and every token recorded for it (a
    /// token's status comes from its own record from then on).
    pub async fn set_device_status(
        &self,
        id: &str,
        status: DeviceStatus,
        now: u64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let current: Option<String> =
            sqlx::query_scalar("SELECT status FROM devices WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(current) = current else {
            return Err(StoreError::NotFound {
                kind: "device",
                name: id.into(),
                hint: "; see `certbound device list`".into(),
            });
        };
        if current == DeviceStatus::Revoked.as_str() {
            if status == DeviceStatus::Revoked {
                return Ok(());
            }
            return Err(StoreError::Revoked {
                kind: "device",
                name: id.into(),
            });
        }
        sqlx::query("UPDATE devices SET status = $1, updated_at = $2 WHERE id = $3")
            .bind(status.as_str())
            .bind(to_i64(now))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if status == DeviceStatus::Revoked {
            sqlx::query("UPDATE certificates SET status = 'revoked', revoked_at = $1 WHERE device_id = $2 AND status = 'active'")
                .bind(to_i64(now))
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "UPDATE issued_tokens SET revoked_at = $1 WHERE kind = 'device' AND subject = $2 AND revoked_at IS NULL",
            )
            .bind(to_i64(now))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Certificates of a device, newest first.
    pub async fn device_certificates(&self, id: &str) -> Result<Vec<CertRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT serial, device_id, thumbprint, not_before, not_after, status, der FROM certificates \
             WHERE device_id = $1 ORDER BY created_at DESC, not_after DESC",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(cert_from_row).collect())
    }

    /// Everything the token endpoint needs about one certificate and one
    /// audience, in ONE query (the hot path: each sqlx query costs ~140 µs,
    /// more than the ECDSA verification it guards). `None` when no
    /// registered certificate has this thumbprint.
    pub async fn token_view(
        &self,
        thumbprint_hex: &str,
        audience: &str,
    ) -> Result<Option<TokenView>, StoreError> {
        let sql = format!(
            "SELECT c.der, c.serial, c.status AS cert_status, d.id AS device_id, d.status AS device_status, \
             (SELECT ttl_secs FROM apis WHERE id = $2) AS api_ttl, \
             (SELECT {agg}(x.scopes, ' ') FROM \
              (SELECT g.scopes FROM grants g JOIN device_groups dg ON dg.group_name = g.group_name \
               WHERE dg.device_id = d.id AND g.api_id = $2 \
               UNION ALL SELECT rg.scopes FROM role_grants rg \
               JOIN group_roles gr ON gr.role_name = rg.role_name \
               JOIN device_groups dg ON dg.group_name = gr.group_name \
               WHERE dg.device_id = d.id AND rg.api_id = $2) x) AS granted, \
             d.attributes AS device_attributes, (SELECT claims FROM apis WHERE id = $2) AS api_claims, \
             (SELECT {agg}(gr.name || ' ' || gr.attributes, '\n') FROM groups gr \
              JOIN device_groups dga ON dga.group_name = gr.name \
              WHERE dga.device_id = d.id AND gr.attributes <> '{{}}') AS group_attributes \
             FROM certificates c JOIN devices d ON d.id = c.device_id WHERE c.thumbprint = $1",
            agg = self.string_agg()
        );
        let row = sqlx::query(&sql)
            .bind(thumbprint_hex)
            .bind(audience)
            .fetch_optional(&self.pool)
            .await?;
        let Some(r) = row else { return Ok(None) };
        let granted: Option<String> = r.get("granted");
        let mut scopes: Vec<String> = Vec::new();
        for s in granted.as_deref().map(split_scopes).unwrap_or_default() {
            if !scopes.contains(&s) {
                scopes.push(s);
            }
        }
        Ok(Some(TokenView {
            der: r.get("der"),
            serial: r.get("serial"),
            cert_active: r.get::<String, _>("cert_status") == "active",
            device_id: r.get("device_id"),
            device_status: r.get::<String, _>("device_status").parse()?,
            api_ttl: r.get::<Option<i64>, _>("api_ttl").map(to_u64),
            granted: granted.map(|_| scopes),
            attributes: token_view_attributes(&r)?,
            claims: match r.get::<Option<String>, _>("api_claims") {
                Some(text) => attributes::claims_from_json(&text)?,
                None => Vec::new(),
            },
        }))
    }
}

/// The effective attributes of [`Store::token_view`]'s row: the device's
/// own, and its groups' (`name attributes` lines; group names hold no
/// spaces, compact JSON no newlines).
fn token_view_attributes(r: &sqlx::any::AnyRow) -> Result<attributes::Attributes, StoreError> {
    let own = attributes::Attributes::from_json(&r.get::<String, _>("device_attributes"))?;
    let Some(groups) = r.get::<Option<String>, _>("group_attributes") else {
        return Ok(own);
    };
    let mut parsed = Vec::new();
    for line in groups.lines() {
        if let Some((name, json)) = line.split_once(' ') {
            parsed.push((name.to_string(), attributes::Attributes::from_json(json)?));
        }
    }
    let refs: Vec<(&str, &attributes::Attributes)> =
        parsed.iter().map(|(n, a)| (n.as_str(), a)).collect();
    Ok(attributes::effective_attributes(&own, &refs))
}

/// Inserts a new device, its groups and its first certificate inside `tx`;
/// [`StoreError::Conflict`] when the id exists.
pub(crate) async fn insert_device(
    tx: &mut sqlx::AnyConnection,
    id: &str,
    groups: &[String],
    cert: &CertRecord,
    now: u64,
) -> Result<(), StoreError> {
    let exists = sqlx::query("SELECT 1 FROM devices WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
    if exists.is_some() {
        return Err(StoreError::Conflict {
            kind: "device",
            name: id.into(),
        });
    }
    sqlx::query(
        "INSERT INTO devices (id, status, created_at, updated_at) VALUES ($1, 'active', $2, $3)",
    )
    .bind(id)
    .bind(to_i64(now))
    .bind(to_i64(now))
    .execute(&mut *tx)
    .await?;
    for g in groups {
        sqlx::query("INSERT INTO device_groups (device_id, group_name) VALUES ($1, $2)")
            .bind(id)
            .bind(g)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query(
        "INSERT INTO certificates (serial, device_id, thumbprint, not_before, not_after, der, status, created_at, public_key) \
         VALUES ($1, $2, $3, $4, $5, $6, 'active', $7, $8)",
    )
    .bind(&cert.serial)
    .bind(id)
    .bind(&cert.thumbprint)
    .bind(to_i64(cert.not_before))
    .bind(to_i64(cert.not_after))
    .bind(&cert.der)
    .bind(to_i64(now))
    .bind(cert.public_key())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

fn cert_from_row(r: sqlx::any::AnyRow) -> CertRecord {
    CertRecord {
        serial: r.get("serial"),
        device_id: r.get("device_id"),
        thumbprint: r.get("thumbprint"),
        not_before: to_u64(r.get("not_before")),
        not_after: to_u64(r.get("not_after")),
        status: r.get("status"),
        der: r.get("der"),
    }
}

mod api_keys;
mod attribute_store;
pub mod attributes;
mod audit;
pub mod audit_fields;
mod batch_insert;
mod bulk;
mod certs;
mod claims;
mod client_assertions;
mod clients;
mod console;
mod console_data;
#[cfg(test)]
mod console_tests;
#[cfg(test)]
mod durability_tests;
mod groups;
mod instances;
mod issued;
pub mod policy;
mod prune;
pub mod registration;
mod roles;
mod services;
pub mod signing_algs;
pub mod snapshot;
pub mod testing;
pub use api_keys::{
    API_KEY_SUBJECT_PREFIX, ApiKey, NewApiKey, api_key_name_of, api_key_subject, insert_api_key,
    read_api_keys, replace_api_key_grants, revoke_api_key_row, set_api_key_expiry,
};
pub use attribute_store::{AttrChange, AttrHolder};
pub use bulk::RegisteredCert;
pub use certs::RevokedCert;
pub use claims::{Claim, glob_match};
pub use clients::{
    CREDENTIAL_COLUMNS, credential_holder, credential_taken, insert_client, revoke_client_row,
};
pub use clients::{Client, ClientAuthMethod, NewClient};
pub use console::{InstanceHeartbeat, LoginTokenRefusal, UiSession};
pub use console_data::{
    AuditFilter, DevicePage, DeviceQuery, DeviceRow, MinuteCounts, RenewalHealth, StatusCounts,
    detail_transport,
};
pub use groups::GroupDeletion;
pub use instances::{ExternalCa, PublishedCa, SETTING_ISSUER_ID, SETTING_ROOT_CA};
pub use issued::{
    DEFAULT_SIGNING_ALG, IssuedToken, KeySchedule, ORPHANED_KEY_SECS, TokenHolder, TokenState,
};
pub use prune::{DEFAULT_BATCH, EXPIRED_KEPT_SECS, MAX_BLOCK_AGE_SECS, PrunePolicy, PruneReport};
pub use roles::{Role, RoleHolder, merge_grants};
pub use services::ServiceCert;
