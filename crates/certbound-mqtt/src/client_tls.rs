//! rustls client configurations for MQTT clients with a certbound identity
//! (devices, the broker's own client, backends).

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::MqttError;

/// A TLS 1.2/1.3 client configuration that trusts the CAs in `ca_pem` and
/// authenticates with `cert_chain_pem` (leaf first) and `key_pem` (PKCS#8),
/// using the aws-lc-rs provider. Use it with [`ClientOptions::tls`](crate::client::ClientOptions::tls)
/// to connect to [`MqttServer`](crate::MqttServer) or any MQTT server.
///
/// # Errors
/// [`MqttError::Tls`] naming the unusable input.
pub fn client_tls_config(
    ca_pem: &str,
    cert_chain_pem: &str,
    key_pem: &str,
) -> Result<Arc<rustls::ClientConfig>, MqttError> {
    let bad = |what: &str, e: &dyn std::fmt::Display| MqttError::Tls(format!("{what}: {e}"));
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let cert = cert.map_err(|e| bad("CA bundle", &e))?;
        roots.add(cert).map_err(|e| bad("CA certificate", &e))?;
    }
    if roots.is_empty() {
        return Err(MqttError::Tls("the CA bundle holds no certificate".into()));
    }
    let chain = CertificateDer::pem_slice_iter(cert_chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad("client certificate", &e))?;
    if chain.is_empty() {
        return Err(MqttError::Tls(
            "the client certificate file holds no certificate".into(),
        ));
    }
    let key =
        PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| bad("client key", &e))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("TLS versions", &e))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| bad("client certificate and key", &e))?;
    Ok(Arc::new(config))
}
