//! Token signing keys: P-256, stored as PKCS#8 PEM under `DIR/keys/`
//! (mode 0600), or encrypted at rest (`CERTBOUND ENCRYPTED PRIVATE KEY`,
//! AES-256-GCM with the role `signing-key:<kid>`; see
//! [`certbound_pki::seal_key`]) when a key encryption key is configured
//! (`[keys]`). The key ring (table `signing_keys`) schedules them: a key is
//! published from `created_at`, signs from `active_from` (the newest key whose
//! time has come signs) and is unpublished at `retire_after`, once no token
//! it signed can still be valid. `certbound keys rotate` adds a key; see
//! [`rotate`].

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use certbound_pki::{KeyEncryptionKey, key_file_text, open_key, seal_key_file};
use certbound_proto::EcPublicKey;
use certbound_proto::crypto::{AwsLcSigner, Signer};
use zeroize::Zeroizing;

use crate::error::BrokerError;
use crate::store::{KeySchedule, Store};

/// A loaded signing key.
#[derive(Debug)]
pub struct SigningKey {
    /// Key id (see [`EcPublicKey::kid`]).
    pub kid: String,
    /// The signer.
    pub signer: AwsLcSigner,
}

/// The signing key directory (`DIR/keys/`) and the key that encrypts its
/// files at rest, if any (see [`crate::config::DataDir::key_dir`]).
#[derive(Debug, Clone)]
pub struct KeyDir<'a> {
    /// The directory.
    pub path: PathBuf,
    /// The key encryption key: new keys are written encrypted with it.
    pub kek: Option<&'a KeyEncryptionKey>,
}

impl KeyDir<'static> {
    /// A directory of plaintext keys (no key encryption key).
    pub fn plain(path: &Path) -> Self {
        KeyDir {
            path: path.to_path_buf(),
            kek: None,
        }
    }
}

fn role(kid: &str) -> String {
    format!("signing-key:{kid}")
}

/// Writes a new key file for `der` (encrypted when `keys` has a key).
fn write_key(keys: &KeyDir<'_>, kid: &str, der: &[u8]) -> Result<(), BrokerError> {
    let text = key_file_text(keys.kek, &role(kid), der)?;
    write_private(&key_path(&keys.path, kid), text.as_bytes())
}

/// Creates a new signing key in `keys` and makes it current. Returns its kid.
pub fn create_signing_key(keys: &KeyDir<'_>) -> Result<String, BrokerError> {
    let dir = keys.path.as_path();
    fs::create_dir_all(dir).map_err(BrokerError::io(dir))?;
    let (signer, der) = AwsLcSigner::generate()?;
    let der = Zeroizing::new(der);
    let kid = signer.public_key().kid();
    write_key(keys, &kid, &der)?;
    let current = dir.join("current");
    fs::write(&current, format!("{kid}\n")).map_err(BrokerError::io(&current))?;
    Ok(kid)
}

/// Loads the current signing key.
pub fn load_current(keys: &KeyDir<'_>) -> Result<SigningKey, BrokerError> {
    let current = keys.path.join("current");
    let kid = fs::read_to_string(&current).map_err(BrokerError::io(&current))?;
    load(keys, kid.trim())
}

/// Loads one key by kid (plaintext, or encrypted and opened with the key
/// encryption key of `keys`).
pub fn load(keys: &KeyDir<'_>, kid: &str) -> Result<SigningKey, BrokerError> {
    let path = key_path(&keys.path, kid);
    let pem = Zeroizing::new(fs::read_to_string(&path).map_err(BrokerError::io(&path))?);
    let der = open_key(&pem, keys.kek, &role(kid), &path)?;
    let signer = AwsLcSigner::from_pkcs8_der(&der)?;
    let actual = signer.public_key().kid();
    if actual != kid {
        return Err(BrokerError::Invalid(format!(
            "{}: holds key {actual}, not {kid}; the keys directory was edited by hand",
            path.display()
        )));
    }
    Ok(SigningKey {
        kid: actual,
        signer,
    })
}

