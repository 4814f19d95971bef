//! A fresh device key and the PKCS#10 CSR that proves it (certificate
//! renewal always uses a NEW key).
//!
//! The key is a P-256 scalar from the operating system's CSPRNG (through
//! `rand`), held by the `p256` crate like every device key; `rcgen` writes
//! and signs the CSR: subject `CN=<device id>` and the device's SAN URI
//! `urn:certbound:device:<id>` (RFC 7030 §4.2.2 asks a re-enrollment CSR to
//! repeat the current subject and SAN; the broker ignores both and takes only
//! the key).

use certbound_proto::Signer as _;
use certbound_proto::crypto::P256Signer;
use p256::pkcs8::{EncodePrivateKey as _, LineEnding};
use rand::RngCore as _;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, KeyPair, PKCS_ECDSA_P256_SHA256, SanType,
};
use zeroize::Zeroizing;

use crate::error::AgentError;

/// A newly generated device key and its CSR.
pub struct NewKey {
    key_pem: Zeroizing<String>,
    signer: P256Signer,
    csr_der: Vec<u8>,
}

impl std::fmt::Debug for NewKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewKey")
            .field("public_key", self.signer.public_key())
            .field("csr_len", &self.csr_der.len())
            .finish_non_exhaustive()
    }
}

impl NewKey {
    /// Generates a P-256 key and a CSR for `device_id` signed with it.
    pub fn generate(device_id: &str) -> Result<Self, AgentError> {
        let secret = random_secret();
        let key_pem = secret
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| AgentError::Credentials(format!("encoding the new key: {e}")))?;
        Self::from_pkcs8_pem(device_id, key_pem)
    }

    /// A CSR for an existing PKCS#8 key (tests, keys made elsewhere).
    pub fn from_pkcs8_pem(device_id: &str, key_pem: Zeroizing<String>) -> Result<Self, AgentError> {
        let signer = P256Signer::from_pkcs8_pem(&key_pem)
            .map_err(|e| AgentError::Credentials(format!("the new key: {e}")))?;
        let csr_der = csr_for(device_id, &key_pem)?;
        Ok(Self {
            key_pem,
            signer,
            csr_der,
        })
    }

    /// The key, PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The signer for the new key.
    pub fn signer(&self) -> &P256Signer {
        &self.signer
    }

    /// The CSR, DER.
    pub fn csr_der(&self) -> &[u8] {
        &self.csr_der
    }
}

/// A uniformly random valid P-256 scalar (rejection sampling: a 32-byte
/// string is out of range with probability about 2^-32).
fn random_secret() -> p256::SecretKey {
    let mut bytes = Zeroizing::new([0u8; 32]);
    loop {
        rand::rng().fill_bytes(bytes.as_mut());
        if let Ok(key) = p256::SecretKey::from_slice(bytes.as_ref()) {
            return key;
        }
    }
}

/// A PKCS#10 CSR (DER) with `CN=<device_id>` and the device SAN URI,
/// signed (ECDSA P-256 SHA-256) with `key_pem`.
fn csr_for(device_id: &str, key_pem: &str) -> Result<Vec<u8>, AgentError> {
    let bad = |e: rcgen::Error| AgentError::Credentials(format!("building the CSR: {e}"));
    let key =
        KeyPair::from_pkcs8_pem_and_sign_algo(key_pem, &PKCS_ECDSA_P256_SHA256).map_err(bad)?;
    let mut params = CertificateParams::default();
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, device_id);
    params.distinguished_name = subject;
    let uri = format!("{}{device_id}", certbound_pki::DEVICE_URI_PREFIX);
    params.subject_alt_names = vec![SanType::URI(uri.try_into().map_err(bad)?)];
    let csr = params.serialize_request(&key).map_err(bad)?;
    Ok(csr.der().to_vec())
}

#[cfg(test)]
mod tests {
    use x509_parser::prelude::*;

    use super::*;

    #[test]
    fn the_csr_parses_names_the_device_and_its_signature_verifies() {
        let new = NewKey::generate("sensor-7").unwrap();
        let (rest, csr) = X509CertificationRequest::from_der(new.csr_der()).unwrap();
        assert!(rest.is_empty());
        csr.verify_signature().expect("signed by the new key");
        let info = &csr.certification_request_info;
        assert_eq!(info.subject.to_string(), "CN=sensor-7");
        // The CSR carries the new key.
        let spki_point = info.subject_pki.subject_public_key.data.to_vec();
        assert_eq!(spki_point, new.signer().public_key().to_sec1());
        // The device SAN is requested.
        let sans: Vec<String> = csr
            .requested_extensions()
            .into_iter()
            .flatten()
            .filter_map(|e| match e {
                ParsedExtension::SubjectAlternativeName(san) => Some(san),
                _ => None,
            })
            .flat_map(|san| san.general_names.iter().map(|n| n.to_string()))
            .collect();
        assert_eq!(sans, ["URI(urn:certbound:device:sensor-7)"]);
    }

    #[test]
    fn every_key_is_new() {
        let a = NewKey::generate("d").unwrap();
        let b = NewKey::generate("d").unwrap();
        assert_ne!(a.signer().public_key(), b.signer().public_key());
        assert_ne!(a.key_pem(), b.key_pem());
        assert!(a.key_pem().starts_with("-----BEGIN PRIVATE KEY-----"));
        // The PEM round-trips to the same key.
        let again = P256Signer::from_pkcs8_pem(a.key_pem()).unwrap();
        assert_eq!(again.public_key(), a.signer().public_key());
    }
}
