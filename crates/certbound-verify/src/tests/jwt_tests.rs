//! JWT access tokens (RFC 9068): every rule of `verify_jwt` must be able to
//! fail, and `verify_text` must dispatch JWT and CWT text.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use certbound_proto::crypto::{P256Signer, Signer};
use certbound_proto::jwt::{JwtAudience, JwtClaims, JwtConfirmation, JwtStatus, sign_jwt};
use certbound_proto::status_list::StatusRef;
use certbound_proto::{ClaimError, ProtoError};

use super::*;
use crate::{TokenFormat, VerifyError};

/// A certificate thumbprint for the tests (any 32 bytes).
const X5T: [u8; 32] = [0xab; 32];

pub(super) fn jwt_claims() -> JwtClaims {
    JwtClaims {
        iss: ISS.into(),
        sub: "cb_client".into(),
        aud: JwtAudience(vec!["https://other.example.com".into(), AUD.into()]),
        exp: EXP,
        iat: 1_700_000_000,
        nbf: Some(1_700_000_000),
        jti: "tok-1".into(),
        client_id: "cb_client".into(),
        scope: Some("telemetry:read telemetry:write".into()),
        cnf: Some(JwtConfirmation {
            x5t_s256: URL_SAFE_NO_PAD.encode(X5T),
        }),
        status: Some(JwtStatus {
            status_list: StatusRef {
                idx: 7,
                uri: "https://auth.example.com/status/1".into(),
            },
        }),
    }
}

pub(super) fn sign(claims: &JwtClaims, signer: &P256Signer) -> String {
    sign_jwt(claims, &signer.public_key().kid(), signer).unwrap()
}

/// A compact JWS with any header, signed by `signer`.
fn raw_jws(header: &str, claims: &JwtClaims, signer: &P256Signer) -> String {
    let mut out = URL_SAFE_NO_PAD.encode(header);
    out.push('.');
    out.push_str(&URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap()));
    let sig = signer.sign(out.as_bytes()).unwrap();
    out.push('.');
    out.push_str(&URL_SAFE_NO_PAD.encode(sig));
    out
}

fn code(text: &str, scopes: &[&str]) -> &'static str {
    verifier()
        .verify_jwt(text, scopes, NOW)
        .unwrap_err()
        .reason_code()
}

#[test]
fn jwt_round_trip_maps_every_claim() {
    let jwt = sign(&jwt_claims(), &broker());
    let v = verifier()
        .verify_jwt(&jwt, &["telemetry:read"], NOW)
        .unwrap();
    assert_eq!(v.format, TokenFormat::Jwt);
    assert_eq!(v.format.as_str(), "jwt");
    assert_eq!(v.kid, broker().public_key().kid());
    assert_eq!(v.x5t_s256, Some(X5T));
    assert_eq!(v.client_id.as_deref(), Some("cb_client"));
    assert_eq!(v.subject(), Some("cb_client"));
    assert!(v.is_bound());
    assert!(v.confirmation_key().is_none());
    assert!(v.has_scope("telemetry:write"));
    let c = &v.claims;
    assert_eq!(c.iss.as_deref(), Some(ISS));
    assert_eq!(
        c.aud,
        vec!["https://other.example.com".to_string(), AUD.into()]
    );
    assert_eq!(
        (c.exp, c.iat, c.nbf),
        (Some(EXP), Some(1_700_000_000), Some(1_700_000_000))
    );
    assert_eq!(c.cti.as_deref(), Some(&b"tok-1"[..]));
    assert_eq!(
        c.status,
        Some(StatusRef {
            idx: 7,
            uri: "https://auth.example.com/status/1".into()
        })
    );
}

