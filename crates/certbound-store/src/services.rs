//! Service certificates certbound issued (`certbound service provision`, the
//! broker's MQTT identity): recorded so that they can be listed and revoked.

use serde::Serialize;
use sqlx::Row;

use super::{Store, to_i64, to_u64};
use crate::error::StoreError;

/// One recorded service certificate.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ServiceCert {
    /// Serial number, lowercase hex.
    pub serial: String,
    /// The service name (SAN `urn:certbound:service:<name>`).
    pub name: String,
    /// Lowercase hex SHA-256 of the DER.
    pub thumbprint: String,
    /// notAfter, Unix seconds.
    pub not_after: u64,
    /// When it was issued, Unix seconds.
    pub created_at: u64,
    /// When it was revoked, if it was.
    pub revoked_at: Option<u64>,
}

impl Store {
    /// Records a service certificate certbound just issued.
    pub async fn record_service_cert(&self, cert: &ServiceCert) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO service_certs (serial, name, thumbprint, not_after, created_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, NULL)",
        )
        .bind(&cert.serial)
        .bind(&cert.name)
        .bind(&cert.thumbprint)
        .bind(to_i64(cert.not_after))
        .bind(to_i64(cert.created_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every recorded service certificate, by name then issue time.
    pub async fn list_service_certs(&self) -> Result<Vec<ServiceCert>, StoreError> {
        let rows = sqlx::query(
            "SELECT serial, name, thumbprint, not_after, created_at, revoked_at FROM service_certs \
             ORDER BY name, created_at, serial",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| ServiceCert {
                serial: r.get("serial"),
                name: r.get("name"),
                thumbprint: r.get("thumbprint"),
                not_after: to_u64(r.get("not_after")),
                created_at: to_u64(r.get("created_at")),
                revoked_at: r.get::<Option<i64>, _>("revoked_at").map(to_u64),
            })
            .collect())
    }

    /// Revokes the unrevoked service certificates whose serial or service
    /// name is `name_or_serial`; returns the ones revoked now.
    pub async fn revoke_service_certs(
        &self,
        name_or_serial: &str,
        now: u64,
    ) -> Result<Vec<ServiceCert>, StoreError> {
        let mut tx = self.begin_write().await?;
        let key = name_or_serial.to_ascii_lowercase();
        let serials: Vec<String> = sqlx::query_scalar(
            "SELECT serial FROM service_certs WHERE (name = $1 OR serial = $2) AND revoked_at IS NULL",
        )
        .bind(name_or_serial)
        .bind(&key)
        .fetch_all(&mut *tx)
        .await?;
        for serial in &serials {
            sqlx::query("UPDATE service_certs SET revoked_at = $1 WHERE serial = $2")
                .bind(to_i64(now))
                .bind(serial)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(self
            .list_service_certs()
            .await?
            .into_iter()
            .filter(|c| serials.contains(&c.serial))
            .collect())
    }

    /// Lowercase hex thumbprints of every revoked service certificate that
    /// has not expired (an expired one is refused anyway).
    pub async fn revoked_service_thumbprints(&self, now: u64) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT thumbprint FROM service_certs WHERE revoked_at IS NOT NULL AND not_after >= $1",
        )
        .bind(to_i64(now))
        .fetch_all(&self.pool)
        .await?)
    }
}
