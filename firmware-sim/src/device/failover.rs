//! Several broker instances: which one a CoAP or HTTPS device talks to,
//! when it gives up on it (no answer within `failover_after`, a socket
//! error, 5.03/503), moving to the next, and the ledger lines of what the
//! instances acknowledged.

use std::future::Future;
use std::net::SocketAddr;

use certbound_agent::AgentError;
use certbound_coap::CoapError;
use certbound_verify::http::HttpsFetcher;
use tokio::time::Instant;

use super::{CoapPool, Device};
use crate::ledger::Entry;
use crate::options::Transport;
use crate::stats::{Expected, bump};

/// The reason text of a 5.03 / 503 answer (the instance is overloaded or
/// going away): with several instances, the device moves to the next.
pub(super) const UNAVAILABLE: &str = "the instance is unavailable";

/// Failover events listed one by one in the report; more are only counted.
const LISTED_FAILOVERS: u64 = 200;

/// One broker instance's CoAP endpoint.
#[derive(Debug, Clone)]
pub struct CoapInstance {
    /// Its number (1-based, in the order the instances were given).
    pub instance: usize,
    /// Its address.
    pub addr: SocketAddr,
    /// The device-side sockets towards it.
    pub pool: CoapPool,
}

/// One broker instance's HTTPS endpoint.
#[derive(Debug, Clone)]
pub struct HttpsInstance {
    /// Its number (1-based).
    pub instance: usize,
    /// Its base URL.
    pub base: String,
}

impl Device {
    /// How many instances the device's transport can reach (MQTT: one
    /// server, whichever instance takes the request).
    pub(super) fn instances(&self) -> usize {
        match self.dev.transport {
            Transport::Coap => self.ctx.broker_coap.len(),
            Transport::Https => self.ctx.broker_https.len(),
            Transport::Mqtt => 1,
        }
    }

    pub(super) fn coap_instance(&self) -> Result<&CoapInstance, AgentError> {
        let all = &self.ctx.broker_coap;
        all.get(self.instance % all.len().max(1))
            .ok_or_else(|| AgentError::UnexpectedResponse("the broker has no CoAP endpoint".into()))
    }

    pub(super) fn broker_coap(&self) -> Result<&certbound_coap::Client, AgentError> {
        self.coap_instance()?
            .pool
            .for_device(self.dev.index)
            .ok_or_else(|| AgentError::UnexpectedResponse("the broker has no CoAP endpoint".into()))
    }

    pub(super) fn https_instance(&self) -> Result<&HttpsInstance, AgentError> {
        let all = &self.ctx.broker_https;
        all.get(self.instance % all.len().max(1))
            .ok_or_else(|| AgentError::Https("the broker has no HTTPS endpoint".into()))
    }

    pub(super) fn broker_https(&self) -> Result<(&str, &HttpsFetcher), AgentError> {
        let i = self.https_instance()?;
        let f = self
            .ctx
            .broker_fetcher
            .as_ref()
            .ok_or_else(|| AgentError::Https("the broker has no HTTPS endpoint".into()))?;
        Ok((&i.base, f))
    }

    /// The instance answering this device now (1-based; `None` for MQTT)
    /// and the address its requests go to.
    fn answering(&self) -> (Option<usize>, String) {
        match self.dev.transport {
            Transport::Coap => self.coap_instance().map_or((None, String::new()), |i| {
                (Some(i.instance), format!("coap://{}", i.addr))
            }),
            Transport::Https => self.https_instance().map_or((None, String::new()), |i| {
                (Some(i.instance), i.base.clone())
            }),
            Transport::Mqtt => (
                None,
                self.ctx
                    .broker_mqtt
                    .as_ref()
                    .map(|(h, p)| format!("mqtts://{h}:{p}"))
                    .unwrap_or_default(),
            ),
        }
    }

