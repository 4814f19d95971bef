//! The audit log writer: events and issued-token records are queued and
//! appended in batches by one background task.
//!
//! * **Token records are durable before the token is handed out.** The
//!   token services await [`AuditLog::record_issued`]: the record goes into
//!   the next batch (one transaction with whatever else is queued, so
//!   concurrent requests share a commit) and the call returns once that
//!   batch is committed. When the write fails, every token record of the
//!   batch is refused and those tokens are never handed out (the request is
//!   answered "unavailable", 503 / 5.03); when more records are pending than
//!   the queue holds, new ones are refused at once. A token that exists
//!   therefore always has a record, so it can always be revoked.
//! * **Events are never dropped silently.** A failed batch of events is kept
//!   and retried with backoff (up to [`MAX_PENDING_EVENTS`]; past that the
//!   oldest are dropped, counted in `certbound_audit_events_dropped_total`
//!   and logged).
//! * **Unauthenticated refusals are aggregated.** The first refusal per
//!   (action, subject, outcome, transport, peer, reason) in a window is written as
//!   it is; the others of the window are counted and written as one row
//!   (`repeated=N`) when the window ends. `certbound_unauthenticated_refusals_total`
//!   counts every one.
//! * **Fields are bounded and escaped** when written ([`sanitize`]): control
//!   characters and bidirectional-text controls become `\u{..}` escapes, and
//!   a field longer than [`FIELD_MAX`] ([`DETAIL_MAX`] for `detail`) bytes is
//!   cut and marked `…[truncated, N bytes]`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::metrics::Metrics;
pub use crate::store::audit_fields::{DETAIL_MAX, FIELD_MAX, bound_field, escape_field, sanitize};
use crate::store::{AuditEvent, IssuedToken, Store};

/// Events kept in memory while the store cannot be written.
pub const MAX_PENDING_EVENTS: usize = 100_000;
/// Records queued for the writer (events and token records); a token record
/// that finds the queue full is refused at once.
pub const QUEUE: usize = 16 * 1024;
/// Distinct aggregation keys per window; further keys share one
/// `peer=(other)` key.
const MAX_KEYS: usize = 4096;
/// Most events written in one transaction.
const BATCH: usize = 512;
/// Longest wait between two attempts while the store fails.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// One queued write.
#[derive(Debug)]
enum Record {
    Event(AuditEvent),
    Issued(IssuedToken, oneshot::Sender<bool>),
}

/// Why a token record was not kept (the token must not be handed out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecordLost {
    /// More records are pending than the queue holds (the store is slow or
    /// failing).
    #[error("too many issued-token records are pending; the store is not keeping up")]
    Backlog,
    /// The write failed (see the log) or did not finish in time.
    #[error("the issued-token record could not be written")]
    WriteFailed,
    /// The writer has stopped (shutdown).
    #[error("the audit writer has stopped")]
    Stopped,
}

/// How long a token service waits for its record before answering
/// "unavailable".
pub const RECORD_TIMEOUT: Duration = Duration::from_secs(5);

/// Settings of the writer.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// The aggregation window for unauthenticated refusals.
    pub window: Duration,
    /// Where the counters go.
    pub metrics: Arc<Metrics>,
}

impl Default for AuditOptions {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(60),
            metrics: Arc::default(),
        }
    }
}

/// Queue handle (cheap to clone).
#[derive(Debug, Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Record>,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    aggregator: Mutex<Aggregator>,
    metrics: Arc<Metrics>,
}

impl AuditLog {
    /// Starts the writer task with default options. Dropping every
    /// [`AuditLog`] clone ends it after it has written what was queued;
    /// await the handle to be sure.
    pub fn spawn(store: Store) -> (Self, JoinHandle<()>) {
        Self::spawn_with(store, AuditOptions::default())
    }

