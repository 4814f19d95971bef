//! Revocation is final and token status comes from the token's own record
//! (issue 11, medium 4); the audit writer never lets a token out whose
//! record was lost, and bounds and escapes what it writes (medium 6). Real
//! SQLite, and the raw SQL an operator could run with sqlite3.

use std::time::Duration;

use certbound_broker::audit::{AuditLog, AuditOptions, RecordLost};
use certbound_broker::store::{AuditEvent, DeviceStatus, IssuedToken, Store, TokenHolder};
use certbound_registry::RegistryError;
use certbound_registry::clock::unix_now;
use certbound_registry::registry::Registry;

struct Setup {
    _tmp: tempfile::TempDir,
    reg: Registry,
    raw: sqlx::AnyPool,
    list: u64,
}

async fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cb");
    certbound_registry::registry::init_with(
        &dir,
        "https://auth.example.com",
        &certbound_registry::registry::InitOptions::on_test_backend().await,
    )
    .await
    .unwrap();
    let reg = Registry::open(&dir).await.unwrap();
    reg.create_api("https://api.example.com", "read", 3600)
        .await
        .unwrap();
    reg.create_group(
        "sensors",
        &[("https://api.example.com".into(), "read".into())],
    )
    .await
    .unwrap();
    for id in ["dev-1", "dev-2"] {
        reg.provision_device(id, &["sensors".into()], &tmp.path().join("out"), None)
            .await
            .unwrap();
    }
    let (list, first, _) = reg
        .store
        .reserve_status_entries(16, 1024, unix_now())
        .await
        .unwrap();
    assert_eq!(first, 0);
    // The database itself, past the store (what an operator could do with
    // sqlite3 or psql).
    sqlx::any::install_default_drivers();
    let config = certbound_registry::config::Config::load(&dir).unwrap();
    let url = config.store_url(&certbound_registry::config::DataDir::new(&dir));
    let raw = sqlx::AnyPool::connect(&url).await.unwrap();
    Setup {
        _tmp: tmp,
        reg,
        raw,
        list,
    }
}

fn token(jti: &str, device: &str, list: u64, idx: u64) -> IssuedToken {
    let now = unix_now();
    IssuedToken {
        jti: jti.into(),
        holder: TokenHolder::Device,
        subject: device.into(),
        api_id: "https://api.example.com".into(),
        scope: "read".into(),
        format: "cwt".into(),
        kid: "k".into(),
        cnf: None,
        status_entry: Some((list, idx)),
        iat: now,
        exp: now + 3600,
    }
}

async fn entries(s: &Setup) -> Vec<(u64, u8)> {
    let mut e = s
        .reg
        .store
        .status_entries(s.list, unix_now())
        .await
        .unwrap();
    e.sort();
    e
}

async fn a_revoked_device_is_never_suspended_nor_resumed() {
    let s = setup().await;
    s.reg
        .set_device_status("dev-1", DeviceStatus::Revoked, "stolen")
        .await
        .unwrap();
    for status in [DeviceStatus::Suspended, DeviceStatus::Active] {
        let err = s
            .reg
            .set_device_status("dev-1", status, "try")
            .await
            .unwrap_err();
        assert!(matches!(err, RegistryError::Revoked { .. }), "{err}");
        assert!(err.to_string().contains("revoked, which is final"), "{err}");
    }
    // Revoking again changes nothing and is not an error.
    s.reg
        .set_device_status("dev-1", DeviceStatus::Revoked, "again")
        .await
        .unwrap();
    let (device, certs) = s.reg.show_device("dev-1").await.unwrap();
    assert_eq!(device.status, DeviceStatus::Revoked);
    assert!(certs.iter().all(|c| c.status == "revoked"));
    // Not even raw SQL brings it back, nor its certificates.
    let err = sqlx::query("UPDATE devices SET status = 'active' WHERE id = 'dev-1'")
        .execute(&s.raw)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("device is revoked, which is final"),
        "{err}"
    );
    let err = sqlx::query("UPDATE certificates SET status = 'active' WHERE device_id = 'dev-1'")
        .execute(&s.raw)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("certificate is revoked"), "{err}");
    // The other device still changes status freely.
    s.reg
        .set_device_status("dev-2", DeviceStatus::Suspended, "t")
        .await
        .unwrap();
    s.reg
        .set_device_status("dev-2", DeviceStatus::Active, "t")
        .await
        .unwrap();
}

