//! The CA material the running broker uses — trust store (all issuing CAs
//! of the rotation overlap), current issuing CA, its chain — reloaded when
//! `certbound ca rotate-issuing` changes the files under `pki/`.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use std::collections::HashMap;

use certbound_pki::{ExternalAnchor, IssuingCa, PkiPaths, TrustStore};

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
    /// Issuing CA certificates (DER) the service's other instances
    /// published in the store: trusted as intermediates under the root.
    pub published: Vec<Vec<u8>>,
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
    /// Loads the CA files, trusting `published` issuing CAs (DER) too.
    pub fn load(paths: &PkiPaths, published: Vec<Vec<u8>>) -> Result<Self, BrokerError> {
        let stamp = latest_stamp(paths);
        let (anchors, external) = load_external(paths)?;
        let trust = TrustStore::load_with(paths, &published)?.with_external(anchors)?;
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
            published,
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
        let state = PkiState::load(&paths, Vec::new())?;
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

    /// Reloads when the issuing CA or the external CAs changed, or when the
    /// issuing CAs published by other instances are not `published` (DER,
    /// in the store's order) any more; returns whether it did.
    pub fn reload_if_changed(&self, published: &[Vec<u8>]) -> Result<bool, BrokerError> {
        let now = latest_stamp(&self.paths);
        let current = self.get();
        if now == current.stamp && current.published == published {
            return Ok(false);
        }
        let state = Arc::new(PkiState::load(&self.paths, published.to_vec())?);
        match self.inner.write() {
            Ok(mut g) => *g = state,
            Err(p) => *p.into_inner() = state,
        }
        Ok(true)
    }
}

/// Where `certbound ca trust add` keeps external CAs: `pki/external/<name>.pem`
/// and `<name>.json` (`{"jit_group": "..." | null}`).
pub fn external_dir(paths: &PkiPaths) -> PathBuf {
    paths.dir.join("external")
}

/// The newest modification time among the files whose change means reload.
fn latest_stamp(paths: &PkiPaths) -> Option<SystemTime> {
    let mut latest = stamp(&paths.issuing_cert());
    let dir = external_dir(paths);
    latest = latest.max(stamp(&dir));
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            latest = latest.max(stamp(&e.path()));
        }
    }
    latest
}

/// The external anchors and their just-in-time groups.
#[allow(clippy::type_complexity)]
pub fn load_external(
    paths: &PkiPaths,
) -> Result<(Vec<ExternalAnchor>, HashMap<String, Option<String>>), BrokerError> {
    let dir = external_dir(paths);
    let mut anchors = Vec::new();
    let mut groups = HashMap::new();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((anchors, groups)),
        Err(e) => return Err(BrokerError::io(&dir)(e)),
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".pem"))
                .map(str::to_string)
        })
        .collect();
    names.sort();
    for name in names {
        let pem_path = dir.join(format!("{name}.pem"));
        let pem = std::fs::read_to_string(&pem_path).map_err(BrokerError::io(&pem_path))?;
        let der = certbound_pki::parse_pem_certs(&pem)?
            .into_iter()
            .next()
            .ok_or_else(|| {
                BrokerError::Invalid(format!("{}: no certificate", pem_path.display()))
            })?;
        let meta_path = dir.join(format!("{name}.json"));
        let group = match std::fs::read_to_string(&meta_path) {
            Ok(text) => serde_json::from_str::<serde_json::Value>(&text)
                .map_err(|e| BrokerError::Invalid(format!("{}: {e}", meta_path.display())))?
                .get("jit_group")
                .and_then(|g| g.as_str())
                .map(str::to_string),
            Err(_) => None,
        };
        groups.insert(name.clone(), group);
        anchors.push(ExternalAnchor {
            name,
            cert_der: der,
        });
    }
    Ok((anchors, groups))
}