    /// Starts the writer task.
    pub fn spawn_with(store: Store, options: AuditOptions) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel::<Record>(QUEUE);
        let window = options.window.max(Duration::from_millis(10));
        let shared = Arc::new(Shared {
            aggregator: Mutex::new(Aggregator::new(window)),
            metrics: options.metrics,
        });
        // The writer runs on a thread of its own (a current-thread runtime
        // on tokio's blocking pool), not among the request tasks: every
        // token waits for the batch it is in, and a batch takes several
        // awaits (begin, inserts, commit). On the shared workers, each of
        // those waited its turn behind hundreds of request tasks doing
        // signature work (1-5 ms per await under load, measured), so the
        // batches, and every token, were slow while the cores idled.
        let writer_shared = shared.clone();
        let handle = tokio::task::spawn_blocking(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(writer(store, rx, writer_shared, window)),
                // Without its runtime the writer cannot run: dropping the
                // receiver refuses every token record (`RecordLost::Stopped`).
                Err(e) => tracing::error!(error = %e, "the audit writer could not start"),
            }
        });
        (Self { tx, shared }, handle)
    }

    /// Queues an event (waits only when the queue is full). Refusals of
    /// unauthenticated requests are aggregated (see the module docs).
    pub async fn record(&self, event: AuditEvent) {
        let admitted = match self.shared.aggregator.lock() {
            Ok(mut agg) => agg.admit(event, &self.shared.metrics),
            Err(p) => p.into_inner().admit(event, &self.shared.metrics),
        };
        let Some(event) = admitted else { return };
        if self.tx.send(Record::Event(event)).await.is_err() {
            tracing::error!("audit writer has stopped; event not recorded");
        }
    }

    /// Records an issued token (introspection, revocation and status lists
    /// read it) and returns once the record is committed. On `Err` the
    /// token must not be handed out: nobody could ever revoke it.
    pub async fn record_issued(&self, token: IssuedToken) -> Result<(), RecordLost> {
        let (ack, done) = oneshot::channel();
        self.tx
            .try_send(Record::Issued(token, ack))
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => RecordLost::Backlog,
                mpsc::error::TrySendError::Closed(_) => RecordLost::Stopped,
            })?;
        match tokio::time::timeout(RECORD_TIMEOUT, done).await {
            Ok(Ok(true)) => Ok(()),
            Ok(Ok(false)) => Err(RecordLost::WriteFailed),
            Ok(Err(_)) => Err(RecordLost::Stopped),
            Err(_) => Err(RecordLost::WriteFailed),
        }
    }
}

async fn writer(
    store: Store,
    mut rx: mpsc::Receiver<Record>,
    shared: Arc<Shared>,
    window: Duration,
) {
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + window, window);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch = Vec::with_capacity(BATCH);
    let mut pending: VecDeque<AuditEvent> = VecDeque::new();
    let mut failures = 0u32;
    let mut closed = false;
    loop {
        if !closed {
            tokio::select! {
                n = rx.recv_many(&mut batch, BATCH) => closed = n == 0,
                _ = ticker.tick() => {}
            }
        }
        {
            let mut agg = match shared.aggregator.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            // At shutdown, the counts of the unfinished window too.
            pending.extend(if closed {
                agg.flush_all()
            } else {
                agg.flush_due()
            });
        }
        let mut issued = Vec::new();
        let mut acks = Vec::new();
        for record in batch.drain(..) {
            match record {
                Record::Event(e) => pending.push_back(e),
                Record::Issued(t, ack) => {
                    issued.push(t);
                    acks.push(ack);
                }
            }
        }
        if pending.is_empty() && issued.is_empty() {
            if closed {
                break;
            }
            continue;
        }
        let take = pending.len().min(BATCH * 8);
        let events: Vec<AuditEvent> = pending.iter().take(take).cloned().collect();
        match write(&store, &events, &issued).await {
            Ok(()) => {
                pending.drain(..take);
                for ack in acks {
                    let _ = ack.send(true);
                }
                if failures > 0 {
                    tracing::info!(failures, "audit writes succeed again");
                }
                failures = 0;
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                shared.metrics.audit_write_failed();
                tracing::error!(
                    error = %e,
                    attempt = failures,
                    events = events.len(),
                    token_records = issued.len(),
                    "audit write failed: the tokens of this batch are refused (not handed out), the events are kept and retried"
                );
                for ack in acks {
                    let _ = ack.send(false);
                }
                if pending.len() > MAX_PENDING_EVENTS {
                    let over = pending.len() - MAX_PENDING_EVENTS;
                    pending.drain(..over);
                    shared.metrics.audit_events_dropped(over as u64);
                    tracing::error!(
                        dropped = over,
                        "the store has been unwritable too long: the oldest audit events were dropped"
                    );
                }
                if closed && failures >= 5 {
                    break;
                }
                let backoff = Duration::from_millis(25u64 << failures.min(6)).min(MAX_BACKOFF);
                tokio::time::sleep(backoff).await;
            }
        }
    }
    if !pending.is_empty() {
        shared.metrics.audit_events_dropped(pending.len() as u64);
        tracing::error!(
            lost = pending.len(),
            "audit events could not be written before shutdown"
        );
    }
}

async fn write(
    store: &Store,
    events: &[AuditEvent],
    issued: &[IssuedToken],
) -> Result<(), crate::store::StoreError> {
    store.record_issued_with_events(issued, events).await
}

/// Aggregation key: (action, subject, outcome, transport, peer, reason).
type Key = (String, String, String, String, String, String);

