use super::*;
use crate::{CaOptions, IssuingCa, PkiPaths, init_ca};

#[test]
fn every_issued_profile_has_its_kind() {
    let now = 1_750_000_000;
    let dir = tempfile::tempdir().unwrap();
    let paths = PkiPaths::new(dir.path());
    init_ca(&paths, &CaOptions::default(), now).unwrap();
    let ca = IssuingCa::load(&paths).unwrap();
    let device = ca.issue_device("sensor-1", 30, now).unwrap();
    assert_eq!(
        identity_kind(&device.cert.der).unwrap(),
        IdentityKind::Device("sensor-1".into())
    );
    let service = ca.issue_service("reporting", 30, now).unwrap();
    assert_eq!(
        identity_kind(&service.cert.der).unwrap(),
        IdentityKind::Service("reporting".into())
    );
    let broker = ca.issue_service(BROKER_SERVICE_NAME, 30, now).unwrap();
    assert_eq!(
        identity_kind(&broker.cert.der).unwrap(),
        IdentityKind::Broker
    );
    let claim = ca.issue_claim("line-7", 3600, now).unwrap();
    assert_eq!(
        identity_kind(&claim.cert.der).unwrap(),
        IdentityKind::Claim("line-7".into())
    );
    let server = ca.issue_server(&["localhost".into()], 30, now).unwrap();
    assert_eq!(
        identity_kind(&server.cert.der).unwrap(),
        IdentityKind::Foreign
    );
    assert!(identity_kind(b"not a certificate").is_err());
}
