//! Which client certificates the HTTPS server lets through, and how
//! `/oauth/*` tells a CA-verified certificate from a pinned self-signed one.
//!
//! * A certificate that chains to a trusted CA (the certbound CA, plus the
//!   operator's own CAs of `[https] client_ca_file`) passes the handshake,
//!   unless it is a revoked service certificate.
//! * A certificate that chains to no trusted CA passes the handshake only
//!   when its SHA-256 thumbprint is pinned by an active
//!   `self_signed_tls_client_auth` client (RFC 8705 §2.2); it can then serve
//!   only that client at `/oauth/*`. Device routes (EST) verify the chain to
//!   the certbound CA themselves, so a pinned certificate never reaches them
//!   as a device.
//! * The pinned and revoked sets live in memory, refreshed from the store
//!   every [`REFRESH_EVERY`] (a revocation or a new pin takes effect within it).

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine as _;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore};

use crate::error::BrokerError;
use crate::store::Store;

/// How often the pinned and revoked sets are reloaded from the store.
pub const REFRESH_EVERY: Duration = Duration::from_millis(500);

/// A SHA-256 certificate thumbprint.
type Thumbprint = [u8; 32];

/// The trust decisions about client certificates, shared by the TLS layer
/// and `/oauth/*`.
#[derive(Debug, Default)]
pub struct ClientTrust {
    /// Chain verification to the trusted CAs; `None`: no CA (no certificate
    /// chains, e.g. a service built without TLS).
    chain: Option<Arc<dyn ClientCertVerifier>>,
    pinned: RwLock<HashSet<Thumbprint>>,
    revoked: RwLock<HashSet<Thumbprint>>,
}

impl ClientTrust {
    /// Trusts the CA certificates of every PEM text in `ca_pems` (the
    /// certbound CA chain first, then the operator's own client CAs).
    ///
    /// # Errors
    /// [`BrokerError::Invalid`] for unparsable PEM or an unusable anchor.
    pub fn new(ca_pems: &[(&str, String)]) -> Result<Self, BrokerError> {
        let mut roots = RootCertStore::empty();
        for (what, pem) in ca_pems {
            let certs = certbound_verify::http::tls::parse_certificates(pem, what)
                .map_err(|e| BrokerError::Invalid(format!("HTTPS client CAs: {e}")))?;
            for cert in certs {
                roots.add(cert).map_err(|e| {
                    BrokerError::Invalid(format!(
                        "HTTPS client CAs: a certificate of the {what} is not a usable trust anchor: {e}"
                    ))
                })?;
            }
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let chain = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .allow_unauthenticated()
            .build()
            .map_err(|e| {
                BrokerError::Invalid(format!(
                    "the client certificate verifier cannot be built: {e}"
                ))
            })?;
        Ok(Self {
            chain: Some(chain),
            ..Self::default()
        })
    }

    /// Whether `chain` (leaf first) chains to a trusted CA now.
    pub fn chain_trusted(&self, chain: &[Vec<u8>]) -> bool {
        let (Some(verifier), Some((leaf, rest))) = (&self.chain, chain.split_first()) else {
            return false;
        };
        let intermediates: Vec<CertificateDer<'_>> = rest
            .iter()
            .map(|c| CertificateDer::from(c.as_slice()))
            .collect();
        verifier
            .verify_client_cert(
                &CertificateDer::from(leaf.as_slice()),
                &intermediates,
                UnixTime::now(),
            )
            .is_ok()
    }

    /// Whether the certificate with this thumbprint is a revoked service certificate.
    pub fn is_revoked(&self, thumbprint: &Thumbprint) -> bool {
        self.revoked
            .read()
            .map(|set| set.contains(thumbprint))
            .unwrap_or(true)
    }

    /// Whether a self-signed client pins this thumbprint.
    pub fn is_pinned(&self, thumbprint: &Thumbprint) -> bool {
        self.pinned
            .read()
            .map(|set| set.contains(thumbprint))
            .unwrap_or(false)
    }

    /// Reloads the pinned and revoked sets from the store.
    pub async fn refresh(&self, store: &Store, now: u64) -> Result<(), BrokerError> {
        let pinned: HashSet<Thumbprint> = store
            .pinned_client_thumbprints()
            .await?
            .iter()
            .filter_map(|t| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(t)
                    .ok()
                    .and_then(|b| Thumbprint::try_from(b.as_slice()).ok())
            })
            .collect();
        let revoked: HashSet<Thumbprint> = store
            .revoked_service_thumbprints(now)
            .await?
            .iter()
            .filter_map(|t| {
                hex::decode(t)
                    .ok()
                    .and_then(|b| Thumbprint::try_from(b.as_slice()).ok())
            })
            .collect();
        if let Ok(mut set) = self.pinned.write() {
            *set = pinned;
        }
        if let Ok(mut set) = self.revoked.write() {
            *set = revoked;
        }
        Ok(())
    }

    /// Keeps the sets current until the task is dropped.
    pub async fn keep_current(self: Arc<Self>, store: Store) {
        let mut ticker = tokio::time::interval(REFRESH_EVERY);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if let Err(e) = self.refresh(&store, crate::clock::unix_now()).await {
                tracing::warn!(error = %e, "could not reload pinned client certificates and revoked service certificates");
            }
        }
    }

    /// The rustls verifier of the HTTPS server built on this trust.
    pub fn tls_verifier(self: &Arc<Self>) -> Result<Arc<dyn ClientCertVerifier>, BrokerError> {
        let inner = self.chain.clone().ok_or_else(|| {
            BrokerError::Invalid("the HTTPS client verifier needs at least one CA".into())
        })?;
        Ok(Arc::new(TlsGate {
            inner,
            trust: self.clone(),
        }))
    }
}

/// The HTTPS server's client-certificate verifier: chain to a trusted CA
/// (revoked service certificates refused) or a pinned thumbprint.
#[derive(Debug)]
struct TlsGate {
    inner: Arc<dyn ClientCertVerifier>,
    trust: Arc<ClientTrust>,
}

impl ClientCertVerifier for TlsGate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // No hints: self-signed clients must send their certificate too.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let thumbprint = certbound_pki::thumbprint_sha256(end_entity.as_ref());
        if self.trust.is_revoked(&thumbprint) {
            return Err(rustls::Error::InvalidCertificate(CertificateError::Revoked));
        }
        match self
            .inner
            .verify_client_cert(end_entity, intermediates, now)
        {
            Ok(verified) => Ok(verified),
            Err(_) if self.trust.is_pinned(&thumbprint) => Ok(ClientCertVerified::assertion()),
            Err(e) => Err(e),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
