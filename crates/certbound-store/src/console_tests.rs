//! The console's store: sessions, one-time login tokens, heartbeats, the
//! dashboard aggregates, the device search and the audit filters, on every
//! backend.

use crate::testing::{bulk_devices, current};
use crate::{AuditEvent, AuditFilter, DeviceQuery, DeviceStatus, LoginTokenRefusal, UiSession};

fn event(
    ts_ms: u64,
    actor: &str,
    action: &str,
    subject: &str,
    outcome: &str,
    detail: &str,
) -> AuditEvent {
    AuditEvent {
        ts_ms,
        actor: actor.into(),
        action: action.into(),
        subject: subject.into(),
        outcome: outcome.into(),
        detail: detail.into(),
    }
}

async fn sessions_and_login_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let store = current().open(dir.path()).await;
    let s = UiSession {
        id_hash: "ab".repeat(32),
        actor: "admin-client:cb_x".into(),
        scopes: "admin:read".into(),
        csrf_token: "csrf".into(),
        created_at: 1000,
        last_seen: 1000,
        expires_at: 5000,
    };
    store.create_ui_session(&s).await.unwrap();
    assert_eq!(store.ui_session(&s.id_hash).await.unwrap(), Some(s.clone()));
    assert_eq!(store.ui_session("cd").await.unwrap(), None);
    store.touch_ui_session(&s.id_hash, 1500).await.unwrap();
    // Never backwards.
    store.touch_ui_session(&s.id_hash, 1200).await.unwrap();
    assert_eq!(
        store
            .ui_session(&s.id_hash)
            .await
            .unwrap()
            .unwrap()
            .last_seen,
        1500
    );
    // Idle past 300 s at 1900: pruned; a live one stays.
    let live = UiSession {
        id_hash: "ef".repeat(32),
        last_seen: 1800,
        ..s.clone()
    };
    store.create_ui_session(&live).await.unwrap();
    assert_eq!(store.prune_ui_sessions(1900, 300).await.unwrap(), 1);
    assert!(store.ui_session(&s.id_hash).await.unwrap().is_none());
    assert!(store.delete_ui_session(&live.id_hash).await.unwrap());
    assert!(!store.delete_ui_session(&live.id_hash).await.unwrap());

    // One-time tokens: once, not after expiry, unknown ones refused.
    store
        .create_ui_login_token("t1", "alice", 100, 400)
        .await
        .unwrap();
    store
        .create_ui_login_token("t2", "bob", 100, 200)
        .await
        .unwrap();
    assert!(store.ui_login_token_usable("t1", 150).await.unwrap());
    assert!(
        store.ui_login_token_usable("t1", 150).await.unwrap(),
        "looking does not consume"
    );
    assert_eq!(
        store.consume_ui_login_token("t1", 150).await.unwrap(),
        Ok("alice".into())
    );
    assert_eq!(
        store.consume_ui_login_token("t1", 151).await.unwrap(),
        Err(LoginTokenRefusal::Used)
    );
    assert!(!store.ui_login_token_usable("t1", 151).await.unwrap());
    assert_eq!(
        store.consume_ui_login_token("t2", 200).await.unwrap(),
        Err(LoginTokenRefusal::Expired)
    );
    assert_eq!(
        store.consume_ui_login_token("nope", 150).await.unwrap(),
        Err(LoginTokenRefusal::Unknown)
    );
    // Two racing consumers: exactly one wins.
    store
        .create_ui_login_token("t3", "carol", 100, 400)
        .await
        .unwrap();
    let (a, b) = tokio::join!(
        store.consume_ui_login_token("t3", 150),
        store.consume_ui_login_token("t3", 150)
    );
    assert_eq!(
        [a.unwrap().is_ok(), b.unwrap().is_ok()]
            .iter()
            .filter(|w| **w)
            .count(),
        1
    );

    store
        .heartbeat("https://a:1", 10, "kid=1", 20)
        .await
        .unwrap();
    store
        .heartbeat("https://a:1", 10, "kid=2", 40)
        .await
        .unwrap();
    store
        .heartbeat("https://b:1", 15, "kid=3", 30)
        .await
        .unwrap();
    let hb = store.instance_heartbeats().await.unwrap();
    assert_eq!(hb.len(), 2);
    assert_eq!(
        (hb[0].id.as_str(), hb[0].last_seen, hb[0].detail.as_str()),
        ("https://a:1", 40, "kid=2")
    );
}

