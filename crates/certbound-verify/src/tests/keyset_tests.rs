use ciborium::Value;

use super::*;
use crate::{EcPublicKey, VerifyError};

/// RFC 7517 Appendix A.1, the EC P-256 key (with `use` changed to `sig`).
const RFC7517_JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256",
  "x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",
  "y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM",
  "use":"sig","kid":"1","x5t":"ignored-member"}]}"#;

fn two_keys() -> KeySet {
    keys_of(&[&broker(), &device()])
}

fn jwk(extra: &str) -> String {
    let k = broker();
    let pk = k.public_key();
    let b64 = |b: &[u8]| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    };
    format!(
        r#"{{"keys":[{{"kty":"EC","crv":"P-256","x":"{}","y":"{}"{extra}}}]}}"#,
        b64(&pk.x),
        b64(&pk.y)
    )
}

fn invalid(r: Result<KeySet, VerifyError>) -> String {
    match r {
        Err(e @ VerifyError::InvalidKeySet(_)) => {
            assert_eq!(e.reason_code(), "invalid_key_set");
            e.to_string()
        }
        other => panic!("expected InvalidKeySet, got {other:?}"),
    }
}

#[test]
fn jwks_round_trip() {
    let keys = two_keys();
    let json = keys.to_jwks();
    let back = KeySet::from_jwks(&json).unwrap();
    assert_eq!(back.kids(), keys.kids());
    assert_eq!(back.len(), 2);
    for kid in keys.kids() {
        assert_eq!(back.get(&kid), keys.get(&kid));
    }
    let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
    let first = &parsed["keys"][0];
    assert_eq!(first["kty"], "EC");
    assert_eq!(first["crv"], "P-256");
    assert_eq!(first["alg"], "ES256");
    assert_eq!(first["use"], "sig");
    assert_eq!(first["x"].as_str().unwrap().len(), 43);
    assert!(json.contains('\n'), "pretty printed");
}

#[test]
fn jwks_from_rfc7517_example() {
    let keys = KeySet::from_jwks(RFC7517_JWKS).unwrap();
    assert_eq!(keys.kids(), ["1"]);
    let key = keys.get("1").unwrap();
    assert_eq!(key.x[0], 0x30);
    assert!(keys.get("2").is_none());
}

