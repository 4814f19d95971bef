//! Two processes' worth of writers on one database (the running broker's
//! audit writer and a CLI command) must not fail with "database is locked"
//! or see each other's half-done checks: write transactions are serialised
//! (SQLite: BEGIN IMMEDIATE waits for the lock; PostgreSQL: an advisory lock).

use certbound_broker::store::{AuditEvent, Store};

async fn concurrent_writers_on_two_pools_never_see_busy() {
    let dir = tempfile::tempdir().unwrap();
    let url = certbound_broker::store::testing::current().url_for(dir.path());
    let (broker, _) = Store::connect_and_migrate(&url).await.unwrap();
    let cli = Store::connect(&url).await.unwrap();
    let audit = tokio::spawn(async move {
        for i in 0..300u64 {
            let event = AuditEvent {
                ts_ms: i,
                actor: "broker".into(),
                action: "token.issued".into(),
                subject: format!("d{i}"),
                outcome: "ok".into(),
                detail: String::new(),
            };
            broker.append_audit(&[event]).await.unwrap();
        }
        broker
    });
    // Each create_group reads (does it exist?) then writes, in one transaction.
    for i in 0..100 {
        cli.create_group(&format!("group-{i}"), &[], 1)
            .await
            .unwrap();
    }
    let broker = audit.await.unwrap();
    assert_eq!(cli.list_groups().await.unwrap().len(), 100);
    assert_eq!(broker.recent_audit(None, 1000).await.unwrap().len(), 300);
}

certbound_broker::store::on_every_backend!(concurrent_writers_on_two_pools_never_see_busy);
