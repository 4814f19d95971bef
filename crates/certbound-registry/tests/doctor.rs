//! `certbound_registry::doctor`: each check sees the problem planted in a
//! fresh data directory, and stays silent on a clean one.

use certbound_registry::clock::unix_now;
use certbound_registry::doctor::{self, DoctorOptions, Finding, Severity};
use certbound_registry::registry::{self, Registry};
use certbound_registry::store::{AuditEvent, DeviceStatus};

const API: &str = "https://telemetry.example.com";
const DAY: u64 = 86_400;

async fn setup() -> (tempfile::TempDir, Registry) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cb");
    // The root key kept offline (else the root-key-online check warns).
    let options = registry::InitOptions {
        root_key_out: Some(tmp.path().join("offline-root.key.pem")),
        ..certbound_registry::registry::InitOptions::on_test_backend().await
    };
    registry::init_with(&dir, "https://auth.example.com", &options)
        .await
        .unwrap();
    let reg = Registry::open(&dir).await.unwrap();
    reg.create_api(API, "telemetry:write", 3600).await.unwrap();
    reg.create_group("sensors", &[(API.into(), "telemetry:write".into())])
        .await
        .unwrap();
    reg.provision_device(
        "sensor-1",
        &["sensors".into()],
        &tmp.path().join("devices"),
        None,
    )
    .await
    .unwrap();
    (tmp, reg)
}

async fn findings(reg: &Registry, opts: &DoctorOptions, now: u64) -> Vec<Finding> {
    doctor::run(reg, opts, now).await.unwrap()
}

fn of<'a>(all: &'a [Finding], check: &str) -> Vec<&'a Finding> {
    all.iter().filter(|f| f.check == check).collect()
}

async fn clean_directory_has_no_findings() {
    let (_tmp, reg) = setup().await;
    let all = findings(&reg, &DoctorOptions::default(), unix_now()).await;
    assert!(all.is_empty(), "unexpected findings: {all:#?}");
    assert_eq!(doctor::exit_code(&all), 0);
    reg.close().await;
}

async fn ca_expiring_within_the_window() {
    let (_tmp, reg) = setup().await;
    let opts = DoctorOptions {
        expiry_days: 100_000,
        ..DoctorOptions::default()
    };
    let all = findings(&reg, &opts, unix_now()).await;
    let ca = of(&all, doctor::CHECK_CA_EXPIRY);
    assert_eq!(ca.len(), 2, "root and issuing CA: {ca:#?}");
    assert!(ca.iter().all(|f| f.severity == Severity::Warning));
    assert!(ca.iter().any(|f| f.message.starts_with("root CA")));
    let issuing = ca
        .iter()
        .find(|f| f.message.starts_with("issuing CA"))
        .unwrap();
    assert!(issuing.fix.contains("certbound ca rotate-issuing --dir"));
    assert_eq!(doctor::exit_code(&all), 1);
    // Default window: nothing.
    let all = findings(&reg, &DoctorOptions::default(), unix_now()).await;
    assert!(of(&all, doctor::CHECK_CA_EXPIRY).is_empty());
    reg.close().await;
}

async fn device_certificates_expiring_and_expired() {
    let (tmp, reg) = setup().await;
    reg.provision_device(
        "short-1",
        &["sensors".into()],
        &tmp.path().join("devices"),
        Some(1),
    )
    .await
    .unwrap();
    let now = unix_now();
    let opts = DoctorOptions {
        expiry_days: 2,
        ..DoctorOptions::default()
    };
    let all = findings(&reg, &opts, now).await;
    let dev = of(&all, doctor::CHECK_DEVICE_CERTS);
    assert_eq!(dev.len(), 1, "{dev:#?}");
    assert_eq!(dev[0].severity, Severity::Warning);
    assert!(dev[0].message.contains("short-1"));
    assert!(!dev[0].message.contains("sensor-1"));

    // Two days later its only certificate has expired: it did not renew.
    let all = findings(&reg, &DoctorOptions::default(), now + 2 * DAY).await;
    let dev = of(&all, doctor::CHECK_DEVICE_CERTS);
    assert_eq!(dev.len(), 1, "{dev:#?}");
    assert_eq!(dev[0].severity, Severity::Error);
    assert!(dev[0].message.contains("short-1"));
    assert!(dev[0].fix.contains("certbound audit tail"));
    assert_eq!(doctor::exit_code(&all), 2);

    // A suspended device is not reported.
    reg.set_device_status("short-1", DeviceStatus::Suspended, "test")
        .await
        .unwrap();
    let all = findings(&reg, &DoctorOptions::default(), now + 2 * DAY).await;
    assert!(of(&all, doctor::CHECK_DEVICE_CERTS).is_empty(), "{all:#?}");
    reg.close().await;
}

