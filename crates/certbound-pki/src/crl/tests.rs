use x509_parser::prelude::FromDer as _;
use x509_parser::revocation_list::CertificateRevocationList;

use super::*;
use crate::cert::serial_hex;
use crate::testutil::{openssl, openssl_available, openssl_output, p};
use crate::{CaOptions, PkiPaths, init_ca};

const NOW: u64 = 1_750_000_000;
const DAY: u64 = 86_400;

fn ca() -> (tempfile::TempDir, PkiPaths, IssuingCa) {
    let dir = tempfile::tempdir().unwrap();
    let paths = PkiPaths::new(dir.path());
    init_ca(&paths, &CaOptions::default(), NOW - DAY).unwrap();
    let ca = IssuingCa::load(&paths).unwrap();
    (dir, paths, ca)
}

fn parse(der: &[u8]) -> CertificateRevocationList<'_> {
    let (rest, crl) = CertificateRevocationList::from_der(der).unwrap();
    assert!(rest.is_empty());
    crl
}

fn revoked_serials(crl: &CertificateRevocationList<'_>) -> Vec<String> {
    crl.iter_revoked_certificates()
        .map(|r| serial_hex(r.raw_serial()))
        .collect()
}

#[test]
fn crl_is_signed_and_names_the_issuing_ca() {
    let (_dir, _paths, ca) = ca();
    let a = ca.issue_device("dev-a", 30, NOW).unwrap();
    let b = ca.issue_device("dev-b", 30, NOW).unwrap();
    let mut entry_b = RevokedEntry::new(&b.cert.serial_hex, NOW - 10);
    entry_b.reason = Some(RevocationReason::KeyCompromise);
    let revoked = [RevokedEntry::new(&a.cert.serial_hex, NOW - 20), entry_b];
    let crl = ca.crl(&revoked, 7, NOW, NOW + DAY).unwrap();
    assert!(crl.pem.starts_with("-----BEGIN X509 CRL-----\n"));
    assert_eq!(crate::pem::encode_pem("X509 CRL", &crl.der), crl.pem);

    let parsed = parse(&crl.der);
    let issuing = crate::cert::parse_der(ca.cert_der(), "ca").unwrap();
    assert_eq!(parsed.version(), Some(x509_parser::x509::X509Version(1)));
    assert_eq!(parsed.issuer().as_raw(), issuing.subject().as_raw());
    parsed.verify_signature(issuing.public_key()).unwrap();
    assert_eq!(parsed.last_update().timestamp(), NOW as i64);
    assert_eq!(
        parsed.next_update().unwrap().timestamp(),
        (NOW + DAY) as i64
    );
    assert_eq!(parsed.crl_number().unwrap().to_string(), "7");
    assert_eq!(
        revoked_serials(&parsed),
        [a.cert.serial_hex, b.cert.serial_hex]
    );
    let entries: Vec<_> = parsed.iter_revoked_certificates().collect();
    assert_eq!(entries[0].revocation_date.timestamp(), (NOW - 20) as i64);
    assert!(entries[0].reason_code().is_none());
    assert_eq!(entries[1].reason_code().unwrap().1.0, 1); // keyCompromise

    let ski = issuing
        .iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
            _ => None,
        });
    let aki = parsed
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                a.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        });
    assert!(ski.is_some());
    assert_eq!(aki, ski);
}

#[test]
fn empty_crl_has_no_revoked_list() {
    let (_dir, _paths, ca) = ca();
    let crl = ca.crl(&[], 1, NOW, NOW + DAY).unwrap();
    let parsed = parse(&crl.der);
    assert_eq!(parsed.iter_revoked_certificates().count(), 0);
    assert_eq!(parsed.crl_number().unwrap().to_string(), "1");
}

#[test]
fn crl_numbers_increase_and_encode_as_positive_integers() {
    let (_dir, _paths, ca) = ca();
    let mut last = None;
    for n in [
        0u64,
        1,
        2,
        127,
        128,
        255,
        256,
        u64::from(u32::MAX),
        u64::MAX,
    ] {
        let crl = ca.crl(&[], n, NOW, NOW + DAY).unwrap();
        let number = parse(&crl.der).crl_number().unwrap().clone();
        assert_eq!(number.to_string(), n.to_string());
        if let Some(prev) = last {
            assert!(number > prev);
        }
        last = Some(number);
    }
}

#[test]
fn serial_formats() {
    for (input, expected) in [
        ("00", "00"),
        ("0", "00"),
        ("0a", "0a"),
        ("a", "0a"),
        ("000a", "0a"),
        ("8001", "8001"),
        ("7fff", "7fff"),
        ("ABCDEF", "abcdef"),
        (
            "4f3c2b1a00000000000000000000ffff",
            "4f3c2b1a00000000000000000000ffff",
        ),
        (&"ff".repeat(20), &"ff".repeat(20)),
        (&format!("00{}", "7f".repeat(20)), &"7f".repeat(20)),
    ] {
        assert_eq!(
            serial_hex(&parse_serial_hex(input).unwrap()),
            expected,
            "{input}"
        );
    }
    let (_dir, _paths, ca) = ca();
    let entries: Vec<_> = ["8001", "0a", "00"]
        .iter()
        .map(|s| RevokedEntry::new(*s, NOW))
        .collect();
    let crl = ca.crl(&entries, 1, NOW, NOW + DAY).unwrap();
    assert_eq!(revoked_serials(&parse(&crl.der)), ["8001", "0a", "00"]);
    // The high bit of 0x80 gets a sign byte on the wire, not in serial_hex.
    let parsed = parse(&crl.der);
    let first = parsed.iter_revoked_certificates().next().unwrap();
    assert_eq!(first.raw_serial(), [0x00, 0x80, 0x01]);
}

