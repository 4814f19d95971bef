//! The `[keys]` section: encryption of private keys at rest.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use certbound_pki::KeyEncryptionKey;
use serde::Deserialize;

use crate::error::BrokerError;

/// Environment variable holding the key encryption key (base64 of 32 bytes).
pub const KEY_ENCRYPTION_KEY_ENV: &str = "CERTBOUND_KEY_ENCRYPTION_KEY";

/// `[keys]`: where the key that encrypts private keys at rest comes from.
///
/// With a key encryption key (this file, or the environment variable
/// `CERTBOUND_KEY_ENCRYPTION_KEY`), CA and token signing keys written from
/// then on are encrypted (AES-256-GCM), `certbound keys encrypt` converts the
/// existing ones, and encrypted keys can be read. Without one, keys are
/// plaintext PKCS#8 (mode 0600) and an encrypted key cannot be loaded.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysSection {
    /// File holding the key encryption key (base64 of 32 random bytes);
    /// relative paths are relative to the data directory. Default: none.
    #[serde(default)]
    pub encryption_key_file: Option<PathBuf>,
    /// The key, resolved by [`crate::config::Config::load`].
    #[serde(skip)]
    resolved: Option<Arc<KeyEncryptionKey>>,
}

impl std::fmt::Debug for KeysSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeysSection")
            .field("encryption_key_file", &self.encryption_key_file)
            .field("encryption_key", &self.resolved.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl KeysSection {
    /// The key encryption key, when one is configured.
    pub fn encryption_key(&self) -> Option<Arc<KeyEncryptionKey>> {
        self.resolved.clone()
    }

    /// Reads the key from the environment or `encryption_key_file` (not both).
    pub(crate) fn resolve(&mut self, data_dir: &Path, file: &Path) -> Result<(), BrokerError> {
        let env = std::env::var_os(KEY_ENCRYPTION_KEY_ENV).filter(|v| !v.is_empty());
        let bad = |reason: String| BrokerError::Config {
            file: file.to_path_buf(),
            field: "keys.encryption_key_file".into(),
            reason,
        };
        self.resolved = match (&self.encryption_key_file, env) {
            (Some(_), Some(_)) => {
                return Err(bad(format!(
                    "is set and so is the environment variable {KEY_ENCRYPTION_KEY_ENV}; \
                     use one of them"
                )));
            }
            (Some(path), None) => {
                let path = data_dir.join(path);
                Some(Arc::new(
                    KeyEncryptionKey::read_file(&path).map_err(|e| bad(e.to_string()))?,
                ))
            }
            (None, Some(value)) => {
                let text = value.to_str().ok_or_else(|| {
                    BrokerError::Invalid(format!(
                        "the environment variable {KEY_ENCRYPTION_KEY_ENV} is not base64 text"
                    ))
                })?;
                Some(Arc::new(KeyEncryptionKey::from_base64(text).map_err(|e| {
                    BrokerError::Invalid(format!(
                        "the environment variable {KEY_ENCRYPTION_KEY_ENV}: {e}"
                    ))
                })?))
            }
            (None, None) => None,
        };
        Ok(())
    }
}
