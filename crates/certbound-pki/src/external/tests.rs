use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P384_SHA384,
};

use super::*;
use crate::cert::to_datetime;
use crate::testutil::{openssl, openssl_available, p};
use crate::{CaOptions, IssuingCa, PkiPaths, init_ca};

const NOW: u64 = 1_750_000_000;
const DAY: u64 = 86_400;

struct Ca {
    der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
}

fn dn(cns: &[&str]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Acme Devices");
    for cn in cns {
        dn.push(DnType::CommonName, *cn);
    }
    dn
}

fn ca_params(name: &str, path_len: u8) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = dn(&[name]);
    p.not_before = to_datetime(NOW - 30 * DAY).unwrap();
    p.not_after = to_datetime(NOW + 365 * DAY).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.use_authority_key_identifier_extension = true;
    p
}

fn root(name: &str) -> Ca {
    root_with(ca_params(name, 1), KeyPair::generate().unwrap())
}

fn root_with(params: CertificateParams, key: KeyPair) -> Ca {
    let der = params.self_signed(&key).unwrap().der().to_vec();
    Ca {
        der,
        issuer: Issuer::new(params, key),
    }
}

fn intermediate(parent: &Ca, name: &str, path_len: u8) -> Ca {
    let params = ca_params(name, path_len);
    let key = KeyPair::generate().unwrap();
    let der = params
        .signed_by(&key, &parent.issuer)
        .unwrap()
        .der()
        .to_vec();
    Ca {
        der,
        issuer: Issuer::new(params, key),
    }
}

fn leaf_params(cns: &[&str]) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = dn(cns);
    p.not_before = to_datetime(NOW - DAY).unwrap();
    p.not_after = to_datetime(NOW + 90 * DAY).unwrap();
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    p.use_authority_key_identifier_extension = true;
    p
}

fn sign(params: &CertificateParams, ca: &Ca) -> Vec<u8> {
    let key = KeyPair::generate().unwrap();
    params.signed_by(&key, &ca.issuer).unwrap().der().to_vec()
}

fn anchor(name: &str, ca: &Ca) -> ExternalAnchor {
    ExternalAnchor {
        name: name.into(),
        cert_der: ca.der.clone(),
    }
}

/// certbound's own store (with its issuing CA) plus the trusted external root.
fn store(trusted: &Ca) -> (tempfile::TempDir, PkiPaths, TrustStore) {
    let dir = tempfile::tempdir().unwrap();
    let paths = PkiPaths::new(dir.path());
    init_ca(&paths, &CaOptions::default(), NOW - DAY).unwrap();
    let store = TrustStore::load(&paths)
        .unwrap()
        .with_external(vec![anchor("acme", trusted)])
        .unwrap();
    (dir, paths, store)
}

#[test]
fn accepts_leaf_under_external_root_directly_and_via_intermediate() {
    let trusted = root("Acme Root");
    let (_dir, _paths, store) = store(&trusted);
    let direct = sign(&leaf_params(&["meter-17"]), &trusted);
    let v = store
        .verify_external_device_cert(&direct, &[], NOW, 0)
        .unwrap();
    assert_eq!(v.anchor_name, "acme");
    assert_eq!(v.subject_cn.as_deref(), Some("meter-17"));
    assert_eq!(v.device_id().unwrap(), "meter-17");
    assert_eq!(v.thumbprint, thumbprint_sha256(&direct));
    assert_eq!(v.not_after, NOW + 90 * DAY);
    assert_eq!(v.public_key_sec1, crate::public_key_sec1(&direct).unwrap());
    assert_eq!(
        v.serial_hex,
        crate::cert_summary(&direct).unwrap().serial_hex
    );

    let mid = intermediate(&trusted, "Acme Factory CA", 0);
    let leaf = sign(&leaf_params(&["meter-18"]), &mid);
    // The intermediate must be sent...
    assert!(matches!(
        store.verify_external_device_cert(&leaf, &[], NOW, 0),
        Err(PkiError::UnknownIssuer(_))
    ));
    // ...and then the path verifies; sending the anchor too is harmless.
    let v = store
        .verify_external_device_cert(&leaf, &[mid.der, trusted.der], NOW, 0)
        .unwrap();
    assert_eq!(v.device_id().unwrap(), "meter-18");
}

