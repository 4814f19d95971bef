//! The `[keys]` section: encryption of private keys at rest.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use certbound_pki::KeyEncryptionKey;
use serde::Deserialize;

use crate::error::RegistryError;

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
            .field(
                "encryption_key",
                &self.resolved.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

impl KeysSection {
    /// The key encryption key, when one is configured.
    pub fn encryption_key(&self) -> Option<Arc<KeyEncryptionKey>> {
        self.resolved.clone()
    }

    /// Reads the key from the environment or `encryption_key_file` (not both).
    pub(crate) fn resolve(&mut self, data_dir: &Path, file: &Path) -> Result<(), RegistryError> {
        let env = std::env::var_os(KEY_ENCRYPTION_KEY_ENV).filter(|v| !v.is_empty());
        let bad = |reason: String| RegistryError::Config {
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
                    RegistryError::Invalid(format!(
                        "the environment variable {KEY_ENCRYPTION_KEY_ENV} is not base64 text"
                    ))
                })?;
                Some(Arc::new(KeyEncryptionKey::from_base64(text).map_err(
                    |e| {
                        RegistryError::Invalid(format!(
                            "the environment variable {KEY_ENCRYPTION_KEY_ENV}: {e}"
                        ))
                    },
                )?))
            }
            (None, None) => None,
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CONFIG_FILE, Config, template};

    fn write_config(dir: &Path, keys_line: &str) {
        let text = template("https://auth.example.com").replace(
            "# encryption_key_file = \"/run/secrets/certbound-kek\"",
            keys_line,
        );
        std::fs::write(dir.join(CONFIG_FILE), text).unwrap();
    }

    #[test]
    fn key_file_is_read_relative_to_the_data_dir() {
        if std::env::var_os(KEY_ENCRYPTION_KEY_ENV).is_some() {
            eprintln!("skipped: {KEY_ENCRYPTION_KEY_ENV} is set in this environment");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        // Default: no key.
        write_config(dir.path(), "");
        assert!(
            Config::load(dir.path())
                .unwrap()
                .keys
                .encryption_key()
                .is_none()
        );

        let kek = KeyEncryptionKey::generate().unwrap();
        std::fs::write(dir.path().join("kek"), kek.to_base64().as_bytes()).unwrap();
        write_config(dir.path(), "encryption_key_file = \"kek\"");
        let config = Config::load(dir.path()).unwrap();
        assert!(config.keys.encryption_key().is_some());
        let shown = format!("{config:?}");
        assert!(!shown.contains(kek.to_base64().as_str()), "{shown}");

        // Missing or malformed: a config error naming the field and the file.
        write_config(dir.path(), "encryption_key_file = \"missing\"");
        let err = Config::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("keys.encryption_key_file"), "{err}");
        assert!(err.contains("missing"), "{err}");
        std::fs::write(dir.path().join("kek"), "AAAA\n").unwrap();
        write_config(dir.path(), "encryption_key_file = \"kek\"");
        let err = Config::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("not 32"), "{err}");
        // Unknown keys in [keys] are refused.
        write_config(dir.path(), "encryption_key = \"AAAA\"");
        assert!(Config::load(dir.path()).is_err());
    }
}
