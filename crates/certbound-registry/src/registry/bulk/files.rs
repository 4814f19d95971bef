//! Durable file writing for bulk provisioning: temp file, fsync, rename;
//! the output folder check and its lock.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;

use super::{MANIFEST_CSV, MANIFEST_JSONL};
use crate::error::RegistryError;

/// The lock file in the output folder: held (advisory `flock`) for the whole
/// run, so two runs never write the same folder at once.
pub(super) const LOCK_FILE: &str = ".certbound-bulk.lock";

/// PEM-encodes `der` with the given label (64-character lines).
pub(super) fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 2 * label.len() + 40);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for line in b64.as_bytes().chunks(64) {
        // base64 output is ASCII.
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

/// Whether a file holds a secret (mode 0600) or public data (0644).
#[derive(Debug, Clone, Copy)]
pub(super) enum Mode {
    Secret,
    Public,
}

/// Writes `dir/name` durably and atomically: `dir/.name.tmp` is created with
/// the final mode (never readable by others when secret), written, fsync'd,
/// then renamed over `dir/name` (replacing a stale file from an interrupted
/// run). The rename itself becomes durable with the next fsync of `dir`
/// ([`sync_dir`]), which the caller does before registering the device.
pub(super) fn write_durable(
    dir: &Path,
    name: &str,
    contents: &[u8],
    mode: Mode,
) -> Result<PathBuf, RegistryError> {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    remove_if_exists(&tmp)?;
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(match mode {
            Mode::Secret => 0o600,
            Mode::Public => 0o644,
        });
    }
    #[cfg(not(unix))]
    let _ = mode;
    let written = options.open(&tmp).and_then(|mut f| {
        f.write_all(contents)?;
        f.sync_data()
    });
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(RegistryError::Io {
            path: tmp,
            source: e,
        });
    }
    fs::rename(&tmp, &path).map_err(RegistryError::io(&path))?;
    Ok(path)
}

/// Removes a file; a missing file is fine.
pub(super) fn remove_if_exists(path: &Path) -> Result<(), RegistryError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(RegistryError::Io {
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

/// Makes the entries of directory `dir` (created files, renames) durable.
pub(super) fn sync_dir(dir: &Path) -> Result<(), RegistryError> {
    #[cfg(unix)]
    {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(RegistryError::io(dir))
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// True for the name of a shard folder: four or more ASCII digits.
pub(super) fn is_shard_name(name: &str) -> bool {
    name.len() >= 4 && name.bytes().all(|b| b.is_ascii_digit())
}

/// Checks that `out` is new, empty, or a bulk output folder (it holds
/// `manifest.csv`, or nothing but shard folders and our own files), creates
/// it when missing, and takes its lock. The returned file holds the lock
/// until dropped.
pub(super) fn prepare_out_dir(out: &Path) -> Result<fs::File, RegistryError> {
    match fs::read_dir(out) {
        Ok(entries) => {
            let mut has_manifest = false;
            let mut foreign: Option<String> = None;
            for entry in entries {
                let entry = entry.map_err(RegistryError::io(out))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if name == MANIFEST_CSV {
                    has_manifest = true;
                } else if !(name == MANIFEST_JSONL
                    || name == LOCK_FILE
                    || name.starts_with(".manifest.")
                    || is_shard_name(&name))
                {
                    foreign.get_or_insert(name);
                }
            }
            if let (false, Some(name)) = (has_manifest, foreign) {
                return Err(RegistryError::Invalid(format!(
                    "{} is not empty (it holds {name:?}) and is not a bulk provisioning folder (no {MANIFEST_CSV}): \
                     choose a new or empty folder with --out",
                    out.display()
                )));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::create_dir_all(out).map_err(RegistryError::io(out))?;
            if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
        }
        Err(e) => {
            return Err(RegistryError::Io {
                path: out.to_path_buf(),
                source: e,
            });
        }
    }
    let lock_path = out.join(LOCK_FILE);
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(RegistryError::io(&lock_path))?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(fs::TryLockError::WouldBlock) => Err(RegistryError::Invalid(format!(
            "another bulk provisioning run is writing into {} (it holds {LOCK_FILE}); wait for it to finish",
            out.display()
        ))),
        Err(fs::TryLockError::Error(e)) => Err(RegistryError::Io {
            path: lock_path,
            source: e,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_wraps_at_64_columns() {
        let text = pem("PRIVATE KEY", &[0u8; 100]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "-----BEGIN PRIVATE KEY-----");
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines.last().copied(), Some("-----END PRIVATE KEY-----"));
    }

    #[test]
    fn shard_names() {
        assert!(is_shard_name("0000"));
        assert!(is_shard_name("12345"));
        assert!(!is_shard_name("123"));
        assert!(!is_shard_name("00a0"));
    }
}