async fn long_token_lifetime() {
    let (_tmp, reg) = setup().await;
    reg.create_api("https://slow.example.com", "data:read", 7200)
        .await
        .unwrap();
    let all = findings(&reg, &DoctorOptions::default(), unix_now()).await;
    let ttl = of(&all, doctor::CHECK_TOKEN_TTL);
    assert_eq!(ttl.len(), 1, "{all:#?}");
    assert!(ttl[0].message.contains("https://slow.example.com"));
    assert!(ttl[0].message.contains("7200"));
    assert_eq!(
        ttl[0].fix,
        format!(
            "certbound api set-ttl --dir {} --api https://slow.example.com --ttl 3600",
            reg.data.root.display()
        )
    );
    assert_eq!(ttl[0].severity, Severity::Warning);
    reg.close().await;
}

async fn wildcard_broad_and_empty_grants() {
    let (_tmp, reg) = setup().await;
    reg.create_api("https://wild.example.com", "data:* admin", 600)
        .await
        .unwrap();
    reg.create_group(
        "admins-by-mistake",
        &[("https://wild.example.com".into(), "admin".into())],
    )
    .await
    .unwrap();
    reg.create_group("nothing", &[]).await.unwrap();
    let all = findings(&reg, &DoctorOptions::default(), unix_now()).await;
    let scopes = of(&all, doctor::CHECK_SCOPES);
    assert_eq!(scopes.len(), 3, "{scopes:#?}");
    assert!(
        scopes
            .iter()
            .any(|f| f.message.contains("wildcard") && f.message.contains("data:*"))
    );
    assert!(
        scopes
            .iter()
            .any(|f| f.message.contains("admins-by-mistake") && f.message.contains("admin"))
    );
    assert!(
        scopes
            .iter()
            .any(|f| f.message.contains("group nothing grants nothing"))
    );
    assert!(!scopes.iter().any(|f| f.message.contains("sensors")));
    // Fixes are certbound commands: the only grant scope is broad, so the
    // grant goes; the empty group has no members, so no --force.
    let dir = reg.data.root.display().to_string();
    let fixes: Vec<&str> = scopes.iter().map(|f| f.fix.as_str()).collect();
    assert!(
        fixes.contains(
            &format!(
                "certbound group revoke-grant --dir {dir} --name admins-by-mistake \
                 --api https://wild.example.com"
            )
            .as_str()
        ),
        "{fixes:#?}"
    );
    assert!(
        fixes.contains(&format!("certbound group delete --dir {dir} --name nothing").as_str()),
        "{fixes:#?}"
    );
    assert!(!fixes.iter().any(|f| f.contains("sqlite3")), "{fixes:#?}");
    reg.close().await;
}

async fn signing_key_overdue_for_rotation() {
    let (_tmp, reg) = setup().await;
    // The init key's schedule has created_at 0 (legacy import): its age
    // comes from the key file. Make the file 100 days old.
    let keys_dir = reg.data.keys();
    let key_file = std::fs::read_dir(&keys_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".key.pem"))
        .unwrap();
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(100 * DAY);
    std::fs::File::options()
        .write(true)
        .open(&key_file)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let all = findings(&reg, &DoctorOptions::default(), unix_now()).await;
    let age = of(&all, doctor::CHECK_KEY_AGE);
    assert_eq!(age.len(), 1, "{all:#?}");
    assert_eq!(age[0].severity, Severity::Warning);
    assert!(age[0].message.contains("100 day(s)"), "{}", age[0].message);
    assert!(age[0].fix.contains("certbound keys rotate --dir"));
    // Rotating fixes it: while the new key waits for its grace period, and
    // once it signs.
    let rotation = reg.rotate_keys(300).await.unwrap();
    let all = findings(&reg, &DoctorOptions::default(), unix_now()).await;
    assert!(of(&all, doctor::CHECK_KEY_AGE).is_empty(), "{all:#?}");
    let all = findings(&reg, &DoctorOptions::default(), rotation.active_from + 1).await;
    assert!(of(&all, doctor::CHECK_KEY_AGE).is_empty(), "{all:#?}");
    reg.close().await;
}

