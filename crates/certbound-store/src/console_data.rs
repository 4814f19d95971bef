//! What the operator console reads from the [`Store`]: the dashboard's
//! aggregates, the device search and the filtered audit log. Every query is
//! bounded (aggregate SQL over indexed ranges, keyset pagination, `LIMIT`),
//! so they stay fast with 100 000 devices and millions of audit events
//! (indexes of migration 0020).

use std::collections::HashMap;

use serde::Serialize;
use sqlx::Row;

use crate::{AuditEvent, Backend, Store, StoreError, split_scopes, to_i64, to_u64};

/// Devices by status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StatusCounts {
    /// Active devices.
    pub active: u64,
    /// Suspended devices.
    pub suspended: u64,
    /// Revoked devices.
    pub revoked: u64,
}

/// Token issuance of one minute by transport.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MinuteCounts {
    /// Start of the minute, Unix seconds.
    pub minute: u64,
    /// Device tokens over CoAP.
    pub coap: u64,
    /// Device tokens over MQTT.
    pub mqtt: u64,
    /// Device tokens over HTTPS (`/ace/token`).
    pub https: u64,
    /// Client and API-key tokens (`/oauth/token`).
    pub oauth: u64,
}

/// Certificate renewal health.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RenewalHealth {
    /// Renewals in the window.
    pub renewed: u64,
    /// Devices whose latest renewal attempt in the window was refused.
    pub failing: u64,
    /// Active devices whose newest active certificate is past 3/4 of its
    /// lifetime (the agent renews at 2/3 ± 5%) or expired.
    pub overdue: u64,
}

/// A device search (`GET /admin/v1/devices`).
#[derive(Debug, Clone, Default)]
pub struct DeviceQuery {
    /// Substring of the id (a prefix is a substring).
    pub q: Option<String>,
    /// Only this status.
    pub status: Option<String>,
    /// Only members of this group.
    pub group: Option<String>,
    /// Ids greater than this (the cursor).
    pub after: Option<String>,
    /// Page size.
    pub limit: u32,
}

/// One row of a device search.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceRow {
    /// Device id.
    pub id: String,
    /// Status.
    pub status: String,
    /// Groups.
    pub groups: Vec<String>,
    /// Unix seconds.
    pub created_at: u64,
    /// The latest `notAfter` of its active certificates.
    pub cert_not_after: Option<u64>,
    /// When it last got a token (audit trail), Unix seconds.
    pub last_seen: Option<u64>,
    /// Over which transport.
    pub last_transport: Option<String>,
}

/// A page of a device search.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DevicePage {
    /// The devices, by id.
    pub items: Vec<DeviceRow>,
    /// The cursor of the next page (`after`), `None` on the last.
    pub next: Option<String>,
    /// How many devices match (all pages).
    pub total: u64,
}

/// Filters of the audit log (`GET /admin/v1/audit`).
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Events about this device (subject).
    pub device: Option<String>,
    /// Events by or about this client (subject, or actor `client:<id>` /
    /// `admin:<id>`).
    pub client: Option<String>,
    /// Exact subject.
    pub subject: Option<String>,
    /// Exact action; `token.*` matches a prefix.
    pub action: Option<String>,
    /// Exact outcome.
    pub outcome: Option<String>,
    /// From (Unix milliseconds, inclusive).
    pub since_ms: Option<u64>,
    /// Until (Unix milliseconds, exclusive).
    pub until_ms: Option<u64>,
}

/// One bound parameter.
enum Param {
    Text(String),
    Int(i64),
}

/// SQL `WHERE` clauses with their numbered parameters.
struct Clauses {
    sql: Vec<String>,
    params: Vec<Param>,
}

impl Clauses {
    fn new() -> Self {
        Self {
            sql: Vec::new(),
            params: Vec::new(),
        }
    }
    fn text(&mut self, v: &str) -> String {
        self.params.push(Param::Text(v.to_string()));
        format!("${}", self.params.len())
    }
    fn int(&mut self, v: i64) -> String {
        self.params.push(Param::Int(v));
        format!("${}", self.params.len())
    }
    fn push(&mut self, clause: String) {
        self.sql.push(clause);
    }
    fn where_sql(&self) -> String {
        if self.sql.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.sql.join(" AND "))
        }
    }
    /// Binds the parameters in order.
    fn bind<'q>(
        &'q self,
        mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
        for p in &self.params {
            q = match p {
                Param::Text(t) => q.bind(t.as_str()),
                Param::Int(i) => q.bind(*i),
            };
        }
        q
    }
}

