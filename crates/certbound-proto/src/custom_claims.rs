//! Custom claims: typed values (text, integer, boolean) an API asks to have
//! in its tokens, under a JWT claim name and a CWT label.
//!
//! The rules that keep them apart from the registered claims live here, so
//! that the broker, the registry and the verifier apply the same ones:
//!
//! - a CWT integer label must be private use (RFC 8392 §9.1: less than
//!   -65536), so it can never be a registered label (1–9, `status` 65535,
//!   or any label IANA registers later);
//! - a CWT text label is short (`[a-z][a-z0-9_]{0,15}`) and not a
//!   registered or certbound claim name;
//! - a JWT name (`[A-Za-z][A-Za-z0-9_.:/-]{0,127}`) is not a registered or
//!   certbound claim name ([`RESERVED_NAMES`], compared without case).

use std::fmt;

use ciborium::Value;
use serde::{Deserialize, Serialize};

use crate::error::ProtoError;

/// CWT integer labels below this are private use (RFC 8392 §9.1).
pub const PRIVATE_USE_BELOW: i64 = -65536;

/// Claim names a custom claim may never use: the registered JWT/CWT claims
/// (RFC 7519, RFC 8392, RFC 8693, RFC 9068, RFC 8705/8747, OpenID Connect
/// core) and the ones certbound writes.
pub const RESERVED_NAMES: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "exp",
    "nbf",
    "iat",
    "jti",
    "cti",
    "cnf",
    "scope",
    "scp",
    "client_id",
    "status",
    "auth_time",
    "acr",
    "amr",
    "azp",
    "act",
    "may_act",
    "roles",
    "groups",
    "entitlements",
    "sid",
    "nonce",
    "at_hash",
    "c_hash",
    "typ",
    "alg",
    "kid",
    "exi",
    "ace_profile",
    "cnonce",
    "rs_cnf",
    "x5t#S256",
];

/// The type of a custom claim's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum ClaimType {
    /// A UTF-8 string (CBOR major type 3, a JSON string).
    Text,
    /// A signed 64-bit integer (CBOR major type 0/1, a JSON integer).
    Int,
    /// `true` or `false` (CBOR simple values 20/21, a JSON boolean).
    Bool,
}

impl ClaimType {
    /// `text`, `int` or `bool`.
    pub fn as_str(self) -> &'static str {
        match self {
            ClaimType::Text => "text",
            ClaimType::Int => "int",
            ClaimType::Bool => "bool",
        }
    }

    /// Parses `text`, `int` (or `integer`) and `bool` (or `boolean`).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "text" | "string" => Some(ClaimType::Text),
            "int" | "integer" => Some(ClaimType::Int),
            "bool" | "boolean" => Some(ClaimType::Bool),
            _ => None,
        }
    }

    /// The type of a CBOR value, when it is one of the three.
    pub fn of_cbor(v: &Value) -> Option<Self> {
        match v {
            Value::Text(_) => Some(ClaimType::Text),
            Value::Integer(i) => i64::try_from(i128::from(*i)).ok().map(|_| ClaimType::Int),
            Value::Bool(_) => Some(ClaimType::Bool),
            _ => None,
        }
    }
}

impl fmt::Display for ClaimType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A typed claim (and attribute) value. In JSON it is the plain value
/// (`"berlin"`, `3`, `true`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ClaimValue {
    /// Boolean.
    Bool(bool),
    /// Integer.
    Int(i64),
    /// Text.
    Text(String),
}

impl ClaimValue {
    /// Its type.
    pub fn claim_type(&self) -> ClaimType {
        match self {
            ClaimValue::Text(_) => ClaimType::Text,
            ClaimValue::Int(_) => ClaimType::Int,
            ClaimValue::Bool(_) => ClaimType::Bool,
        }
    }

    /// The CBOR form.
    pub fn to_cbor(&self) -> Value {
        match self {
            ClaimValue::Text(t) => Value::Text(t.clone()),
            ClaimValue::Int(i) => Value::Integer((*i).into()),
            ClaimValue::Bool(b) => Value::Bool(*b),
        }
    }

    /// The JSON form.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            ClaimValue::Text(t) => serde_json::Value::String(t.clone()),
            ClaimValue::Int(i) => serde_json::Value::from(*i),
            ClaimValue::Bool(b) => serde_json::Value::Bool(*b),
        }
    }

    /// The value of a CBOR item, when it is text, a 64-bit integer or a bool.
    pub fn from_cbor(v: &Value) -> Option<Self> {
        match v {
            Value::Text(t) => Some(ClaimValue::Text(t.clone())),
            Value::Integer(i) => i64::try_from(i128::from(*i)).ok().map(ClaimValue::Int),
            Value::Bool(b) => Some(ClaimValue::Bool(*b)),
            _ => None,
        }
    }
}

