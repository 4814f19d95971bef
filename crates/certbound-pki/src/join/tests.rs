use super::*;
use crate::testutil::{openssl, openssl_available, p};
use crate::{IssuingCa, TrustStore, init_ca};

const T0: u64 = 1_750_000_000;

fn first_instance() -> (tempfile::TempDir, PkiPaths) {
    let dir = tempfile::tempdir().unwrap();
    let paths = PkiPaths::new(dir.path());
    init_ca(&paths, &CaOptions::default(), T0).unwrap();
    (dir, paths)
}

fn joining(root_of: &PkiPaths) -> (tempfile::TempDir, PkiPaths, String) {
    let dir = tempfile::tempdir().unwrap();
    let paths = PkiPaths::new(&dir.path().join("b"));
    let root = std::fs::read_to_string(root_of.root_cert()).unwrap();
    let csr = begin_join(&paths, &root, "certbound Issuing CA (b)").unwrap();
    (dir, paths, csr)
}

#[test]
fn an_instance_joins_with_its_own_issuing_ca_and_both_trust_each_other() {
    let (_a_dir, a) = first_instance();
    let (_b_dir, b, csr) = joining(&a);
    // Repeating the first step gives the same request.
    let root = std::fs::read_to_string(a.root_cert()).unwrap();
    assert_eq!(
        begin_join(&b, &root, "certbound Issuing CA (b)").unwrap(),
        csr
    );
    let signed = sign_instance_ca(&a, &csr, &CaOptions::default(), T0 + 10, None).unwrap();
    let serial = finish_join(&b, &signed.chain_pem, T0 + 20).unwrap();
    assert_eq!(serial, signed.serial_hex);
    assert!(!b.issuing_csr().exists() && !b.issuing_pending_key().exists());

    // B issues; A trusts it once B's issuing CA is published to it, and not before.
    let b_ca = IssuingCa::load(&b).unwrap();
    assert_eq!(b_ca.cert_der(), signed.cert_der.as_slice());
    let device = b_ca.issue_device("dev-b1", 30, T0 + 30).unwrap();
    let leaf = device.cert.der;
    let a_alone = TrustStore::load(&a).unwrap();
    assert!(a_alone.verify_device_cert(&leaf, &[], T0 + 40, 60).is_err());
    let a_trust = TrustStore::load_with(&a, std::slice::from_ref(&signed.cert_der)).unwrap();
    let verified = a_trust.verify_device_cert(&leaf, &[], T0 + 40, 60).unwrap();
    assert_eq!(verified.device_id, "dev-b1");
    // And B trusts A's devices through the shared root.
    let a_device = IssuingCa::load(&a)
        .unwrap()
        .issue_device("dev-a1", 30, T0 + 30)
        .unwrap();
    let a_leaf = a_device.cert.der;
    let a_issuing = IssuingCa::load(&a).unwrap().cert_der().to_vec();
    let b_trust = TrustStore::load_with(&b, &[a_issuing]).unwrap();
    b_trust
        .verify_device_cert(&a_leaf, &[], T0 + 40, 60)
        .unwrap();
}

#[test]
fn openssl_verifies_a_joined_instances_certificates() {
    if !openssl_available("openssl_verifies_a_joined_instances_certificates") {
        return;
    }
    let (_a_dir, a) = first_instance();
    let (dir, b, csr) = joining(&a);
    // openssl reads the request too.
    let csr_file = dir.path().join("req.pem");
    std::fs::write(&csr_file, &csr).unwrap();
    let text = openssl(&["req", "-in", p(&csr_file), "-noout", "-verify", "-subject"]);
    assert!(text.contains("certbound Issuing CA (b)"), "{text}");
    let now = crate::cert::unix_u64(time_now());
    let signed = sign_instance_ca(&a, &csr, &CaOptions::default(), now, None).unwrap();
    finish_join(&b, &signed.chain_pem, now).unwrap();
    let device = IssuingCa::load(&b)
        .unwrap()
        .issue_device("dev-b2", 30, now)
        .unwrap();
    let leaf = dir.path().join("leaf.pem");
    std::fs::write(&leaf, &device.cert.pem).unwrap();
    let out = openssl(&[
        "verify",
        "-CAfile",
        p(&a.root_cert()),
        "-untrusted",
        p(&b.chain()),
        p(&leaf),
    ]);
    assert!(out.contains(": OK"), "{out}");
}

fn time_now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

#[test]
fn a_certificate_for_another_key_or_from_another_root_is_refused() {
    let (_a_dir, a) = first_instance();
    let (_b_dir, b, _csr) = joining(&a);
    // A request made by someone else (another key) signed by the right root.
    let (_c_dir, _c, other_csr) = joining(&a);
    let wrong_key = sign_instance_ca(&a, &other_csr, &CaOptions::default(), T0, None).unwrap();
    let err = finish_join(&b, &wrong_key.chain_pem, T0).unwrap_err();
    assert!(err.to_string().contains("another key"), "{err}");
    // B's own request signed by a different root.
    let (_x_dir, x) = first_instance();
    let csr = std::fs::read_to_string(b.issuing_csr()).unwrap();
    let wrong_root = sign_instance_ca(&x, &csr, &CaOptions::default(), T0, None).unwrap();
    let err = finish_join(&b, &wrong_root.chain_pem, T0).unwrap_err();
    assert!(matches!(err, PkiError::BadSignature(_)), "{err}");
    // Nothing was installed.
    assert!(!b.issuing_cert().exists() && b.issuing_pending_key().exists());
    // A device certificate is not an issuing CA, even from the right root's CA.
    let device = IssuingCa::load(&a)
        .unwrap()
        .issue_device("dev-x", 30, T0)
        .unwrap();
    assert!(finish_join(&b, &device.cert.pem, T0).is_err());
}

#[test]
fn tampered_requests_and_bad_names_are_refused() {
    let (_a_dir, a) = first_instance();
    let (_b_dir, _b, csr) = joining(&a);
    let mut der = crate::csr::csr_from_pem(csr.as_bytes()).unwrap();
    let n = der.len();
    der[n - 5] ^= 0x01; // inside the signature
    let tampered = crate::pem::encode_pem("CERTIFICATE REQUEST", &der);
    assert!(matches!(
        sign_instance_ca(&a, &tampered, &CaOptions::default(), T0, None),
        Err(PkiError::BadCsr(_) | PkiError::Malformed(_))
    ));
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::read_to_string(a.root_cert()).unwrap();
    for bad in ["", " ", "a\nb", &"x".repeat(65)] {
        assert!(
            matches!(
                begin_join(&PkiPaths::new(dir.path()), &root, bad),
                Err(PkiError::InvalidArgument(_))
            ),
            "{bad:?}"
        );
    }
    // An instance that already has an issuing CA cannot join again.
    assert!(matches!(
        begin_join(&a, &root, "again"),
        Err(PkiError::AlreadyExists(_))
    ));
    // Without the root key nothing is signed.
    let (_c_dir, c, c_csr) = joining(&a);
    assert!(matches!(
        sign_instance_ca(&c, &c_csr, &CaOptions::default(), T0, None),
        Err(PkiError::RootKeyUnavailable(_))
    ));
}
