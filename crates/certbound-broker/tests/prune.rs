//! Housekeeping on a real SQLite store: expired token records, dead status
//! lists and old audit events go; live tokens, their revocations, recently
//! expired tokens and key retirement times stay.

use certbound_broker::status::{StatusConfig, StatusLists};
use certbound_broker::store::{
    AuditEvent, IssuedToken, KeySchedule, PrunePolicy, PruneReport, Store, TokenHolder,
};
use certbound_registry::keys::SharedKeys;

const NOW: u64 = 1_000_000_000;
const DAY: u64 = 86_400;
const LIST_SIZE: u64 = 1024;

fn token(jti: &str, kid: &str, list: u64, idx: u64, exp: u64) -> IssuedToken {
    IssuedToken {
        jti: jti.into(),
        holder: TokenHolder::Device,
        subject: "sensor-1".into(),
        api_id: "https://telemetry.example.com".into(),
        scope: "telemetry:write".into(),
        format: "cwt".into(),
        kid: kid.into(),
        cnf: None,
        status_entry: Some((list, idx)),
        iat: exp.saturating_sub(30),
        exp,
    }
}

fn event(ts_secs: u64, subject: &str) -> AuditEvent {
    AuditEvent {
        ts_ms: ts_secs * 1000,
        actor: "broker".into(),
        action: "token.issued".into(),
        subject: subject.into(),
        outcome: "ok".into(),
        detail: String::new(),
    }
}

fn policy(dry_run: bool) -> PrunePolicy {
    PrunePolicy {
        token_margin_secs: 120, // leeway 60 + status ttl 60
        audit_retention_secs: Some(90 * DAY),
        batch: 2, // small, so the batch loop runs many times
        dry_run,
    }
}

/// Opens a list of `LIST_SIZE` entries created at `at`, reserving `used`.
async fn list(store: &Store, at: u64, used: u64) -> u64 {
    let (id, first, got) = store
        .reserve_status_entries(used, LIST_SIZE, at)
        .await
        .unwrap();
    assert_eq!((first, got), (0, used), "a fresh list");
    id
}

struct Planted {
    store: Store,
    _dir: tempfile::TempDir,
    lists: [u64; 4],
}

/// List 1: full, only long-expired tokens, successor created long ago (goes).
/// List 2: full, a live revoked token, a recently expired revoked one and a
/// long-expired one (stays). List 3: full, only long-expired tokens, but its
/// successor is recent (stays: a broker may still hand out a block of it).
/// List 4: partial (stays).
async fn plant() -> Planted {
    let dir = tempfile::tempdir().unwrap();
    let store = certbound_broker::store::testing::current()
        .open(dir.path())
        .await;
    let l1 = list(&store, NOW - 10 * DAY, LIST_SIZE).await;
    let l2 = list(&store, NOW - 5 * DAY, LIST_SIZE).await;
    let l3 = list(&store, NOW - 4 * DAY, LIST_SIZE).await;
    let l4 = list(&store, NOW - 200, 10).await;
    let mut tokens = Vec::new();
    for i in 0..25 {
        tokens.push(token(&format!("old-1-{i}"), "k-old", l1, i, NOW - 9 * DAY));
    }
    tokens.push(token("live-revoked", "k-old", l2, 5, NOW + 100));
    tokens.push(token("recent-revoked", "k-old", l2, 6, NOW - 60));
    tokens.push(token("old-2", "k-old", l2, 7, NOW - 4 * DAY));
    tokens.push(token("old-3", "k-new", l3, 0, NOW - 3 * DAY));
    tokens.push(token("edge", "k-new", l4, 0, NOW - 120)); // exactly at the margin: stays
    tokens.push(token("old-4", "k-new", l4, 1, NOW - 121));
    store.record_issued(&tokens).await.unwrap();
    for jti in ["live-revoked", "recent-revoked", "old-1-0"] {
        let t = tokens.iter().find(|t| t.jti == jti).unwrap();
        store.revoke_token(t, NOW - 100_000).await.unwrap();
    }
    store
        .append_audit(&[
            event(NOW - 100 * DAY, "ancient"),
            event(NOW - 91 * DAY, "old"),
            event(NOW - 89 * DAY, "kept"),
            event(NOW - 1, "new"),
        ])
        .await
        .unwrap();
    // Key rotation: k-old retires at the earliest NOW + 10, and not before
    // its live token (exp NOW + 100) + leeway 60.
    for (kid, at) in [("k-old", 0), ("k-new", NOW - 50)] {
        store
            .add_signing_key(
                &KeySchedule {
                    kid: kid.into(),
                    created_at: at,
                    active_from: at,
                    retire_after: None,
                    public_key: None,
                    alg: "ES256".into(),
                },
                &if kid == "k-new" {
                    vec!["k-old".to_string()]
                } else {
                    Vec::new()
                },
                NOW + 10,
            )
            .await
            .unwrap();
    }
    store.extend_retirements(60).await.unwrap();
    Planted {
        store,
        _dir: dir,
        lists: [l1, l2, l3, l4],
    }
}

async fn present(store: &Store, jti: &str) -> bool {
    store.token_state(jti).await.unwrap().is_some()
}

