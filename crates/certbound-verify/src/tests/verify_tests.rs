use certbound_proto::cose::{self, ProtectedParams};
use certbound_proto::{ClaimError, ProtoError};

use super::*;
use crate::VerifyError;

#[test]
fn round_trip_mint_verify() {
    let device = device();
    let cwt = mint(&claims(&device), &broker());
    let v = verifier().verify(&cwt, &["telemetry:write"], NOW).unwrap();
    assert_eq!(v.device_id(), Some("sensor-1"));
    assert_eq!(v.kid, broker().public_key().kid());
    assert_eq!(v.confirmation_key(), Some(device.public_key()));
    assert!(v.has_scope("telemetry:read"));
    assert!(!v.has_scope("telemetry"));
    assert_eq!(v.claims, claims(&device));
}

#[test]
fn cwt_tag_61_wrapper_is_accepted() {
    let mut cwt = vec![0xd8, 0x3d];
    cwt.extend(mint(&claims(&device()), &broker()));
    verifier().verify(&cwt, &[], NOW).unwrap();
}

#[test]
fn flipped_signature_byte_is_bad_signature() {
    let mut cwt = mint(&claims(&device()), &broker());
    let last = cwt.len() - 1;
    cwt[last] ^= 0x01;
    let err = verifier().verify(&cwt, &[], NOW).unwrap_err();
    assert_eq!(err, VerifyError::BadSignature);
    assert_eq!(err.reason_code(), "bad_signature");
}

#[test]
fn altered_claim_is_bad_signature() {
    let mut cwt = mint(&claims(&device()), &broker());
    let at = cwt
        .windows(15)
        .position(|w| w == b"telemetry:write")
        .unwrap();
    cwt[at] = b'T';
    assert_eq!(
        verifier().verify(&cwt, &[], NOW).unwrap_err(),
        VerifyError::BadSignature
    );
}

#[test]
fn unknown_kid_is_refused() {
    let cwt = token::mint(&claims(&device()), "rotated-away", &broker()).unwrap();
    let err = verifier().verify(&cwt, &[], NOW).unwrap_err();
    assert_eq!(
        err,
        VerifyError::UnknownKey {
            kid: "rotated-away".into()
        }
    );
    assert_eq!(err.reason_code(), "unknown_key");
    assert!(err.to_string().contains("reload the key set"));
}

#[test]
fn non_utf8_kid_is_unknown_key() {
    let params = ProtectedParams {
        kid: Some(vec![0xff, 0x00]),
        typ: Some(token::TYP_ACCESS_TOKEN),
        extra: Vec::new(),
    };
    let cwt = cose::sign1(params, claims(&device()).to_cbor(), &broker()).unwrap();
    let err = verifier().verify(&cwt, &[], NOW).unwrap_err();
    assert_eq!(
        err,
        VerifyError::UnknownKey {
            kid: "h'ff00'".into()
        }
    );
}

#[test]
fn known_kid_but_other_key_is_bad_signature() {
    let attacker = P256Signer::from_scalar(&[3u8; 32]).unwrap();
    let kid = broker().public_key().kid();
    let cwt = token::mint(&claims(&device()), &kid, &attacker).unwrap();
    assert_eq!(
        verifier().verify(&cwt, &[], NOW).unwrap_err(),
        VerifyError::BadSignature
    );
}

#[test]
fn expired_token_is_refused_after_leeway() {
    let cwt = mint(&claims(&device()), &broker());
    let v = verifier();
    v.verify(&cwt, &[], EXP + 59).unwrap();
    let err = v.verify(&cwt, &[], EXP + 60).unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::Claims(ClaimError::Expired { exp: EXP, .. })
        ),
        "{err:?}"
    );
    assert_eq!(err.reason_code(), "expired");
    assert!(err.to_string().contains("request a new token"), "{err}");
}

