//! The console's data routes of the admin API: `GET /dashboard`, `GET
//! /doctor`, the device search and detail, the filtered audit log and its
//! live stream (`GET /audit/stream`, server-sent events). Everything comes
//! from the store, so every instance answers the same.

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AdminError, AdminResult, Peer, authenticate, caller, ok};
use crate::clock::unix_now;
use crate::store::{AuditEvent, AuditFilter, DeviceQuery, RoleHolder};
use crate::transport::https::HttpsState;

/// Window of the token and refusal charts, seconds.
const TOKEN_WINDOW: u64 = 3600;
/// Window of the renewal figures, seconds (30 days).
const RENEWAL_WINDOW: u64 = 30 * 86_400;
/// Days of the certificate expiry chart.
const EXPIRY_DAYS: u32 = 90;
/// An instance whose heartbeat is older than this is `stale`, seconds.
const STALE_AFTER: u64 = 3 * crate::transport::https::ui::HEARTBEAT_SECS;
/// How often an audit stream polls the store.
const STREAM_POLL: Duration = Duration::from_millis(500);
/// Keep-alive comment interval of an audit stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The console's routes (nested under `/admin/v1`).
pub(super) fn routes() -> Router<HttpsState> {
    Router::new()
        .route("/dashboard", get(dashboard))
        .route("/doctor", get(doctor))
        .route("/audit/stream", get(audit_stream))
}

fn bad_request(message: String) -> AdminError {
    AdminError(StatusCode::BAD_REQUEST, "invalid_request", message)
}

fn day_text(day_start: u64) -> String {
    let date = i64::try_from(day_start)
        .ok()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .map(|t| t.date());
    match date {
        Some(d) => format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day()),
        None => day_start.to_string(),
    }
}

async fn dashboard(State(s): State<HttpsState>, m: Method, h: HeaderMap, p: Peer) -> AdminResult {
    let reg = caller(&s, &m, &h, p.as_ref().map(|e| &e.0)).await?;
    let store = &reg.store;
    let now = unix_now();
    let now_ms = now.saturating_mul(1000);
    let by_status = store.device_status_counts().await?;
    let total = by_status.active + by_status.suspended + by_status.revoked;
    let buckets: Vec<Value> = store
        .cert_expiry_by_day(now, EXPIRY_DAYS)
        .await?
        .into_iter()
        .map(|(day, count)| json!({"date": day_text(day), "count": count}))
        .collect();
    let per_minute = store
        .tokens_per_minute(now, u32::try_from(TOKEN_WINDOW / 60).unwrap_or(60))
        .await?;
    let refusals: Vec<Value> = store
        .refusals_by_reason(now_ms.saturating_sub(TOKEN_WINDOW * 1000))
        .await?
        .into_iter()
        .map(|(reason, count)| json!({"reason": reason, "count": count}))
        .collect();
    let renewals = store
        .renewal_health(now_ms.saturating_sub(RENEWAL_WINDOW * 1000), now)
        .await?;
    let instances: Vec<Value> = store
        .instance_heartbeats()
        .await?
        .into_iter()
        .map(|i| {
            let state = if now.saturating_sub(i.last_seen) <= STALE_AFTER {
                "active"
            } else {
                "stale"
            };
            json!({"id": i.id, "state": state, "last_seen": i.last_seen, "started_at": i.started_at, "detail": i.detail})
        })
        .collect();
    ok(json!({
        "generated_at": now,
        "devices": {"total": total, "by_status": by_status},
        "cert_expiry": {"days": EXPIRY_DAYS, "buckets": buckets},
        "tokens": {"window_secs": TOKEN_WINDOW, "per_minute": per_minute},
        "refusals": {"window_secs": TOKEN_WINDOW, "by_reason": refusals},
        "renewals": {
            "window_secs": RENEWAL_WINDOW,
            "renewed": renewals.renewed,
            "failing": renewals.failing,
            "overdue": renewals.overdue,
        },
        "instances": instances,
    }))
}

async fn doctor(State(s): State<HttpsState>, m: Method, h: HeaderMap, p: Peer) -> AdminResult {
    let reg = caller(&s, &m, &h, p.as_ref().map(|e| &e.0)).await?;
    let findings = certbound_registry::doctor::run(
        &reg,
        &certbound_registry::doctor::DoctorOptions::default(),
        unix_now(),
    )
    .await?;
    let findings: Vec<Value> = findings
        .into_iter()
        .map(|f| {
            json!({
                "check": f.check,
                "severity": f.severity.as_str(),
                "subject": f.check,
                "message": f.message,
                "fix": f.fix,
            })
        })
        .collect();
    ok(json!({ "findings": findings }))
}

