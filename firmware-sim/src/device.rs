//! One simulated device: a tokio task that does what the agent does, with the
//! agent's own building blocks (signed requests, token and certificate
//! renewal points, telemetry sealing) over its transport, and reports every
//! outcome to the shared [`Stats`].
//!
//! Each period it: renews its certificate when past ~2/3 of its lifetime (new
//! key, the broker's renewal endpoint of its transport); gets a token when it
//! has none or the one it holds is past ~2/3 of its lifetime (after a
//! certificate renewal a new token is bound to the new key); then seals one
//! telemetry message with its key and sends it. Its clock may be skewed: every
//! request's `iat` comes from the skewed clock.

use std::sync::Arc;
use std::time::Duration;

use certbound_agent::mqtt::{ConnectOptions, MqttConnectSettings, MqttDevice};
use certbound_agent::tokens::HeldToken;
use certbound_agent::{AgentError, DeviceIdentity, TokenRequestParams};
use certbound_proto::schedule::renew_after;
use certbound_proto::telemetry::{TelemetryPayload, seal};
use certbound_verify::http::HttpsFetcher;
use rand::{Rng, RngCore};
use tokio::time::Instant;

use crate::backend::Expectations;
use crate::options::Transport;
use crate::stats::{Expected, Op, Stats, bump};

mod exchange;
mod failover;

use exchange::Delivery;
pub use failover::{CoapInstance, HttpsInstance};

/// A pool of CoAP endpoints: device `i` uses `clients[i % len]` (many
/// constrained devices behind one border router share a UDP address).
#[derive(Debug, Clone)]
pub struct CoapPool(pub Vec<Arc<certbound_coap::Client>>);

impl CoapPool {
    fn for_device(&self, index: usize) -> Option<&certbound_coap::Client> {
        if self.0.is_empty() {
            None
        } else {
            Some(&self.0[index % self.0.len()])
        }
    }
}

/// What every device shares.
#[derive(Debug)]
pub struct DeviceContext {
    /// Counters.
    pub stats: Arc<Stats>,
    /// Which rejections are explained.
    pub expect: Arc<Expectations>,
    /// Issuer id (the `aud` of device requests) and the telemetry API.
    pub params: TokenRequestParams,
    /// CoAP endpoints towards each broker instance that serves CoAP.
    pub broker_coap: Vec<CoapInstance>,
    /// The broker's MQTT server (host, port), shared by every instance.
    pub broker_mqtt: Option<(String, u16)>,
    /// The HTTPS base URLs of the broker instances that serve HTTPS.
    pub broker_https: Vec<HttpsInstance>,
    /// With several instances: how long a request may go unanswered before
    /// the device moves to the next instance.
    pub failover_after: Duration,
    /// Where acknowledged answers are written (`--ledger`).
    pub ledger: Option<crate::ledger::Ledger>,
    /// A TLS client trusting the broker's CA (no client certificate).
    pub broker_fetcher: Option<HttpsFetcher>,
    /// The broker's CA chain (PEM).
    pub ca_pem: String,
    /// CoAP endpoints towards the backend's intake.
    pub backend_coap: Option<CoapPool>,
    /// The backend's HTTPS intake base URL and a client trusting it.
    pub backend_https: Option<(String, HttpsFetcher)>,
    /// Telemetry period.
    pub telemetry_every: Duration,
    /// When the fleet started.
    pub started: Instant,
    /// When devices stop.
    pub deadline: Instant,
    /// The first token any device obtained (shown decoded after a run).
    pub sample_token: std::sync::OnceLock<Vec<u8>>,
    /// Set to stop every device at its next period (Ctrl-C).
    pub stop: std::sync::atomic::AtomicBool,
}

/// One device of the fleet.
#[derive(Debug, Clone)]
pub struct SimDevice {
    /// Position in the fleet (picks the shared CoAP endpoint).
    pub index: usize,
    /// Device id.
    pub id: String,
    /// Key and certificate files.
    pub key_file: std::path::PathBuf,
    /// Certificate chain file.
    pub cert_file: std::path::PathBuf,
    /// Its transport.
    pub transport: Transport,
    /// Its clock's offset from the real one, seconds.
    pub skew: i64,
    /// The broker instance it starts with (a position among the instances
    /// its transport can reach, taken modulo their number).
    pub instance: usize,
}

fn nonce() -> [u8; 16] {
    let mut n = [0u8; 16];
    rand::rng().fill_bytes(&mut n);
    n
}

