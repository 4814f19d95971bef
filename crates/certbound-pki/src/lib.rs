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
//! Certificate lifecycle:
//!
//! * [`verify_csr`] checks a PKCS#10 request (DER or PEM, at most 8 KiB, P-256
//!   key, self-signature = proof of possession) and
//!   [`IssuingCa::issue_for_csr`] issues the device profile for its key; the
//!   request's subject, SANs and extensions are ignored;
//! * [`IssuingCa::crl`] signs a CRL of revoked serial numbers;
//! * [`rotate_issuing`] replaces the issuing CA under the same root and keeps
//!   the previous ones (`pki/issuing-ca.<serial>.pem`), which
//!   [`TrustStore::load`] keeps trusting until they expire; [`list_issuing`]
//!   lists them, [`IssuingCa::load_archived`] loads one (to sign its CRL);
//! * [`init_ca_root_key_at`] keeps the root key out of the data directory
//!   (offline); [`rotate_issuing_with_root_key`] takes it from there;
//! * private keys can be encrypted at rest with a [`KeyEncryptionKey`]
//!   (AES-256-GCM, [`seal_key`]; [`PkiPaths::with_key_encryption`]);
//! * [`pkcs7_certs_only`] wraps certificates for EST (RFC 7030, RFC 9148),
//!   [`pkcs7_certificates`] reads them back;
//! * [`TrustStore::with_external`] and
//!   [`TrustStore::verify_external_device_cert`] accept device certificates
//!   from external CAs (for just-in-time registration), kept apart from
//!   certbound's own CA.
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
mod crl;
mod csr;
mod device_id;
mod error;
mod external;
mod files;
mod identity;
mod issue;
mod join;
mod path;
mod pem;
mod pkcs7;
mod rotate;
mod sealed;
#[cfg(test)]
mod testutil;
mod validate;

pub use ca::{CLOCK_SKEW_SECS, CaOptions, IssuingCa, init_ca, init_ca_root_key_at};
pub use cert::{CertSummary, cert_summary, public_key_sec1, thumbprint_sha256};
pub use crl::{Crl, RevocationReason, RevokedEntry};
pub use csr::{MAX_CSR_LEN, VerifiedCsr, verify_csr};
pub use device_id::{
    BROKER_SERVICE_NAME, CLIENT_ID_PREFIX, DEVICE_URI_PREFIX, MAX_DEVICE_ID_LEN, RESERVED_NAMES,
    validate_device_id, validate_name,
};
pub use error::PkiError;
pub use external::{ExternalAnchor, ExternalDeviceCert};
pub use files::PkiPaths;
pub use identity::{IdentityKind, identity_kind, san_names};
pub use issue::{CLAIM_URI_PREFIX, DeviceBundle, IssuedCert, SERVICE_URI_PREFIX};
pub use join::{InstanceCa, begin_join, finish_join, sign_instance_ca};
pub use path::{MAX_PATH_STEPS, MAX_SIGNATURE_CHECKS, PathWork};
pub use pem::parse_pem_certs;
pub use pkcs7::{MAX_PKCS7_CERTS, pkcs7_certificates, pkcs7_certs_only};
pub use rotate::{CaInfo, RotatedCa, list_issuing, rotate_issuing, rotate_issuing_with_root_key};
pub use sealed::{
    KeyEncryptionKey, SEALED_KEY_LABEL, is_sealed, key_file_text, open_key, seal_key, seal_key_file,
};
pub use validate::{TrustStore, Validity, VerifiedClaimCert, VerifiedDeviceCert};
