//! CWT claims (RFC 8392 §3, RFC 9200 §5.9.2, RFC 8747) with exact labels,
//! their encoding/decoding, and validation with time passed in.

use ciborium::Value;

use crate::cbor::{self, Limits, int, map_get, uint};
use crate::error::{ClaimError, ProtoError};
use crate::key::EcPublicKey;
#[cfg(test)]
use crate::status_list::CLAIM_STATUS;
use crate::status_list::StatusRef;

/// Registered CWT claim keys.
pub mod label {
    /// iss
    pub const ISS: i64 = 1;
    /// sub
    pub const SUB: i64 = 2;
    /// aud
    pub const AUD: i64 = 3;
    /// exp
    pub const EXP: i64 = 4;
    /// nbf
    pub const NBF: i64 = 5;
    /// iat
    pub const IAT: i64 = 6;
    /// cti
    pub const CTI: i64 = 7;
    /// cnf (RFC 8747)
    pub const CNF: i64 = 8;
    /// scope (RFC 9200)
    pub const SCOPE: i64 = 9;
    /// cnf method COSE_Key (RFC 8747 §3.2)
    pub const CNF_COSE_KEY: i64 = 1;
    /// status (draft-ietf-oauth-status-list)
    pub const STATUS: i64 = crate::status_list::CLAIM_STATUS;
}

/// The claims of a certbound access token (or of any CWT).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Claims {
    /// Issuer (1).
    pub iss: Option<String>,
    /// Subject (2): the device id.
    pub sub: Option<String>,
    /// Audience (3): one or more API identifiers.
    pub aud: Vec<String>,
    /// Expiry (4), Unix seconds.
    pub exp: Option<u64>,
    /// Not before (5), Unix seconds.
    pub nbf: Option<u64>,
    /// Issued at (6), Unix seconds.
    pub iat: Option<u64>,
    /// Token id (7).
    pub cti: Option<Vec<u8>>,
    /// Space-separated scopes (9).
    pub scope: Option<String>,
    /// Confirmation key (8, `{1: COSE_Key}`): the public key of the device certificate.
    pub cnf: Option<EcPublicKey>,
    /// Token status reference (65535, `{"status_list": {"idx", "uri"}}`), set
    /// on revocable tokens.
    pub status: Option<StatusRef>,
    /// Any other claims, kept for display.
    pub other: Vec<(Value, Value)>,
}

impl Claims {
    /// Encodes the claims as a CBOR map, keys in ascending order.
    pub fn to_cbor(&self) -> Vec<u8> {
        cbor::encode(&self.to_value())
    }

    fn to_value(&self) -> Value {
        let mut m = Vec::new();
        if let Some(v) = &self.iss {
            m.push((int(label::ISS), Value::Text(v.clone())));
        }
        if let Some(v) = &self.sub {
            m.push((int(label::SUB), Value::Text(v.clone())));
        }
        match self.aud.as_slice() {
            [] => {}
            [one] => m.push((int(label::AUD), Value::Text(one.clone()))),
            many => m.push((
                int(label::AUD),
                Value::Array(many.iter().cloned().map(Value::Text).collect()),
            )),
        }
        for (l, v) in [
            (label::EXP, self.exp),
            (label::NBF, self.nbf),
            (label::IAT, self.iat),
        ] {
            if let Some(v) = v {
                m.push((int(l), uint(v)));
            }
        }
        if let Some(v) = &self.cti {
            m.push((int(label::CTI), Value::Bytes(v.clone())));
        }
        if let Some(k) = &self.cnf {
            m.push((
                int(label::CNF),
                Value::Map(vec![(int(label::CNF_COSE_KEY), k.to_cose_key_compressed())]),
            ));
        }
        if let Some(v) = &self.scope {
            m.push((int(label::SCOPE), Value::Text(v.clone())));
        }
        if let Some(status) = &self.status {
            m.push((int(label::STATUS), status.to_claim_value()));
        }
        // Other claims never replace one written above (a key already in
        // the map is skipped), and the map's keys are sorted as RFC 8949
        // §4.2.1 orders them: bytewise by their encoding (1..9 < 65535 <
        // negative labels < text labels).
        for (k, v) in &self.other {
            if !m.iter().any(|(have, _)| have == k) {
                m.push((k.clone(), v.clone()));
            }
        }
        m.sort_by_cached_key(|(k, _)| cbor::encode(k));
        Value::Map(m)
    }

    /// Adds a custom claim (see [`crate::custom_claims`]): `key` must be a
    /// private-use integer label or a short text label that names no
    /// registered claim; a claim already set under `key` is replaced.
    ///
    /// # Errors
    /// [`ProtoError::InvalidStructure`] for any other key.
    pub fn set_custom(&mut self, key: Value, value: Value) -> Result<(), ProtoError> {
        if !crate::custom_claims::cwt_key_allowed(&key) {
            return Err(crate::custom_claims::refuse_cwt_key(&key));
        }
        self.other.retain(|(k, _)| *k != key);
        self.other.push((key, value));
        Ok(())
    }