async fn dashboard_aggregates() {
    let dir = tempfile::tempdir().unwrap();
    let store = current().open(dir.path()).await;
    let now = 1_800_000_000u64; // a minute boundary: 30 000 000 * 60
    let day = 86_400;
    // 3 devices: one overdue (past 3/4 of its lifetime), one fresh, one suspended.
    bulk_devices(&store, "dev-", 1, 1, &[], now - 80 * day, now + 10 * day)
        .await
        .unwrap();
    bulk_devices(&store, "dev-", 2, 1, &[], now - day, now + 89 * day)
        .await
        .unwrap();
    bulk_devices(&store, "dev-", 3, 1, &[], now - 80 * day, now + 10 * day)
        .await
        .unwrap();
    store
        .set_device_status("dev-000003", DeviceStatus::Suspended, now)
        .await
        .unwrap();
    // An older, long-expired certificate of dev-2: its newest is fresh, so
    // dev-2 is not overdue.
    store
        .add_certificate(
            &crate::testing::fake_cert("dev-000002", 99, now - 80 * day, now - day),
            now,
        )
        .await
        .unwrap();
    let c = store.device_status_counts().await.unwrap();
    assert_eq!((c.active, c.suspended, c.revoked), (2, 1, 0));
    let buckets = store.cert_expiry_by_day(now, 90).await.unwrap();
    assert_eq!(buckets.len(), 90);
    assert_eq!(buckets[10], ((now / day + 10) * day, 2));
    assert_eq!(buckets[89].1, 1);
    assert_eq!(buckets.iter().map(|b| b.1).sum::<u64>(), 3);

    let ms = now * 1000;
    store
        .append_audit(&[
            event(
                ms - 5_000,
                "device:dev-000001",
                "token.issued",
                "dev-000001",
                "ok",
                "transport=coap peer=1.2.3.4 expires_in=60",
            ),
            event(
                ms - 4_000,
                "device:dev-000001",
                "token.issued",
                "dev-000001",
                "ok",
                "transport=mqtt expires_in=60",
            ),
            event(
                ms + 1_000,
                "client:cb_1",
                "token.issued",
                "cb_1",
                "ok",
                "transport=https auth=client_secret_basic",
            ),
            event(
                ms + 2_000,
                "device:dev-000002",
                "token.issued",
                "dev-000002",
                "ok",
                "transport=https x5t=ab",
            ),
            event(
                ms - 3_600_000,
                "device:dev-000002",
                "token.issued",
                "dev-000002",
                "ok",
                "transport=coap",
            ),
            event(
                ms - 1_000,
                "device:dev-000003",
                "token.refused",
                "dev-000003",
                "unauthorized_client",
                "transport=coap device suspended",
            ),
            event(
                ms - 2_000,
                "device:dev-000003",
                "token.refused",
                "dev-000003",
                "unauthorized_client",
                "transport=coap device suspended",
            ),
            event(
                ms - 3_000,
                "device:x",
                "token.refused",
                "(unauthenticated)",
                "invalid_client",
                "transport=coap",
            ),
            event(
                ms - 10_000,
                "device:dev-000001",
                "cert.renewal_refused",
                "dev-000001",
                "invalid_request",
                "transport=coap",
            ),
            event(
                ms - 20_000,
                "device:dev-000002",
                "cert.renewal_refused",
                "dev-000002",
                "invalid_request",
                "transport=coap",
            ),
            event(
                ms - 9_000,
                "device:dev-000002",
                "cert.renewed",
                "dev-000002",
                "ok",
                "transport=coap",
            ),
        ])
        .await
        .unwrap();
    let minutes = store.tokens_per_minute(now, 60).await.unwrap();
    assert_eq!(minutes.len(), 60);
    assert_eq!(minutes[59].minute, now);
    assert_eq!(
        (
            minutes[59].coap,
            minutes[59].mqtt,
            minutes[59].https,
            minutes[59].oauth
        ),
        (0, 0, 1, 1)
    );
    assert_eq!((minutes[58].coap, minutes[58].mqtt), (1, 1));
    assert_eq!(
        minutes.iter().map(|m| m.coap).sum::<u64>(),
        1,
        "an hour ago is outside the window"
    );
    let refusals = store.refusals_by_reason(ms - 3_600_000).await.unwrap();
    assert_eq!(
        refusals,
        vec![
            ("unauthorized_client".into(), 2),
            ("invalid_client".into(), 1)
        ]
    );
    let r = store
        .renewal_health(ms - 30 * day * 1000, now)
        .await
        .unwrap();
    assert_eq!((r.renewed, r.failing, r.overdue), (1, 1, 1));
}

