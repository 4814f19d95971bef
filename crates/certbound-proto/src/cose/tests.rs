use super::*;
use crate::crypto::{P256Signer, P256Verifier, Signer};
use crate::key::EcPublicKey;

/// RFC 8392 Appendix A.3, signed with the key of Appendix A.2.3.
const RFC8392_A3: &str = concat!(
    "d28443a10126a104524173796d6d657472696345434453413235365850a70175",
    "636f61703a2f2f61732e6578616d706c652e636f6d02656572696b7703781863",
    "6f61703a2f2f6c696768742e6578616d706c652e636f6d041a5612aeb0051a56",
    "10d9f0061a5610d9f007420b7158405427c1ff28d23fbad1f29c4c7c6a555e60",
    "1d6fa29f9179bc3d7438bacaca5acd08c8d4d4f96131680c429a01f85951ecee",
    "743a52b9b63632c57209120e1c9e30"
);

fn a23_key() -> EcPublicKey {
    let mut x = [0u8; 32];
    let mut y = [0u8; 32];
    x.copy_from_slice(
        &hex::decode("143329cce7868e416927599cf65a34f3ce2ffda55a7eca69ed8919a394d42f0f").unwrap(),
    );
    y.copy_from_slice(
        &hex::decode("60f7f1a780d8a783bfb7a2dd6b2796e8128dbbcef9d3d168db9529971a36e7b9").unwrap(),
    );
    EcPublicKey { x, y }
}

#[test]
fn rfc8392_a3_verifies_with_a23_key() {
    let bytes = hex::decode(RFC8392_A3).unwrap();
    let parsed = UnverifiedSign1::parse(&bytes, Limits::default(), true).unwrap();
    assert_eq!(parsed.kid(), b"AsymmetricECDSA256");
    let verifier = P256Verifier::new(&a23_key()).unwrap();
    let payload = parsed.verify(&verifier).unwrap();
    let claims = crate::claims::Claims::from_cbor(payload, Limits::default()).unwrap();
    assert_eq!(claims.iss.as_deref(), Some("coap://as.example.com"));
    assert_eq!(claims.sub.as_deref(), Some("erikw"));
    assert_eq!(claims.aud, vec!["coap://light.example.com".to_string()]);
    assert_eq!(claims.exp, Some(1_444_064_944));
    assert_eq!(claims.cti, Some(vec![0x0b, 0x71]));
    // The payload re-encodes byte-identically.
    assert_eq!(claims.to_cbor(), payload);

    // The private scalar of A.2.3 produces the same public key.
    let signer = P256Signer::from_scalar(
        &hex::decode("6c1382765aec5358f117733d281c1c7bdc39884d04a45a1e6c67c858bc206c19").unwrap(),
    )
    .unwrap();
    assert_eq!(signer.public_key(), &a23_key());
}

#[cfg(feature = "aws-lc")]
#[test]
fn rfc8392_a3_verifies_with_aws_lc_too() {
    let bytes = hex::decode(RFC8392_A3).unwrap();
    let parsed = UnverifiedSign1::parse(&bytes, Limits::default(), true).unwrap();
    let verifier = crate::crypto::AwsLcVerifier::new(&a23_key()).unwrap();
    assert!(parsed.verify(&verifier).is_ok());
}

#[test]
fn tampering_is_detected() {
    let mut bytes = hex::decode(RFC8392_A3).unwrap();
    let verifier = P256Verifier::new(&a23_key()).unwrap();
    // Flip one payload byte (inside "erikw").
    let pos = bytes.windows(5).position(|w| w == b"erikw").unwrap();
    bytes[pos] ^= 1;
    let parsed = UnverifiedSign1::parse(&bytes, Limits::default(), true).unwrap();
    assert_eq!(parsed.verify(&verifier), Err(ProtoError::BadSignature));
}

fn build(
    protected: Header,
    unprotected: Header,
    payload: Option<Vec<u8>>,
    signer: &dyn Signer,
) -> Vec<u8> {
    let mut b = CoseSign1Builder::new()
        .protected(protected)
        .unprotected(unprotected);
    if let Some(p) = payload {
        b = b.payload(p);
    }
    b.create_signature(b"", |tbs| signer.sign(tbs).unwrap().to_vec())
        .build()
        .to_tagged_vec()
        .unwrap()
}

