//! Rejection tests for [`TrustStore::verify_device_cert`].

use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

use super::*;
use crate::{CaOptions, IssuingCa, init_ca};

const NOW: u64 = 1_750_000_000;
const DAY: u64 = 86_400;

struct Fixture {
    _dir: tempfile::TempDir,
    paths: PkiPaths,
    ca: IssuingCa,
    store: TrustStore,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let paths = PkiPaths::new(dir.path());
    // The CA is a year old, so "not yet valid" can be tested on the leaf alone.
    init_ca(&paths, &CaOptions::default(), NOW - 365 * DAY).unwrap();
    let ca = IssuingCa::load(&paths).unwrap();
    let store = TrustStore::load(&paths).unwrap();
    Fixture {
        _dir: dir,
        paths,
        ca,
        store,
    }
}

/// The issuing CA as an rcgen issuer, to hand-craft certificates in tests.
fn rcgen_issuer(paths: &PkiPaths) -> Issuer<'static, KeyPair> {
    let cert = std::fs::read_to_string(paths.issuing_cert()).unwrap();
    let key = KeyPair::from_pem(&std::fs::read_to_string(paths.issuing_key()).unwrap()).unwrap();
    Issuer::from_ca_cert_pem(&cert, key).unwrap()
}

/// A device-like profile that tests then break one field at a time.
fn device_params(cn: &str, uri: Option<&str>) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    p.distinguished_name = dn;
    if let Some(uri) = uri {
        p.subject_alt_names = vec![SanType::URI(Ia5String::try_from(uri).unwrap())];
    }
    p.not_before = crate::cert::to_datetime(NOW - 60).unwrap();
    p.not_after = crate::cert::to_datetime(NOW + DAY).unwrap();
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    p.use_authority_key_identifier_extension = true;
    p
}

fn sign(params: &CertificateParams, issuer: &Issuer<'_, KeyPair>) -> Vec<u8> {
    let key = KeyPair::generate().unwrap();
    params.signed_by(&key, issuer).unwrap().der().to_vec()
}

#[test]
fn accepts_a_good_device_cert() {
    let f = fixture();
    let b = f.ca.issue_device("dev-1", 30, NOW).unwrap();
    let v = f
        .store
        .verify_device_cert(&b.cert.der, &[], NOW, 0)
        .unwrap();
    assert_eq!(v.device_id, "dev-1");
    assert_eq!(v.thumbprint, b.cert.thumbprint);
    assert_eq!(v.public_key_sec1.len(), 65);
    assert_eq!(v.public_key_sec1[0], 0x04);
    // The peer may also send the chain it has; duplicates are ignored.
    let chain = parse_pem_certs(&b.chain_pem).unwrap();
    assert!(
        f.store
            .verify_device_cert(&b.cert.der, &chain, NOW, 0)
            .is_ok()
    );
}

#[test]
fn the_path_window_is_the_narrowest_of_its_certificates() {
    let f = fixture();
    let ca = crate::cert_summary(f.ca.cert_der()).unwrap();
    // A leaf that outlives its issuing CA: the validation holds only while
    // the CA is valid too, and only once the leaf is.
    let mut p = device_params("dev-long", Some("urn:certbound:device:dev-long"));
    p.not_after = crate::cert::to_datetime(ca.not_after + 365 * DAY).unwrap();
    let der = sign(&p, &rcgen_issuer(&f.paths));
    let v = f.store.verify_device_cert(&der, &[], NOW, 0).unwrap();
    assert_eq!(v.not_after, ca.not_after + 365 * DAY);
    assert_eq!(
        v.path_valid,
        Validity {
            not_before: NOW - 60,
            not_after: ca.not_after,
        }
    );
    assert!(v.path_valid.contains(NOW, 0));
    assert!(!v.path_valid.contains(ca.not_after + 1, 0));
    assert!(v.path_valid.contains(ca.not_after + 1, 5));
    assert!(!v.path_valid.contains(NOW - 61, 0));
    // And validation itself agrees at the edge.
    assert!(
        f.store
            .verify_device_cert(&der, &[], ca.not_after + 1, 0)
            .is_err()
    );
}

#[test]
fn hand_made_profile_is_accepted() {
    // Guards the negative tests below: the baseline they mutate is valid.
    let f = fixture();
    let der = sign(
        &device_params("d1", Some("urn:certbound:device:d1")),
        &rcgen_issuer(&f.paths),
    );
    assert_eq!(
        f.store
            .verify_device_cert(&der, &[], NOW, 0)
            .unwrap()
            .device_id,
        "d1"
    );
}

