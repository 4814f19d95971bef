//! JWT access tokens for backend services: RFC 7515 compact JWS with ES256
//! (or, for an API that asks for it, RS256, PS256 or EdDSA: see
//! [`crate::jose`]), under the RFC 9068 profile (`typ` `at+jwt`) with RFC 8705 certificate
//! binding (`cnf.x5t#S256`) and the Token Status List `status` claim.
//!
//! [`UnverifiedJwt::parse`] is strict before any crypto: a size bound,
//! exactly three non-empty parts, base64url without padding and with
//! canonical trailing bits, JSON objects without duplicate keys (at any
//! depth), `alg` exactly `ES256`, `RS256`, `PS256` or `EdDSA` (so `none`
//! and HMAC are refused), `typ` `at+jwt` or `application/at+jwt`
//! (case-insensitive), no `crit`, and for ES256 a 64-byte `r || s`
//! signature. [`UnverifiedJwt::verify`] (ES256 keys) and
//! [`UnverifiedJwt::verify_key`] (any [`crate::jose::JwsKey`], whose algorithm must be
//! the header's) check the signature over the `header.payload` text exactly
//! as received, then decode the claims; [`JwtClaims::validate`] checks them with time passed in.

use std::collections::BTreeSet;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::crypto::{Signer, Verifier};
use crate::error::{ClaimError, ProtoError};
use crate::jose::{JwsAlg, JwsSigner};
use crate::status_list::StatusRef;

/// `typ` of an RFC 9068 JWT access token.
pub const TYP_AT_JWT: &str = "at+jwt";
/// The full media type form of [`TYP_AT_JWT`], also accepted.
const TYP_AT_JWT_FULL: &str = "application/at+jwt";

/// The claims of an RFC 9068 access token. Unknown claims are ignored on
/// decode; the required ones (RFC 9068 §2.2) are non-optional fields.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct JwtClaims {
    /// Issuer.
    pub iss: String,
    /// Subject: the client (service) or device the token was issued to.
    pub sub: String,
    /// Audience: one or more resource server identifiers.
    pub aud: JwtAudience,
    /// Expiry, Unix seconds (a JSON float is read as its whole seconds).
    #[serde(deserialize_with = "numeric_date")]
    pub exp: u64,
    /// Issued at, Unix seconds.
    #[serde(deserialize_with = "numeric_date")]
    pub iat: u64,
    /// Not before, Unix seconds.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "optional_numeric_date"
    )]
    pub nbf: Option<u64>,
    /// Token id.
    pub jti: String,
    /// The OAuth client the token was issued to.
    pub client_id: String,
    /// Space-separated scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Certificate binding (RFC 8705 §3.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<JwtConfirmation>,
    /// Token Status List reference (revocable tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<JwtStatus>,
}

/// The `aud` claim: one or more identifiers. A single audience is written as
/// a JSON string, several as an array; both forms are read, an empty array is
/// refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtAudience(pub Vec<String>);

impl JwtAudience {
    /// True when `audience` is one of the identifiers.
    pub fn contains(&self, audience: &str) -> bool {
        self.0.iter().any(|a| a == audience)
    }
}

impl From<&str> for JwtAudience {
    fn from(a: &str) -> Self {
        Self(vec![a.to_string()])
    }
}

impl From<String> for JwtAudience {
    fn from(a: String) -> Self {
        Self(vec![a])
    }
}

impl From<Vec<String>> for JwtAudience {
    fn from(a: Vec<String>) -> Self {
        Self(a)
    }
}

impl Serialize for JwtAudience {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => s.serialize_str(one),
            many => many.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for JwtAudience {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct AudVisitor;
        impl<'de> Visitor<'de> for AudVisitor {
            type Value = JwtAudience;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a non-empty array of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(JwtAudience(vec![v.to_string()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(a) = seq.next_element::<String>()? {
                    out.push(a);
                }
                if out.is_empty() {
                    return Err(de::Error::custom("aud is an empty array"));
                }
                Ok(JwtAudience(out))
            }
        }
        d.deserialize_any(AudVisitor)
    }
}

/// RFC 8705 §3.1 confirmation: the SHA-256 thumbprint of the client
/// certificate. Other confirmation members are ignored; a `cnf` without
/// `x5t#S256` is refused (the binding could not be checked).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct JwtConfirmation {
    /// base64url (no padding) of SHA-256 over the certificate DER.
    #[serde(rename = "x5t#S256")]
    pub x5t_s256: String,
}

/// The JWT `status` claim: `{"status_list": {"idx": uint, "uri": string}}`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct JwtStatus {
    /// Where the token's status is published.
    pub status_list: StatusRef,
}

