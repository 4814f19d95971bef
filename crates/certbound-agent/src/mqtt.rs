//! Obtaining tokens and publishing telemetry over MQTT with mTLS: the device
//! publishes its signed request on `cb/v1/{device}/token/req` and waits for
//! the answer on `cb/v1/{device}/token/res`; certificate renewal does the
//! same on `cert/req` / `cert/res` ([`MqttDevice::request_cert`]); telemetry
//! goes to `cb/v1/{device}/telemetry` with QoS 1.
//!
//! MQTT 3.1.1 carries no correlation data, so token requests from one
//! connection are made one at a time (and so are certificate requests).
//!
//! After [`MqttDevice::connect`] the connection is kept up in the background:
//! a lost connection is re-established with exponential backoff and jitter
//! ([`ConnectOptions::reconnect`]) and the response topic is subscribed
//! again. [`MqttDevice::link`] tells when it is usable.
//! [`MqttDevice::publish_confirmed`] resolves only when the server's PUBACK
//! arrives and fails when the connection is lost first (the session is
//! clean: nothing is retransmitted, the caller sends again).

use std::time::Duration;

use certbound_coap::{ResponseType, content_format};
use certbound_mqtt::MqttError;
use certbound_mqtt::client::{
    Authentication, ClientOptions, Delivery, Event, Message, MqttClient, MqttEvents, Protocol, QoS,
};
use certbound_proto::schedule::Backoff;
use certbound_proto::topics::{self, TopicKind};
use rand::RngCore;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::error::AgentError;
use crate::identity::DeviceIdentity;
use crate::token::{
    ObtainedToken, TokenRequestParams, build_token_request, decode_token_response, unix_now,
};

/// Where the MQTT server is and how to authenticate.
#[derive(Clone)]
pub struct MqttConnectSettings {
    /// Server host (IP or name; also the TLS server name).
    pub host: String,
    /// Server port.
    pub port: u16,
    /// CA bundle (PEM) that signed the server certificate.
    pub ca_pem: String,
    /// Device certificate chain (PEM, leaf first).
    pub cert_pem: String,
    /// Device key (PKCS#8 PEM).
    pub key_pem: String,
    /// How long to wait for the connection, the subscription and each answer.
    pub timeout: Duration,
}

impl std::fmt::Debug for MqttConnectSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttConnectSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Connection behaviour beyond where and who ([`MqttDevice::connect_with`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectOptions {
    /// Waits between reconnection attempts after the connection is lost.
    pub reconnect: Backoff,
    /// MQTT keep-alive interval.
    pub keep_alive: Duration,
    /// MQTT 5 (default: answers on a response topic with correlation data,
    /// access tokens in the session) or 3.1.1.
    pub protocol: Protocol,
}

impl Default for ConnectOptions {
    /// [`Backoff::default`] (500 ms doubling to 60 s), a 30 s keep-alive,
    /// MQTT 5.
    fn default() -> Self {
        Self {
            reconnect: Backoff::default(),
            keep_alive: Duration::from_secs(30),
            protocol: Protocol::V5,
        }
    }
}

/// The state of the background connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkState {
    /// Connected and subscribed to the response topic.
    pub connected: bool,
    /// How many times a connection became usable (1 after the first connect).
    pub sessions: u64,
    /// Closed for good ([`MqttDevice::disconnect`]).
    pub closed: bool,
}

/// A publish waiting for its PUBACK ([`MqttDevice::publish_tracked`]).
#[derive(Debug)]
pub struct PendingAck {
    delivery: Delivery,
}

impl PendingAck {
    /// Waits for the PUBACK; fails when the connection was lost first.
    pub async fn wait(self) -> Result<(), AgentError> {
        self.delivery.wait().await.map_err(mqtt_error)
    }

    /// The outcome if it is already known (`None`: still waiting).
    pub fn try_result(&mut self) -> Option<Result<(), AgentError>> {
        self.delivery.try_result().map(|r| r.map_err(mqtt_error))
    }

    /// The receiver, for use in `select!`.
    pub fn receiver(&mut self) -> &mut oneshot::Receiver<Result<(), MqttError>> {
        self.delivery.receiver()
    }
}

fn mqtt_error(e: MqttError) -> AgentError {
    AgentError::Mqtt(e.to_string())
}

/// A device connected to an MQTT server.
pub struct MqttDevice {
    device_id: String,
    client: MqttClient,
    protocol: Protocol,
    /// The session authenticates with an access token (RFC 9431).
    authenticated: bool,
    responses: tokio::sync::Mutex<mpsc::Receiver<Answer>>,
    cert_responses: tokio::sync::Mutex<mpsc::Receiver<Vec<u8>>>,
    timeout: Duration,
    link: watch::Receiver<LinkState>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for MqttDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttDevice")
            .field("device_id", &self.device_id)
            .field("link", &*self.link.borrow())
            .finish_non_exhaustive()
    }
}