/// The transport named by an audit detail's leading `transport=T`.
pub fn detail_transport(detail: &str) -> Option<&str> {
    let t = detail.strip_prefix("transport=")?;
    Some(t.split(' ').next().unwrap_or(t))
}

fn audit_row(r: &sqlx::any::AnyRow) -> (i64, AuditEvent) {
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

impl Store {
    fn contains_sql(&self, column: &str, param: &str) -> String {
        match self.backend {
            Backend::Sqlite => format!("instr({column}, {param}) > 0"),
            Backend::Postgres => format!("strpos({column}, {param}) > 0"),
        }
    }

    /// Devices by status.
    pub async fn device_status_counts(&self) -> Result<StatusCounts, StoreError> {
        let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM devices GROUP BY status")
            .fetch_all(&self.pool)
            .await?;
        let mut out = StatusCounts::default();
        for r in rows {
            let n = to_u64(r.get("n"));
            match r.get::<String, _>("status").as_str() {
                "active" => out.active = n,
                "suspended" => out.suspended = n,
                "revoked" => out.revoked = n,
                _ => {}
            }
        }
        Ok(out)
    }

    /// Active certificates expiring on each of `days` UTC days from the day
    /// of `now`: `(day start, count)`, zero-filled, oldest first.
    pub async fn cert_expiry_by_day(
        &self,
        now: u64,
        days: u32,
    ) -> Result<Vec<(u64, u64)>, StoreError> {
        let first = now / 86_400;
        let end = first + u64::from(days);
        let rows = sqlx::query(
            "SELECT not_after / 86400 AS d, COUNT(*) AS n FROM certificates \
             WHERE status = 'active' AND not_after >= $1 AND not_after < $2 GROUP BY not_after / 86400",
        )
        .bind(to_i64(first * 86_400))
        .bind(to_i64(end * 86_400))
        .fetch_all(&self.pool)
        .await?;
        let found: HashMap<u64, u64> = rows
            .iter()
            .map(|r| (to_u64(r.get("d")), to_u64(r.get("n"))))
            .collect();
        Ok((first..end)
            .map(|d| (d * 86_400, found.get(&d).copied().unwrap_or(0)))
            .collect())
    }

    /// Tokens issued per minute by transport over the `minutes` minutes up
    /// to and including the minute of `now` (`token.issued` events),
    /// zero-filled, oldest first.
    pub async fn tokens_per_minute(
        &self,
        now: u64,
        minutes: u32,
    ) -> Result<Vec<MinuteCounts>, StoreError> {
        let last = now / 60;
        let first = last + 1 - u64::from(minutes.max(1));
        let rows = sqlx::query(
            "SELECT ts / 60000 AS m, \
             CASE WHEN actor LIKE 'client:%' OR actor LIKE 'apikey:%' THEN 'oauth' \
                  WHEN detail LIKE 'transport=coap%' THEN 'coap' \
                  WHEN detail LIKE 'transport=mqtt%' THEN 'mqtt' \
                  WHEN detail LIKE 'transport=https%' THEN 'https' ELSE 'other' END AS t, \
             COUNT(*) AS n FROM audit_events WHERE action = 'token.issued' AND ts >= $1 \
             GROUP BY ts / 60000, \
             CASE WHEN actor LIKE 'client:%' OR actor LIKE 'apikey:%' THEN 'oauth' \
                  WHEN detail LIKE 'transport=coap%' THEN 'coap' \
                  WHEN detail LIKE 'transport=mqtt%' THEN 'mqtt' \
                  WHEN detail LIKE 'transport=https%' THEN 'https' ELSE 'other' END",
        )
        .bind(to_i64(first * 60_000))
        .fetch_all(&self.pool)
        .await?;
        let mut out: Vec<MinuteCounts> = (first..=last)
            .map(|m| MinuteCounts {
                minute: m * 60,
                ..MinuteCounts::default()
            })
            .collect();
        for r in rows {
            let m = to_u64(r.get("m"));
            let Some(slot) = m
                .checked_sub(first)
                .and_then(|i| usize::try_from(i).ok())
                .and_then(|i| out.get_mut(i))
            else {
                continue;
            };
            let n = to_u64(r.get("n"));
            match r.get::<String, _>("t").as_str() {
                "coap" => slot.coap += n,
                "mqtt" => slot.mqtt += n,
                "https" => slot.https += n,
                "oauth" => slot.oauth += n,
                _ => {}
            }
        }
        Ok(out)
    }

    /// Token refusals since `since_ms` by reason (the refusal's error code,
    /// the audit outcome), most frequent first, at most 50.
    pub async fn refusals_by_reason(
        &self,
        since_ms: u64,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT outcome, COUNT(*) AS n FROM audit_events \
             WHERE action = 'token.refused' AND ts >= $1 GROUP BY outcome ORDER BY COUNT(*) DESC, outcome LIMIT 50",
        )
        .bind(to_i64(since_ms))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.get("outcome"), to_u64(r.get("n"))))
            .collect())
    }

    /// Renewal health: renewals and devices failing to renew since
    /// `since_ms`, and devices overdue at `now` (see [`RenewalHealth`]).
    pub async fn renewal_health(
        &self,
        since_ms: u64,
        now: u64,
    ) -> Result<RenewalHealth, StoreError> {
        let renewed: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM audit_events WHERE action = 'cert.renewed' AND ts >= $1",
        )
        .bind(to_i64(since_ms))
        .fetch_one(&self.pool)
        .await?;
        // One pass over the window's renewal events (a correlated NOT EXISTS
        // per refusal made SQLite walk the (action, ts) index once per row).
        let failing: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT subject, \
             MAX(CASE WHEN action = 'cert.renewal_refused' THEN ts END) AS refused, \
             MAX(CASE WHEN action = 'cert.renewed' THEN ts END) AS renewed \
             FROM audit_events WHERE action IN ('cert.renewal_refused', 'cert.renewed') AND ts >= $1 \
             GROUP BY subject) AS per_device \
             WHERE refused IS NOT NULL AND (renewed IS NULL OR renewed < refused)",
        )
        .bind(to_i64(since_ms))
        .fetch_one(&self.pool)
        .await?;
        // Certificates past 3/4 of their lifetime first (one pass over the
        // table), then only for those: is it its device's newest?
        let overdue: i64 = sqlx::query_scalar(
            "SELECT COUNT(DISTINCT c.device_id) FROM certificates c JOIN devices d ON d.id = c.device_id \
             WHERE c.status = 'active' AND d.status = 'active' AND 4 * $1 > c.not_before + 3 * c.not_after \
             AND NOT EXISTS (SELECT 1 FROM certificates n WHERE n.device_id = c.device_id \
             AND n.status = 'active' AND n.not_after > c.not_after)",
        )
        .bind(to_i64(now))
        .fetch_one(&self.pool)
        .await?;
        Ok(RenewalHealth {
            renewed: to_u64(renewed),
            failing: to_u64(failing),
            overdue: to_u64(overdue),
        })
    }

    /// A page of devices matching `query`, by id (keyset pagination), with
    /// the total number of matches.
    pub async fn search_devices(&self, query: &DeviceQuery) -> Result<DevicePage, StoreError> {
        let mut c = Clauses::new();
        if let Some(q) = query.q.as_deref().filter(|q| !q.is_empty()) {
            let p = c.text(q);
            c.push(self.contains_sql("d.id", &p));
        }
        if let Some(s) = &query.status {
            let p = c.text(s);
            c.push(format!("d.status = {p}"));
        }
        if let Some(g) = &query.group {
            let p = c.text(g);
            c.push(format!(
                "EXISTS (SELECT 1 FROM device_groups dg WHERE dg.device_id = d.id AND dg.group_name = {p})"
            ));
        }
        let count_sql = format!("SELECT COUNT(*) FROM devices d{}", c.where_sql());
        let total: i64 = c
            .bind(sqlx::query(&count_sql))
            .fetch_one(&self.pool)
            .await?
            .get(0);
        if let Some(after) = &query.after {
            let p = c.text(after);
            c.push(format!("d.id > {p}"));
        }
        let limit = query.limit.clamp(1, 1000);
        let lim = c.int(i64::from(limit) + 1);
        let sql = format!(
            "SELECT d.id, d.status, d.created_at, \
             COALESCE((SELECT {}(group_name, ' ') FROM device_groups WHERE device_id = d.id), '') AS groups, \
             (SELECT MAX(not_after) FROM certificates WHERE device_id = d.id AND status = 'active') AS cert_not_after \
             FROM devices d{} ORDER BY d.id LIMIT {lim}",
            self.string_agg(),
            c.where_sql()
        );
        let rows = c.bind(sqlx::query(&sql)).fetch_all(&self.pool).await?;
        let mut items: Vec<DeviceRow> = rows
            .iter()
            .map(|r| DeviceRow {
                id: r.get("id"),
                status: r.get("status"),
                groups: split_scopes(r.get("groups")),
                created_at: to_u64(r.get("created_at")),
                cert_not_after: r.get::<Option<i64>, _>("cert_not_after").map(to_u64),
                last_seen: None,
                last_transport: None,
            })
            .collect();
        let more = items.len() > limit as usize;
        items.truncate(limit as usize);
        for item in &mut items {
            if let Some((ts, transport)) = self.device_last_seen(&item.id).await? {
                item.last_seen = Some(ts);
                item.last_transport = transport;
            }
        }
        let next = if more {
            items.last().map(|d| d.id.clone())
        } else {
            None
        };
        Ok(DevicePage {
            items,
            next,
            total: to_u64(total),
        })
    }

    /// When `device` last got a token (Unix seconds) and over which
    /// transport, from the audit trail (the device's events by the subject
    /// index, newest first, until its latest token; `action || ''` keeps the
    /// planner off the `(action, ts)` index, which would walk every token).
    pub async fn device_last_seen(
        &self,
        device: &str,
    ) -> Result<Option<(u64, Option<String>)>, StoreError> {
        let row = sqlx::query(
            "SELECT ts, detail FROM audit_events WHERE subject = $1 AND action || '' = 'token.issued' \
             ORDER BY id DESC LIMIT 1",
        )
        .bind(device)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| {
            let detail: String = r.get("detail");
            (
                to_u64(r.get::<i64, _>("ts")) / 1000,
                detail_transport(&detail).map(str::to_string),
            )
        }))
    }

    fn audit_clauses(&self, f: &AuditFilter) -> Clauses {
        let mut c = Clauses::new();
        if let Some(d) = &f.device {
            let p = c.text(d);
            c.push(format!("subject = {p}"));
        }
        if let Some(id) = &f.client {
            let p = c.text(id);
            let a = c.text(&format!("client:{id}"));
            let b = c.text(&format!("admin:{id}"));
            let s = c.text(&format!("admin-client:{id}"));
            c.push(format!(
                "(subject = {p} OR actor = {a} OR actor = {b} OR actor = {s})"
            ));
        }
        if let Some(s) = &f.subject {
            let p = c.text(s);
            c.push(format!("subject = {p}"));
        }
        if let Some(a) = &f.action {
            if let Some(prefix) = a.strip_suffix('*') {
                let lo = c.text(prefix);
                let hi = c.text(&format!("{prefix}\u{10ffff}"));
                c.push(format!("action >= {lo} AND action < {hi}"));
            } else {
                let p = c.text(a);
                c.push(format!("action = {p}"));
            }
        }
        if let Some(o) = &f.outcome {
            let p = c.text(o);
            c.push(format!("outcome = {p}"));
        }
        if let Some(s) = f.since_ms {
            let p = c.int(to_i64(s));
            c.push(format!("ts >= {p}"));
        }
        if let Some(u) = f.until_ms {
            let p = c.int(to_i64(u));
            c.push(format!("ts < {p}"));
        }
        c
    }

    /// Up to `limit` events matching `filter` with an id below `before_id`
    /// (all when `None`), newest first.
    pub async fn audit_page(
        &self,
        filter: &AuditFilter,
        before_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<(i64, AuditEvent)>, StoreError> {
        let mut c = self.audit_clauses(filter);
        if let Some(b) = before_id {
            let p = c.int(b);
            c.push(format!("id < {p}"));
        }
        let lim = c.int(i64::from(limit));
        let sql = format!(
            "SELECT id, ts, actor, action, subject, outcome, detail FROM audit_events{} \
             ORDER BY id DESC LIMIT {lim}",
            c.where_sql()
        );
        let rows = c.bind(sqlx::query(&sql)).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(audit_row).collect())
    }

    /// Up to `limit` events matching `filter` with an id above `after_id`,
    /// oldest first (following the log).
    pub async fn audit_following(
        &self,
        filter: &AuditFilter,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<(i64, AuditEvent)>, StoreError> {
        let mut c = self.audit_clauses(filter);
        let p = c.int(after_id);
        c.push(format!("id > {p}"));
        let lim = c.int(i64::from(limit));
        let sql = format!(
            "SELECT id, ts, actor, action, subject, outcome, detail FROM audit_events{} \
             ORDER BY id LIMIT {lim}",
            c.where_sql()
        );
        let rows = c.bind(sqlx::query(&sql)).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(audit_row).collect())
    }
}