/// The device task. Returns whether the device ever held a token.
pub async fn run(ctx: Arc<DeviceContext>, dev: SimDevice) -> bool {
    let mut sim = match Device::new(ctx, dev) {
        Ok(d) => d,
        Err(reason) => return reason,
    };
    sim.run().await
}

struct Device {
    ctx: Arc<DeviceContext>,
    dev: SimDevice,
    identity: DeviceIdentity,
    /// A renewed identity waiting for its first token (the agent's staged
    /// credentials: the new pair is used only once a token bound to it arrived).
    pending: Option<DeviceIdentity>,
    mqtt: Option<MqttDevice>,
    token: Option<HeldToken>,
    ever_had_token: bool,
    seq: u64,
    cert_renew_at: Option<u64>,
    renew_failures: u32,
    counted_connected: bool,
    /// The instance it talks to now (see [`SimDevice::instance`]).
    instance: usize,
}

impl Device {
    fn new(ctx: Arc<DeviceContext>, dev: SimDevice) -> Result<Self, bool> {
        let identity = match DeviceIdentity::load(&dev.key_file, &dev.cert_file) {
            Ok(i) => i,
            Err(e) => {
                ctx.stats.reject("setup:credentials", Expected::No, || {
                    format!("{}: cannot load its credentials: {e}", dev.id)
                });
                return Err(false);
            }
        };
        let instance = dev.instance;
        let mut d = Self {
            ctx,
            dev,
            identity,
            pending: None,
            mqtt: None,
            token: None,
            ever_had_token: false,
            seq: 0,
            cert_renew_at: None,
            renew_failures: 0,
            counted_connected: false,
            instance,
        };
        d.schedule_cert_renewal();
        Ok(d)
    }

    /// The device's clock, Unix seconds.
    fn clock(&self) -> u64 {
        u64::try_from(i64::try_from(crate::unix_now()).unwrap_or(i64::MAX) + self.dev.skew)
            .unwrap_or(0)
    }

    fn schedule_cert_renewal(&mut self) {
        let times = self.identity.validity();
        let lifetime = times.lifetime();
        // Only certificates that expire within a day are renewed in a simulation.
        self.cert_renew_at = (lifetime <= 86_400)
            .then(|| times.not_before + renew_after(lifetime, rand::rng().random::<f64>()));
    }