#[test]
fn jwks_minimal_key_with_kid_and_alg() {
    let keys = KeySet::from_jwks(&jwk(r#","kid":"k1","alg":"ES256""#)).unwrap();
    assert_eq!(keys.get("k1"), Some(broker().public_key()));
}

#[test]
fn jwks_rejections() {
    let cases = [
        (jwk(r#","kid":"k","d":"AAAA""#), "private key"),
        (jwk(r#","kid":"k","alg":"ES384""#), "alg"),
        (jwk(r#","kid":"k","use":"enc""#), "use"),
        (jwk(r#","kid":"k","key_ops":["sign"]"#), "key_ops"),
        (jwk(""), "kid is missing"),
        (jwk(r#","kid":"""#), "kid is missing"),
        (jwk(r#","kid":"k","kid":"j""#), "duplicate field"),
        (
            r#"{"keys":[{"kty":"EC","crv":"P-384","kid":"k",
              "x":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
              "y":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}]}"#
                .to_string(),
            "P-256",
        ),
        (
            r#"{"keys":[{"kty":"RSA","kid":"k","n":"AQAB","e":"AQAB"}]}"#.to_string(),
            "never guessed",
        ),
        (
            r#"{"keys":[{"kty":"RSA","kid":"k","n":"AQAB","e":"AQAB","alg":"RS256"}]}"#.to_string(),
            "2048",
        ),
        (
            r#"{"keys":[{"kty":"oct","kid":"k","k":"AQAB"}]}"#.to_string(),
            "kty",
        ),
        (
            r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k","x":"AAAA","y":"AAAA"}]}"#.to_string(),
            "32",
        ),
        ("not json".to_string(), "not a JWK Set"),
        (r#"{"kids":[]}"#.to_string(), "not a JWK Set"),
    ];
    for (json, needle) in cases {
        let msg = invalid(KeySet::from_jwks(&json));
        assert!(msg.contains(needle), "{json}: {msg}");
    }
}

#[test]
fn jwks_duplicate_kid_is_refused() {
    let mut keys = KeySet::new();
    keys.insert("same".into(), broker().public_key().clone())
        .unwrap();
    let json = keys.to_jwks();
    let one: serde_json::Value = serde_json::from_str(&json).unwrap();
    let k = one["keys"][0].clone();
    let two = serde_json::json!({"keys": [k.clone(), k]}).to_string();
    let msg = invalid(KeySet::from_jwks(&two));
    assert!(msg.contains("more than once"), "{msg}");
}

#[test]
fn off_curve_point_is_refused() {
    let bogus = EcPublicKey {
        x: [1; 32],
        y: [2; 32],
    };
    let msg = invalid(
        KeySet::new()
            .insert("k".into(), bogus.clone())
            .map(|()| KeySet::new()),
    );
    assert!(msg.contains("curve"), "{msg}");
    let cose = ciborium_encode(&Value::Array(vec![bogus.to_cose_key_with_kid("k")]));
    invalid(KeySet::from_cose_key_set(&cose));
}

#[test]
fn insert_refuses_empty_and_duplicate_kid() {
    let mut keys = KeySet::new();
    assert!(keys.is_empty());
    keys.insert("a".into(), broker().public_key().clone())
        .unwrap();
    assert!(matches!(
        keys.insert("a".into(), device().public_key().clone()),
        Err(VerifyError::InvalidKeySet(_))
    ));
    assert!(matches!(
        keys.insert(String::new(), device().public_key().clone()),
        Err(VerifyError::InvalidKeySet(_))
    ));
    assert_eq!(keys.get("a"), Some(broker().public_key()));
    assert_eq!(keys.len(), 1);
}

fn ciborium_encode(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(v, &mut out).unwrap();
    out
}

#[test]
fn cose_key_set_round_trip() {
    let keys = two_keys();
    let cbor = keys.to_cose_key_set();
    let back = KeySet::from_cose_key_set(&cbor).unwrap();
    assert_eq!(back.kids(), keys.kids());
    for kid in keys.kids() {
        assert_eq!(back.get(&kid), keys.get(&kid));
    }
    assert_eq!(back.to_cose_key_set(), cbor);
    // An array of COSE_Keys, each carrying kid (2) as bytes and alg (3) ES256.
    let Value::Array(items) = ciborium::de::from_reader::<Value, _>(&cbor[..]).unwrap() else {
        panic!("not an array")
    };
    let Value::Map(first) = &items[0] else {
        panic!("not a map")
    };
    assert!(
        first
            .iter()
            .any(|(k, v)| *k == Value::from(2) && matches!(v, Value::Bytes(_)))
    );
    assert!(
        first
            .iter()
            .any(|(k, v)| *k == Value::from(3) && *v == Value::from(-7))
    );
}

#[test]
fn cose_key_set_rejections() {
    let pk = broker().public_key().clone();
    let no_kid = ciborium_encode(&Value::Array(vec![pk.to_cose_key()]));
    assert!(invalid(KeySet::from_cose_key_set(&no_kid)).contains("kid (2) is missing"));

    let twice = ciborium_encode(&Value::Array(vec![
        pk.to_cose_key_with_kid("k"),
        device().public_key().to_cose_key_with_kid("k"),
    ]));
    assert!(invalid(KeySet::from_cose_key_set(&twice)).contains("more than once"));

    let Value::Map(mut private) = pk.to_cose_key_with_kid("k") else {
        panic!()
    };
    private.push((Value::from(-4), Value::Bytes(vec![7; 32])));
    let private = ciborium_encode(&Value::Array(vec![Value::Map(private)]));
    assert!(invalid(KeySet::from_cose_key_set(&private)).contains("private"));

    let not_array = ciborium_encode(&pk.to_cose_key_with_kid("k"));
    assert!(invalid(KeySet::from_cose_key_set(&not_array)).contains("array"));

    let mut trailing = two_keys().to_cose_key_set();
    trailing.push(0);
    invalid(KeySet::from_cose_key_set(&trailing));
    invalid(KeySet::from_cose_key_set(b""));
}
