//! # certbound-agent
//!
//! The device side of certbound: load the device identity (key + certificate
//! chain), build signed token requests, and obtain certificate-bound access
//! tokens from the broker over CoAP.
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
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
mod identity;
pub mod mqtt;
mod token;

pub use error::AgentError;
pub use identity::DeviceIdentity;
pub use token::{
    ObtainedToken, TokenRequestParams, build_token_request, decode_token_response,
    request_token_coap,
};
