use super::*;
use crate::testutil::{openssl, openssl_available, p};
use crate::{CaOptions, IssuingCa, PkiPaths, init_ca, parse_pem_certs};

const NOW: u64 = 1_750_000_000;

/// Splits one DER TLV off `buf`: `(tag, content, rest)`. Test-only reader.
fn read_tlv(buf: &[u8]) -> (u8, &[u8], &[u8]) {
    let tag = buf[0];
    let (len, header) = if buf[1] < 0x80 {
        (usize::from(buf[1]), 2)
    } else {
        let n = usize::from(buf[1] & 0x7f);
        assert!(n > 0 && buf[2] != 0, "non-minimal length");
        let len = buf[2..2 + n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        assert!(len >= 0x80, "long form used for a short length");
        (len, 2 + n)
    };
    (tag, &buf[header..header + len], &buf[header + len..])
}

/// Parses a certs-only message by hand and returns its certificates.
fn parse_certs_only(der: &[u8]) -> Vec<Vec<u8>> {
    let (tag, content_info, rest) = read_tlv(der);
    assert_eq!((tag, rest.len()), (0x30, 0));
    assert_eq!(&content_info[..11], &OID_SIGNED_DATA);
    let (tag, explicit, rest) = read_tlv(&content_info[11..]);
    assert_eq!((tag, rest.len()), (0xa0, 0));
    let (tag, signed_data, rest) = read_tlv(explicit);
    assert_eq!((tag, rest.len()), (0x30, 0));

    let (tag, version, rest) = read_tlv(signed_data);
    assert_eq!((tag, version), (0x02, &[1u8][..]));
    let (tag, digests, rest) = read_tlv(rest);
    assert_eq!((tag, digests.len()), (0x31, 0));
    let (tag, encap, mut rest) = read_tlv(rest);
    assert_eq!((tag, encap), (0x30, &OID_DATA[..]));
    let mut certs = Vec::new();
    if rest[0] == 0xa0 {
        let (_, mut set, after) = read_tlv(rest);
        while !set.is_empty() {
            let (tag, _, next) = read_tlv(set);
            assert_eq!(tag, 0x30);
            certs.push(set[..set.len() - next.len()].to_vec());
            set = next;
        }
        rest = after;
    }
    let (tag, signers, rest) = read_tlv(rest);
    assert_eq!((tag, signers.len(), rest.len()), (0x31, 0, 0));
    certs
}

fn sample_certs() -> (tempfile::TempDir, Vec<Vec<u8>>) {
    let dir = tempfile::tempdir().unwrap();
    let paths = PkiPaths::new(dir.path());
    init_ca(&paths, &CaOptions::default(), NOW).unwrap();
    let ca = IssuingCa::load(&paths).unwrap();
    let leaf = ca.issue_device("dev-1", 30, NOW).unwrap();
    let mut certs = vec![leaf.cert.der];
    certs.extend(parse_pem_certs(&std::fs::read_to_string(paths.chain()).unwrap()).unwrap());
    (dir, certs)
}

#[test]
fn lengths_use_the_shortest_form() {
    assert_eq!(tlv(0x04, &[]), [0x04, 0x00]);
    assert_eq!(tlv(0x04, &[7; 127])[..2], [0x04, 0x7f]);
    assert_eq!(tlv(0x04, &[7; 128])[..3], [0x04, 0x81, 0x80]);
    assert_eq!(tlv(0x04, &[7; 255])[..3], [0x04, 0x81, 0xff]);
    assert_eq!(tlv(0x04, &[7; 256])[..4], [0x04, 0x82, 0x01, 0x00]);
    let big = tlv(0x04, &vec![7; 70_000]);
    assert_eq!(big[..5], [0x04, 0x83, 0x01, 0x11, 0x70]);
    assert_eq!(big.len(), 70_005);
}

#[test]
fn empty_bag_is_well_formed() {
    let der = pkcs7_certs_only(&[]);
    assert!(parse_certs_only(&der).is_empty());
    assert_eq!(
        der,
        [
            0x30, 0x23, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02, 0xa0,
            0x16, 0x30, 0x14, 0x02, 0x01, 0x01, 0x31, 0x00, 0x30, 0x0b, 0x06, 0x09, 0x2a, 0x86,
            0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01, 0x31, 0x00,
        ]
    );
}

#[test]
fn certificates_round_trip_sorted_and_deduplicated() {
    let (_dir, certs) = sample_certs();
    let der = pkcs7_certs_only(&certs);
    let mut expected = certs.clone();
    expected.sort();
    assert_eq!(parse_certs_only(&der), expected);
    // Order and duplicates of the input do not change the output.
    let mut shuffled = certs.clone();
    shuffled.reverse();
    shuffled.push(certs[0].clone());
    assert_eq!(pkcs7_certs_only(&shuffled), der);
    // One certificate (the simpleenroll answer).
    let one = pkcs7_certs_only(&certs[..1]);
    assert_eq!(parse_certs_only(&one), &certs[..1]);
}

#[test]
fn openssl_prints_every_certificate() {
    if !openssl_available("pkcs7::openssl_prints_every_certificate") {
        return;
    }
    let (dir, certs) = sample_certs();
    let path = dir.path().join("certs.p7b");
    std::fs::write(&path, pkcs7_certs_only(&certs)).unwrap();
    let out = openssl(&["pkcs7", "-inform", "DER", "-in", p(&path), "-print_certs"]);
    let printed = parse_pem_certs(&out).unwrap();
    assert_eq!(printed.len(), 3, "{out}");
    for cert in &certs {
        assert!(printed.contains(cert), "{out}");
    }
    assert!(out.contains("subject=CN = dev-1"), "{out}");
    assert!(out.contains("subject=CN = certbound Issuing CA"), "{out}");
    assert!(out.contains("subject=CN = certbound Root CA"), "{out}");
    // openssl re-encodes the structure identically (it is valid DER).
    let again = dir.path().join("again.p7b");
    openssl(&[
        "pkcs7",
        "-inform",
        "DER",
        "-in",
        p(&path),
        "-outform",
        "DER",
        "-out",
        p(&again),
    ]);
    let reencoded = std::fs::read(&again).unwrap();
    assert_eq!(parse_certs_only(&reencoded).len(), 3);
}

#[test]
fn reader_inverts_the_writer_and_refuses_bad_framing() {
    let a = vec![0x30, 0x03, 0x02, 0x01, 0x01];
    let b = vec![0x30, 0x81, 0x80];
    let mut b = b;
    b.extend(std::iter::repeat_n(0u8, 0x80));
    let p7 = pkcs7_certs_only(&[b.clone(), a.clone()]);
    let mut read = pkcs7_certificates(&p7).unwrap();
    read.sort();
    let mut want = vec![a.clone(), b.clone()];
    want.sort();
    assert_eq!(read, want);
    assert_eq!(
        pkcs7_certificates(&pkcs7_certs_only(&[])).unwrap(),
        Vec::<Vec<u8>>::new()
    );
    // Trailing bytes, truncation, indefinite and non-minimal lengths.
    let mut trailing = p7.clone();
    trailing.push(0);
    assert!(pkcs7_certificates(&trailing).is_err());
    for cut in 0..p7.len() {
        assert!(pkcs7_certificates(&p7[..cut]).is_err(), "cut at {cut}");
    }
    assert!(pkcs7_certificates(&[0x30, 0x80, 0x00, 0x00]).is_err());
    assert!(pkcs7_certificates(&[0x30, 0x81, 0x01, 0x00]).is_err());
    // Too many certificates.
    let many = vec![a; MAX_PKCS7_CERTS + 1];
    let many: Vec<Vec<u8>> = many
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            c[4] = u8::try_from(i).unwrap();
            c
        })
        .collect();
    assert!(pkcs7_certificates(&pkcs7_certs_only(&many)).is_err());
}
