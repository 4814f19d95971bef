//! Partner CAs (`certbound ca trust add`): CAs whose device certificates the
//! service accepts, each with the group its devices join on first use. They
//! live in the store, so every instance of a service trusts the same ones
//! and a change made through one reaches the others with the CA reload
//! (twice a second).
//!
//! Data directories made before they moved to the store kept them as files,
//! `pki/external/<name>.pem` and `<name>.json` (`{"jit_group": ...}`);
//! [`import_files`] moves those into the store once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use certbound_pki::{ExternalAnchor, PkiPaths};

use crate::error::RegistryError;
use crate::store::{ExternalCa, Store, StoreError};

/// Where earlier versions kept partner CAs: `pki/external/`.
pub fn files_dir(paths: &PkiPaths) -> PathBuf {
    paths.dir.join("external")
}

/// Where [`import_files`] moves the files it imported: `pki/external.imported/`.
pub fn imported_dir(paths: &PkiPaths) -> PathBuf {
    paths.dir.join("external.imported")
}

/// The trust anchors for a trust store and, by name, the group each CA's
/// devices join on first use.
pub fn anchors(cas: &[ExternalCa]) -> (Vec<ExternalAnchor>, HashMap<String, Option<String>>) {
    let groups = cas
        .iter()
        .map(|c| (c.name.clone(), c.jit_group.clone()))
        .collect();
    let anchors = cas
        .iter()
        .map(|c| ExternalAnchor {
            name: c.name.clone(),
            cert_der: c.cert_der.clone(),
        })
        .collect();
    (anchors, groups)
}

/// Moves partner CAs kept as files (earlier versions) into the store, then
/// the files to [`imported_dir`]; returns how many were imported. A name the
/// store holds already keeps the store's CA (another instance imported or
/// added it). Nothing happens without `pki/external/`.
pub async fn import_files(
    store: &Store,
    paths: &PkiPaths,
    now: u64,
) -> Result<usize, RegistryError> {
    let dir = files_dir(paths);
    let found = read_files(&dir)?;
    if found.is_empty() {
        return Ok(0);
    }
    let mut imported = 0;
    for ca in &found {
        match store.add_external_ca(ca, now).await {
            Ok(()) => imported += 1,
            Err(StoreError::Conflict { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let to = imported_dir(paths);
    std::fs::create_dir_all(&to).map_err(RegistryError::io(&to))?;
    for ca in &found {
        for ext in ["pem", "json"] {
            let from = dir.join(format!("{}.{ext}", ca.name));
            if from.exists() {
                let dest = to.join(format!("{}.{ext}", ca.name));
                std::fs::rename(&from, &dest).map_err(RegistryError::io(&from))?;
            }
        }
    }
    // Only now empty: anything else in it is the operator's and stays.
    let _ = std::fs::remove_dir(&dir);
    tracing::info!(imported, dir = %dir.display(), "partner CAs moved from files into the store");
    Ok(imported)
}

/// The partner CAs kept as files under `dir`, by name.
fn read_files(dir: &Path) -> Result<Vec<ExternalCa>, RegistryError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(RegistryError::io(dir)(e)),
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
    let mut out = Vec::new();
    for name in names {
        let pem_path = dir.join(format!("{name}.pem"));
        let pem = std::fs::read_to_string(&pem_path).map_err(RegistryError::io(&pem_path))?;
        let cert_der = certbound_pki::parse_pem_certs(&pem)?
            .into_iter()
            .next()
            .ok_or_else(|| {
                RegistryError::Invalid(format!("{}: no certificate", pem_path.display()))
            })?;
        let meta_path = dir.join(format!("{name}.json"));
        let jit_group = match std::fs::read_to_string(&meta_path) {
            Ok(text) => serde_json::from_str::<serde_json::Value>(&text)
                .map_err(|e| RegistryError::Invalid(format!("{}: {e}", meta_path.display())))?
                .get("jit_group")
                .and_then(|g| g.as_str())
                .map(str::to_string),
            Err(_) => None,
        };
        out.push(ExternalCa {
            name,
            cert_der,
            jit_group,
        });
    }
    Ok(out)
}
