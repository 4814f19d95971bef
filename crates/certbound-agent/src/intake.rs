//! Accepting telemetry from a source: bound the size, stamp it with the
//! agent clock, spool it durably, wake the sender.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::clock::Clock;
use crate::error::AgentError;
use crate::spool::{Spool, SpoolError};

/// The spool, shared between the intake and the sender.
pub(crate) type SharedSpool = Arc<Mutex<Spool>>;

/// Locks the spool (a poisoned lock is still usable: every spool operation
/// leaves the index consistent with the files).
pub(crate) fn lock(spool: &SharedSpool) -> MutexGuard<'_, Spool> {
    spool.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs a blocking spool operation off the async threads.
pub(crate) async fn with_spool<T: Send + 'static>(
    spool: &SharedSpool,
    f: impl FnOnce(&mut Spool) -> T + Send + 'static,
) -> Result<T, AgentError> {
    let spool = Arc::clone(spool);
    tokio::task::spawn_blocking(move || f(&mut lock(&spool)))
        .await
        .map_err(|e| {
            AgentError::Spool(SpoolError::Io {
                path: "spool task".into(),
                source: std::io::Error::other(e.to_string()),
            })
        })
}

/// Hands messages from sources to the spool (cheap to clone).
#[derive(Clone)]
pub struct Intake {
    spool: SharedSpool,
    clock: Arc<dyn Clock>,
    wake: Arc<Notify>,
    max_message_bytes: usize,
    refused: Arc<AtomicU64>,
}

impl std::fmt::Debug for Intake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Intake")
            .field("max_message_bytes", &self.max_message_bytes)
            .finish_non_exhaustive()
    }
}

impl Intake {
    pub(crate) fn new(
        spool: SharedSpool,
        clock: Arc<dyn Clock>,
        wake: Arc<Notify>,
        max_message_bytes: usize,
        refused: Arc<AtomicU64>,
    ) -> Self {
        Self {
            spool,
            clock,
            wake,
            max_message_bytes,
            refused,
        }
    }

    /// Largest accepted message.
    pub fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    /// Spools `data` durably and returns its sequence number. Once this
    /// returns `Ok`, the message survives a crash or restart and is sent
    /// until the MQTT server acknowledges it. Refused (never silently
    /// dropped) when it is too large or the spool is full.
    pub async fn submit(&self, data: Vec<u8>) -> Result<u64, AgentError> {
        if data.len() > self.max_message_bytes {
            self.refused.fetch_add(1, Ordering::Relaxed);
            self.wake.notify_one();
            return Err(AgentError::TooLarge {
                len: data.len(),
                max: self.max_message_bytes,
            });
        }
        let timestamp_ms = self.clock.now_ms();
        let outcome = with_spool(&self.spool, move |s| s.push(timestamp_ms, &data)).await?;
        match outcome {
            Ok(seq) => {
                self.wake.notify_one();
                Ok(seq)
            }
            Err(e) => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                // Lets the status show the refusal.
                self.wake.notify_one();
                Err(AgentError::Spool(e))
            }
        }
    }
}
