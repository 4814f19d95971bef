//! Signing keys of the algorithms other than ES256 (RS256, PS256, EdDSA),
//! for the APIs that ask for them (`certbound api create --alg`).
//!
//! - One key per algorithm: an RSA key signs RS256 *or* PS256, never both
//!   (its JWK carries one `alg`; RFC 7517 §4.4), so RS256 and PS256 keys
//!   have distinct kids (RFC 7638 thumbprints, [`JwsKey::kid`]).
//! - RSA keys are 2048-bit ([`certbound_proto::jose::RSA_KEY_SIZE`]).
//! - Files: `<kid>.<ALG>.key.pem`, PKCS#8, mode 0600, sealed like the ES256
//!   keys when a key encryption key is configured (role
//!   `signing-key:<kid>:<ALG>`, so a file renamed to another algorithm does
//!   not open).
//! - A key is created, active at once, when an API first asks for its
//!   algorithm ([`ensure_signing_key`]): no verifier can have cached a key
//!   set in which a key of that algorithm is missing *and* seen a token
//!   signed with one (the first token follows the key). `keys rotate` gives
//!   every algorithm in use here a successor on the ES256 key's schedule.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use certbound_pki::{KeyEncryptionKey, key_file_text, open_key, seal_key_file};
use certbound_proto::jose::{self as pj, JwsAlg, JwsKey, JwsSigner};
use zeroize::Zeroizing;

use super::{KeyDir, KeyRing, RingKey, write_private};
use crate::error::RegistryError;
use crate::store::{KeySchedule, Store};

/// A loaded signing key of an algorithm other than ES256.
#[derive(Debug)]
pub struct JoseKey {
    /// Key id ([`JwsKey::kid`]).
    pub kid: String,
    /// The algorithm it signs.
    pub alg: JwsAlg,
    /// The signer.
    pub signer: Box<dyn JwsSigner>,
}

/// A key added by a rotation for one algorithm.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RotatedKey {
    /// `RS256`, `PS256` or `EdDSA`.
    pub alg: String,
    /// The new key.
    pub new_kid: String,
}

fn role(kid: &str, alg: JwsAlg) -> String {
    format!("signing-key:{kid}:{alg}")
}

/// `DIR/keys/<kid>.<ALG>.key.pem`.
pub(super) fn key_path(dir: &Path, kid: &str, alg: JwsAlg) -> PathBuf {
    dir.join(format!("{kid}.{alg}.key.pem"))
}

/// The `(kid, alg)` of the `<kid>.<ALG>.key.pem` files in `dir`.
pub(super) fn key_files(dir: &Path) -> Result<Vec<(String, JwsAlg)>, RegistryError> {
    let mut out = Vec::new();
    let entries = fs::read_dir(dir).map_err(RegistryError::io(dir))?;
    for entry in entries {
        let entry = entry.map_err(RegistryError::io(dir))?;
        let name = entry.file_name().to_string_lossy().to_string();
        if let Some(stem) = name.strip_suffix(".key.pem")
            && !stem.starts_with('.')
            && let Some((kid, alg)) = stem.split_once('.')
            && let Some(alg) = JwsAlg::from_jose(alg)
            && alg != JwsAlg::Es256
        {
            out.push((kid.to_owned(), alg));
        }
    }
    out.sort();
    Ok(out)
}

/// Loads the key `kid` of `alg` (plaintext or sealed), checking that the
/// file holds that key.
pub fn load(keys: &KeyDir<'_>, kid: &str, alg: JwsAlg) -> Result<JoseKey, RegistryError> {
    let path = key_path(&keys.path, kid, alg);
    let pem = Zeroizing::new(fs::read_to_string(&path).map_err(RegistryError::io(&path))?);
    let der = open_key(&pem, keys.kek, &role(kid, alg), &path)?;
    let signer = pj::from_pkcs8_der(alg, &der)?;
    let actual = signer.jws_key().kid();
    if actual != kid {
        return Err(RegistryError::Invalid(format!(
            "{}: holds key {actual}, not {kid}; the keys directory was edited by hand",
            path.display()
        )));
    }
    Ok(JoseKey {
        kid: actual,
        alg,
        signer,
    })
}

/// Generates and writes a new key of `alg`; returns it loaded.
fn create(keys: &KeyDir<'_>, alg: JwsAlg) -> Result<JoseKey, RegistryError> {
    let dir = keys.path.as_path();
    fs::create_dir_all(dir).map_err(RegistryError::io(dir))?;
    let (signer, der) = pj::generate(alg)?;
    let der = Zeroizing::new(der);
    let kid = signer.jws_key().kid();
    let text = key_file_text(keys.kek, &role(&kid, alg), &der)?;
    write_private(&key_path(dir, &kid, alg), text.as_bytes())?;
    Ok(JoseKey { kid, alg, signer })
}

