//! The CRLs the running broker serves (`GET /crl`, `/crl/{ca}`, `/crls` on
//! HTTPS, `GET /crl` on CoAP), built once per change and shared by every
//! request: rebuilt when a certificate is revoked (the store's CRL epoch
//! moved, checked at most once a second), when the issuing CAs change
//! (`ca rotate-issuing`, picked up by the PKI reload), or when the set is an
//! hour old (so nextUpdate never comes near and expired entries drop out).

use std::sync::Arc;
use std::time::{Duration, Instant};

use certbound_pki::PkiPaths;

use crate::error::BrokerError;
use crate::pki_state::PkiState;
use crate::registry::{IssuerCrl, crl_set};
use crate::store::Store;

/// How often the store's CRL epoch is looked at (revocations show in the
/// CRLs at most this much later).
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// A set is rebuilt after this long even without a change, seconds.
pub const CRL_REFRESH_SECS: u64 = 3600;

/// One CRL per issuing CA that is still valid (see [`crl_set`]).
#[derive(Debug)]
pub struct CrlSet {
    /// The CRLs, the current issuing CA's first.
    pub crls: Vec<IssuerCrl>,
    /// When they were built (their thisUpdate), Unix seconds.
    pub built_at: u64,
}

impl CrlSet {
    /// The current issuing CA's CRL.
    pub fn current(&self) -> Option<&IssuerCrl> {
        self.crls.iter().find(|c| c.current)
    }

    /// The CRL of the issuing CA with serial `serial` (hex, any case).
    pub fn by_serial(&self, serial: &str) -> Option<&IssuerCrl> {
        let wanted = serial.trim_start_matches('0').to_ascii_lowercase();
        self.crls
            .iter()
            .find(|c| c.ca_serial.trim_start_matches('0') == wanted)
    }

    /// Every CRL, PEM, concatenated (what `openssl verify -CRLfile` reads).
    pub fn pem_bundle(&self) -> String {
        self.crls.iter().map(|c| c.crl.pem.as_str()).collect()
    }
}

struct Cached {
    set: Arc<CrlSet>,
    epoch: i64,
    pki: Arc<PkiState>,
    checked: Instant,
    number: u64,
}

/// The cache (one per broker, inside [`crate::pki_state::SharedPki`]).
#[derive(Default)]
pub struct CrlCache {
    cached: tokio::sync::Mutex<Option<Cached>>,
}

impl std::fmt::Debug for CrlCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrlCache").finish_non_exhaustive()
    }
}

impl CrlCache {
    /// The CRL set for `pki` (the current PKI snapshot) at `now`, rebuilt
    /// only when something changed. Concurrent callers wait for one build.
    pub async fn get(
        &self,
        store: &Store,
        paths: &PkiPaths,
        pki: Arc<PkiState>,
        now: u64,
    ) -> Result<Arc<CrlSet>, BrokerError> {
        let mut cached = self.cached.lock().await;
        let mut previous_number = 0;
        if let Some(c) = cached.as_mut() {
            previous_number = c.number;
            let fresh =
                Arc::ptr_eq(&c.pki, &pki) && now < c.set.built_at.saturating_add(CRL_REFRESH_SECS);
            if fresh && c.checked.elapsed() < CHECK_EVERY {
                return Ok(c.set.clone());
            }
            if fresh {
                let epoch = store.crl_epoch().await?;
                if epoch == c.epoch {
                    c.checked = Instant::now();
                    return Ok(c.set.clone());
                }
            }
        }
        // Read the epoch before the revoked certificates: a revocation
        // committed in between is then seen again at the next check.
        let epoch = store.crl_epoch().await?;
        // RFC 5280 §5.2.3: the CRL number grows with every CRL a CA issues.
        let number = now.max(previous_number.saturating_add(1));
        let crls = crl_set(store, paths, now, number).await?;
        if crls.iter().all(|c| !c.current) {
            return Err(BrokerError::Invalid(
                "no current issuing CA to sign the CRL; check `certbound ca show`".into(),
            ));
        }
        tracing::debug!(cas = crls.len(), epoch, "CRLs rebuilt");
        let set = Arc::new(CrlSet {
            crls,
            built_at: now,
        });
        *cached = Some(Cached {
            set: set.clone(),
            epoch,
            pki,
            checked: Instant::now(),
            number,
        });
        Ok(set)
    }
}
