//! Single use of `private_key_jwt` client assertions (RFC 7523 §3 item 7):
//! the `jti` of every accepted assertion is remembered, per client, until
//! the assertion expires. The primary key `(client_id, jti)` makes the
//! check and the record one statement, so two instances sharing a
//! PostgreSQL store cannot both accept the same assertion.

use super::{Store, to_i64};
use crate::error::StoreError;

impl Store {
    /// Records that client `client_id` used assertion `jti`, valid until
    /// `exp` (Unix seconds). `true`: first use, recorded; `false`: the jti
    /// was used before (a replay).
    pub async fn use_assertion_jti(
        &self,
        client_id: &str,
        jti: &str,
        exp: u64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO client_assertion_jtis (client_id, jti, exp) VALUES ($1, $2, $3) \
             ON CONFLICT (client_id, jti) DO NOTHING",
        )
        .bind(client_id)
        .bind(jti)
        .bind(to_i64(exp))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

#[cfg(test)]
mod tests {
    use crate::PrunePolicy;

    async fn a_jti_is_accepted_once_and_pruned_after_exp() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::testing::current().open(dir.path()).await;
        assert!(store.use_assertion_jti("cb_a", "j1", 1000).await.unwrap());
        assert!(!store.use_assertion_jti("cb_a", "j1", 1000).await.unwrap());
        // Another client's jti space is its own.
        assert!(store.use_assertion_jti("cb_b", "j1", 1000).await.unwrap());
        assert!(store.use_assertion_jti("cb_a", "j2", 5000).await.unwrap());
        let policy = PrunePolicy {
            token_margin_secs: 100,
            audit_retention_secs: None,
            batch: 1,
            dry_run: false,
        };
        // Not before exp + margin.
        let report = store.prune(1100, &policy).await.unwrap();
        assert_eq!(report.client_assertions, 0);
        let report = store.prune(1101, &policy).await.unwrap();
        assert_eq!(report.client_assertions, 2);
        // j2 is still remembered; j1 of cb_a was forgotten after its exp.
        assert!(!store.use_assertion_jti("cb_a", "j2", 5000).await.unwrap());
    }
    crate::on_every_backend!(a_jti_is_accepted_once_and_pruned_after_exp);
}
