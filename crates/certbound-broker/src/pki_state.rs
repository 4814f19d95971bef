//! The CA material the running broker uses — trust store (all issuing CAs
//! of the rotation overlap), current issuing CA, its chain — reloaded when
//! `certbound ca rotate-issuing` changes the files under `pki/`.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use certbound_pki::{IssuingCa, PkiPaths, TrustStore};

use crate::error::BrokerError;

/// One consistent snapshot of the CA files.
pub struct PkiState {
    /// Every trusted CA (root, current and previous issuing CAs).
    pub trust: TrustStore,
    /// The CA that signs new device certificates.
    pub ca: IssuingCa,
    /// The issuing CA certificate (DER) sent after a new device certificate.
    pub issuing_der: Vec<u8>,
    /// Every certificate of `ca-chain.pem` (DER): issuing CAs, then the root.
    pub chain_der: Vec<Vec<u8>>,
    stamp: Option<SystemTime>,
}

impl std::fmt::Debug for PkiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PkiState")
            .field("issuing_der_len", &self.issuing_der.len())
            .field("stamp", &self.stamp)
            .finish()
    }
}

fn stamp(path: &PathBuf) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl PkiState {
    /// Loads the CA files.
    pub fn load(paths: &PkiPaths) -> Result<Self, BrokerError> {
        let stamp = stamp(&paths.issuing_cert());
        let trust = TrustStore::load(paths)?;
        let ca = IssuingCa::load(paths)?;
        let chain_path = paths.chain();
        let chain_pem =
            std::fs::read_to_string(&chain_path).map_err(BrokerError::io(&chain_path))?;
        let chain_der = certbound_pki::parse_pem_certs(&chain_pem)?;
        Ok(Self {
            trust,
            chain_der,
            issuing_der: ca.cert_der().to_vec(),
            ca,
            stamp,
        })
    }
}

/// The snapshot shared by every endpoint.
#[derive(Debug, Clone)]
pub struct SharedPki {
    paths: PkiPaths,
    inner: Arc<RwLock<Arc<PkiState>>>,
}

impl SharedPki {
    /// Loads the CA files under `paths`.
    pub fn load(paths: PkiPaths) -> Result<Self, BrokerError> {
        let state = PkiState::load(&paths)?;
        Ok(Self {
            paths,
            inner: Arc::new(RwLock::new(Arc::new(state))),
        })
    }

    /// The current snapshot.
    pub fn get(&self) -> Arc<PkiState> {
        match self.inner.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Reloads when the issuing CA file changed; returns whether it did.
    pub fn reload_if_changed(&self) -> Result<bool, BrokerError> {
        let now = stamp(&self.paths.issuing_cert());
        if now == self.get().stamp {
            return Ok(false);
        }
        let state = Arc::new(PkiState::load(&self.paths)?);
        match self.inner.write() {
            Ok(mut g) => *g = state,
            Err(p) => *p.into_inner() = state,
        }
        Ok(true)
    }
}
