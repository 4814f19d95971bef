//! The audit log writer: events (and issued-token records) are queued and
//! appended in batches by one background task, so the token hot path never
//! waits for a disk write.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::store::{AuditEvent, IssuedToken, Store};

/// One queued write.
#[derive(Debug)]
enum Record {
    Event(AuditEvent),
    Issued(IssuedToken),
}

/// Queue handle (cheap to clone).
#[derive(Debug, Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Record>,
}

/// Most events written in one transaction.
const BATCH: usize = 512;

impl AuditLog {
    /// Starts the writer task. Dropping every [`AuditLog`] clone ends it after
    /// it has written what was queued; await the handle to be sure.
    pub fn spawn(store: Store) -> (Self, JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<Record>(16 * 1024);
        let handle = tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            while rx.recv_many(&mut batch, BATCH).await > 0 {
                let mut events = Vec::new();
                let mut issued = Vec::new();
                for record in batch.drain(..) {
                    match record {
                        Record::Event(e) => events.push(e),
                        Record::Issued(t) => issued.push(t),
                    }
                }
                // Retry a failed write a few times rather than dropping events.
                let mut attempt = 0u32;
                while let Err(e) = write(&store, &events, &issued).await {
                    attempt += 1;
                    tracing::error!(error = %e, attempt, events = batch.len(), "audit write failed");
                    if attempt >= 5 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                }
            }
        });
        (Self { tx }, handle)
    }

    /// Queues an event (waits only when the queue is full).
    pub async fn record(&self, event: AuditEvent) {
        if self.tx.send(Record::Event(event)).await.is_err() {
            tracing::error!("audit writer has stopped; event not recorded");
        }
    }

    /// Queues the record of an issued token (introspection, revocation and
    /// status lists read it).
    pub async fn record_issued(&self, token: IssuedToken) {
        if self.tx.send(Record::Issued(token)).await.is_err() {
            tracing::error!("audit writer has stopped; issued token not recorded");
        }
    }
}

async fn write(
    store: &Store,
    events: &[AuditEvent],
    issued: &[IssuedToken],
) -> Result<(), crate::error::BrokerError> {
    store.record_issued(issued).await?;
    if !events.is_empty() {
        store.append_audit(events).await?;
    }
    Ok(())
}