#[test]
fn verify_text_dispatches_jwt_and_cwt() {
    let jwt = sign(&jwt_claims(), &broker());
    let v = verifier()
        .verify_text(&format!("  {jwt}\n"), &[], NOW)
        .unwrap();
    assert_eq!(v.format, TokenFormat::Jwt);

    let cwt = mint(&claims(&device()), &broker());
    for text in [URL_SAFE_NO_PAD.encode(&cwt), hex::encode(&cwt)] {
        let v = verifier()
            .verify_text(&text, &["telemetry:write"], NOW)
            .unwrap();
        assert_eq!(v.format, TokenFormat::Cwt);
        assert_eq!(v.format.as_str(), "cwt");
        assert_eq!(v.x5t_s256, None);
        assert_eq!(v.client_id, None);
        assert!(v.is_bound());
    }
    // Neither: a token text error.
    let err = verifier()
        .verify_text("not a token!", &[], NOW)
        .unwrap_err();
    assert!(matches!(err, VerifyError::InvalidTokenText(_)), "{err:?}");
    // One dot is not a JWT; it is not base64 either.
    assert_eq!(
        verifier()
            .verify_text("a.b", &[], NOW)
            .unwrap_err()
            .reason_code(),
        "malformed"
    );
    // Longer than the bound: refused before decoding.
    let long = "A".repeat(64 * 1024);
    assert_eq!(
        verifier()
            .verify_text(&long, &[], NOW)
            .unwrap_err()
            .reason_code(),
        "too_large"
    );
    let long_jwt = format!("{}.{}.{}", "A".repeat(9000), "B", "C");
    assert_eq!(
        verifier()
            .verify_text(&long_jwt, &[], NOW)
            .unwrap_err()
            .reason_code(),
        "too_large"
    );
}

#[test]
fn jwt_wrong_audience_is_refused() {
    let mut c = jwt_claims();
    c.aud = JwtAudience(vec!["https://reports.example.com".into()]);
    let err = verifier()
        .verify_jwt(&sign(&c, &broker()), &[], NOW)
        .unwrap_err();
    assert!(matches!(
        err,
        VerifyError::Claims(ClaimError::AudienceMismatch { .. })
    ));
    assert_eq!(err.reason_code(), "audience");
}

#[test]
fn jwt_expired_and_not_yet_valid_are_refused() {
    let jwt = sign(&jwt_claims(), &broker());
    // Expired once now >= exp + leeway.
    let v = verifier();
    v.verify_jwt(&jwt, &[], EXP + DEFAULT_LEEWAY - 1).unwrap();
    let err = v.verify_jwt(&jwt, &[], EXP + DEFAULT_LEEWAY).unwrap_err();
    assert_eq!(err.reason_code(), "expired");

    let mut c = jwt_claims();
    c.nbf = Some(NOW + 3600);
    assert_eq!(code(&sign(&c, &broker()), &[]), "not_yet_valid");
    let mut c = jwt_claims();
    c.nbf = None;
    c.iat = NOW + 3600;
    assert_eq!(code(&sign(&c, &broker()), &[]), "not_yet_valid");
}

#[test]
fn jwt_missing_scope_is_refused() {
    let jwt = sign(&jwt_claims(), &broker());
    let err = verifier()
        .verify_jwt(&jwt, &["telemetry:read", "firmware:write"], NOW)
        .unwrap_err();
    assert_eq!(
        err,
        VerifyError::Claims(ClaimError::ScopeMissing {
            missing: "firmware:write".into(),
            granted: "telemetry:read telemetry:write".into()
        })
    );
    let mut c = jwt_claims();
    c.scope = None;
    assert_eq!(code(&sign(&c, &broker()), &["telemetry:read"]), "scope");
}

#[test]
fn jwt_unknown_or_missing_kid_is_refused() {
    let jwt = sign_jwt(&jwt_claims(), "rotated-away", &broker()).unwrap();
    let err = verifier().verify_jwt(&jwt, &[], NOW).unwrap_err();
    assert_eq!(
        err,
        VerifyError::UnknownKey {
            kid: "rotated-away".into()
        }
    );
    let no_kid = raw_jws(
        r#"{"alg":"ES256","typ":"at+jwt"}"#,
        &jwt_claims(),
        &broker(),
    );
    let err = verifier().verify_jwt(&no_kid, &[], NOW).unwrap_err();
    assert!(
        matches!(err, VerifyError::Malformed(ProtoError::BadHeader(ref m)) if m.contains("kid")),
        "{err:?}"
    );
}

