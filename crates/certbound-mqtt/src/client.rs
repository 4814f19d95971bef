//! certbound's own MQTT client (3.1.1 and 5) on rumqttc's codec, over TCP
//! or mutual TLS (tokio-rustls with aws-lc-rs).
//!
//! rumqttc's client brings `ring` and rustls-webpki 0.102 with any of its TLS
//! features (a second crypto stack; RUSTSEC-2026-0049) and rustls-pemfile
//! (unmaintained, RUSTSEC-2025-0134); its codec needs neither, so certbound
//! uses the codec and this client instead.
//!
//! * [`MqttClient::connect`] opens TCP (with `TCP_NODELAY`), TLS when
//!   configured, sends CONNECT (clean session, keep-alive), waits for CONNACK
//!   and subscribes the [`ClientOptions::subscriptions`] (including
//!   `$share/{group}/...`); a refused CONNACK or SUBSCRIBE is an error
//!   ([`MqttError::ConnectionRefused`](crate::MqttError::ConnectionRefused),
//!   [`MqttError::SubscribeRefused`](crate::MqttError::SubscribeRefused)).
//! * [`MqttClient::publish`] sends QoS 0 or 1 (MQTT 5: with response topic
//!   and correlation data); the returned [`Delivery`] resolves on PUBACK and
//!   fails when the connection is lost first (clean sessions: nothing is
//!   retransmitted).
//! * Messages arrive in order as [`Event::Message`] on [`MqttEvents`]; QoS 1
//!   messages are acknowledged once handed to the channel.
//! * PINGREQ keeps the connection alive; a missing PINGRESP ends it.
//! * With [`ClientOptions::reconnect`], a lost connection is re-established
//!   with backoff (jittered) and the subscriptions are made again; each
//!   usable connection is announced by [`Event::Connected`]. Publishes made
//!   while reconnecting wait in the bounded queue.
//!
//! The protocol logic is the sans-IO [`ClientState`] (time passed in); the
//! `shell` module only moves bytes.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use certbound_mqtt::client::{ClientOptions, Event, Message, MqttClient, QoS};
//!
//! # async fn run(tls: std::sync::Arc<rustls::ClientConfig>) -> Result<(), certbound_mqtt::MqttError> {
//! let options = ClientOptions::new("ingest-1", "mqtt.example.com", 8883)
//!     .tls(tls)
//!     .subscribe("$share/ingest/cb/v1/+/telemetry", QoS::AtLeastOnce)
//!     .reconnect(certbound_proto::schedule::Backoff::default());
//! let (client, mut events) = MqttClient::connect(options).await?;
//! while let Some(event) = events.recv().await {
//!     if let Event::Message(m) = event {
//!         println!("{} {} bytes", m.topic, m.payload.len());
//!         client.publish(Message::new("cb/v1/x/ack", "ok", QoS::AtMostOnce)).await?;
//!     }
//! }
//! # Ok(())
//! # }
//! ```

mod codec;
mod connect;
mod shell;
mod state;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use certbound_proto::schedule::Backoff;

pub use rumqttc::mqttbytes::QoS;

/// MQTT 5 enhanced authentication for a client: the Authentication Method
/// (`ace` for RFC 9431 access tokens) and the current Authentication Data
/// (the token), shared so that a fresh token set by
/// [`MqttClient::reauthenticate`] is also used by every later reconnect.
#[derive(Clone)]
pub struct Authentication {
    method: String,
    data: Arc<std::sync::Mutex<Bytes>>,
}

impl std::fmt::Debug for Authentication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authentication")
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

impl Authentication {
    /// Authenticates with `method` and `data`.
    pub fn new(method: impl Into<String>, data: impl Into<Bytes>) -> Self {
        Authentication {
            method: method.into(),
            data: Arc::new(std::sync::Mutex::new(data.into())),
        }
    }

    /// RFC 9431: method `ace`, the access token as data.
    pub fn ace(token: impl Into<Bytes>) -> Self {
        Self::new("ace", token)
    }

    /// The Authentication Method.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The current Authentication Data.
    pub fn data(&self) -> Bytes {
        self.data
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Replaces the Authentication Data (used from the next CONNECT on).
    pub fn set_data(&self, data: impl Into<Bytes>) {
        *self
            .data
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = data.into();
    }
}
pub use shell::{Delivery, Event, MqttClient, MqttEvents};
pub use state::{ClientState, StateConfig, StateEvent, Token};

/// The MQTT protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// MQTT 3.1.1 (protocol level 4).
    #[default]
    V311,
    /// MQTT 5.
    V5,
}

/// A message, sent or received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Topic name.
    pub topic: String,
    /// Payload.
    pub payload: Bytes,
    /// QoS 0 or 1.
    pub qos: QoS,
    /// Retain flag.
    pub retain: bool,
    /// MQTT 5 Response Topic.
    pub response_topic: Option<String>,
    /// MQTT 5 Correlation Data.
    pub correlation_data: Option<Bytes>,
}

