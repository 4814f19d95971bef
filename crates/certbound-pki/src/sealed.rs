//! Private keys encrypted at rest ("sealed") with a key encryption key.
//!
//! A sealed key file is PEM with the label `CERTBOUND ENCRYPTED PRIVATE KEY`
//! whose body is
//!
//! ```text
//! version (1 byte, = 1) || nonce (12 bytes, random) || AES-256-GCM ciphertext of the
//! PKCS#8 DER private key || GCM tag (16 bytes)
//! ```
//!
//! with the additional authenticated data `certbound-sealed-key-v1:<role>`,
//! where the role names what the key is for (`root-ca`, `issuing-ca`,
//! `signing-key:<kid>`): a sealed key cannot be passed off as a key of
//! another role, and any change to the file fails the GCM tag.
//!
//! The key encryption key is 32 random bytes, written base64 (for example
//! `openssl rand -base64 32`). It is a key, not a password, so no key
//! derivation function is involved. PKCS#8 `EncryptedPrivateKeyInfo` (PBES2)
//! was not used: it would bring a second crypto stack (the RustCrypto
//! `pkcs5` crates) and a password KDF that a random key does not need.
//!
//! Plaintext `PRIVATE KEY` PEM files keep working: [`open_key`] accepts both.

use std::fmt;
use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine as _;
use x509_parser::pem::Pem;
use zeroize::Zeroizing;

use crate::PkiError;

/// PEM label of a sealed private key file.
pub const SEALED_KEY_LABEL: &str = "CERTBOUND ENCRYPTED PRIVATE KEY";

/// Format version byte of a sealed key.
const VERSION: u8 = 1;
/// GCM tag length.
const TAG_LEN: usize = 16;

/// A 256-bit key that encrypts private key files at rest. Its bytes are
/// wiped from memory when it is dropped, and `Debug` never shows them.
pub struct KeyEncryptionKey {
    key: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyEncryptionKey([redacted])")
    }
}

impl KeyEncryptionKey {
    /// The key from its base64 text (standard alphabet, padding optional,
    /// surrounding whitespace ignored), which must decode to exactly 32 bytes.
    ///
    /// # Errors
    /// [`PkiError::BadKeyEncryptionKey`]; the message never repeats the input.
    pub fn from_base64(text: &str) -> Result<Self, PkiError> {
        let text = text.trim();
        let decoded = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
                .map_err(|_| PkiError::BadKeyEncryptionKey("it is not base64 text".into()))?,
        );
        let mut key = Zeroizing::new([0u8; 32]);
        if decoded.len() != key.len() {
            return Err(PkiError::BadKeyEncryptionKey(format!(
                "it decodes to {} bytes, not 32",
                decoded.len()
            )));
        }
        key.copy_from_slice(&decoded);
        Ok(Self { key })
    }

    /// Reads the key from a file holding its base64 text.
    ///
    /// # Errors
    /// [`PkiError::Io`] when the file cannot be read, otherwise as
    /// [`KeyEncryptionKey::from_base64`] (naming the file).
    pub fn read_file(path: &Path) -> Result<Self, PkiError> {
        let text = Zeroizing::new(std::fs::read(path).map_err(|e| PkiError::io(path, e))?);
        let text = std::str::from_utf8(&text).map_err(|_| {
            PkiError::BadKeyEncryptionKey(format!("{} is not base64 text", path.display()))
        })?;
        Self::from_base64(text).map_err(|e| match e {
            PkiError::BadKeyEncryptionKey(reason) => {
                PkiError::BadKeyEncryptionKey(format!("{}: {reason}", path.display()))
            }
            other => other,
        })
    }

    /// A new random key.
    ///
    /// # Errors
    /// [`PkiError::Random`].
    pub fn generate() -> Result<Self, PkiError> {
        let mut key = Zeroizing::new([0u8; 32]);
        aws_lc_rs::rand::fill(key.as_mut_slice()).map_err(|_| PkiError::Random)?;
        Ok(Self { key })
    }

    /// The key as base64 text (to store it in a file or an environment variable).
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(self.key.as_slice()))
    }

    fn aead(&self) -> Result<LessSafeKey, PkiError> {
        let unbound = UnboundKey::new(&AES_256_GCM, self.key.as_slice())
            .map_err(|_| PkiError::BadKeyEncryptionKey("AES-256-GCM refused the key".into()))?;
        Ok(LessSafeKey::new(unbound))
    }
}

fn aad(role: &str) -> Vec<u8> {
    format!("certbound-sealed-key-v1:{role}").into_bytes()
}

