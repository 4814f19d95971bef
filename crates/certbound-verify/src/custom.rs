//! Custom claims of a verified token, typed: [`VerifiedToken::claim_text`],
//! [`VerifiedToken::claim_int`], [`VerifiedToken::claim_bool`] by JWT name
//! or CWT label, and [`VerifierConfig::expect_claim`] to refuse tokens
//! whose claim has another type than declared.
//!
//! A JWT's custom claims and a CWT's other claims are both held in
//! [`certbound_proto::claims::Claims::other`] (JSON values as CBOR), so the
//! same accessors read both formats.

use std::fmt;

use ciborium::Value;

pub use certbound_proto::custom_claims::{ClaimType, ClaimValue};

use crate::error::VerifyError;
use crate::verifier::{VerifiedToken, VerifierConfig};

/// Where a claim is: a text name (JWT names, CWT text labels) or an integer
/// CWT label.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClaimKey {
    /// A text name or label.
    Name(String),
    /// An integer CWT label.
    Label(i64),
}

impl ClaimKey {
    fn to_cbor(&self) -> Value {
        match self {
            ClaimKey::Name(n) => Value::Text(n.clone()),
            ClaimKey::Label(l) => Value::Integer((*l).into()),
        }
    }
}

impl fmt::Display for ClaimKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClaimKey::Name(n) => write!(f, "{n:?}"),
            ClaimKey::Label(l) => write!(f, "{l}"),
        }
    }
}

impl From<&str> for ClaimKey {
    fn from(n: &str) -> Self {
        ClaimKey::Name(n.to_string())
    }
}

impl From<String> for ClaimKey {
    fn from(n: String) -> Self {
        ClaimKey::Name(n)
    }
}

impl From<i64> for ClaimKey {
    fn from(l: i64) -> Self {
        ClaimKey::Label(l)
    }
}

fn describe(v: &Value) -> String {
    match ClaimType::of_cbor(v) {
        Some(t) => t.as_str().to_string(),
        None => match v {
            Value::Bytes(_) => "a byte string".into(),
            Value::Float(_) => "a float".into(),
            Value::Integer(_) => "an integer beyond 64 bits".into(),
            Value::Array(_) => "an array".into(),
            Value::Map(_) => "a map".into(),
            Value::Null => "null".into(),
            _ => "another CBOR item".into(),
        },
    }
}

fn typed(key: &ClaimKey, v: &Value, expected: ClaimType) -> Result<ClaimValue, VerifyError> {
    match ClaimValue::from_cbor(v) {
        Some(value) if value.claim_type() == expected => Ok(value),
        _ => Err(VerifyError::ClaimType {
            claim: key.to_string(),
            expected,
            found: describe(v),
        }),
    }
}

impl VerifiedToken {
    /// The raw value of a custom claim (any claim the token carries besides
    /// the registered ones), by JWT name or CWT label.
    pub fn claim(&self, key: impl Into<ClaimKey>) -> Option<&Value> {
        self.claims.custom(&key.into().to_cbor())
    }

    /// A custom claim as `ty`: `Ok(None)` when the token does not carry it.
    ///
    /// # Errors
    /// [`VerifyError::ClaimType`] when it has another type.
    pub fn claim_as(
        &self,
        key: impl Into<ClaimKey>,
        ty: ClaimType,
    ) -> Result<Option<ClaimValue>, VerifyError> {
        let key = key.into();
        self.claims
            .custom(&key.to_cbor())
            .map(|v| typed(&key, v, ty))
            .transpose()
    }

    /// A text custom claim (`Ok(None)`: absent).
    ///
    /// # Errors
    /// [`VerifyError::ClaimType`] when it is not text.
    pub fn claim_text(&self, key: impl Into<ClaimKey>) -> Result<Option<&str>, VerifyError> {
        let key = key.into();
        match self.claims.custom(&key.to_cbor()) {
            None => Ok(None),
            Some(Value::Text(t)) => Ok(Some(t.as_str())),
            Some(v) => Err(VerifyError::ClaimType {
                claim: key.to_string(),
                expected: ClaimType::Text,
                found: describe(v),
            }),
        }
    }

    /// An integer custom claim (`Ok(None)`: absent).
    ///
    /// # Errors
    /// [`VerifyError::ClaimType`] when it is not a 64-bit integer.
    pub fn claim_int(&self, key: impl Into<ClaimKey>) -> Result<Option<i64>, VerifyError> {
        Ok(match self.claim_as(key, ClaimType::Int)? {
            Some(ClaimValue::Int(i)) => Some(i),
            _ => None,
        })
    }

    /// A boolean custom claim (`Ok(None)`: absent).
    ///
    /// # Errors
    /// [`VerifyError::ClaimType`] when it is not a boolean.
    pub fn claim_bool(&self, key: impl Into<ClaimKey>) -> Result<Option<bool>, VerifyError> {
        Ok(match self.claim_as(key, ClaimType::Bool)? {
            Some(ClaimValue::Bool(b)) => Some(b),
            _ => None,
        })
    }
}

impl VerifierConfig {
    /// Declares a custom claim's type: a token carrying the claim (by JWT
    /// name or CWT label) with another type is refused with
    /// [`VerifyError::ClaimType`]. A token without it is accepted (the
    /// broker leaves out claims its holder has no attribute for).
    pub fn expect_claim(mut self, key: impl Into<ClaimKey>, ty: ClaimType) -> Self {
        self.expected_claims.push((key.into(), ty));
        self
    }
}

/// Applies [`VerifierConfig::expect_claim`] declarations.
pub(crate) fn check_expected(
    config: &VerifierConfig,
    claims: &certbound_proto::claims::Claims,
) -> Result<(), VerifyError> {
    for (key, ty) in &config.expected_claims {
        if let Some(v) = claims.custom(&key.to_cbor()) {
            typed(key, v, *ty)?;
        }
    }
    Ok(())
}
