//! Where the CA hierarchy lives on disk, and careful file writing.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::KeyPair;
use zeroize::Zeroizing;

use crate::PkiError;
use crate::sealed::{KeyEncryptionKey, key_file_text, open_key};

/// Role (authenticated data) of the root CA key when it is encrypted at rest.
pub(crate) const ROLE_ROOT: &str = "root-ca";
/// Role of issuing CA keys (current and kept ones) when encrypted at rest.
pub(crate) const ROLE_ISSUING: &str = "issuing-ca";

/// Locations of the CA files inside a data directory: `DIR/pki/...`, and the
/// key that encrypts their private keys at rest, if any (see
/// [`PkiPaths::with_key_encryption`]).
#[derive(Debug, Clone)]
pub struct PkiPaths {
    /// The `pki` directory itself (`<data dir>/pki`).
    pub dir: PathBuf,
    kek: Option<Arc<KeyEncryptionKey>>,
}

impl PartialEq for PkiPaths {
    fn eq(&self, other: &Self) -> bool {
        self.dir == other.dir
    }
}
impl Eq for PkiPaths {}

impl PkiPaths {
    /// Paths for the data directory `data_dir`: the files live in `data_dir/pki`.
    pub fn new(data_dir: &Path) -> Self {
        PkiPaths {
            dir: data_dir.join("pki"),
            kek: None,
        }
    }

    /// With a key encryption key: private keys written from now on are
    /// encrypted at rest (`CERTBOUND ENCRYPTED PRIVATE KEY`, see
    /// [`crate::seal_key`]) and encrypted keys can be read. Plaintext keys
    /// are read either way.
    pub fn with_key_encryption(mut self, kek: Option<Arc<KeyEncryptionKey>>) -> Self {
        self.kek = kek;
        self
    }

    /// The key encryption key, if any.
    pub fn key_encryption(&self) -> Option<&KeyEncryptionKey> {
        self.kek.as_deref()
    }

    /// Reads the private key at `path` (plaintext or encrypted for `role`).
    pub(crate) fn read_key(&self, path: &Path, role: &str) -> Result<KeyPair, PkiError> {
        let text = Zeroizing::new(read_text(path)?);
        let der = open_key(&text, self.key_encryption(), role, path)?;
        KeyPair::try_from(der.as_slice()).map_err(|e| {
            PkiError::Malformed(format!(
                "{} is not a readable PKCS#8 private key: {e}",
                path.display()
            ))
        })
    }

    /// The file text for `key`: encrypted for `role` when a key encryption
    /// key is set, plaintext PKCS#8 PEM otherwise.
    pub(crate) fn key_text(
        &self,
        key: &KeyPair,
        role: &str,
    ) -> Result<Zeroizing<String>, PkiError> {
        let der = Zeroizing::new(key.serialize_der());
        key_file_text(self.key_encryption(), role, &der)
    }

    /// Encrypts every plaintext CA private key in `pki/` in place (see
    /// [`crate::seal_key_file`]): `root-ca.key.pem` when it is online,
    /// `issuing-ca.key.pem` and the kept `issuing-ca.<serial>.key.pem`.
    /// Returns the files it encrypted; already encrypted ones are checked
    /// against the key and skipped.
    ///
    /// # Errors
    /// [`PkiError::InvalidArgument`] without a key encryption key, then as
    /// [`crate::seal_key_file`].
    pub fn seal_ca_keys(&self) -> Result<Vec<PathBuf>, PkiError> {
        let kek = self.key_encryption().ok_or_else(|| {
            PkiError::InvalidArgument(
                "no key encryption key is configured: set CERTBOUND_KEY_ENCRYPTION_KEY \
                 or [keys] encryption_key_file"
                    .into(),
            )
        })?;
        let mut files = vec![(self.issuing_key(), ROLE_ISSUING)];
        if self.root_key().exists() {
            files.push((self.root_key(), ROLE_ROOT));
        }
        for serial in self.archived_issuing_serials()? {
            let key = self.issuing_key_archived(&serial);
            if key.exists() {
                files.push((key, ROLE_ISSUING));
            }
        }
        let mut sealed = Vec::new();
        for (path, role) in files {
            if crate::sealed::seal_key_file(&path, kek, role)? {
                sealed.push(path);
            }
        }
        Ok(sealed)
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

    /// `pki/issuing-ca.<serial>.pem`: an issuing CA certificate kept by
    /// [`crate::rotate_issuing`] (the previous ones, and a copy of the current
    /// one), named by its serial number in lowercase hex.
    pub fn issuing_cert_archived(&self, serial_hex: &str) -> PathBuf {
        self.dir.join(format!("issuing-ca.{serial_hex}.pem"))
    }

    /// `pki/issuing-ca.<serial>.key.pem`: the private key (mode 0600) of the
    /// issuing CA in [`PkiPaths::issuing_cert_archived`].
    pub fn issuing_key_archived(&self, serial_hex: &str) -> PathBuf {
        self.dir.join(format!("issuing-ca.{serial_hex}.key.pem"))
    }

    /// The serial numbers of every `pki/issuing-ca.<serial>.pem` file, sorted.
    /// A missing `pki` directory holds none.
    pub(crate) fn archived_issuing_serials(&self) -> Result<Vec<String>, PkiError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(PkiError::io(&self.dir, e)),
        };
        let mut serials = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| PkiError::io(&self.dir, e))?;
            let name = entry.file_name();
            let Some(serial) = name
                .to_str()
                .and_then(|n| n.strip_prefix("issuing-ca."))
                .and_then(|n| n.strip_suffix(".pem"))
            else {
                continue;
            };
            if is_serial_hex(serial) {
                serials.push(serial.to_owned());
            }
        }
        serials.sort();
        Ok(serials)
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

/// Replaces `path` atomically: writes a temporary file next to it (mode 0600
/// for secrets), syncs it, renames it over `path` and syncs the directory.
/// Readers see either the old or the new contents, never a mix.
pub(crate) fn replace_file(path: &Path, contents: &[u8], secrecy: Secrecy) -> Result<(), PkiError> {
    let file_name = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
        PkiError::InvalidArgument(format!("{} is not a file path", path.display()))
    })?;
    let mut nonce = [0u8; 8];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| PkiError::Random)?;
    let tmp = path.with_file_name(format!(".{file_name}.{}.tmp", hex::encode(nonce)));
    write_new_file(&tmp, contents, secrecy)?;
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(PkiError::io(path, e));
    }
    sync_parent(path)
}

/// Makes a rename in the directory of `path` durable.
fn sync_parent(path: &Path) -> Result<(), PkiError> {
    #[cfg(unix)]
    if let Some(dir) = path.parent() {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| PkiError::io(dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Whether `s` looks like a serial number as this crate writes it: 2 to 40
/// lowercase hex digits (at most 20 bytes).
pub(crate) fn is_serial_hex(s: &str) -> bool {
    (2..=40).contains(&s.len())
        && s.len().is_multiple_of(2)
        && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
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