#[test]
fn an_intermediate_can_be_the_anchor() {
    let top = root("Acme Root");
    let mid = intermediate(&top, "Acme Factory CA", 0);
    let store = TrustStore::from_pem(&crate::pem::encode_pem("CERTIFICATE", &root("x").der))
        .unwrap()
        .with_external(vec![anchor("factory", &mid)])
        .unwrap();
    let leaf = sign(&leaf_params(&["m-1"]), &mid);
    let v = store
        .verify_external_device_cert(&leaf, &[], NOW, 0)
        .unwrap();
    assert_eq!(v.anchor_name, "factory");
    // Names the right anchor among several.
    let other = root("Other Root");
    let store = store
        .with_external(vec![anchor("other", &other), anchor("factory", &mid)])
        .unwrap();
    let v = store
        .verify_external_device_cert(&leaf, &[], NOW, 0)
        .unwrap();
    assert_eq!(v.anchor_name, "factory");
    let v = store
        .verify_external_device_cert(&sign(&leaf_params(&["m-2"]), &other), &[], NOW, 0)
        .unwrap();
    assert_eq!(v.anchor_name, "other");
}

#[test]
fn rejects_untrusted_ca_even_with_the_same_name() {
    let trusted = root("Acme Root");
    let (_dir, _paths, store) = store(&trusted);
    let untrusted = root("Evil Root");
    let leaf = sign(&leaf_params(&["meter-1"]), &untrusted);
    assert!(matches!(
        store.verify_external_device_cert(&leaf, &[], NOW, 0),
        Err(PkiError::UnknownIssuer(_))
    ));
    // Sending the untrusted root along does not help.
    let err = store
        .verify_external_device_cert(&leaf, std::slice::from_ref(&untrusted.der), NOW, 0)
        .unwrap_err();
    assert!(matches!(err, PkiError::UnknownIssuer(_)), "{err}");
    // A look-alike root with the trusted name (no key identifiers to tell them apart).
    let mut params = ca_params("Acme Root", 1);
    params.use_authority_key_identifier_extension = false;
    params.key_identifier_method = rcgen::KeyIdMethod::PreSpecified(Vec::new());
    let lookalike = root_with(params, KeyPair::generate().unwrap());
    let mut lp = leaf_params(&["meter-1"]);
    lp.use_authority_key_identifier_extension = false;
    let leaf = sign(&lp, &lookalike);
    let err = store
        .verify_external_device_cert(&leaf, &[], NOW, 0)
        .unwrap_err();
    assert!(
        matches!(err, PkiError::BadSignature(_) | PkiError::UnknownIssuer(_)),
        "{err}"
    );
}

#[test]
fn certbound_and_external_trust_stay_apart() {
    let trusted = root("Acme Root");
    let (_dir, paths, store) = store(&trusted);
    let own = IssuingCa::load(&paths)
        .unwrap()
        .issue_device("dev-1", 30, NOW)
        .unwrap();
    assert!(store.verify_device_cert(&own.cert.der, &[], NOW, 0).is_ok());
    assert!(matches!(
        store.verify_external_device_cert(&own.cert.der, &[], NOW, 0),
        Err(PkiError::UnknownIssuer(_))
    ));
    let external = sign(&leaf_params(&["dev-2"]), &trusted);
    assert!(matches!(
        store.verify_device_cert(&external, std::slice::from_ref(&trusted.der), NOW, 0),
        Err(PkiError::UnknownIssuer(_))
    ));
    // certbound's own CA cannot be configured as an external anchor.
    let own_root = parse_pem_certs_of(&paths);
    for der in own_root {
        let err = TrustStore::load(&paths)
            .unwrap()
            .with_external(vec![ExternalAnchor {
                name: "self".into(),
                cert_der: der,
            }])
            .unwrap_err();
        assert!(
            matches!(&err, PkiError::InvalidArgument(m) if m.contains("own")),
            "{err}"
        );
    }
    // No external anchors: nothing external verifies.
    let plain = TrustStore::load(&paths).unwrap();
    let err = plain
        .verify_external_device_cert(&external, &[], NOW, 0)
        .unwrap_err();
    assert!(
        matches!(&err, PkiError::UnknownIssuer(m) if m.contains("no external CA")),
        "{err}"
    );
}

