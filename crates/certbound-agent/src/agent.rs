//! The agent daemon: a source feeding the spool, and one task that keeps the
//! MQTT connection, the tokens and the sending of the spool going.
//!
//! ```text
//! source ──> Intake::submit ──> spool (fsync'd file, seq) ──> "ok <seq>"
//!                                   │
//!              runner: connect ─ tokens due? ─ seal with the current token
//!                                   │             (at send time, not read time)
//!                                   └──> publish QoS 1 ──PUBACK──> delete file
//! ```
//!
//! Started with [`start`]; stopped by [`RunningAgent::stop`] (SIGTERM,
//! Ctrl-C in the binary) or by the end of stdin, after sending what can be
//! sent within `spool.flush_on_exit_secs`.
//!
//! The same task renews the device certificate (`[renewal]`): when due, it
//! stops handing out telemetry until what is in flight is settled, renews
//! with a new key (over the MQTT connection or CoAP), writes the new pair as
//! `.next`, reconnects with it and requests every token again (they are
//! bound to the key); only then does the new pair replace the old one on
//! disk. Any failure reconnects with the old pair and retries with backoff.
//! Telemetry waits in the spool meanwhile and is sealed with the new token
//! and key afterwards.

mod runner;

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::config::AgentConfig;
use crate::credentials::CredentialFiles;
use crate::error::AgentError;
use crate::identity::DeviceIdentity;
use crate::intake::Intake;
use crate::mqtt::{ConnectOptions, MqttConnectSettings};
use crate::reenroll::RenewedIdentity;
use crate::renewal::RenewalSchedule;
use crate::source::OpenSource;
use crate::spool::Spool;
use crate::tokens::TokenManager;

/// What the agent is doing (watch it with [`RunningAgent::status`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AgentStatus {
    /// Connected to the MQTT server (and subscribed).
    pub connected: bool,
    /// Messages in the spool (accepted, not yet acknowledged by the server).
    pub spooled: usize,
    /// Messages acknowledged by the server (PUBACK) since start.
    pub acked: u64,
    /// Highest sequence number acknowledged since start.
    pub last_acked_seq: Option<u64>,
    /// Messages refused at intake (spool full, too large) since start.
    pub refused: u64,
    /// Token requests made since start.
    pub token_requests: u64,
    /// Token requests that failed since start.
    pub token_failures: u64,
    /// `cti` of the token currently attached to telemetry.
    pub telemetry_cti: Option<Vec<u8>>,
    /// A shutdown was requested; the spool is being flushed.
    pub stopping: bool,
    /// SHA-256 thumbprint (lowercase hex) of the certificate in use.
    pub cert_thumbprint: Option<String>,
    /// Serial (lowercase hex) of the certificate in use.
    pub cert_serial: Option<String>,
    /// notAfter of the certificate in use, Unix seconds.
    pub cert_not_after: Option<u64>,
    /// When its renewal is due (agent clock, Unix seconds); `None` with
    /// renewal disabled.
    pub cert_renew_at: Option<u64>,
    /// Certificate renewals completed since start.
    pub cert_renewals: u64,
    /// Certificate renewal attempts that failed since start.
    pub cert_renewal_failures: u64,
    /// The certificate expired beyond `renewal.expired_grace_days`: the
    /// device must be re-provisioned.
    pub reprovision_needed: bool,
    /// The MQTT session is authenticated with an access token (RFC 9431).
    pub mqtt_session_token: bool,
    /// Session tokens renewed in-session (MQTT 5 AUTH): each is a reconnect
    /// (TCP, TLS handshake, CONNECT, SUBSCRIBE) avoided.
    pub reconnects_avoided: u64,
    /// Re-authentications the server refused (the session was then
    /// re-established with the new token).
    pub reauth_failures: u64,
}

/// A started agent.
#[derive(Debug)]
pub struct RunningAgent {
    intake: Intake,
    source_addr: Option<SocketAddr>,
    status: watch::Receiver<AgentStatus>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<Result<(), AgentError>>>,
    source: Option<JoinHandle<()>>,
}

impl Drop for RunningAgent {
    /// A dropped agent stops gracefully in the background.
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

impl RunningAgent {
    /// Submits messages directly (in-process sources, tests).
    pub fn intake(&self) -> &Intake {
        &self.intake
    }

    /// The bound address of a `udp:` source.
    pub fn source_addr(&self) -> Option<SocketAddr> {
        self.source_addr
    }

    /// Watches the agent's status.
    pub fn status(&self) -> watch::Receiver<AgentStatus> {
        self.status.clone()
    }

    /// Asks the agent to stop: input ends, the spool is flushed for up to
    /// `spool.flush_on_exit_secs`, then the connection is closed.
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// Waits until the agent has stopped (after [`RunningAgent::stop`] or
    /// the end of stdin).
    pub async fn wait(mut self) -> Result<(), AgentError> {
        let result = match self.task.take() {
            Some(task) => match task.await {
                Ok(r) => r,
                Err(e) => Err(AgentError::Mqtt(format!("the agent task failed: {e}"))),
            },
            None => Ok(()),
        };
        if let Some(source) = self.source.take() {
            source.abort();
            let _ = source.await;
        }
        result
    }