async fn device_search_pages_and_filters() {
    let dir = tempfile::tempdir().unwrap();
    let store = current().open(dir.path()).await;
    store.create_group("g1", &[], 1).await.unwrap();
    bulk_devices(
        &store,
        "sensor-",
        0,
        250,
        &["g1".into()],
        1000,
        2_000_000_000,
    )
    .await
    .unwrap();
    bulk_devices(&store, "gateway-", 1000, 20, &[], 1000, 2_000_000_000)
        .await
        .unwrap();
    store
        .set_device_status("sensor-000007", DeviceStatus::Revoked, 2000)
        .await
        .unwrap();
    store
        .append_audit(&[event(
            5_000_000,
            "device:sensor-000001",
            "token.issued",
            "sensor-000001",
            "ok",
            "transport=mqtt",
        )])
        .await
        .unwrap();

    let all = store
        .search_devices(&DeviceQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.total, 270);
    assert_eq!(all.items.len(), 100);
    assert_eq!(all.items[0].id, "gateway-001000");
    // Prefix, paged.
    let q = |after: Option<String>| DeviceQuery {
        q: Some("sensor-0001".into()),
        limit: 40,
        after,
        ..Default::default()
    };
    let p1 = store.search_devices(&q(None)).await.unwrap();
    assert_eq!(p1.total, 100);
    assert_eq!(p1.items.first().unwrap().id, "sensor-000100");
    assert_eq!(p1.next.as_deref(), Some("sensor-000139"));
    let p3 = store
        .search_devices(&q(Some("sensor-000179".into())))
        .await
        .unwrap();
    assert_eq!(p3.items.len(), 20);
    assert_eq!(p3.items.last().unwrap().id, "sensor-000199");
    assert_eq!(p3.next, None);
    // Substring, status, group.
    let sub = store
        .search_devices(&DeviceQuery {
            q: Some("00101".into()),
            limit: 50,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut expected: Vec<String> = (1010..1020).map(|i| format!("gateway-{i:06}")).collect();
    expected.push("sensor-000101".into());
    assert_eq!(
        sub.items.iter().map(|d| d.id.clone()).collect::<Vec<_>>(),
        expected
    );
    assert!(sub.items.iter().all(|d| d.id.contains("00101")));
    assert_eq!(sub.total, sub.items.len() as u64);
    let revoked = store
        .search_devices(&DeviceQuery {
            status: Some("revoked".into()),
            limit: 50,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        (revoked.total, revoked.items[0].id.as_str()),
        (1, "sensor-000007")
    );
    let grouped = store
        .search_devices(&DeviceQuery {
            group: Some("g1".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(grouped.total, 250);
    assert_eq!(grouped.items[1].groups, vec!["g1".to_string()]);
    assert_eq!(grouped.items[1].cert_not_after, Some(2_000_000_000));
    assert_eq!(grouped.items[1].last_seen, Some(5000));
    assert_eq!(grouped.items[1].last_transport.as_deref(), Some("mqtt"));
    assert_eq!(grouped.items[0].last_seen, None);
    // Nothing matches: an empty last page.
    let none = store
        .search_devices(&DeviceQuery {
            q: Some("zzz".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((none.total, none.items.len(), none.next), (0, 0, None));
}

async fn audit_filters_and_following() {
    let dir = tempfile::tempdir().unwrap();
    let store = current().open(dir.path()).await;
    let first = store.last_audit_id().await.unwrap();
    store
        .append_audit(&[
            event(
                1000,
                "device:d1",
                "token.issued",
                "d1",
                "ok",
                "transport=coap",
            ),
            event(
                2000,
                "device:d2",
                "token.refused",
                "d2",
                "unauthorized_client",
                "transport=coap",
            ),
            event(
                3000,
                "client:cb_1",
                "token.issued",
                "cb_1",
                "ok",
                "transport=https",
            ),
            event(4000, "admin:cb_1", "device.suspended", "d1", "ok", ""),
            event(
                5000,
                "device:d1",
                "cert.renewed",
                "d1",
                "ok",
                "transport=mqtt",
            ),
        ])
        .await
        .unwrap();
    let ids = |v: Vec<(i64, AuditEvent)>| v.into_iter().map(|(_, e)| e.ts_ms).collect::<Vec<_>>();
    let all = AuditFilter::default();
    assert_eq!(
        ids(store.audit_page(&all, None, 10).await.unwrap()),
        [5000, 4000, 3000, 2000, 1000]
    );
    let page = store.audit_page(&all, None, 2).await.unwrap();
    let before = page[1].0;
    assert_eq!(
        ids(store.audit_page(&all, Some(before), 2).await.unwrap()),
        [3000, 2000]
    );
    let store = &store;
    assert_eq!(
        ids(store
            .audit_page(
                &AuditFilter {
                    device: Some("d1".into()),
                    ..Default::default()
                },
                None,
                10
            )
            .await
            .unwrap()),
        [5000, 4000, 1000]
    );
    let by = |filter: AuditFilter| async move {
        ids(store.audit_page(&filter, None, 10).await.unwrap())
    };
    assert_eq!(
        by(AuditFilter {
            client: Some("cb_1".into()),
            ..Default::default()
        })
        .await,
        [4000, 3000]
    );
    assert_eq!(
        by(AuditFilter {
            action: Some("token.*".into()),
            ..Default::default()
        })
        .await,
        [3000, 2000, 1000]
    );
    assert_eq!(
        by(AuditFilter {
            action: Some("token.issued".into()),
            outcome: Some("ok".into()),
            ..Default::default()
        })
        .await,
        [3000, 1000]
    );
    assert_eq!(
        by(AuditFilter {
            since_ms: Some(2000),
            until_ms: Some(4000),
            ..Default::default()
        })
        .await,
        [3000, 2000]
    );
    assert_eq!(
        by(AuditFilter {
            subject: Some("d2".into()),
            ..Default::default()
        })
        .await,
        [2000]
    );
    // Following: oldest first after an id, filtered.
    let d1 = AuditFilter {
        device: Some("d1".into()),
        ..Default::default()
    };
    let next = store.audit_following(&d1, first, 10).await.unwrap();
    assert_eq!(ids(next.clone()), [1000, 4000, 5000]);
    assert!(
        store
            .audit_following(&d1, next[2].0, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

crate::on_every_backend!(
    sessions_and_login_tokens,
    dashboard_aggregates,
    device_search_pages_and_filters,
    audit_filters_and_following
);
