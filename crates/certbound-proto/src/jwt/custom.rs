//! Custom claims in JWTs (see [`crate::custom_claims`]): signing with them,
//! and reading them back from a token.

use super::{JwtClaims, UnverifiedJwt, invalid};
use crate::crypto::Signer;
use crate::custom_claims::{ClaimValue, check_jwt_name};
use crate::error::ProtoError;
use crate::jose::{JwsAlg, JwsSigner};

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

/// [`super::sign_jwt`] (ES256) with custom claims added to the claims set.
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
    let payload = payload_with(claims, custom)?;
    super::sign_payload_as(&payload, kid, JwsAlg::Es256, &|m| {
        Ok(signer.sign(m)?.to_vec())
    })
}

/// [`super::sign_jwt_with`] (any algorithm) with custom claims, as
/// [`sign_jwt_with_custom`].
///
/// # Errors
/// As [`sign_jwt_with_custom`].
pub fn sign_jwt_with_custom_jws(
    claims: &JwtClaims,
    custom: &[(String, ClaimValue)],
    kid: &str,
    signer: &dyn JwsSigner,
) -> Result<String, ProtoError> {
    let payload = payload_with(claims, custom)?;
    super::sign_payload_as(&payload, kid, signer.alg(), &|m| signer.sign_jws(m))
}

/// The claims set as JSON with `custom` added (never replacing a member).
fn payload_with(
    claims: &JwtClaims,
    custom: &[(String, ClaimValue)],
) -> Result<Vec<u8>, ProtoError> {
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
    serde_json::to_vec(&map).map_err(json)
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
