//! Another instance of the same service: its own issuing CA under the
//! service's root, made without any private key leaving the machine that
//! holds it.
//!
//! 1. [`begin_join`] on the new instance: writes the root certificate
//!    (public), a new issuing CA key (`issuing-ca.pending.key.pem`, 0600, or
//!    encrypted) and its request, `issuing-ca.csr.pem`.
//! 2. [`sign_instance_ca`] where the root key is (the first instance, or an
//!    offline machine): checks the request and signs an issuing CA
//!    certificate for its key, with certbound's own CA profile (nothing the
//!    request asks for is copied but its key and common name).
//! 3. [`finish_join`] on the new instance: checks that the certificate is
//!    for its pending key and signed by its root, then installs it as the
//!    current issuing CA (`issuing-ca.pem`, `issuing-ca.key.pem`,
//!    `ca-chain.pem`), as a rotation would.

use std::path::{Path, PathBuf};

use rcgen::{
    CertificateSigningRequestParams, DnType, KeyPair, PKCS_ECDSA_P256_SHA256, PublicKeyData as _,
};

use crate::ca::{CLOCK_SKEW_SECS, ca_params};
use crate::cert::{add_days, parse_der, serial_hex, unix_u64};
use crate::files::{ROLE_ISSUING, Secrecy, create_dir, read_text, replace_file, write_new_file};
use crate::rotate::{keep, root_issuer, write_chain};
use crate::validate::check_signed_by;
use crate::{CaOptions, PkiError, PkiPaths, parse_pem_certs, verify_csr};

/// Longest common name accepted for an instance's issuing CA.
const MAX_NAME: usize = 64;

impl PkiPaths {
    /// `pki/issuing-ca.csr.pem`: a joining instance's request for its issuing CA.
    pub fn issuing_csr(&self) -> PathBuf {
        self.dir.join("issuing-ca.csr.pem")
    }

    /// `pki/issuing-ca.pending.key.pem`: the key of that request (0600).
    pub fn issuing_pending_key(&self) -> PathBuf {
        self.dir.join("issuing-ca.pending.key.pem")
    }
}

/// An issuing CA certificate [`sign_instance_ca`] made.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct InstanceCa {
    /// The certificate, then the root (PEM): what [`finish_join`] takes.
    pub chain_pem: String,
    /// The certificate (DER).
    pub cert_der: Vec<u8>,
    /// Its serial, lowercase hex.
    pub serial_hex: String,
    /// Its notAfter, Unix seconds.
    pub not_after: u64,
}

fn first_cert(pem: &str, what: &str) -> Result<Vec<u8>, PkiError> {
    parse_pem_certs(pem)?
        .into_iter()
        .next()
        .ok_or_else(|| PkiError::Malformed(format!("{what}: no CERTIFICATE block")))
}

/// Starts a join: writes `root_pem` as the root certificate, a new issuing
/// CA key and its request named `common_name`. Returns the request (PEM).
/// Run again before [`finish_join`], it returns the same request.
///
/// # Errors
/// [`PkiError::AlreadyExists`] when `pki/` already has an issuing CA (this
/// directory is an instance already), [`PkiError::InvalidChain`] when
/// `root_pem` is not a self-signed CA, [`PkiError::InvalidArgument`] for a
/// bad name, [`PkiError::Io`].
pub fn begin_join(paths: &PkiPaths, root_pem: &str, common_name: &str) -> Result<String, PkiError> {
    check_name(common_name)?;
    let root_der = first_cert(root_pem, "root certificate")?;
    let root = parse_der(&root_der, "root certificate")?;
    if !root.is_ca() || check_signed_by(&root, &root).is_err() {
        return Err(PkiError::InvalidChain(
            "the service's root certificate is not a self-signed CA".into(),
        ));
    }
    for done in [paths.issuing_cert(), paths.issuing_key(), paths.chain()] {
        if done.exists() {
            return Err(PkiError::AlreadyExists(done));
        }
    }
    let root_text = crate::pem::encode_pem("CERTIFICATE", &root_der);
    if paths.issuing_csr().exists() {
        // A repeated call: same root, same request.
        if first_cert(&read_text(&paths.root_cert())?, "root-ca.pem")? != root_der {
            return Err(PkiError::Malformed(format!(
                "{} holds another root than the service's; remove the pki directory and join again",
                paths.root_cert().display()
            )));
        }
        return read_text(&paths.issuing_csr());
    }
    create_dir(&paths.dir, true)?;
    replace_file(&paths.root_cert(), root_text.as_bytes(), Secrecy::Public)?;
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    let csr = params.serialize_request(&key)?.pem()?;
    let key_text = paths.key_text(&key, ROLE_ISSUING)?;
    write_new_file(
        &paths.issuing_pending_key(),
        key_text.as_bytes(),
        Secrecy::Secret,
    )?;
    replace_file(&paths.issuing_csr(), csr.as_bytes(), Secrecy::Public)?;
    Ok(csr)
}

fn check_name(name: &str) -> Result<(), PkiError> {
    if name.trim().is_empty()
        || name.chars().count() > MAX_NAME
        || name.chars().any(char::is_control)
    {
        return Err(PkiError::InvalidArgument(format!(
            "issuing CA name {name:?}: use 1 to {MAX_NAME} printable characters"
        )));
    }
    Ok(())
}