impl Drop for MqttDevice {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MqttDevice {
    /// Connects with the device certificate and subscribes to its response
    /// topic; returns once the subscription is acknowledged.
    pub async fn connect(
        identity: &DeviceIdentity,
        settings: &MqttConnectSettings,
    ) -> Result<Self, AgentError> {
        Self::connect_with(identity, settings, ConnectOptions::default()).await
    }

    /// [`MqttDevice::connect`] with explicit reconnection, keep-alive and
    /// protocol.
    pub async fn connect_with(
        identity: &DeviceIdentity,
        settings: &MqttConnectSettings,
        options: ConnectOptions,
    ) -> Result<Self, AgentError> {
        Self::connect_authenticated(identity, settings, options, None).await
    }

    /// [`MqttDevice::connect_with`], presenting `token` (an access token for
    /// the MQTT server's audience, bound to this device's key) with MQTT 5
    /// Authentication Method `ace` (RFC 9431): the session gets the topic
    /// rights of its scope and is kept alive past the token's expiry by
    /// [`MqttDevice::reauthenticate`]. Reconnects present the latest token.
    pub async fn connect_authenticated(
        identity: &DeviceIdentity,
        settings: &MqttConnectSettings,
        options: ConnectOptions,
        token: Option<Vec<u8>>,
    ) -> Result<Self, AgentError> {
        let tls = certbound_mqtt::client_tls::client_tls_config(
            &settings.ca_pem,
            &settings.cert_pem,
            &settings.key_pem,
        )
        .map_err(|e| AgentError::Credentials(e.to_string()))?;
        let device_id = identity.device_id().to_string();
        let response_topic = topics::topic(&device_id, TopicKind::TokenResponse);
        let cert_topic = topics::topic(&device_id, TopicKind::CertResponse);
        let client_options =
            ClientOptions::new(device_id.clone(), settings.host.clone(), settings.port)
                .tls(tls)
                .keep_alive(options.keep_alive)
                .connect_timeout(settings.timeout)
                .queue(64)
                .subscribe(response_topic.clone(), QoS::AtLeastOnce)
                .subscribe(cert_topic.clone(), QoS::AtLeastOnce)
                .reconnect(options.reconnect)
                .protocol(options.protocol);
        let authenticated = token.is_some() && options.protocol == Protocol::V5;
        if options.protocol != Protocol::V5 && token.is_some() {
            return Err(AgentError::Mqtt(
                "access tokens in the MQTT session need MQTT 5".into(),
            ));
        }
        let client_options = match token {
            Some(token) => client_options.authenticate(Authentication::ace(token)),
            None => client_options,
        };
        let (client, events) = MqttClient::connect(client_options).await.map_err(|e| {
            AgentError::Mqtt(format!(
                "connecting to {}:{}: {e}",
                settings.host, settings.port
            ))
        })?;

        let (tx, rx) = mpsc::channel(16);
        let (cert_tx, cert_rx) = mpsc::channel(4);
        let (link_tx, link) = watch::channel(LinkState {
            connected: true,
            sessions: 1,
            closed: false,
        });
        let task = tokio::spawn(pump(Pump {
            events,
            response_topic,
            cert_topic,
            responses: tx,
            cert_responses: cert_tx,
            link: link_tx,
        }));
        Ok(Self {
            device_id,
            client,
            protocol: options.protocol,
            authenticated,
            responses: tokio::sync::Mutex::new(rx),
            cert_responses: tokio::sync::Mutex::new(cert_rx),
            timeout: settings.timeout,
            link,
            task,
        })
    }

    /// The device id this connection is for.
    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// Watches the connection state.
    pub fn link(&self) -> watch::Receiver<LinkState> {
        self.link.clone()
    }

    /// True while connected and subscribed.
    pub fn is_connected(&self) -> bool {
        self.link.borrow().connected
    }

    /// True when the session authenticated with an access token (RFC 9431).
    pub fn is_authenticated(&self) -> bool {
        self.authenticated
    }