fn parse_pem_certs_of(paths: &PkiPaths) -> Vec<Vec<u8>> {
    crate::parse_pem_certs(&std::fs::read_to_string(paths.chain()).unwrap()).unwrap()
}

#[test]
fn leaf_profile_rules() {
    let trusted = root("Acme Root");
    let (_dir, _paths, store) = store(&trusted);
    let verify = |der: &[u8]| store.verify_external_device_cert(der, &[], NOW, 0);

    let mut p = leaf_params(&["m-1"]);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let err = verify(&sign(&p, &trusted)).unwrap_err();
    assert!(
        matches!(&err, PkiError::NotAnExternalDeviceCert(m) if m.contains("CA")),
        "{err}"
    );

    let mut p = leaf_params(&["m-1"]);
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let err = verify(&sign(&p, &trusted)).unwrap_err();
    assert!(
        matches!(&err, PkiError::NotAnExternalDeviceCert(m) if m.contains("clientAuth")),
        "{err}"
    );

    // No EKU at all, or clientAuth among others: accepted.
    let mut p = leaf_params(&["m-1"]);
    p.extended_key_usages = Vec::new();
    assert!(verify(&sign(&p, &trusted)).is_ok());
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    assert!(verify(&sign(&p, &trusted)).is_ok());

    let mut p = leaf_params(&["m-1"]);
    p.key_usages = vec![KeyUsagePurpose::KeyEncipherment];
    let err = verify(&sign(&p, &trusted)).unwrap_err();
    assert!(
        matches!(&err, PkiError::NotAnExternalDeviceCert(m) if m.contains("digitalSignature")),
        "{err}"
    );

    let key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap();
    let p384 = leaf_params(&["m-1"])
        .signed_by(&key, &trusted.issuer)
        .unwrap();
    let err = verify(p384.der()).unwrap_err();
    assert!(matches!(err, PkiError::UnsupportedKey(_)), "{err}");

    let mut p = leaf_params(&["m-1"]);
    let mut ext =
        CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 99999, 1], vec![0x05, 0x00]);
    ext.set_criticality(true);
    p.custom_extensions = vec![ext];
    let err = verify(&sign(&p, &trusted)).unwrap_err();
    assert!(matches!(err, PkiError::InvalidChain(_)), "{err}");
}

