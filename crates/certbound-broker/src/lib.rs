//! # certbound-broker
//!
//! The auth broker as a library: what answers devices and services. The
//! device token service (policy + minting), certificate enrollment and
//! claims, OAuth 2.0 for services, status lists, the audit log, and the
//! transports (CoAP, MQTT, HTTPS). It reads the registry through the
//! in-memory snapshot of `certbound-store`; the operator side
//! (configuration, registry, policy, keys) is `certbound-registry`.
//!
//! ```text
//!   CoAP /token ──┐
//!                 ├─▶ TokenService ──▶ Snapshot (devices, certs, APIs, grants)
//!   (MQTT, HTTPS) ┘        │        └─▶ AuditLog (batched)
//!                          └─▶ certbound_proto::token::mint (aws-lc signer)
//! ```
//!
//! ## Example
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::path::Path;
//! use certbound_registry::registry::{self, Registry};
//! let dir = Path::new("./cb");
//! registry::init(dir, "https://auth.example.com").await?;
//! let reg = Registry::open(dir).await?;
//! reg.create_api("https://telemetry.example.com", "telemetry:write", 3600).await?;
//! reg.create_group("sensors", &[("https://telemetry.example.com".into(), "telemetry:write".into())]).await?;
//! reg.provision_device("sensor-1", &["sensors".into()], Path::new("./devices"), None).await?;
//! let broker = certbound_broker::server::start(dir, Default::default()).await?;
//! println!("CoAP on {:?}", broker.coap_addr());
//! broker.shutdown().await;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod audit;
mod cert_cache;
pub mod claim_service;
pub mod crl_cache;
mod custom_claims;
mod device_auth;
pub mod enroll_service;
pub mod error;
pub mod limits;
pub mod metrics;
mod metrics_coap;
pub mod oauth;
pub mod pki_state;
pub mod refusal;
pub mod server;
pub mod status;
/// The registry database (the `certbound-store` crate).
pub use certbound_store as store;
pub mod token_service;
pub mod transport;

// The operator side, under the names the broker's modules use for it.
use certbound_registry::{clock, config, instances, keys, registry};

pub use error::BrokerError;
pub use refusal::{NOT_AUTHENTICATED, Refusal};