#[test]
fn header_rules() {
    let s = P256Signer::from_scalar(&[5; 32]).unwrap();
    let es256 = || HeaderBuilder::new().algorithm(iana::Algorithm::ES256);
    let parse = |b: &[u8]| UnverifiedSign1::parse(b, Limits::default(), false);

    // Baseline passes.
    assert!(
        parse(&build(
            es256().build(),
            Header::default(),
            Some(vec![0xa0]),
            &s
        ))
        .is_ok()
    );
    // alg only in the unprotected bucket.
    let r = parse(&build(
        Header::default(),
        es256().build(),
        Some(vec![0xa0]),
        &s,
    ));
    assert!(matches!(r, Err(ProtoError::BadHeader(_))), "{r:?}");
    // alg missing.
    let r = parse(&build(
        Header::default(),
        Header::default(),
        Some(vec![0xa0]),
        &s,
    ));
    assert!(matches!(r, Err(ProtoError::BadHeader(_))));
    // another algorithm (ES512, ecdsa-sig-04 class) and HMAC.
    for alg in [
        iana::Algorithm::ES512,
        iana::Algorithm::HMAC_256_256,
        iana::Algorithm::EdDSA,
    ] {
        let h = HeaderBuilder::new().algorithm(alg).build();
        let r = parse(&build(h, Header::default(), Some(vec![0xa0]), &s));
        assert!(
            matches!(r, Err(ProtoError::UnsupportedAlgorithm(_))),
            "{alg:?}"
        );
    }
    // unknown crit label.
    let h = es256()
        .add_critical_label(RegisteredLabelWithPrivate::PrivateUse(-70000))
        .value(-70000, Value::Bool(true))
        .build();
    let r = parse(&build(h, Header::default(), Some(vec![0xa0]), &s));
    assert!(matches!(r, Err(ProtoError::BadHeader(_))));
    // understood crit label passes.
    let h = es256()
        .add_critical(iana::HeaderParameter::Kid)
        .key_id(b"k".to_vec())
        .build();
    assert!(parse(&build(h, Header::default(), Some(vec![0xa0]), &s)).is_ok());
    // label in both buckets.
    let h = es256().key_id(b"a".to_vec()).build();
    let u = HeaderBuilder::new().key_id(b"b".to_vec()).build();
    assert!(matches!(
        parse(&build(h, u, Some(vec![0xa0]), &s)),
        Err(ProtoError::BadHeader(_))
    ));
    // typ in the unprotected bucket.
    let u = HeaderBuilder::new()
        .value(HEADER_TYP, Value::Text("x".into()))
        .build();
    assert!(matches!(
        parse(&build(es256().build(), u, Some(vec![0xa0]), &s)),
        Err(ProtoError::BadHeader(_))
    ));
    // detached payload.
    assert!(matches!(
        parse(&build(es256().build(), Header::default(), None, &s)),
        Err(ProtoError::InvalidStructure { .. })
    ));
}

#[test]
fn structural_rules() {
    let s = P256Signer::from_scalar(&[5; 32]).unwrap();
    let es256 = HeaderBuilder::new()
        .algorithm(iana::Algorithm::ES256)
        .build();
    let good = build(es256, Header::default(), Some(vec![0xa0]), &s);
    let parse = |b: &[u8], cwt| UnverifiedSign1::parse(b, Limits::default(), cwt);
    // Untagged.
    assert!(parse(&good[1..], false).is_err());
    // Trailing byte.
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(matches!(
        parse(&trailing, false),
        Err(ProtoError::MalformedCbor { .. })
    ));
    // CWT tag only where allowed.
    let mut wrapped = vec![0xd8, 0x3d];
    wrapped.extend_from_slice(&good);
    assert!(parse(&wrapped, true).is_ok());
    assert!(parse(&wrapped, false).is_err());
    // A Mac0 (tag 17) where a signature is expected.
    let mut mac = good.clone();
    mac[0] = 0xd1;
    assert!(parse(&mac, false).is_err());
    // Truncated signature.
    let mut short = good.clone();
    let n = short.len();
    short[n - 65] = 0x58; // keep the header but claim 63 bytes
    short[n - 64] = 63;
    short.truncate(n - 1);
    assert!(parse(&short, false).is_err());
}

#[test]
fn signature_scalar_range_checked() {
    use crate::crypto::check_signature_shape;
    assert!(check_signature_shape(&[0u8; 64]).is_err());
    assert!(check_signature_shape(&[0xffu8; 64]).is_err());
    assert!(check_signature_shape(&[1u8; 63]).is_err());
    assert!(check_signature_shape(&[1u8; 64]).is_ok());
    let mut r_zero = [1u8; 64];
    r_zero[..32].fill(0);
    assert!(check_signature_shape(&r_zero).is_err());
}
