//! The one error type of this crate.

use std::time::Duration;

/// Everything that can go wrong while serving or requesting over CoAP.
///
/// Error *responses* from a peer (4.xx, 5.xx) are not errors at this level:
/// [`Client::request`](crate::Client::request) returns them as an ordinary
/// [`Response`](crate::Response) so callers can inspect the code and payload.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoapError {
    /// A socket operation failed.
    #[error(
        "UDP I/O failed while {context}: {source}; check the address, that the port is free and that the network is up"
    )]
    Io {
        /// What the endpoint was doing when the operation failed.
        context: &'static str,
        /// The underlying operating-system error.
        #[source]
        source: std::io::Error,
    },

    /// No acknowledgement or response arrived in time.
    #[error(
        "no response from the CoAP server after {transmissions} transmission(s) over {waited:?}; check that the server is running at that address, or raise ClientConfig::ack_timeout / max_retransmit on lossy links"
    )]
    Timeout {
        /// How many times the last request message was sent.
        transmissions: u32,
        /// Time from the first transmission of the last message to giving up.
        waited: Duration,
    },

    /// The peer answered a request with a Reset (RST) message.
    #[error(
        "the CoAP server rejected the request with a Reset message; it may not understand the message or may have restarted, retry the request"
    )]
    Reset,

    /// The response body is larger than the configured limit.
    #[error(
        "the response body exceeds ClientConfig::max_body ({limit} bytes); raise max_body or request a smaller resource"
    )]
    ResponseTooLarge {
        /// The configured limit in bytes.
        limit: usize,
    },

    /// The request cannot be expressed as a CoAP message.
    #[error("invalid CoAP request: {0}")]
    InvalidRequest(String),

    /// The peer broke the protocol (for example an inconsistent block-wise transfer).
    #[error(
        "CoAP protocol violation by the peer: {0}; retry the request, and report the peer if it persists"
    )]
    Protocol(String),

    /// A message could not be encoded by the CoAP codec.
    #[error("could not encode a CoAP message: {0}; reduce the option or payload sizes")]
    Encode(String),

    /// The endpoint's background receive task has stopped.
    #[error("the CoAP endpoint's receive task has stopped; create a new Client")]
    Closed,
}

impl CoapError {
    /// Wraps an I/O error with a short description of what was being done.
    pub(crate) fn io(context: &'static str, source: std::io::Error) -> Self {
        CoapError::Io { context, source }
    }
}