#[test]
fn rejects_expired_with_leeway() {
    let f = fixture();
    let b = f.ca.issue_device("dev-1", 1, NOW).unwrap();
    let after = b.cert.not_after + 10;
    match f.store.verify_device_cert(&b.cert.der, &[], after, 0) {
        Err(PkiError::Expired { not_after, now }) => {
            assert_eq!((not_after, now), (b.cert.not_after, after));
        }
        other => panic!("expected Expired, got {other:?}"),
    }
    assert!(
        f.store
            .verify_device_cert(&b.cert.der, &[], after, 30)
            .is_ok()
    );
    assert!(
        f.store
            .verify_device_cert(&b.cert.der, &[], NOW + 2 * DAY, 0)
            .is_err()
    );
}

#[test]
fn rejects_not_yet_valid() {
    let f = fixture();
    let b = f.ca.issue_device("dev-1", 1, NOW).unwrap();
    let before = NOW - 1000;
    assert!(matches!(
        f.store.verify_device_cert(&b.cert.der, &[], before, 0),
        Err(PkiError::NotYetValid { not_before, now }) if not_before == NOW - 60 && now == before
    ));
    assert!(
        f.store
            .verify_device_cert(&b.cert.der, &[], before, 1000)
            .is_ok()
    );
}

#[test]
fn rejects_foreign_ca_even_with_same_names() {
    let f = fixture();
    let other = fixture();
    let foreign = other.ca.issue_device("dev-1", 1, NOW).unwrap();
    assert!(matches!(
        f.store.verify_device_cert(&foreign.cert.der, &[], NOW, 0),
        Err(PkiError::UnknownIssuer(_))
    ));
    // Sending the foreign issuing CA along does not help.
    let chain = parse_pem_certs(&foreign.chain_pem).unwrap();
    assert!(matches!(
        f.store
            .verify_device_cert(&foreign.cert.der, &chain, NOW, 0),
        Err(PkiError::UnknownIssuer(_))
    ));
    // Nor does sending the foreign root.
    let foreign_roots =
        parse_pem_certs(&std::fs::read_to_string(other.paths.chain()).unwrap()).unwrap();
    assert!(matches!(
        f.store
            .verify_device_cert(&foreign.cert.der, &foreign_roots, NOW, 0),
        Err(PkiError::UnknownIssuer(_))
    ));
}

#[test]
fn rejects_tampered_signature_and_body() {
    let f = fixture();
    let b = f.ca.issue_device("dev-1", 1, NOW).unwrap();
    let mut sig = b.cert.der.clone();
    let last = sig.len() - 1;
    sig[last] ^= 0x01;
    assert!(matches!(
        f.store.verify_device_cert(&sig, &[], NOW, 0),
        Err(PkiError::BadSignature(_))
    ));
    // Rename the device inside the signed body (same length, so DER stays valid).
    let mut body = b.cert.der;
    let pos = body.windows(5).position(|w| w == b"dev-1").unwrap();
    body[pos + 4] = b'2';
    assert!(matches!(
        f.store.verify_device_cert(&body, &[], NOW, 0),
        Err(PkiError::BadSignature(_))
    ));
}

#[test]
fn rejects_wrong_eku() {
    let f = fixture();
    let mut p = device_params("d1", Some("urn:certbound:device:d1"));
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let der = sign(&p, &rcgen_issuer(&f.paths));
    assert!(matches!(
        f.store.verify_device_cert(&der, &[], NOW, 0),
        Err(PkiError::NotADeviceCert(m)) if m.contains("clientAuth")
    ));
    p.extended_key_usages = vec![];
    let der = sign(&p, &rcgen_issuer(&f.paths));
    assert!(matches!(
        f.store.verify_device_cert(&der, &[], NOW, 0),
        Err(PkiError::NotADeviceCert(_))
    ));
}

#[test]
fn rejects_missing_or_foreign_san() {
    let f = fixture();
    let issuer = rcgen_issuer(&f.paths);
    for uri in [
        None,
        Some("urn:example:device:d1"),
        Some("urn:certbound:device:"),
    ] {
        let der = sign(&device_params("d1", uri), &issuer);
        assert!(
            matches!(
                f.store.verify_device_cert(&der, &[], NOW, 0),
                Err(PkiError::NotADeviceCert(_))
            ),
            "uri {uri:?}"
        );
    }
}

#[test]
fn rejects_cn_san_mismatch() {
    let f = fixture();
    let der = sign(
        &device_params("d2", Some("urn:certbound:device:d1")),
        &rcgen_issuer(&f.paths),
    );
    assert!(matches!(
        f.store.verify_device_cert(&der, &[], NOW, 0),
        Err(PkiError::NotADeviceCert(m)) if m.contains("CN")
    ));
}

