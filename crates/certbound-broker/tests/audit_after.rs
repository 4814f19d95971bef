//! `Store::audit_after` / `recent_audit_with_ids`: the queries behind
//! `certbound audit tail --follow`.

use certbound_broker::store::AuditEvent;

fn event(subject: &str, action: &str) -> AuditEvent {
    AuditEvent {
        ts_ms: 1_700_000_000_000,
        actor: "cli".into(),
        action: action.into(),
        subject: subject.into(),
        outcome: "ok".into(),
        detail: String::new(),
    }
}

async fn audit_after_returns_newer_events_in_order_for_a_subject() {
    let dir = tempfile::tempdir().unwrap();
    let store = certbound_broker::store::testing::current()
        .open(dir.path())
        .await;
    assert_eq!(store.last_audit_id().await.unwrap(), 0);
    store
        .append_audit(&[event("a", "one"), event("b", "two"), event("a", "three")])
        .await
        .unwrap();
    let recent = store.recent_audit_with_ids(Some("a"), 1).await.unwrap();
    assert_eq!(recent.len(), 1);
    assert_eq!(recent[0].1.action, "three");
    let last = store.last_audit_id().await.unwrap();
    assert_eq!(last, recent[0].0);

    assert!(store.audit_after(last, None, 10).await.unwrap().is_empty());
    store
        .append_audit(&[event("b", "four"), event("a", "five"), event("a", "six")])
        .await
        .unwrap();
    let all: Vec<String> = store
        .audit_after(last, None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, e)| e.action)
        .collect();
    assert_eq!(all, ["four", "five", "six"]);
    let for_a = store.audit_after(last, Some("a"), 1).await.unwrap();
    assert_eq!(for_a.len(), 1);
    assert_eq!(for_a[0].1.action, "five");
    let rest = store.audit_after(for_a[0].0, Some("a"), 10).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].1.action, "six");
    store.close().await;
}

certbound_broker::store::on_every_backend!(audit_after_returns_newer_events_in_order_for_a_subject);
