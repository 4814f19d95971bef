//! Token signing keys: P-256, stored as PKCS#8 PEM under `DIR/keys/`
//! (mode 0600), or encrypted at rest (`CERTBOUND ENCRYPTED PRIVATE KEY`,
//! AES-256-GCM with the role `signing-key:<kid>`; see
//! [`certbound_pki::seal_key`]) when a key encryption key is configured
//! (`[keys]`). The key ring (table `signing_keys`) schedules them: a key is
//! published from `created_at`, signs from `active_from` (the newest key whose
//! time has come signs) and is unpublished at `retire_after`, once no token
//! it signed can still be valid. `certbound keys rotate` adds a key; see
//! [`rotate`].
//!
//! Besides the P-256 (ES256) keys, the ring holds RS256, PS256 and EdDSA
//! keys for the APIs that ask for those algorithms (see [`jose`]): one key
//! per algorithm (an RSA key never signs both RS256 and PS256), created when
//! an API first asks for it ([`ensure_signing_key`]) and rotated with the
//! ES256 key. Their files are `<kid>.<ALG>.key.pem`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use certbound_pki::{KeyEncryptionKey, key_file_text, open_key, seal_key_file};
use certbound_proto::EcPublicKey;
use certbound_proto::crypto::{AwsLcSigner, Signer};
use certbound_proto::jose::{JwsAlg, JwsKey};
use zeroize::Zeroizing;

use crate::error::RegistryError;
use crate::store::{KeySchedule, Store};

pub mod jose;
pub use jose::{JoseKey, ensure_signing_key};

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
fn write_key(keys: &KeyDir<'_>, kid: &str, der: &[u8]) -> Result<(), RegistryError> {
    let text = key_file_text(keys.kek, &role(kid), der)?;
    write_private(&key_path(&keys.path, kid), text.as_bytes())
}

/// Creates a new signing key in `keys` and makes it current. Returns its kid.
pub fn create_signing_key(keys: &KeyDir<'_>) -> Result<String, RegistryError> {
    let dir = keys.path.as_path();
    fs::create_dir_all(dir).map_err(RegistryError::io(dir))?;
    let (signer, der) = AwsLcSigner::generate()?;
    let der = Zeroizing::new(der);
    let kid = signer.public_key().kid();
    write_key(keys, &kid, &der)?;
    let current = dir.join("current");
    fs::write(&current, format!("{kid}\n")).map_err(RegistryError::io(&current))?;
    Ok(kid)
}

/// Loads the current signing key.
pub fn load_current(keys: &KeyDir<'_>) -> Result<SigningKey, RegistryError> {
    let current = keys.path.join("current");
    let kid = fs::read_to_string(&current).map_err(RegistryError::io(&current))?;
    load(keys, kid.trim())
}

