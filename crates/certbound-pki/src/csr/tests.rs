use rcgen::{
    CertificateParams, DistinguishedName, DnType, KeyPair, PublicKeyData as _, SigningKey as _,
};

use super::*;
use crate::pem::encode_pem;
use crate::pkcs7::tlv;
use crate::testutil::{openssl, openssl_available, p};
use crate::{CaOptions, PkiPaths, TrustStore, cert_summary, init_ca};

const NOW: u64 = 1_750_000_000;
const RSA_CSR: &str = include_str!("testdata/rsa2048.csr.pem");
const P384_SHA256_CSR: &str = include_str!("testdata/p384-sha256.csr.pem");
const P256_SHA384_CSR: &str = include_str!("testdata/p256-sha384.csr.pem");
const OPENSSL_CSR: &str = include_str!("testdata/p256-openssl.csr.pem");
/// DER of the AlgorithmIdentifier OID ecdsa-with-SHA256 (1.2.840.10045.4.3.2).
const ECDSA_SHA256_OID: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];

fn rcgen_csr(key: &KeyPair, cn: &str) -> Vec<u8> {
    let mut params = CertificateParams::new(vec!["attacker.example".to_string()]).unwrap();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.serialize_request(key).unwrap().der().to_vec()
}

/// The CertificationRequestInfo of a DER CSR.
fn info_of(csr: &[u8]) -> Vec<u8> {
    let (_, req) = X509CertificationRequest::from_der(csr).unwrap();
    req.certification_request_info.raw.to_vec()
}

/// Signs `info` with `key` into a CSR with the given AlgorithmIdentifier
/// contents and BIT STRING unused-bits byte.
fn assemble(info: &[u8], key: &KeyPair, alg: &[u8], unused_bits: u8) -> Vec<u8> {
    let sig = key.sign(info).unwrap();
    let mut body = info.to_vec();
    body.extend(tlv(0x30, alg));
    body.extend(tlv(0x03, &[&[unused_bits][..], &sig].concat()));
    tlv(0x30, &body)
}

fn ca() -> (tempfile::TempDir, PkiPaths, IssuingCa) {
    let dir = tempfile::tempdir().unwrap();
    let paths = PkiPaths::new(dir.path());
    init_ca(&paths, &CaOptions::default(), NOW).unwrap();
    let ca = IssuingCa::load(&paths).unwrap();
    (dir, paths, ca)
}

#[test]
fn accepts_der_and_both_pem_labels() {
    let key = KeyPair::generate().unwrap();
    let der = rcgen_csr(&key, "requested-name");
    let v = verify_csr(&der).unwrap();
    assert_eq!(v.spki_der, key.subject_public_key_info());
    assert!(v.spki_der.ends_with(&v.public_key_sec1));
    assert_eq!(v.public_key_sec1.len(), 65);
    assert_eq!(v.subject, "CN=requested-name");
    for label in ["CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"] {
        let pem = encode_pem(label, &der);
        assert_eq!(verify_csr(pem.as_bytes()).unwrap(), v, "{label}");
        let crlf = pem.replace('\n', "\r\n");
        assert_eq!(verify_csr(crlf.as_bytes()).unwrap(), v, "{label} CRLF");
    }
    // Text before the block (openssl req -text) and other blocks are ignored.
    let noisy = format!(
        "Certificate Request:\n    Data: ...\n{}{}",
        encode_pem("CERTIFICATE REQUEST", &der),
        encode_pem("CERTIFICATE", b"ignored")
    );
    assert_eq!(verify_csr(noisy.as_bytes()).unwrap(), v);
}

#[test]
fn accepts_openssl_csr_and_reports_its_subject() {
    let v = verify_csr(OPENSSL_CSR.as_bytes()).unwrap();
    assert_eq!(v.subject, "CN=evil, O=x");
    assert_eq!(v.public_key_sec1.len(), 65);
}

#[test]
fn subject_is_log_safe() {
    let key = KeyPair::generate().unwrap();
    let v = verify_csr(&rcgen_csr(&key, "a\nb\u{1b}[31m")).unwrap();
    assert_eq!(v.subject, "CN=a?b?[31m");
    let long = "x".repeat(1000);
    let v = verify_csr(&rcgen_csr(&key, &long)).unwrap();
    assert_eq!(v.subject.chars().count(), 256);
}

