use super::*;

#[test]
fn serial_hex_strips_sign_and_leading_zero_bytes() {
    assert_eq!(serial_hex(&[0x00, 0x80, 0x01]), "8001");
    assert_eq!(serial_hex(&[0x00, 0x00, 0x0a]), "0a");
    assert_eq!(serial_hex(&[0x7f, 0xff]), "7fff");
    assert_eq!(serial_hex(&[0x00]), "00");
    assert_eq!(serial_hex(&[]), "00");
}

#[test]
fn random_serials_are_16_byte_positive_and_distinct() {
    let a = random_serial().unwrap();
    let b = random_serial().unwrap();
    assert_ne!(a, b);
    for s in [a, b] {
        assert!((0x40..=0x7f).contains(&s[0]));
        assert_eq!(serial_hex(&s).len(), 32);
    }
}

#[test]
fn thumbprint_is_sha256() {
    assert_eq!(
        hex::encode(thumbprint_sha256(b"abc")),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn time_helpers() {
    assert_eq!(unix_u64(-5), 0);
    assert_eq!(unix_u64(7), 7);
    assert_eq!(add_days(10, 1).unwrap(), 86_410);
    assert!(add_days(u64::MAX, 1).is_err());
    assert!(to_datetime(u64::MAX).is_err());
    assert_eq!(to_datetime(0).unwrap().unix_timestamp(), 0);
}

#[test]
fn summary_rejects_garbage() {
    assert!(matches!(cert_summary(b"nope"), Err(PkiError::Malformed(_))));
}