    /// Replaces the session's access token in place (MQTT 5 AUTH,
    /// re-authentication): no reconnect, no new TLS handshake. Later
    /// reconnects present it too.
    ///
    /// # Errors
    /// [`AgentError::Mqtt`] when the session did not authenticate with a
    /// token, or the server refused the new one (it then ends the session;
    /// the connection is re-established with the new token).
    pub async fn reauthenticate(&self, token: Vec<u8>) -> Result<(), AgentError> {
        if !self.authenticated {
            return Err(AgentError::Mqtt(
                "the MQTT session did not authenticate with an access token".into(),
            ));
        }
        tokio::time::timeout(self.timeout, self.client.reauthenticate(token))
            .await
            .map_err(|_| AgentError::Mqtt(format!("no AUTH answer within {:?}", self.timeout)))?
            .map_err(mqtt_error)
    }

    /// Requests a token and waits for the answer.
    pub async fn request_token(
        &self,
        identity: &DeviceIdentity,
        params: &TokenRequestParams,
    ) -> Result<ObtainedToken, AgentError> {
        self.request_token_at(identity, params, unix_now()).await
    }

    /// [`MqttDevice::request_token`] with the request's `iat` taken from
    /// `now` (Unix seconds): for devices whose clock is not the system clock
    /// (an injected [`Clock`](crate::Clock), a simulated skew).
    pub async fn request_token_at(
        &self,
        identity: &DeviceIdentity,
        params: &TokenRequestParams,
        now: u64,
    ) -> Result<ObtainedToken, AgentError> {
        let mut nonce = [0u8; 16];
        rand::rng().fill_bytes(&mut nonce);
        let body = build_token_request(identity, params, now, nonce)?;
        let payload = self.exchange_token_request(body).await?;
        // MQTT has no status code: the ACE body itself says token or error.
        decode_token_response(
            ResponseType::Created,
            Some(content_format::ACE_CBOR),
            &payload,
        )
    }

    /// Publishes a signed token request built elsewhere (see
    /// [`build_token_request`]) on `token/req` and returns the raw ACE answer
    /// from `token/res`, unchecked: for load generators and tests that send
    /// pre-signed requests.
    ///
    /// Over MQTT 5 the request names the response topic and carries fresh
    /// correlation data, and only the answer with that correlation data is
    /// taken (a late answer to an earlier request cannot be mistaken for it).
    pub async fn exchange_token_request(&self, body: Vec<u8>) -> Result<Vec<u8>, AgentError> {
        let mut responses = self.responses.lock().await;
        // Drop answers to earlier, timed-out requests.
        while responses.try_recv().is_ok() {}
        let topic = topics::topic(&self.device_id, TopicKind::TokenRequest);
        let correlation = (self.protocol == Protocol::V5).then(|| {
            let mut c = [0u8; 8];
            rand::rng().fill_bytes(&mut c);
            c.to_vec()
        });
        let mut message = Message::new(topic, body, QoS::AtLeastOnce);
        if let Some(c) = &correlation {
            message = message
                .with_response_topic(topics::topic(&self.device_id, TopicKind::TokenResponse))
                .with_correlation_data(c.clone());
        }
        self.hand_over_message(message, None).await?;
        let wait = async {
            loop {
                let Some(answer) = responses.recv().await else {
                    return Err(AgentError::Mqtt("the MQTT connection closed".into()));
                };
                match (&correlation, &answer.correlation) {
                    (Some(sent), Some(got)) if sent != got => {
                        tracing::debug!("dropping an answer to an earlier token request");
                    }
                    _ => return Ok(answer.payload),
                }
            }
        };
        tokio::time::timeout(self.timeout, wait)
            .await
            .map_err(|_| AgentError::Mqtt(format!("no token response within {:?}", self.timeout)))?
    }

    /// Publishes a signed re-enrollment request (see [`crate::reenroll`]) on
    /// `cert/req` and returns the raw answer from `cert/res`.
    pub async fn request_cert(&self, request: Vec<u8>) -> Result<Vec<u8>, AgentError> {
        let mut responses = self.cert_responses.lock().await;
        while responses.try_recv().is_ok() {}
        self.hand_over(
            topics::topic(&self.device_id, TopicKind::CertRequest),
            request,
            None,
        )
        .await?;
        tokio::time::timeout(self.timeout, responses.recv())
            .await
            .map_err(|_| {
                AgentError::Mqtt(format!("no certificate response within {:?}", self.timeout))
            })?
            .ok_or_else(|| AgentError::Mqtt("the MQTT connection closed".into()))
    }

    /// Publishes raw bytes on one of this device's topics (QoS 1) without
    /// waiting for the PUBACK.
    pub async fn publish(&self, kind: TopicKind, payload: Vec<u8>) -> Result<(), AgentError> {
        self.hand_over(topics::topic(&self.device_id, kind), payload, None)
            .await
            .map(drop)
    }