    /// [`RunningAgent::stop`], then [`RunningAgent::wait`].
    pub async fn shutdown(self) -> Result<(), AgentError> {
        self.stop();
        self.wait().await
    }
}

/// The status fields describing the certificate in use.
pub(crate) fn cert_status(s: &mut AgentStatus, identity: &DeviceIdentity) {
    let leaf = identity.chain().first();
    let summary = leaf.and_then(|l| certbound_pki::cert_summary(l).ok());
    s.cert_thumbprint = Some(
        identity
            .thumbprint()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    );
    s.cert_serial = summary.as_ref().map(|x| x.serial_hex.clone());
    s.cert_not_after = summary.as_ref().map(|x| x.not_after);
}

fn read(path: &std::path::Path) -> Result<String, AgentError> {
    std::fs::read_to_string(path).map_err(|source| AgentError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Loads the identity, opens the spool and the source, and starts the agent.
/// Errors here are configuration problems (files, sockets); everything
/// after start (server down, broker refusing) is retried and logged.
pub async fn start(
    config: &AgentConfig,
    clock: Arc<dyn Clock>,
) -> Result<RunningAgent, AgentError> {
    // Repair whatever an interrupted renewal left, then load the pair in use.
    let files = CredentialFiles::new(&config.device.key, &config.device.cert);
    let recovered = {
        let (files, now) = (files.clone(), clock.now_secs());
        tokio::task::spawn_blocking(move || files.recover(now))
            .await
            .map_err(|e| AgentError::Credentials(format!("recovering the credentials: {e}")))??
    };
    for repair in &recovered.repairs {
        tracing::warn!(key = %config.device.key.display(), "credentials: {repair}");
    }
    let identity =
        DeviceIdentity::from_pem(&recovered.current.key_pem, &recovered.current.cert_pem)?;
    let staged = match &recovered.staged {
        Some(p) => Some(RenewedIdentity {
            key_pem: zeroize::Zeroizing::new(p.key_pem.clone()),
            chain_pem: p.cert_pem.clone(),
            identity: DeviceIdentity::from_pem(&p.key_pem, &p.cert_pem)?,
        }),
        None => None,
    };
    let settings = MqttConnectSettings {
        host: config.mqtt.url.host.clone(),
        port: config.mqtt.url.port,
        ca_pem: read(&config.device.ca)?,
        cert_pem: identity.cert_pem().to_string(),
        key_pem: identity.key_pem().to_string(),
        timeout: Duration::from_secs(config.mqtt.timeout_secs),
    };
    let spool = {
        let (dir, max, now) = (
            config.spool.dir.clone(),
            config.spool.max_messages,
            clock.now_ms(),
        );
        tokio::task::spawn_blocking(move || Spool::open(&dir, max, now))
            .await
            .map_err(|e| AgentError::Mqtt(format!("opening the spool: {e}")))??
    };
    let spooled = spool.len();
    let spool = Arc::new(Mutex::new(spool));
    let source = OpenSource::open(&config.telemetry.source)?;
    let source_addr = source.local_addr();

    let wake = Arc::new(Notify::new());
    let refused = Arc::new(AtomicU64::new(0));
    let intake = Intake::new(
        spool.clone(),
        clock.clone(),
        wake.clone(),
        config.telemetry.max_message_bytes,
        refused.clone(),
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let renewal = config.renewal.enabled.then(|| runner::Renewal {
        schedule: RenewalSchedule::new(
            config.renewal_policy(),
            identity.validity(),
            rand::random(),
        ),
        transport: config.renewal.transport,
        coap_url: config.renewal.coap_url.clone(),
        warned: None,
    });
    let mut initial = AgentStatus {
        spooled,
        cert_renew_at: renewal.as_ref().map(|r| r.schedule.renew_at()),
        ..AgentStatus::default()
    };
    cert_status(&mut initial, &identity);
    let (status_tx, status_rx) = watch::channel(initial);
    tracing::info!(
        device = identity.device_id(),
        mqtt = %config.mqtt.url,
        source = %config.telemetry.source,
        spool = %config.spool.dir.display(),
        spooled,
        "certbound-agent starting"
    );

    let source_stop = stop_tx.clone();
    let mut source_stopped = stop_tx.subscribe();
    let source_intake = intake.clone();
    let source_task = tokio::spawn(async move {
        tokio::select! {
            // Only stdin ends by itself: its EOF stops the agent.
            () = source.run(source_intake) => {}
            // No new input once stopping.
            _ = source_stopped.wait_for(|stop| *stop) => {}
        }
        source_stop.send_replace(true);
    });
    let backoff = config.backoff();
    let runner = runner::Runner {
        identity,
        settings,
        connect: ConnectOptions {
            reconnect: backoff,
            keep_alive: Duration::from_secs(config.mqtt.keep_alive_secs),
            protocol: match config.mqtt.protocol {
                crate::config::MqttProtocol::V5 => certbound_mqtt::client::Protocol::V5,
                crate::config::MqttProtocol::V311 => certbound_mqtt::client::Protocol::V311,
            },
        },
        session_audience: config.mqtt.session_audience.clone(),
        backoff,
        broker_id: config.broker.issuer_id.clone(),
        tokens: TokenManager::new(
            config.token_specs(),
            backoff,
            config.retry.renew_margin_secs,
        ),
        token_specs: config.token_specs(),
        renew_margin: config.retry.renew_margin_secs,
        files,
        renewal,
        staged,
        telemetry_audience: config.telemetry_audience().to_string(),
        spool,
        wake,
        clock,
        window: config.mqtt.max_inflight,
        grace: Duration::from_secs(config.spool.flush_on_exit_secs),
        status: status_tx,
        refused,
        stop: stop_rx,
    };
    let task = tokio::spawn(runner.run());
    Ok(RunningAgent {
        intake,
        source_addr,
        status: status_rx,
        stop: stop_tx,
        task: Some(task),
        source: Some(source_task),
    })
}
