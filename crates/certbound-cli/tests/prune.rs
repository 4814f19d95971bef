//! `certbound prune` with the real binary: `--dry-run` reports and deletes
//! nothing; the real run deletes exactly that; live records stay.

mod common;

use certbound_broker::store::{AuditEvent, IssuedToken, Store, TokenHolder};
use certbound_registry::clock::unix_now;
use certbound_registry::config::DataDir;
use common::{ISSUER, ok};

fn token(jti: &str, exp: u64) -> IssuedToken {
    IssuedToken {
        jti: jti.into(),
        holder: TokenHolder::Device,
        subject: "sensor-1".into(),
        api_id: "https://telemetry.example.com".into(),
        scope: "telemetry:write".into(),
        format: "cwt".into(),
        kid: "k".into(),
        cnf: None,
        status_entry: None,
        iat: exp.saturating_sub(30),
        exp,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// `(token present, ancient audit events)` for each jti.
fn state(dir: &str, jtis: &[&str]) -> (Vec<bool>, usize) {
    runtime().block_on(async {
        let store = Store::open(&DataDir::new(dir).database()).await.unwrap();
        let mut present = Vec::new();
        for jti in jtis {
            present.push(store.token_state(jti).await.unwrap().is_some());
        }
        let old = store
            .recent_audit(Some("ancient"), 100)
            .await
            .unwrap()
            .len();
        store.close().await;
        (present, old)
    })
}

#[test]
fn prune_dry_run_then_for_real() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cb").display().to_string();
    ok(&["init", "--dir", &dir, "--issuer-id", ISSUER]);
    let now = unix_now();
    runtime().block_on(async {
        let store = Store::open(&DataDir::new(&dir).database()).await.unwrap();
        let tokens: Vec<IssuedToken> = (0..3)
            .map(|i| token(&format!("old-{i}"), now - 86_400))
            .chain([token("live", now + 600), token("recent", now - 30)])
            .collect();
        store.record_issued(&tokens).await.unwrap();
        let old = |i: u64| AuditEvent {
            ts_ms: (now - 100 * 86_400 - i) * 1000,
            actor: "broker".into(),
            action: "token.issued".into(),
            subject: "ancient".into(),
            outcome: "ok".into(),
            detail: String::new(),
        };
        store.append_audit(&[old(0), old(1)]).await.unwrap();
        store.close().await;
    });
    let jtis = ["old-0", "old-1", "old-2", "live", "recent"];

    let dry = ok(&["prune", "--dir", &dir, "--dry-run", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&dry).unwrap();
    assert_eq!(v["dry_run"], true, "{dry}");
    assert_eq!(v["issued_tokens"], 3, "{dry}");
    assert_eq!(v["audit_events"], 2, "{dry}");
    assert_eq!(v["status_lists"], 0, "{dry}");
    assert_eq!(
        state(&dir, &jtis),
        (vec![true; 5], 2),
        "dry run deleted rows"
    );

    let text = ok(&["prune", "--dir", &dir, "--dry-run"]);
    assert!(
        text.contains("issued_tokens: would delete 3 rows"),
        "{text}"
    );

    let real = ok(&["prune", "--dir", &dir, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&real).unwrap();
    assert_eq!(v["dry_run"], false, "{real}");
    assert_eq!(v["issued_tokens"], 3, "{real}");
    assert_eq!(v["audit_events"], 2, "{real}");
    assert_eq!(
        state(&dir, &jtis),
        (vec![false, false, false, true, true], 0)
    );

    let again = ok(&["prune", "--dir", &dir]);
    assert!(again.contains("issued_tokens: deleted 0 rows"), "{again}");
    assert!(again.contains("audit_events: deleted 0 rows"), "{again}");
}

#[test]
fn prune_needs_an_initialised_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nothing").display().to_string();
    let out = common::certbound(&["prune", "--dir", &dir]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a certbound data directory"), "{err}");
}
