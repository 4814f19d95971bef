use super::*;
use crate::crypto::{P256Signer, P256Verifier};

const MAX: usize = 8 * 1024;
const NOW: u64 = 1_700_000_000;
const ISS: &str = "https://auth.example.com";
const AUD: &str = "https://api.example.com";

fn signer() -> P256Signer {
    P256Signer::from_scalar(&[7; 32]).unwrap()
}

fn verifier() -> P256Verifier {
    P256Verifier::new(signer().public_key()).unwrap()
}

fn claims() -> JwtClaims {
    JwtClaims {
        iss: ISS.into(),
        sub: "svc-billing".into(),
        aud: AUD.into(),
        exp: NOW + 3600,
        iat: NOW,
        nbf: None,
        jti: "3f1c9a".into(),
        client_id: "svc-billing".into(),
        scope: Some("read write".into()),
        cnf: Some(JwtConfirmation {
            x5t_s256: "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2".into(),
        }),
        status: Some(JwtStatus {
            status_list: StatusRef {
                idx: 12,
                uri: "https://auth.example.com/status/1".into(),
            },
        }),
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Builds `header.payload.signature` from raw JSON texts, signing the exact bytes.
fn hand_built(header: &str, payload: &str) -> String {
    let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let sig = signer().sign(input.as_bytes()).unwrap();
    format!("{input}.{}", b64(&sig))
}

fn parse(text: &str) -> Result<UnverifiedJwt, ProtoError> {
    UnverifiedJwt::parse(text, MAX)
}

const GOOD_HEADER: &str = r#"{"alg":"ES256","typ":"at+jwt","kid":"k1"}"#;
const MIN_PAYLOAD: &str =
    r#"{"iss":"i","sub":"s","aud":"a","exp":2,"iat":1,"jti":"j","client_id":"c"}"#;

#[test]
fn round_trip_with_p256() {
    let jwt = sign_jwt(&claims(), "k1", &signer()).unwrap();
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(
        URL_SAFE_NO_PAD.decode(parts[0]).unwrap(),
        br#"{"alg":"ES256","typ":"at+jwt","kid":"k1"}"#
    );
    assert_eq!(URL_SAFE_NO_PAD.decode(parts[2]).unwrap().len(), 64);
    let parsed = parse(&jwt).unwrap();
    assert_eq!(parsed.kid(), Some("k1"));
    let back = parsed.verify(&verifier()).unwrap();
    assert_eq!(back, claims());
    assert_eq!(parsed.unverified_claims().unwrap(), claims());
    back.validate(ISS, AUD, NOW + 10, 60).unwrap();
}

#[cfg(feature = "aws-lc")]
#[test]
fn round_trip_with_aws_lc() {
    use crate::crypto::{AwsLcSigner, AwsLcVerifier};
    let (aws, _) = AwsLcSigner::generate().unwrap();
    let jwt = sign_jwt(&claims(), "k2", &aws).unwrap();
    let aws_v = AwsLcVerifier::new(aws.public_key()).unwrap();
    assert_eq!(parse(&jwt).unwrap().verify(&aws_v).unwrap(), claims());
    // Cross-checked with the other backend, both ways.
    let p256_v = P256Verifier::new(aws.public_key()).unwrap();
    assert_eq!(parse(&jwt).unwrap().verify(&p256_v).unwrap(), claims());
    let jwt = sign_jwt(&claims(), "k1", &signer()).unwrap();
    let aws_v = AwsLcVerifier::new(signer().public_key()).unwrap();
    assert_eq!(parse(&jwt).unwrap().verify(&aws_v).unwrap(), claims());
}

/// A fixed vector: P-256 scalar [7; 32], RFC 6979 deterministic ECDSA. The
/// signature was checked independently with python `cryptography` (ECDSA
/// P-256/SHA-256 over the ASCII `header.payload`, r || s).
const FIXED: &str = concat!(
    "eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0K2p3dCIsImtpZCI6ImsxIn0.",
    "eyJpc3MiOiJpIiwic3ViIjoicyIsImF1ZCI6ImEiLCJleHAiOjIsImlhdCI6MSwianRpIjoiaiIsImNsaWVudF9pZCI6ImMifQ.",
    "kNH462GVasP-kFtvDyhByj6KwFroHLy0FyQzdVDNt4W8jTvXH9ROarkSg70jkvabTJlUgbwHoAbt-_Kj7OBT-A",
);

#[test]
fn fixed_vector() {
    let c: JwtClaims = serde_json::from_str(MIN_PAYLOAD).unwrap();
    let jwt = sign_jwt(&c, "k1", &signer()).unwrap();
    assert_eq!(jwt, FIXED);
    assert_eq!(parse(FIXED).unwrap().verify(&verifier()).unwrap(), c);
}

#[test]
fn bytes_are_verified_as_received() {
    // Other key order, whitespace, escapes, unknown header and claims: valid
    // JSON, so it verifies, because the signature covers the received text.
    let header = "{ \"kid\" : \"k\\u0031\",\n  \"typ\":\"AT+JWT\", \"alg\" : \"ES256\", \"x-extra\": [1, {}] }";
    let payload = r#" { "client_id":"c", "jti":"j", "iat":1.5, "exp":2, "aud":["a","b"],
        "sub":"s", "iss":"i", "nbf": 1, "ext": {"deep": [null, true]} } "#;
    let jwt = hand_built(header, payload);
    let parsed = parse(&jwt).unwrap();
    assert_eq!(parsed.kid(), Some("k1"));
    let c = parsed.verify(&verifier()).unwrap();
    assert_eq!(c.aud, JwtAudience(vec!["a".into(), "b".into()]));
    assert_eq!(c.iat, 1);
    assert_eq!(c.nbf, Some(1));
    // "application/at+jwt" is accepted too, and kid may be absent.
    let jwt = hand_built(r#"{"alg":"ES256","typ":"application/at+jwt"}"#, MIN_PAYLOAD);
    let parsed = parse(&jwt).unwrap();
    assert_eq!(parsed.kid(), None);
    assert!(parsed.verify(&verifier()).is_ok());
}

#[test]
fn single_audience_is_a_string_and_many_an_array() {
    let mut c = claims();
    let json = serde_json::to_value(&c).unwrap();
    assert_eq!(json["aud"], serde_json::json!(AUD));
    assert!(json.get("nbf").is_none());
    assert_eq!(
        json["cnf"]["x5t#S256"],
        "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"
    );
    assert_eq!(json["status"]["status_list"]["idx"], 12);
    c.aud = vec!["x".to_string(), "y".to_string()].into();
    c.scope = None;
    c.cnf = None;
    c.status = None;
    let json = serde_json::to_value(&c).unwrap();
    assert_eq!(json["aud"], serde_json::json!(["x", "y"]));
    for absent in ["scope", "cnf", "status", "nbf"] {
        assert!(json.get(absent).is_none(), "{absent}");
    }
}

fn assert_refused(text: &str, why: &str) {
    let r = parse(text).and_then(|p| p.verify(&verifier()));
    assert!(r.is_err(), "{why}: accepted");
}

#[test]
fn algorithm_rules() {
    let cases = [
        (r#"{"alg":"none","typ":"at+jwt"}"#, "none"),
        (r#"{"alg":"HS256","typ":"at+jwt"}"#, "HS256"),
        (r#"{"alg":"RS512","typ":"at+jwt"}"#, "RS512"),
        (r#"{"alg":"PS384","typ":"at+jwt"}"#, "PS384"),
        (r#"{"alg":"HS512","typ":"at+jwt"}"#, "HS512"),
        (
            r#"{"alg":"Ed25519","typ":"at+jwt"}"#,
            "Ed25519 is not a JWS alg name",
        ),
        (r#"{"alg":"rs256","typ":"at+jwt"}"#, "case rs256"),
        (r#"{"alg":"ES384","typ":"at+jwt"}"#, "ES384"),
        (r#"{"alg":"es256","typ":"at+jwt"}"#, "case"),
    ];
    for (header, why) in cases {
        let r = parse(&hand_built(header, MIN_PAYLOAD));
        assert!(
            matches!(r, Err(ProtoError::UnsupportedJwsAlgorithm(_))),
            "{why}: {r:?}"
        );
    }
    // RS256, PS256 and EdDSA parse, but an ES256 verifier refuses them:
    // the key decides the algorithm.
    for alg in ["RS256", "PS256", "EdDSA"] {
        let header = format!(r#"{{"alg":"{alg}","typ":"at+jwt"}}"#);
        let r = parse(&hand_built(&header, MIN_PAYLOAD)).and_then(|p| p.verify(&verifier()));
        assert!(
            matches!(r, Err(ProtoError::AlgorithmMismatch { .. })),
            "{alg}: {r:?}"
        );
    }
    for header in [r#"{"typ":"at+jwt"}"#, r#"{"alg":-7,"typ":"at+jwt"}"#] {
        assert!(matches!(
            parse(&hand_built(header, MIN_PAYLOAD)),
            Err(ProtoError::BadHeader(_))
        ));
    }
    // An unsecured JWT ("none" with an empty signature part).
    let unsecured = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"at+jwt"}"#),
        b64(MIN_PAYLOAD.as_bytes())
    );
    assert_refused(&unsecured, "unsecured");
}

#[test]
fn header_rules() {
    let cases = [
        (r#"{"alg":"ES256"}"#, "typ missing"),
        (r#"{"alg":"ES256","typ":"JWT"}"#, "typ JWT"),
        (r#"{"alg":"ES256","typ":"at+cwt"}"#, "typ at+cwt"),
        (
            r#"{"alg":"ES256","typ":"application/statuslist+jwt"}"#,
            "status list typ",
        ),
        (r#"{"alg":"ES256","typ":7}"#, "typ not a string"),
    ];
    for (header, why) in cases {
        let r = parse(&hand_built(header, MIN_PAYLOAD));
        assert!(
            matches!(r, Err(ProtoError::WrongType { .. })),
            "{why}: {r:?}"
        );
    }
    let cases = [
        (r#"{"alg":"ES256","typ":"at+jwt","crit":["exp"]}"#, "crit"),
        (r#"{"alg":"ES256","typ":"at+jwt","crit":[]}"#, "empty crit"),
        (
            r#"{"alg":"ES256","typ":"at+jwt","kid":1}"#,
            "kid not a string",
        ),
    ];
    for (header, why) in cases {
        let r = parse(&hand_built(header, MIN_PAYLOAD));
        assert!(matches!(r, Err(ProtoError::BadHeader(_))), "{why}: {r:?}");
    }
    for (header, why) in [
        ("[]", "header an array"),
        ("\"ES256\"", "header a string"),
        ("{", "header not JSON"),
        (r#"{"alg":"ES256","typ":"at+jwt"} x"#, "trailing text"),
    ] {
        assert!(
            matches!(
                parse(&hand_built(header, MIN_PAYLOAD)),
                Err(ProtoError::InvalidJwt(_))
            ),
            "{why}"
        );
    }
}

#[test]
fn duplicate_keys_are_refused() {
    let dup_headers = [
        r#"{"alg":"none","alg":"ES256","typ":"at+jwt"}"#,
        r#"{"alg":"ES256","typ":"at+jwt","kid":"a","kid":"b"}"#,
        r#"{"alg":"ES256","typ":"at+jwt","x":{"y":1,"y":2}}"#,
    ];
    for h in dup_headers {
        let r = parse(&hand_built(h, MIN_PAYLOAD));
        assert!(
            matches!(r, Err(ProtoError::InvalidJwt(ref m)) if m.contains("duplicate")),
            "{h}: {r:?}"
        );
    }
    let dup_payloads = [
        r#"{"iss":"i","sub":"s","aud":"a","exp":2,"exp":9999999999,"iat":1,"jti":"j","client_id":"c"}"#,
        r#"{"iss":"i","sub":"s","aud":"a","exp":2,"iat":1,"jti":"j","client_id":"c","cnf":{"x5t#S256":"a","x5t#S256":"b"}}"#,
        r#"{"iss":"i","sub":"s","aud":"a","exp":2,"iat":1,"jti":"j","client_id":"c","x":[{"k":1,"k":1}]}"#,
    ];
    for p in dup_payloads {
        let r = parse(&hand_built(GOOD_HEADER, p));
        assert!(
            matches!(r, Err(ProtoError::InvalidJwt(ref m)) if m.contains("duplicate")),
            "{p}: {r:?}"
        );
    }
}

#[test]
fn structure_and_encoding_rules() {
    let good = hand_built(GOOD_HEADER, MIN_PAYLOAD);
    assert!(parse(&good).unwrap().verify(&verifier()).is_ok());
    let parts: Vec<&str> = good.split('.').collect();
    let (h, p, s) = (parts[0], parts[1], parts[2]);
    let sig = URL_SAFE_NO_PAD.decode(s).unwrap();
    let cases: Vec<(String, &str)> = vec![
        (format!("{h}.{p}"), "2 parts"),
        (format!("{h}.{p}.{s}.{s}"), "4 parts"),
        (format!("{h}..{s}"), "empty payload"),
        (format!(".{p}.{s}"), "empty header"),
        (format!("{h}.{p}.{s}="), "padding"),
        (format!("{h}=.{p}.{s}"), "padding on header"),
        (format!("{h}.{p}.{}", b64(&sig[..63])), "63-byte signature"),
        (
            format!("{h}.{p}.{}", b64(&[sig.as_slice(), &[0]].concat())),
            "65-byte signature",
        ),
        (format!("{h}.{p}.{}", b64(&[0u8; 64])), "zero signature"),
        (
            format!("{h}.{p}.{}", s.replace('-', "+").replace('_', "/")),
            "standard alphabet",
        ),
        (format!("{h}.{p}.{s} "), "trailing space"),
        (format!("{h}.{p}\n.{s}"), "newline"),
        (format!("{h}.{p}.{s}!"), "bad character"),
        (format!("{h}.{p}.{}", &s[..s.len() - 1]), "truncated base64"),
        (
            format!("{h}.{}.{s}", b64(b"[1,2]")),
            "payload not an object",
        ),
        (format!("{h}.{}.{s}", b64(b"{\"a\":")), "payload not JSON"),
    ];
    for (text, why) in &cases {
        assert_refused(text, why);
    }
    // Non-canonical trailing bits: "Zm8" and "Zm9" both end "fo"; only one is canonical.
    assert!(URL_SAFE_NO_PAD.decode("Zm9").is_err());
    // The standard-alphabet characters themselves.
    assert!(matches!(
        parse(&format!("{h}.{p}.{}+", &s[..s.len() - 1])),
        Err(ProtoError::InvalidJwt(_))
    ));
    assert!(matches!(
        parse(&format!("{h}.{p}.{}/", &s[..s.len() - 1])),
        Err(ProtoError::InvalidJwt(_))
    ));
    // Oversize.
    assert!(matches!(
        UnverifiedJwt::parse(&good, good.len() - 1),
        Err(ProtoError::TooLarge { .. })
    ));
    assert!(UnverifiedJwt::parse(&good, good.len()).is_ok());
}

#[test]
fn tampering_and_wrong_keys_are_detected() {
    let jwt = sign_jwt(&claims(), "k1", &signer()).unwrap();
    let parts: Vec<&str> = jwt.split('.').collect();
    // Payload changed (the claims re-signed by nobody).
    let mut c = claims();
    c.scope = Some("admin".into());
    let forged_payload = b64(&serde_json::to_vec(&c).unwrap());
    let forged = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
    assert_eq!(
        parse(&forged).unwrap().verify(&verifier()),
        Err(ProtoError::BadSignature)
    );
    // Header changed to an equivalent JSON text: the bytes differ, so it fails.
    let header2 = b64(br#"{"typ":"at+jwt","alg":"ES256","kid":"k1"}"#);
    let swapped = format!("{header2}.{}.{}", parts[1], parts[2]);
    assert_eq!(
        parse(&swapped).unwrap().verify(&verifier()),
        Err(ProtoError::BadSignature)
    );
    // Another key.
    let other = P256Verifier::new(P256Signer::from_scalar(&[8; 32]).unwrap().public_key()).unwrap();
    assert_eq!(
        parse(&jwt).unwrap().verify(&other),
        Err(ProtoError::BadSignature)
    );
}

#[test]
fn claims_decoding_rules() {
    let ok = hand_built(GOOD_HEADER, MIN_PAYLOAD);
    assert!(parse(&ok).unwrap().verify(&verifier()).is_ok());
    let bad_payloads = [
        (
            r#"{"sub":"s","aud":"a","exp":2,"iat":1,"jti":"j","client_id":"c"}"#,
            "iss missing",
        ),
        (
            r#"{"iss":"i","sub":"s","exp":2,"iat":1,"jti":"j","client_id":"c"}"#,
            "aud missing",
        ),
        (
            r#"{"iss":"i","sub":"s","aud":"a","iat":1,"jti":"j","client_id":"c"}"#,
            "exp missing",
        ),
        (
            r#"{"iss":"i","sub":"s","aud":"a","exp":2,"jti":"j","client_id":"c"}"#,
            "iat missing",
        ),
        (
            r#"{"iss":"i","sub":"s","aud":"a","exp":2,"iat":1,"client_id":"c"}"#,
            "jti missing",
        ),
        (
            r#"{"iss":"i","sub":"s","aud":"a","exp":2,"iat":1,"jti":"j"}"#,
            "client_id missing",
        ),
        (
            r#"{"iss":"i","aud":"a","exp":2,"iat":1,"jti":"j","client_id":"c"}"#,
            "sub missing",
        ),
        (
            r#"{"iss":"i","sub":"s","aud":[],"exp":2,"iat":1,"jti":"j","client_id":"c"}"#,
            "aud empty",
        ),
        (
            r#"{"iss":"i","sub":"s","aud":[1],"exp":2,"iat":1,"jti":"j","client_id":"c"}"#,
            "aud number",
        ),
        (
            r#"{"iss":"i","sub":"s","aud":"a","exp":-2,"iat":1,"jti":"j","client_id":"c"}"#,
            "exp negative",
        ),
        (
            r#"{"iss":"i","sub":"s","aud":"a","exp":"2","iat":1,"jti":"j","client_id":"c"}"#,
            "exp string",
        ),
        (
            r#"{"iss":"i","sub":"s","aud":"a","exp":2,"iat":1,"nbf":null,"jti":"j","client_id":"c"}"#,
            "nbf null",
        ),
        (
            r#"{"iss":"i","sub":"s","aud":"a","exp":2,"iat":1,"jti":"j","client_id":"c","cnf":{"jkt":"x"}}"#,
            "cnf without x5t#S256",
        ),
        (
            r#"{"iss":"i","sub":"s","aud":"a","exp":2,"iat":1,"jti":"j","client_id":"c","status":{"status_list":{"idx":-1,"uri":"u"}}}"#,
            "status idx negative",
        ),
        (
            r#"{"iss":"i","sub":"s","aud":"a","exp":2,"iat":1,"jti":"j","client_id":"c","status":{"status_list":{"idx":1}}}"#,
            "status uri missing",
        ),
    ];
    for (p, why) in bad_payloads {
        let r = parse(&hand_built(GOOD_HEADER, p))
            .unwrap()
            .verify(&verifier());
        assert!(matches!(r, Err(ProtoError::InvalidJwt(_))), "{why}: {r:?}");
    }
}

#[test]
fn validation_rules() {
    let c = claims();
    assert!(c.validate(ISS, AUD, NOW, 60).is_ok());
    // exp: expired once now >= exp + leeway.
    assert!(c.validate(ISS, AUD, NOW + 3600 + 59, 60).is_ok());
    assert!(matches!(
        c.validate(ISS, AUD, NOW + 3600 + 60, 60),
        Err(ClaimError::Expired { .. })
    ));
    // iat in the future.
    assert!(c.validate(ISS, AUD, NOW - 60, 60).is_ok());
    assert!(matches!(
        c.validate(ISS, AUD, NOW - 61, 60),
        Err(ClaimError::NotYetValid { .. })
    ));
    // nbf in the future.
    let mut later = c.clone();
    later.nbf = Some(NOW + 100);
    assert!(matches!(
        later.validate(ISS, AUD, NOW, 60),
        Err(ClaimError::NotYetValid { nbf, .. }) if nbf == NOW + 100
    ));
    assert!(later.validate(ISS, AUD, NOW + 40, 60).is_ok());
    // iss and aud.
    assert!(matches!(
        c.validate("https://evil.example.com", AUD, NOW, 60),
        Err(ClaimError::IssuerMismatch { .. })
    ));
    assert!(matches!(
        c.validate(ISS, "https://other.example.com", NOW, 60),
        Err(ClaimError::AudienceMismatch { .. })
    ));
    let mut many = c;
    many.aud = vec!["x".to_string(), AUD.to_string()].into();
    assert!(many.validate(ISS, AUD, NOW, 60).is_ok());
}