#[derive(Debug)]
struct Aggregate {
    /// Refusals not written as a row (after the first).
    repeated: u64,
    /// The first refusal of the window (its actor and detail are reused).
    first: AuditEvent,
}

/// Counts refusals of unauthenticated requests per key and window.
#[derive(Debug)]
struct Aggregator {
    window: Duration,
    started: std::time::Instant,
    keys: HashMap<Key, Aggregate>,
}

/// Whether `e` is a refusal of an unauthenticated request: nobody was
/// authenticated (`(unauthenticated)`) or authentication failed
/// (`invalid_client`, the subject then being only what the caller claimed).
fn aggregated(e: &AuditEvent) -> bool {
    e.outcome != "ok" && (e.subject == "(unauthenticated)" || e.outcome == "invalid_client")
}

/// The reason of a detail: what follows its leading `transport=`, `peer=`
/// and `x5t=` words (the thumbprint is the caller's choice, so it is not part
/// of the aggregation key; the reason is one of the refusal texts).
fn detail_reason(detail: &str) -> &str {
    let mut rest = detail.trim_start();
    loop {
        let word = rest.split(' ').next().unwrap_or("");
        let known = ["transport=", "peer=", "x5t="]
            .iter()
            .any(|p| word.starts_with(p));
        if !known || word.is_empty() {
            return rest;
        }
        rest = rest[word.len()..].trim_start();
    }
}

/// The stable part of a refusal reason, for the aggregation key: the text
/// before its first digit, quote, parenthesis or colon (where offsets, ids
/// and parser details begin), at most 48 bytes. Garbage whose reasons differ
/// only in such details shares one row; different kinds of refusal
/// ("unknown certificate thumbprint", "request signature ...") keep their own.
fn reason_class(reason: &str) -> String {
    let end = reason
        .find(|c: char| c.is_ascii_digit() || matches!(c, '"' | '\'' | '(' | ':' | '{' | '['))
        .unwrap_or(reason.len());
    bound_field(reason[..end].trim(), 48)
}

/// The value of `name=` among the leading `key=value` words of a detail.
fn detail_field<'a>(detail: &'a str, name: &str) -> &'a str {
    detail
        .split(' ')
        .take(4)
        .find_map(|w| w.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
        .unwrap_or("")
}

impl Aggregator {
    fn new(window: Duration) -> Self {
        Self {
            window,
            started: std::time::Instant::now(),
            keys: HashMap::new(),
        }
    }

    /// `Some(event)`: write it; `None`: counted into its key's summary.
    fn admit(&mut self, event: AuditEvent, metrics: &Metrics) -> Option<AuditEvent> {
        if !aggregated(&event) {
            return Some(event);
        }
        let transport = detail_field(&event.detail, "transport").to_string();
        metrics.unauthenticated_refusal(&transport, &event.outcome);
        let cut = |s: &str| bound_field(s, 64);
        let mut key: Key = (
            cut(&event.action),
            cut(&event.subject),
            cut(&event.outcome),
            cut(&transport),
            cut(detail_field(&event.detail, "peer")),
            reason_class(detail_reason(&event.detail)),
        );
        if !self.keys.contains_key(&key) && self.keys.len() >= MAX_KEYS {
            key.1 = "(other)".into();
            key.4 = "(other)".into();
            key.5 = "(other)".into();
        }
        match self.keys.get_mut(&key) {
            Some(a) => {
                a.repeated += 1;
                None
            }
            None => {
                self.keys.insert(
                    key,
                    Aggregate {
                        repeated: 0,
                        first: event.clone(),
                    },
                );
                Some(event)
            }
        }
    }

    /// The summaries of the window, when it has ended.
    fn flush_due(&mut self) -> Vec<AuditEvent> {
        if self.started.elapsed() < self.window {
            return Vec::new();
        }
        self.flush_all()
    }

    /// The summaries of every key (the window restarts).
    fn flush_all(&mut self) -> Vec<AuditEvent> {
        let window = self.started.elapsed().as_secs().max(1);
        self.started = std::time::Instant::now();
        let now_ms = crate::clock::unix_now().saturating_mul(1000);
        self.keys
            .drain()
            .filter(|(_, a)| a.repeated > 0)
            .map(|((action, subject, outcome, transport, peer, _), a)| {
                let mut detail = format!("transport={transport}");
                if !peer.is_empty() {
                    detail.push_str(&format!(" peer={peer}"));
                }
                detail.push_str(&format!(
                    " repeated={} window_s={window} (refusals like the one logged at ts_ms={}, not logged one by one; first: {})",
                    a.repeated, a.first.ts_ms, a.first.detail
                ));
                AuditEvent {
                    ts_ms: now_ms,
                    actor: a.first.actor,
                    action,
                    subject,
                    outcome,
                    detail,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