#[test]
fn missing_exp_is_refused() {
    let mut c = claims(&device());
    c.exp = None;
    let err = verifier()
        .verify(&mint(&c, &broker()), &[], NOW)
        .unwrap_err();
    assert_eq!(err, VerifyError::Claims(ClaimError::Missing("exp")));
    assert_eq!(err.reason_code(), "missing_claim");
}

#[test]
fn not_yet_valid_token_is_refused() {
    let mut c = claims(&device());
    c.nbf = Some(NOW + 61);
    let err = verifier()
        .verify(&mint(&c, &broker()), &[], NOW)
        .unwrap_err();
    assert!(
        matches!(err, VerifyError::Claims(ClaimError::NotYetValid { .. })),
        "{err:?}"
    );
    assert_eq!(err.reason_code(), "not_yet_valid");
    c.nbf = Some(NOW + 60);
    verifier().verify(&mint(&c, &broker()), &[], NOW).unwrap();
    // iat in the future counts too.
    let mut c = claims(&device());
    c.iat = Some(NOW + 600);
    let err = verifier()
        .verify(&mint(&c, &broker()), &[], NOW)
        .unwrap_err();
    assert_eq!(err.reason_code(), "not_yet_valid");
}

#[test]
fn wrong_audience_is_refused() {
    let mut c = claims(&device());
    c.aud = vec!["https://billing.example.com".into()];
    let err = verifier()
        .verify(&mint(&c, &broker()), &[], NOW)
        .unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::Claims(ClaimError::AudienceMismatch { .. })
        ),
        "{err:?}"
    );
    assert_eq!(err.reason_code(), "audience");
    c.aud = vec![
        "https://a.example.com".into(),
        "https://b.example.com".into(),
    ];
    let err = verifier()
        .verify(&mint(&c, &broker()), &[], NOW)
        .unwrap_err();
    assert_eq!(err.reason_code(), "audience");
}

#[test]
fn audience_array_containing_ours_is_accepted() {
    let mut c = claims(&device());
    c.aud = vec!["https://billing.example.com".into(), AUD.into()];
    verifier().verify(&mint(&c, &broker()), &[], NOW).unwrap();
}

#[test]
fn missing_scope_is_refused() {
    let cwt = mint(&claims(&device()), &broker());
    let v = verifier();
    v.verify(&cwt, &["telemetry:write", "telemetry:read"], NOW)
        .unwrap();
    let err = v
        .verify(&cwt, &["telemetry:write", "admin"], NOW)
        .unwrap_err();
    assert!(
        matches!(&err, VerifyError::Claims(ClaimError::ScopeMissing { missing, .. }) if missing == "admin"),
        "{err:?}"
    );
    assert_eq!(err.reason_code(), "scope");
    // A prefix of a granted scope is not that scope.
    let err = v.verify(&cwt, &["telemetry"], NOW).unwrap_err();
    assert_eq!(err.reason_code(), "scope");
}

#[test]
fn wrong_issuer_is_refused_and_a_cwt_without_iss_is_its_signing_keys() {
    let mut c = claims(&device());
    c.iss = Some("https://evil.example.com".into());
    let evil = mint(&c, &broker());
    let err = verifier().verify(&evil, &[], NOW).unwrap_err();
    assert!(
        matches!(err, VerifyError::Claims(ClaimError::IssuerMismatch { .. })),
        "{err:?}"
    );
    assert_eq!(err.reason_code(), "issuer");
    // certbound's CWTs carry no iss: the key, from the configured issuer's
    // key set, names the issuer. Another key is refused as before.
    c.iss = None;
    let no_iss = mint(&c, &broker());
    verifier().verify(&no_iss, &[], NOW).unwrap();
    let err = verifier()
        .verify(&mint(&c, &device()), &[], NOW)
        .unwrap_err();
    assert!(matches!(err, VerifyError::UnknownKey { .. }), "{err:?}");
    // Without a configured issuer every token is refused (issue 11: the
    // issuer is required by default), with or without iss...
    let unset = TokenVerifier::new(keys_of(&[&broker()]), VerifierConfig::new(AUD));
    let err = unset.verify(&no_iss, &[], NOW).unwrap_err();
    assert_eq!(err, VerifyError::IssuerNotConfigured);
    assert_eq!(err.reason_code(), "issuer_not_configured");
    let good = mint(&claims(&device()), &broker());
    assert_eq!(
        unset.verify(&good, &[], NOW).unwrap_err(),
        VerifyError::IssuerNotConfigured
    );
    // ...unless the verifier opts out explicitly.
    let mut config = VerifierConfig::new(AUD);
    config.any_issuer = true;
    let open = TokenVerifier::new(keys_of(&[&broker()]), config);
    open.verify(&evil, &[], NOW).unwrap();
    open.verify(&no_iss, &[], NOW).unwrap();
    // A configured issuer wins over the opt-out.
    let config = VerifierConfig {
        any_issuer: true,
        ..VerifierConfig::new(AUD).with_issuer(ISS)
    };
    let err = TokenVerifier::new(keys_of(&[&broker()]), config)
        .verify(&evil, &[], NOW)
        .unwrap_err();
    assert_eq!(err.reason_code(), "issuer");
}