/// Loads one key by kid (plaintext, or encrypted and opened with the key
/// encryption key of `keys`).
pub fn load(keys: &KeyDir<'_>, kid: &str) -> Result<SigningKey, RegistryError> {
    let path = key_path(&keys.path, kid);
    let pem = Zeroizing::new(fs::read_to_string(&path).map_err(RegistryError::io(&path))?);
    let der = open_key(&pem, keys.kek, &role(kid), &path)?;
    let signer = AwsLcSigner::from_pkcs8_der(&der)?;
    let actual = signer.public_key().kid();
    if actual != kid {
        return Err(RegistryError::Invalid(format!(
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
pub fn public_keys(dir: &Path) -> Result<Vec<(String, EcPublicKey)>, RegistryError> {
    public_keys_in(&KeyDir::plain(dir))
}

/// The public keys of every signing key in `keys`, by kid.
pub fn public_keys_in(keys: &KeyDir<'_>) -> Result<Vec<(String, EcPublicKey)>, RegistryError> {
    let mut out = Vec::new();
    for kid in key_files(&keys.path)? {
        let key = load(keys, &kid)?;
        out.push((key.kid, key.signer.public_key().clone()));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// The kids of the `<kid>.key.pem` files (ES256 keys) in `dir`.
fn key_files(dir: &Path) -> Result<Vec<String>, RegistryError> {
    let mut out = Vec::new();
    let entries = fs::read_dir(dir).map_err(RegistryError::io(dir))?;
    for entry in entries {
        let entry = entry.map_err(RegistryError::io(dir))?;
        let name = entry.file_name().to_string_lossy().to_string();
        if let Some(kid) = name.strip_suffix(".key.pem")
            && !kid.starts_with('.')
            && !kid.contains('.')
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
/// [`RegistryError::Invalid`] without a key encryption key; a file encrypted
/// with another key is refused ([`certbound_pki::PkiError::SealedKeyOpen`]).
pub fn seal_signing_keys(keys: &KeyDir<'_>) -> Result<Vec<PathBuf>, RegistryError> {
    let kek = keys.kek.ok_or_else(|| {
        RegistryError::Invalid(
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
    sealed.extend(jose::seal(keys, kek)?);
    Ok(sealed)
}

/// One key of the ring: its schedule, its public key, and its private key
/// when this instance holds it.
#[derive(Debug)]
struct RingKey {
    schedule: KeySchedule,
    /// The algorithm (ES256 for keys recorded before 0014).
    alg: JwsAlg,
    /// The public key, as published in the JWKS.
    public: JwsKey,
    /// The ES256 private key, when held here.
    private: Option<std::sync::Arc<SigningKey>>,
    /// The private key of another algorithm, when held here.
    jose: Option<std::sync::Arc<JoseKey>>,
}

impl RingKey {
    fn held(&self) -> bool {
        self.private.is_some() || self.jose.is_some()
    }
}

/// The loaded key ring: every scheduled key of every instance on the store,
/// with the private keys this instance holds (its own keys: each instance
/// signs with its own, and publishes everyone's).
#[derive(Debug, Default)]
pub struct KeyRing {
    keys: Vec<RingKey>,
}

impl KeyRing {
    /// Loads the ring from the store and the key files in `dir`. A data
    /// directory made before key rotation existed has no ring yet: its
    /// `current` key is entered as active since the epoch. A `current` key
    /// the ring lacks while other keys are in it (an instance joined without
    /// `certbound init --join`) is entered as active from now. Keys recorded
    /// before the store kept public keys get theirs filled in by the
    /// instance holding them.
    pub async fn load(store: &Store, dir: &KeyDir<'_>) -> Result<Self, RegistryError> {
        let mut schedules = store.key_schedules().await?;
        let local = if dir.path.exists() {
            key_files(&dir.path)?
        } else {
            Vec::new()
        };
        let current = dir.path.join("current");
        if let Ok(kid) = fs::read_to_string(&current) {
            let kid = kid.trim();
            if !schedules.iter().any(|s| s.kid == kid) {
                let key = load(dir, kid)?;
                let since = if schedules.is_empty() {
                    0
                } else {
                    crate::clock::unix_now()
                };
                let entry = KeySchedule {
                    kid: key.kid.clone(),
                    created_at: since,
                    active_from: since,
                    retire_after: None,
                    public_key: Some(key.signer.public_key().to_sec1()),
                    alg: JwsAlg::Es256.as_str().into(),
                };
                store.add_signing_key(&entry, &[], 0).await?;
                schedules.push(entry);
            }
        }
        let local_jose = if dir.path.exists() {
            jose::key_files(&dir.path)?
        } else {
            Vec::new()
        };
        let mut keys = Vec::with_capacity(schedules.len());
        for schedule in schedules {
            let Some(alg) = JwsAlg::from_jose(&schedule.alg) else {
                tracing::warn!(
                    kid = %schedule.kid, alg = %schedule.alg,
                    "signing key of an unknown algorithm (recorded by a newer version?); not used"
                );
                continue;
            };
            if alg != JwsAlg::Es256 {
                if let Some(k) = jose::ring_key(dir, &local_jose, schedule, alg)? {
                    keys.push(k);
                }
                continue;
            }
            if local.contains(&schedule.kid) {
                let key = load(dir, &schedule.kid)?;
                let public = key.signer.public_key().clone();
                if schedule.public_key.is_none() {
                    store
                        .set_signing_public_key(&schedule.kid, &public.to_sec1())
                        .await?;
                }
                keys.push(RingKey {
                    schedule,
                    alg,
                    public: JwsKey::es256(public),
                    private: Some(std::sync::Arc::new(key)),
                    jose: None,
                });
                continue;
            }
            match schedule.public_key.as_deref().map(EcPublicKey::from_sec1) {
                Some(Ok(public)) => keys.push(RingKey {
                    schedule,
                    alg,
                    public: JwsKey::es256(public),
                    private: None,
                    jose: None,
                }),
                Some(Err(e)) => tracing::warn!(
                    kid = %schedule.kid, error = %e,
                    "the store holds a malformed public key for this signing key; not published"
                ),
                // Recorded by an older version on another instance, which
                // fills it in when it next loads its ring.
                None => tracing::debug!(
                    kid = %schedule.kid,
                    "signing key without a recorded public key and not held here; not published yet"
                ),
            }
        }
        Ok(Self { keys })
    }

    /// The ES256 key that signs at `now`: the newest of this instance's
    /// own ES256 keys whose `active_from` has come and that is not retired.
    pub fn signing_key(&self, now: u64) -> Option<&std::sync::Arc<SigningKey>> {
        self.keys
            .iter()
            .filter(|k| k.alg == JwsAlg::Es256)
            .filter(|k| {
                let s = &k.schedule;
                s.active_from <= now && s.retire_after.is_none_or(|r| now < r)
            })
            .filter_map(|k| k.private.as_ref().map(|p| (&k.schedule, p)))
            .max_by_key(|(s, _)| (s.active_from, s.created_at))
            .map(|(_, k)| k)
    }

    /// The ES256 keys verifiers must know at `now` (published, not
    /// retired), of every instance, by kid: the keys of CWTs and of the COSE
    /// key set. [`KeyRing::published_jws`] has the keys of every algorithm.
    pub fn published(&self, now: u64) -> Vec<(String, EcPublicKey)> {
        self.published_jws(now)
            .into_iter()
            .filter_map(|(kid, key)| match key.material() {
                certbound_proto::jose::PublicMaterial::Ec(ec) => Some((kid, ec.clone())),
                _ => None,
            })
            .collect()
    }

    /// The keys of every algorithm verifiers must know at `now` (the JWKS),
    /// by kid.
    pub fn published_jws(&self, now: u64) -> Vec<(String, JwsKey)> {
        let mut out: Vec<(String, JwsKey)> = self
            .keys
            .iter()
            .filter(|k| {
                let s = &k.schedule;
                s.created_at <= now && s.retire_after.is_none_or(|r| now < r)
            })
            .map(|k| (k.schedule.kid.clone(), k.public.clone()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// The ES256 public key of `kid`, when it is published at `now`.
    pub fn public_key(&self, kid: &str, now: u64) -> Option<EcPublicKey> {
        self.published(now)
            .into_iter()
            .find(|(k, _)| k == kid)
            .map(|(_, key)| key)
    }

    /// The public key of `kid` of any algorithm, when published at `now`.
    pub fn jws_public_key(&self, kid: &str, now: u64) -> Option<JwsKey> {
        self.published_jws(now)
            .into_iter()
            .find(|(k, _)| k == kid)
            .map(|(_, key)| key)
    }

    /// The key of `alg` (not ES256: see [`KeyRing::signing_key`]) that
    /// signs at `now`: the newest of this instance's own keys of that
    /// algorithm whose `active_from` has come and that is not retired.
    pub fn jose_signing_key(&self, alg: JwsAlg, now: u64) -> Option<&std::sync::Arc<JoseKey>> {
        self.keys
            .iter()
            .filter(|k| k.alg == alg)
            .filter(|k| {
                let s = &k.schedule;
                s.active_from <= now && s.retire_after.is_none_or(|r| now < r)
            })
            .filter_map(|k| k.jose.as_ref().map(|p| (&k.schedule, p)))
            .max_by_key(|(s, _)| (s.active_from, s.created_at))
            .map(|(_, k)| k)
    }

    /// The kids of this instance's own keys of `alg`.
    pub fn own_kids_of(&self, alg: JwsAlg) -> Vec<String> {
        self.keys
            .iter()
            .filter(|k| k.held() && k.alg == alg)
            .map(|k| k.schedule.kid.clone())
            .collect()
    }

    /// The algorithms of this instance's own keys that are not retired
    /// (the ones a rotation gives a successor).
    pub fn own_algs(&self) -> Vec<JwsAlg> {
        let mut out: Vec<JwsAlg> = self
            .keys
            .iter()
            .filter(|k| k.held() && k.schedule.retire_after.is_none())
            .map(|k| k.alg)
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The schedules, oldest first.
    pub fn schedules(&self) -> Vec<KeySchedule> {
        self.keys.iter().map(|k| k.schedule.clone()).collect()
    }

    /// The kids of the keys this instance holds (signs with).
    pub fn own_kids(&self) -> Vec<String> {
        self.keys
            .iter()
            .filter(|k| k.held())
            .map(|k| k.schedule.kid.clone())
            .collect()
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
    /// The new key (ES256).
    pub new_kid: String,
    /// The new keys of the other algorithms this instance signs with
    /// (`RS256`, `PS256`, `EdDSA`), each succeeding the keys of its own
    /// algorithm on the same schedule.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub others: Vec<jose::RotatedKey>,
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
) -> Result<Rotation, RegistryError> {
    // Make sure a legacy directory has its ring before adding to it; the
    // keys this rotation replaces are this instance's own.
    let ring = KeyRing::load(store, keys).await?;
    let own = ring.own_kids_of(JwsAlg::Es256);
    let dir = keys.path.as_path();
    fs::create_dir_all(dir).map_err(RegistryError::io(dir))?;
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
                public_key: Some(signer.public_key().to_sec1()),
                alg: JwsAlg::Es256.as_str().into(),
            },
            &own,
            floor,
        )
        .await?;
    let others = jose::rotate_others(store, keys, &ring, now, active_from, floor).await?;
    let own: Vec<String> = ring.own_kids();
    store.extend_retirements(leeway).await?;
    let retire_old_after = store
        .key_schedules()
        .await?
        .iter()
        .filter(|s| own.contains(&s.kid))
        .filter_map(|s| s.retire_after)
        .max()
        .unwrap_or(floor);
    let current = dir.join("current");
    fs::write(&current, format!("{kid}\n")).map_err(RegistryError::io(&current))?;
    Ok(Rotation {
        new_kid: kid,
        others,
        active_from,
        retire_old_after,
    })
}

/// Drops retired keys from the ring (this instance's own, and other
/// instances' keys retired long ago: [`crate::store::ORPHANED_KEY_SECS`])
/// and deletes the private key files of this instance's.
pub async fn prune_retired(
    store: &Store,
    dir: &Path,
    now: u64,
) -> Result<Vec<String>, RegistryError> {
    let (own, own_jose) = if dir.exists() {
        (key_files(dir)?, jose::key_files(dir)?)
    } else {
        (Vec::new(), Vec::new())
    };
    let mut all_own = own.clone();
    all_own.extend(own_jose.iter().map(|(k, _)| k.clone()));
    let gone = store.drop_retired_keys(now, &all_own).await?;
    for kid in gone.iter().filter(|k| all_own.contains(k)) {
        let path = match own_jose.iter().find(|(k, _)| k == kid) {
            Some((_, alg)) => jose::key_path(dir, kid, *alg),
            None => key_path(dir, kid),
        };
        if let Err(e) = fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            return Err(RegistryError::io(&path)(e));
        }
    }
    Ok(gone)
}

fn key_path(dir: &Path, kid: &str) -> PathBuf {
    dir.join(format!("{kid}.key.pem"))
}

/// Writes a secret file created with mode 0600 (never readable by others, not even briefly).
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), RegistryError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(RegistryError::io(path))?;
    file.write_all(contents).map_err(RegistryError::io(path))?;
    file.sync_all().map_err(RegistryError::io(path))?;
    Ok(())
}

#[cfg(test)]
mod tests;