async fn tokens_stay_revoked_whatever_happens_to_the_device_row() {
    let s = setup().await;
    s.reg
        .store
        .record_issued(&[
            token("t-before-1", "dev-1", s.list, 0),
            token("t-before-2", "dev-1", s.list, 1),
            token("t-other", "dev-2", s.list, 2),
        ])
        .await
        .unwrap();
    assert!(entries(&s).await.is_empty());
    s.reg
        .set_device_status("dev-1", DeviceStatus::Revoked, "stolen")
        .await
        .unwrap();
    assert_eq!(entries(&s).await, vec![(0, 1), (1, 1)]);
    // A token recorded after the revocation (minted from a snapshot a moment
    // old) is recorded revoked.
    s.reg
        .store
        .record_issued(&[token("t-late", "dev-1", s.list, 3)])
        .await
        .unwrap();
    assert_eq!(entries(&s).await, vec![(0, 1), (1, 1), (3, 1)]);
    // An operator bypasses the guard and edits the device row: the tokens'
    // own records keep them revoked.
    let drop_trigger = match certbound_broker::store::testing::current().backend {
        certbound_broker::store::Backend::Sqlite => "DROP TRIGGER devices_revoked_is_final",
        certbound_broker::store::Backend::Postgres => {
            "DROP TRIGGER devices_revoked_is_final ON devices"
        }
    };
    sqlx::query(drop_trigger).execute(&s.raw).await.unwrap();
    sqlx::query("UPDATE devices SET status = 'active' WHERE id = 'dev-1'")
        .execute(&s.raw)
        .await
        .unwrap();
    assert_eq!(entries(&s).await, vec![(0, 1), (1, 1), (3, 1)]);
    let state = s
        .reg
        .store
        .token_state("t-before-1")
        .await
        .unwrap()
        .unwrap();
    assert!(state.revoked && !state.suspended);
    sqlx::query("DELETE FROM devices WHERE id = 'dev-1'")
        .execute(&s.raw)
        .await
        .unwrap();
    assert_eq!(entries(&s).await, vec![(0, 1), (1, 1), (3, 1)]);
    // The other device's token was never touched.
    let other = s.reg.store.token_state("t-other").await.unwrap().unwrap();
    assert!(!other.revoked && !other.suspended);
}

async fn suspended_tokens_show_suspended_and_come_back_on_resume() {
    let s = setup().await;
    s.reg
        .store
        .record_issued(&[token("t1", "dev-2", s.list, 4)])
        .await
        .unwrap();
    s.reg
        .set_device_status("dev-2", DeviceStatus::Suspended, "maintenance")
        .await
        .unwrap();
    assert_eq!(entries(&s).await, vec![(4, 2)]);
    let state = s.reg.store.token_state("t1").await.unwrap().unwrap();
    assert!(state.suspended && !state.revoked);
    s.reg
        .set_device_status("dev-2", DeviceStatus::Active, "done")
        .await
        .unwrap();
    assert!(entries(&s).await.is_empty());
    // Suspended, then revoked: INVALID for good.
    s.reg
        .set_device_status("dev-2", DeviceStatus::Suspended, "x")
        .await
        .unwrap();
    s.reg
        .set_device_status("dev-2", DeviceStatus::Revoked, "x")
        .await
        .unwrap();
    assert_eq!(entries(&s).await, vec![(4, 1)]);
}