    /// Runs one request to the broker; with several instances, a request
    /// still unanswered after `failover_after` is given up.
    pub(super) async fn bounded<T>(
        &self,
        request: impl Future<Output = Result<T, AgentError>>,
    ) -> Result<T, AgentError> {
        if self.instances() < 2 {
            return request.await;
        }
        let wait = self.ctx.failover_after;
        match tokio::time::timeout(wait, request).await {
            Ok(r) => r,
            Err(_) if self.dev.transport == Transport::Coap => {
                Err(AgentError::Coap(CoapError::Timeout {
                    transmissions: 0,
                    waited: wait,
                }))
            }
            Err(_) => Err(AgentError::Https(format!("no answer within {wait:?}"))),
        }
    }

    /// Why the device's instance did not answer `e`, when that is what
    /// happened and another instance could: no answer in time, a socket
    /// error, or 5.03 / 503.
    pub(super) fn unanswered(&self, e: &AgentError) -> Option<String> {
        if self.instances() < 2 {
            return None;
        }
        match e {
            AgentError::Coap(
                c @ (CoapError::Timeout { .. }
                | CoapError::Io { .. }
                | CoapError::Reset
                | CoapError::Closed),
            ) => Some(c.to_string()),
            AgentError::Https(text) => Some(text.clone()),
            AgentError::RetryLater { reason, .. }
                if reason.starts_with(UNAVAILABLE) || reason.starts_with("HTTP 503") =>
            {
                Some(reason.clone())
            }
            _ => None,
        }
    }

    /// Moves to the next instance after `why` (a retry, and a failover
    /// event); the next attempt, one period later, goes there.
    pub(super) fn fail_over(&mut self, stage: &str, why: &str) {
        let n = self.instances();
        let (from, _) = self.answering();
        self.instance = (self.instance + 1) % n.max(1);
        let (to, via) = self.answering();
        bump(&self.ctx.stats.retries);
        let count = self
            .ctx
            .stats
            .failovers
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = |i: Option<usize>| i.map_or_else(|| "?".into(), |i| i.to_string());
        tracing::info!(device = %self.dev.id, stage, reason = why, to = %via, "failing over");
        if count < LISTED_FAILOVERS {
            self.ctx.stats.event(
                Instant::now() - self.ctx.started,
                format!(
                    "{} ({}) failed over from instance {} to instance {} ({via}): {stage} unanswered",
                    self.dev.id,
                    self.dev.transport,
                    name(from),
                    name(to),
                ),
            );
        }
    }

    /// Appends a token (`jti`) or certificate (`der`) to the ledger.
    pub(super) fn record(&self, jti: Option<&[u8]>, der: Option<&[u8]>) {
        let Some(ledger) = &self.ctx.ledger else {
            return;
        };
        let (instance, via) = self.answering();
        let summary = der.map(certbound_pki::cert_summary);
        let (serial, thumbprint) = match summary {
            Some(Ok(s)) => (Some(s.serial_hex), Some(hex::encode(s.thumbprint))),
            Some(Err(e)) => {
                self.ctx
                    .stats
                    .reject("ledger:certificate", Expected::No, || {
                        format!(
                            "{}: the renewed certificate does not parse: {e}",
                            self.dev.id
                        )
                    });
                return;
            }
            None => (None, None),
        };
        let entry = Entry {
            kind: if jti.is_some() {
                "token"
            } else {
                "certificate"
            }
            .into(),
            t_ms: crate::unix_now_ms(),
            at_s: (Instant::now() - self.ctx.started).as_secs_f64(),
            device: self.dev.id.clone(),
            transport: self.dev.transport.to_string(),
            instance,
            via,
            jti: jti.map(hex::encode),
            serial,
            thumbprint,
        };
        if let Err(e) = ledger.record(&entry) {
            self.ctx.stats.reject("ledger:write", Expected::No, || {
                format!("{}: writing the ledger: {e}", self.dev.id)
            });
        }
    }
}