/// Encrypts a PKCS#8 DER private key for `role` and returns the sealed PEM text.
///
/// # Errors
/// [`PkiError::Random`] when no nonce can be drawn.
pub fn seal_key(kek: &KeyEncryptionKey, role: &str, pkcs8_der: &[u8]) -> Result<String, PkiError> {
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| PkiError::Random)?;
    let mut body = Zeroizing::new(Vec::with_capacity(
        1 + NONCE_LEN + pkcs8_der.len() + TAG_LEN,
    ));
    body.push(VERSION);
    body.extend_from_slice(&nonce);
    let mut in_out = pkcs8_der.to_vec();
    let sealed = kek.aead()?.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad(role)),
        &mut in_out,
    );
    if sealed.is_err() {
        zeroize::Zeroize::zeroize(&mut in_out);
        return Err(PkiError::BadKeyEncryptionKey(
            "AES-256-GCM encryption failed".into(),
        ));
    }
    body.extend_from_slice(&in_out);
    Ok(crate::pem::encode_pem(SEALED_KEY_LABEL, &body))
}

/// Whether `text` is a sealed key file (rather than a plaintext PEM key).
pub fn is_sealed(text: &str) -> bool {
    text.contains(&format!("-----BEGIN {SEALED_KEY_LABEL}-----"))
}

/// The PKCS#8 DER private key in the key file text `text` read from `path`:
/// a plaintext `PRIVATE KEY` PEM block, or a sealed one opened with `kek`
/// for `role`. The result is wiped from memory when dropped.
///
/// # Errors
/// [`PkiError::SealedKeyNoKek`] for a sealed file and no `kek`,
/// [`PkiError::SealedKeyOpen`] when the key is wrong, the role differs or the
/// file was altered (GCM tag), [`PkiError::Malformed`] when the file holds
/// neither kind of key. Every message names `path`.
pub fn open_key(
    text: &str,
    kek: Option<&KeyEncryptionKey>,
    role: &str,
    path: &Path,
) -> Result<Zeroizing<Vec<u8>>, PkiError> {
    let mut found = None;
    for block in Pem::iter_from_buffer(text.as_bytes()) {
        let Ok(block) = block else {
            break;
        };
        if block.label == SEALED_KEY_LABEL || block.label == "PRIVATE KEY" {
            found = Some(block);
            break;
        }
    }
    let Some(block) = found else {
        return Err(PkiError::Malformed(format!(
            "{} holds no PEM PRIVATE KEY or {SEALED_KEY_LABEL} block",
            path.display()
        )));
    };
    let mut contents = Zeroizing::new(block.contents);
    if block.label == "PRIVATE KEY" {
        return Ok(contents);
    }
    let Some(kek) = kek else {
        return Err(PkiError::SealedKeyNoKek(path.to_path_buf()));
    };
    let open_err = || PkiError::SealedKeyOpen(path.to_path_buf());
    if contents.len() < 1 + NONCE_LEN + TAG_LEN || contents[0] != VERSION {
        return Err(open_err());
    }
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&contents[1..1 + NONCE_LEN]);
    let plain_len = kek
        .aead()?
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad(role)),
            &mut contents[1 + NONCE_LEN..],
        )
        .map_err(|_| open_err())?
        .len();
    Ok(Zeroizing::new(
        contents[1 + NONCE_LEN..1 + NONCE_LEN + plain_len].to_vec(),
    ))
}

/// The key file text to write for the PKCS#8 DER key `pkcs8_der`: sealed for
/// `role` when `kek` is given, plaintext `PRIVATE KEY` PEM otherwise.
///
/// # Errors
/// As [`seal_key`].
pub fn key_file_text(
    kek: Option<&KeyEncryptionKey>,
    role: &str,
    pkcs8_der: &[u8],
) -> Result<Zeroizing<String>, PkiError> {
    Ok(Zeroizing::new(match kek {
        Some(kek) => seal_key(kek, role, pkcs8_der)?,
        None => crate::pem::encode_pem("PRIVATE KEY", pkcs8_der),
    }))
}

/// Encrypts the plaintext key file at `path` for `role` in place: writes the
/// sealed file next to it (mode 0600), syncs it and renames it over the
/// original, so a crash leaves either the old or the new file. Returns
/// `false` (and changes nothing) when the file is sealed already; it must
/// then open with `kek`, so that one data directory never mixes keys.
///
/// # Errors
/// [`PkiError::SealedKeyOpen`] for a file sealed with another key,
/// [`PkiError::Malformed`] when the file holds no private key, [`PkiError::Io`].
pub fn seal_key_file(path: &Path, kek: &KeyEncryptionKey, role: &str) -> Result<bool, PkiError> {
    let text = Zeroizing::new(crate::files::read_text(path)?);
    let der = open_key(&text, Some(kek), role, path)?;
    if is_sealed(&text) {
        return Ok(false);
    }
    let sealed = seal_key(kek, role, &der)?;
    crate::files::replace_file(path, sealed.as_bytes(), crate::files::Secrecy::Secret)?;
    Ok(true)
}

#[cfg(test)]
mod tests;