#[test]
fn rejects_bad_serials_and_times() {
    let (_dir, _paths, ca) = ca();
    for bad in ["", "xyz", "0x12", "12 34", "ab:cd", &"01".repeat(21)] {
        let err = ca
            .crl(&[RevokedEntry::new(bad, NOW)], 1, NOW, NOW + DAY)
            .unwrap_err();
        assert!(
            matches!(err, PkiError::InvalidArgument(ref m) if m.contains("serial")),
            "{bad:?}: {err}"
        );
    }
    for (this, next) in [(NOW, NOW), (NOW, NOW - 1)] {
        let err = ca.crl(&[], 1, this, next).unwrap_err();
        assert!(
            matches!(err, PkiError::InvalidArgument(ref m) if m.contains("nextUpdate")),
            "{err}"
        );
    }
    assert!(matches!(
        ca.crl(&[], 1, NOW, u64::MAX),
        Err(PkiError::InvalidArgument(_))
    ));
}

#[test]
fn duplicate_serials_are_written_once_with_the_earliest_time() {
    let (_dir, _paths, ca) = ca();
    let entries = [
        RevokedEntry::new("0a", NOW - 5),
        RevokedEntry::new("0A", NOW - 50),
        RevokedEntry::new("000a", NOW - 1),
    ];
    let crl = ca.crl(&entries, 1, NOW, NOW + DAY).unwrap();
    let parsed = parse(&crl.der);
    let all: Vec<_> = parsed.iter_revoked_certificates().collect();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].revocation_date.timestamp(), (NOW - 50) as i64);
}

#[test]
fn openssl_reads_and_verifies_the_crl() {
    if !openssl_available("crl::openssl_reads_and_verifies_the_crl") {
        return;
    }
    let (dir, paths, ca) = ca();
    let d = dir.path();
    let revoked = ca.issue_device("dev-revoked", 30, NOW).unwrap();
    let good = ca.issue_device("dev-good", 30, NOW).unwrap();
    let mut entry = RevokedEntry::new(&revoked.cert.serial_hex, NOW - 30);
    entry.reason = Some(RevocationReason::Superseded);
    let entries = [entry, RevokedEntry::new("0a", NOW - 20)];
    let crl = ca.crl(&entries, 42, NOW, NOW + DAY).unwrap();
    let (der_path, pem_path) = (d.join("crl.der"), d.join("crl.pem"));
    std::fs::write(&der_path, &crl.der).unwrap();
    std::fs::write(&pem_path, &crl.pem).unwrap();

    let text = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        p(&der_path),
        "-noout",
        "-text",
    ]);
    assert!(
        text.contains(&format!(
            "Serial Number: {}",
            revoked.cert.serial_hex.to_uppercase()
        )),
        "{text}"
    );
    assert!(text.contains("Serial Number: 0A"), "{text}");
    assert!(text.contains("Superseded"), "{text}");
    assert!(
        text.contains("X509v3 CRL Number: \n                42"),
        "{text}"
    );
    assert!(text.contains("Issuer: CN = certbound Issuing CA"), "{text}");
    assert!(text.contains("Version 2"), "{text}");

    let v = openssl(&[
        "crl",
        "-in",
        p(&pem_path),
        "-CAfile",
        p(&paths.chain()),
        "-noout",
    ]);
    assert!(v.contains("verify OK"), "{v}");
    // Another CA's key does not verify it.
    let (_other_dir, other_paths, _other) = self::ca();
    let out = openssl_output(&[
        "crl",
        "-in",
        p(&pem_path),
        "-CAfile",
        p(&other_paths.chain()),
        "-noout",
    ]);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains("verify OK"), "{all}");

    // openssl verify -crl_check uses it: the revoked certificate fails, the other passes.
    let crl_chain = d.join("chain-with-crl.pem");
    std::fs::write(
        &crl_chain,
        format!(
            "{}{}",
            std::fs::read_to_string(paths.chain()).unwrap(),
            crl.pem
        ),
    )
    .unwrap();
    let at = (NOW + 60).to_string();
    for (cert, ok) in [(&revoked, false), (&good, true)] {
        let path = d.join("leaf.pem");
        std::fs::write(&path, &cert.cert.pem).unwrap();
        let out = openssl_output(&[
            "verify",
            "-attime",
            &at,
            "-crl_check",
            "-CAfile",
            p(&crl_chain),
            p(&path),
        ]);
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.success(), ok, "{all}");
        if !ok {
            assert!(all.contains("certificate revoked"), "{all}");
        }
    }
}
