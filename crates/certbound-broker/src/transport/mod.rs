//! Transports: each moves bytes between the network and the token service.

pub mod coap;
pub mod https;
pub mod mqtt;

use std::sync::Arc;

use certbound_proto::ace::{AceError, AceErrorCode};
use certbound_proto::topics::TopicKind;

use crate::enroll_service::EnrollService;
use crate::token_service::{Refused, TokenService};

/// The device-facing endpoints every transport serves: tokens and
/// certificate re-enrollment.
#[derive(Debug, Clone)]
pub struct DeviceEndpoints {
    /// `token/req`, CoAP `/token`, HTTPS `/ace/token`.
    pub tokens: Arc<TokenService>,
    /// `cert/req`, CoAP `/sren`, HTTPS EST.
    pub enroll: Arc<EnrollService>,
    /// First enrollment by claim: CoAP `/sen`, HTTPS EST `simpleenroll`.
    pub claims: Arc<crate::claim_service::ClaimService>,
}

impl DeviceEndpoints {
    /// The answer to a claim request published on `cb/claims/<claim_cn>/req`:
    /// `(response topic, CBOR body)`, or `None` when the request names no
    /// device to answer.
    pub async fn answer_claim(
        &self,
        claim_cn: &str,
        payload: &[u8],
        now: u64,
    ) -> Option<(String, Vec<u8>)> {
        let (device, result) = self.claims.handle_mqtt(payload, claim_cn, now).await;
        let device = device?;
        let body = match result {
            Ok(cert) => cert.to_cbor(),
            Err(Refused::Ace(e)) => e.to_cbor(),
            Err(Refused::Unavailable) => AceError::new(
                AceErrorCode::InvalidRequest,
                "temporarily unavailable: retry later",
            )
            .to_cbor(),
            Err(Refused::RateLimited { retry_after }) => AceError::new(
                AceErrorCode::InvalidRequest,
                format!("rate limited: too many requests; retry after {retry_after} s"),
            )
            .to_cbor(),
        };
        Some((
            certbound_proto::topics::claim_response_topic(claim_cn, &device),
            body,
        ))
    }

    /// The CBOR answer to a request `device` published on its `kind` topic
    /// (MQTT has no status codes: the body says token/certificate or error).
    pub async fn answer(
        &self,
        kind: TopicKind,
        device: &str,
        payload: &[u8],
        now: u64,
    ) -> Option<Vec<u8>> {
        let refused = |r: Refused| match r {
            Refused::Ace(error) => error.to_cbor(),
            Refused::Unavailable => AceError::new(
                AceErrorCode::InvalidRequest,
                "temporarily unavailable: retry later",
            )
            .to_cbor(),
            Refused::RateLimited { retry_after } => AceError::new(
                AceErrorCode::InvalidRequest,
                format!("rate limited: too many requests; retry after {retry_after} s"),
            )
            .to_cbor(),
        };
        match kind {
            TopicKind::TokenRequest => Some(
                self.tokens
                    // MQTT: the broker sees the MQTT server, not the device.
                    .handle(payload, "mqtt", Some(device), None, now)
                    .await
                    .map_or_else(refused, |t| t.to_cbor()),
            ),
            TopicKind::CertRequest => Some(
                self.enroll
                    .handle(payload, "mqtt", Some(device), now)
                    .await
                    .map_or_else(refused, |c| c.to_cbor()),
            ),
            _ => None,
        }
    }
}
