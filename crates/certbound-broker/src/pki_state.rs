//! The CA material the running broker uses — trust store (all issuing CAs
//! of the rotation overlap), current issuing CA, its chain — reloaded when
//! `certbound ca rotate-issuing` changes the files under `pki/`.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use std::collections::HashMap;

use certbound_pki::{IssuingCa, PkiPaths, TrustStore};
use certbound_registry::instances::SharedCas;

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
    /// External CAs (`certbound ca trust add`) by name, with the group their
    /// devices join on first use (`None`: just-in-time registration off).
    pub external: HashMap<String, Option<String>>,
    /// What the store holds for the whole service: the issuing CAs every
    /// instance published (trusted as intermediates under the root) and the
    /// partner CAs.
    pub shared: SharedCas,
    /// Device certificates validated against this trust store.
    pub(crate) validated: crate::cert_cache::ValidatedCerts,
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
    /// Loads the CA files, trusting the `shared` CAs of the service too.
    pub fn load(paths: &PkiPaths, shared: SharedCas) -> Result<Self, BrokerError> {
        let stamp = latest_stamp(paths);
        let (anchors, external) = certbound_registry::external::anchors(&shared.external);
        let trust = TrustStore::load_with(paths, &shared.issuing)?.with_external(anchors)?;
        let ca = IssuingCa::load(paths)?;
        let chain_path = paths.chain();
        let chain_pem =
            std::fs::read_to_string(&chain_path).map_err(BrokerError::io(&chain_path))?;
        let chain_der = certbound_pki::parse_pem_certs(&chain_pem)?;
        Ok(Self {
            trust,
            external,
            chain_der,
            issuing_der: ca.cert_der().to_vec(),
            ca,
            shared,
            validated: Default::default(),
            stamp,
        })
    }
}

/// The snapshot shared by every endpoint.
#[derive(Debug, Clone)]
pub struct SharedPki {
    paths: PkiPaths,
    inner: Arc<RwLock<Arc<PkiState>>>,
    crls: Arc<crate::crl_cache::CrlCache>,
}

impl SharedPki {
    /// Loads the CA files under `paths` (see [`SharedPki::reload_if_changed`]
    /// for the other instances' issuing CAs).
    pub fn load(paths: PkiPaths) -> Result<Self, BrokerError> {
        let state = PkiState::load(&paths, SharedCas::default())?;
        Ok(Self {
            paths,
            inner: Arc::new(RwLock::new(Arc::new(state))),
            crls: Arc::default(),
        })
    }

    /// The CRLs of every issuing CA still valid (built once per change, see
    /// [`crate::crl_cache`]).
    pub async fn crls(
        &self,
        store: &crate::store::Store,
        now: u64,
    ) -> Result<Arc<crate::crl_cache::CrlSet>, BrokerError> {
        self.crls.get(store, &self.paths, self.get(), now).await
    }

    /// The current snapshot.
    pub fn get(&self) -> Arc<PkiState> {
        match self.inner.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Reloads when the issuing CA files changed, or when what the store
    /// holds for the service is not `shared` any more (another instance
    /// published an issuing CA, an operator trusted or dropped a partner CA
    /// through any instance); returns whether it did.
    pub fn reload_if_changed(&self, shared: &SharedCas) -> Result<bool, BrokerError> {
        let now = latest_stamp(&self.paths);
        let current = self.get();
        if now == current.stamp && &current.shared == shared {
            return Ok(false);
        }
        let state = Arc::new(PkiState::load(&self.paths, shared.clone())?);
        match self.inner.write() {
            Ok(mut g) => *g = state,
            Err(p) => *p.into_inner() = state,
        }
        Ok(true)
    }
}

/// The modification time of the issuing CA certificate, whose change
/// (`certbound ca rotate-issuing`) means reload.
fn latest_stamp(paths: &PkiPaths) -> Option<SystemTime> {
    stamp(&paths.issuing_cert())
}
