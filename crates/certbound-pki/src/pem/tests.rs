use super::*;

#[test]
fn no_certificate_is_an_error() {
    assert!(matches!(parse_pem_certs(""), Err(PkiError::Malformed(_))));
    let key_only = encode_pem("PRIVATE KEY", &[1, 2, 3]);
    assert!(matches!(
        parse_pem_certs(&key_only),
        Err(PkiError::Malformed(_))
    ));
}

#[test]
fn garbage_certificate_is_an_error() {
    let bad = encode_pem("CERTIFICATE", &[0x30, 0x03, 1, 2, 3]);
    assert!(matches!(parse_pem_certs(&bad), Err(PkiError::Malformed(_))));
}

#[test]
fn encode_wraps_at_64() {
    let pem = encode_pem("X", &[0u8; 100]);
    for line in pem.lines() {
        assert!(line.len() <= 64 || line.starts_with("-----"));
    }
    assert!(pem.starts_with("-----BEGIN X-----\n"));
    assert!(pem.ends_with("-----END X-----\n"));
}
