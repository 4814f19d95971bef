//! Issuing CA rotation: a new issuing CA under the same root, with the
//! previous ones kept so that the certificates they issued keep validating.
//!
//! Files in `pki/` after a rotation:
//!
//! * `issuing-ca.pem`, `issuing-ca.key.pem`: the current issuing CA (each
//!   replaced atomically);
//! * `issuing-ca.<serial>.pem`, `issuing-ca.<serial>.key.pem` (0600): every
//!   issuing CA that has been current, the current one included;
//! * `ca-chain.pem`: the current issuing CA, the previous issuing CAs that
//!   are still valid (latest expiry first), then the root.

use std::fs;

use rcgen::{Issuer, KeyPair, PKCS_ECDSA_P256_SHA256, PublicKeyData as _};

use crate::ca::{CLOCK_SKEW_SECS, ca_params};
use crate::cert::{add_days, parse_der, serial_hex, unix_u64};
use crate::files::{
    ROLE_ISSUING, ROLE_ROOT, Secrecy, is_serial_hex, read_text, replace_file, write_new_file,
};
use crate::pem::encode_pem;
use crate::{CaOptions, IssuingCa, PkiError, PkiPaths, parse_pem_certs};

/// One issuing CA certificate of the hierarchy, for `certbound ca show`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CaInfo {
    /// Serial number, lowercase hex without leading zero bytes.
    pub serial_hex: String,
    /// Subject DN in RFC 4514 form.
    pub subject: String,
    /// notBefore, unix seconds.
    pub not_before: u64,
    /// notAfter, unix seconds.
    pub not_after: u64,
    /// Whether this is the current issuing CA (`issuing-ca.pem`), the one
    /// that issues new certificates.
    pub current: bool,
}

/// What [`rotate_issuing`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RotatedCa {
    /// Serial of the issuing CA that was current before, now kept as
    /// `issuing-ca.<old_serial>.pem`.
    pub old_serial: String,
    /// Serial of the new current issuing CA.
    pub new_serial: String,
    /// notAfter of the new issuing CA, unix seconds (never past the root's).
    pub new_not_after: u64,
}

/// A certificate read from a file: PEM text, DER and serial.
pub(crate) struct CertFile {
    pub(crate) pem: String,
    pub(crate) der: Vec<u8>,
    pub(crate) serial: String,
}

pub(crate) fn read_cert(path: &std::path::Path) -> Result<CertFile, PkiError> {
    let pem = read_text(path)?;
    let der = parse_pem_certs(&pem)
        .map_err(|e| PkiError::Malformed(format!("{}: {e}", path.display())))?
        .swap_remove(0);
    let serial = serial_hex(parse_der(&der, "CA certificate")?.raw_serial());
    Ok(CertFile { pem, der, serial })
}

/// Creates a new issuing CA signed by the root and makes it current.
///
/// Needs `root-ca.pem` and `root-ca.key.pem` (see
/// [`rotate_issuing_with_root_key`] for a root key kept elsewhere). Uses
/// `opts.issuing_common_name` and `opts.issuing_lifetime_days` (capped at the
/// root's notAfter); the root options are ignored. Steps, each one safe to
/// repeat after a crash:
///
/// 1. keep the current issuing CA as `issuing-ca.<serial>.pem` / `.key.pem`
///    (0600);
/// 2. create the new CA (P-256, pathlen 0, keyCertSign + cRLSign, notBefore
///    `now - 60`) and keep it the same way;
/// 3. replace `issuing-ca.key.pem`, then `issuing-ca.pem`, then
///    `ca-chain.pem`, each atomically (temporary file + rename).
///
/// If an earlier rotation stopped between the two replacements of step 3
/// (`issuing-ca.key.pem` no longer matches `issuing-ca.pem`), this call
/// finishes that rotation instead of starting another one.
///
/// [`IssuingCa::load`] then loads the new CA; [`TrustStore::load`](crate::TrustStore::load)
/// trusts the new and the previous ones. Processes that already loaded the
/// old CA keep using it until they reload. Run one rotation at a time.
///
/// # Errors
/// [`PkiError::RootKeyUnavailable`] without the root key,
/// [`PkiError::Expired`] when the root has expired (make a new hierarchy),
/// [`PkiError::InvalidArgument`] for an empty name or zero lifetime,
/// [`PkiError::Malformed`] for unreadable or mismatched files,
/// [`PkiError::AlreadyExists`] when a kept file with different contents is in
/// the way, [`PkiError::Io`].
pub fn rotate_issuing(paths: &PkiPaths, opts: &CaOptions, now: u64) -> Result<RotatedCa, PkiError> {
    rotate_issuing_with_root_key(paths, opts, now, None)
}

