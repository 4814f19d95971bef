//! The token path keeps device certificates it validated, by thumbprint, so
//! a device's next request costs only its signature check. These tests hold
//! the rules that cache must not bend: a cached certificate is refused once
//! its path has expired, once the device is revoked or suspended, and for a
//! request signed with another key; and a reload of the CAs starts over.

use std::sync::Arc;

use certbound_broker::audit::{AuditLog, AuditOptions};
use certbound_broker::limits::{RateLimitConfig, RateLimits};
use certbound_broker::pki_state::SharedPki;
use certbound_broker::refusal::Refusal;
use certbound_broker::store::{DeviceStatus, Store};
use certbound_broker::token_service::{TokenService, TokenServiceConfig};
use certbound_proto::crypto::P256Signer;
use certbound_proto::request::{CertRef, GRANT_CLIENT_CREDENTIALS, TokenRequest, sign_request};
use certbound_registry::config::{Config, DataDir};
use certbound_registry::keys::{KeyRing, SharedKeys};
use certbound_registry::registry::{self, InitOptions, Registry};

const API: &str = "https://telemetry.example.com";
const ISSUER: &str = "https://auth.example.com";

struct Device {
    leaf: Vec<u8>,
    signer: P256Signer,
    not_after: u64,
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A request signed by `signer` naming `device`'s certificate, as of `now`.
fn request(id: &str, device: &Device, signer: &P256Signer, now: u64, n: u8) -> Vec<u8> {
    let request = TokenRequest {
        iss: id.into(),
        aud: ISSUER.into(),
        exp: now + 60,
        iat: now,
        cti: vec![n; 16],
        grant_type: Some(GRANT_CLIENT_CREDENTIALS),
        audience: Some(API.into()),
        scope: Some("telemetry:write".into()),
        csr: None,
    };
    let cert = CertRef::X5t(certbound_pki::thumbprint_sha256(&device.leaf));
    sign_request(&request, &cert, signer).unwrap()
}

fn denied(outcome: &Result<certbound_proto::ace::TokenResponse, Refusal>) -> String {
    match outcome {
        Err(Refusal::Denied(e)) => e.description.clone().unwrap_or_default(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn cached_certificates_obey_every_rule_of_the_token_path() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cb");
    registry::init_with(&dir, ISSUER, &InitOptions::on_test_backend().await)
        .await
        .unwrap();
    let config = Config::load(&dir).unwrap();
    let data = DataDir::with_config(&dir, &config);
    let store = Store::connect(&config.store_url(&data)).await.unwrap();
    // The registry shares the service's store, as the admin API does, so a
    // revocation is seen on the very next request.
    let reg = Registry::with_store(&dir, config.clone(), store.clone(), "test".into());
    reg.create_api(API, "telemetry:write", 600).await.unwrap();
    reg.create_group("sensors", &[(API.into(), "telemetry:write".into())])
        .await
        .unwrap();
    let mut devices = Vec::new();
    for id in ["dev-1", "dev-2"] {
        let made = reg
            .provision_device(id, &["sensors".into()], &tmp.path().join("devices"), None)
            .await
            .unwrap();
        let pem = std::fs::read_to_string(&made.cert_file).unwrap();
        devices.push(Device {
            leaf: certbound_pki::parse_pem_certs(&pem).unwrap().remove(0),
            signer: P256Signer::from_pkcs8_pem(&std::fs::read_to_string(&made.key_file).unwrap())
                .unwrap(),
            not_after: made.not_after,
        });
    }
    let keys = SharedKeys::new(KeyRing::load(&store, &data.key_dir()).await.unwrap());
    let (audit, audit_task) = AuditLog::spawn_with(store.clone(), AuditOptions::default());
    let pki = SharedPki::load(data.pki()).unwrap();
    let service = TokenService::new(
        TokenServiceConfig::from_config(&config),
        store.clone(),
        pki.clone(),
        keys,
        audit.clone(),
        None,
        Arc::new(RateLimits::new(RateLimitConfig {
            device_per_sec: 0.0,
            device_burst: 0,
            client_per_sec: 0.0,
            client_burst: 0,
        })),
    )
    .with_snapshot(store.load_snapshot().await.unwrap());
    let handle = |body: Vec<u8>, now: u64| {
        let service = &service;
        async move { service.handle(&body, "test", None, None, now).await }
    };
    let (d1, d2) = (&devices[0], &devices[1]);
    let now = unix_now();

    // Validated once, then from the cache: both answer.
    handle(request("dev-1", d1, &d1.signer, now, 1), now)
        .await
        .unwrap();
    handle(request("dev-1", d1, &d1.signer, now, 2), now)
        .await
        .unwrap();
    // The cached certificate's key still has to sign: another device's key
    // (a stolen certificate without its key) is refused.
    let why = denied(&handle(request("dev-1", d1, &d2.signer, now, 3), now).await);
    assert!(
        why.contains("not authenticated") || why.contains("signature"),
        "{why}"
    );
    // And the certificate still names its device: dev-2's key with dev-1's
    // certificate and iss dev-2 is refused.
    denied(&handle(request("dev-2", d1, &d2.signer, now, 4), now).await);

    // Past the path's validity (the leaf expired), the cache does not answer:
    // refused as expired.
    let late = d1.not_after + config.broker.leeway_secs + 10;
    let why = denied(&handle(request("dev-1", d1, &d1.signer, late, 5), late).await);
    assert!(why.contains("expired"), "{why}");
    // Back inside the window it answers again.
    handle(request("dev-1", d1, &d1.signer, now, 6), now)
        .await
        .unwrap();

    // Suspension and revocation act on the very next request, cache or not.
    reg.set_device_status("dev-1", DeviceStatus::Suspended, "test")
        .await
        .unwrap();
    denied(&handle(request("dev-1", d1, &d1.signer, now, 7), now).await);
    reg.set_device_status("dev-1", DeviceStatus::Active, "test")
        .await
        .unwrap();
    handle(request("dev-1", d1, &d1.signer, now, 8), now)
        .await
        .unwrap();
    reg.set_device_status("dev-1", DeviceStatus::Revoked, "stolen")
        .await
        .unwrap();
    denied(&handle(request("dev-1", d1, &d1.signer, now, 9), now).await);

    // A reload of the CAs starts with an empty cache: dev-2, validated before,
    // is validated again (and still answers).
    handle(request("dev-2", d2, &d2.signer, now, 10), now)
        .await
        .unwrap();
    let before = pki.get();
    std::fs::write(
        data.pki().issuing_cert(),
        std::fs::read(data.pki().issuing_cert()).unwrap(),
    )
    .unwrap();
    let mut shared = before.shared.clone();
    shared.issuing.push(before.issuing_der.clone());
    assert!(pki.reload_if_changed(&shared).unwrap());
    assert!(!Arc::ptr_eq(&before, &pki.get()));
    handle(request("dev-2", d2, &d2.signer, now, 11), now)
        .await
        .unwrap();

    drop(service);
    drop(audit);
    audit_task.await.unwrap();
    store.close().await;
}

certbound_broker::store::on_every_backend!(cached_certificates_obey_every_rule_of_the_token_path);
