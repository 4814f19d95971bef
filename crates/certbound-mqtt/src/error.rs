//! Errors of the MQTT server.

use std::net::SocketAddr;

/// Why the MQTT server could not start.
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
