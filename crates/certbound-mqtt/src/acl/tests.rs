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
    let acl = CertboundAcl::new().with_revocation_check(Arc::new(|who: &Identity| {
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
fn services_use_cb_and_shared_cb_filters() {
    let acl = CertboundAcl::new();
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