#[test]
fn issued_cert_ignores_everything_the_csr_asks_for() {
    let (_dir, paths, ca) = ca();
    let v = verify_csr(OPENSSL_CSR.as_bytes()).unwrap();
    let cert = ca.issue_for_csr(&v, "sensor-9", 30, NOW).unwrap();
    let summary = cert_summary(&cert.der).unwrap();
    assert_eq!(summary.subject, "CN=sensor-9");
    assert_eq!(summary.device_id.as_deref(), Some("sensor-9"));
    assert!(!summary.is_ca);
    let verified = TrustStore::load(&paths)
        .unwrap()
        .verify_device_cert(&cert.der, &[], NOW, 0)
        .unwrap();
    assert_eq!(verified.device_id, "sensor-9");
    assert_eq!(verified.public_key_sec1, v.public_key_sec1);
    let (_, x509) = x509_parser::parse_x509_certificate(&cert.der).unwrap();
    let eku = x509.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth);
    // The device id is still checked.
    assert!(matches!(
        ca.issue_for_csr(&v, "../x", 30, NOW),
        Err(PkiError::InvalidDeviceId { .. })
    ));
}

#[test]
fn rejects_tampered_signature_and_body() {
    let key = KeyPair::generate().unwrap();
    let der = rcgen_csr(&key, "dev-1");
    let mut bad_sig = der.clone();
    let last = bad_sig.len() - 1;
    bad_sig[last] ^= 0x01;
    let err = verify_csr(&bad_sig).unwrap_err();
    assert!(
        matches!(&err, PkiError::BadCsr(m) if m.contains("does not verify")),
        "{err}"
    );
    let pos = der.windows(5).position(|w| w == b"dev-1").unwrap();
    let mut bad_body = der.clone();
    bad_body[pos] = b'D';
    assert!(matches!(verify_csr(&bad_body), Err(PkiError::BadCsr(m)) if m.contains("possession")));
    // Signed by another key than the one inside.
    let other = KeyPair::generate().unwrap();
    let forged = assemble(&info_of(&der), &other, &ECDSA_SHA256_OID, 0);
    assert!(matches!(verify_csr(&forged), Err(PkiError::BadCsr(_))));
}

#[test]
fn hand_assembled_csr_is_accepted_as_control() {
    let key = KeyPair::generate().unwrap();
    let info = info_of(&rcgen_csr(&key, "dev-1"));
    let csr = assemble(&info, &key, &ECDSA_SHA256_OID, 0);
    assert!(verify_csr(&csr).is_ok());
}

#[test]
fn rejects_non_p256_keys_and_other_algorithms() {
    let rsa = verify_csr(RSA_CSR.as_bytes()).unwrap_err();
    assert!(
        matches!(&rsa, PkiError::UnsupportedKey(m) if m.contains("sha256WithRSA") || m.contains("1.2.840.113549.1.1.11")),
        "{rsa}"
    );
    let p384 = verify_csr(P384_SHA256_CSR.as_bytes()).unwrap_err();
    assert!(
        matches!(&p384, PkiError::UnsupportedKey(m) if m.contains("P-256")),
        "{p384}"
    );
    let sha384 = verify_csr(P256_SHA384_CSR.as_bytes()).unwrap_err();
    assert!(
        matches!(&sha384, PkiError::UnsupportedKey(m) if m.contains("ecdsa-with-SHA256")),
        "{sha384}"
    );
    let ed = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    assert!(matches!(
        verify_csr(&rcgen_csr(&ed, "d")),
        Err(PkiError::UnsupportedKey(_))
    ));
    // A P-384 key signed as ecdsa-with-SHA384 by rcgen.
    let p384 = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    assert!(matches!(
        verify_csr(&rcgen_csr(&p384, "d")),
        Err(PkiError::UnsupportedKey(_))
    ));
}

#[test]
fn rejects_wrong_version_and_algorithm_parameters() {
    let key = KeyPair::generate().unwrap();
    let info = info_of(&rcgen_csr(&key, "dev-1"));
    // The version INTEGER 0 follows the CertificationRequestInfo header.
    let header = if info[1] < 0x80 {
        2
    } else {
        2 + usize::from(info[1] & 0x7f)
    };
    assert_eq!(info[header..header + 3], [0x02, 0x01, 0x00]);
    let mut v2 = info.clone();
    v2[header + 2] = 0x01;
    let err = verify_csr(&assemble(&v2, &key, &ECDSA_SHA256_OID, 0)).unwrap_err();
    assert!(
        matches!(&err, PkiError::BadCsr(m) if m.contains("version")),
        "{err}"
    );

    let with_null = [&ECDSA_SHA256_OID[..], &[0x05, 0x00]].concat();
    let err = verify_csr(&assemble(&info, &key, &with_null, 0)).unwrap_err();
    assert!(
        matches!(&err, PkiError::BadCsr(m) if m.contains("parameters")),
        "{err}"
    );

    assert!(verify_csr(&assemble(&info, &key, &ECDSA_SHA256_OID, 1)).is_err());
}