impl Message {
    /// A message without retain flag or MQTT 5 properties.
    pub fn new(topic: impl Into<String>, payload: impl Into<Bytes>, qos: QoS) -> Self {
        Self {
            topic: topic.into(),
            payload: payload.into(),
            qos,
            retain: false,
            response_topic: None,
            correlation_data: None,
        }
    }

    /// With an MQTT 5 Response Topic (ignored over 3.1.1).
    #[must_use]
    pub fn with_response_topic(mut self, topic: impl Into<String>) -> Self {
        self.response_topic = Some(topic.into());
        self
    }

    /// With MQTT 5 Correlation Data (ignored over 3.1.1).
    #[must_use]
    pub fn with_correlation_data(mut self, data: impl Into<Bytes>) -> Self {
        self.correlation_data = Some(data.into());
        self
    }
}

/// Where to connect and how.
#[derive(Clone)]
pub struct ClientOptions {
    /// Server host name or IP address.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// TLS server name (default: `host`).
    pub server_name: Option<String>,
    /// TLS configuration (client certificate for mTLS); `None`: plain TCP.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// MQTT client identifier.
    pub client_id: String,
    /// MQTT 3.1.1 (default) or 5.
    pub protocol: Protocol,
    /// Keep-alive (default 30 s).
    pub keep_alive: Duration,
    /// Bound on TCP connect + TLS handshake + CONNACK + SUBACK (default 10 s).
    pub connect_timeout: Duration,
    /// Largest packet sent or accepted (default 64 KiB).
    pub max_packet_size: usize,
    /// Unacknowledged QoS 1 publishes at most (default 100).
    pub max_inflight: usize,
    /// Publishes queued in the handle at most (default 256).
    pub queue: usize,
    /// Filters subscribed on every connection.
    pub subscriptions: Vec<(String, QoS)>,
    /// Reconnect after a lost connection with this backoff; `None` (the
    /// default): the events end with the first connection.
    pub reconnect: Option<Backoff>,
    /// MQTT 5 enhanced authentication (RFC 9431 `ace` with an access
    /// token) on every CONNECT; `None` (the default): the certificate only.
    pub authentication: Option<Authentication>,
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls.is_some())
            .field("client_id", &self.client_id)
            .field("protocol", &self.protocol)
            .field("subscriptions", &self.subscriptions)
            .field("reconnect", &self.reconnect)
            .field("authentication", &self.authentication)
            .finish_non_exhaustive()
    }
}

impl ClientOptions {
    /// Plain TCP to `host:port`, MQTT 3.1.1, defaults as documented per field.
    pub fn new(client_id: impl Into<String>, host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
            server_name: None,
            tls: None,
            client_id: client_id.into(),
            protocol: Protocol::V311,
            keep_alive: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_packet_size: 64 * 1024,
            max_inflight: 100,
            queue: 256,
            subscriptions: Vec::new(),
            reconnect: None,
            authentication: None,
        }
    }

    /// Authenticates with `authentication` (MQTT 5 only) on every CONNECT.
    #[must_use]
    pub fn authenticate(mut self, authentication: Authentication) -> Self {
        self.authentication = Some(authentication);
        self
    }

    /// Over TLS with `config` (see [`crate::client_tls::client_tls_config`]).
    #[must_use]
    pub fn tls(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Speaks `protocol`.
    #[must_use]
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = protocol;
        self
    }

    /// Subscribes `filter` on every connection.
    #[must_use]
    pub fn subscribe(mut self, filter: impl Into<String>, qos: QoS) -> Self {
        self.subscriptions.push((filter.into(), qos));
        self
    }

    /// Reconnects with `backoff`.
    #[must_use]
    pub fn reconnect(mut self, backoff: Backoff) -> Self {
        self.reconnect = Some(backoff);
        self
    }

    /// Keep-alive interval.
    #[must_use]
    pub fn keep_alive(mut self, keep_alive: Duration) -> Self {
        self.keep_alive = keep_alive;
        self
    }

    /// Connect timeout.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Publish queue capacity.
    #[must_use]
    pub fn queue(mut self, capacity: usize) -> Self {
        self.queue = capacity.max(1);
        self
    }

    fn state_config(&self) -> StateConfig {
        StateConfig {
            protocol: self.protocol,
            client_id: self.client_id.clone(),
            keep_alive: self.keep_alive,
            connect_timeout: self.connect_timeout,
            max_packet: self.max_packet_size,
            max_inflight: self.max_inflight,
            auth: self
                .authentication
                .as_ref()
                .map(|a| (a.method().to_owned(), a.data())),
        }
    }
}
