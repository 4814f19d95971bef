//! The run loop: connect (with backoff), keep the tokens fresh, send the
//! spool in order with up to `window` publishes awaiting PUBACK, delete what
//! the server acknowledged, start again from the oldest unacknowledged
//! message after any failure; renew the certificate when due (see
//! [`Runner::renew_certificate`]).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use certbound_proto::schedule::Backoff;
use certbound_proto::telemetry::{TelemetryPayload, seal};
use certbound_proto::topics::TopicKind;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::AgentStatus;
use crate::clock::Clock;
use crate::config::{CoapUrl, RenewalTransport};
use crate::credentials::CredentialFiles;
use crate::error::AgentError;
use crate::identity::DeviceIdentity;
use crate::intake::{SharedSpool, lock, with_spool};
use crate::mqtt::{ConnectOptions, LinkState, MqttConnectSettings, MqttDevice, PendingAck};
use crate::reenroll::RenewedIdentity;
use crate::renewal::RenewalSchedule;
use crate::spool::SpoolError;
use crate::token::{TokenRequestParams, accept_token};
use crate::tokens::{ForSend, HeldToken, TokenManager, TokenSpec};

mod renew;

/// A token shorter-lived than this is treated as a failed request (it would
/// need renewing before every send).
const MIN_TOKEN_LIFETIME: u64 = 5;
/// Longest sleep between two looks at the clock (an injected or stepped
/// clock may move faster than the timers).
const MAX_IDLE: Duration = Duration::from_secs(5);

/// Everything the run loop owns.
pub(super) struct Runner {
    pub identity: DeviceIdentity,
    pub settings: MqttConnectSettings,
    pub connect: ConnectOptions,
    pub backoff: Backoff,
    pub broker_id: String,
    pub tokens: TokenManager,
    /// What `tokens` holds (a renewed key needs new tokens for all of it).
    pub token_specs: Vec<TokenSpec>,
    pub renew_margin: u64,
    pub files: CredentialFiles,
    /// `None` with renewal disabled.
    pub renewal: Option<Renewal>,
    /// A renewed pair found staged at start, to be tried first.
    pub staged: Option<RenewedIdentity>,
    pub telemetry_audience: String,
    /// The audience of the token that authenticates the MQTT session (RFC 9431).
    pub session_audience: Option<String>,
    pub spool: SharedSpool,
    pub wake: Arc<Notify>,
    pub clock: Arc<dyn Clock>,
    pub window: usize,
    pub grace: Duration,
    pub status: watch::Sender<AgentStatus>,
    pub refused: Arc<AtomicU64>,
    pub stop: watch::Receiver<bool>,
}

/// Certificate renewal settings and state.
pub(super) struct Renewal {
    pub schedule: RenewalSchedule,
    pub transport: RenewalTransport,
    pub coap_url: Option<CoapUrl>,
    /// The last condition warned about (so it is logged once, not every loop).
    pub warned: Option<renew::Warned>,
}

/// How a due renewal is carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Mqtt,
    Coap,
}

impl Via {
    fn name(self) -> &'static str {
        match self {
            Via::Mqtt => "mqtt",
            Via::Coap => "coap",
        }
    }
}

/// A publish awaiting its PUBACK.
struct Flight {
    seq: u64,
    ack: PendingAck,
    sent: Instant,
}

/// Connection state of the loop.
#[derive(Default)]
struct Link {
    device: Option<MqttDevice>,
    watch: Option<watch::Receiver<LinkState>>,
    /// `cti` of the access token the session authenticated with last.
    session_cti: Option<Vec<u8>>,
    failures: u32,
    next_attempt: Option<Instant>,
}