fn schedule_of(key: &JoseKey, created_at: u64, active_from: u64) -> KeySchedule {
    KeySchedule {
        kid: key.kid.clone(),
        created_at,
        active_from,
        retire_after: None,
        public_key: Some(key.signer.jws_key().to_stored()),
        alg: key.alg.as_str().into(),
    }
}

/// The ring entry for a scheduled key of `alg`: with its private key when
/// held here, else from the public key the store recorded.
pub(super) fn ring_key(
    dir: &KeyDir<'_>,
    local: &[(String, JwsAlg)],
    schedule: KeySchedule,
    alg: JwsAlg,
) -> Result<Option<RingKey>, RegistryError> {
    if local.iter().any(|(k, a)| *k == schedule.kid && *a == alg) {
        let key = load(dir, &schedule.kid, alg)?;
        return Ok(Some(RingKey {
            public: key.signer.jws_key(),
            schedule,
            alg,
            private: None,
            jose: Some(Arc::new(key)),
        }));
    }
    match schedule
        .public_key
        .as_deref()
        .map(|b| JwsKey::from_stored(alg, b))
    {
        Some(Ok(public)) => Ok(Some(RingKey {
            public,
            schedule,
            alg,
            private: None,
            jose: None,
        })),
        Some(Err(e)) => {
            tracing::warn!(
                kid = %schedule.kid, error = %e,
                "the store holds a malformed public key for this signing key; not published"
            );
            Ok(None)
        }
        None => Ok(None),
    }
}

/// Seals the plaintext key files of every other algorithm (see
/// [`super::seal_signing_keys`]).
pub(super) fn seal(
    keys: &KeyDir<'_>,
    kek: &KeyEncryptionKey,
) -> Result<Vec<PathBuf>, RegistryError> {
    let mut sealed = Vec::new();
    for (kid, alg) in key_files(&keys.path)? {
        let path = key_path(&keys.path, &kid, alg);
        load(keys, &kid, alg)?;
        if seal_key_file(&path, kek, &role(&kid, alg))? {
            sealed.push(path);
        }
    }
    Ok(sealed)
}

/// Makes sure this instance holds a key of `alg` that is not retired: when
/// it has none, creates one, published and signing from `now`. Returns the
/// new kid, or `None` when a key was already there (ES256 keys are made by
/// `certbound init` and always there: `None`).
pub async fn ensure_signing_key(
    store: &Store,
    keys: &KeyDir<'_>,
    alg: JwsAlg,
    now: u64,
) -> Result<Option<String>, RegistryError> {
    if alg == JwsAlg::Es256 {
        return Ok(None);
    }
    let ring = KeyRing::load(store, keys).await?;
    if ring.own_algs().contains(&alg) {
        return Ok(None);
    }
    let key = create(keys, alg)?;
    store
        .add_signing_key(&schedule_of(&key, now, now), &[], 0)
        .await?;
    tracing::info!(kid = %key.kid, %alg, "created a signing key for an API that asked for this algorithm");
    Ok(Some(key.kid))
}

/// The rotation of every other algorithm this instance signs with: a new
/// key each, published at `now`, signing from `active_from`; the keys of
/// that algorithm it replaces retire at `floor` at the earliest.
pub(super) async fn rotate_others(
    store: &Store,
    keys: &KeyDir<'_>,
    ring: &KeyRing,
    now: u64,
    active_from: u64,
    floor: u64,
) -> Result<Vec<RotatedKey>, RegistryError> {
    let mut out = Vec::new();
    for alg in ring.own_algs() {
        if alg == JwsAlg::Es256 {
            continue;
        }
        let key = create(keys, alg)?;
        store
            .add_signing_key(
                &schedule_of(&key, now, active_from),
                &ring.own_kids_of(alg),
                floor,
            )
            .await?;
        out.push(RotatedKey {
            alg: alg.as_str().into(),
            new_kid: key.kid,
        });
    }
    Ok(out)
}

/// The algorithms the APIs ask for that this instance holds no key of
/// (given its loaded `ring`), then [`ensure_signing_key`] for each: an
/// instance that joined a store where an API asks for RS256, or saw the API
/// change, makes its own key. Returns the kids created.
pub async fn ensure_for_apis(
    store: &Store,
    keys: &KeyDir<'_>,
    ring: &KeyRing,
    now: u64,
) -> Result<Vec<String>, RegistryError> {
    let held = ring.own_algs();
    let mut missing: Vec<JwsAlg> = store
        .api_signing_algs()
        .await?
        .into_iter()
        .filter_map(|(_, alg)| JwsAlg::from_jose(&alg))
        .filter(|alg| *alg != JwsAlg::Es256 && !held.contains(alg))
        .collect();
    missing.sort();
    missing.dedup();
    let mut made = Vec::new();
    for alg in missing {
        made.extend(ensure_signing_key(store, keys, alg, now).await?);
    }
    Ok(made)
}