impl fmt::Display for ClaimValue {
    /// Text as is, integers in decimal, booleans as `true`/`false`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClaimValue::Text(t) => f.write_str(t),
            ClaimValue::Int(i) => write!(f, "{i}"),
            ClaimValue::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// Where a custom claim sits in a CWT: a private-use integer label or a
/// short text label. In JSON/TOML: a number or a string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(untagged)]
pub enum CwtLabel {
    /// An integer label (must be < -65536).
    Int(i64),
    /// A text label.
    Text(String),
}

impl CwtLabel {
    /// The CBOR map key.
    pub fn to_cbor(&self) -> Value {
        match self {
            CwtLabel::Int(i) => Value::Integer((*i).into()),
            CwtLabel::Text(t) => Value::Text(t.clone()),
        }
    }

    /// Checks the label against the rules of the module docs.
    ///
    /// # Errors
    /// What is wrong and what to use instead.
    pub fn check(&self) -> Result<(), String> {
        match self {
            CwtLabel::Int(i) if *i < PRIVATE_USE_BELOW => Ok(()),
            CwtLabel::Int(i) => Err(format!(
                "CWT label {i} is not private use: integer labels must be below -65536 \
                 (RFC 8392 §9.1; e.g. -65537), so they never collide with a registered claim"
            )),
            CwtLabel::Text(t) => {
                let ok = t.len() <= 16
                    && t.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
                    && t.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
                if !ok {
                    return Err(format!(
                        "CWT text label {t:?} is not [a-z][a-z0-9_]{{0,15}}: use a short \
                         lowercase label or a private-use integer below -65536"
                    ));
                }
                check_not_reserved(t, "CWT text label")
            }
        }
    }
}

impl fmt::Display for CwtLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CwtLabel::Int(i) => write!(f, "{i}"),
            CwtLabel::Text(t) => write!(f, "{t:?}"),
        }
    }
}

fn check_not_reserved(name: &str, what: &str) -> Result<(), String> {
    if RESERVED_NAMES.iter().any(|r| r.eq_ignore_ascii_case(name)) {
        return Err(format!(
            "{what} {name:?} is a registered or certbound claim name; a custom claim may never \
             replace one: choose another name (e.g. prefix it, \"x_{name}\")"
        ));
    }
    Ok(())
}

/// Checks a JWT custom-claim name against the rules of the module docs.
///
/// # Errors
/// What is wrong.
pub fn check_jwt_name(name: &str) -> Result<(), String> {
    let ok = name.len() <= 128
        && name.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:/-".contains(&b));
    if !ok {
        return Err(format!(
            "JWT claim name {name:?} is not [A-Za-z][A-Za-z0-9_.:/-]{{0,127}}"
        ));
    }
    check_not_reserved(name, "JWT claim name")
}

/// Whether `key` is a CBOR key a custom claim may use in a CWT.
pub(crate) fn cwt_key_allowed(key: &Value) -> bool {
    match key {
        Value::Integer(i) => i128::from(*i) < i128::from(PRIVATE_USE_BELOW),
        Value::Text(t) => CwtLabel::Text(t.clone()).check().is_ok(),
        _ => false,
    }
}