#[test]
fn jwt_signed_by_another_key_under_a_known_kid_is_bad_signature() {
    let forger = P256Signer::from_scalar(&[3u8; 32]).unwrap();
    let jwt = sign_jwt(&jwt_claims(), &broker().public_key().kid(), &forger).unwrap();
    assert_eq!(code(&jwt, &[]), "bad_signature");
    // A claim altered after signing.
    let good = sign(&jwt_claims(), &broker());
    let parts: Vec<&str> = good.split('.').collect();
    let mut c = jwt_claims();
    c.scope = Some("admin:write".into());
    let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap());
    let forged = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
    assert_eq!(code(&forged, &[]), "bad_signature");
}

#[test]
fn jwt_wrong_issuer_is_refused() {
    let mut c = jwt_claims();
    c.iss = "https://evil.example.com".into();
    let err = verifier()
        .verify_jwt(&sign(&c, &broker()), &[], NOW)
        .unwrap_err();
    assert_eq!(err.reason_code(), "issuer");
    // Without a configured issuer every JWT is refused...
    let mut config = VerifierConfig::new(AUD);
    config.issuer = None;
    let err = TokenVerifier::new(keys_of(&[&broker()]), config.clone())
        .verify_jwt(&sign(&c, &broker()), &[], NOW)
        .unwrap_err();
    assert_eq!(err, VerifyError::IssuerNotConfigured);
    // ...and with the explicit opt-out any issuer is accepted.
    config.any_issuer = true;
    TokenVerifier::new(keys_of(&[&broker()]), config)
        .verify_jwt(&sign(&c, &broker()), &[], NOW)
        .unwrap();
}

#[test]
fn jwt_header_rules_map_to_reason_codes() {
    let c = jwt_claims();
    let kid = broker().public_key().kid();
    for (header, expected) in [
        (
            format!(r#"{{"alg":"none","typ":"at+jwt","kid":"{kid}"}}"#),
            "unsupported_alg",
        ),
        (
            format!(r#"{{"alg":"HS256","typ":"at+jwt","kid":"{kid}"}}"#),
            "unsupported_alg",
        ),
        (
            format!(r#"{{"alg":"ES256","typ":"JWT","kid":"{kid}"}}"#),
            "wrong_type",
        ),
        (format!(r#"{{"alg":"ES256","kid":"{kid}"}}"#), "wrong_type"),
        (
            format!(r#"{{"alg":"ES256","typ":"at+jwt","kid":"{kid}","crit":["x"]}}"#),
            "malformed",
        ),
    ] {
        assert_eq!(
            code(&raw_jws(&header, &c, &broker()), &[]),
            expected,
            "{header}"
        );
    }
    // The same header with the full media type is accepted.
    let ok = raw_jws(
        &format!(r#"{{"alg":"ES256","typ":"application/at+jwt","kid":"{kid}"}}"#),
        &c,
        &broker(),
    );
    verifier().verify_jwt(&ok, &[], NOW).unwrap();
}

#[test]
fn jwt_bearer_is_refused_unless_allowed() {
    let mut c = jwt_claims();
    c.cnf = None;
    let jwt = sign(&c, &broker());
    let err = verifier().verify_jwt(&jwt, &[], NOW).unwrap_err();
    assert_eq!(err, VerifyError::MissingConfirmation);
    assert_eq!(err.reason_code(), "no_cnf");

    let mut config = verifier().config().clone();
    config.allow_bearer = true;
    let v = TokenVerifier::new(keys_of(&[&broker()]), config)
        .verify_jwt(&jwt, &[], NOW)
        .unwrap();
    assert!(!v.is_bound());
    assert_eq!(
        v.check_certificate_binding(b"any"),
        Err(VerifyError::MissingConfirmation)
    );
}

#[test]
fn jwt_malformed_thumbprint_is_refused() {
    for bad in [
        "",
        "AAAA",
        "not base64url!",
        &URL_SAFE_NO_PAD.encode([1u8; 20]),
    ] {
        let mut c = jwt_claims();
        c.cnf = Some(JwtConfirmation {
            x5t_s256: bad.into(),
        });
        assert_eq!(code(&sign(&c, &broker()), &[]), "malformed", "{bad:?}");
    }
}

#[test]
fn cwt_text_is_not_a_jwt() {
    let cwt = URL_SAFE_NO_PAD.encode(mint(&claims(&device()), &broker()));
    assert_eq!(code(&cwt, &[]), "malformed");
}