impl JwtClaims {
    /// Checks the claims as RFC 9068 §4 requires of a resource server: `iss`
    /// is `issuer`, `aud` contains `audience`, the token is not expired
    /// (expired once `now >= exp + leeway`), and neither `nbf` nor `iat` is
    /// in the future beyond `leeway`. Scope checks are the caller's.
    pub fn validate(
        &self,
        issuer: &str,
        audience: &str,
        now: u64,
        leeway: u64,
    ) -> Result<(), ClaimError> {
        if now >= self.exp.saturating_add(leeway) {
            return Err(ClaimError::Expired { exp: self.exp, now });
        }
        for start in [self.nbf, Some(self.iat)].into_iter().flatten() {
            if start > now.saturating_add(leeway) {
                return Err(ClaimError::NotYetValid { nbf: start, now });
            }
        }
        if self.iss != issuer {
            return Err(ClaimError::IssuerMismatch {
                expected: issuer.into(),
                found: self.iss.clone(),
            });
        }
        if !self.aud.contains(audience) {
            return Err(ClaimError::AudienceMismatch {
                expected: audience.into(),
                found: self.aud.0.clone(),
            });
        }
        Ok(())
    }
}

/// Signs `claims` as a compact JWS with the header
/// `{"alg":"ES256","typ":"at+jwt","kid":"<kid>"}` and the 64-byte `r || s`
/// signature (RFC 7518 §3.4).
pub fn sign_jwt(claims: &JwtClaims, kid: &str, signer: &dyn Signer) -> Result<String, ProtoError> {
    sign_jwt_as(claims, kid, JwsAlg::Es256, &|m| {
        Ok(signer.sign(m)?.to_vec())
    })
}

/// Signs `claims` with any [`JwsSigner`]: the header's `alg` is the
/// signer's (`ES256`, `RS256`, `PS256` or `EdDSA`).
pub fn sign_jwt_with(
    claims: &JwtClaims,
    kid: &str,
    signer: &dyn JwsSigner,
) -> Result<String, ProtoError> {
    sign_jwt_as(claims, kid, signer.alg(), &|m| signer.sign_jws(m))
}

type SignFn<'a> = dyn Fn(&[u8]) -> Result<Vec<u8>, ProtoError> + 'a;

fn sign_jwt_as(
    claims: &JwtClaims,
    kid: &str,
    alg: JwsAlg,
    sign: &SignFn<'_>,
) -> Result<String, ProtoError> {
    let json = |e: serde_json::Error| ProtoError::SigningFailed(format!("JSON encoding: {e}"));
    let payload = serde_json::to_vec(claims).map_err(json)?;
    sign_payload_as(&payload, kid, alg, sign)
}

/// The compact JWS of `payload` (a claims set, JSON) with the access-token
/// header for `alg` and `kid`.
pub(crate) fn sign_payload_as(
    payload: &[u8],
    kid: &str,
    alg: JwsAlg,
    sign: &SignFn<'_>,
) -> Result<String, ProtoError> {
    let json = |e: serde_json::Error| ProtoError::SigningFailed(format!("JSON encoding: {e}"));
    let header = format!(
        r#"{{"alg":"{alg}","typ":"{TYP_AT_JWT}","kid":{}}}"#,
        serde_json::to_string(kid).map_err(json)?
    );
    let mut out = URL_SAFE_NO_PAD.encode(header.as_bytes());
    out.push('.');
    out.push_str(&URL_SAFE_NO_PAD.encode(payload));
    let signature = sign(out.as_bytes())?;
    out.push('.');
    out.push_str(&URL_SAFE_NO_PAD.encode(signature));
    Ok(out)
}

/// A compact JWS that passed the structural and header checks but whose
/// signature has not been verified yet.
#[derive(Debug, Clone)]
pub struct UnverifiedJwt {
    signing_input: String,
    alg: JwsAlg,
    kid: Option<String>,
    payload: Vec<u8>,
    signature: Vec<u8>,
}

fn invalid(reason: impl Into<String>) -> ProtoError {
    ProtoError::InvalidJwt(reason.into())
}

fn b64(part: &str, what: &str) -> Result<Vec<u8>, ProtoError> {
    URL_SAFE_NO_PAD.decode(part).map_err(|e| {
        invalid(format!(
            "{what} is not base64url without padding ({e}); '=', '+', '/' and whitespace are \
             not allowed"
        ))
    })
}

