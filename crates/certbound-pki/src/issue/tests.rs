use super::*;
use crate::{CaOptions, PkiPaths, TrustStore, cert_summary, init_ca, parse_pem_certs};

const NOW: u64 = 1_750_000_000;

fn setup() -> (tempfile::TempDir, PkiPaths, IssuingCa) {
    let dir = tempfile::tempdir().unwrap();
    let paths = PkiPaths::new(dir.path());
    init_ca(&paths, &CaOptions::default(), NOW).unwrap();
    let ca = IssuingCa::load(&paths).unwrap();
    (dir, paths, ca)
}

#[test]
fn device_cert_profile() {
    let (_dir, paths, ca) = setup();
    let bundle = ca.issue_device("sensor-1", 30, NOW).unwrap();
    let c = &bundle.cert;
    assert_eq!(c.not_before, NOW - 60);
    assert_eq!(c.not_after, NOW + 30 * 86_400);
    assert_eq!(c.serial_hex.len(), 32);
    assert_eq!(c.serial_hex, c.serial_hex.to_lowercase());
    assert_eq!(c.thumbprint, thumbprint_sha256(&c.der));
    assert_eq!(parse_pem_certs(&c.pem).unwrap(), vec![c.der.clone()]);
    let chain = parse_pem_certs(&bundle.chain_pem).unwrap();
    assert_eq!(chain, vec![c.der.clone(), ca.cert_der().to_vec()]);
    assert!(
        bundle
            .key_pkcs8_pem
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );

    let s = cert_summary(&c.der).unwrap();
    assert_eq!(s.subject, "CN=sensor-1");
    assert_eq!(s.device_id.as_deref(), Some("sensor-1"));
    assert_eq!(s.serial_hex, c.serial_hex);
    assert!(!s.is_ca);

    let x509 = crate::cert::parse_der(&c.der, "t").unwrap();
    let eku = x509.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth && !eku.any && eku.other.is_empty());
    let ku = x509.key_usage().unwrap().unwrap().value;
    assert!(ku.digital_signature() && !ku.key_cert_sign());
    assert!(!x509.basic_constraints().unwrap().unwrap().value.ca);
    let has = |oid| x509.get_extension_unique(&oid).unwrap().is_some();
    use x509_parser::oid_registry::{
        OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER, OID_X509_EXT_SUBJECT_KEY_IDENTIFIER,
    };
    assert!(has(OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER));
    assert!(has(OID_X509_EXT_SUBJECT_KEY_IDENTIFIER));

    let store = TrustStore::load(&paths).unwrap();
    let v = store.verify_device_cert(&c.der, &[], NOW, 0).unwrap();
    assert_eq!(v.device_id, "sensor-1");
    assert_eq!(v.serial_hex, c.serial_hex);
    assert_eq!((v.not_before, v.not_after), (c.not_before, c.not_after));
}

#[test]
fn issue_for_existing_key_binds_that_key() {
    let (_dir, paths, ca) = setup();
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let spki = key.subject_public_key_info();
    let cert = ca.issue_device_cert("gw:7", &spki, 1, NOW).unwrap();
    let store = TrustStore::load(&paths).unwrap();
    let v = store.verify_device_cert(&cert.der, &[], NOW, 0).unwrap();
    assert_eq!(v.public_key_sec1, key.der_bytes());
    assert_eq!(v.public_key_sec1.len(), 65);
}

#[test]
fn issue_rejects_bad_input() {
    let (_dir, _paths, ca) = setup();
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let spki = key.subject_public_key_info();
    assert!(matches!(
        ca.issue_device_cert("../x", &spki, 1, NOW),
        Err(PkiError::InvalidDeviceId { .. })
    ));
    assert!(matches!(
        ca.issue_device_cert("d", &spki, 0, NOW),
        Err(PkiError::InvalidArgument(_))
    ));
    assert!(matches!(
        ca.issue_device_cert("d", b"junk", 1, NOW),
        Err(PkiError::Malformed(_))
    ));
    let ed = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    assert!(matches!(
        ca.issue_device_cert("d", &ed.subject_public_key_info(), 1, NOW),
        Err(PkiError::UnsupportedKey(_))
    ));
    let p384 = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    assert!(matches!(
        ca.issue_device_cert("d", &p384.subject_public_key_info(), 1, NOW),
        Err(PkiError::UnsupportedKey(_))
    ));
    // A point that is not on the curve.
    let mut off_curve = spki.clone();
    let last = off_curve.len() - 1;
    off_curve[last] ^= 0x01;
    assert!(matches!(
        ca.issue_device_cert("d", &off_curve, 1, NOW),
        Err(PkiError::Malformed(_))
    ));
    // Issuing CA expired.
    let late = ca.not_after() + 1;
    assert!(matches!(
        ca.issue_device("d", 1, late),
        Err(PkiError::Expired { .. })
    ));
    // Lifetime is capped at the issuing CA.
    let c = ca.issue_device_cert("d", &spki, 100_000, NOW).unwrap();
    assert_eq!(c.not_after, ca.not_after());
}

