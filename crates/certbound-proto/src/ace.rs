//! ACE-OAuth (RFC 9200) token response and error messages in CBOR
//! (application/ace+cbor, CoAP content-format 19).

use ciborium::Value;

use crate::cbor::{self, Limits, int, map_get, uint};
use crate::error::ProtoError;

/// ACE parameter labels (RFC 9200 Table 5).
pub mod label {
    /// access_token
    pub const ACCESS_TOKEN: i64 = 1;
    /// expires_in
    pub const EXPIRES_IN: i64 = 2;
    /// audience
    pub const AUDIENCE: i64 = 5;
    /// scope
    pub const SCOPE: i64 = 9;
    /// error
    pub const ERROR: i64 = 30;
    /// error_description
    pub const ERROR_DESCRIPTION: i64 = 31;
    /// grant_type
    pub const GRANT_TYPE: i64 = 33;
    /// retry_after (certbound, private use): seconds after which the same
    /// request may succeed. Present only on a transient refusal (rate limit,
    /// service unavailable); an error without it is final for that request.
    /// No registry has such a parameter; below -65536 is private use
    /// (RFC 9200 §8.10), next to the CSR label -65537.
    pub const RETRY_AFTER: i64 = -65538;
}

/// ACE error codes (RFC 9200 Table 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AceErrorCode {
    /// invalid_request (1)
    InvalidRequest = 1,
    /// invalid_client (2)
    InvalidClient = 2,
    /// invalid_grant (3)
    InvalidGrant = 3,
    /// unauthorized_client (4)
    UnauthorizedClient = 4,
    /// unsupported_grant_type (5)
    UnsupportedGrantType = 5,
    /// invalid_scope (6)
    InvalidScope = 6,
    /// unsupported_pop_key (7)
    UnsupportedPopKey = 7,
    /// incompatible_ace_profiles (8)
    IncompatibleAceProfiles = 8,
}

impl AceErrorCode {
    /// From the integer code.
    pub fn from_code(code: i64) -> Option<Self> {
        use AceErrorCode::*;
        Some(match code {
            1 => InvalidRequest,
            2 => InvalidClient,
            3 => InvalidGrant,
            4 => UnauthorizedClient,
            5 => UnsupportedGrantType,
            6 => InvalidScope,
            7 => UnsupportedPopKey,
            8 => IncompatibleAceProfiles,
            _ => return None,
        })
    }

    /// The OAuth name, e.g. `invalid_client`.
    pub fn name(self) -> &'static str {
        use AceErrorCode::*;
        match self {
            InvalidRequest => "invalid_request",
            InvalidClient => "invalid_client",
            InvalidGrant => "invalid_grant",
            UnauthorizedClient => "unauthorized_client",
            UnsupportedGrantType => "unsupported_grant_type",
            InvalidScope => "invalid_scope",
            UnsupportedPopKey => "unsupported_pop_key",
            IncompatibleAceProfiles => "incompatible_ace_profiles",
        }
    }

    /// The CoAP response code `(class, detail)`: invalid_client is 4.01,
    /// unauthorized_client 4.03, everything else 4.00 (RFC 9200 §5.8.3).
    pub fn coap_code(self) -> (u8, u8) {
        match self {
            AceErrorCode::InvalidClient => (4, 1),
            AceErrorCode::UnauthorizedClient => (4, 3),
            _ => (4, 0),
        }
    }
}

/// An ACE error response `{30: code, 31: description, ?-65538: retry_after}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AceError {
    /// The error code.
    pub code: AceErrorCode,
    /// Human-readable explanation.
    pub description: Option<String>,
    /// Seconds after which the request may be retried ([`label::RETRY_AFTER`]):
    /// `Some` only on a transient refusal (see [`crate::refusal`]).
    pub retry_after: Option<u64>,
}

impl AceError {
    /// Builds an error with a description.
    pub fn new(code: AceErrorCode, description: impl Into<String>) -> Self {
        Self {
            code,
            description: Some(description.into()),
            retry_after: None,
        }
    }

    /// CBOR encoding.
    pub fn to_cbor(&self) -> Vec<u8> {
        let mut m = vec![(int(label::ERROR), int(self.code as i64))];
        if let Some(d) = &self.description {
            m.push((int(label::ERROR_DESCRIPTION), Value::Text(d.clone())));
        }
        if let Some(secs) = self.retry_after {
            m.push((int(label::RETRY_AFTER), uint(secs)));
        }
        cbor::encode(&Value::Map(m))
    }
}

impl std::fmt::Display for AceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.description {
            Some(d) => write!(f, "{}: {d}", self.code.name()),
            None => write!(f, "{}", self.code.name()),
        }
    }
}

impl std::error::Error for AceError {}

/// A successful token response `{1: access_token, 2: expires_in, ?9: scope}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenResponse {
    /// The CWT.
    pub access_token: Vec<u8>,
    /// Seconds until the token expires.
    pub expires_in: u64,
    /// The granted scope, present when it differs from what was asked.
    pub scope: Option<String>,
}

impl TokenResponse {
    /// CBOR encoding.
    pub fn to_cbor(&self) -> Vec<u8> {
        let mut m = vec![
            (
                int(label::ACCESS_TOKEN),
                Value::Bytes(self.access_token.clone()),
            ),
            (int(label::EXPIRES_IN), uint(self.expires_in)),
        ];
        if let Some(s) = &self.scope {
            m.push((int(label::SCOPE), Value::Text(s.clone())));
        }
        cbor::encode(&Value::Map(m))
    }
}

/// Either kind of answer from the token endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AceResponse {
    /// A token.
    Token(TokenResponse),
    /// An error.
    Error(AceError),
}

impl AceResponse {
    /// Decodes a token endpoint answer.
    pub fn from_cbor(bytes: &[u8], limits: Limits) -> Result<Self, ProtoError> {
        let value = cbor::decode_strict(bytes, limits)?;
        let m = cbor::map(&value, "ACE response")?;
        if let Some(code) = map_get(m, label::ERROR) {
            let code = cbor::as_i64(code)
                .and_then(AceErrorCode::from_code)
                .ok_or_else(|| ProtoError::structure("ACE error", "unknown error code"))?;
            let description = map_get(m, label::ERROR_DESCRIPTION)
                .map(|d| cbor::text(d, "error_description"))
                .transpose()?;
            let retry_after = map_get(m, label::RETRY_AFTER)
                .map(|v| {
                    cbor::as_i64(v)
                        .and_then(|i| u64::try_from(i).ok())
                        .ok_or_else(|| {
                            ProtoError::structure(
                                "ACE error",
                                "retry_after is not an unsigned integer",
                            )
                        })
                })
                .transpose()?;
            return Ok(AceResponse::Error(AceError {
                code,
                description,
                retry_after,
            }));
        }
        let access_token = map_get(m, label::ACCESS_TOKEN)
            .ok_or_else(|| ProtoError::structure("ACE response", "no access_token (1)"))
            .and_then(|v| cbor::bytes(v, "access_token"))?;
        let expires_in = map_get(m, label::EXPIRES_IN)
            .ok_or_else(|| ProtoError::structure("ACE response", "no expires_in (2)"))
            .and_then(|v| cbor::numeric_date(v, "expires_in"))?;
        let scope = map_get(m, label::SCOPE)
            .map(|v| cbor::text(v, "scope"))
            .transpose()?;
        Ok(AceResponse::Token(TokenResponse {
            access_token,
            expires_in,
            scope,
        }))
    }
}
