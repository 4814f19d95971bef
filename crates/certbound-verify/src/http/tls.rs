//! rustls configurations for the server and client side, built with the
//! aws-lc-rs provider from PEM text.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig, SupportedProtocolVersion};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::VerifyError;

/// The one ALPN protocol both sides offer: certbound speaks HTTP/1.1 only.
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

/// Whether (and how strictly) a TLS server asks clients for a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// Never ask for a client certificate (the client CA, if given, is ignored).
    #[default]
    None,
    /// Ask for one; a client without a certificate is still accepted, but a
    /// certificate that does not chain to the client CA fails the handshake.
    /// Handlers see [`PeerCertificates`](super::PeerCertificates) only when
    /// the client presented a (verified) certificate.
    Optional,
    /// A certificate chaining to the client CA is required to connect.
    Required,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

static TLS13_ONLY: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];
static TLS12_AND_13: &[&SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

fn versions(min_tls13: bool) -> &'static [&'static SupportedProtocolVersion] {
    if min_tls13 { TLS13_ONLY } else { TLS12_AND_13 }
}

/// Parses every `CERTIFICATE` block of `pem` (in order); at least one is required.
///
/// `what` names the input in error messages ("server certificate chain", ...).
///
/// # Errors
/// [`VerifyError::TlsConfig`] for malformed PEM or no certificate.
pub fn parse_certificates(
    pem: &str,
    what: &str,
) -> Result<Vec<CertificateDer<'static>>, VerifyError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| VerifyError::TlsConfig(format!("the {what} is not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(VerifyError::TlsConfig(format!(
            "the {what} holds no `-----BEGIN CERTIFICATE-----` block"
        )));
    }
    Ok(certs)
}

/// Parses the first private key of `pem`: PKCS#8 (`PRIVATE KEY`), SEC1
/// (`EC PRIVATE KEY`) or PKCS#1 (`RSA PRIVATE KEY`).
///
/// # Errors
/// [`VerifyError::TlsConfig`] for malformed PEM or no key block.
pub fn parse_private_key(pem: &str, what: &str) -> Result<PrivateKeyDer<'static>, VerifyError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| {
        VerifyError::TlsConfig(format!(
            "the {what} has no usable private key (expected a PKCS#8 `PRIVATE KEY` or SEC1 `EC PRIVATE KEY` PEM block): {e}"
        ))
    })
}

fn root_store(ca_pem: &str, what: &str) -> Result<Arc<RootCertStore>, VerifyError> {
    let mut roots = RootCertStore::empty();
    for cert in parse_certificates(ca_pem, what)? {
        roots.add(cert).map_err(|e| {
            VerifyError::TlsConfig(format!(
                "a certificate of the {what} is not a usable trust anchor: {e}"
            ))
        })?;
    }
    Ok(Arc::new(roots))
}

/// Builds a TLS server configuration (aws-lc-rs provider, ALPN `http/1.1`).
///
/// * `cert_chain_pem`: the server certificate first, then its intermediates.
/// * `key_pem`: the server key, PKCS#8 or SEC1 PEM.
/// * `client_ca_pem`: the CA certificate(s) client certificates must chain to
///   (e.g. the certbound `ca-chain.pem`); required unless `client_auth` is
///   [`ClientAuth::None`], where it is ignored.
/// * `min_tls13`: offer TLS 1.3 only; otherwise TLS 1.2 and 1.3.
///
/// # Errors
/// [`VerifyError::TlsConfig`] for unparsable PEM, a key that does not match
/// the certificate, or client authentication without a client CA.
pub fn server_tls_config(
    cert_chain_pem: &str,
    key_pem: &str,
    client_ca_pem: Option<&str>,
    client_auth: ClientAuth,
    min_tls13: bool,
) -> Result<Arc<ServerConfig>, VerifyError> {
    let chain = parse_certificates(cert_chain_pem, "server certificate chain")?;
    let key = parse_private_key(key_pem, "server key")?;
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions(min_tls13))
        .map_err(|e| VerifyError::TlsConfig(format!("the TLS versions are not supported: {e}")))?;
    let builder = match client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Optional | ClientAuth::Required => {
            let ca_pem = client_ca_pem.ok_or_else(|| {
                VerifyError::TlsConfig(
                    "client certificate authentication is enabled but no client CA was given; pass the CA certificates client certificates must chain to, or use ClientAuth::None".into(),
                )
            })?;
            let roots = root_store(ca_pem, "client CA")?;
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider);
            let verifier = if client_auth == ClientAuth::Optional {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier.build().map_err(|e| {
                VerifyError::TlsConfig(format!(
                    "the client certificate verifier cannot be built: {e}"
                ))
            })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| {
        VerifyError::TlsConfig(format!(
            "the server certificate and key cannot be used together (does the key belong to the first certificate of the chain?): {e}"
        ))
    })?;
    config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    Ok(Arc::new(config))
}

/// Builds a TLS client configuration (aws-lc-rs provider, TLS 1.2 and 1.3,
/// ALPN `http/1.1`) that trusts only the CA certificate(s) in `ca_pem`.
///
/// `client_identity` is `(certificate chain PEM, key PEM)` for mutual TLS:
/// the client certificate first, then its intermediates; the key PKCS#8 or SEC1.
///
/// # Errors
/// [`VerifyError::TlsConfig`] for unparsable PEM or a key that does not
/// match the client certificate.
pub fn client_tls_config(
    ca_pem: &str,
    client_identity: Option<(&str, &str)>,
) -> Result<Arc<ClientConfig>, VerifyError> {
    let roots = root_store(ca_pem, "server CA")?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions(false))
        .map_err(|e| VerifyError::TlsConfig(format!("the TLS versions are not supported: {e}")))?
        .with_root_certificates(roots);
    let mut config = match client_identity {
        None => builder.with_no_client_auth(),
        Some((chain_pem, key_pem)) => {
            let chain = parse_certificates(chain_pem, "client certificate chain")?;
            let key = parse_private_key(key_pem, "client key")?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                VerifyError::TlsConfig(format!(
                    "the client certificate and key cannot be used together (does the key belong to the first certificate of the chain?): {e}"
                ))
            })?
        }
    };
    config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    Ok(Arc::new(config))
}
