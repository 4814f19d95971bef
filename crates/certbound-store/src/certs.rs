//! Certificates added after provisioning (renewals) in the [`Store`].

use super::{CertRecord, Store, to_i64};
use crate::error::StoreError;

impl Store {
    /// Registers one more certificate of an existing device (a renewal). The
    /// device's other certificates stay as they are: the old one keeps
    /// working until it expires or is revoked, so a device whose renewal
    /// answer was lost is not locked out.
    pub async fn add_certificate(&self, cert: &CertRecord, now: u64) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO certificates (serial, device_id, thumbprint, not_before, not_after, der, status, created_at, public_key) \
             VALUES ($1, $2, $3, $4, $5, $6, 'active', $7, $8)",
        )
        .bind(&cert.serial)
        .bind(&cert.device_id)
        .bind(&cert.thumbprint)
        .bind(to_i64(cert.not_before))
        .bind(to_i64(cert.not_after))
        .bind(&cert.der)
        .bind(to_i64(now))
        .bind(cert.public_key())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// A revoked certificate, for CRLs.
#[derive(Debug, Clone)]
pub struct RevokedCert {
    /// Serial, lowercase hex.
    pub serial: String,
    /// The certificate (to tell which CA issued it).
    pub der: Vec<u8>,
    /// When it was revoked, Unix seconds.
    pub revoked_at: u64,
}

impl Store {
    /// The serial of a revoked certificate (of any device, expired ones
    /// too) whose public key is `key_sec1`, if there is one: an index
    /// lookup, plus a parse of the revoked certificates recorded before
    /// version 13 (migration 0013), which have no key column.
    pub async fn revoked_serial_with_key(
        &self,
        key_sec1: &[u8],
    ) -> Result<Option<String>, StoreError> {
        use sqlx::Row;
        // One statement (every enrollment and renewal makes it), two index
        // seeks: the rows with this key, and the rows without a recorded key,
        // which are parsed. (`public_key = $1 OR public_key IS NULL` made
        // SQLite scan every revoked row's index entry.)
        let rows = sqlx::query(
            "SELECT serial, der, public_key FROM certificates \
             WHERE status = 'revoked' AND public_key = $1 \
             UNION ALL \
             SELECT serial, der, public_key FROM certificates \
             WHERE status = 'revoked' AND public_key IS NULL",
        )
        .bind(key_sec1)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().find_map(|r| {
            let recorded: Option<Vec<u8>> = r.get("public_key");
            let matches = match recorded {
                Some(k) => k == key_sec1,
                None => certbound_pki::public_key_sec1(&r.get::<Vec<u8>, _>("der"))
                    .is_ok_and(|k| k == key_sec1),
            };
            matches.then(|| r.get("serial"))
        }))
    }

    /// Every revoked certificate that has not expired at `now`.
    pub async fn revoked_certificates(&self, now: u64) -> Result<Vec<RevokedCert>, StoreError> {
        use sqlx::Row;
        let rows = sqlx::query(
            "SELECT serial, der, COALESCE(revoked_at, created_at) AS revoked_at FROM certificates \
             WHERE status = 'revoked' AND not_after >= $1 ORDER BY revoked_at",
        )
        .bind(to_i64(now))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| RevokedCert {
                serial: r.get("serial"),
                der: r.get("der"),
                revoked_at: super::to_u64(r.get("revoked_at")),
            })
            .collect())
    }
}

impl Store {
    /// A number that grows whenever the set of revoked certificates changes
    /// (kept by triggers, migration 0005): the running broker rebuilds its
    /// CRLs when it sees a new value.
    pub async fn crl_epoch(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT epoch FROM crl_epoch WHERE id = 1")
                .fetch_optional(&self.pool)
                .await?
                .unwrap_or(0),
        )
    }
}