/// Refuses a custom CWT claim whose label breaks the rules (it could
/// replace a registered claim).
pub(crate) fn refuse_cwt_key(key: &Value) -> ProtoError {
    ProtoError::structure(
        "custom claim",
        format!(
            "label {key:?} may not carry a custom claim (private-use integers below -65536 or \
             short text labels only)"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_labels_must_be_private_use() {
        for bad in [1, 2, 8, 9, 65535, 0, -1, -65536, 70000] {
            assert!(CwtLabel::Int(bad).check().is_err(), "{bad} accepted");
        }
        assert!(CwtLabel::Int(-65537).check().is_ok());
        assert!(CwtLabel::Int(i64::MIN).check().is_ok());
    }

    #[test]
    fn text_labels_and_jwt_names_never_shadow_registered_claims() {
        for bad in ["iss", "sub", "scope", "cnf", "status", "exp", "CLIENT_ID"] {
            assert!(CwtLabel::Text(bad.to_ascii_lowercase()).check().is_err());
            assert!(check_jwt_name(bad).is_err(), "{bad} accepted");
        }
        assert!(CwtLabel::Text("site".into()).check().is_ok());
        assert!(CwtLabel::Text("Site".into()).check().is_err());
        assert!(
            CwtLabel::Text("a_very_long_label_x".into())
                .check()
                .is_err()
        );
        assert!(check_jwt_name("site").is_ok());
        assert!(check_jwt_name("https://example.com/site").is_ok());
        assert!(check_jwt_name("").is_err());
        assert!(check_jwt_name("has space").is_err());
    }

    #[test]
    fn values_round_trip_through_json_with_their_type() {
        let v: Vec<ClaimValue> = serde_json::from_str(r#"["berlin", 3, true, -7]"#).unwrap();
        assert_eq!(
            v,
            vec![
                ClaimValue::Text("berlin".into()),
                ClaimValue::Int(3),
                ClaimValue::Bool(true),
                ClaimValue::Int(-7)
            ]
        );
        assert!(serde_json::from_str::<ClaimValue>("3.5").is_err());
        assert_eq!(
            ClaimType::of_cbor(&Value::Bool(false)),
            Some(ClaimType::Bool)
        );
        assert_eq!(ClaimType::of_cbor(&Value::Float(1.0)), None);
    }
}

#[cfg(test)]
mod encoding_tests {
    use ciborium::Value;

    use crate::cbor::{self, Limits};
    use crate::claims::Claims;
    use crate::crypto::{P256Signer, Signer as _};
    use crate::jwt::{JwtAudience, JwtClaims, UnverifiedJwt, sign_jwt_with_custom};
    use crate::status_list::StatusRef;

    use super::ClaimValue;

    fn base() -> Claims {
        Claims {
            sub: Some("d1".into()),
            aud: vec!["https://api".into()],
            exp: Some(2_000),
            scope: Some("read".into()),
            status: Some(StatusRef {
                idx: 1,
                uri: "https://x/status/1".into(),
            }),
            ..Claims::default()
        }
    }

    #[test]
    fn custom_cwt_claims_are_deterministically_ordered_and_round_trip() {
        let mut c = base();
        c.set_custom(Value::Text("site".into()), Value::Text("berlin".into()))
            .unwrap();
        c.set_custom(Value::Integer((-65537).into()), Value::Integer(3.into()))
            .unwrap();
        c.set_custom(Value::Text("ab".into()), Value::Bool(true))
            .unwrap();
        let bytes = c.to_cbor();
        // Strict decoding checks the map's key order (RFC 8949 §4.2.1).
        cbor::check_strict(&bytes, Limits::default()).unwrap();
        let back = Claims::from_cbor(&bytes, Limits::default()).unwrap();
        assert_eq!(
            back.custom(&Value::Text("site".into())),
            Some(&Value::Text("berlin".into()))
        );
        assert_eq!(
            back.custom(&Value::Integer((-65537).into())),
            Some(&Value::Integer(3.into()))
        );
        assert_eq!(back.sub.as_deref(), Some("d1"));
        assert_eq!(back.status, c.status);
        let keys: Vec<Value> = match cbor::decode_strict(&bytes, Limits::default()).unwrap() {
            Value::Map(m) => m.into_iter().map(|(k, _)| k).collect(),
            _ => panic!("not a map"),
        };
        let encoded: Vec<Vec<u8>> = keys.iter().map(cbor::encode).collect();
        let mut sorted = encoded.clone();
        sorted.sort();
        assert_eq!(encoded, sorted);
    }

    #[test]
    fn a_custom_claim_can_never_replace_a_registered_one() {
        let mut c = base();
        for label in [2i64, 3, 8, 9, 65535, 0, -1, -65536] {
            assert!(
                c.set_custom(Value::Integer(label.into()), Value::Text("evil".into()))
                    .is_err(),
                "{label} accepted"
            );
        }
        assert!(
            c.set_custom(Value::Text("sub".into()), Value::Text("x".into()))
                .is_err()
        );
        // Even pushed into `other` directly, a registered label is not written twice.
        c.other
            .push((Value::Integer(2.into()), Value::Text("evil".into())));
        let back = Claims::from_cbor(&c.to_cbor(), Limits::default()).unwrap();
        assert_eq!(back.sub.as_deref(), Some("d1"));
    }

    #[test]
    fn custom_jwt_claims_are_typed_json_and_never_replace_registered_ones() {
        let signer = P256Signer::from_scalar(&[7u8; 32]).unwrap();
        let claims = JwtClaims {
            iss: "https://iss".into(),
            sub: "c1".into(),
            aud: JwtAudience::from("https://api"),
            exp: 2_000,
            iat: 1_000,
            nbf: None,
            jti: "j".into(),
            client_id: "c1".into(),
            scope: None,
            cnf: None,
            status: None,
        };
        let custom = vec![
            ("site".to_string(), ClaimValue::Text("berlin".into())),
            ("floor".to_string(), ClaimValue::Int(-3)),
            ("sealed".to_string(), ClaimValue::Bool(false)),
        ];
        let text = sign_jwt_with_custom(&claims, &custom, "k", &signer).unwrap();
        let jwt = UnverifiedJwt::parse(&text, 8192).unwrap();
        let verifier = crate::crypto::P256Verifier::new(signer.public_key()).unwrap();
        assert_eq!(jwt.verify(&verifier).unwrap(), claims);
        let found = jwt.custom_claims().unwrap();
        assert_eq!(
            found,
            vec![
                ("floor".to_string(), serde_json::json!(-3)),
                ("sealed".to_string(), serde_json::json!(false)),
                ("site".to_string(), serde_json::json!("berlin")),
            ]
        );
        for bad in ["sub", "iss", "client_id", "scope", "cnf", "status", "aud"] {
            let e = sign_jwt_with_custom(
                &claims,
                &[(bad.to_string(), ClaimValue::Text("x".into()))],
                "k",
                &signer,
            );
            assert!(e.is_err(), "{bad} accepted");
        }
    }
}
