//! What instances of one service share besides the registry: the service's
//! settings (issuer id, root certificate), which every instance checks
//! against its own at start, every instance's issuing CA certificates,
//! which every instance trusts, and the partner CAs an operator trusts
//! (`certbound ca trust add`). Private keys are never stored here.

use sqlx::Row;

use crate::{Store, StoreError, to_i64, to_u64};

/// The setting naming the service's issuer id.
pub const SETTING_ISSUER_ID: &str = "issuer_id";
/// The setting holding the service's root CA certificate (PEM).
pub const SETTING_ROOT_CA: &str = "root_ca_pem";

/// An issuing CA certificate an instance published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedCa {
    /// Serial, lowercase hex.
    pub serial: String,
    /// The certificate (DER).
    pub cert_der: Vec<u8>,
    /// notAfter, Unix seconds.
    pub not_after: u64,
}

/// A partner CA whose device certificates the service accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalCa {
    /// The operator's name for it.
    pub name: String,
    /// The CA certificate (DER).
    pub cert_der: Vec<u8>,
    /// The group its devices join on first use (`None`: just-in-time
    /// registration off).
    pub jit_group: Option<String>,
}

impl Store {
    /// A service setting, if set.
    pub async fn setting(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT value FROM service_settings WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Sets `name` to `value` unless it is set already; returns the value
    /// the store holds afterwards (the caller compares it with its own).
    pub async fn claim_setting(&self, name: &str, value: &str) -> Result<String, StoreError> {
        let mut tx = self.begin_log_write().await?;
        let held: Option<String> =
            sqlx::query_scalar("SELECT value FROM service_settings WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
        let held = match held {
            Some(v) => v,
            None => {
                sqlx::query("INSERT INTO service_settings (name, value) VALUES ($1, $2)")
                    .bind(name)
                    .bind(value)
                    .execute(&mut *tx)
                    .await?;
                value.to_owned()
            }
        };
        tx.commit().await?;
        Ok(held)
    }

    /// Publishes an issuing CA certificate (idempotent: a serial already
    /// published is left as it is).
    pub async fn publish_issuing_ca(&self, ca: &PublishedCa, now: u64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO issuing_cas (serial, cert_der, not_after, added_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (serial) DO NOTHING",
        )
        .bind(&ca.serial)
        .bind(&ca.cert_der)
        .bind(to_i64(ca.not_after))
        .bind(to_i64(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every published issuing CA not expired at `now`, by serial.
    pub async fn issuing_cas(&self, now: u64) -> Result<Vec<PublishedCa>, StoreError> {
        let rows = sqlx::query(
            "SELECT serial, cert_der, not_after FROM issuing_cas WHERE not_after > $1 ORDER BY serial",
        )
        .bind(to_i64(now))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| PublishedCa {
                serial: r.get("serial"),
                cert_der: r.get("cert_der"),
                not_after: to_u64(r.get("not_after")),
            })
            .collect())
    }

    /// Trusts a partner CA; [`StoreError::Conflict`] when the name is taken.
    pub async fn add_external_ca(&self, ca: &ExternalCa, now: u64) -> Result<(), StoreError> {
        let done = sqlx::query(
            "INSERT INTO external_cas (name, cert_der, jit_group, added_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(&ca.name)
        .bind(&ca.cert_der)
        .bind(ca.jit_group.as_deref())
        .bind(to_i64(now))
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict {
                kind: "trusted CA",
                name: ca.name.clone(),
            });
        }
        Ok(())
    }

    /// Stops trusting a partner CA; [`StoreError::NotFound`] when there is
    /// none of that name.
    pub async fn remove_external_ca(&self, name: &str) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM external_cas WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                kind: "trusted CA",
                name: name.into(),
                hint: "; see `certbound ca trust list`".into(),
            });
        }
        Ok(())
    }

    /// Every partner CA, by name.
    pub async fn external_cas(&self) -> Result<Vec<ExternalCa>, StoreError> {
        let rows = sqlx::query("SELECT name, cert_der, jit_group FROM external_cas ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| ExternalCa {
                name: r.get("name"),
                cert_der: r.get("cert_der"),
                jit_group: r.get("jit_group"),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::current;

    async fn settings_are_claimed_once_and_cas_published() {
        let dir = tempfile::tempdir().unwrap();
        let store = current().open(dir.path()).await;
        assert_eq!(store.setting(SETTING_ISSUER_ID).await.unwrap(), None);
        let first = store
            .claim_setting(SETTING_ISSUER_ID, "https://a.example")
            .await
            .unwrap();
        assert_eq!(first, "https://a.example");
        // A second claim does not overwrite: the caller sees the other value.
        let second = store
            .claim_setting(SETTING_ISSUER_ID, "https://b.example")
            .await
            .unwrap();
        assert_eq!(second, "https://a.example");
        assert_eq!(
            store.setting(SETTING_ISSUER_ID).await.unwrap().as_deref(),
            Some("https://a.example")
        );

        let ca = PublishedCa {
            serial: "0a".into(),
            cert_der: vec![1, 2, 3],
            not_after: 2_000,
        };
        store.publish_issuing_ca(&ca, 1_000).await.unwrap();
        store.publish_issuing_ca(&ca, 1_001).await.unwrap();
        let expired = PublishedCa {
            serial: "0b".into(),
            cert_der: vec![4],
            not_after: 1_500,
        };
        store.publish_issuing_ca(&expired, 1_000).await.unwrap();
        assert_eq!(store.issuing_cas(1_000).await.unwrap().len(), 2);
        assert_eq!(store.issuing_cas(1_600).await.unwrap(), vec![ca]);
    }

    crate::on_every_backend!(settings_are_claimed_once_and_cas_published);

    async fn partner_cas_are_shared_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = current().open(dir.path()).await;
        assert!(store.external_cas().await.unwrap().is_empty());
        let a = ExternalCa {
            name: "partner".into(),
            cert_der: vec![1, 2, 3],
            jit_group: Some("sensors".into()),
        };
        store.add_external_ca(&a, 10).await.unwrap();
        // A second CA under a taken name is refused, the first one kept.
        let other = ExternalCa {
            cert_der: vec![9],
            jit_group: None,
            ..a.clone()
        };
        assert!(matches!(
            store.add_external_ca(&other, 11).await,
            Err(StoreError::Conflict { .. })
        ));
        let b = ExternalCa {
            name: "another".into(),
            cert_der: vec![4],
            jit_group: None,
        };
        store.add_external_ca(&b, 12).await.unwrap();
        assert_eq!(store.external_cas().await.unwrap(), vec![b, a.clone()]);
        store.remove_external_ca("another").await.unwrap();
        assert!(matches!(
            store.remove_external_ca("another").await,
            Err(StoreError::NotFound { .. })
        ));
        assert_eq!(store.external_cas().await.unwrap(), vec![a]);
    }

    crate::on_every_backend!(partner_cas_are_shared_by_name);

    #[test]
    fn postgres_targets() {
        use crate::postgres_target;
        let t = postgres_target("postgres://u@db.example.com:5432/cb?sslmode=verify-full").unwrap();
        assert_eq!(t.host, "db.example.com");
        assert!(!t.local && t.verified);
        let t = postgres_target("postgres://u@10.0.0.5/cb?sslmode=require").unwrap();
        assert!(!t.local && !t.verified);
        assert!(
            !postgres_target("postgres://u@10.0.0.5/cb")
                .unwrap()
                .verified
        );
        for local in [
            "postgres://u@127.0.0.1:5432/test",
            "postgres://u@localhost/test",
            "postgres://u@[::1]:5432/test",
            "postgres:///test?host=/var/run/postgresql",
        ] {
            assert!(postgres_target(local).unwrap().local, "{local}");
        }
        assert_eq!(postgres_target("sqlite:///tmp/x.db"), None);
    }
}