    /// The value of the claim under `key` among the other (custom) claims.
    pub fn custom(&self, key: &Value) -> Option<&Value> {
        self.other.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Decodes claims from strictly-encoded CBOR (duplicate keys, trailing bytes,
    /// indefinite lengths refused).
    pub fn from_cbor(bytes: &[u8], limits: Limits) -> Result<Self, ProtoError> {
        let value = cbor::decode_strict(bytes, limits)?;
        let entries = cbor::map(&value, "claims")?;
        let mut c = Claims::default();
        for (k, v) in entries {
            let Some(key) = cbor::as_i64(k) else {
                c.other.push((k.clone(), v.clone()));
                continue;
            };
            match key {
                label::ISS => c.iss = Some(cbor::text(v, "iss")?),
                label::SUB => c.sub = Some(cbor::text(v, "sub")?),
                label::AUD => c.aud = decode_aud(v)?,
                label::EXP => c.exp = Some(cbor::numeric_date(v, "exp")?),
                label::NBF => c.nbf = Some(cbor::numeric_date(v, "nbf")?),
                label::IAT => c.iat = Some(cbor::numeric_date(v, "iat")?),
                label::CTI => c.cti = Some(cbor::bytes(v, "cti")?),
                label::SCOPE => c.scope = Some(decode_scope(v)?),
                label::CNF => c.cnf = Some(decode_cnf(v)?),
                label::STATUS => c.status = Some(StatusRef::from_claim_value(v)?),
                _ => c.other.push((k.clone(), v.clone())),
            }
        }
        Ok(c)
    }

    /// Checks expiry, not-before, issued-at, issuer, audience and scopes.
    ///
    /// `exp` is required. A token is expired once `now >= exp + leeway`.
    pub fn validate(&self, expect: &Expectations<'_>) -> Result<(), ClaimError> {
        let now = expect.now;
        let exp = self.exp.ok_or(ClaimError::Missing("exp"))?;
        if now >= exp.saturating_add(expect.leeway) {
            return Err(ClaimError::Expired { exp, now });
        }
        for start in [self.nbf, self.iat].into_iter().flatten() {
            if start > now.saturating_add(expect.leeway) {
                return Err(ClaimError::NotYetValid { nbf: start, now });
            }
        }
        // certbound's CWTs carry no `iss` (RFC 8392 makes it optional; it
        // would cost 20-40 bytes of every token): the signing key, found in
        // the key set of the verifier's one issuer, names the issuer. An
        // `iss` that is present must still be the expected one.
        if let (Some(expected), Some(found)) = (expect.issuer, self.iss.as_deref())
            && found != expected
        {
            return Err(ClaimError::IssuerMismatch {
                expected: expected.into(),
                found: found.into(),
            });
        }
        if !self.aud.iter().any(|a| a == expect.audience) {
            return Err(ClaimError::AudienceMismatch {
                expected: expect.audience.into(),
                found: self.aud.clone(),
            });
        }
        let granted = self.scope.as_deref().unwrap_or("");
        for needed in expect.required_scopes {
            if !scopes(granted).any(|s| s == *needed) {
                return Err(ClaimError::ScopeMissing {
                    missing: (*needed).into(),
                    granted: granted.into(),
                });
            }
        }
        Ok(())
    }
}

/// What a verifier expects of a token's claims.
#[derive(Debug, Clone)]
pub struct Expectations<'a> {
    /// Required issuer, when known.
    pub issuer: Option<&'a str>,
    /// The verifier's own identifier, which `aud` must name.
    pub audience: &'a str,
    /// Scopes that must all be granted.
    pub required_scopes: &'a [&'a str],
    /// Current time, Unix seconds.
    pub now: u64,
    /// Allowed clock skew, seconds.
    pub leeway: u64,
}

/// Splits a space-separated scope string into its scopes.
pub fn scopes(scope: &str) -> impl Iterator<Item = &str> {
    scope.split(' ').filter(|s| !s.is_empty())
}

/// Least privilege: the scopes of `asked` that `granted` contains, in the
/// order asked, without duplicates. Asking for nothing grants all of `granted`.
pub fn intersect_scopes(asked: Option<&str>, granted: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    match asked {
        None => granted.clone_into(&mut out),
        Some(asked) if scopes(asked).next().is_none() => granted.clone_into(&mut out),
        Some(asked) => {
            for s in scopes(asked) {
                if granted.iter().any(|g| g == s) && !out.iter().any(|o| o == s) {
                    out.push(s.to_string());
                }
            }
        }
    }
    out
}

fn decode_aud(v: &Value) -> Result<Vec<String>, ProtoError> {
    match v {
        Value::Text(t) => Ok(vec![t.clone()]),
        Value::Array(items) if !items.is_empty() => {
            items.iter().map(|i| cbor::text(i, "aud")).collect()
        }
        _ => Err(ProtoError::structure(
            "aud",
            "must be a text string or a non-empty array of text strings",
        )),
    }
}

fn decode_scope(v: &Value) -> Result<String, ProtoError> {
    match v {
        Value::Text(t) => Ok(t.clone()),
        Value::Bytes(b) => String::from_utf8(b.clone())
            .map_err(|_| ProtoError::structure("scope", "binary (AIF) scopes are not supported")),
        _ => Err(ProtoError::structure("scope", "must be a text string")),
    }
}

fn decode_cnf(v: &Value) -> Result<EcPublicKey, ProtoError> {
    let entries = cbor::map(v, "cnf")?;
    if entries.len() != 1 {
        return Err(ProtoError::structure(
            "cnf",
            "must hold exactly one confirmation method",
        ));
    }
    match map_get(entries, label::CNF_COSE_KEY) {
        Some(key) => EcPublicKey::from_cose_key(key),
        None => Err(ProtoError::structure(
            "cnf",
            "only the COSE_Key method (1) is supported",
        )),
    }
}

#[cfg(test)]
mod tests;
