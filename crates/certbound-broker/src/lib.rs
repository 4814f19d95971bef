//! # certbound-broker
//!
//! The auth broker as a library: configuration, the registry (SQLite or
//! PostgreSQL through `certbound-store`), token signing keys, the device
//! token service (policy + minting), the audit log, and the transports
//! (CoAP today).
//!
//! ```text
//!   CoAP /token ──┐
//!                 ├─▶ TokenService ──▶ Store (devices, certs, APIs, grants)
//!   (MQTT, HTTPS) ┘        │        └─▶ AuditLog (batched)
//!                          └─▶ certbound_proto::token::mint (aws-lc signer)
//! ```
//!
//! ## Example
//!
//! ```no_run
//! # async fn run() -> Result<(), certbound_broker::BrokerError> {
//! use std::path::Path;
//! let dir = Path::new("./cb");
//! certbound_broker::registry::init(dir, "https://auth.example.com").await?;
//! let reg = certbound_broker::registry::Registry::open(dir).await?;
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
pub mod claim_service;
pub mod clock;
pub mod config;
pub mod crl_cache;
mod device_auth;
pub mod doctor;
pub mod enroll_service;
pub mod error;
pub mod instances;
pub mod keys;
pub mod limits;
pub mod metrics;
mod metrics_coap;
pub mod oauth;
pub mod pki_state;
pub mod policy;
pub mod refusal;
pub mod registry;
pub mod server;
pub mod status;
/// The registry database (the `certbound-store` crate).
pub use certbound_store as store;
pub mod token_service;
pub mod transport;

pub use error::BrokerError;
pub use refusal::{NOT_AUTHENTICATED, Refusal};
