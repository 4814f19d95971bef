//! CoAP (RFC 7252) transport for certbound: confirmable retransmission,
//! message deduplication and block-wise transfer (RFC 7959), built as pure
//! state machines over the [`coap_lite`] codec with a thin tokio UDP shell.
//!
//! * [`Server`] receives requests on one UDP socket and runs every request
//!   through a [`Handler`] in its own task. CON requests get piggybacked ACK
//!   responses, NON requests NON responses; retransmitted requests get the
//!   cached response without running the handler again; empty CON (ping)
//!   gets RST; malformed datagrams are counted ([`Server::stats`]) and dropped.
//! * Answers to source addresses that have not proven they receive our
//!   datagrams are limited to `amplification_factor` (3) times the request
//!   (RFC 7252 §11.3); a larger answer becomes 4.01 Unauthorized with an
//!   Echo option (RFC 9175), and [`Client`] repeats the request with the
//!   Echo transparently. The deduplication cache is bounded in entries and
//!   in bytes, and at most `max_in_flight` requests run at once (5.03 beyond).
//! * [`Client`] sends CON requests to one server with random tokens and
//!   exponential back-off, and also accepts separate responses.
//! * Bodies larger than the block size travel with Block1 (requests) and
//!   Block2 (responses) transparently: handlers and callers always see whole
//!   bodies.
//!
//! The protocol logic lives in time-agnostic modules (retransmission,
//! deduplication, block-wise, server and client exchanges) that take the
//! current time as an argument; only the `Server`/`Client` shells touch
//! sockets and the clock.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use certbound_coap::{
//!     content_format, Client, ClientConfig, Handler, Method, Request, Response, ResponseType,
//!     Server, ServerConfig,
//! };
//!
//! struct Echo;
//!
//! impl Handler for Echo {
//!     async fn handle(&self, request: Request) -> Response {
//!         match (request.method, request.path.as_str()) {
//!             (Method::Post, "echo") => Response::new(ResponseType::Changed)
//!                 .with_payload(request.content_format.unwrap_or(0), request.payload),
//!             _ => Response::new(ResponseType::NotFound),
//!         }
//!     }
//! }
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> Result<(), certbound_coap::CoapError> {
//!     let addr = "127.0.0.1:0".parse().expect("valid address");
//!     let server = Server::bind(addr, Arc::new(Echo), ServerConfig::default()).await?;
//!     let client = Client::connect(server.local_addr(), ClientConfig::default()).await?;
//!
//!     // 5 KB travel as Block1 blocks and come back as Block2 blocks.
//!     let body = vec![0x42; 5 * 1024];
//!     let response = client.post("echo", content_format::CBOR, body.clone()).await?;
//!     assert_eq!(response.code, ResponseType::Changed);
//!     assert_eq!(response.payload, body);
//!
//!     server.shutdown().await;
//!     Ok(())
//! }
//! ```

mod block;
mod client;
mod client_core;
mod dedup;
mod echo;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod message;
mod reliability;
mod server;
mod server_core;

use std::net::SocketAddr;

pub use client::{Client, ClientConfig};
pub use coap_lite::{RequestType as Method, ResponseType};
pub use error::CoapError;
pub use server::{Server, ServerConfig, ServerStats, StatsHandle};

/// CoAP Content-Format numbers used by certbound (IANA "CoAP Content-Formats").
pub mod content_format {
    /// `application/cose; cose-type="cose-sign1"`.
    pub const COSE_SIGN1: u16 = 18;
    /// `application/ace+cbor` (RFC 9200).
    pub const ACE_CBOR: u16 = 19;
    /// `application/link-format` (RFC 6690).
    pub const LINK_FORMAT: u16 = 40;
    /// `application/cbor`.
    pub const CBOR: u16 = 60;
    /// `application/cwt` (RFC 8392).
    pub const CWT: u16 = 61;
    /// `application/cose-key-set`.
    pub const COSE_KEY_SET: u16 = 102;
    /// `application/pkcs7-mime; smime-type=certs-only` (RFC 9148).
    pub const PKCS7_CERTS: u16 = 281;
    /// `application/pkcs10` (RFC 9148).
    pub const PKCS10: u16 = 286;
    /// `application/pkix-cert` (RFC 9148).
    pub const PKIX_CERT: u16 = 287;
}

/// A complete request as seen by a [`Handler`] (block-wise bodies already reassembled).
#[derive(Debug, Clone)]
pub struct Request {
    /// The request method.
    pub method: Method,
    /// Uri-Path segments joined by `/`, without a leading slash (e.g. `".well-known/core"`).
    pub path: String,
    /// Uri-Query parameters in order (e.g. `["rt=ace.est"]`).
    pub query: Vec<String>,
    /// The Content-Format of the payload, if given.
    pub content_format: Option<u16>,
    /// The Accept option, if given.
    pub accept: Option<u16>,
    /// The whole request body.
    pub payload: Vec<u8>,
    /// The UDP address the request came from.
    pub peer: SocketAddr,
}

/// A complete response (split into Block2 blocks by the server when large).
#[derive(Debug, Clone)]
pub struct Response {
    /// The response code.
    pub code: ResponseType,
    /// The Content-Format of the payload, if any.
    pub content_format: Option<u16>,
    /// The whole response body.
    pub payload: Vec<u8>,
    /// The Max-Age option in seconds, if any (absent means 60 s per RFC 7252).
    pub max_age: Option<u32>,
}

impl Response {
    /// A response with `code`, no payload and no options.
    pub fn new(code: ResponseType) -> Self {
        Response {
            code,
            content_format: None,
            payload: Vec::new(),
            max_age: None,
        }
    }

    /// Sets the payload and its Content-Format.
    pub fn with_payload(mut self, content_format: u16, payload: Vec<u8>) -> Self {
        self.content_format = Some(content_format);
        self.payload = payload;
        self
    }

    /// Sets the Max-Age option (seconds).
    pub fn with_max_age(mut self, seconds: u32) -> Self {
        self.max_age = Some(seconds);
        self
    }
}

/// Application logic behind a [`Server`]: one call per complete request.
///
/// Implement it with `async fn handle(&self, request: Request) -> Response`.
/// Each request runs in its own task, so calls may overlap. A panicking
/// handler produces a 5.00 response.
pub trait Handler: Send + Sync + 'static {
    /// Produces the response to one request.
    fn handle(&self, request: Request) -> impl std::future::Future<Output = Response> + Send;
}