/// `GET /devices` query.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DevicesQuery {
    q: Option<String>,
    status: Option<String>,
    group: Option<String>,
    limit: Option<u32>,
    after: Option<String>,
}

/// `GET /devices`: a page of the device search.
pub(super) async fn list_devices(reg_store: &crate::store::Store, q: DevicesQuery) -> AdminResult {
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(bad_request(format!(
            "limit {limit} is out of range: give 1 to 200"
        )));
    }
    if let Some(st) = &q.status
        && !matches!(st.as_str(), "active" | "suspended" | "revoked")
    {
        return Err(bad_request(format!(
            "status {st:?} is not one of active, suspended, revoked"
        )));
    }
    for (name, v) in [("q", &q.q), ("group", &q.group), ("after", &q.after)] {
        if v.as_ref().is_some_and(|v| v.len() > 256) {
            return Err(bad_request(format!("{name} is longer than 256 bytes")));
        }
    }
    let page = reg_store
        .search_devices(&DeviceQuery {
            q: q.q,
            status: q.status,
            group: q.group.filter(|g| !g.is_empty()),
            after: q.after.filter(|a| !a.is_empty()),
            limit,
        })
        .await?;
    ok(page)
}

/// `GET /devices/{id}`: the device with its certificates, groups,
/// effective scopes and attributes, activity and recent audit events.
pub(super) async fn show_device(reg: &crate::registry::Registry, id: &str) -> AdminResult {
    let (device, certs) = reg.show_device(id).await?;
    let store = &reg.store;
    let mut grants = Vec::new();
    let all_groups = store.list_groups().await?;
    for group in &device.groups {
        if let Some((_, g)) = all_groups.iter().find(|(n, _)| n == group) {
            grants.extend(g.iter().cloned());
        }
        grants.extend(store.role_grants_of(RoleHolder::Group(group)).await?);
    }
    let effective: Vec<Value> = crate::store::merge_grants(grants.iter())
        .into_iter()
        .map(|g| json!({"api": g.api_id, "scopes": g.scopes.join(" ")}))
        .collect();
    let own = store
        .attributes(crate::store::AttrHolder::Device, id)
        .await?;
    let group_attrs = store.device_group_attributes(id).await?;
    let refs: Vec<(&str, &crate::store::attributes::Attributes)> =
        group_attrs.iter().map(|(n, a)| (n.as_str(), a)).collect();
    let attributes = crate::store::attributes::effective_attributes(&own, &refs);
    let seen = store.device_last_seen(id).await?;
    let recent = store
        .audit_page(
            &AuditFilter {
                device: Some(id.to_string()),
                ..AuditFilter::default()
            },
            None,
            20,
        )
        .await?;
    ok(json!({
        "groups": device.groups,
        "device": device,
        "certificates": certs,
        "effective_scopes": effective,
        "attributes": attributes,
        "last_seen": seen.as_ref().map(|(t, _)| *t),
        "last_transport": seen.and_then(|(_, t)| t),
        "recent_audit": recent.iter().map(event_json).collect::<Vec<_>>(),
    }))
}

/// `GET /audit` and `/audit/stream` filters.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct AuditQuery {
    device: Option<String>,
    client: Option<String>,
    subject: Option<String>,
    action: Option<String>,
    outcome: Option<String>,
    since: Option<u64>,
    until: Option<u64>,
    after_id: Option<i64>,
    limit: Option<u32>,
}

impl AuditQuery {
    fn filter(&self) -> Result<AuditFilter, AdminError> {
        let fields = [
            ("device", &self.device),
            ("client", &self.client),
            ("subject", &self.subject),
            ("action", &self.action),
            ("outcome", &self.outcome),
        ];
        for (name, v) in fields {
            if v.as_ref().is_some_and(|v| v.len() > 256) {
                return Err(bad_request(format!("{name} is longer than 256 bytes")));
            }
        }
        let keep = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
        Ok(AuditFilter {
            device: keep(&self.device),
            client: keep(&self.client),
            subject: keep(&self.subject),
            action: keep(&self.action),
            outcome: keep(&self.outcome),
            since_ms: self.since,
            until_ms: self.until,
        })
    }
}