#[test]
fn validity_signature_and_path_rules() {
    let trusted = root("Acme Root");
    let (_dir, _paths, store) = store(&trusted);
    let leaf = sign(&leaf_params(&["m-1"]), &trusted);
    assert!(matches!(
        store.verify_external_device_cert(&leaf, &[], NOW + 91 * DAY, 0),
        Err(PkiError::Expired { .. })
    ));
    assert!(
        store
            .verify_external_device_cert(&leaf, &[], NOW + 90 * DAY + 30, 60)
            .is_ok()
    );
    assert!(matches!(
        store.verify_external_device_cert(&leaf, &[], NOW - 2 * DAY, 0),
        Err(PkiError::NotYetValid { .. })
    ));
    // The anchor's own validity counts too.
    let mut short = ca_params("Short Root", 1);
    short.not_after = to_datetime(NOW + DAY).unwrap();
    let short = root_with(short, KeyPair::generate().unwrap());
    let store2 = store
        .clone()
        .with_external(vec![anchor("short", &short)])
        .unwrap();
    let leaf2 = sign(&leaf_params(&["m-1"]), &short);
    assert!(
        store2
            .verify_external_device_cert(&leaf2, &[], NOW, 0)
            .is_ok()
    );
    assert!(matches!(
        store2.verify_external_device_cert(&leaf2, &[], NOW + 2 * DAY, 0),
        Err(PkiError::Expired { .. })
    ));

    let mut tampered = leaf.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x01;
    let err = store
        .verify_external_device_cert(&tampered, &[], NOW, 0)
        .unwrap_err();
    assert!(
        matches!(err, PkiError::BadSignature(_) | PkiError::Malformed(_)),
        "{err}"
    );

    // pathlen 0 on the anchor forbids an intermediate below it.
    let strict = root_with(ca_params("Strict Root", 0), KeyPair::generate().unwrap());
    let mid = intermediate(&strict, "Strict Sub", 0);
    let store3 = store
        .clone()
        .with_external(vec![anchor("strict", &strict)])
        .unwrap();
    let leaf3 = sign(&leaf_params(&["m-1"]), &mid);
    let err = store3
        .verify_external_device_cert(&leaf3, std::slice::from_ref(&mid.der), NOW, 0)
        .unwrap_err();
    assert!(matches!(err, PkiError::InvalidChain(_)), "{err}");

    let too_many = vec![trusted.der; MAX_EXTRA_CERTS + 1];
    assert!(matches!(
        store.verify_external_device_cert(&leaf, &too_many, NOW, 0),
        Err(PkiError::Malformed(_))
    ));
    assert!(matches!(
        store.verify_external_device_cert(b"junk", &[], NOW, 0),
        Err(PkiError::Malformed(_))
    ));
}

#[test]
fn device_id_comes_from_a_valid_cn() {
    let trusted = root("Acme Root");
    let (_dir, _paths, store) = store(&trusted);
    let verify = |cns: &[&str]| {
        store
            .verify_external_device_cert(&sign(&leaf_params(cns), &trusted), &[], NOW, 0)
            .unwrap()
    };
    let v = verify(&["bad id/with slash"]);
    assert_eq!(v.subject_cn.as_deref(), Some("bad id/with slash"));
    let err = v.device_id().unwrap_err();
    assert!(
        matches!(&err, PkiError::ExternalDeviceId(m) if m.contains("bad id/with slash")),
        "{err}"
    );
    assert!(err.to_string().contains("not a valid device id"), "{err}");

    // No CN (several CNs: see the openssl test, rcgen cannot make them).
    let v = verify(&[]);
    assert_eq!(v.subject_cn, None);
    let err = v.device_id().unwrap_err();
    assert!(
        matches!(&err, PkiError::ExternalDeviceId(m) if m.contains("no CN")),
        "{err}"
    );
    assert!(verify(&["-starts-with-dash"]).device_id().is_err());
    assert_eq!(verify(&["gw:01.a_b"]).device_id().unwrap(), "gw:01.a_b");
}

