//! Custom claims in JWTs (see [`crate::custom_claims`]): signing with them,
//! and reading them back from a token.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{JwtClaims, TYP_AT_JWT, UnverifiedJwt, invalid};
use crate::crypto::Signer;
use crate::custom_claims::{ClaimValue, check_jwt_name};
use crate::error::ProtoError;

/// The members [`JwtClaims`] models; every other member is a custom claim.
const MODELLED: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "client_id",
    "scope",
    "cnf",
    "status",
];

/// [`super::sign_jwt`] with custom claims added to the claims set.
///
/// # Errors
/// [`ProtoError::SigningFailed`] when a custom name is not allowed
/// ([`check_jwt_name`]: it could replace a registered claim) or appears
/// twice, and as [`super::sign_jwt`].
pub fn sign_jwt_with_custom(
    claims: &JwtClaims,
    custom: &[(String, ClaimValue)],
    kid: &str,
    signer: &dyn Signer,
) -> Result<String, ProtoError> {
    let json = |e: serde_json::Error| ProtoError::SigningFailed(format!("JSON encoding: {e}"));
    let serde_json::Value::Object(mut map) = serde_json::to_value(claims).map_err(json)? else {
        return Err(ProtoError::SigningFailed(
            "the claims did not encode as a JSON object".into(),
        ));
    };
    for (name, value) in custom {
        check_jwt_name(name).map_err(ProtoError::SigningFailed)?;
        if map.contains_key(name) {
            return Err(ProtoError::SigningFailed(format!(
                "custom claim {name:?} is already in the token"
            )));
        }
        map.insert(name.clone(), value.to_json());
    }
    // As `sign_jwt`: the same header, the same compact serialization.
    let header = format!(
        r#"{{"alg":"ES256","typ":"{TYP_AT_JWT}","kid":{}}}"#,
        serde_json::to_string(kid).map_err(json)?
    );
    let payload = serde_json::to_vec(&map).map_err(json)?;
    let mut out = URL_SAFE_NO_PAD.encode(header.as_bytes());
    out.push('.');
    out.push_str(&URL_SAFE_NO_PAD.encode(payload));
    let signature = signer.sign(out.as_bytes())?;
    out.push('.');
    out.push_str(&URL_SAFE_NO_PAD.encode(signature));
    Ok(out)
}

impl UnverifiedJwt {
    /// The members of the claims set that [`JwtClaims`] does not model (the
    /// custom claims), sorted by name. NOT verified: call after
    /// [`UnverifiedJwt::verify`] succeeded, or for display only.
    ///
    /// # Errors
    /// [`ProtoError::InvalidJwt`] when the payload is not a JSON object.
    pub fn custom_claims(&self) -> Result<Vec<(String, serde_json::Value)>, ProtoError> {
        let map: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&self.payload)
            .map_err(|e| invalid(format!("claims are not a JSON object: {e}")))?;
        Ok(map
            .into_iter()
            .filter(|(k, _)| !MODELLED.contains(&k.as_str()))
            .collect())
    }
}

/// A JSON value as CBOR (how a verifier holds JWT claims next to CWT ones):
/// integers stay integers, other numbers become floats.
pub fn json_to_cbor(v: &serde_json::Value) -> ciborium::Value {
    use ciborium::Value;
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Value::Integer(i.into()),
            (None, Some(u)) => Value::Integer(u.into()),
            _ => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Value::Text(s.clone()),
        serde_json::Value::Array(items) => Value::Array(items.iter().map(json_to_cbor).collect()),
        serde_json::Value::Object(m) => Value::Map(
            m.iter()
                .map(|(k, v)| (Value::Text(k.clone()), json_to_cbor(v)))
                .collect(),
        ),
    }
}
