//! The exchanges of a device over its transport: token requests, certificate
//! renewal and telemetry delivery, for MQTT, CoAP and HTTPS.

use std::time::Duration;

use certbound_agent::keygen::NewKey;
use certbound_agent::reenroll::{
    accept_chain, build_reenroll_request, decode_coap_answer, decode_mqtt_answer,
};
use certbound_agent::{
    AgentError, DeviceIdentity, ObtainedToken, build_token_request, decode_token_response,
};
use certbound_coap::{ResponseType, content_format};
use certbound_proto::request::CertRef;
use certbound_proto::topics::TopicKind;
use http::{HeaderValue, Method, header};

use super::failover::UNAVAILABLE;
use super::{Device, nonce};
use crate::options::Transport;

/// Why a telemetry message did not get through.
pub(super) enum Delivery {
    /// The backend refused it (it counted the reason).
    Refused,
    /// It could not be delivered (retried with the next message).
    Failed(AgentError),
}

impl Device {
    pub(super) async fn request_token(
        &self,
        identity: &DeviceIdentity,
    ) -> Result<ObtainedToken, AgentError> {
        let params = &self.ctx.params;
        match self.dev.transport {
            Transport::Mqtt => {
                let m = self
                    .mqtt
                    .as_ref()
                    .ok_or_else(|| AgentError::Mqtt("not connected".into()))?;
                m.request_token_at(identity, params, self.clock()).await
            }
            Transport::Coap => {
                let client = self.broker_coap()?;
                let body = build_token_request(identity, params, self.clock(), nonce())?;
                let r = self
                    .bounded(async {
                        Ok(client
                            .post("token", content_format::COSE_SIGN1, body)
                            .await?)
                    })
                    .await?;
                unavailable(r.code)?;
                decode_token_response(r.code, r.content_format, &r.payload)
            }
            Transport::Https => {
                let (base, fetcher) = self.broker_https()?;
                let body = build_token_request(identity, params, self.clock(), nonce())?;
                let headers = vec![(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/cose"),
                )];
                let r = self
                    .bounded(async {
                        fetcher
                            .send(Method::POST, &format!("{base}/ace/token"), headers, body)
                            .await
                            .map_err(|e| AgentError::Https(e.to_string()))
                    })
                    .await?;
                match r.status {
                    503 => Err(AgentError::RetryLater {
                        retry_after_secs: 1,
                        reason: format!("{UNAVAILABLE}: HTTP 503"),
                    }),
                    429 => Err(AgentError::RetryLater {
                        retry_after_secs: r
                            .header("retry-after")
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(1),
                        reason: format!("HTTP {}", r.status),
                    }),
                    s => {
                        let code = if s == 201 {
                            ResponseType::Created
                        } else {
                            ResponseType::BadRequest
                        };
                        decode_token_response(code, Some(content_format::ACE_CBOR), &r.body)
                    }
                }
            }
        }
    }

    pub(super) async fn renew(&self) -> Result<certbound_agent::RenewedIdentity, AgentError> {
        let issuer = &self.ctx.params.broker_id;
        match self.dev.transport {
            Transport::Https => {
                let (base, _) = self.broker_https()?;
                self.bounded(certbound_agent::renew_over_est(
                    base,
                    &self.ctx.ca_pem,
                    &self.identity,
                ))
                .await
            }
            Transport::Mqtt | Transport::Coap => {
                let key = NewKey::generate(&self.dev.id)?;
                let request = build_reenroll_request(
                    &self.identity,
                    issuer,
                    key.csr_der(),
                    &CertRef::X5t(self.identity.thumbprint()),
                    self.clock(),
                    nonce(),
                )?;
                let chain = if self.dev.transport == Transport::Mqtt {
                    let m = self
                        .mqtt
                        .as_ref()
                        .ok_or_else(|| AgentError::Mqtt("not connected".into()))?;
                    decode_mqtt_answer(&m.request_cert(request).await?)?
                } else {
                    let client = self.broker_coap()?;
                    let r = self
                        .bounded(async {
                            Ok(client
                                .post(".well-known/est/sren", content_format::COSE_SIGN1, request)
                                .await?)
                        })
                        .await?;
                    unavailable(r.code)?;
                    decode_coap_answer(r.code, r.content_format, &r.payload, r.max_age)?
                };
                accept_chain(&key, chain, &self.identity)
            }
        }
    }

    pub(super) async fn deliver(&self, envelope: Vec<u8>) -> Result<(), Delivery> {
        let id = &self.dev.id;
        match self.dev.transport {
            Transport::Mqtt => {
                let m = self
                    .mqtt
                    .as_ref()
                    .ok_or_else(|| Delivery::Failed(AgentError::Mqtt("not connected".into())))?;
                let pending = m
                    .publish_tracked(TopicKind::Telemetry, envelope)
                    .await
                    .map_err(Delivery::Failed)?;
                let wait = self.ctx.telemetry_every.min(Duration::from_secs(10));
                match tokio::time::timeout(wait, pending.wait()).await {
                    Ok(r) => r.map_err(Delivery::Failed),
                    Err(_) => Err(Delivery::Failed(AgentError::Mqtt(format!(
                        "no PUBACK within {wait:?}"
                    )))),
                }
            }
            Transport::Coap => {
                let client = self
                    .ctx
                    .backend_coap
                    .as_ref()
                    .and_then(|p| p.for_device(self.dev.index))
                    .ok_or_else(|| {
                        Delivery::Failed(AgentError::UnexpectedResponse("no CoAP intake".into()))
                    })?;
                let r = client
                    .post(&format!("telemetry/{id}"), content_format::CBOR, envelope)
                    .await
                    .map_err(|e| Delivery::Failed(e.into()))?;
                if r.code == ResponseType::Changed {
                    Ok(())
                } else {
                    Err(Delivery::Refused)
                }
            }
            Transport::Https => {
                let (base, fetcher) =
                    self.ctx.backend_https.as_ref().ok_or_else(|| {
                        Delivery::Failed(AgentError::Https("no HTTPS intake".into()))
                    })?;
                let headers = vec![(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/cbor"),
                )];
                let r = fetcher
                    .send(
                        Method::POST,
                        &format!("{base}/telemetry/{id}"),
                        headers,
                        envelope,
                    )
                    .await
                    .map_err(|e| Delivery::Failed(AgentError::Https(e.to_string())))?;
                if (200..300).contains(&r.status) {
                    Ok(())
                } else {
                    Err(Delivery::Refused)
                }
            }
        }
    }
}

/// A 5.03 answer: the instance is overloaded or going away (with several
/// instances the device moves on; with one it retries as told).
fn unavailable(code: ResponseType) -> Result<(), AgentError> {
    if code == ResponseType::ServiceUnavailable {
        return Err(AgentError::RetryLater {
            retry_after_secs: 2,
            reason: format!("{UNAVAILABLE}: CoAP 5.03"),
        });
    }
    Ok(())
}