#[test]
fn with_external_checks_the_anchors() {
    let trusted = root("Acme Root");
    let (_dir, paths, _store) = store(&trusted);
    let base = || TrustStore::load(&paths).unwrap();
    let leaf_der = sign(&leaf_params(&["m-1"]), &trusted);
    let p384 = root_with(
        ca_params("P384 Root", 1),
        KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap(),
    );
    let mut no_certsign = ca_params("No Sign Root", 1);
    no_certsign.key_usages = vec![KeyUsagePurpose::CrlSign];
    let no_certsign = root_with(no_certsign, KeyPair::generate().unwrap());
    let cases: Vec<(&str, Vec<ExternalAnchor>)> = vec![
        ("empty name", vec![anchor(" ", &trusted)]),
        (
            "duplicate name",
            vec![anchor("a", &trusted), anchor("a", &root("Other"))],
        ),
        (
            "duplicate cert",
            vec![anchor("a", &trusted), anchor("b", &trusted)],
        ),
        (
            "not a CA",
            vec![ExternalAnchor {
                name: "leaf".into(),
                cert_der: leaf_der,
            }],
        ),
        ("no keyCertSign", vec![anchor("n", &no_certsign)]),
        ("P-384", vec![anchor("p384", &p384)]),
        (
            "garbage",
            vec![ExternalAnchor {
                name: "g".into(),
                cert_der: b"junk".to_vec(),
            }],
        ),
    ];
    for (what, anchors) in cases {
        let err = base().with_external(anchors).unwrap_err();
        let expected = match what {
            "empty name" | "duplicate name" | "duplicate cert" => {
                matches!(err, PkiError::InvalidArgument(_))
            }
            "not a CA" | "no keyCertSign" => matches!(err, PkiError::InvalidChain(_)),
            "P-384" => matches!(err, PkiError::UnsupportedKey(_)),
            _ => matches!(err, PkiError::Malformed(_)),
        };
        assert!(expected, "{what}: {err}");
    }
    // An empty list clears the external anchors.
    let cleared = base()
        .with_external(vec![anchor("a", &trusted)])
        .unwrap()
        .with_external(Vec::new())
        .unwrap();
    assert!(format!("{cleared:?}").contains("external_anchors: 0"));
}

#[test]
fn openssl_made_external_ca_and_devices() {
    if !openssl_available("external::openssl_made_external_ca_and_devices") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ca_key, ca_cert) = (d.join("ca.key"), d.join("ca.pem"));
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        p(&ca_key),
        "-subj",
        "/O=Vendor/CN=Vendor Device CA",
        "-days",
        "3650",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-out",
        p(&ca_cert),
    ]);
    let ext = d.join("leaf.ext");
    std::fs::write(
        &ext,
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
         extendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    let make_leaf = |name: &str, subj: &str| {
        let (key, csr, cert) = (
            d.join(format!("{name}.key")),
            d.join(format!("{name}.csr")),
            d.join(format!("{name}.der")),
        );
        openssl(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            p(&key),
            "-subj",
            subj,
            "-out",
            p(&csr),
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            p(&csr),
            "-CA",
            p(&ca_cert),
            "-CAkey",
            p(&ca_key),
            "-CAcreateserial",
            "-days",
            "30",
            "-sha256",
            "-extfile",
            p(&ext),
            "-outform",
            "DER",
            "-out",
            p(&cert),
        ]);
        std::fs::read(&cert).unwrap()
    };
    let good = make_leaf("good", "/O=Vendor/CN=meter-9");
    let two_cns = make_leaf("two", "/CN=meter-a/CN=meter-b");

    let root_der = crate::parse_pem_certs(&std::fs::read_to_string(&ca_cert).unwrap())
        .unwrap()
        .remove(0);
    let store = TrustStore::from_pem(&crate::pem::encode_pem("CERTIFICATE", &root("x").der))
        .unwrap()
        .with_external(vec![ExternalAnchor {
            name: "vendor".into(),
            cert_der: root_der,
        }])
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let v = store
        .verify_external_device_cert(&good, &[], now, 60)
        .unwrap();
    assert_eq!(
        (v.anchor_name.as_str(), v.device_id().unwrap()),
        ("vendor", "meter-9")
    );
    let v = store
        .verify_external_device_cert(&two_cns, &[], now, 60)
        .unwrap();
    assert_eq!(v.subject_cn, None);
    let err = v.device_id().unwrap_err();
    assert!(
        matches!(&err, PkiError::ExternalDeviceId(m) if m.contains("more than one")),
        "{err}"
    );
}