impl UnverifiedJwt {
    /// Parses and checks a compact JWS (see the module docs for every rule).
    pub fn parse(text: &str, max_len: usize) -> Result<Self, ProtoError> {
        Self::parse_as(text, max_len, true).map(|(jwt, _)| jwt)
    }

    /// Parses a compact JWS under every rule of [`Self::parse`] but the
    /// `typ` one: any `typ`, or none, is accepted and returned, for
    /// inspecting third-party JWTs (`certbound token inspect --profile
    /// generic`). Never use it to accept access tokens.
    pub fn parse_any_typ(text: &str, max_len: usize) -> Result<(Self, Option<String>), ProtoError> {
        Self::parse_as(text, max_len, false)
    }

    fn parse_as(
        text: &str,
        max_len: usize,
        require_at_jwt: bool,
    ) -> Result<(Self, Option<String>), ProtoError> {
        if text.len() > max_len {
            return Err(ProtoError::TooLarge {
                size: text.len(),
                limit: max_len,
            });
        }
        let parts: Vec<&str> = text.split('.').collect();
        let [header_b64, payload_b64, signature_b64] = parts.as_slice() else {
            return Err(invalid(format!(
                "{} dot-separated parts; a compact JWS has exactly 3 (header.payload.signature)",
                parts.len()
            )));
        };
        if parts.iter().any(|p| p.is_empty()) {
            return Err(invalid(
                "an empty part (unsecured or detached JWS); header, payload and signature are \
                 all required",
            ));
        }
        let header_json = b64(header_b64, "header")?;
        let payload = b64(payload_b64, "payload")?;
        let signature = b64(signature_b64, "signature")?;
        if !strict_json_object(&header_json, "header")? {
            return Err(invalid("header is not a JSON object"));
        }
        let header: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&header_json)
                .map_err(|e| invalid(format!("header is not a JSON object: {e}")))?;
        let (alg, kid) = check_header(&header, require_at_jwt)?;
        let typ = match header.get("typ") {
            Some(serde_json::Value::String(t)) => Some(t.clone()),
            Some(other) => Some(other.to_string()),
            None => None,
        };
        if alg == JwsAlg::Es256 && signature.len() != 64 {
            return Err(invalid(format!(
                "signature is {} bytes; an ES256 JWS signature is exactly 64 bytes (r || s, not DER)",
                signature.len()
            )));
        }
        if !strict_json_object(&payload, "payload")? {
            return Err(invalid("payload is not a JSON object (a JWT claims set)"));
        }
        let signing_input = text[..header_b64.len() + 1 + payload_b64.len()].to_string();
        Ok((
            Self {
                signing_input,
                alg,
                kid,
                payload,
                signature,
            },
            typ,
        ))
    }

    /// The claims set as raw JSON bytes, NOT verified (for display only).
    pub fn unverified_payload(&self) -> &[u8] {
        &self.payload
    }

    /// The header's `alg` (a hint only: the verification key decides).
    pub fn alg(&self) -> JwsAlg {
        self.alg
    }

    /// The `kid` lookup hint, if the header has one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// Decodes the claims WITHOUT checking the signature (for display only).
    pub fn unverified_claims(&self) -> Result<JwtClaims, ProtoError> {
        serde_json::from_slice(&self.payload)
            .map_err(|e| invalid(format!("claims are not an RFC 9068 claims set: {e}")))
    }

    /// Verifies the signature over `header.payload` exactly as received and
    /// returns the claims (not yet validated: call [`JwtClaims::validate`]).
    /// The verifier is an ES256 one: a header naming another algorithm is
    /// refused ([`ProtoError::AlgorithmMismatch`]).
    pub fn verify(&self, verifier: &dyn Verifier) -> Result<JwtClaims, ProtoError> {
        if self.alg != JwsAlg::Es256 {
            return Err(ProtoError::AlgorithmMismatch {
                header: self.alg.as_str().into(),
                key: JwsAlg::Es256.as_str().into(),
            });
        }
        verifier.verify(self.signing_input.as_bytes(), &self.signature)?;
        self.unverified_claims()
    }

    /// Verifies the signature with `key`, whose algorithm must be the
    /// header's, and returns the claims (not yet validated).
    #[cfg(feature = "aws-lc")]
    pub fn verify_key(&self, key: &crate::jose::JwsKey) -> Result<JwtClaims, ProtoError> {
        self.verify_signature(key)?;
        self.unverified_claims()
    }

    /// Verifies only the signature with `key`, whose algorithm must be the
    /// header's: the claims set is not decoded (it may be any JSON object).
    #[cfg(feature = "aws-lc")]
    pub fn verify_signature(&self, key: &crate::jose::JwsKey) -> Result<(), ProtoError> {
        key.verify(self.alg, self.signing_input.as_bytes(), &self.signature)
    }
}

