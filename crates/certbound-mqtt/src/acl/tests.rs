use super::*;
use certbound_pki::{CaOptions, IssuingCa, PkiPaths, init_ca};

const NOW: u64 = 1_750_000_000;

fn ca() -> (tempfile::TempDir, IssuingCa) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let paths = PkiPaths::new(tmp.path());
    init_ca(&paths, &CaOptions::default(), NOW).expect("init ca");
    let ca = IssuingCa::load(&paths).expect("load ca");
    (tmp, ca)
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(f)
}

fn device(id: &str) -> Identity {
    Identity::Device(id.into())
}

#[test]
fn identities_come_from_the_san_uri() {
    let (_tmp, ca) = ca();
    let acl = CertboundAcl::new();
    let dev = ca.issue_device("sensor-1", 30, NOW).expect("device");
    let svc = ca
        .issue_service("certbound-broker", 30, NOW)
        .expect("service");
    let srv = ca
        .issue_server(&["localhost".into()], 30, NOW)
        .expect("server");
    assert_eq!(
        block_on(acl.authenticate(&dev.cert.der)),
        Ok(device("sensor-1"))
    );
    assert_eq!(
        block_on(acl.authenticate(&svc.cert.der)),
        Ok(Identity::Service("certbound-broker".into()))
    );
    let refused = block_on(acl.authenticate(&srv.cert.der)).expect_err("no identity");
    assert!(refused.contains("SAN URI"), "{refused}");
    assert!(block_on(acl.authenticate(b"not a certificate")).is_err());
}

#[test]
fn revoked_identities_are_refused() {
    let (_tmp, ca) = ca();
    let dev = ca.issue_device("stolen", 30, NOW).expect("device");
    let ok = ca.issue_device("fine", 30, NOW).expect("device");
    let acl =
        CertboundAcl::new().with_revocation_check(Arc::new(|who: &Identity, _: &PeerCert| {
            *who == Identity::Device("stolen".into())
        }));
    let err = block_on(acl.authenticate(&dev.cert.der)).expect_err("revoked");
    assert!(err.contains("revoked"), "{err}");
    assert_eq!(block_on(acl.authenticate(&ok.cert.der)), Ok(device("fine")));
}

#[test]
fn devices_stay_in_their_own_namespace() {
    let acl = CertboundAcl::new();
    let me = device("sensor-1");
    for ok in ["cb/v1/sensor-1/telemetry", "cb/v1/sensor-1/token/req"] {
        assert!(acl.may_publish(&me, ok), "{ok}");
    }
    for bad in [
        "cb/v1/sensor-2/telemetry",
        "cb/v1/sensor-10/telemetry",
        "cb/v1/sensor-1x",
        "cb/v2/sensor-1/x",
        "other",
    ] {
        assert!(!acl.may_publish(&me, bad), "{bad}");
    }
    for ok in [
        "cb/v1/sensor-1/#",
        "cb/v1/sensor-1/token/res",
        "cb/v1/sensor-1/+",
    ] {
        assert!(acl.may_subscribe(&me, ok), "{ok}");
    }
    for bad in [
        "cb/v1/+/telemetry",
        "cb/v1/#",
        "#",
        "cb/v1/sensor-2/#",
        "$share/g/cb/v1/sensor-1/#",
        "+/v1/sensor-1/#",
    ] {
        assert!(!acl.may_subscribe(&me, bad), "{bad}");
    }
}

#[test]
fn revoked_certificates_are_refused_while_the_device_stays_active() {
    let (_tmp, ca) = ca();
    let old = ca.issue_device("renewed", 30, NOW).expect("old cert");
    let new = ca.issue_device("renewed", 30, NOW).expect("new cert");
    let revoked = certbound_pki::thumbprint_sha256(&old.cert.der);
    let acl =
        CertboundAcl::new().with_revocation_check(Arc::new(move |_: &Identity, c: &PeerCert| {
            c.thumbprint == revoked
        }));
    let err = block_on(acl.authenticate(&old.cert.der)).expect_err("revoked certificate");
    assert!(
        err.contains("revoked") && err.contains(&old.cert.serial_hex),
        "{err}"
    );
    assert_eq!(
        block_on(acl.authenticate(&new.cert.der)),
        Ok(device("renewed"))
    );
}

#[test]
fn peer_cert_facts() {
    let (_tmp, ca) = ca();
    let dev = ca.issue_device("d", 1, NOW).expect("device");
    let facts = PeerCert::from_der(&dev.cert.der).expect("parses");
    assert_eq!(facts.serial_hex, dev.cert.serial_hex);
    assert_eq!(
        facts.thumbprint,
        certbound_pki::thumbprint_sha256(&dev.cert.der)
    );
    assert_eq!(facts.not_after, NOW + 86_400);
    assert!(PeerCert::from_der(b"junk").is_err());
}