/// [`rotate_issuing`] with the root private key read from `root_key` (the
/// offline copy written by [`crate::init_ca_root_key_at`]) instead of
/// `pki/root-ca.key.pem`; `None` reads `pki/root-ca.key.pem`. The key may be
/// plaintext PKCS#8 PEM or encrypted with the key encryption key of `paths`.
///
/// # Errors
/// As [`rotate_issuing`]; [`PkiError::RootKeyUnavailable`] names the file
/// that was looked for.
pub fn rotate_issuing_with_root_key(
    paths: &PkiPaths,
    opts: &CaOptions,
    now: u64,
    root_key: Option<&std::path::Path>,
) -> Result<RotatedCa, PkiError> {
    if opts.issuing_common_name.trim().is_empty() {
        return Err(PkiError::InvalidArgument(
            "issuing_common_name must not be empty".into(),
        ));
    }
    if opts.issuing_lifetime_days == 0 {
        return Err(PkiError::InvalidArgument(
            "the issuing CA lifetime must be at least one day".into(),
        ));
    }
    let (root_issuer, root_not_after) = root_issuer(paths, now, root_key)?;

    let current = read_cert(&paths.issuing_cert())?;
    let current_key = paths.read_key(&paths.issuing_key(), ROLE_ISSUING)?;
    let current_spki = parse_der(&current.der, "issuing CA")?
        .public_key()
        .raw
        .to_vec();
    if current_key.subject_public_key_info() != current_spki {
        return finish_interrupted(paths, &current, &current_key, now);
    }

    // 1. Keep the current issuing CA.
    keep(paths, &current.serial, &current.pem, &current_key)?;

    // 2. The new issuing CA.
    let not_before = now.saturating_sub(CLOCK_SKEW_SECS);
    let not_after = add_days(now, opts.issuing_lifetime_days)?.min(root_not_after);
    let mut params = ca_params(&opts.issuing_common_name, 0, not_before, not_after)?;
    params.use_authority_key_identifier_extension = true;
    let new_serial = params
        .serial_number
        .as_ref()
        .map(|s| serial_hex(s.as_ref()))
        .ok_or_else(|| PkiError::InvalidArgument("no serial number was generated".into()))?;
    let new_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let new_cert = params.signed_by(&new_key, &root_issuer)?;
    let new_cert_pem = new_cert.pem();
    keep(paths, &new_serial, &new_cert_pem, &new_key)?;
    let new_key_pem = paths.key_text(&new_key, ROLE_ISSUING)?;

    // 3. Make it current.
    replace_file(
        &paths.issuing_key(),
        new_key_pem.as_bytes(),
        Secrecy::Secret,
    )?;
    replace_file(
        &paths.issuing_cert(),
        new_cert_pem.as_bytes(),
        Secrecy::Public,
    )?;
    write_chain(paths, now)?;
    Ok(RotatedCa {
        old_serial: current.serial,
        new_serial,
        new_not_after: not_after,
    })
}