async fn the_crl_epoch_moves_with_every_revocation() {
    let s = setup().await;
    let e0 = s.reg.store.crl_epoch().await.unwrap();
    s.reg
        .set_device_status("dev-2", DeviceStatus::Suspended, "x")
        .await
        .unwrap();
    assert_eq!(
        s.reg.store.crl_epoch().await.unwrap(),
        e0,
        "suspension revokes no certificate"
    );
    s.reg
        .set_device_status("dev-1", DeviceStatus::Revoked, "x")
        .await
        .unwrap();
    let e1 = s.reg.store.crl_epoch().await.unwrap();
    assert!(e1 > e0);
    s.reg
        .set_device_status("dev-1", DeviceStatus::Revoked, "again")
        .await
        .unwrap();
    assert_eq!(s.reg.store.crl_epoch().await.unwrap(), e1);
}

fn event(subject: String, detail: String) -> AuditEvent {
    AuditEvent {
        ts_ms: unix_now() * 1000,
        actor: "client:x".into(),
        action: "token.refused".into(),
        subject,
        outcome: "invalid_request".into(),
        detail,
    }
}

async fn audit_fields_are_bounded_and_escaped_when_written() {
    let s = setup().await;
    let huge = "A".repeat(2 * 1024 * 1024);
    s.reg
        .store
        .append_audit(&[event(
            huge,
            "line1\nFAKE 2026 cli device.revoked\u{1b}[2J".into(),
        )])
        .await
        .unwrap();
    let last = s.reg.store.recent_audit(None, 1).await.unwrap();
    let e = &last[0];
    assert!(e.subject.len() < 300, "{}", e.subject.len());
    assert!(
        e.subject.ends_with("…[truncated, 2097152 bytes]"),
        "{}",
        e.subject
    );
    assert!(
        !e.detail.contains('\n') && !e.detail.contains('\u{1b}'),
        "{}",
        e.detail
    );
    assert!(
        e.detail.contains("line1\\nFAKE") && e.detail.contains("\\u{1b}[2J"),
        "{}",
        e.detail
    );
}

async fn no_token_record_is_acknowledged_while_the_store_fails_and_the_writer_recovers() {
    let s = setup().await;
    let (audit, task) = AuditLog::spawn_with(s.reg.store.clone(), AuditOptions::default());
    audit
        .record_issued(token("ok-1", "dev-2", s.list, 5))
        .await
        .unwrap();
    // The store loses the table (what an operator's mistake or a damaged
    // schema does): writes fail.
    sqlx::query("ALTER TABLE issued_tokens RENAME TO issued_tokens_away")
        .execute(&s.raw)
        .await
        .unwrap();
    let lost = audit
        .record_issued(token("lost-1", "dev-2", s.list, 6))
        .await;
    assert_eq!(lost, Err(RecordLost::WriteFailed));
    // Events queued meanwhile are kept, not dropped.
    audit
        .record(event("during-outage".into(), "kept".into()))
        .await;
    let lost = audit
        .record_issued(token("lost-2", "dev-2", s.list, 7))
        .await;
    assert_eq!(lost, Err(RecordLost::WriteFailed));
    sqlx::query("ALTER TABLE issued_tokens_away RENAME TO issued_tokens")
        .execute(&s.raw)
        .await
        .unwrap();
    // Recovery: the next record is acknowledged (the writer retries with a
    // backoff of at most a second; allow many attempts on a busy machine).
    let mut recovered = false;
    for _ in 0..60 {
        if audit
            .record_issued(token("ok-2", "dev-2", s.list, 8))
            .await
            .is_ok()
        {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(recovered, "the writer must recover once the store does");
    drop(audit);
    task.await.unwrap();
    let store: &Store = &s.reg.store;
    assert!(store.token_state("ok-1").await.unwrap().is_some());
    assert!(store.token_state("ok-2").await.unwrap().is_some());
    let subjects: Vec<String> = store
        .recent_audit(Some("during-outage"), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.subject)
        .collect();
    assert_eq!(subjects, vec!["during-outage".to_string()]);
}

certbound_broker::store::on_every_backend!(
    a_revoked_device_is_never_suspended_nor_resumed,
    tokens_stay_revoked_whatever_happens_to_the_device_row,
    suspended_tokens_show_suspended_and_come_back_on_resume,
    the_crl_epoch_moves_with_every_revocation,
    audit_fields_are_bounded_and_escaped_when_written,
    no_token_record_is_acknowledged_while_the_store_fails_and_the_writer_recovers
);
