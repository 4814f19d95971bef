//! Commits of revocations and issued-token records must survive a power
//! loss: every pooled connection runs with `synchronous=FULL` (2). A real
//! power-loss test is not possible here; this checks the setting on the
//! connections that make those commits.

use super::Store;

async fn synchronous(conn: &mut sqlx::AnyConnection) -> i64 {
    sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn every_connection_commits_with_synchronous_full() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("certbound.db")).await.unwrap();
    // Hold every connection of the pool at once, so each one is checked.
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut conn = store.pool.acquire().await.unwrap();
        assert_eq!(synchronous(&mut conn).await, 2, "synchronous must be FULL");
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        held.push(conn);
    }
    drop(held);
    // Inside a write transaction (how revocations and token records commit).
    let mut tx = store.begin_write().await.unwrap();
    assert_eq!(synchronous(&mut tx).await, 2);
    tx.commit().await.unwrap();
    store.close().await;
}