/// The root CA as an issuer (its certificate and private key: `root_key`,
/// or `pki/root-ca.key.pem`), and the root's notAfter.
///
/// # Errors
/// [`PkiError::RootKeyUnavailable`] without the key, [`PkiError::Expired`]
/// for an expired root, [`PkiError::Malformed`] for a key of another root.
pub(crate) fn root_issuer(
    paths: &PkiPaths,
    now: u64,
    root_key: Option<&std::path::Path>,
) -> Result<(Issuer<'static, KeyPair>, u64), PkiError> {
    let root = read_cert(&paths.root_cert())?;
    let root_not_after = unix_u64(
        parse_der(&root.der, "root CA")?
            .validity()
            .not_after
            .timestamp(),
    );
    if now >= root_not_after {
        return Err(PkiError::Expired {
            not_after: root_not_after,
            now,
        });
    }
    let root_key_path = root_key.map_or_else(|| paths.root_key(), std::path::Path::to_path_buf);
    let root_key = match paths.read_key(&root_key_path, ROLE_ROOT) {
        Ok(key) => key,
        Err(PkiError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Err(PkiError::RootKeyUnavailable(root_key_path));
        }
        Err(e) => return Err(e),
    };
    if root_key.algorithm() != &PKCS_ECDSA_P256_SHA256
        || root_key.subject_public_key_info() != parse_der(&root.der, "root CA")?.public_key().raw
    {
        return Err(PkiError::Malformed(format!(
            "{} does not belong to root-ca.pem; use the root key that signed this hierarchy",
            root_key_path.display()
        )));
    }

    let issuer = Issuer::from_ca_cert_pem(&encode_pem("CERTIFICATE", &root.der), root_key)?;
    Ok((issuer, root_not_after))
}

/// `issuing-ca.key.pem` holds the key of a kept issuing CA other than
/// `issuing-ca.pem`: a rotation stopped after replacing the key. Puts the
/// matching certificate in place and rewrites the chain.
fn finish_interrupted(
    paths: &PkiPaths,
    current: &CertFile,
    current_key: &KeyPair,
    now: u64,
) -> Result<RotatedCa, PkiError> {
    for serial in paths.archived_issuing_serials()? {
        let kept = read_cert(&paths.issuing_cert_archived(&serial))?;
        let x509 = parse_der(&kept.der, "kept issuing CA")?;
        if x509.public_key().raw == current_key.subject_public_key_info() {
            let new_not_after = unix_u64(x509.validity().not_after.timestamp());
            replace_file(&paths.issuing_cert(), kept.pem.as_bytes(), Secrecy::Public)?;
            write_chain(paths, now)?;
            return Ok(RotatedCa {
                old_serial: current.serial.clone(),
                new_serial: kept.serial,
                new_not_after,
            });
        }
    }
    Err(PkiError::Malformed(
        "issuing-ca.key.pem does not belong to issuing-ca.pem and no kept \
         issuing-ca.<serial>.pem matches it; restore the pki directory from a backup"
            .into(),
    ))
}

/// Writes `issuing-ca.<serial>.key.pem` (0600; encrypted when `paths` has a
/// key encryption key), then `issuing-ca.<serial>.pem`. Files that already
/// hold the same key (decrypted) and certificate are left alone.
pub(crate) fn keep(
    paths: &PkiPaths,
    serial: &str,
    cert_pem: &str,
    key: &KeyPair,
) -> Result<(), PkiError> {
    let key_path = paths.issuing_key_archived(serial);
    let key_text = paths.key_text(key, ROLE_ISSUING)?;
    match write_new_file(&key_path, key_text.as_bytes(), Secrecy::Secret) {
        Err(PkiError::AlreadyExists(_))
            if paths
                .read_key(&key_path, ROLE_ISSUING)
                .is_ok_and(|old| old.serialize_der() == key.serialize_der()) => {}
        other => other?,
    }
    let cert_path = paths.issuing_cert_archived(serial);
    match write_new_file(&cert_path, cert_pem.as_bytes(), Secrecy::Public) {
        Err(PkiError::AlreadyExists(_))
            if fs::read(&cert_path).is_ok_and(|old| old == cert_pem.as_bytes()) => {}
        other => other?,
    }
    Ok(())
}

/// Rewrites `ca-chain.pem`: the current issuing CA, the kept issuing CAs
/// still valid at `now` (latest notAfter first), then the root.
pub(crate) fn write_chain(paths: &PkiPaths, now: u64) -> Result<(), PkiError> {
    let current = read_cert(&paths.issuing_cert())?;
    let root = read_cert(&paths.root_cert())?;
    let mut previous = Vec::new();
    for info in list_issuing(paths)? {
        if !info.current && info.not_after > now {
            let kept = read_cert(&paths.issuing_cert_archived(&info.serial_hex))?;
            previous.push((info.not_after, kept.der));
        }
    }
    previous.sort_by_key(|(not_after, _)| std::cmp::Reverse(*not_after));
    let mut chain = encode_pem("CERTIFICATE", &current.der);
    for (_, der) in &previous {
        chain.push_str(&encode_pem("CERTIFICATE", der));
    }
    chain.push_str(&encode_pem("CERTIFICATE", &root.der));
    replace_file(&paths.chain(), chain.as_bytes(), Secrecy::Public)
}