/// Signs an instance's issuing CA request with the root of `paths` (its key
/// at `root_key`, or `pki/root-ca.key.pem`): pathlen 0, keyCertSign and
/// cRLSign, valid from `now - 60` for `opts.issuing_lifetime_days` (never past
/// the root). Only the request's key and common name are used.
///
/// # Errors
/// [`PkiError::BadCsr`] / [`PkiError::UnsupportedKey`] for a request that
/// does not verify or is not P-256, [`PkiError::InvalidArgument`] for a bad
/// common name, [`PkiError::RootKeyUnavailable`] without the root key,
/// [`PkiError::Expired`] for an expired root.
pub fn sign_instance_ca(
    paths: &PkiPaths,
    csr_pem: &str,
    opts: &CaOptions,
    now: u64,
    root_key: Option<&Path>,
) -> Result<InstanceCa, PkiError> {
    verify_csr(csr_pem.as_bytes())?;
    let request = CertificateSigningRequestParams::from_pem(csr_pem)
        .map_err(|e| PkiError::BadCsr(format!("unreadable request: {e}")))?;
    let name = request
        .params
        .distinguished_name
        .get(&DnType::CommonName)
        .and_then(dn_text)
        .unwrap_or_else(|| opts.issuing_common_name.clone());
    check_name(&name)?;
    if opts.issuing_lifetime_days == 0 {
        return Err(PkiError::InvalidArgument(
            "the issuing CA lifetime must be at least one day".into(),
        ));
    }
    let (root, root_not_after) = root_issuer(paths, now, root_key)?;
    let not_after = add_days(now, opts.issuing_lifetime_days)?.min(root_not_after);
    let mut params = ca_params(&name, 0, now.saturating_sub(CLOCK_SKEW_SECS), not_after)?;
    params.use_authority_key_identifier_extension = true;
    // verify_csr checked the key (P-256) and the proof of possession.
    let public_key = request.public_key;
    let cert = CertificateSigningRequestParams { params, public_key }.signed_by(&root)?;
    let cert_der = cert.der().to_vec();
    let serial = serial_hex(parse_der(&cert_der, "issuing CA")?.raw_serial());
    let mut chain_pem = cert.pem();
    chain_pem.push_str(&read_text(&paths.root_cert())?);
    Ok(InstanceCa {
        chain_pem,
        cert_der,
        serial_hex: serial,
        not_after,
    })
}

fn dn_text(v: &rcgen::DnValue) -> Option<String> {
    match v {
        rcgen::DnValue::Utf8String(s) => Some(s.clone()),
        rcgen::DnValue::PrintableString(s) => Some(s.as_str().to_owned()),
        rcgen::DnValue::Ia5String(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

/// Finishes a join: installs the issuing CA certificate (first block of
/// `cert_pem`) for the pending key, after checking that it is that key's,
/// that it is a CA and that the root of `paths` signed it. Returns its
/// serial.
///
/// # Errors
/// [`PkiError::Malformed`] without a pending join or for a certificate of
/// another key, [`PkiError::InvalidChain`] / [`PkiError::BadSignature`] for
/// a certificate the root did not sign or that is no CA, [`PkiError::Io`].
pub fn finish_join(paths: &PkiPaths, cert_pem: &str, now: u64) -> Result<String, PkiError> {
    let pending = paths.issuing_pending_key();
    if !pending.exists() {
        return Err(PkiError::Malformed(format!(
            "{} is missing: start with `certbound init --join` (nothing to finish)",
            pending.display()
        )));
    }
    let key = paths.read_key(&pending, ROLE_ISSUING)?;
    let der = first_cert(cert_pem, "issuing CA certificate")?;
    let cert = parse_der(&der, "issuing CA certificate")?;
    if cert.public_key().raw != key.subject_public_key_info() {
        return Err(PkiError::Malformed(
            "the certificate is for another key than this instance's request \
             (issuing-ca.csr.pem); sign that request"
                .into(),
        ));
    }
    let root_der = first_cert(&read_text(&paths.root_cert())?, "root-ca.pem")?;
    let root = parse_der(&root_der, "root certificate")?;
    check_signed_by(&cert, &root)?;
    if !cert.is_ca() {
        return Err(PkiError::InvalidChain(
            "the certificate is not a CA certificate".into(),
        ));
    }
    let not_after = unix_u64(cert.validity().not_after.timestamp());
    if not_after <= now {
        return Err(PkiError::Expired { not_after, now });
    }
    let serial = serial_hex(cert.raw_serial());
    let cert_text = crate::pem::encode_pem("CERTIFICATE", &der);
    keep(paths, &serial, &cert_text, &key)?;
    let key_text = paths.key_text(&key, ROLE_ISSUING)?;
    replace_file(&paths.issuing_key(), key_text.as_bytes(), Secrecy::Secret)?;
    replace_file(&paths.issuing_cert(), cert_text.as_bytes(), Secrecy::Public)?;
    write_chain(paths, now)?;
    for done in [pending, paths.issuing_csr()] {
        std::fs::remove_file(&done).map_err(|e| PkiError::io(&done, e))?;
    }
    Ok(serial)
}

#[cfg(test)]
mod tests;
