//! # firmware-sim
//!
//! A certbound fleet in one process: N devices, each with its own key and
//! certificate, run the agent's protocol against a real certbound broker over
//! real MQTT (mTLS), CoAP (UDP) and HTTPS, renew their tokens and
//! certificates, and send signed telemetry to a backend that verifies every
//! message offline (signature, audience, scope, expiry, proof of possession,
//! sequence, revocation through status lists). Faults (UDP loss, clock skew,
//! a broker restart) and a scripted revocation can be injected; a run ends
//! with a [`Report`] and fails when anything was rejected that the scenario
//! does not explain.
//!
//! ```no_run
//! # async fn demo() -> Result<(), firmware_sim::SimError> {
//! use firmware_sim::{SimOptions, TransportMix, run};
//! let mut options = SimOptions::new(200);
//! options.transports = TransportMix::parse("mqtt,coap").map_err(firmware_sim::SimError::Options)?;
//! options.duration = std::time::Duration::from_secs(20);
//! let outcome = run(&options, &|frame| eprintln!("{}", frame.one_line())).await?;
//! println!("{}", outcome.report.summary());
//! assert!(outcome.report.ok);
//! # Ok(()) }
//! ```
//!
//! Modules: [`options`] (what a run does, parsing), [`fleet`] (data
//! directory, provisioning, the embedded broker), [`device`] (one device's
//! task), [`backend`] (the verifying telemetry backend and its intakes),
//! [`lossy`] (the UDP loss relay), [`stats`] (counters, histograms, report),
//! [`live`] (the live view), [`service`] (a backend service's JWT by client credentials),
//! [`ledger`] (what the broker acknowledged, for checks after a crash).
//!
//! A remote broker may be several instances sharing one PostgreSQL store
//! ([`fleet::RemoteFleet`]): CoAP and HTTPS devices spread over them and move
//! to the next when theirs does not answer (`failover_after`); MQTT devices
//! share the one MQTT server the instances consume from.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod backend;
pub mod device;
pub mod fleet;
pub mod ledger;
pub mod live;
pub mod lossy;
pub mod options;
mod runner;
pub mod service;
pub mod stats;

pub use fleet::{Endpoints, RemoteFleet};
pub use live::Frame;
pub use options::{BrokerTarget, Faults, RevokePlan, SimOptions, Transport, TransportMix};
pub use runner::{Outcome, run};
pub use stats::{Report, Snapshot};

/// What can stop a simulation from running.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Invalid options.
    #[error("invalid options: {0}")]
    Options(String),
    /// Setting up the fleet, the backend or the transports failed.
    #[error("{0}")]
    Setup(String),
    /// The broker library refused or failed.
    #[error(transparent)]
    Broker(#[from] certbound_broker::BrokerError),
    /// The registry (data directory, devices, APIs, groups) refused or failed.
    #[error(transparent)]
    Registry(#[from] certbound_registry::RegistryError),
}

/// Wall-clock Unix seconds (the agent's system clock).
pub(crate) fn unix_now() -> u64 {
    use certbound_agent::Clock as _;
    certbound_agent::SystemClock.now_secs()
}

/// Wall-clock Unix milliseconds.
pub(crate) fn unix_now_ms() -> u64 {
    use certbound_agent::Clock as _;
    certbound_agent::SystemClock.now_ms()
}
