//! Audit log queries of the [`Store`].

use sqlx::Row;

use super::{AuditEvent, Store, to_i64, to_u64};
use crate::error::StoreError;

impl Store {
    /// Appends events in one transaction, each field bounded and escaped
    /// ([`crate::audit_fields::sanitize`]).
    pub async fn append_audit(&self, events: &[AuditEvent]) -> Result<(), StoreError> {
        let mut tx = self.begin_log_write().await?;
        insert_events(&mut tx, events).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The latest `limit` events, oldest first, optionally for one subject.
    pub async fn recent_audit(
        &self,
        subject: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM (SELECT id, ts, actor, action, subject, outcome, detail FROM audit_events \
             WHERE ($1 IS NULL OR subject = $1) ORDER BY id DESC LIMIT $2) AS recent ORDER BY id",
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

impl Store {
    /// Like [`Store::recent_audit`], with each event's id (for following
    /// the log with [`Store::audit_after`]).
    pub async fn recent_audit_with_ids(
        &self,
        subject: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(i64, AuditEvent)>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM (SELECT id, ts, actor, action, subject, outcome, detail FROM audit_events \
             WHERE ($1 IS NULL OR subject = $1) ORDER BY id DESC LIMIT $2) AS recent ORDER BY id",
        )
        .bind(subject)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| with_id(&r)).collect())
    }

    /// Up to `limit` events with an id greater than `after`, oldest first,
    /// optionally for one subject (`certbound audit tail --follow`).
    pub async fn audit_after(
        &self,
        after: i64,
        subject: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(i64, AuditEvent)>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, ts, actor, action, subject, outcome, detail FROM audit_events \
             WHERE id > $1 AND ($2 IS NULL OR subject = $2) ORDER BY id LIMIT $3",
        )
        .bind(after)
        .bind(subject)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| with_id(&r)).collect())
    }

    /// The largest audit event id (0 when the log is empty).
    pub async fn last_audit_id(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COALESCE(MAX(id), 0) AS id FROM audit_events")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.get("id"))
    }
}

fn with_id(r: &sqlx::any::AnyRow) -> (i64, AuditEvent) {
    (
        r.get("id"),
        AuditEvent {
            ts_ms: to_u64(r.get("ts")),
            actor: r.get("actor"),
            action: r.get("action"),
            subject: r.get("subject"),
            outcome: r.get("outcome"),
            detail: r.get("detail"),
        },
    )
}

/// The start of a multi-row insert into `audit_events` (6 columns, bound by
/// [`bind_event`]).
pub(super) const EVENT_INSERT_HEAD: &str =
    "INSERT INTO audit_events (ts, actor, action, subject, outcome, detail) VALUES ";

/// Binds one (sanitized) event's 6 columns.
pub(super) fn bind_event<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    e: &'q AuditEvent,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    q.bind(to_i64(e.ts_ms))
        .bind(&e.actor)
        .bind(&e.action)
        .bind(&e.subject)
        .bind(&e.outcome)
        .bind(&e.detail)
}

/// Inserts `events` inside `tx`, each field bounded and escaped.
pub(super) async fn insert_events(
    tx: &mut sqlx::AnyConnection,
    events: &[AuditEvent],
) -> Result<(), StoreError> {
    let numbered = tx.backend_name() != "SQLite";
    for chunk in events.chunks(crate::batch_insert::ROWS_PER_INSERT) {
        let clean: Vec<AuditEvent> = chunk.iter().map(crate::audit_fields::sanitize).collect();
        let sql =
            crate::batch_insert::multi_row_insert(EVENT_INSERT_HEAD, 6, clean.len(), "", numbered);
        let mut query = sqlx::query(&sql);
        for e in &clean {
            query = bind_event(query, e);
        }
        query.execute(&mut *tx).await?;
    }
    Ok(())
}
