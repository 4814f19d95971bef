//! The rustls server configuration: the server certificate, and client
//! certificates required and verified against the configured CA roots.

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::MqttError;

/// Builds the TLS configuration (aws-lc-rs provider, TLS 1.2 and 1.3, client
/// certificates required).
pub(crate) fn server_config(
    cert_chain_pem: &str,
    key_pem: &str,
    client_ca_pem: &str,
) -> Result<Arc<ServerConfig>, MqttError> {
    let chain = CertificateDer::pem_slice_iter(cert_chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| MqttError::ServerCert(format!("unreadable PEM: {e}")))?;
    if chain.is_empty() {
        return Err(MqttError::ServerCert("no CERTIFICATE block found".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| MqttError::ServerKey(format!("no usable private key: {e}")))?;

    let mut roots = RootCertStore::empty();
    for der in CertificateDer::pem_slice_iter(client_ca_pem.as_bytes()) {
        let der = der.map_err(|e| MqttError::ClientCa(format!("unreadable PEM: {e}")))?;
        roots
            .add(der)
            .map_err(|e| MqttError::ClientCa(format!("not a usable CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(MqttError::ClientCa("no CERTIFICATE block found".into()));
    }

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
            .build()
            .map_err(|e| MqttError::ClientCa(e.to_string()))?;
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| MqttError::Config(format!("TLS protocol versions: {e}")))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| MqttError::ServerKey(format!("rejected with the certificate: {e}")))?;
    Ok(Arc::new(config))
}
