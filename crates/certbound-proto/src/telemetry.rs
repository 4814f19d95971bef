//! The telemetry envelope (DESIGN.md "Telemetry envelope"):
//! `{1: access token bstr, 2: bstr COSE_Sign1 by the device key}` whose inner
//! payload is `{1: seq, 2: timestamp ms, 3: data, 4: cti of the token}`.
//!
//! The inner COSE_Sign1 is carried as a byte string so its exact bytes survive
//! any re-encoding of the outer map.

use ciborium::Value;

use crate::cbor::{self, Limits, int, map_get, uint};
use crate::cose::{self, ProtectedParams, UnverifiedSign1};
use crate::crypto::{Signer, Verifier};
use crate::error::ProtoError;

/// `typ` of the device-signed telemetry body.
pub const TYP_TELEMETRY: &str = "application/certbound-telemetry+cose";

/// The device-signed part of a telemetry message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryPayload {
    /// Per-device sequence number, strictly increasing.
    pub seq: u64,
    /// Device time of the reading, Unix milliseconds.
    pub timestamp_ms: u64,
    /// Application data.
    pub data: Vec<u8>,
    /// `cti` of the access token attached to the message.
    pub token_cti: Vec<u8>,
}

impl TelemetryPayload {
    fn to_cbor(&self) -> Vec<u8> {
        cbor::encode(&Value::Map(vec![
            (int(1), uint(self.seq)),
            (int(2), uint(self.timestamp_ms)),
            (int(3), Value::Bytes(self.data.clone())),
            (int(4), Value::Bytes(self.token_cti.clone())),
        ]))
    }

    fn from_cbor(bytes: &[u8], limits: Limits) -> Result<Self, ProtoError> {
        let value = cbor::decode_strict(bytes, limits)?;
        let m = cbor::map(&value, "telemetry payload")?;
        let need = |l| {
            map_get(m, l).ok_or_else(|| {
                ProtoError::structure("telemetry payload", format!("field {l} is missing"))
            })
        };
        Ok(Self {
            seq: cbor::numeric_date(need(1)?, "seq")?,
            timestamp_ms: cbor::numeric_date(need(2)?, "timestamp")?,
            data: cbor::bytes(need(3)?, "data")?,
            token_cti: cbor::bytes(need(4)?, "token cti")?,
        })
    }
}

/// Builds an envelope: signs `payload` with the device key and attaches `token`.
pub fn seal(
    token: &[u8],
    payload: &TelemetryPayload,
    signer: &dyn Signer,
) -> Result<Vec<u8>, ProtoError> {
    let params = ProtectedParams {
        kid: None,
        typ: Some(TYP_TELEMETRY),
        extra: Vec::new(),
    };
    let body = cose::sign1(params, payload.to_cbor(), signer)?;
    Ok(cbor::encode(&Value::Map(vec![
        (int(1), Value::Bytes(token.to_vec())),
        (int(2), Value::Bytes(body)),
    ])))
}

/// A parsed envelope, nothing verified yet.
#[derive(Debug, Clone)]
pub struct UnverifiedTelemetry {
    /// The attached access token (verify it first, then the body with its `cnf` key).
    pub token: Vec<u8>,
    body: UnverifiedSign1,
}

impl UnverifiedTelemetry {
    /// Parses an envelope.
    pub fn parse(bytes: &[u8], limits: Limits) -> Result<Self, ProtoError> {
        let value = cbor::decode_strict(bytes, limits)?;
        let m = cbor::map(&value, "telemetry envelope")?;
        let token = map_get(m, 1)
            .ok_or_else(|| ProtoError::structure("telemetry envelope", "token (1) is missing"))
            .and_then(|v| cbor::bytes(v, "token"))?;
        let body = map_get(m, 2)
            .ok_or_else(|| ProtoError::structure("telemetry envelope", "body (2) is missing"))
            .and_then(|v| cbor::bytes(v, "body"))?;
        let body = UnverifiedSign1::parse(&body, limits, false)?;
        body.expect_typ(TYP_TELEMETRY, false)?;
        Ok(Self { token, body })
    }

    /// Verifies the body with the token's confirmation key (proof of possession).
    pub fn verify_body(
        &self,
        cnf_verifier: &dyn Verifier,
        limits: Limits,
    ) -> Result<TelemetryPayload, ProtoError> {
        let payload = self.body.verify(cnf_verifier)?;
        TelemetryPayload::from_cbor(payload, limits)
    }
}
