//! The ingester's replay windows on disk (SQLite, WAL, `synchronous=FULL`),
//! so that a restart never lets an accepted sequence number through again.
//!
//! Write-ahead: a message's sequence number is committed here, merged with
//! what the file holds, BEFORE the message is accepted; a crash after the
//! commit at worst refuses that one message on redelivery, never accepts an
//! old one. The merge runs in one `BEGIN IMMEDIATE` transaction, so several
//! ingesters sharing the file (one data directory, one share group) keep the
//! union of what they accepted, and a sequence number another one already
//! took is refused.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use certbound_verify::ReplayWindow;
use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

/// The replay-window file.
#[derive(Debug, Clone)]
pub struct ReplayStore {
    pool: sqlx::SqlitePool,
}

/// The bitmap as SQLite stores it (INTEGER is signed; the bits are kept).
fn to_db(bits: u64) -> i64 {
    i64::from_ne_bytes(bits.to_ne_bytes())
}

fn from_db(bits: i64) -> u64 {
    u64::from_ne_bytes(bits.to_ne_bytes())
}

/// `window` with `seq` recorded, or `None` when `seq` was accepted before or
/// is older than `width` (pure: the decision of [`ReplayStore::record`]).
pub fn merge(window: Option<ReplayWindow>, seq: u64, width: u64) -> Option<ReplayWindow> {
    match window {
        None => Some(ReplayWindow::new(seq)),
        Some(mut w) => w.accept(seq, width).then_some(w),
    }
}

impl ReplayStore {
    /// Opens (creating it and its directory if needed) the file at `path`.
    pub async fn open(path: &Path) -> anyhow::Result<Self> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // A power loss must not lose an accepted sequence number either.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .with_context(|| format!("opening the replay-window file {}", path.display()))?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS replay_windows (
                device TEXT PRIMARY KEY NOT NULL,
                highest INTEGER NOT NULL,
                seen INTEGER NOT NULL
            ) STRICT",
        )
        .execute(&pool)
        .await
        .with_context(|| format!("creating the replay-window table in {}", path.display()))?;
        Ok(Self { pool })
    }

    /// Every stored window.
    pub async fn load(&self) -> anyhow::Result<Vec<(String, ReplayWindow)>> {
        let rows = sqlx::query("SELECT device, highest, seen FROM replay_windows")
            .fetch_all(&self.pool)
            .await
            .context("reading the replay windows")?;
        rows.iter()
            .map(|r| {
                let highest: i64 = r.try_get("highest")?;
                Ok((
                    r.try_get("device")?,
                    ReplayWindow {
                        highest: from_db(highest),
                        seen: from_db(r.try_get("seen")?),
                    },
                ))
            })
            .collect()
    }

    /// Records `seq` for `device` durably (see the module docs): the window
    /// now stored, or `None` when the stored window already holds `seq` or
    /// has moved past it (a replay).
    pub async fn record(
        &self,
        device: &str,
        seq: u64,
        width: u64,
    ) -> anyhow::Result<Option<ReplayWindow>> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .context("starting a replay-window transaction")?;
        let stored = sqlx::query("SELECT highest, seen FROM replay_windows WHERE device = ?")
            .bind(device)
            .fetch_optional(&mut *tx)
            .await
            .context("reading a replay window")?
            .map(|r| -> anyhow::Result<ReplayWindow> {
                Ok(ReplayWindow {
                    highest: from_db(r.try_get("highest")?),
                    seen: from_db(r.try_get("seen")?),
                })
            })
            .transpose()?;
        let Some(next) = merge(stored, seq, width) else {
            return Ok(None);
        };
        sqlx::query(
            "INSERT INTO replay_windows (device, highest, seen) VALUES (?, ?, ?)
             ON CONFLICT (device) DO UPDATE SET highest = excluded.highest, seen = excluded.seen",
        )
        .bind(device)
        .bind(to_db(next.highest))
        .bind(to_db(next.seen))
        .execute(&mut *tx)
        .await
        .context("writing a replay window")?;
        tx.commit().await.context("committing a replay window")?;
        Ok(Some(next))
    }

    /// Closes the file.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_refuses_what_the_window_holds() {
        let w = merge(None, 10, 64).unwrap();
        assert_eq!(w, ReplayWindow::new(10));
        assert_eq!(merge(Some(w), 10, 64), None);
        let w = merge(Some(w), 8, 64).unwrap();
        assert_eq!(merge(Some(w), 8, 64), None);
        let w = merge(Some(w), 100, 64).unwrap();
        assert_eq!(w.highest, 100);
        // Older than the window.
        assert_eq!(merge(Some(w), 30, 64), None);
    }

    #[test]
    fn bitmaps_survive_the_signed_column() {
        for bits in [0, 1, u64::MAX, 1 << 63, 0x8000_0000_0000_0001] {
            assert_eq!(from_db(to_db(bits)), bits);
        }
    }

    #[tokio::test]
    async fn windows_survive_a_reopen_and_old_seqs_stay_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ingest/replay.sqlite3");
        let store = ReplayStore::open(&path).await.unwrap();
        assert!(store.record("sensor-1", 1, 64).await.unwrap().is_some());
        assert!(store.record("sensor-1", 2, 64).await.unwrap().is_some());
        assert!(store.record("sensor-1", 2, 64).await.unwrap().is_none());
        assert!(store.record("sensor-2", 7, 64).await.unwrap().is_some());
        store.close().await;

        let store = ReplayStore::open(&path).await.unwrap();
        let mut loaded = store.load().await.unwrap();
        loaded.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(loaded.len(), 2);
        assert_eq!(loaded[0].0, "sensor-1");
        assert_eq!(loaded[0].1.highest, 2);
        for seq in [1, 2] {
            assert!(store.record("sensor-1", seq, 64).await.unwrap().is_none());
        }
        assert!(store.record("sensor-1", 3, 64).await.unwrap().is_some());
        store.close().await;
    }
}
