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

mod other_algorithms {
    //! RS256, PS256 and EdDSA keys from a JWKS: each verifies its own
    //! algorithm only; algorithm confusion is refused.
    use certbound_proto::jose::{self, JwsAlg, JwsKey, JwsSigner};
    use certbound_proto::jwt::sign_jwt_with;

    use super::*;

    fn key_set_with(signers: &[&dyn JwsSigner]) -> KeySet {
        let mut keys = keys_of(&[&broker()]);
        for s in signers {
            keys.insert_jws(s.jws_key().kid(), s.jws_key()).unwrap();
        }
        // Through the JWKS text, as a verifier gets it.
        KeySet::from_jwks(&keys.to_jwks()).unwrap()
    }

    fn verifier_with(keys: KeySet) -> TokenVerifier {
        let mut config = VerifierConfig::new(AUD);
        config.issuer = Some(ISS.into());
        TokenVerifier::new(keys, config)
    }

    #[test]
    fn each_key_verifies_its_own_algorithm_only() {
        let signers: Vec<Box<dyn JwsSigner>> = [JwsAlg::Rs256, JwsAlg::Ps256, JwsAlg::EdDsa]
            .into_iter()
            .map(|a| jose::generate(a).unwrap().0)
            .collect();
        let refs: Vec<&dyn JwsSigner> = signers.iter().map(|s| s.as_ref()).collect();
        let keys = key_set_with(&refs);
        for s in &signers {
            assert_eq!(keys.alg(&s.jws_key().kid()), Some(s.alg()));
        }
        let v = verifier_with(keys);
        let c = jwt_claims();
        for s in &signers {
            let kid = s.jws_key().kid();
            let text = sign_jwt_with(&c, &kid, s.as_ref()).unwrap();
            let ok = v.verify_jwt(&text, &["telemetry:read"], NOW).unwrap();
            assert_eq!(ok.kid, kid);
            // Tampered: refused.
            let mut parts: Vec<&str> = text.split('.').collect();
            let mut forged_claims = c.clone();
            forged_claims.scope = Some("admin".into());
            let forged_payload =
                URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged_claims).unwrap());
            parts[1] = &forged_payload;
            let err = v.verify_jwt(&parts.join("."), &[], NOW).unwrap_err();
            assert_eq!(err.reason_code(), "bad_signature", "{}", s.alg());
            // The same signature under every other header alg: refused as
            // unsupported_alg (the key decides, never the header).
            for other in ["ES256", "RS256", "PS256", "EdDSA", "HS256", "none"] {
                if other == s.alg().as_str() {
                    continue;
                }
                let header = URL_SAFE_NO_PAD.encode(format!(
                    r#"{{"alg":"{other}","typ":"at+jwt","kid":"{kid}"}}"#
                ));
                let relabelled =
                    format!("{header}.{}.{}", parts[1], text.split('.').nth(2).unwrap());
                let err = v.verify_jwt(&relabelled, &[], NOW).unwrap_err();
                assert!(
                    matches!(err.reason_code(), "unsupported_alg" | "malformed"),
                    "{} key, header {other}: {err}",
                    s.alg()
                );
            }
        }
        // An ES256 token under an RSA key's kid (and the reverse) is refused.
        let es = sign(&c, &broker());
        let (_, rest) = es.split_once('.').unwrap();
        let rsa_kid = signers[0].jws_key().kid();
        let header = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"alg":"ES256","typ":"at+jwt","kid":"{rsa_kid}"}}"#
        ));
        let err = v
            .verify_jwt(&format!("{header}.{rest}"), &[], NOW)
            .unwrap_err();
        assert_eq!(err.reason_code(), "unsupported_alg", "{err}");
    }

    fn rsa_jwk(bits: usize, alg: Option<&str>) -> String {
        let mut n = vec![0xc5u8; bits / 8];
        *n.last_mut().unwrap() |= 1;
        let alg = alg.map(|a| format!(r#","alg":"{a}""#)).unwrap_or_default();
        format!(
            r#"{{"keys":[{{"kty":"RSA","kid":"r1","n":"{}","e":"AQAB"{alg}}}]}}"#,
            URL_SAFE_NO_PAD.encode(n)
        )
    }

    #[test]
    fn jwks_rules_for_rsa_and_okp_keys() {
        // An RSA key needs its alg; the algorithm is never guessed.
        let err = KeySet::from_jwks(&rsa_jwk(2048, None))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("RS256") && err.contains("never guessed"),
            "{err}"
        );
        // RSA under 2048 bits: refused.
        for bits in [512, 1024] {
            let err = KeySet::from_jwks(&rsa_jwk(bits, Some("RS256")))
                .unwrap_err()
                .to_string();
            assert!(err.contains("2048"), "{bits}: {err}");
        }
        // An RSA key for HMAC or ECDSA: refused.
        for alg in ["HS256", "ES256", "EdDSA", "none"] {
            assert!(
                KeySet::from_jwks(&rsa_jwk(2048, Some(alg))).is_err(),
                "{alg}"
            );
        }
        let keys = KeySet::from_jwks(&rsa_jwk(2048, Some("PS256"))).unwrap();
        assert_eq!(keys.alg("r1"), Some(JwsAlg::Ps256));
        assert!(keys.get("r1").is_none(), "not an ES256 key");
        // OKP: Ed25519 only, alg EdDSA (or none given).
        let x = URL_SAFE_NO_PAD.encode([3u8; 32]);
        let okp = |crv: &str, alg: &str| {
            format!(r#"{{"keys":[{{"kty":"OKP","crv":"{crv}","kid":"o1","x":"{x}"{alg}}}]}}"#)
        };
        assert_eq!(
            KeySet::from_jwks(&okp("Ed25519", "")).unwrap().alg("o1"),
            Some(JwsAlg::EdDsa)
        );
        assert!(KeySet::from_jwks(&okp("X25519", "")).is_err());
        assert!(KeySet::from_jwks(&okp("Ed448", "")).is_err());
        assert!(KeySet::from_jwks(&okp("Ed25519", r#","alg":"ES256""#)).is_err());
        // Symmetric keys are not keys here.
        assert!(KeySet::from_jwks(r#"{"keys":[{"kty":"oct","kid":"s","k":"AAAA"}]}"#).is_err());
        // The COSE key set keeps only ES256 keys.
        let mut with_rsa = keys_of(&[&broker()]);
        let (rs, _) = jose::generate(JwsAlg::Rs256).unwrap();
        with_rsa
            .insert_jws(rs.jws_key().kid(), rs.jws_key())
            .unwrap();
        assert_eq!(
            KeySet::from_cose_key_set(&with_rsa.to_cose_key_set())
                .unwrap()
                .len(),
            1
        );
        let _: Option<JwsKey> = with_rsa.get_jws(&rs.jws_key().kid());
    }
}
