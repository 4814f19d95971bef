//! certbound PKI: the CA hierarchy, device certificate issuance and pure
//! device-certificate validation.
//!
//! * [`init_ca`] creates a root CA and an issuing CA (ECDSA P-256) in
//!   `<data dir>/pki/` ([`PkiPaths`]);
//! * [`IssuingCa`] issues device certificates, either with a fresh key
//!   ([`IssuingCa::issue_device`]) or for a key the device already has
//!   ([`IssuingCa::issue_device_cert`]);
//! * [`TrustStore::verify_device_cert`] validates a device certificate chain at
//!   a given time and extracts the device identity and public key.
//!
//! Time is always passed in as unix seconds; validation never reads the clock.
//!
//! Device certificate profile: subject CN = device id, SAN URI
//! `urn:certbound:device:<id>`, EKU clientAuth, keyUsage digitalSignature,
//! CA:FALSE, subject/authority key identifiers, random 16-byte serial,
//! notBefore = now − 60 s.
//!
//! # Example
//!
//! ```
//! use certbound_pki::{init_ca, CaOptions, IssuingCa, PkiPaths, TrustStore};
//!
//! # fn main() -> Result<(), certbound_pki::PkiError> {
//! # let tmp = tempfile::tempdir().map_err(|e| certbound_pki::PkiError::Malformed(e.to_string()))?;
//! # let data_dir = tmp.path();
//! let now = 1_750_000_000; // unix seconds, e.g. from SystemTime::now()
//! let paths = PkiPaths::new(data_dir);
//! init_ca(&paths, &CaOptions::default(), now)?;
//!
//! let ca = IssuingCa::load(&paths)?;
//! let bundle = ca.issue_device("sensor-0001", 365, now)?;
//! let (_key_file, _cert_file) = bundle.write_to(&data_dir.join("devices"), "sensor-0001")?;
//!
//! let store = TrustStore::load(&paths)?;
//! let verified = store.verify_device_cert(&bundle.cert.der, &[], now + 3600, 60)?;
//! assert_eq!(verified.device_id, "sensor-0001");
//! assert_eq!(verified.thumbprint, bundle.cert.thumbprint);
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod ca;
mod cert;
mod device_id;
mod error;
mod files;
mod issue;
mod pem;
mod validate;

pub use ca::{CLOCK_SKEW_SECS, CaOptions, IssuingCa, init_ca};
pub use cert::{CertSummary, cert_summary, public_key_sec1, thumbprint_sha256};
pub use device_id::{DEVICE_URI_PREFIX, MAX_DEVICE_ID_LEN, validate_device_id};
pub use error::PkiError;
pub use files::PkiPaths;
pub use issue::{DeviceBundle, IssuedCert, SERVICE_URI_PREFIX};
pub use pem::parse_pem_certs;
pub use validate::{TrustStore, VerifiedDeviceCert};