/// Every issuing CA in `paths.dir`: the current one (`issuing-ca.pem`) first,
/// then the kept ones (`issuing-ca.<serial>.pem`) by notAfter, latest first.
/// Expired ones are listed too (compare `not_after` with the time).
///
/// # Errors
/// [`PkiError::Io`], and [`PkiError::Malformed`] for an unreadable file or a
/// kept file whose certificate serial does not match its name.
pub fn list_issuing(paths: &PkiPaths) -> Result<Vec<CaInfo>, PkiError> {
    let current = read_cert(&paths.issuing_cert())?;
    let mut out = vec![ca_info(&current.der, true)?];
    for serial in paths.archived_issuing_serials()? {
        let file = paths.issuing_cert_archived(&serial);
        let kept = read_cert(&file)?;
        if kept.serial != serial {
            return Err(PkiError::Malformed(format!(
                "{} holds the certificate with serial {}; the file name must carry its \
                 serial (rename or remove it)",
                file.display(),
                kept.serial
            )));
        }
        if serial != current.serial {
            out.push(ca_info(&kept.der, false)?);
        }
    }
    out[1..].sort_by_key(|info| std::cmp::Reverse(info.not_after));
    Ok(out)
}

fn ca_info(der: &[u8], current: bool) -> Result<CaInfo, PkiError> {
    let x509 = parse_der(der, "issuing CA certificate")?;
    Ok(CaInfo {
        serial_hex: serial_hex(x509.raw_serial()),
        subject: x509.subject().to_string(),
        not_before: unix_u64(x509.validity().not_before.timestamp()),
        not_after: unix_u64(x509.validity().not_after.timestamp()),
        current,
    })
}

impl IssuingCa {
    /// Loads a kept issuing CA, `issuing-ca.<serial_hex>.pem` and its key,
    /// for example to sign the CRL of certificates it issued before a
    /// rotation (see [`IssuingCa::crl`]).
    ///
    /// # Errors
    /// [`PkiError::InvalidArgument`] when `serial_hex` is not lowercase hex
    /// (as [`CaInfo::serial_hex`]), then as [`IssuingCa::load`].
    pub fn load_archived(paths: &PkiPaths, serial_hex: &str) -> Result<Self, PkiError> {
        if !is_serial_hex(serial_hex) {
            return Err(PkiError::InvalidArgument(format!(
                "{:?} is not an issuing CA serial; use a serial from `certbound ca show`",
                serial_hex.chars().take(64).collect::<String>()
            )));
        }
        let cert_pem = read_text(&paths.issuing_cert_archived(serial_hex))?;
        let key = paths.read_key(&paths.issuing_key_archived(serial_hex), ROLE_ISSUING)?;
        Self::from_parts(&cert_pem, key)
    }

    /// Serial number of this issuing CA's certificate (lowercase hex, as
    /// [`CaInfo::serial_hex`]).
    pub fn serial_hex(&self) -> &str {
        &self.serial_hex
    }

    /// Whether `cert_der` was signed by this CA (issuer name matches and the
    /// signature verifies with this CA's key). Use it to sort revoked
    /// certificates by issuing CA after a rotation; it checks nothing else.
    pub fn has_issued(&self, cert_der: &[u8]) -> bool {
        let (Ok(ca), Ok(cert)) = (
            parse_der(&self.cert_der, "issuing CA certificate"),
            parse_der(cert_der, "certificate"),
        ) else {
            return false;
        };
        cert.issuer().as_raw() == ca.subject().as_raw()
            && cert.verify_signature(Some(ca.public_key())).is_ok()
    }
}

#[cfg(test)]
mod tests;
