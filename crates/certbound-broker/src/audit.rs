//! The audit log writer: events are queued and appended in batches by one
//! background task, so the token hot path never waits for a disk write.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::store::{AuditEvent, Store};

/// Queue handle (cheap to clone).
#[derive(Debug, Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<AuditEvent>,
}

/// Most events written in one transaction.
const BATCH: usize = 512;

impl AuditLog {
    /// Starts the writer task. Dropping every [`AuditLog`] clone ends it after
    /// it has written what was queued; await the handle to be sure.
    pub fn spawn(store: Store) -> (Self, JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<AuditEvent>(16 * 1024);
        let handle = tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            while rx.recv_many(&mut batch, BATCH).await > 0 {
                // Retry a failed write a few times rather than dropping events.
                let mut attempt = 0u32;
                while let Err(e) = store.append_audit(&batch).await {
                    attempt += 1;
                    tracing::error!(error = %e, attempt, events = batch.len(), "audit write failed");
                    if attempt >= 5 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                }
                batch.clear();
            }
        });
        (Self { tx }, handle)
    }

    /// Queues an event (waits only when the queue is full).
    pub async fn record(&self, event: AuditEvent) {
        if self.tx.send(event).await.is_err() {
            tracing::error!("audit writer has stopped; event not recorded");
        }
    }
}
