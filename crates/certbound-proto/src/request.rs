//! The signed device request (DESIGN.md "Signed device request"): a tagged
//! COSE_Sign1 made with the device key whose payload is both a CWT client
//! assertion and the ACE token request.
//!
//! ```text
//! protected {1: -7, 34: [-16, sha256(cert DER)]}     x5t form (RFC 9360)
//!        or {1: -7, 33: cert DER | [chain DER ...]}  x5chain form
//! payload   {1: iss=device id, 3: aud=broker id, 4: exp, 6: iat, 7: cti,
//!            33: grant_type=2, 5: audience, 9: scope}
//! ```

use ciborium::Value;

use crate::ace::label as ace;
use crate::cbor::{self, Limits, int, map_get, uint};
use crate::claims::label as cwt;
use crate::cose::{self, HEADER_X5CHAIN, HEADER_X5T, ProtectedParams, UnverifiedSign1};
use crate::crypto::{Signer, Verifier};
use crate::error::{ClaimError, ProtoError};

/// `typ` of a device request (optional; when present it must be this).
pub const TYP_DEVICE_REQUEST: &str = "application/certbound-request+cwt";
/// ACE grant_type client_credentials.
pub const GRANT_CLIENT_CREDENTIALS: u64 = 2;
/// COSE algorithm id of SHA-256 (RFC 9054), used in x5t.
pub const HASH_SHA256: i64 = -16;
/// Longest accepted request lifetime (exp - iat), seconds.
pub const MAX_REQUEST_LIFETIME: u64 = 300;

/// How the request names the device certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertRef {
    /// `x5t`: SHA-256 thumbprint of a certificate the broker already knows.
    X5t([u8; 32]),
    /// `x5chain`: the leaf certificate DER first, then its chain.
    X5Chain(Vec<Vec<u8>>),
}

impl CertRef {
    fn header(&self) -> (i64, Value) {
        match self {
            CertRef::X5t(hash) => (
                HEADER_X5T,
                Value::Array(vec![int(HASH_SHA256), Value::Bytes(hash.to_vec())]),
            ),
            CertRef::X5Chain(chain) => {
                let value = match chain.as_slice() {
                    [one] => Value::Bytes(one.clone()),
                    many => Value::Array(many.iter().cloned().map(Value::Bytes).collect()),
                };
                (HEADER_X5CHAIN, value)
            }
        }
    }

    fn from_headers(sign1: &UnverifiedSign1) -> Result<Self, ProtoError> {
        let x5t = sign1.protected_value(HEADER_X5T);
        let x5chain = sign1.protected_value(HEADER_X5CHAIN);
        match (x5t, x5chain) {
            (Some(_), Some(_)) => Err(ProtoError::BadHeader(
                "use either x5t or x5chain, not both".into(),
            )),
            (Some(Value::Array(items)), None) => match items.as_slice() {
                [alg, Value::Bytes(hash)] if cbor::as_i64(alg) == Some(HASH_SHA256) => {
                    let hash = <[u8; 32]>::try_from(hash.as_slice()).map_err(|_| {
                        ProtoError::BadHeader("x5t SHA-256 hash must be 32 bytes".into())
                    })?;
                    Ok(CertRef::X5t(hash))
                }
                _ => Err(ProtoError::BadHeader(
                    "x5t must be [-16 (SHA-256), 32-byte hash]".into(),
                )),
            },
            (Some(_), None) => Err(ProtoError::BadHeader("x5t must be an array".into())),
            (None, Some(Value::Bytes(one))) => Ok(CertRef::X5Chain(vec![one.clone()])),
            (None, Some(Value::Array(items))) if items.len() >= 2 => items
                .iter()
                .map(|i| cbor::bytes(i, "x5chain"))
                .collect::<Result<_, _>>()
                .map(CertRef::X5Chain),
            (None, Some(_)) => Err(ProtoError::BadHeader(
                "x5chain must be a byte string or an array of 2+ byte strings".into(),
            )),
            (None, None) => Err(ProtoError::BadHeader(
                "the request must name the device certificate with x5t (34) or x5chain (33)".into(),
            )),
        }
    }
}

/// The payload of a device token request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// iss (1): the device id.
    pub iss: String,
    /// aud (3): the broker's issuer id.
    pub aud: String,
    /// exp (4).
    pub exp: u64,
    /// iat (6).
    pub iat: u64,
    /// cti (7): a random nonce, used for replay detection.
    pub cti: Vec<u8>,
    /// grant_type (33); 2 = client_credentials.
    pub grant_type: Option<u64>,
    /// audience (5): the API the token is for.
    pub audience: Option<String>,
    /// scope (9): the scopes asked for.
    pub scope: Option<String>,
    /// csr ([`crate::enroll::LABEL_CSR`]): a PKCS#10 certificate signing
    /// request (DER) for a NEW key; present only in re-enrollment requests
    /// (the CSR proves the new key, the COSE signature the current one).
    pub csr: Option<Vec<u8>>,
}

