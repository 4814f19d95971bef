//! Bulk device registration in the [`Store`]: a whole batch of devices in one
//! write transaction with one statement per table (the rows travel as one
//! JSON array and are expanded by SQLite's `json_each` or PostgreSQL's
//! `json_array_elements`), so the cost per device is a few microseconds
//! instead of one round trip per row.

use std::collections::HashMap;

use serde::Serialize;
use sqlx::Row;

use super::{Backend, CertRecord, Store, to_i64, to_u64};
use crate::error::StoreError;

/// A certificate already registered for a device (see [`Store::registered_certs`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredCert {
    /// Serial, lowercase hex.
    pub serial: String,
    /// SHA-256 of the DER, lowercase hex.
    pub thumbprint: String,
    /// Validity end, Unix seconds.
    pub not_after: u64,
}

/// One row of the JSON array handed to SQLite.
#[derive(Serialize)]
struct BulkRow<'a> {
    id: &'a str,
    serial: &'a str,
    thumbprint: &'a str,
    not_before: i64,
    not_after: i64,
    der: String,
    /// SEC1 public key, hex (absent when the DER does not parse).
    public_key: Option<String>,
    detail: String,
}

/// Most ids per lookup statement (keeps each JSON parameter small).
const LOOKUP_CHUNK: usize = 5000;

impl Store {
    /// A table named `alias` with one row `(value)` per element of the JSON
    /// array of strings in parameter `param`.
    fn json_texts(&self, param: &str, alias: &str) -> String {
        match self.backend {
            Backend::Sqlite => format!("json_each({param}) AS {alias}"),
            Backend::Postgres => {
                format!("json_array_elements_text(CAST({param} AS JSON)) AS {alias}(value)")
            }
        }
    }

    /// A table named `alias` with one row `(key, value)` per element of the
    /// JSON array of objects in parameter `param` (`key`: its position).
    fn json_rows(&self, param: &str, alias: &str) -> String {
        match self.backend {
            Backend::Sqlite => format!("json_each({param}) AS {alias}"),
            Backend::Postgres => format!(
                "json_array_elements(CAST({param} AS JSON)) WITH ORDINALITY AS {alias}(value, key)"
            ),
        }
    }

    /// Which of `ids` are registered devices, with their certificates (a device
    /// without certificates maps to an empty list). Ids that are not
    /// registered are absent from the map.
    pub async fn registered_certs(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, Vec<RegisteredCert>>, StoreError> {
        let mut out: HashMap<String, Vec<RegisteredCert>> = HashMap::new();
        for chunk in ids.chunks(LOOKUP_CHUNK) {
            let json = serde_json::to_string(chunk)
                .map_err(|e| StoreError::Invalid(format!("device ids: {e}")))?;
            let ids = self.json_texts("$1", "ids");
            let sql = format!(
                "SELECT d.id, c.serial, c.thumbprint, c.not_after FROM devices d \
                 LEFT JOIN certificates c ON c.device_id = d.id \
                 WHERE d.id IN (SELECT value FROM {ids})"
            );
            let rows = sqlx::query(&sql).bind(json).fetch_all(&self.pool).await?;
            for r in rows {
                let certs = out.entry(r.get("id")).or_default();
                let serial: Option<String> = r.get("serial");
                if let Some(serial) = serial {
                    certs.push(RegisteredCert {
                        serial,
                        thumbprint: r.get("thumbprint"),
                        not_after: to_u64(r.get("not_after")),
                    });
                }
            }
        }
        Ok(out)
    }

    /// Registers many devices, each with its first certificate and the same
    /// `groups`, plus one `device.provisioned` audit event per device (actor
    /// `actor`), all in ONE transaction: either every device of `certs` is
    /// registered or none is.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] naming the first device of `certs` that is
    /// already registered (checked inside the transaction, so it cannot race
    /// with another writer); database errors.
    pub async fn create_devices_bulk(
        &self,
        certs: &[CertRecord],
        groups: &[String],
        actor: &str,
        now: u64,
    ) -> Result<(), StoreError> {
        if certs.is_empty() {
            return Ok(());
        }
        let group_list = groups.join(",");
        let rows: Vec<BulkRow<'_>> = certs
            .iter()
            .map(|c| BulkRow {
                id: &c.device_id,
                serial: &c.serial,
                thumbprint: &c.thumbprint,
                not_before: to_i64(c.not_before),
                not_after: to_i64(c.not_after),
                der: hex::encode(&c.der),
                public_key: c.public_key().map(hex::encode),
                detail: format!(
                    "serial={} groups={group_list} not_after={} bulk=1",
                    c.serial, c.not_after
                ),
            })
            .collect();
        let rows = serde_json::to_string(&rows)
            .map_err(|e| StoreError::Invalid(format!("device rows: {e}")))?;
        let groups = serde_json::to_string(groups)
            .map_err(|e| StoreError::Invalid(format!("groups: {e}")))?;
        let now_i = to_i64(now);

        let mut tx = self.begin_write().await?;
        let rows_of_1 = self.json_rows("$1", "j");
        let taken: Option<String> = sqlx::query_scalar(&format!(
            "SELECT d.id FROM devices d JOIN {rows_of_1} ON d.id = j.value->>'id' \
             ORDER BY j.key LIMIT 1"
        ))
        .bind(&rows)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(id) = taken {
            return Err(StoreError::Conflict {
                kind: "device",
                name: id,
            });
        }
        sqlx::query(&format!(
            "INSERT INTO devices (id, status, created_at, updated_at) \
             SELECT value->>'id', 'active', $2, $2 FROM {rows_of_1}"
        ))
        .bind(&rows)
        .bind(now_i)
        .execute(&mut *tx)
        .await?;
        sqlx::query(&format!(
            "INSERT INTO device_groups (device_id, group_name) \
             SELECT j.value->>'id', g.value FROM {rows_of_1}, {}",
            self.json_texts("$2", "g")
        ))
        .bind(&rows)
        .bind(&groups)
        .execute(&mut *tx)
        .await?;
        let (der, key) = match self.backend {
            Backend::Sqlite => ("unhex(value->>'der')", "unhex(value->>'public_key')"),
            Backend::Postgres => (
                "decode(value->>'der', 'hex')",
                "decode(value->>'public_key', 'hex')",
            ),
        };
        let inserted = sqlx::query(&format!(
            "INSERT INTO certificates (serial, device_id, thumbprint, not_before, not_after, der, status, created_at, public_key) \
             SELECT value->>'serial', value->>'id', value->>'thumbprint', CAST(value->>'not_before' AS BIGINT), \
                    CAST(value->>'not_after' AS BIGINT), {der}, 'active', $2, {key} FROM {rows_of_1}"
        ))
        .bind(&rows)
        .bind(now_i)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() != certs.len() as u64 {
            return Err(StoreError::Invalid(format!(
                "bulk registration inserted {} of {} certificates",
                inserted.rows_affected(),
                certs.len()
            )));
        }
        sqlx::query(&format!(
            "INSERT INTO audit_events (ts, actor, action, subject, outcome, detail) \
             SELECT $2, $3, 'device.provisioned', value->>'id', 'ok', value->>'detail' FROM {rows_of_1}"
        ))
        .bind(&rows)
        .bind(now_i.saturating_mul(1000))
        .bind(actor)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
