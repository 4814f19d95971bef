//! Audit log queries of the [`Store`].

use sqlx::Row;

use super::{AuditEvent, Store, to_i64, to_u64};
use crate::error::BrokerError;

impl Store {
    /// Appends events in one transaction.
    pub async fn append_audit(&self, events: &[AuditEvent]) -> Result<(), BrokerError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        for e in events {
            sqlx::query("INSERT INTO audit_events (ts, actor, action, subject, outcome, detail) VALUES (?, ?, ?, ?, ?, ?)")
                .bind(to_i64(e.ts_ms))
                .bind(&e.actor)
                .bind(&e.action)
                .bind(&e.subject)
                .bind(&e.outcome)
                .bind(&e.detail)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The latest `limit` events, oldest first, optionally for one subject.
    pub async fn recent_audit(
        &self,
        subject: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, BrokerError> {
        let rows = sqlx::query(
            "SELECT * FROM (SELECT id, ts, actor, action, subject, outcome, detail FROM audit_events \
             WHERE (?1 IS NULL OR subject = ?1) ORDER BY id DESC LIMIT ?2) ORDER BY id",
        )
        .bind(subject)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| AuditEvent {
                ts_ms: to_u64(r.get("ts")),
                actor: r.get("actor"),
                action: r.get("action"),
                subject: r.get("subject"),
                outcome: r.get("outcome"),
                detail: r.get("detail"),
            })
            .collect())
    }
}
