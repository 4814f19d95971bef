//! Before a bulk run: which ids of the range are done (an earlier run into
//! this folder registered them), which are to do, which are someone else's;
//! and the manifest repaired after a crash.

use std::collections::HashMap;
use std::path::Path;

use certbound_pki::{parse_pem_certs, thumbprint_sha256};

use super::manifest::{self, ManifestRow};
use super::{MANIFEST_CSV, shard_name};
use crate::error::RegistryError;
use crate::store::{RegisteredCert, Store};

/// The leaf certificate thumbprint (hex) of a PEM chain file, if readable.
fn file_thumbprint(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let certs = parse_pem_certs(&text).ok()?;
    certs.first().map(|der| hex::encode(thumbprint_sha256(der)))
}

/// The decisions taken before any work.
pub(super) struct Plan {
    /// Ids to issue, with their numbers.
    pub(super) todo: Vec<(u64, String)>,
    pub(super) already: u64,
    pub(super) restored: u64,
    pub(super) stale: u64,
}

/// Decides, for each id of the range, whether it is done (registered by
/// an earlier run into `out`), to do, or someone else's (an error), and
/// repairs the manifest.
pub(super) async fn plan(
    store: &Store,
    out: &Path,
    ids: Vec<(u64, String)>,
) -> Result<Plan, RegistryError> {
    let names: Vec<String> = ids.iter().map(|(_, id)| id.clone()).collect();
    let registered: HashMap<String, Vec<RegisteredCert>> = store.registered_certs(&names).await?;
    drop(names);
    let mut existing = manifest::read(out)?;
    let mut restored: Vec<ManifestRow> = Vec::new();
    let mut foreign: Vec<String> = Vec::new();
    let mut unregistered_listed: Vec<String> = Vec::new();
    let mut todo = Vec::new();
    let mut already = 0u64;
    let mut stale = 0u64;
    let mut shard_exists: HashMap<String, bool> = HashMap::new();
    for (n, id) in ids {
        let shard = shard_name(n);
        let key_file = format!("{shard}/{id}.key.pem");
        let cert_file = format!("{shard}/{id}.cert.pem");
        let row = existing.by_id.get(&id).map(|&i| &existing.rows[i]);
        match (registered.get(&id), row) {
            (Some(certs), Some(row)) => {
                if certs.iter().any(|c| c.thumbprint == row.thumbprint) {
                    already += 1;
                } else {
                    foreign.push(id);
                }
            }
            (Some(certs), None) => {
                let on_disk = out
                    .join(&key_file)
                    .exists()
                    .then(|| file_thumbprint(&out.join(&cert_file)))
                    .flatten();
                match on_disk.and_then(|t| certs.iter().find(|c| c.thumbprint == t)) {
                    Some(c) => {
                        already += 1;
                        restored.push(ManifestRow {
                            id,
                            serial: c.serial.clone(),
                            thumbprint: c.thumbprint.clone(),
                            not_after: c.not_after,
                            key_file,
                            cert_file,
                        });
                    }
                    None => foreign.push(id),
                }
            }
            (None, Some(_)) => unregistered_listed.push(id),
            (None, None) => {
                let shard_here = *shard_exists
                    .entry(shard)
                    .or_insert_with_key(|s| out.join(s).is_dir());
                if shard_here && (out.join(&key_file).exists() || out.join(&cert_file).exists()) {
                    stale += 1;
                }
                todo.push((n, id));
            }
        }
    }
    let some = |v: &[String]| {
        let mut s = v.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
        if v.len() > 5 {
            s.push_str(&format!(" and {} more", v.len() - 5));
        }
        s
    };
    if !foreign.is_empty() {
        return Err(RegistryError::Invalid(format!(
            "{} device id(s) of this range are already registered but were not provisioned into {} \
             (no manifest row or matching certificate file there): {}; nothing was issued. \
             Choose another --prefix or --start, or the folder of the run that made them",
            foreign.len(),
            out.display(),
            some(&foreign)
        )));
    }
    if !unregistered_listed.is_empty() {
        return Err(RegistryError::Invalid(format!(
            "{} lists {} device(s) that this registry does not have: {}; nothing was issued. \
             Is --dir the data directory this folder was provisioned with?",
            out.join(MANIFEST_CSV).display(),
            unregistered_listed.len(),
            some(&unregistered_listed)
        )));
    }
    if existing.needs_rewrite || !restored.is_empty() {
        existing.rows.extend(restored.iter().cloned());
        manifest::rewrite(out, &existing.rows)?;
    }
    Ok(Plan {
        todo,
        already,
        restored: restored.len() as u64,
        stale,
    })
}