impl TokenRequest {
    /// Encodes the payload.
    pub fn to_cbor(&self) -> Vec<u8> {
        let mut m = vec![
            (int(cwt::ISS), Value::Text(self.iss.clone())),
            (int(cwt::AUD), Value::Text(self.aud.clone())),
            (int(cwt::EXP), uint(self.exp)),
        ];
        if let Some(a) = &self.audience {
            m.push((int(ace::AUDIENCE), Value::Text(a.clone())));
        }
        m.push((int(cwt::IAT), uint(self.iat)));
        m.push((int(cwt::CTI), Value::Bytes(self.cti.clone())));
        if let Some(s) = &self.scope {
            m.push((int(ace::SCOPE), Value::Text(s.clone())));
        }
        if let Some(g) = self.grant_type {
            m.push((int(ace::GRANT_TYPE), uint(g)));
        }
        if let Some(csr) = &self.csr {
            m.push((int(crate::enroll::LABEL_CSR), Value::Bytes(csr.clone())));
        }
        cbor::encode(&Value::Map(m))
    }

    /// Decodes the payload strictly.
    pub fn from_cbor(bytes: &[u8], limits: Limits) -> Result<Self, ProtoError> {
        let value = cbor::decode_strict(bytes, limits)?;
        let m = cbor::map(&value, "device request")?;
        let need = |label, name| {
            map_get(m, label).ok_or_else(|| {
                ProtoError::structure("device request", format!("{name} is missing"))
            })
        };
        Ok(Self {
            iss: cbor::text(need(cwt::ISS, "iss (1)")?, "iss")?,
            aud: match need(cwt::AUD, "aud (3)")? {
                Value::Array(a) if a.len() == 1 => cbor::text(&a[0], "aud")?,
                v => cbor::text(v, "aud")?,
            },
            exp: cbor::numeric_date(need(cwt::EXP, "exp (4)")?, "exp")?,
            iat: cbor::numeric_date(need(cwt::IAT, "iat (6)")?, "iat")?,
            cti: cbor::bytes(need(cwt::CTI, "cti (7)")?, "cti")?,
            grant_type: map_get(m, ace::GRANT_TYPE)
                .map(|v| {
                    cbor::as_i64(v)
                        .and_then(|g| u64::try_from(g).ok())
                        .ok_or_else(|| {
                            ProtoError::structure("grant_type", "must be an unsigned integer")
                        })
                })
                .transpose()?,
            audience: map_get(m, ace::AUDIENCE)
                .map(|v| cbor::text(v, "audience"))
                .transpose()?,
            scope: map_get(m, ace::SCOPE)
                .map(|v| cbor::text(v, "scope"))
                .transpose()?,
            csr: map_get(m, crate::enroll::LABEL_CSR)
                .map(|v| cbor::bytes(v, "csr"))
                .transpose()?,
        })
    }

    /// Checks the assertion part: it names this broker, is fresh (iat not in
    /// the future, exp not passed, lifetime <= 5 min), and has a cti of 8..=64
    /// bytes. The device-to-certificate check is the caller's.
    pub fn validate(&self, broker_id: &str, now: u64, leeway: u64) -> Result<(), ProtoError> {
        if self.aud != broker_id {
            return Err(ClaimError::AudienceMismatch {
                expected: broker_id.into(),
                found: vec![self.aud.clone()],
            }
            .into());
        }
        if now >= self.exp.saturating_add(leeway) {
            return Err(ClaimError::Expired { exp: self.exp, now }.into());
        }
        if self.iat > now.saturating_add(leeway) {
            return Err(ClaimError::NotYetValid { nbf: self.iat, now }.into());
        }
        let lifetime = self.exp.saturating_sub(self.iat);
        if lifetime > MAX_REQUEST_LIFETIME || self.exp < self.iat {
            return Err(ClaimError::LifetimeTooLong {
                lifetime,
                max: MAX_REQUEST_LIFETIME,
            }
            .into());
        }
        if !(8..=64).contains(&self.cti.len()) {
            return Err(ProtoError::structure(
                "device request",
                "cti must be a random nonce of 8 to 64 bytes",
            ));
        }
        Ok(())
    }
}

/// Signs a token request with the device key.
pub fn sign_request(
    request: &TokenRequest,
    cert: &CertRef,
    signer: &dyn Signer,
) -> Result<Vec<u8>, ProtoError> {
    let params = ProtectedParams {
        kid: None,
        typ: Some(TYP_DEVICE_REQUEST),
        extra: vec![cert.header()],
    };
    cose::sign1(params, request.to_cbor(), signer)
}

/// A parsed device request whose signature is not verified yet.
#[derive(Debug, Clone)]
pub struct UnverifiedRequest {
    /// The certificate the request claims to be signed with (unauthenticated
    /// until the caller validates it and verifies the signature with its key).
    pub cert: CertRef,
    sign1: UnverifiedSign1,
}

impl UnverifiedRequest {
    /// Parses a signed device request.
    pub fn parse(bytes: &[u8], limits: Limits) -> Result<Self, ProtoError> {
        let sign1 = UnverifiedSign1::parse(bytes, limits, false)?;
        sign1.expect_typ(TYP_DEVICE_REQUEST, true)?;
        let cert = CertRef::from_headers(&sign1)?;
        Ok(Self { cert, sign1 })
    }

    /// The payload bytes, NOT authenticated (a lookup hint at most).
    pub fn unverified_payload(&self) -> &[u8] {
        self.sign1.unverified_payload()
    }

    /// Verifies the signature with the certificate's key and decodes the payload.
    pub fn verify(
        &self,
        verifier: &dyn Verifier,
        limits: Limits,
    ) -> Result<TokenRequest, ProtoError> {
        let payload = self.sign1.verify(verifier)?;
        TokenRequest::from_cbor(payload, limits)
    }
}

#[cfg(test)]
mod tests;