impl Runner {
    pub(super) async fn run(mut self) -> Result<(), AgentError> {
        let mut link = Link::default();
        let mut inflight: VecDeque<Flight> = VecDeque::new();
        // Highest seq handed to the connection since the last failure.
        let mut cursor: Option<u64> = None;
        let mut deadline: Option<Instant> = None;
        loop {
            // A dropped handle (sender gone) also means stop.
            if deadline.is_none() && (*self.stop.borrow() || self.stop.has_changed().is_err()) {
                deadline = Some(Instant::now() + self.grace);
                self.status.send_modify(|s| s.stopping = true);
                tracing::info!(grace = ?self.grace, "stopping: sending what is spooled");
            }
            let spooled = lock(&self.spool).len();
            if let Some(d) = deadline
                && ((spooled == 0 && inflight.is_empty()) || Instant::now() >= d)
            {
                break;
            }
            self.ensure_connected(&mut link, deadline).await;
            let connected = link.device.as_ref().is_some_and(MqttDevice::is_connected);
            self.publish_status(connected);
            if deadline.is_none() {
                self.renew_certificate(&mut link, inflight.is_empty()).await;
            }
            // A renewal waiting for the publishes in flight holds new ones back.
            let hold = deadline.is_none() && self.renewal_waiting(&link);
            if let Some(device) = link.device.as_ref().filter(|d| d.is_connected()) {
                self.renew_due(device).await;
            }
            self.refresh_session_token(&mut link).await;
            if let Some(device) = link.device.as_ref().filter(|d| d.is_connected())
                && !hold
            {
                self.fill(device, &mut inflight, &mut cursor).await;
            }

            let wake_at = self.next_wake(&link, deadline);
            let ack_timeout = self.settings.timeout * 2;
            tokio::select! {
                first = front_ack(&mut inflight, ack_timeout) => {
                    self.settle(first, &mut inflight, &mut cursor).await;
                }
                () = self.wake.notified() => {}
                () = link_changed(&mut link.watch) => {}
                _ = self.stop.changed(), if deadline.is_none() => {}
                () = tokio::time::sleep_until(wake_at) => {}
            }
        }
        let left = lock(&self.spool).len();
        if left > 0 {
            tracing::warn!(
                spooled = left,
                "stopped with unsent telemetry; it is kept and sent at the next start"
            );
        } else {
            tracing::info!("stopped; everything was sent");
        }
        if let Some(device) = link.device.take() {
            device.disconnect().await;
        }
        self.publish_status(false);
        Ok(())
    }

    /// Makes a first connection (the device handle reconnects by itself
    /// afterwards), retrying with backoff.
    async fn ensure_connected(&mut self, link: &mut Link, deadline: Option<Instant>) {
        if link
            .device
            .as_ref()
            .is_some_and(|d| d.link().borrow().closed)
        {
            link.device = None;
            link.watch = None;
        }
        if link.device.is_some() || link.next_attempt.is_some_and(|t| Instant::now() < t) {
            return;
        }
        let mut limit = self.settings.timeout;
        if let Some(d) = deadline {
            limit = limit.min(d.saturating_duration_since(Instant::now()));
        }
        let session = self.session_token();
        let attempt = MqttDevice::connect_authenticated(
            &self.identity,
            &self.settings,
            self.connect,
            session.as_ref().map(|(token, _)| token.clone()),
        );
        match tokio::time::timeout(limit, attempt).await {
            Ok(Ok(device)) => {
                tracing::info!(
                    server = %format!("{}:{}", self.settings.host, self.settings.port),
                    session_token = session.is_some(),
                    "connected to the MQTT server"
                );
                link.session_cti = session.map(|(_, cti)| cti);
                self.status
                    .send_modify(|s| s.mqtt_session_token = link.session_cti.is_some());
                link.watch = Some(device.link());
                link.device = Some(device);
                link.failures = 0;
                link.next_attempt = None;
            }
            outcome => {
                let error = match outcome {
                    Ok(Err(e)) => e.to_string(),
                    _ => format!("no connection within {limit:?}"),
                };
                let delay = self.backoff.delay_ms(link.failures, rand::random());
                tracing::warn!(%error, retry_in_ms = delay, "cannot connect to the MQTT server");
                link.failures = link.failures.saturating_add(1);
                link.next_attempt = Some(Instant::now() + Duration::from_millis(delay));
            }
        }
    }

    /// The usable token (and its `cti`) of `[mqtt] session_audience`.
    fn session_token(&self) -> Option<(Vec<u8>, Vec<u8>)> {
        let audience = self.session_audience.as_deref()?;
        let held = self.tokens.held(audience)?;
        held.usable(self.clock.now_secs())
            .then(|| (held.token.clone(), held.cti.clone()))
    }

    /// Keeps the MQTT session authenticated with the current session token
    /// (RFC 9431): a renewed token is handed over in-session with AUTH (a
    /// reconnect avoided); a session that connected before the agent had
    /// one is re-established with it once.
    async fn refresh_session_token(&mut self, link: &mut Link) {
        let Some((token, cti)) = self.session_token() else {
            return;
        };
        let Some(device) = link.device.as_ref().filter(|d| d.is_connected()) else {
            return;
        };
        if link.session_cti.as_ref() == Some(&cti) {
            return;
        }
        if !device.is_authenticated() {
            tracing::info!("reconnecting to authenticate the MQTT session with its access token");
            if let Some(device) = link.device.take() {
                device.disconnect().await;
            }
            link.watch = None;
            link.next_attempt = None;
            return;
        }
        match device.reauthenticate(token).await {
            Ok(()) => {
                self.status.send_modify(|s| s.reconnects_avoided += 1);
                tracing::info!(
                    cti = %hex(&cti),
                    reconnects_avoided = self.status.borrow().reconnects_avoided,
                    "MQTT session re-authenticated in place with a fresh token"
                );
            }
            Err(e) => {
                self.status.send_modify(|s| s.reauth_failures += 1);
                tracing::warn!(error = %e, "MQTT re-authentication refused; the session is re-established with the new token");
            }
        }
        link.session_cti = Some(cti);
    }