#[test]
fn token_without_cnf_needs_allow_bearer() {
    let mut c = claims(&device());
    c.cnf = None;
    let cwt = mint(&c, &broker());
    let err = verifier().verify(&cwt, &[], NOW).unwrap_err();
    assert_eq!(err, VerifyError::MissingConfirmation);
    assert_eq!(err.reason_code(), "no_cnf");

    let mut config = VerifierConfig::new(AUD).with_issuer(ISS);
    config.allow_bearer = true;
    let bearer = TokenVerifier::new(keys_of(&[&broker()]), config);
    let v = bearer.verify(&cwt, &[], NOW).unwrap();
    assert_eq!(v.confirmation_key(), None);
    // A bearer token can never pass a binding check.
    assert_eq!(
        v.check_certificate_binding(b"irrelevant"),
        Err(VerifyError::MissingConfirmation)
    );
}

#[test]
fn other_typ_is_refused() {
    let params = ProtectedParams {
        kid: Some(broker().public_key().kid().into_bytes()),
        typ: Some("application/certbound-request+cwt"),
        extra: Vec::new(),
    };
    let cwt = cose::sign1(params, claims(&device()).to_cbor(), &broker()).unwrap();
    let err = verifier().verify(&cwt, &[], NOW).unwrap_err();
    assert!(
        matches!(err, VerifyError::Malformed(ProtoError::WrongType { .. })),
        "{err:?}"
    );
    assert_eq!(err.reason_code(), "wrong_type");
}

#[test]
fn garbage_oversize_and_trailing_bytes_are_malformed() {
    let v = verifier();
    for input in [&b""[..], b"hello", &[0xd2, 0x84]] {
        let err = v.verify(input, &[], NOW).unwrap_err();
        assert_eq!(err.reason_code(), "malformed", "{input:?}: {err:?}");
    }
    let mut cwt = mint(&claims(&device()), &broker());
    cwt.push(0);
    assert_eq!(
        v.verify(&cwt, &[], NOW).unwrap_err().reason_code(),
        "malformed"
    );

    let mut config = VerifierConfig::new(AUD).with_issuer(ISS);
    config.limits.max_size = 64;
    let small = TokenVerifier::new(keys_of(&[&broker()]), config);
    let cwt = mint(&claims(&device()), &broker());
    assert_eq!(
        small.verify(&cwt, &[], NOW).unwrap_err().reason_code(),
        "too_large"
    );
}

#[test]
fn config_defaults() {
    let c = VerifierConfig::new(AUD);
    assert_eq!(c.leeway, 60);
    assert!(!c.allow_bearer);
    assert_eq!(c.issuer, None);
    assert!(!c.any_issuer);
    assert_eq!(
        c.expected_issuer().unwrap_err(),
        VerifyError::IssuerNotConfigured
    );
    assert_eq!(c.limits, crate::Limits::default());
}