async fn root_key_online_is_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cb");
    registry::init_with(
        &dir,
        "https://auth.example.com",
        &certbound_registry::registry::InitOptions::on_test_backend().await,
    )
    .await
    .unwrap();
    let reg = Registry::open(&dir).await.unwrap();
    let all = findings(&reg, &DoctorOptions::default(), unix_now()).await;
    let root = of(&all, doctor::CHECK_ROOT_KEY);
    assert_eq!(root.len(), 1, "{all:#?}");
    assert_eq!(root[0].severity, Severity::Warning);
    assert!(root[0].message.contains("root-ca.key.pem"), "{root:#?}");
    assert!(root[0].fix.contains("--root-key"), "{root:#?}");
    assert_eq!(doctor::exit_code(&all), 1);
    // Moved offline: the warning is gone.
    std::fs::rename(reg.data.pki().root_key(), tmp.path().join("root.key.pem")).unwrap();
    let all = findings(&reg, &DoctorOptions::default(), unix_now()).await;
    assert!(of(&all, doctor::CHECK_ROOT_KEY).is_empty(), "{all:#?}");
    reg.close().await;
}

#[cfg(unix)]
async fn secret_files_readable_by_others() {
    use std::os::unix::fs::PermissionsExt;
    let (_tmp, reg) = setup().await;
    let issuing_key = reg.data.pki().issuing_key();
    let admin = reg.data.root.join(registry::ADMIN_CLIENT_FILE);
    for file in [&issuing_key, &admin] {
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let all = findings(&reg, &DoctorOptions::default(), unix_now()).await;
    let perms = of(&all, doctor::CHECK_PERMISSIONS);
    assert_eq!(perms.len(), 2, "{all:#?}");
    assert!(perms.iter().all(|f| f.severity == Severity::Error));
    for file in [&issuing_key, &admin] {
        let fix = format!("chmod 600 {}", file.display());
        assert!(perms.iter().any(|f| f.fix == fix), "{fix} in {perms:#?}");
    }
    assert_eq!(doctor::exit_code(&all), 2);
    reg.close().await;
}

async fn revoked_device_with_active_certificate() {
    let (_tmp, reg) = setup().await;
    reg.set_device_status("sensor-1", DeviceStatus::Revoked, "test")
        .await
        .unwrap();
    // Revoking revoked the certificate: nothing to report yet.
    let all = findings(&reg, &DoctorOptions::default(), unix_now()).await;
    assert!(of(&all, doctor::CHECK_REVOKED).is_empty(), "{all:#?}");
    // Plant an inconsistency: an active certificate for the revoked device.
    let mut cert = reg.store.device_certificates("sensor-1").await.unwrap()[0].clone();
    cert.serial = "0badc0de".into();
    cert.thumbprint = "00".repeat(32);
    reg.store.add_certificate(&cert, unix_now()).await.unwrap();
    let all = findings(&reg, &DoctorOptions::default(), unix_now()).await;
    let revoked = of(&all, doctor::CHECK_REVOKED);
    assert_eq!(revoked.len(), 1, "{all:#?}");
    assert_eq!(revoked[0].severity, Severity::Error);
    assert!(revoked[0].message.contains("sensor-1"));
    assert!(revoked[0].message.contains("0badc0de"));
    assert!(revoked[0].fix.contains("certbound device revoke --dir"));
    // The revoked device's expired-or-not certificates are not a device-certs finding.
    assert!(of(&all, doctor::CHECK_DEVICE_CERTS).is_empty());
    reg.close().await;
}

async fn clock_skew_in_refused_requests() {
    let (_tmp, reg) = setup().await;
    let event = |detail: &str| AuditEvent {
        ts_ms: unix_now() * 1000,
        actor: "device".into(),
        action: "token.refused".into(),
        subject: "sensor-1".into(),
        outcome: "invalid_request".into(),
        detail: detail.into(),
    };
    reg.store
        .append_audit(&[event("transport=coap unknown audience")])
        .await
        .unwrap();
    let all = findings(&reg, &DoctorOptions::default(), unix_now()).await;
    assert!(of(&all, doctor::CHECK_CLOCK_SKEW).is_empty(), "{all:#?}");
    reg.store
        .append_audit(&[event(
            "transport=coap not valid before 2000000000 (now 1999999000, 1000 s early)",
        )])
        .await
        .unwrap();
    let all = findings(&reg, &DoctorOptions::default(), unix_now()).await;
    let skew = of(&all, doctor::CHECK_CLOCK_SKEW);
    assert_eq!(skew.len(), 1, "{all:#?}");
    assert!(skew[0].message.contains("sensor-1"));
    assert_eq!(skew[0].severity, Severity::Warning);
    reg.close().await;
}

async fn audit_trail_edge_cases_are_not_reported() {
    // (The reported cases run against a live broker in tests/e2e/doctor_audit.rs.)
    let (_tmp, reg) = setup().await;
    let now = unix_now();
    let event = |ts: u64, action: &str, outcome: &str, detail: &str| AuditEvent {
        ts_ms: ts * 1000,
        actor: "device:sensor-1".into(),
        action: action.into(),
        subject: "sensor-1".into(),
        outcome: outcome.into(),
        detail: detail.into(),
    };
    let a = "transport=coap peer=192.0.2.1 x5t=ab expires_in=3600 scope=x";
    let b = "transport=coap peer=198.51.100.9 x5t=ab expires_in=3600 scope=x";
    let replay = "transport=coap peer=203.0.113.5 x5t=ab request replayed";
    reg.store
        .append_audit(&[
            // Back at A, but an hour later: moved and moved back.
            event(now - 7200, "token.issued", "ok", a),
            event(now - 7100, "token.issued", "ok", b),
            event(now - 3500, "token.issued", "ok", a),
            // A replayed request from elsewhere proves no key: not a clone.
            event(now - 3400, "token.refused", "invalid_client", replay),
            event(now - 3300, "token.issued", "ok", a),
        ])
        .await
        .unwrap();
    // Suspended, refused, then resumed: no longer a finding.
    reg.set_device_status("sensor-1", DeviceStatus::Suspended, "test")
        .await
        .unwrap();
    reg.store
        .append_audit(&[event(
            now,
            "token.refused",
            "unauthorized_client",
            "transport=mqtt device sensor-1 is suspended",
        )])
        .await
        .unwrap();
    let all = findings(&reg, &DoctorOptions::default(), now).await;
    assert_eq!(
        of(&all, doctor::CHECK_REVOKED_CONNECTED).len(),
        1,
        "{all:#?}"
    );
    assert!(
        of(&all, doctor::CHECK_REVOKED_CONNECTED)[0]
            .fix
            .starts_with("disconnect sensor-1 at the MQTT server")
    );
    reg.set_device_status("sensor-1", DeviceStatus::Active, "test")
        .await
        .unwrap();
    let all = findings(&reg, &DoctorOptions::default(), now).await;
    assert!(all.is_empty(), "{all:#?}");
    reg.close().await;
}

#[test]
fn exit_codes() {
    let f = |severity| Finding {
        check: "x",
        severity,
        message: String::new(),
        fix: String::new(),
    };
    assert_eq!(doctor::exit_code(&[]), 0);
    assert_eq!(doctor::exit_code(&[f(Severity::Info)]), 0);
    assert_eq!(
        doctor::exit_code(&[f(Severity::Info), f(Severity::Warning)]),
        1
    );
    assert_eq!(
        doctor::exit_code(&[f(Severity::Error), f(Severity::Warning)]),
        2
    );
}

async fn api_keys_without_expiry_or_expired() {
    let (_tmp, reg) = setup().await;
    let grants = [(API.to_string(), "telemetry:write".to_string())];
    let now = unix_now();
    reg.create_api_key("forever", &grants, None).await.unwrap();
    reg.create_api_key("short", &grants, Some(now + DAY))
        .await
        .unwrap();
    let all = findings(&reg, &DoctorOptions::default(), now).await;
    let keys = of(&all, "api-keys");
    assert_eq!(keys.len(), 1, "{all:#?}");
    assert_eq!(keys[0].severity, Severity::Warning);
    assert!(keys[0].message.contains("forever"));
    // Two days later `short` expired but is still listed.
    let later = findings(&reg, &DoctorOptions::default(), now + 2 * DAY).await;
    let keys = of(&later, "api-keys");
    assert_eq!(keys.len(), 2, "{later:#?}");
    assert!(
        keys.iter()
            .any(|f| f.severity == Severity::Info && f.message.contains("short"))
    );
    // Revoked keys are not reported.
    reg.revoke_api_key("forever").await.unwrap();
    reg.revoke_api_key("short").await.unwrap();
    assert!(
        of(
            &findings(&reg, &DoctorOptions::default(), now + 2 * DAY).await,
            "api-keys"
        )
        .is_empty()
    );
    reg.close().await;
}

certbound_registry::store::on_every_backend!(
    api_keys_without_expiry_or_expired,
    clean_directory_has_no_findings,
    ca_expiring_within_the_window,
    device_certificates_expiring_and_expired,
    long_token_lifetime,
    wildcard_broad_and_empty_grants,
    signing_key_overdue_for_rotation,
    root_key_online_is_a_warning,
    secret_files_readable_by_others,
    revoked_device_with_active_certificate,
    clock_skew_in_refused_requests,
    audit_trail_edge_cases_are_not_reported
);