    /// Requests the tokens that are due (missing, past their renewal point,
    /// or expiring within the margin) and not backing off.
    async fn renew_due(&mut self, device: &MqttDevice) {
        for i in self.tokens.due(self.clock.now_ms()) {
            self.request(device, i).await;
        }
    }

    async fn request(&mut self, device: &MqttDevice, i: usize) {
        obtain_token(
            &self.broker_id,
            &*self.clock,
            &self.status,
            device,
            &self.identity,
            &mut self.tokens,
            i,
        )
        .await;
    }

    /// Seals and publishes spooled messages in order while the window has room.
    async fn fill(
        &mut self,
        device: &MqttDevice,
        inflight: &mut VecDeque<Flight>,
        cursor: &mut Option<u64>,
    ) {
        let mut renewed = false;
        while inflight.len() < self.window {
            let Some(seq) = lock(&self.spool).next_after(*cursor) else {
                return;
            };
            let token = match self
                .tokens
                .for_send(&self.telemetry_audience, self.clock.now_ms())
            {
                ForSend::Ready(t) => t.clone(),
                ForSend::Renew if !renewed => {
                    renewed = true;
                    if let Some(i) = self.tokens.index_of(&self.telemetry_audience) {
                        self.request(device, i).await;
                    }
                    continue;
                }
                ForSend::Renew | ForSend::Wait { .. } | ForSend::Unknown => return,
            };
            let message = match with_spool(&self.spool, move |s| s.load(seq)).await {
                Ok(Ok(m)) => m,
                Ok(Err(e @ SpoolError::Corrupt { .. })) => {
                    tracing::error!(seq, error = %e, "skipping an unreadable spool file (kept as *.corrupt)");
                    continue;
                }
                Ok(Err(e)) => {
                    tracing::error!(seq, error = %e, "cannot read the spool; retrying later");
                    return;
                }
                Err(e) => {
                    tracing::error!(error = %e, "spool task failed");
                    return;
                }
            };
            let envelope = match self.seal(&token, message.seq, message.timestamp_ms, message.data)
            {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!(seq, error = %e, "cannot seal telemetry");
                    return;
                }
            };
            match device.publish_tracked(TopicKind::Telemetry, envelope).await {
                Ok(ack) => {
                    tracing::debug!(seq, "telemetry published");
                    inflight.push_back(Flight {
                        seq,
                        ack,
                        sent: Instant::now(),
                    });
                    *cursor = Some(seq);
                }
                Err(e) => {
                    tracing::debug!(seq, error = %e, "publish not handed over; retrying later");
                    return;
                }
            }
        }
    }

    /// Builds the envelope with the token current now.
    fn seal(
        &self,
        token: &HeldToken,
        seq: u64,
        timestamp_ms: u64,
        data: Vec<u8>,
    ) -> Result<Vec<u8>, AgentError> {
        let payload = TelemetryPayload {
            seq,
            timestamp_ms,
            data,
            token_cti: token.cti.clone(),
        };
        Ok(seal(&token.token, &payload, self.identity.signer())?)
    }

    /// Handles the outcome of the oldest publish and of every later one
    /// already known: acknowledged ones leave the spool; after a failure
    /// everything unacknowledged is sent again, oldest first.
    async fn settle(
        &mut self,
        first: Result<(), AgentError>,
        inflight: &mut VecDeque<Flight>,
        cursor: &mut Option<u64>,
    ) {
        let mut acked = Vec::new();
        let mut failure = None;
        let mut outcome = Some(first);
        while let Some(result) = outcome.take() {
            let Some(flight) = inflight.pop_front() else {
                break;
            };
            match result {
                Ok(()) => acked.push(flight.seq),
                Err(e) => {
                    failure = Some((flight.seq, e));
                    break;
                }
            }
            outcome = inflight.front_mut().and_then(|f| f.ack.try_result());
        }
        if let Some((seq, error)) = failure {
            // Those acknowledged before the failure was seen still count.
            for mut flight in inflight.drain(..) {
                if let Some(Ok(())) = flight.ack.try_result() {
                    acked.push(flight.seq);
                }
            }
            *cursor = None;
            tracing::info!(seq, %error, "telemetry not acknowledged; will send again");
        }
        if acked.is_empty() {
            return;
        }
        let last = acked.iter().max().copied();
        let count = acked.len() as u64;
        let removed = with_spool(&self.spool, move |s| {
            acked.iter().try_for_each(|seq| s.remove(*seq))
        })
        .await;
        match removed {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot remove acknowledged telemetry (it will be sent again)")
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot remove acknowledged telemetry (it will be sent again)")
            }
        }
        self.status.send_modify(|s| {
            s.acked += count;
            s.last_acked_seq = s.last_acked_seq.max(last);
        });
    }

    fn publish_status(&self, connected: bool) {
        let spooled = lock(&self.spool).len();
        let cti = self
            .tokens
            .held(&self.telemetry_audience)
            .map(|t| t.cti.clone());
        let refused = self.refused.load(Ordering::Relaxed);
        self.status.send_if_modified(|s| {
            let changed = s.connected != connected
                || s.spooled != spooled
                || s.telemetry_cti != cti
                || s.refused != refused;
            s.connected = connected;
            s.spooled = spooled;
            s.telemetry_cti = cti;
            s.refused = refused;
            changed
        });
    }

    /// When to look again without any event: the next connection attempt,
    /// token renewal (while connected), or the shutdown deadline, and at
    /// least every [`MAX_IDLE`].
    fn next_wake(&self, link: &Link, deadline: Option<Instant>) -> Instant {
        let now = Instant::now();
        let mut at = now + MAX_IDLE;
        if link.device.is_none()
            && let Some(t) = link.next_attempt
        {
            at = at.min(t);
        }
        // Token requests need the connection; its coming back wakes the loop.
        let connected = link.device.as_ref().is_some_and(MqttDevice::is_connected);
        if connected && let Some(due) = self.tokens.next_due_ms() {
            let wait = due.saturating_sub(self.clock.now_ms());
            at = at.min(now + Duration::from_millis(wait));
        }
        // A due renewal is handled in the loop body, like a due token.
        if let Some(due) = self.renewal_wake_ms() {
            let wait = due.saturating_sub(self.clock.now_ms());
            at = at.min(now + Duration::from_millis(wait));
        }
        if let Some(d) = deadline {
            at = at.min(d);
        }
        // Never spin: a due token is handled in the loop body, not here.
        at.max(now + Duration::from_millis(10))
    }
}