const BROKER: &str = "certbound-broker";

#[test]
fn only_the_broker_answers_devices() {
    let acl = CertboundAcl::new().with_broker(BROKER);
    let broker = Identity::Service(BROKER.into());
    let other = Identity::Service("reporting".into());
    for topic in [
        "cb/v1/sensor-1/token/res",
        "cb/v1/sensor-1/cert/res",
        "cb/claims/claim-x/res/sensor-1",
    ] {
        assert!(acl.may_publish(&broker, topic), "{topic}");
        assert!(!acl.may_publish(&other, topic), "{topic}");
    }
    // Without a configured broker nobody may.
    assert!(!CertboundAcl::new().may_publish(&broker, "cb/v1/sensor-1/token/res"));
    // A device named like the broker is a device.
    let lookalike = device(BROKER);
    assert!(!acl.may_publish(&lookalike, "cb/v1/sensor-1/token/res"));
    assert!(!acl.may_subscribe(&lookalike, "$share/certbound/cb/v1/+/token/req"));
    assert!(acl.may_publish(&lookalike, "cb/v1/certbound-broker/telemetry"));
}

#[test]
fn other_services_only_read_telemetry() {
    let acl = CertboundAcl::new().with_broker(BROKER);
    let svc = Identity::Service("ingest".into());
    for ok in [
        "cb/v1/+/telemetry",
        "cb/v1/sensor-1/telemetry",
        "$share/ingest/cb/v1/+/telemetry",
    ] {
        assert!(acl.may_subscribe(&svc, ok), "{ok}");
    }
    for bad in [
        "$share/certbound/cb/v1/+/telemetry",
        "$share/certbound/cb/v1/+/token/req",
        "$share/ingest/cb/v1/+/token/req",
        "cb/v1/+/token/req",
        "cb/v1/+/cert/req",
        "cb/v1/+/+",
        "cb/v1/#",
        "cb/#",
        "#",
        "$SYS/#",
        "cb/v1/+/telemetry/#",
        "cb/v1/a+/telemetry",
    ] {
        assert!(!acl.may_subscribe(&svc, bad), "{bad}");
    }
    assert!(!acl.may_publish(&svc, "cb/v1/sensor-1/telemetry"));
    assert!(!acl.may_publish(&svc, "cb/v1/sensor-1/token/res"));
}

#[test]
fn identity_comes_from_the_san_not_the_cn() {
    // A device certificate whose CN is the broker's name (made by hand:
    // certbound refuses such ids) is the device, never the broker.
    let (tmp, ca) = ca();
    let _ = ca;
    let der = lookalike_cert(tmp.path());
    let acl = CertboundAcl::new().with_broker(BROKER);
    let who = block_on(acl.authenticate(&der)).expect("a device identity");
    assert_eq!(who, device("lookalike"));
    assert!(!acl.may_publish(&who, "cb/v1/sensor-1/token/res"));
}

/// A certificate with CN=certbound-broker and SAN URI
/// urn:certbound:device:lookalike, signed by the test CA's issuing key with rcgen.
fn lookalike_cert(dir: &std::path::Path) -> Vec<u8> {
    let paths = PkiPaths::new(dir);
    let issuer_key = rcgen::KeyPair::from_pem(
        &std::fs::read_to_string(paths.issuing_key()).expect("issuing key"),
    )
    .expect("key");
    let issuer_pem = std::fs::read_to_string(paths.issuing_cert()).expect("issuing cert");
    let issuer = rcgen::Issuer::from_ca_cert_pem(&issuer_pem, issuer_key).expect("issuer");
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, BROKER);
    params.subject_alt_names = vec![rcgen::SanType::URI(
        "urn:certbound:device:lookalike".try_into().expect("uri"),
    )];
    let key = rcgen::KeyPair::generate().expect("key");
    params
        .signed_by(&key, &issuer)
        .expect("signed")
        .der()
        .to_vec()
}

#[test]
fn the_broker_uses_cb_and_shared_cb_filters() {
    let acl = CertboundAcl::new().with_broker(BROKER);
    let svc = Identity::Service("certbound-broker".into());
    assert!(acl.may_publish(&svc, "cb/v1/sensor-1/token/res"));
    assert!(!acl.may_publish(&svc, "other/x"));
    for ok in [
        "cb/#",
        "cb/v1/+/token/req",
        "$share/certbound/cb/v1/+/token/req",
    ] {
        assert!(acl.may_subscribe(&svc, ok), "{ok}");
    }
    for bad in [
        "#",
        "+/v1/x",
        "$share/certbound/#",
        "$share//cb/x",
        "$share/g+/cb/x",
        "$SYS/#",
    ] {
        assert!(!acl.may_subscribe(&svc, bad), "{bad}");
    }
}
