//! Transports: each moves bytes between the network and the token service.

pub mod coap;
pub mod https;
pub mod mqtt;

use std::sync::Arc;

use certbound_proto::topics::TopicKind;

use crate::enroll_service::EnrollService;
use crate::refusal::Refusal;
use crate::token_service::TokenService;

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
        let body = result.map_or_else(|r| mqtt_body(&r), |cert| cert.to_cbor());
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
        let refused = |r: Refusal| mqtt_body(&r);
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

/// The one mapping of a refusal to MQTT, which has no status codes: the ACE
/// error body, with `retry_after` (-65538) on a transient refusal.
pub fn mqtt_body(refusal: &Refusal) -> Vec<u8> {
    refusal.to_cbor()
}
