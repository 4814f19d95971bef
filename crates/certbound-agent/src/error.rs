//! The agent's one error type.

use std::path::PathBuf;

use certbound_proto::ace::AceError;

/// What can go wrong on the device side.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// A credential file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The device key or certificate is unusable.
    #[error("device credentials: {0}")]
    Credentials(String),
    /// The broker refused the request.
    #[error("the broker refused the token request: {0}")]
    Refused(#[from] AceError),
    /// The broker answered with something other than an ACE response.
    #[error("unexpected answer from the broker: {0}")]
    UnexpectedResponse(String),
    /// MQTT failure.
    #[error("MQTT: {0}")]
    Mqtt(String),
    /// Transport failure.
    #[error(transparent)]
    Coap(#[from] certbound_coap::CoapError),
    /// Protocol encoding failure.
    #[error(transparent)]
    Proto(#[from] certbound_proto::ProtoError),
    /// The configuration file is unusable.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The telemetry spool failed or refused a message.
    #[error(transparent)]
    Spool(#[from] crate::spool::SpoolError),
    /// The broker refused a certificate renewal.
    #[error("the broker refused the certificate renewal: {0}")]
    RenewalRefused(AceError),
    /// The broker is rate limiting or temporarily unavailable.
    #[error("the broker asks to retry in {retry_after_secs} s: {reason}")]
    RetryLater {
        /// Seconds to wait, as the broker said (or a default).
        retry_after_secs: u64,
        /// What the broker said.
        reason: String,
    },
    /// HTTPS failure (EST).
    #[error("HTTPS: {0}")]
    Https(String),
    /// A telemetry message exceeds `telemetry.max_message_bytes`.
    #[error("the message has {len} bytes, more than telemetry.max_message_bytes = {max}; refused")]
    TooLarge {
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
}