fn event_json((id, e): &(i64, AuditEvent)) -> Value {
    json!({
        "id": id,
        "ts_ms": e.ts_ms,
        "actor": e.actor,
        "action": e.action,
        "subject": e.subject,
        "outcome": e.outcome,
        "detail": e.detail,
    })
}

/// `GET /audit`: a page of the filtered audit log, newest first.
pub(super) async fn audit(store: &crate::store::Store, q: AuditQuery) -> AdminResult {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(bad_request(format!(
            "limit {limit} is out of range: give 1 to 1000"
        )));
    }
    let filter = q.filter()?;
    let items = store.audit_page(&filter, q.after_id, limit + 1).await?;
    let more = items.len() > limit as usize;
    let items: Vec<&(i64, AuditEvent)> = items.iter().take(limit as usize).collect();
    let next = if more {
        items.last().map(|(id, _)| *id)
    } else {
        None
    };
    ok(json!({
        "items": items.into_iter().map(event_json).collect::<Vec<_>>(),
        "next_after_id": next,
    }))
}

/// `GET /audit/stream`: every new matching event as a server-sent event
/// (`id:` the audit id, `data:` the event), from `Last-Event-ID` (or
/// `after_id`) when given, else from now.
async fn audit_stream(
    State(s): State<HttpsState>,
    m: Method,
    h: HeaderMap,
    p: Peer,
    q: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> AdminResult {
    let (reg, session) = authenticate(&s, &m, &h, p.as_ref().map(|e| &e.0)).await?;
    let Query(q) = q.map_err(|e| bad_request(e.body_text()))?;
    let filter = q.filter()?;
    let slot = match &session {
        Some(session) => Some(
            s.ui.open_stream(&session.id_hash, s.config.ui.max_streams_per_session)
                .ok_or_else(|| {
                    AdminError(
                        StatusCode::TOO_MANY_REQUESTS,
                        "too_many_streams",
                        format!(
                            "this session has {} audit streams open already; close one",
                            s.config.ui.max_streams_per_session
                        ),
                    )
                })?,
        ),
        None => None,
    };
    let last_event = h
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    let start = match last_event.or(q.after_id) {
        Some(id) => id,
        None => reg.store.last_audit_id().await?,
    };
    let store = reg.store.clone();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, Infallible>>(16);
    tokio::spawn(async move {
        let _slot = slot;
        let mut after = start;
        let mut since_sent = std::time::Instant::now();
        if tx
            .send(Ok(": certbound audit stream\n\n".into()))
            .await
            .is_err()
        {
            return;
        }
        loop {
            match store.audit_following(&filter, after, 100).await {
                Ok(events) => {
                    for ev in &events {
                        after = ev.0;
                        let frame = format!("id: {}\ndata: {}\n\n", ev.0, event_json(ev));
                        if tx.send(Ok(frame)).await.is_err() {
                            return;
                        }
                        since_sent = std::time::Instant::now();
                    }
                    if events.len() == 100 {
                        continue;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "audit stream: could not read the store"),
            }
            if since_sent.elapsed() >= KEEP_ALIVE {
                if tx.send(Ok(": keep-alive\n\n".into())).await.is_err() {
                    return;
                }
                since_sent = std::time::Instant::now();
            }
            tokio::select! {
                () = tokio::time::sleep(STREAM_POLL) => {}
                () = tx.closed() => return,
            }
        }
    });
    let body = axum::body::Body::from_stream(tokio_stream_of(rx));
    Ok((
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response())
}

/// The receiver as a stream of body chunks.
fn tokio_stream_of(
    rx: tokio::sync::mpsc::Receiver<Result<String, Infallible>>,
) -> impl futures_core_stream::Stream<Item = Result<String, Infallible>> {
    futures_core_stream::ReceiverStream(rx)
}

/// A minimal `Stream` over an mpsc receiver (no extra dependency).
mod futures_core_stream {
    pub use futures_core::Stream;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    pub struct ReceiverStream<T>(pub tokio::sync::mpsc::Receiver<T>);

    impl<T> Stream for ReceiverStream<T> {
        type Item = T;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
            self.0.poll_recv(cx)
        }
    }
}
