//! Certificate (re-)enrollment messages.
//!
//! The request is the signed device request of [`crate::request`] whose
//! payload carries a PKCS#10 CSR under [`LABEL_CSR`] instead of a grant: the
//! COSE signature (current certificate key, or a claim certificate's key for
//! first enrollment) authenticates the device, the CSR's own signature proves
//! possession of the NEW key. The answer is a [`CertResponse`] (CBOR) or an
//! ACE error map (`{30: code, 31: description}`), on every transport.
//!
//! ```text
//! request  = COSE_Sign1(device request {1: iss, 3: aud, 4: exp, 6: iat, 7: cti, -65537: csr})
//! response = {1: [leaf DER, issuing CA DER, ...]}     (CoAP 2.04, CF 60; MQTT cert/res)
//! ```

use ciborium::Value;

use crate::cbor::{self, Limits, int, map_get};
use crate::error::ProtoError;

/// The request payload label of the CSR: a private-use label (below
/// -65536, RFC 8392 §9.1), since no CWT/ACE parameter carries a CSR.
pub const LABEL_CSR: i64 = -65537;

/// Largest accepted CSR, bytes (a P-256 CSR is about 250-400 bytes).
pub const MAX_CSR_BYTES: usize = 4096;

/// The answer to a successful (re-)enrollment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertResponse {
    /// The new certificate first, then the CAs that issued it (root excluded).
    pub chain: Vec<Vec<u8>>,
}

/// Response map label of the chain.
const LABEL_CHAIN: i64 = 1;

impl CertResponse {
    /// Encodes `{1: [bstr...]}`.
    pub fn to_cbor(&self) -> Vec<u8> {
        cbor::encode(&Value::Map(vec![(
            int(LABEL_CHAIN),
            Value::Array(self.chain.iter().cloned().map(Value::Bytes).collect()),
        )]))
    }

    /// Decodes strictly; the chain must hold at least the new certificate.
    pub fn from_cbor(bytes: &[u8], limits: Limits) -> Result<Self, ProtoError> {
        let value = cbor::decode_strict(bytes, limits)?;
        let m = cbor::map(&value, "certificate response")?;
        let Some(Value::Array(items)) = map_get(m, LABEL_CHAIN) else {
            return Err(ProtoError::structure(
                "certificate response",
                "chain (1) must be an array of certificates",
            ));
        };
        let chain = items
            .iter()
            .map(|v| cbor::bytes(v, "certificate"))
            .collect::<Result<Vec<_>, _>>()?;
        if chain.is_empty() || chain.iter().any(Vec::is_empty) {
            return Err(ProtoError::structure(
                "certificate response",
                "the chain must start with the new certificate",
            ));
        }
        Ok(Self { chain })
    }
}

/// The answer on `cert/res`: a certificate or an ACE error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnrollAnswer {
    /// Issued.
    Issued(CertResponse),
    /// Refused.
    Refused(crate::ace::AceError),
}

impl EnrollAnswer {
    /// Decodes either form (an ACE error has key 30).
    pub fn from_cbor(bytes: &[u8], limits: Limits) -> Result<Self, ProtoError> {
        match crate::ace::AceResponse::from_cbor(bytes, limits) {
            Ok(crate::ace::AceResponse::Error(e)) => Ok(Self::Refused(e)),
            _ => CertResponse::from_cbor(bytes, limits).map(Self::Issued),
        }
    }
}

/// Checks the CSR field of a re-enrollment request before any parsing:
/// present, non-empty, bounded.
pub fn csr_of(request: &crate::request::TokenRequest) -> Result<&[u8], ProtoError> {
    match request.csr.as_deref() {
        None => Err(ProtoError::structure(
            "enrollment request",
            format!("csr ({LABEL_CSR}) is missing: send the PKCS#10 CSR (DER) of the new key"),
        )),
        Some([]) => Err(ProtoError::structure("enrollment request", "csr is empty")),
        Some(c) if c.len() > MAX_CSR_BYTES => Err(ProtoError::structure(
            "enrollment request",
            format!("csr is {} bytes; at most {MAX_CSR_BYTES}", c.len()),
        )),
        Some(c) => Ok(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::TokenRequest;

    #[test]
    fn response_round_trip_and_rejections() {
        let r = CertResponse {
            chain: vec![vec![0x30, 1, 2], vec![0x30, 3]],
        };
        let bytes = r.to_cbor();
        assert_eq!(hex(&bytes), "a1018243300102423003");
        assert_eq!(
            CertResponse::from_cbor(&bytes, Limits::default()).ok(),
            Some(r)
        );
        assert!(matches!(
            EnrollAnswer::from_cbor(&bytes, Limits::default()),
            Ok(EnrollAnswer::Issued(_))
        ));
        // empty chain, wrong type, missing label
        for bad in ["a10180", "a10101", "a0", "a1018140"] {
            let b = from_hex(bad);
            assert!(
                CertResponse::from_cbor(&b, Limits::default()).is_err(),
                "{bad}"
            );
        }
        let err = crate::ace::AceError::new(crate::ace::AceErrorCode::InvalidClient, "no");
        assert!(matches!(
            EnrollAnswer::from_cbor(&err.to_cbor(), Limits::default()),
            Ok(EnrollAnswer::Refused(_))
        ));
    }

    #[test]
    fn csr_travels_in_the_request() {
        let req = TokenRequest {
            iss: "d".into(),
            aud: "b".into(),
            exp: 10,
            iat: 5,
            cti: vec![1; 16],
            grant_type: None,
            audience: None,
            scope: None,
            csr: Some(vec![0x30, 0x82]),
        };
        let back = TokenRequest::from_cbor(&req.to_cbor(), Limits::default()).ok();
        assert_eq!(
            back.as_ref().and_then(|r| r.csr.clone()),
            Some(vec![0x30, 0x82])
        );
        assert!(csr_of(&req).is_ok());
        let none = TokenRequest {
            csr: None,
            ..req.clone()
        };
        assert!(csr_of(&none).is_err());
        let big = TokenRequest {
            csr: Some(vec![0; MAX_CSR_BYTES + 1]),
            ..req
        };
        assert!(csr_of(&big).is_err());
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
    fn from_hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .filter_map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
            .collect()
    }
}