/// The public keys of every (plaintext) signing key in `dir` (for key
/// sets), by kid. See [`public_keys_in`] for encrypted keys.
pub fn public_keys(dir: &Path) -> Result<Vec<(String, EcPublicKey)>, BrokerError> {
    public_keys_in(&KeyDir::plain(dir))
}

/// The public keys of every signing key in `keys`, by kid.
pub fn public_keys_in(keys: &KeyDir<'_>) -> Result<Vec<(String, EcPublicKey)>, BrokerError> {
    let mut out = Vec::new();
    for kid in key_files(&keys.path)? {
        let key = load(keys, &kid)?;
        out.push((key.kid, key.signer.public_key().clone()));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// The kids of the `<kid>.key.pem` files in `dir`.
fn key_files(dir: &Path) -> Result<Vec<String>, BrokerError> {
    let mut out = Vec::new();
    let entries = fs::read_dir(dir).map_err(BrokerError::io(dir))?;
    for entry in entries {
        let entry = entry.map_err(BrokerError::io(dir))?;
        let name = entry.file_name().to_string_lossy().to_string();
        if let Some(kid) = name.strip_suffix(".key.pem")
            && !kid.starts_with('.')
        {
            out.push(kid.to_owned());
        }
    }
    out.sort();
    Ok(out)
}

/// Encrypts every plaintext signing key file in `keys` in place (atomically:
/// new file, fsync, rename) with its key encryption key. Returns the files
/// it encrypted; files already encrypted with that key are skipped.
///
/// # Errors
/// [`BrokerError::Invalid`] without a key encryption key; a file encrypted
/// with another key is refused ([`certbound_pki::PkiError::SealedKeyOpen`]).
pub fn seal_signing_keys(keys: &KeyDir<'_>) -> Result<Vec<PathBuf>, BrokerError> {
    let kek = keys.kek.ok_or_else(|| {
        BrokerError::Invalid(
            "no key encryption key is configured: set CERTBOUND_KEY_ENCRYPTION_KEY or \
             [keys] encryption_key_file in certbound.toml"
                .into(),
        )
    })?;
    let mut sealed = Vec::new();
    for kid in key_files(&keys.path)? {
        let path = key_path(&keys.path, &kid);
        // The kid must match the key before it is bound into the file.
        load(keys, &kid)?;
        if seal_key_file(&path, kek, &role(&kid))? {
            sealed.push(path);
        }
    }
    Ok(sealed)
}

/// The loaded key ring: every scheduled key with its private key.
#[derive(Debug, Default)]
pub struct KeyRing {
    keys: Vec<(KeySchedule, std::sync::Arc<SigningKey>)>,
}

impl KeyRing {
    /// Loads the ring from the store and the key files in `dir`. A data
    /// directory made before key rotation existed has no ring yet: its
    /// `current` key is entered as active since the epoch.
    pub async fn load(store: &Store, dir: &KeyDir<'_>) -> Result<Self, BrokerError> {
        let mut schedules = store.key_schedules().await?;
        if schedules.is_empty() {
            let current = load_current(dir)?;
            let entry = KeySchedule {
                kid: current.kid.clone(),
                created_at: 0,
                active_from: 0,
                retire_after: None,
            };
            store.add_signing_key(&entry, None).await?;
            schedules.push(entry);
        }
        let mut keys = Vec::with_capacity(schedules.len());
        for schedule in schedules {
            let key = load(dir, &schedule.kid)?;
            keys.push((schedule, std::sync::Arc::new(key)));
        }
        Ok(Self { keys })
    }

    /// The key that signs at `now`: the newest whose `active_from` has come
    /// and that is not retired.
    pub fn signing_key(&self, now: u64) -> Option<&std::sync::Arc<SigningKey>> {
        self.keys
            .iter()
            .filter(|(s, _)| s.active_from <= now && s.retire_after.is_none_or(|r| now < r))
            .max_by_key(|(s, _)| (s.active_from, s.created_at))
            .map(|(_, k)| k)
    }

    /// The keys verifiers must know at `now` (published, not retired), by kid.
    pub fn published(&self, now: u64) -> Vec<(String, EcPublicKey)> {
        let mut out: Vec<(String, EcPublicKey)> = self
            .keys
            .iter()
            .filter(|(s, _)| s.created_at <= now && s.retire_after.is_none_or(|r| now < r))
            .map(|(s, k)| (s.kid.clone(), k.signer.public_key().clone()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// The public key of `kid`, when it is published at `now`.
    pub fn public_key(&self, kid: &str, now: u64) -> Option<EcPublicKey> {
        self.published(now)
            .into_iter()
            .find(|(k, _)| k == kid)
            .map(|(_, key)| key)
    }

    /// The schedules, oldest first.
    pub fn schedules(&self) -> Vec<KeySchedule> {
        self.keys.iter().map(|(s, _)| s.clone()).collect()
    }
}

/// The ring shared by every endpoint; the server reloads it (a few times a
/// second) so `keys rotate` in another process takes effect without restart.
#[derive(Debug, Clone, Default)]
pub struct SharedKeys {
    inner: std::sync::Arc<std::sync::RwLock<std::sync::Arc<KeyRing>>>,
}

impl SharedKeys {
    /// Wraps a loaded ring.
    pub fn new(ring: KeyRing) -> Self {
        Self {
            inner: std::sync::Arc::new(std::sync::RwLock::new(std::sync::Arc::new(ring))),
        }
    }

    /// The current ring.
    pub fn ring(&self) -> std::sync::Arc<KeyRing> {
        match self.inner.read() {
            Ok(r) => r.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the ring.
    pub fn replace(&self, ring: KeyRing) {
        let ring = std::sync::Arc::new(ring);
        match self.inner.write() {
            Ok(mut w) => *w = ring,
            Err(poisoned) => *poisoned.into_inner() = ring,
        }
    }
}

/// Default time between publishing a new key and signing with it, seconds:
/// above the key sets' cache lifetime (60 s) so verifiers learn the key first.
pub const DEFAULT_ROTATION_GRACE: u64 = 300;

/// What `keys rotate` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Rotation {
    /// The new key.
    pub new_kid: String,
    /// When it starts signing (published at once).
    pub active_from: u64,
    /// When the keys it replaces are unpublished, as far as known now (later
    /// if they sign longer-lived tokens during the grace period).
    pub retire_old_after: u64,
}

/// Adds a new signing key: published now, signing after `grace` seconds (so
/// verifiers that cache key sets learn it before they see tokens signed with
/// it). The keys it replaces are retired — unpublished, and their files
/// deleted — once no token they signed can still be valid: at the earliest
/// `active_from + leeway + status_ttl`, and never before the last recorded
/// token they signed expires (+ leeway); the server keeps extending that
/// bound with [`Store::extend_retirements`] while old keys still sign during
/// the grace period.
pub async fn rotate(
    store: &Store,
    keys: &KeyDir<'_>,
    now: u64,
    grace: u64,
    leeway: u64,
    status_ttl: u64,
) -> Result<Rotation, BrokerError> {
    // Make sure a legacy directory has its ring before adding to it.
    KeyRing::load(store, keys).await?;
    let dir = keys.path.as_path();
    fs::create_dir_all(dir).map_err(BrokerError::io(dir))?;
    let (signer, der) = AwsLcSigner::generate()?;
    let der = Zeroizing::new(der);
    let kid = signer.public_key().kid();
    write_key(keys, &kid, &der)?;
    let active_from = now.saturating_add(grace);
    let floor = active_from
        .saturating_add(leeway)
        .saturating_add(status_ttl);
    store
        .add_signing_key(
            &KeySchedule {
                kid: kid.clone(),
                created_at: now,
                active_from,
                retire_after: None,
            },
            Some(floor),
        )
        .await?;
    store.extend_retirements(leeway).await?;
    let retire_old_after = store
        .key_schedules()
        .await?
        .iter()
        .filter(|s| s.kid != kid)
        .filter_map(|s| s.retire_after)
        .max()
        .unwrap_or(floor);
    let current = dir.join("current");
    fs::write(&current, format!("{kid}\n")).map_err(BrokerError::io(&current))?;
    Ok(Rotation {
        new_kid: kid,
        active_from,
        retire_old_after,
    })
}

/// Drops retired keys from the ring and deletes their private key files.
pub async fn prune_retired(
    store: &Store,
    dir: &Path,
    now: u64,
) -> Result<Vec<String>, BrokerError> {
    let gone = store.drop_retired_keys(now).await?;
    for kid in &gone {
        let path = key_path(dir, kid);
        if let Err(e) = fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            return Err(BrokerError::io(&path)(e));
        }
    }
    Ok(gone)
}

fn key_path(dir: &Path, kid: &str) -> PathBuf {
    dir.join(format!("{kid}.key.pem"))
}

/// Writes a secret file created with mode 0600 (never readable by others, not even briefly).
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), BrokerError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(BrokerError::io(path))?;
    file.write_all(contents).map_err(BrokerError::io(path))?;
    file.sync_all().map_err(BrokerError::io(path))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_load_and_list() {
        let dir = tempfile::tempdir().unwrap();
        let kid = create_signing_key(&KeyDir::plain(dir.path())).unwrap();
        let key = load_current(&KeyDir::plain(dir.path())).unwrap();
        assert_eq!(key.kid, kid);
        let pubs = public_keys(dir.path()).unwrap();
        assert_eq!(pubs.len(), 1);
        assert_eq!(&pubs[0].1, key.signer.public_key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(key_path(dir.path(), &kid))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn encrypted_signing_keys() {
        let dir = tempfile::tempdir().unwrap();
        let kek = KeyEncryptionKey::generate().unwrap();
        let sealed = KeyDir {
            path: dir.path().to_path_buf(),
            kek: Some(&kek),
        };
        let kid = create_signing_key(&sealed).unwrap();
        let path = key_path(dir.path(), &kid);
        let text = fs::read_to_string(&path).unwrap();
        assert!(certbound_pki::is_sealed(&text));
        assert!(!text.contains("BEGIN PRIVATE KEY"));
        assert_eq!(load_current(&sealed).unwrap().kid, kid);

        // No key, or another key: refused, naming the file.
        let err = load_current(&KeyDir::plain(dir.path())).unwrap_err();
        assert!(
            matches!(&err, BrokerError::Pki(certbound_pki::PkiError::SealedKeyNoKek(p)) if *p == path),
            "{err}"
        );
        let other = KeyEncryptionKey::generate().unwrap();
        let wrong = KeyDir {
            path: dir.path().to_path_buf(),
            kek: Some(&other),
        };
        let err = load_current(&wrong).unwrap_err();
        assert!(
            matches!(&err, BrokerError::Pki(certbound_pki::PkiError::SealedKeyOpen(p)) if *p == path),
            "{err}"
        );
        // A sealed key moved to another kid's name fails (the kid is the AAD).
        let (other_signer, _) = AwsLcSigner::generate().unwrap();
        let other_kid = other_signer.public_key().kid();
        fs::copy(&path, key_path(dir.path(), &other_kid)).unwrap();
        assert!(matches!(
            load(&sealed, &other_kid).unwrap_err(),
            BrokerError::Pki(certbound_pki::PkiError::SealedKeyOpen(_))
        ));
    }

    #[test]
    fn plaintext_signing_keys_are_sealed_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let plain = KeyDir::plain(dir.path());
        let kid = create_signing_key(&plain).unwrap();
        assert!(matches!(
            seal_signing_keys(&plain).unwrap_err(),
            BrokerError::Invalid(_)
        ));
        let kek = KeyEncryptionKey::generate().unwrap();
        let sealed = KeyDir {
            path: dir.path().to_path_buf(),
            kek: Some(&kek),
        };
        assert_eq!(
            seal_signing_keys(&sealed).unwrap(),
            vec![key_path(dir.path(), &kid)]
        );
        assert!(seal_signing_keys(&sealed).unwrap().is_empty());
        assert_eq!(load_current(&sealed).unwrap().kid, kid);
        assert!(load_current(&plain).is_err());
    }
}