#[test]
fn rejects_ca_as_leaf() {
    let f = fixture();
    let mut p = device_params("d1", Some("urn:certbound:device:d1"));
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let der = sign(&p, &rcgen_issuer(&f.paths));
    // The issuing CA has pathlen 0, but a CA *leaf* is refused as a device.
    assert!(matches!(
        f.store.verify_device_cert(&der, &[], NOW, 0),
        Err(PkiError::NotADeviceCert(_))
    ));
    // The issuing CA certificate itself is not a device either.
    assert!(matches!(
        f.store.verify_device_cert(f.ca.cert_der(), &[], NOW, 0),
        Err(PkiError::NotADeviceCert(_))
    ));
}

#[test]
fn rejects_path_length_violation() {
    let f = fixture();
    // A sub-CA under the issuing CA (pathlen 0) must not be able to issue devices.
    let mut sub = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "rogue sub CA");
    sub.distinguished_name = dn;
    sub.not_before = crate::cert::to_datetime(NOW - 60).unwrap();
    sub.not_after = crate::cert::to_datetime(NOW + DAY).unwrap();
    sub.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    sub.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    sub.use_authority_key_identifier_extension = true;
    let sub_key = KeyPair::generate().unwrap();
    let sub_der = sub
        .signed_by(&sub_key, &rcgen_issuer(&f.paths))
        .unwrap()
        .der()
        .to_vec();
    let sub_issuer = Issuer::new(sub, sub_key);
    let leaf = sign(
        &device_params("d1", Some("urn:certbound:device:d1")),
        &sub_issuer,
    );
    assert!(matches!(
        f.store.verify_device_cert(&leaf, &[sub_der], NOW, 0),
        Err(PkiError::InvalidChain(m)) if m.contains("intermediate")
    ));
    assert!(matches!(
        f.store.verify_device_cert(&leaf, &[], NOW, 0),
        Err(PkiError::UnknownIssuer(_))
    ));
}

#[test]
fn root_only_store_uses_peer_intermediate() {
    let f = fixture();
    let root_pem = std::fs::read_to_string(f.paths.root_cert()).unwrap();
    let store = TrustStore::from_pem(&root_pem).unwrap();
    let b = f.ca.issue_device("dev-1", 1, NOW).unwrap();
    assert!(matches!(
        store.verify_device_cert(&b.cert.der, &[], NOW, 0),
        Err(PkiError::UnknownIssuer(_))
    ));
    let v = store
        .verify_device_cert(&b.cert.der, &[f.ca.cert_der().to_vec()], NOW, 0)
        .unwrap();
    assert_eq!(v.device_id, "dev-1");
}

#[test]
fn rejects_non_p256_chain() {
    let f = fixture();
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let mut root = CertificateParams::default();
    root.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    root.not_before = crate::cert::to_datetime(NOW - 60).unwrap();
    root.not_after = crate::cert::to_datetime(NOW + DAY).unwrap();
    let root_cert = root.self_signed(&key).unwrap();
    assert!(matches!(
        TrustStore::from_pem(&root_cert.pem()),
        Err(PkiError::UnsupportedKey(_))
    ));
    // A device cert signed with ECDSA P-384 / SHA-384, its CA sent along.
    let issuer = Issuer::new(root, key);
    let der = sign(
        &device_params("d1", Some("urn:certbound:device:d1")),
        &issuer,
    );
    assert!(matches!(
        f.store
            .verify_device_cert(&der, &[root_cert.der().to_vec()], NOW, 0),
        Err(PkiError::UnsupportedKey(_))
    ));
}

#[test]
fn store_construction_errors() {
    let f = fixture();
    let issuing_only = std::fs::read_to_string(f.paths.issuing_cert()).unwrap();
    assert!(matches!(
        TrustStore::from_pem(&issuing_only),
        Err(PkiError::Malformed(_))
    ));
    let b = f.ca.issue_device("dev-1", 1, NOW).unwrap();
    assert!(matches!(
        TrustStore::from_pem(&b.chain_pem),
        Err(PkiError::InvalidChain(_))
    ));
    assert!(format!("{:?}", f.store).contains("roots: 1"));
}

#[test]
fn rejects_garbage_and_too_many_extras() {
    let f = fixture();
    assert!(matches!(
        f.store.verify_device_cert(b"\x30\x00", &[], NOW, 0),
        Err(PkiError::Malformed(_))
    ));
    let b = f.ca.issue_device("dev-1", 1, NOW).unwrap();
    let mut trailing = b.cert.der.clone();
    trailing.push(0);
    assert!(matches!(
        f.store.verify_device_cert(&trailing, &[], NOW, 0),
        Err(PkiError::Malformed(_))
    ));
    let extras = vec![f.ca.cert_der().to_vec(); 9];
    assert!(matches!(
        f.store.verify_device_cert(&b.cert.der, &extras, NOW, 0),
        Err(PkiError::Malformed(_))
    ));
}