/// Applies the header rules; returns the `alg` and the `kid`.
fn check_header(
    header: &serde_json::Map<String, serde_json::Value>,
    require_at_jwt: bool,
) -> Result<(JwsAlg, Option<String>), ProtoError> {
    use serde_json::Value;
    let alg = match header.get("alg") {
        Some(Value::String(alg)) => JwsAlg::from_jose(alg)
            .ok_or_else(|| ProtoError::UnsupportedJwsAlgorithm(alg.clone()))?,
        Some(_) => return Err(ProtoError::BadHeader("JWS alg must be a string".into())),
        None => {
            return Err(ProtoError::BadHeader(
                "JWS alg is missing; it must be \"ES256\", \"RS256\", \"PS256\" or \"EdDSA\""
                    .into(),
            ));
        }
    };
    match header.get("typ") {
        Some(Value::String(t))
            if t.eq_ignore_ascii_case(TYP_AT_JWT) || t.eq_ignore_ascii_case(TYP_AT_JWT_FULL) => {}
        _ if !require_at_jwt => {}
        other => {
            return Err(ProtoError::WrongType {
                expected: TYP_AT_JWT,
                found: match other {
                    Some(Value::String(t)) => t.clone(),
                    Some(v) => v.to_string(),
                    None => "(none)".into(),
                },
            });
        }
    }
    if let Some(crit) = header.get("crit") {
        return Err(ProtoError::BadHeader(format!(
            "JWS crit {crit} is present, but no JWS extension is understood here"
        )));
    }
    match header.get("kid") {
        None => Ok((alg, None)),
        Some(Value::String(kid)) => Ok((alg, Some(kid.clone()))),
        Some(_) => Err(ProtoError::BadHeader("JWS kid must be a string".into())),
    }
}

/// Checks that `json` is one JSON value with no duplicate object keys at any
/// depth (serde_json itself keeps the last of duplicates silently). Returns
/// whether the value is an object.
fn strict_json_object(json: &[u8], what: &str) -> Result<bool, ProtoError> {
    serde_json::from_slice::<StrictJson>(json)
        .map(|v| v.is_object)
        .map_err(|e| invalid(format!("{what} is not strict JSON: {e}")))
}

/// A JSON value walked only to find duplicate keys.
struct StrictJson {
    is_object: bool,
}

impl<'de> Deserialize<'de> for StrictJson {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = StrictJson;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<StrictJson, E> {
        Ok(StrictJson { is_object: false })
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<StrictJson, E> {
        Ok(StrictJson { is_object: false })
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<StrictJson, E> {
        Ok(StrictJson { is_object: false })
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<StrictJson, E> {
        Ok(StrictJson { is_object: false })
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<StrictJson, E> {
        Ok(StrictJson { is_object: false })
    }
    fn visit_unit<E: de::Error>(self) -> Result<StrictJson, E> {
        Ok(StrictJson { is_object: false })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StrictJson, A::Error> {
        while seq.next_element::<StrictJson>()?.is_some() {}
        Ok(StrictJson { is_object: false })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StrictJson, A::Error> {
        let mut keys = BTreeSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !keys.insert(key.clone()) {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
            map.next_value::<StrictJson>()?;
        }
        Ok(StrictJson { is_object: true })
    }
}

/// A NumericDate (RFC 7519 §2): a non-negative JSON number, as whole seconds.
fn numeric_date<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    struct DateVisitor;
    impl Visitor<'_> for DateVisitor {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a non-negative NumericDate (seconds since the epoch)")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
            u64::try_from(v).map_err(|_| E::custom("NumericDate is negative"))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<u64, E> {
            if (0.0..1.8e19).contains(&v) {
                Ok(v.floor() as u64)
            } else {
                Err(E::custom("NumericDate is negative or out of range"))
            }
        }
    }
    d.deserialize_any(DateVisitor)
}

fn optional_numeric_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    numeric_date(d).map(Some)
}

mod custom;
pub use custom::{json_to_cbor, sign_jwt_with_custom, sign_jwt_with_custom_jws};

#[cfg(test)]
mod tests;
