//! Server configuration.

use std::net::SocketAddr;
use std::time::Duration;

use crate::MqttError;

/// Largest remaining length MQTT can encode (§2.2.3).
const MQTT_MAX_REMAINING_LENGTH: usize = 268_435_455;

/// Default of [`MqttServerConfig::max_connections_per_device`].
pub const DEFAULT_MAX_CONNECTIONS_PER_DEVICE: usize = 4;
/// Default of [`MqttServerConfig::max_connections_per_service`].
pub const DEFAULT_MAX_CONNECTIONS_PER_SERVICE: usize = 64;
/// Default of [`MqttServerConfig::max_subscriptions_per_session`].
pub const DEFAULT_MAX_SUBSCRIPTIONS_PER_SESSION: usize = 32;

/// Configuration of [`MqttServer`](crate::MqttServer).
#[derive(Clone)]
pub struct MqttServerConfig {
    /// Address to listen on (port 0 picks a free port; see
    /// [`MqttServer::local_addr`](crate::MqttServer::local_addr)).
    pub listen: SocketAddr,
    /// The server certificate followed by its issuing CA, PEM.
    pub server_cert_chain_pem: String,
    /// The server's private key, PKCS#8 PEM.
    pub server_key_pem: String,
    /// The CA certificates client certificates must chain to, PEM
    /// (`pki/ca-chain.pem`). Every certificate in it is a trust anchor.
    pub client_ca_pem: String,
    /// Largest packet accepted from a client (remaining length), bytes;
    /// larger packets close the connection. Default 64 KiB.
    pub max_packet_size: usize,
    /// Time from TCP accept until the TLS handshake, authentication and the
    /// MQTT CONNECT must be done. Default 10 s.
    pub connect_timeout: Duration,
    /// Most connections open at once (further ones are closed right after
    /// accept). Default 100 000.
    pub max_clients: usize,
    /// Messages waiting for one client; a client whose queue overflows is
    /// disconnected so that publishers are never slowed down. Default 1024.
    pub outgoing_queue: usize,
    /// Most connections (past CONNECT) one device or claim certificate
    /// identity may hold at once. A CONNECT with the client id of a live
    /// connection of the same identity takes it over and does not count;
    /// other CONNECTs over the cap get CONNACK 0x05. Default 4.
    pub max_connections_per_device: usize,
    /// The same cap for service identities (the broker runs one connection
    /// per instance). Default 64.
    pub max_connections_per_service: usize,
    /// Most subscriptions one session may hold; further filters get 0x97
    /// (quota exceeded; 3.1.1: 0x80) in the SUBACK. Default 32.
    pub max_subscriptions_per_session: usize,
    /// Longest keep-alive a client may ask for, seconds. An MQTT 5 client
    /// asking for more (or for none) is told this value (Server Keep Alive);
    /// a 3.1.1 client keeps its own. Default 3600.
    pub max_keep_alive: u16,
    /// Longest time a session is kept after its connection ends, seconds
    /// (MQTT 5 Session Expiry, 3.1.1 Clean Session 0). 0 keeps none.
    /// Default 86 400 (one day).
    pub max_session_expiry: u32,
    /// Sessions kept per identity after their connection ended (the one
    /// expiring first is ended beyond it). Default 4.
    pub max_stored_sessions_per_identity: usize,
    /// QoS 1 and 2 messages queued for a stored session (further ones are
    /// dropped and counted); at most `outgoing_queue`, since a resumed
    /// session's messages go to its new connection's queue at once.
    /// Default 1024.
    pub offline_queue: usize,
    /// Topics with a retained message (a retained message beyond it is
    /// routed but not kept, and counted). Default 10 000.
    pub max_retained_messages: usize,
    /// Payload bytes of all retained messages. Default 16 MiB.
    pub max_retained_bytes: usize,
}

impl std::fmt::Debug for MqttServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttServerConfig")
            .field("listen", &self.listen)
            .field("server_key_pem", &"[redacted]")
            .field("max_packet_size", &self.max_packet_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_clients", &self.max_clients)
            .field("outgoing_queue", &self.outgoing_queue)
            .field(
                "max_connections_per_device",
                &self.max_connections_per_device,
            )
            .field(
                "max_connections_per_service",
                &self.max_connections_per_service,
            )
            .field(
                "max_subscriptions_per_session",
                &self.max_subscriptions_per_session,
            )
            .field("max_keep_alive", &self.max_keep_alive)
            .field("max_session_expiry", &self.max_session_expiry)
            .field("offline_queue", &self.offline_queue)
            .field("max_retained_messages", &self.max_retained_messages)
            .finish_non_exhaustive()
    }
}

impl MqttServerConfig {
    /// A configuration with the default limits.
    pub fn new(
        listen: SocketAddr,
        server_cert_chain_pem: impl Into<String>,
        server_key_pem: impl Into<String>,
        client_ca_pem: impl Into<String>,
    ) -> Self {
        MqttServerConfig {
            listen,
            server_cert_chain_pem: server_cert_chain_pem.into(),
            server_key_pem: server_key_pem.into(),
            client_ca_pem: client_ca_pem.into(),
            max_packet_size: 64 * 1024,
            connect_timeout: Duration::from_secs(10),
            max_clients: 100_000,
            outgoing_queue: 1024,
            max_connections_per_device: DEFAULT_MAX_CONNECTIONS_PER_DEVICE,
            max_connections_per_service: DEFAULT_MAX_CONNECTIONS_PER_SERVICE,
            max_subscriptions_per_session: DEFAULT_MAX_SUBSCRIPTIONS_PER_SESSION,
            max_keep_alive: 3600,
            max_session_expiry: 86_400,
            max_stored_sessions_per_identity: 4,
            offline_queue: 1024,
            max_retained_messages: 10_000,
            max_retained_bytes: 16 * 1024 * 1024,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), MqttError> {
        if !(1..=MQTT_MAX_REMAINING_LENGTH).contains(&self.max_packet_size) {
            return Err(MqttError::Config(format!(
                "max_packet_size must be 1..={MQTT_MAX_REMAINING_LENGTH} bytes, got {}",
                self.max_packet_size
            )));
        }
        if self.connect_timeout.is_zero() {
            return Err(MqttError::Config(
                "connect_timeout must be more than zero".into(),
            ));
        }
        if self.max_clients == 0 {
            return Err(MqttError::Config("max_clients must be at least 1".into()));
        }
        for (name, value) in [
            (
                "max_connections_per_device",
                self.max_connections_per_device,
            ),
            (
                "max_connections_per_service",
                self.max_connections_per_service,
            ),
            (
                "max_subscriptions_per_session",
                self.max_subscriptions_per_session,
            ),
        ] {
            if value == 0 {
                return Err(MqttError::Config(format!("{name} must be at least 1")));
            }
        }
        if self.max_keep_alive == 0 {
            return Err(MqttError::Config(
                "max_keep_alive must be at least 1 second".into(),
            ));
        }
        if self.outgoing_queue == 0 {
            return Err(MqttError::Config(
                "outgoing_queue must be at least 1".into(),
            ));
        }
        Ok(())
    }
}
