//! Certificates added after provisioning (renewals) in the [`Store`].

use super::{CertRecord, Store, to_i64};
use crate::error::BrokerError;

impl Store {
    /// Registers one more certificate of an existing device (a renewal). The
    /// device's other certificates stay as they are: the old one keeps
    /// working until it expires or is revoked, so a device whose renewal
    /// answer was lost is not locked out.
    pub async fn add_certificate(&self, cert: &CertRecord, now: u64) -> Result<(), BrokerError> {
        sqlx::query(
            "INSERT INTO certificates (serial, device_id, thumbprint, not_before, not_after, der, status, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, 'active', ?)",
        )
        .bind(&cert.serial)
        .bind(&cert.device_id)
        .bind(&cert.thumbprint)
        .bind(to_i64(cert.not_before))
        .bind(to_i64(cert.not_after))
        .bind(&cert.der)
        .bind(to_i64(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
