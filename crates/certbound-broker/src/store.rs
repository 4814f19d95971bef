//! The registry: APIs, groups, grants, devices, certificates and the audit
//! log, in SQLite (WAL) through sqlx with embedded migrations.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use crate::error::BrokerError;

/// The embedded schema migrations (`migrations/`).
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

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
    type Err = BrokerError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "active" => Ok(DeviceStatus::Active),
            "suspended" => Ok(DeviceStatus::Suspended),
            "revoked" => Ok(DeviceStatus::Revoked),
            other => Err(BrokerError::Invalid(format!(
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

/// A grant of a group.
#[derive(Debug, Clone, Serialize)]
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
    /// Scopes granted to the device for that API (union over its groups, with
    /// `{device}` placeholders); `None`: no grant.
    pub granted: Option<Vec<String>>,
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

/// Handle to the database (cheap to clone).
///
/// Write transactions start with `BEGIN IMMEDIATE`: a deferred transaction
/// that reads and then writes fails at once with SQLITE_BUSY (no busy
/// timeout applies) when another connection — the running broker's audit
/// writer, a CLI command — committed in between.
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
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
    /// Opens (creating if needed) the SQLite database and applies migrations.
    ///
    /// Every connection runs with `synchronous=FULL`: in WAL mode each commit
    /// syncs the WAL before it returns, so a committed revocation or issued
    /// token record survives a power loss (with `NORMAL` the last commits
    /// before the loss could roll back). Writes are batched (audit, token
    /// records) or operator-driven, so this costs one fsync per batch; see
    /// docs/operations.md for the measured cost.
    pub async fn open(path: &Path) -> Result<Self, BrokerError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool })
    }

    /// Closes the pool (flushes WAL).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    // === APIs ===

    /// Registers an API.
    pub async fn create_api(&self, api: &Api, now: u64) -> Result<(), BrokerError> {
        if self.get_api(&api.id).await?.is_some() {
            return Err(BrokerError::Conflict {
                kind: "API",
                name: api.id.clone(),
            });
        }
        sqlx::query(
            "INSERT INTO apis (id, format, ttl_secs, scopes, created_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&api.id)
        .bind(&api.format)
        .bind(to_i64(api.ttl_secs))
        .bind(api.scopes.join(" "))
        .bind(to_i64(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Looks an API up.
    pub async fn get_api(&self, id: &str) -> Result<Option<Api>, BrokerError> {
        let row = sqlx::query("SELECT id, format, ttl_secs, scopes FROM apis WHERE id = ?")
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
    pub async fn list_apis(&self) -> Result<Vec<Api>, BrokerError> {
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
    ) -> Result<(), BrokerError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let exists = sqlx::query("SELECT 1 FROM groups WHERE name = ?")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_some() {
            return Err(BrokerError::Conflict {
                kind: "group",
                name: name.into(),
            });
        }
        sqlx::query("INSERT INTO groups (name, created_at) VALUES (?, ?)")
            .bind(name)
            .bind(to_i64(now))
            .execute(&mut *tx)
            .await?;
        for g in grants {
            sqlx::query("INSERT INTO grants (group_name, api_id, scopes) VALUES (?, ?, ?)")
                .bind(name)
                .bind(&g.api_id)
                .bind(g.scopes.join(" "))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// True when the group exists.
    pub async fn group_exists(&self, name: &str) -> Result<bool, BrokerError> {
        Ok(sqlx::query("SELECT 1 FROM groups WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .is_some())
    }

    /// Groups with their grants.
    pub async fn list_groups(&self) -> Result<Vec<(String, Vec<Grant>)>, BrokerError> {
        let names: Vec<String> = sqlx::query_scalar("SELECT name FROM groups ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::new();
        for name in names {
            let rows = sqlx::query(
                "SELECT api_id, scopes FROM grants WHERE group_name = ? ORDER BY api_id",
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
    ) -> Result<(), BrokerError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        insert_device(&mut tx, id, groups, cert, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Looks a device up.
    pub async fn get_device(&self, id: &str) -> Result<Option<Device>, BrokerError> {
        let Some(row) =
            sqlx::query("SELECT id, status, created_at, updated_at FROM devices WHERE id = ?")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
        else {
            return Ok(None);
        };
        let groups: Vec<String> = sqlx::query_scalar(
            "SELECT group_name FROM device_groups WHERE device_id = ? ORDER BY group_name",
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
    pub async fn list_devices(&self) -> Result<Vec<Device>, BrokerError> {
        let rows = sqlx::query(
            "SELECT d.id, d.status, d.created_at, d.updated_at, \
             COALESCE((SELECT group_concat(group_name, ' ') FROM device_groups WHERE device_id = d.id), '') AS groups \
             FROM devices d ORDER BY d.id",
        )
        .fetch_all(&self.pool)
        .await?;
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
    pub async fn inactive_devices(&self) -> Result<Vec<String>, BrokerError> {
        Ok(
            sqlx::query_scalar("SELECT id FROM devices WHERE status != 'active'")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Changes a device's status. Revoked is final: a revoked device can be
    /// neither suspended nor resumed ([`BrokerError::Revoked`]; revoking it
    /// again changes nothing). Revoking also revokes, in the same
    /// transaction, its certificates and every token recorded for it (a
    /// token's status comes from its own record from then on).
    pub async fn set_device_status(
        &self,
        id: &str,
        status: DeviceStatus,
        now: u64,
    ) -> Result<(), BrokerError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let current: Option<String> = sqlx::query_scalar("SELECT status FROM devices WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(current) = current else {
            return Err(BrokerError::NotFound {
                kind: "device",
                name: id.into(),
                hint: "; see `certbound device list`".into(),
            });
        };
        if current == DeviceStatus::Revoked.as_str() {
            if status == DeviceStatus::Revoked {
                return Ok(());
            }
            return Err(BrokerError::Revoked {
                kind: "device",
                name: id.into(),
            });
        }
        sqlx::query("UPDATE devices SET status = ?, updated_at = ? WHERE id = ?")
            .bind(status.as_str())
            .bind(to_i64(now))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if status == DeviceStatus::Revoked {
            sqlx::query("UPDATE certificates SET status = 'revoked', revoked_at = ? WHERE device_id = ? AND status = 'active'")
                .bind(to_i64(now))
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "UPDATE issued_tokens SET revoked_at = ? WHERE kind = 'device' AND subject = ? AND revoked_at IS NULL",
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
    pub async fn device_certificates(&self, id: &str) -> Result<Vec<CertRecord>, BrokerError> {
        let rows = sqlx::query(
            "SELECT serial, device_id, thumbprint, not_before, not_after, status, der FROM certificates \
             WHERE device_id = ? ORDER BY created_at DESC, not_after DESC",
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
    ) -> Result<Option<TokenView>, BrokerError> {
        let row = sqlx::query(
            "SELECT c.der, c.serial, c.status AS cert_status, d.id AS device_id, d.status AS device_status, \
             (SELECT ttl_secs FROM apis WHERE id = ?2) AS api_ttl, \
             (SELECT group_concat(g.scopes, ' ') FROM grants g JOIN device_groups dg ON dg.group_name = g.group_name \
              WHERE dg.device_id = d.id AND g.api_id = ?2) AS granted \
             FROM certificates c JOIN devices d ON d.id = c.device_id WHERE c.thumbprint = ?1",
        )
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
        }))
    }
}

/// Inserts a new device, its groups and its first certificate inside `tx`;
/// [`BrokerError::Conflict`] when the id exists.
pub(crate) async fn insert_device(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    id: &str,
    groups: &[String],
    cert: &CertRecord,
    now: u64,
) -> Result<(), BrokerError> {
    let exists = sqlx::query("SELECT 1 FROM devices WHERE id = ?")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    if exists.is_some() {
        return Err(BrokerError::Conflict {
            kind: "device",
            name: id.into(),
        });
    }
    sqlx::query(
        "INSERT INTO devices (id, status, created_at, updated_at) VALUES (?, 'active', ?, ?)",
    )
    .bind(id)
    .bind(to_i64(now))
    .bind(to_i64(now))
    .execute(&mut **tx)
    .await?;
    for g in groups {
        sqlx::query("INSERT INTO device_groups (device_id, group_name) VALUES (?, ?)")
            .bind(id)
            .bind(g)
            .execute(&mut **tx)
            .await?;
    }
    sqlx::query(
        "INSERT INTO certificates (serial, device_id, thumbprint, not_before, not_after, der, status, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, 'active', ?)",
    )
    .bind(&cert.serial)
    .bind(id)
    .bind(&cert.thumbprint)
    .bind(to_i64(cert.not_before))
    .bind(to_i64(cert.not_after))
    .bind(&cert.der)
    .bind(to_i64(now))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn cert_from_row(r: sqlx::sqlite::SqliteRow) -> CertRecord {
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

mod audit;
mod bulk;
mod certs;
mod claims;
mod clients;
#[cfg(test)]
mod durability_tests;
mod groups;
mod issued;
mod policy;
mod prune;
mod services;
pub use bulk::RegisteredCert;
pub use certs::RevokedCert;
pub use claims::{Claim, glob_match};
pub(crate) use clients::{
    CREDENTIAL_COLUMNS, credential_holder, credential_taken, insert_client, revoke_client_row,
};
pub use clients::{Client, ClientAuthMethod, NewClient};
pub use groups::GroupDeletion;
pub use issued::{IssuedToken, KeySchedule, TokenHolder, TokenState};
pub use prune::{DEFAULT_BATCH, PrunePolicy, PruneReport};
pub use services::ServiceCert;