    /// Publishes on one of this device's topics (QoS 1) and returns once the
    /// server acknowledged it (PUBACK). Fails when the connection is lost
    /// before that; the message may or may not have reached the server.
    pub async fn publish_confirmed(
        &self,
        kind: TopicKind,
        payload: Vec<u8>,
    ) -> Result<(), AgentError> {
        self.publish_tracked(kind, payload).await?.wait().await
    }

    /// Hands a QoS 1 publish to the connection and returns its
    /// [`PendingAck`], so that several publishes can be in flight.
    pub async fn publish_tracked(
        &self,
        kind: TopicKind,
        payload: Vec<u8>,
    ) -> Result<PendingAck, AgentError> {
        self.hand_over(topics::topic(&self.device_id, kind), payload, Some(Tracked))
            .await?
            .ok_or_else(|| AgentError::Mqtt("the publish was not tracked".into()))
    }

    /// Publishes raw bytes on any topic (tests use this to show the server's ACL).
    pub async fn publish_raw(&self, topic: &str, payload: Vec<u8>) -> Result<(), AgentError> {
        self.hand_over(topic.to_string(), payload, None)
            .await
            .map(drop)
    }

    /// Hands a QoS 1 publish to the client, waiting (up to the timeout)
    /// while its queue is full.
    async fn hand_over(
        &self,
        topic: String,
        payload: Vec<u8>,
        track: Option<Tracked>,
    ) -> Result<Option<PendingAck>, AgentError> {
        self.hand_over_message(Message::new(topic, payload, QoS::AtLeastOnce), track)
            .await
    }

    async fn hand_over_message(
        &self,
        message: Message,
        track: Option<Tracked>,
    ) -> Result<Option<PendingAck>, AgentError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            match self.client.try_publish(message.clone()) {
                Ok(delivery) => return Ok(track.map(|Tracked| PendingAck { delivery })),
                Err(MqttError::QueueFull) => {}
                Err(_) => return Err(AgentError::Mqtt("the MQTT connection is closed".into())),
            }
            if self.task.is_finished() || self.link.borrow().closed {
                return Err(AgentError::Mqtt("the MQTT connection is closed".into()));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(AgentError::Mqtt(format!(
                    "the MQTT client queue stayed full for {:?}",
                    self.timeout
                )));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Disconnects (sends DISCONNECT when connected, waiting at most a second).
    pub async fn disconnect(self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.client.disconnect()).await;
        let mut link = self.link.clone();
        let _ = tokio::time::timeout(Duration::from_secs(1), link.wait_for(|l| l.closed)).await;
    }
}

/// Asks [`MqttDevice::hand_over`] for a [`PendingAck`].
struct Tracked;

/// An answer on the token response topic, with its MQTT 5 correlation data.
struct Answer {
    payload: Vec<u8>,
    correlation: Option<Vec<u8>>,
}

struct Pump {
    events: MqttEvents,
    response_topic: String,
    cert_topic: String,
    responses: mpsc::Sender<Answer>,
    cert_responses: mpsc::Sender<Vec<u8>>,
    link: watch::Sender<LinkState>,
}

/// Routes answers and follows the connection state (the client reconnects
/// with the configured backoff and subscribes again by itself).
async fn pump(mut p: Pump) {
    let mut failures: u32 = 0;
    while let Some(event) = p.events.recv().await {
        match event {
            Event::Message(msg) if msg.topic == p.response_topic => {
                // Nobody waiting and the queue full: only stale answers are lost.
                let _ = p.responses.try_send(Answer {
                    payload: msg.payload.to_vec(),
                    correlation: msg.correlation_data.as_ref().map(|c| c.to_vec()),
                });
            }
            Event::Message(msg) if msg.topic == p.cert_topic => {
                let _ = p.cert_responses.try_send(msg.payload.to_vec());
            }
            Event::Message(msg) => {
                tracing::debug!(topic = %msg.topic, "ignoring a message on an unexpected topic");
            }
            Event::Connected { session } => {
                if session > 1 {
                    tracing::info!("MQTT connection re-established");
                }
                failures = 0;
                p.link.send_modify(|l| {
                    l.connected = true;
                    l.sessions = session;
                });
            }
            Event::Disconnected { reason } => {
                if failures == 0 {
                    tracing::warn!(%reason, "MQTT connection lost; reconnecting");
                } else {
                    tracing::debug!(%reason, attempt = failures, "MQTT reconnect failed");
                }
                failures = failures.saturating_add(1);
                p.link.send_modify(|l| l.connected = false);
            }
        }
    }
    p.link.send_modify(|l| {
        l.connected = false;
        l.closed = true;
    });
}
