//! The device identity: private key and certificate chain.

use std::path::Path;

use certbound_pki::{cert_summary, parse_pem_certs, thumbprint_sha256};
use certbound_proto::Signer;
use certbound_proto::crypto::P256Signer;
use certbound_proto::key::EcPublicKey;
use zeroize::Zeroizing;

use crate::error::AgentError;

/// A device's key and certificate chain (leaf first).
pub struct DeviceIdentity {
    device_id: String,
    signer: P256Signer,
    chain: Vec<Vec<u8>>,
    thumbprint: [u8; 32],
    key_pem: Zeroizing<String>,
    cert_pem: String,
}

impl std::fmt::Debug for DeviceIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceIdentity")
            .field("device_id", &self.device_id)
            .field("thumbprint", &hex_lower(&self.thumbprint))
            .field("key", &"...")
            .finish()
    }
}

fn hex_lower(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl DeviceIdentity {
    /// Loads `<id>.key.pem` (PKCS#8) and `<id>.cert.pem` (leaf, then chain).
    pub fn load(key_file: &Path, cert_file: &Path) -> Result<Self, AgentError> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|source| AgentError::Io {
                path: p.to_path_buf(),
                source,
            })
        };
        Self::from_pem(&read(key_file)?, &read(cert_file)?)
    }

    /// From PEM texts.
    pub fn from_pem(key_pem: &str, cert_pem: &str) -> Result<Self, AgentError> {
        let signer = P256Signer::from_pkcs8_pem(key_pem)
            .map_err(|e| AgentError::Credentials(format!("private key: {e}")))?;
        let chain = parse_pem_certs(cert_pem)
            .map_err(|e| AgentError::Credentials(format!("certificate file: {e}")))?;
        let leaf = chain.first().ok_or_else(|| {
            AgentError::Credentials("certificate file holds no certificate".into())
        })?;
        let summary =
            cert_summary(leaf).map_err(|e| AgentError::Credentials(format!("certificate: {e}")))?;
        let device_id = summary.device_id.ok_or_else(|| {
            AgentError::Credentials("the certificate is not a certbound device certificate (no urn:certbound:device SAN)".into())
        })?;
        let parsed = x509_public_key(leaf)?;
        if &parsed != signer.public_key() {
            return Err(AgentError::Credentials(
                "the private key does not belong to the certificate".into(),
            ));
        }
        Ok(Self {
            device_id,
            signer,
            thumbprint: thumbprint_sha256(leaf),
            chain,
            key_pem: Zeroizing::new(key_pem.to_string()),
            cert_pem: cert_pem.to_string(),
        })
    }

    /// The device id (from the certificate).
    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// The signer for the device key.
    pub fn signer(&self) -> &P256Signer {
        &self.signer
    }

    /// The certificate chain, leaf first (DER).
    pub fn chain(&self) -> &[Vec<u8>] {
        &self.chain
    }

    /// SHA-256 thumbprint of the leaf certificate.
    pub fn thumbprint(&self) -> [u8; 32] {
        self.thumbprint
    }

    /// The private key as loaded, PKCS#8 PEM (for TLS client authentication).
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The certificate chain as loaded, PEM, leaf first.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The leaf certificate's validity, Unix seconds.
    pub fn validity(&self) -> crate::renewal::CertTimes {
        let (not_before, not_after) = self
            .chain
            .first()
            .and_then(|leaf| cert_summary(leaf).ok())
            .map_or((0, 0), |s| (s.not_before, s.not_after));
        crate::renewal::CertTimes {
            not_before,
            not_after,
        }
    }
}

fn x509_public_key(der: &[u8]) -> Result<EcPublicKey, AgentError> {
    let spki = certbound_pki::public_key_sec1(der)
        .map_err(|e| AgentError::Credentials(format!("certificate key: {e}")))?;
    EcPublicKey::from_sec1(&spki)
        .map_err(|e| AgentError::Credentials(format!("certificate key: {e}")))
}