#[test]
fn ten_certs_have_distinct_serials() {
    let (_dir, _paths, ca) = setup();
    let mut serials = std::collections::HashSet::new();
    for i in 0..10 {
        let b = ca.issue_device(&format!("dev-{i}"), 1, NOW).unwrap();
        assert_eq!(b.cert.serial_hex.len(), 32);
        assert!(
            serials.insert(b.cert.serial_hex.clone()),
            "duplicate serial"
        );
    }
    assert_eq!(serials.len(), 10);
}

#[test]
fn debug_redacts_key() {
    let (_dir, _paths, ca) = setup();
    let b = ca.issue_device("d", 1, NOW).unwrap();
    let debug = format!("{b:?}");
    assert!(debug.contains("[redacted]"));
    assert!(!debug.contains("PRIVATE KEY"));
    let body: String = b.key_pkcs8_pem.lines().nth(1).unwrap().into();
    assert!(!debug.contains(&body));
}

#[test]
fn write_to_creates_files_with_modes_and_refuses_overwrite() {
    let (dir, _paths, ca) = setup();
    let out = dir.path().join("out/nested");
    let b = ca.issue_device("dev-1", 1, NOW).unwrap();
    let (key_path, cert_path) = b.write_to(&out, "dev-1").unwrap();
    assert_eq!(key_path, out.join("dev-1.key.pem"));
    assert_eq!(cert_path, out.join("dev-1.cert.pem"));
    assert_eq!(std::fs::read_to_string(&key_path).unwrap(), b.key_pkcs8_pem);
    assert_eq!(std::fs::read_to_string(&cert_path).unwrap(), b.chain_pem);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key_path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let other = ca.issue_device("dev-1", 1, NOW).unwrap();
    assert!(matches!(
        other.write_to(&out, "dev-1"),
        Err(PkiError::AlreadyExists(_))
    ));
    assert_eq!(std::fs::read_to_string(&key_path).unwrap(), b.key_pkcs8_pem);
    // Only the cert exists: still refused, and no key file is left behind.
    std::fs::remove_file(&key_path).unwrap();
    assert!(matches!(
        other.write_to(&out, "dev-1"),
        Err(PkiError::AlreadyExists(p)) if p == cert_path
    ));
    assert!(!key_path.exists());
    assert!(matches!(
        b.write_to(&out, "../evil"),
        Err(PkiError::InvalidDeviceId { .. })
    ));
}

#[test]
fn service_and_server_profiles() {
    let (_dir, paths, ca) = setup();
    let trust = TrustStore::load(&paths).unwrap();

    let service = ca.issue_service("certbound-broker", 30, NOW).unwrap();
    let (_, x509) = x509_parser::parse_x509_certificate(&service.cert.der).unwrap();
    let eku = x509.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth);
    let san = format!(
        "{:?}",
        x509.subject_alternative_name().unwrap().unwrap().value
    );
    assert!(
        san.contains("urn:certbound:service:certbound-broker"),
        "{san}"
    );
    // A service certificate is never accepted as a device certificate.
    assert!(matches!(
        trust.verify_device_cert(&service.cert.der, &[], NOW, 0),
        Err(PkiError::NotADeviceCert(_))
    ));

    let server = ca
        .issue_server(&["localhost".into(), "127.0.0.1".into()], 30, NOW)
        .unwrap();
    let (_, x509) = x509_parser::parse_x509_certificate(&server.cert.der).unwrap();
    let eku = x509.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && !eku.client_auth);
    let san = format!(
        "{:?}",
        x509.subject_alternative_name().unwrap().unwrap().value
    );
    assert!(
        san.contains("localhost") && san.contains("IPAddress([127, 0, 0, 1])"),
        "{san}"
    );
    assert!(
        trust
            .verify_device_cert(&server.cert.der, &[], NOW, 0)
            .is_err()
    );

    assert!(matches!(
        ca.issue_server(&[], 30, NOW),
        Err(PkiError::InvalidArgument(_))
    ));
    assert!(ca.issue_server(&["bad name!".into()], 30, NOW).is_err());
    assert!(ca.issue_service("bad name", 30, NOW).is_err());
}
