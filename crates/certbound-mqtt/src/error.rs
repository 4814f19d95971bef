//! Errors of the MQTT server and client.

use std::net::SocketAddr;

/// Why the MQTT server could not start, or what went wrong in the client
/// ([`crate::client`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MqttError {
    /// `server_cert_chain_pem` is unusable.
    #[error(
        "MQTT server certificate chain (server_cert_chain_pem): {0}; pass PEM CERTIFICATE blocks, \
         the server certificate first, then its issuing CA"
    )]
    ServerCert(String),
    /// `server_key_pem` is unusable or does not match the certificate.
    #[error(
        "MQTT server private key (server_key_pem): {0}; pass the PKCS#8 PEM key \
         (-----BEGIN PRIVATE KEY-----) of the server certificate"
    )]
    ServerKey(String),
    /// `client_ca_pem` is unusable.
    #[error(
        "MQTT client CA roots (client_ca_pem): {0}; pass the CA chain PEM (pki/ca-chain.pem) \
         that issued the device and service certificates"
    )]
    ClientCa(String),
    /// A client TLS configuration could not be built (see [`crate::client_tls`]).
    #[error("MQTT client TLS: {0}")]
    Tls(String),
    /// A limit in the configuration is out of range.
    #[error("invalid MQTT server configuration: {0}")]
    Config(String),
    /// The client could not reach the server (TCP or TLS).
    #[error("MQTT connection: {0}; check the server address, that it listens, and the TLS files")]
    Connect(String),
    /// The server refused CONNECT (CONNACK reason).
    #[error(
        "the MQTT server refused the connection: {0}; check that the certificate is valid, \
         not revoked, and allowed on this server"
    )]
    ConnectionRefused(String),
    /// The server refused one or more SUBSCRIBE filters.
    #[error("the MQTT server refused the subscription to {0}; check its ACL for this identity")]
    SubscribeRefused(String),
    /// The server broke the protocol (or sent what certbound never asks for).
    #[error("MQTT protocol error: {0}")]
    Protocol(String),
    /// No CONNACK, SUBACK or PINGRESP in time.
    #[error("MQTT timeout: {0}")]
    Timeout(String),
    /// The connection ended; what was in flight may or may not have arrived.
    #[error("MQTT connection lost: {0}")]
    ConnectionLost(String),
    /// This publish cannot be sent (QoS 2, a bad topic, too large) or the
    /// server refused it (MQTT 5 PUBACK reason).
    #[error("MQTT publish refused: {0}")]
    Publish(String),

    /// The server refused re-authentication (MQTT 5 AUTH), or the session
    /// does not authenticate with a method.
    #[error("MQTT re-authentication failed: {0}")]
    Reauthentication(String),
    /// The client's publish queue is full (the server is slow or unreachable).
    #[error("the MQTT client's queue is full; retry later")]
    QueueFull,
    /// The client has stopped (disconnected or every handle dropped).
    #[error("the MQTT client is closed")]
    Closed,
    /// The listening socket could not be opened.
    #[error(
        "cannot listen for MQTT on {addr}: {source}; choose a free port (or port 0) on an \
         address of this host"
    )]
    Bind {
        /// The address from the configuration.
        addr: SocketAddr,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}
