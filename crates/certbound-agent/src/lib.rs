//! # certbound-agent
//!
//! The device side of certbound: load the device identity (key + certificate
//! chain), build signed token requests, obtain certificate-bound access
//! tokens from the broker over CoAP or MQTT, and — as the `certbound-agent`
//! daemon — publish telemetry with the token attached.
//!
//! ```no_run
//! # async fn run() -> Result<(), certbound_agent::AgentError> {
//! use certbound_agent::{DeviceIdentity, TokenRequestParams, request_token_coap};
//! let identity = DeviceIdentity::load("devices/sensor-1.key.pem".as_ref(), "devices/sensor-1.cert.pem".as_ref())?;
//! let client = certbound_coap::Client::connect(std::net::SocketAddr::from(([127, 0, 0, 1], 5683)), Default::default()).await?;
//! let params = TokenRequestParams::new("https://auth.example.com", "https://telemetry.example.com")
//!     .with_scope("telemetry:write");
//! let token = request_token_coap(&client, &identity, &params).await?;
//! println!("{} bytes, valid {} s", token.access_token.len(), token.expires_in);
//! # Ok(()) }
//! ```
//!
//! The daemon as a library (the binary adds signals and logging):
//!
//! ```no_run
//! # async fn run() -> Result<(), certbound_agent::AgentError> {
//! use std::sync::Arc;
//! use certbound_agent::{AgentConfig, SystemClock, start};
//! let config = AgentConfig::load("agent.toml".as_ref())?;
//! let agent = start(&config, Arc::new(SystemClock)).await?;
//! let seq = agent.intake().submit(b"temp=21.5".to_vec()).await?; // spooled durably
//! agent.shutdown().await?; // flushes the spool for up to spool.flush_on_exit_secs
//! # Ok(()) }
//! ```
//!
//! Certificate renewal (always with a new key) as a library call:
//!
//! ```no_run
//! # async fn run() -> Result<(), certbound_agent::AgentError> {
//! use certbound_agent::{DeviceIdentity, renew_over_coap};
//! let identity = DeviceIdentity::load("sensor-1.key.pem".as_ref(), "sensor-1.cert.pem".as_ref())?;
//! let client = certbound_coap::Client::connect(std::net::SocketAddr::from(([127, 0, 0, 1], 5683)), Default::default()).await?;
//! let renewed = renew_over_coap(&client, &identity, "https://auth.example.com").await?;
//! // Store renewed.key_pem and renewed.chain_pem; use renewed.identity from now on.
//! # let _ = renewed; Ok(()) }
//! ```
//!
//! Answers are not trusted for scheduling ([`answers`]): retry hints are
//! capped (at most 5 minutes, never past the renewal deadline), a token is
//! checked against this device's key, audience and id, and renewed from its
//! own `exp` — never from the answer's `expires_in`.
//!
//! Modules: [`answers`] (what an answer is believed for), [`config`] (the TOML file), [`spool`] (persisted queue),
//! [`seq`] (sequence numbers), [`tokens`] (token manager), [`mqtt`]
//! (connection, PUBACK tracking), [`source`] (stdin / UDP / Unix input),
//! [`clock`] (injectable time), [`renewal`] (when to renew the certificate,
//! the staged-credential state machine), [`reenroll`] (renewal requests over
//! MQTT, CoAP and EST), [`keygen`] (new key and CSR), [`credentials`]
//! (crash-safe credential files). The decision logic (token and certificate
//! renewal, spool order, sequence allocation, PUBACK correlation, line
//! splitting, credential recovery) is pure and unit-tested; tokio is used
//! only by the connections and the run loop.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod agent;
pub mod answers;
pub mod clock;
pub mod config;
pub mod credentials;
mod error;
mod identity;
mod intake;
pub mod keygen;
pub mod mqtt;
pub mod reenroll;
pub mod renewal;
pub mod seq;
pub mod source;
pub mod spool;
mod token;
pub mod tokens;

pub use agent::{AgentStatus, RunningAgent, start};
pub use clock::{Clock, OffsetClock, SystemClock};
pub use config::AgentConfig;
pub use error::AgentError;
pub use identity::DeviceIdentity;
pub use intake::Intake;
#[cfg(feature = "est")]
pub use reenroll::renew_over_est;
pub use reenroll::{RenewedIdentity, renew_over_coap, renew_over_mqtt};
pub use token::{
    ObtainedToken, REQUEST_LIFETIME_SECS, TokenRequestParams, accept_token, build_token_request,
    decode_token_response, request_token_coap,
};
