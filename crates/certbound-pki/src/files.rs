//! Where the CA hierarchy lives on disk, and careful file writing.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::PkiError;

/// Locations of the CA files inside a data directory: `DIR/pki/...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiPaths {
    /// The `pki` directory itself (`<data dir>/pki`).
    pub dir: PathBuf,
}

impl PkiPaths {
    /// Paths for the data directory `data_dir`: the files live in `data_dir/pki`.
    pub fn new(data_dir: &Path) -> Self {
        PkiPaths {
            dir: data_dir.join("pki"),
        }
    }

    /// `pki/root-ca.pem`: the self-signed root certificate.
    pub fn root_cert(&self) -> PathBuf {
        self.dir.join("root-ca.pem")
    }

    /// `pki/root-ca.key.pem`: the root private key (PKCS#8, mode 0600).
    pub fn root_key(&self) -> PathBuf {
        self.dir.join("root-ca.key.pem")
    }

    /// `pki/issuing-ca.pem`: the issuing (intermediate) CA certificate.
    pub fn issuing_cert(&self) -> PathBuf {
        self.dir.join("issuing-ca.pem")
    }

    /// `pki/issuing-ca.key.pem`: the issuing CA private key (PKCS#8, mode 0600).
    pub fn issuing_key(&self) -> PathBuf {
        self.dir.join("issuing-ca.key.pem")
    }

    /// `pki/ca-chain.pem`: the issuing CA certificate followed by the root.
    pub fn chain(&self) -> PathBuf {
        self.dir.join("ca-chain.pem")
    }

    /// All five files, in the order `init_ca` writes them.
    pub(crate) fn all(&self) -> [PathBuf; 5] {
        [
            self.root_cert(),
            self.root_key(),
            self.issuing_cert(),
            self.issuing_key(),
            self.chain(),
        ]
    }
}

/// Whether a file holds a secret (created with mode 0600) or public data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Secrecy {
    Secret,
    Public,
}

/// Creates `path` (which must not exist) and writes `contents` to it.
///
/// Secret files are created with mode 0600 from the start (`open(2)` with
/// `O_CREAT|O_EXCL` and that mode), so they are never readable by others, not
/// even briefly. Existing files are never replaced.
pub(crate) fn write_new_file(
    path: &Path,
    contents: &[u8],
    secrecy: Secrecy,
) -> Result<(), PkiError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(match secrecy {
            Secrecy::Secret => 0o600,
            Secrecy::Public => 0o644,
        });
    }
    #[cfg(not(unix))]
    let _ = secrecy;
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            PkiError::AlreadyExists(path.to_path_buf())
        } else {
            PkiError::io(path, e)
        }
    })?;
    let written = file
        .write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|e| PkiError::io(path, e));
    if written.is_err() {
        // Do not leave a truncated file behind.
        drop(file);
        let _ = fs::remove_file(path);
    }
    written
}

/// Fails with [`PkiError::AlreadyExists`] for the first path that exists.
pub(crate) fn ensure_absent(paths: &[&Path]) -> Result<(), PkiError> {
    for path in paths {
        match fs::symlink_metadata(path) {
            Ok(_) => return Err(PkiError::AlreadyExists(path.to_path_buf())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(PkiError::io(*path, e)),
        }
    }
    Ok(())
}

/// Creates `dir` and its parents; a new leaf directory gets mode 0700 when
/// `private` (it holds keys).
pub(crate) fn create_dir(dir: &Path, private: bool) -> Result<(), PkiError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    #[cfg(not(unix))]
    let _ = private;
    builder.create(dir).map_err(|e| PkiError::io(dir, e))
}

/// Reads a whole text file.
pub(crate) fn read_text(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(|e| PkiError::io(path, e))
}

#[cfg(test)]
mod tests;
