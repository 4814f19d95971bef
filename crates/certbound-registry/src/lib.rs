//! # certbound-registry
//!
//! certbound's operator side: what an operator manages, and nothing that
//! answers a device. The data directory and its configuration
//! ([`config`]), the registry of devices, certificates, APIs, groups and
//! clients ([`registry`]), policy as code ([`policy`]), the health checks
//! ([`doctor`]), token signing keys ([`keys`]), the instances of one
//! service ([`instances`]) and partner CAs ([`external`]). The transports
//! and the token services live in `certbound-broker`, which depends on this
//! crate and never the other way round; all SQL lives in `certbound-store`.
//!
//! ```text
//!   certbound (CLI) ──▶ certbound-registry ──▶ certbound-store ──▶ SQLite / PostgreSQL
//!   certbound-broker ─┘   (config, registry,     (all SQL, snapshot,
//!   (transports)           policy, doctor, keys)   change feed)
//! ```
//!
//! ## Example
//!
//! ```no_run
//! # async fn run() -> Result<(), certbound_registry::RegistryError> {
//! use std::path::Path;
//! use certbound_registry::registry::{self, Registry};
//! let dir = Path::new("./cb");
//! registry::init(dir, "https://auth.example.com").await?;
//! let reg = Registry::open(dir).await?;
//! reg.create_api("https://telemetry.example.com", "telemetry:write", 3600).await?;
//! reg.create_group("sensors", &[("https://telemetry.example.com".into(), "telemetry:write".into())]).await?;
//! let made = reg.provision_device("sensor-1", &["sensors".into()], Path::new("./devices"), None).await?;
//! println!("certificate in {}", made.cert_file.display());
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client_jwks;
pub mod clock;
pub mod config;
pub mod credentials;
pub mod doctor;
pub mod error;
pub mod external;
pub mod instances;
pub mod keys;
pub mod policy;
pub mod registry;
/// The registry database (the `certbound-store` crate).
pub use certbound_store as store;

pub use error::RegistryError;
pub use registry::Registry;