/// The outcome of the oldest publish in flight (pending forever when none).
async fn front_ack(inflight: &mut VecDeque<Flight>, timeout: Duration) -> Result<(), AgentError> {
    let Some(flight) = inflight.front_mut() else {
        return std::future::pending().await;
    };
    match tokio::time::timeout_at(flight.sent + timeout, flight.ack.receiver()).await {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(e))) => Err(AgentError::Mqtt(e.to_string())),
        Ok(Err(_)) => Err(AgentError::Mqtt("the MQTT connection closed".into())),
        Err(_) => Err(AgentError::Mqtt(format!("no PUBACK within {timeout:?}"))),
    }
}

/// Resolves when the connection state changes (pending forever without one).
async fn link_changed(watch: &mut Option<watch::Receiver<LinkState>>) {
    let Some(w) = watch else {
        return std::future::pending().await;
    };
    if w.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Requests the token of slot `i` of `tokens` with `identity` over `device`;
/// true when one was obtained.
async fn obtain_token(
    broker_id: &str,
    clock: &dyn Clock,
    status: &watch::Sender<AgentStatus>,
    device: &MqttDevice,
    identity: &DeviceIdentity,
    tokens: &mut TokenManager,
    i: usize,
) -> bool {
    let Some(spec) = tokens.spec(i).cloned() else {
        return false;
    };
    let params = TokenRequestParams {
        broker_id: broker_id.to_string(),
        audience: spec.audience.clone(),
        scope: spec.scope.clone(),
        send_chain: false,
    };
    status.send_modify(|s| s.token_requests += 1);
    let outcome = device.request_token(identity, &params).await.and_then(|t| {
        // The schedule comes from the token's own exp, not the answer's
        // expires_in; a token for another key or audience is refused.
        let (t, facts) = accept_token(t, identity, &spec.audience, clock.now_secs())?;
        if facts.lifetime < MIN_TOKEN_LIFETIME {
            return Err(AgentError::UnexpectedResponse(format!(
                "a token valid for only {} s",
                facts.lifetime
            )));
        }
        Ok((t, facts.cti))
    });
    let now = clock.now_ms();
    match outcome {
        Ok((token, cti)) => {
            tracing::info!(
                audience = %spec.audience,
                lifetime = token.expires_in,
                cti = %hex(&cti),
                "token obtained"
            );
            tokens.on_success(
                i,
                token.access_token,
                cti,
                token.expires_in,
                now,
                rand::random(),
            );
            true
        }
        Err(e) => {
            let delay = tokens.on_failure(i, now, rand::random());
            status.send_modify(|s| s.token_failures += 1);
            tracing::warn!(
                audience = %spec.audience,
                error = %e,
                retry_in_ms = delay,
                "token request failed"
            );
            false
        }
    }
}