#[test]
fn rejects_point_off_the_curve() {
    let key = KeyPair::generate().unwrap();
    let mut info = info_of(&rcgen_csr(&key, "dev-1"));
    let point = &key.subject_public_key_info()[26..];
    let pos = info.windows(65).position(|w| w == point).unwrap();
    info[pos + 64] ^= 0x01; // y no longer matches x
    let err = verify_csr(&assemble(&info, &key, &ECDSA_SHA256_OID, 0)).unwrap_err();
    assert!(matches!(err, PkiError::Malformed(m) if m.contains("not on the curve")));
}

#[test]
fn rejects_garbage() {
    let key = KeyPair::generate().unwrap();
    let der = rcgen_csr(&key, "dev-1");
    let mut trailing = der.clone();
    trailing.push(0);
    let two_blocks = format!(
        "{}{}",
        encode_pem("CERTIFICATE REQUEST", &der),
        encode_pem("CERTIFICATE REQUEST", &der)
    );
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("random DER-ish", vec![0x30, 0x03, 0x02, 0x01]),
        ("truncated", der[..der.len() / 2].to_vec()),
        ("trailing bytes", trailing),
        ("text", b"hello".to_vec()),
        (
            "certificate PEM",
            encode_pem("CERTIFICATE", &der).into_bytes(),
        ),
        ("two CSR blocks", two_blocks.into_bytes()),
        (
            "broken base64",
            b"-----BEGIN CERTIFICATE REQUEST-----\n!!!!\n-----END CERTIFICATE REQUEST-----\n"
                .to_vec(),
        ),
        (
            "PEM of garbage",
            encode_pem("CERTIFICATE REQUEST", b"junk").into_bytes(),
        ),
    ];
    for (what, input) in cases {
        let err = verify_csr(&input).unwrap_err();
        assert!(matches!(err, PkiError::BadCsr(_)), "{what}: {err}");
    }
}

#[test]
fn size_bound_is_8_kib() {
    let key = KeyPair::generate().unwrap();
    let pem = encode_pem("CERTIFICATE REQUEST", &rcgen_csr(&key, "dev-1"));
    let pad = |total: usize| {
        let mut text = "x".repeat(total - pem.len() - 1);
        text.push('\n');
        text.push_str(&pem);
        text.into_bytes()
    };
    assert_eq!(pad(MAX_CSR_LEN).len(), 8192);
    assert!(verify_csr(&pad(MAX_CSR_LEN)).is_ok());
    let err = verify_csr(&pad(MAX_CSR_LEN + 1)).unwrap_err();
    assert!(
        matches!(&err, PkiError::BadCsr(m) if m.contains("8193 bytes")),
        "{err}"
    );
    let big_der = [0x30].repeat(MAX_CSR_LEN + 1);
    assert!(matches!(verify_csr(&big_der), Err(PkiError::BadCsr(m)) if m.contains("8192")));
}

#[test]
fn openssl_csr_interop() {
    if !openssl_available("csr::openssl_csr_interop") {
        return;
    }
    let (dir, paths, ca) = ca();
    let d = dir.path();
    let (key, csr_path, cert_path) = (d.join("dev.key"), d.join("dev.csr"), d.join("cert.pem"));
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
        "/CN=evil/O=x",
        "-addext",
        "subjectAltName=URI:urn:certbound:device:other",
        "-out",
        p(&csr_path),
    ]);
    let csr = verify_csr(&std::fs::read(&csr_path).unwrap()).unwrap();
    assert_eq!(csr.subject, "CN=evil, O=x");
    let der_path = d.join("dev.csr.der");
    openssl(&[
        "req",
        "-in",
        p(&csr_path),
        "-outform",
        "DER",
        "-out",
        p(&der_path),
    ]);
    assert_eq!(verify_csr(&std::fs::read(&der_path).unwrap()).unwrap(), csr);

    let cert = ca.issue_for_csr(&csr, "sensor-42", 30, NOW).unwrap();
    std::fs::write(&cert_path, &cert.pem).unwrap();
    let v = openssl(&[
        "verify",
        "-attime",
        &NOW.to_string(),
        "-purpose",
        "sslclient",
        "-CAfile",
        p(&paths.root_cert()),
        "-untrusted",
        p(&paths.issuing_cert()),
        p(&cert_path),
    ]);
    assert!(v.trim_end().ends_with(": OK"), "{v}");
    let text = openssl(&[
        "x509",
        "-noout",
        "-subject",
        "-ext",
        "subjectAltName",
        "-in",
        p(&cert_path),
    ]);
    assert!(text.contains("subject=CN = sensor-42"), "{text}");
    assert!(
        text.contains("URI:urn:certbound:device:sensor-42"),
        "{text}"
    );
    assert!(!text.contains("other") && !text.contains("evil"), "{text}");
    // The certificate carries the key of the CSR.
    let cert_pub = openssl(&["x509", "-in", p(&cert_path), "-noout", "-pubkey"]);
    let key_pub = openssl(&["pkey", "-in", p(&key), "-pubout"]);
    assert_eq!(cert_pub, key_pub);
}