async fn audit_subjects(store: &Store) -> Vec<String> {
    let events = store.recent_audit(None, 1000).await.unwrap();
    events.into_iter().map(|e| e.subject).collect()
}

const EXPECTED: PruneReport = PruneReport {
    issued_tokens: 28, // old-1-* (25), old-2, old-3, old-4
    status_lists: 1,   // list 1
    audit_events: 2,   // ancient, old
    client_assertions: 0,
    dry_run: false,
};

async fn prune_deletes_exactly_what_no_verifier_needs() {
    let Planted { store, _dir, lists } = plant().await;
    let [l1, l2, l3, l4] = lists;
    let schedules_before = store.key_schedules().await.unwrap();
    let k_old = schedules_before.iter().find(|s| s.kid == "k-old").unwrap();
    assert_eq!(k_old.retire_after, Some(NOW + 160));
    assert_eq!(store.status_entries(l2, NOW).await.unwrap(), vec![(5, 1)]);

    let report = store.prune(NOW, &policy(false)).await.unwrap();
    assert_eq!(report, EXPECTED);

    // Token records: long-expired ones gone; live, recent and edge kept.
    for jti in ["old-1-0", "old-1-24", "old-2", "old-3", "old-4"] {
        assert!(!present(&store, jti).await, "{jti} should be pruned");
    }
    for jti in ["live-revoked", "recent-revoked", "edge"] {
        assert!(present(&store, jti).await, "{jti} should stay");
    }
    // Introspection of the live token still sees its revocation.
    let live = store.token_state("live-revoked").await.unwrap().unwrap();
    assert!(live.revoked);
    assert_eq!(live.token.status_entry, Some((l2, 5)));
    // Its status-list entry still reads revoked (1 = INVALID).
    assert_eq!(store.status_entries(l2, NOW).await.unwrap(), vec![(5, 1)]);

    // Lists: only list 1 is gone.
    assert_eq!(store.status_list_size(l1).await.unwrap(), None);
    for l in [l2, l3, l4] {
        assert_eq!(store.status_list_size(l).await.unwrap(), Some(LIST_SIZE));
    }
    // A pruned list is answered as one that never existed (404 / 4.04),
    // not as an error.
    let lists = StatusLists::new(
        StatusConfig {
            base_url: "https://auth.example.com".into(),
            list_size: LIST_SIZE,
            ttl: 60,
            issuer_id: "https://auth.example.com".into(),
        },
        store.clone(),
        SharedKeys::default(),
    );
    assert!(lists.signed(l1, NOW).await.unwrap().is_none());

    // Audit events: older than 90 days gone.
    assert_eq!(audit_subjects(&store).await, vec!["kept", "new"]);

    // Key retirement is unchanged: the live token still holds k-old.
    store.extend_retirements(60).await.unwrap();
    assert_eq!(store.key_schedules().await.unwrap(), schedules_before);

    // A second run finds nothing more.
    let again = store.prune(NOW, &policy(false)).await.unwrap();
    assert_eq!(again.total(), 0, "{again:?}");

    // Two days later every token has expired for good: lists 2 and 3 go
    // (list 3's successor is old enough now); list 4 is not full and stays.
    let later = store.prune(NOW + 2 * DAY, &policy(false)).await.unwrap();
    assert_eq!(later.status_lists, 2, "{later:?}");
    assert_eq!(store.status_list_size(l3).await.unwrap(), None);
    assert_eq!(store.status_list_size(l2).await.unwrap(), None);
    assert_eq!(later.issued_tokens, 3, "{later:?}");
    assert_eq!(store.status_list_size(l4).await.unwrap(), Some(LIST_SIZE));
    store.close().await;
}

async fn dry_run_counts_and_deletes_nothing() {
    let Planted { store, _dir, lists } = plant().await;
    let report = store.prune(NOW, &policy(true)).await.unwrap();
    assert_eq!(
        report,
        PruneReport {
            dry_run: true,
            ..EXPECTED
        }
    );
    for jti in ["old-1-0", "old-2", "old-3", "old-4", "live-revoked", "edge"] {
        assert!(present(&store, jti).await, "{jti} should still be there");
    }
    for l in lists {
        assert!(store.status_list_size(l).await.unwrap().is_some());
    }
    assert_eq!(audit_subjects(&store).await.len(), 4);
    // The real run deletes exactly what the dry run announced.
    let real = store.prune(NOW, &policy(false)).await.unwrap();
    assert_eq!(real, EXPECTED);
    store.close().await;
}

async fn zero_retention_keeps_audit_events() {
    let Planted { store, _dir, .. } = plant().await;
    let keep = PrunePolicy {
        audit_retention_secs: None,
        ..policy(false)
    };
    let report = store.prune(NOW, &keep).await.unwrap();
    assert_eq!(report.audit_events, 0);
    assert_eq!(audit_subjects(&store).await.len(), 4);
    store.close().await;
}

certbound_broker::store::on_every_backend!(
    prune_deletes_exactly_what_no_verifier_needs,
    dry_run_counts_and_deletes_nothing,
    zero_retention_keeps_audit_events
);