    fn set_connected(&mut self, up: bool) {
        if up != self.counted_connected {
            self.counted_connected = up;
            if up {
                bump(&self.ctx.stats.connected);
            } else {
                self.ctx
                    .stats
                    .connected
                    .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    async fn run(&mut self) -> bool {
        bump(&self.ctx.stats.devices_started);
        let every = self.ctx.telemetry_every;
        // Spread the fleet over one period (at most half the run, so that
        // every device acts even in a run shorter than a period).
        let spread = every.min((self.ctx.deadline - Instant::now()) / 2);
        let offset = spread.mul_f64(rand::rng().random::<f64>());
        let mut next = Instant::now() + offset;
        loop {
            tokio::time::sleep_until(next).await;
            let now = Instant::now();
            if now >= self.ctx.deadline || self.ctx.stop.load(std::sync::atomic::Ordering::Relaxed)
            {
                break;
            }
            next += every;
            if next < now {
                next = now + every; // fell behind: do not burst to catch up
            }
            self.tick().await;
        }
        if let Some(m) = self.mqtt.take() {
            m.disconnect().await;
        }
        self.set_connected(false);
        self.ever_had_token
    }

    async fn tick(&mut self) {
        if self.dev.transport == Transport::Mqtt && self.mqtt.is_none() && !self.connect().await {
            return;
        }
        if let Some(m) = &self.mqtt {
            // The session may drop (broker restart, revocation) and come back.
            let up = m.is_connected();
            self.set_connected(up);
        }
        if self.cert_renew_at.is_some_and(|at| self.clock() >= at) {
            self.renew_certificate().await;
        }
        let now = self.clock();
        if self.pending.is_some() || self.token.as_ref().is_none_or(|t| t.needs_renewal(now, 0)) {
            self.get_token().await;
        }
        match &self.token {
            Some(t) if t.usable(self.clock()) => {
                let (token, cti) = (t.token.clone(), t.cti.clone());
                self.send_telemetry(token, cti).await;
            }
            _ => bump(&self.ctx.stats.not_sent_no_token),
        }
    }

    async fn connect(&mut self) -> bool {
        let Some((host, port)) = self.ctx.broker_mqtt.clone() else {
            return false;
        };
        let settings = MqttConnectSettings {
            host,
            port,
            ca_pem: self.ctx.ca_pem.clone(),
            cert_pem: self.identity.cert_pem().to_string(),
            key_pem: self.identity.key_pem().to_string(),
            timeout: Duration::from_secs(10),
        };
        let t0 = Instant::now();
        let options = ConnectOptions {
            keep_alive: Duration::from_secs(60),
            ..ConnectOptions::default()
        };
        match MqttDevice::connect_with(&self.identity, &settings, options).await {
            Ok(m) => {
                self.ctx.stats.observe(Op::Connect, t0.elapsed());
                self.mqtt = Some(m);
                self.set_connected(true);
                true
            }
            Err(e) => {
                self.transport_failure("mqtt connect", &e);
                false
            }
        }
    }

    /// A failure that is not a refusal: retried at the next period. For a
    /// device revoked on purpose the MQTT server refusing it is expected.
    fn transport_failure(&self, what: &str, e: &AgentError) {
        if self.ctx.expect.is_revoked(&self.dev.id) {
            self.ctx.stats.reject(
                &format!("{what}:revoked_device"),
                Expected::Yes,
                String::new,
            );
        } else {
            bump(&self.ctx.stats.retries);
            tracing::debug!(device = %self.dev.id, error = %e, "{what} failed; retrying next period");
        }
    }

    fn refused(&self, stage: &str, e: &AgentError) {
        let (code, expected) = classify(
            e,
            self.ctx.expect.is_revoked(&self.dev.id),
            self.ctx.expect.is_skewed(&self.dev.id),
        );
        self.ctx
            .stats
            .reject(&format!("{stage}:{code}"), expected, || {
                format!(
                    "{} ({}): {stage} refused: {e}",
                    self.dev.id, self.dev.transport
                )
            });
    }

    fn is_refusal(e: &AgentError) -> bool {
        matches!(
            e,
            AgentError::Refused(_) | AgentError::RenewalRefused(_) | AgentError::RetryLater { .. }
        )
    }

    async fn get_token(&mut self) {
        let t0 = Instant::now();
        let issued_at = self.clock();
        let identity = self.pending.as_ref().unwrap_or(&self.identity);
        let result = self.request_token(identity).await;
        // The agent's own acceptance rule: the token must be bound to this
        // device's key and name its audience, and its lifetime comes from its
        // own `exp`, never from the answer's `expires_in`.
        let result = result.and_then(|t| {
            certbound_agent::accept_token(t, identity, &self.ctx.params.audience, issued_at)
                .map(|(t, _)| t)
        });
        match result {
            Ok(t) => {
                self.ctx.stats.observe(Op::Token, t0.elapsed());
                if let Some(renewed) = self.pending.take() {
                    self.promote(renewed).await;
                }
                let cti = match certbound_agent::tokens::token_cti(&t.access_token) {
                    Ok(c) => c,
                    Err(e) => {
                        self.ctx.stats.reject("token:unreadable", Expected::No, || {
                            format!("{}: token without cti: {e}", self.dev.id)
                        });
                        return;
                    }
                };
                self.record(Some(&cti), None);
                let lifetime = t.expires_in.max(1);
                let renew_at = renew_after(lifetime, rand::rng().random::<f64>());
                if self.token.is_some() {
                    bump(&self.ctx.stats.tokens_renewed);
                } else {
                    bump(&self.ctx.stats.tokens_issued);
                }
                self.ever_had_token = true;
                let _ = self.ctx.sample_token.set(t.access_token.clone());
                // The agent's own token record and renewal rule (device clock).
                self.token = Some(HeldToken {
                    token: t.access_token,
                    cti,
                    issued_at,
                    lifetime,
                    renew_at,
                });
                if self.dev.transport != Transport::Mqtt {
                    self.set_connected(true);
                }
            }
            Err(e) => match self.unanswered(&e) {
                Some(why) => self.fail_over("token", &why),
                None if Self::is_refusal(&e) => self.refused("token", &e),
                None => self.transport_failure("token", &e),
            },
        }
    }

    async fn renew_certificate(&mut self) {
        let t0 = Instant::now();
        match self.renew().await {
            Ok(renewed) => {
                self.ctx.stats.observe(Op::Renewal, t0.elapsed());
                bump(&self.ctx.stats.certs_renewed);
                self.record(None, renewed.identity.chain().first().map(Vec::as_slice));
                // Staged: the old pair stays in use until a token bound to the
                // new key arrives (right now, or at the next periods).
                self.pending = Some(renewed.identity);
                self.cert_renew_at = None;
                self.renew_failures = 0;
                self.get_token().await;
            }
            Err(e) if self.unanswered(&e).is_some() => {
                let why = self.unanswered(&e).unwrap_or_default();
                self.fail_over("renewal", &why);
                self.postpone_renewal();
            }
            Err(e) if Self::is_refusal(&e) => {
                self.refused("renewal", &e);
                self.postpone_renewal();
            }
            Err(e) => {
                self.transport_failure("renewal", &e);
                self.postpone_renewal();
            }
        }
    }

    /// Switches to the renewed identity (its token just arrived); MQTT
    /// devices reconnect with the new certificate.
    async fn promote(&mut self, renewed: DeviceIdentity) {
        self.identity = renewed;
        self.schedule_cert_renewal();
        if let Some(m) = self.mqtt.take() {
            m.disconnect().await;
            self.set_connected(false);
            self.connect().await;
        }
    }

    /// After a failed renewal: wait 2, 4, 8 ... 64 s (with full jitter)
    /// before the next attempt, like the agent's backoff.
    fn postpone_renewal(&mut self) {
        self.renew_failures = self.renew_failures.saturating_add(1);
        let cap = 1u64 << self.renew_failures.min(6);
        let wait = rand::rng().random_range(1..=cap.max(2));
        self.cert_renew_at = Some(self.clock() + wait);
    }

    async fn send_telemetry(&mut self, token: Vec<u8>, cti: Vec<u8>) {
        self.seq += 1;
        let payload = TelemetryPayload {
            seq: self.seq,
            timestamp_ms: crate::unix_now_ms().saturating_add_signed(self.dev.skew * 1000),
            data: format!("{{\"t\":{:.1}}}", 20.0 + (self.seq % 50) as f64 / 10.0).into_bytes(),
            token_cti: cti,
        };
        let envelope = match seal(&token, &payload, self.identity.signer()) {
            Ok(e) => e,
            Err(e) => {
                self.ctx.stats.reject("telemetry:seal", Expected::No, || {
                    format!("{}: cannot seal a message: {e}", self.dev.id)
                });
                return;
            }
        };
        bump(&self.ctx.stats.telemetry_sent);
        let t0 = Instant::now();
        let result = self.deliver(envelope).await;
        match result {
            Ok(()) => self.ctx.stats.observe(Op::Telemetry, t0.elapsed()),
            // Refusals are counted by the backend, which knows the reason.
            Err(Delivery::Refused) => {}
            Err(Delivery::Failed(e)) => self.transport_failure("telemetry", &e),
        }
    }
}

/// The reason code of a refusal and whether the scenario explains it: the
/// device was revoked on purpose, or its clock is skewed beyond the broker's
/// leeway and the refusal is about time (`not valid before`, `expired at`).
fn classify(e: &AgentError, revoked: bool, skewed: bool) -> (&'static str, Expected) {
    let (code, description) = match e {
        AgentError::Refused(a) | AgentError::RenewalRefused(a) => {
            (a.code.name(), a.description.clone().unwrap_or_default())
        }
        AgentError::RetryLater { reason, .. } => ("rate_limited", reason.clone()),
        _ => ("error", e.to_string()),
    };
    let time_related =
        description.contains("not valid before") || description.contains("expired at");
    let expected = if revoked || (time_related && skewed) {
        Expected::Yes
    } else {
        Expected::No
    };
    (code, expected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use certbound_proto::ace::{AceError, AceErrorCode};

    fn refusal(text: &str) -> AgentError {
        AgentError::Refused(AceError::new(AceErrorCode::InvalidClient, text))
    }

    #[test]
    fn refusals_are_explained_only_by_the_scenario() {
        let early = refusal("not valid before 1800000090 (now 1800000000, 90 s early)");
        assert_eq!(
            classify(&early, false, true),
            ("invalid_client", Expected::Yes)
        );
        // Skewed, but refused for another reason: unexpected.
        let replay = refusal("request cti 00 was already used (replay)");
        assert_eq!(
            classify(&replay, false, true),
            ("invalid_client", Expected::No)
        );
        // Not skewed: a time refusal is unexpected too.
        assert_eq!(classify(&early, false, false).1, Expected::No);
        // Revoked on purpose: anything goes.
        assert_eq!(classify(&replay, true, false).1, Expected::Yes);
        let limited = AgentError::RetryLater {
            retry_after_secs: 3,
            reason: "rate limited".into(),
        };
        assert_eq!(
            classify(&limited, false, false),
            ("rate_limited", Expected::No)
        );
    }
}
