use super::*;
use crate::crypto::{P256Signer, P256Verifier};

fn request() -> TokenRequest {
    TokenRequest {
        iss: "sensor-1".into(),
        aud: "https://auth.example.com".into(),
        exp: 1_700_000_300,
        iat: 1_700_000_000,
        cti: vec![7; 16],
        grant_type: Some(GRANT_CLIENT_CREDENTIALS),
        audience: Some("https://telemetry.example.com".into()),
        scope: Some("telemetry:write".into()),
        csr: None,
    }
}

#[test]
fn golden_payload_both_ways() {
    let hex_str = concat!(
        "a8",
        "016873656e736f722d31",                                   // 1: iss
        "03781868747470733a2f2f617574682e6578616d706c652e636f6d", // 3: aud
        "041a6553f22c",                                           // 4: exp
        "05781d68747470733a2f2f74656c656d657472792e6578616d706c652e636f6d", // 5: audience
        "061a6553f100",                                           // 6: iat
        "075007070707070707070707070707070707",                   // 7: cti
        "096f74656c656d657472793a7772697465",                     // 9: scope
        "182102",                                                 // 33: grant_type
    );
    assert_eq!(hex::encode(request().to_cbor()), hex_str);
    assert_eq!(
        TokenRequest::from_cbor(&hex::decode(hex_str).unwrap(), Limits::default()).unwrap(),
        request()
    );
}

#[test]
fn sign_parse_verify_both_cert_forms() {
    let device = P256Signer::from_scalar(&[3; 32]).unwrap();
    let verifier = P256Verifier::new(device.public_key()).unwrap();
    for cert in [
        CertRef::X5t([9; 32]),
        CertRef::X5Chain(vec![vec![1, 2, 3]]),
        CertRef::X5Chain(vec![vec![1, 2, 3], vec![4, 5]]),
    ] {
        let bytes = sign_request(&request(), &cert, &device).unwrap();
        let parsed = UnverifiedRequest::parse(&bytes, Limits::default()).unwrap();
        assert_eq!(parsed.cert, cert);
        assert_eq!(
            parsed.verify(&verifier, Limits::default()).unwrap(),
            request()
        );
    }
    // Another key's signature is refused.
    let other = P256Signer::from_scalar(&[4; 32]).unwrap();
    let bytes = sign_request(&request(), &CertRef::X5t([9; 32]), &other).unwrap();
    let parsed = UnverifiedRequest::parse(&bytes, Limits::default()).unwrap();
    assert_eq!(
        parsed.verify(&verifier, Limits::default()),
        Err(ProtoError::BadSignature)
    );
}

#[test]
fn request_without_typ_or_cert_ref() {
    let device = P256Signer::from_scalar(&[3; 32]).unwrap();
    // A plain third-party request without typ is fine.
    let params = ProtectedParams {
        kid: None,
        typ: None,
        extra: vec![CertRef::X5t([1; 32]).header()],
    };
    let bytes = cose::sign1(params, request().to_cbor(), &device).unwrap();
    assert!(UnverifiedRequest::parse(&bytes, Limits::default()).is_ok());
    // No certificate reference at all.
    let params = ProtectedParams {
        kid: None,
        typ: None,
        extra: vec![],
    };
    let bytes = cose::sign1(params, request().to_cbor(), &device).unwrap();
    assert!(matches!(
        UnverifiedRequest::parse(&bytes, Limits::default()),
        Err(ProtoError::BadHeader(_))
    ));
    // A typ naming something else (an access token) is refused.
    let params = ProtectedParams {
        kid: None,
        typ: Some(crate::token::TYP_ACCESS_TOKEN),
        extra: vec![CertRef::X5t([1; 32]).header()],
    };
    let bytes = cose::sign1(params, request().to_cbor(), &device).unwrap();
    assert!(matches!(
        UnverifiedRequest::parse(&bytes, Limits::default()),
        Err(ProtoError::WrongType { .. })
    ));
}

#[test]
fn assertion_validation() {
    let r = request();
    let broker = "https://auth.example.com";
    assert_eq!(r.validate(broker, 1_700_000_010, 30), Ok(()));
    assert!(matches!(
        r.validate("https://other-broker", 1_700_000_010, 30),
        Err(ProtoError::Claim(ClaimError::AudienceMismatch { .. }))
    ));
    assert!(matches!(
        r.validate(broker, 1_700_000_330, 30),
        Err(ProtoError::Claim(ClaimError::Expired { .. }))
    ));
    assert!(matches!(
        r.validate(broker, 1_699_999_000, 30),
        Err(ProtoError::Claim(ClaimError::NotYetValid { .. }))
    ));
    let mut long = r.clone();
    long.exp = long.iat + 3600;
    assert!(matches!(
        long.validate(broker, 1_700_000_010, 30),
        Err(ProtoError::Claim(ClaimError::LifetimeTooLong { .. }))
    ));
    let mut short_cti = r;
    short_cti.cti = vec![1; 4];
    assert!(short_cti.validate(broker, 1_700_000_010, 30).is_err());
}
