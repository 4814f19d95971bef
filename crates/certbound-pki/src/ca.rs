//! The CA hierarchy: a root CA and one issuing CA, created once by
//! [`init_ca`] and loaded for issuance with [`IssuingCa::load`].

use std::fmt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PublicKeyData as _, SerialNumber,
};

use crate::cert::{add_days, parse_der, random_serial, serial_hex, to_datetime, unix_u64};
use crate::files::{
    ROLE_ISSUING, ROLE_ROOT, Secrecy, create_dir, ensure_absent, read_text, write_new_file,
};
use crate::pem::encode_pem;
use crate::{PkiError, PkiPaths, parse_pem_certs};

/// Seconds subtracted from `now` for every notBefore, to tolerate clock skew
/// between the CA and the devices.
pub const CLOCK_SKEW_SECS: u64 = 60;

/// Names and lifetimes of the CA hierarchy made by [`init_ca`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaOptions {
    /// Subject CN of the root CA.
    pub root_common_name: String,
    /// Subject CN of the issuing CA.
    pub issuing_common_name: String,
    /// Root CA lifetime in days (default 3650).
    pub root_lifetime_days: u32,
    /// Issuing CA lifetime in days (default 1825); never extends past the root.
    pub issuing_lifetime_days: u32,
}

impl Default for CaOptions {
    fn default() -> Self {
        CaOptions {
            root_common_name: "certbound Root CA".into(),
            issuing_common_name: "certbound Issuing CA".into(),
            root_lifetime_days: 3650,
            issuing_lifetime_days: 1825,
        }
    }
}

/// Creates the CA hierarchy in `paths.dir` (mode 0700 when created), with
/// the root key online in `pki/root-ca.key.pem`; see [`init_ca_root_key_at`]
/// to keep it elsewhere (offline):
///
/// * `root-ca.pem`, `root-ca.key.pem` (0600): self-signed root, P-256,
///   CA with pathlen 1, keyCertSign + cRLSign;
/// * `issuing-ca.pem`, `issuing-ca.key.pem` (0600): issuing CA signed by the
///   root, CA with pathlen 0, keyCertSign + cRLSign;
/// * `ca-chain.pem`: the issuing CA certificate followed by the root.
///
/// Both certificates start at `now - 60 s`; the issuing CA never outlives the root.
/// With a key encryption key on `paths` ([`PkiPaths::with_key_encryption`])
/// both private keys are written encrypted.
///
/// # Errors
/// [`PkiError::AlreadyExists`] if any of the five files exists (nothing is
/// written then), [`PkiError::InvalidArgument`] for empty names or zero
/// lifetimes, [`PkiError::Io`] when writing fails (files written by this call
/// are removed again).
pub fn init_ca(paths: &PkiPaths, opts: &CaOptions, now: u64) -> Result<(), PkiError> {
    init_ca_inner(paths, opts, now, &paths.root_key())
}

/// [`init_ca`], but the root private key is written to `root_key_out`
/// (created, mode 0600; never replaced) instead of `pki/root-ca.key.pem`,
/// so that it can be moved offline at once: nothing certbound serves needs
/// it, only [`crate::rotate_issuing_with_root_key`].
///
/// # Errors
/// As [`init_ca`]; [`PkiError::AlreadyExists`] also when `root_key_out` exists.
pub fn init_ca_root_key_at(
    paths: &PkiPaths,
    opts: &CaOptions,
    now: u64,
    root_key_out: &Path,
) -> Result<(), PkiError> {
    init_ca_inner(paths, opts, now, root_key_out)
}

fn init_ca_inner(
    paths: &PkiPaths,
    opts: &CaOptions,
    now: u64,
    root_key_path: &Path,
) -> Result<(), PkiError> {
    for (name, what) in [
        (&opts.root_common_name, "root_common_name"),
        (&opts.issuing_common_name, "issuing_common_name"),
    ] {
        if name.trim().is_empty() {
            return Err(PkiError::InvalidArgument(format!(
                "{what} must not be empty"
            )));
        }
    }
    if opts.root_lifetime_days == 0 || opts.issuing_lifetime_days == 0 {
        return Err(PkiError::InvalidArgument(
            "CA lifetimes must be at least one day".into(),
        ));
    }
    let mut files = paths.all().to_vec();
    files[1] = root_key_path.to_path_buf();
    let mut file_refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    // An offline root key must not meet an online one either.
    let online_root = paths.root_key();
    file_refs.push(&online_root);
    ensure_absent(&file_refs)?;

    let not_before = now.saturating_sub(CLOCK_SKEW_SECS);
    let root_not_after = add_days(now, opts.root_lifetime_days)?;
    let issuing_not_after = add_days(now, opts.issuing_lifetime_days)?.min(root_not_after);

    let root_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut root_params = ca_params(&opts.root_common_name, 1, not_before, root_not_after)?;
    // Self-signed: the authority key identifier equals the subject key identifier.
    root_params.use_authority_key_identifier_extension = true;
    let root_cert = root_params.self_signed(&root_key)?;
    let root_key_pem = paths.key_text(&root_key, ROLE_ROOT)?;
    let root = Issuer::new(root_params, root_key);

    let issuing_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut issuing_params =
        ca_params(&opts.issuing_common_name, 0, not_before, issuing_not_after)?;
    issuing_params.use_authority_key_identifier_extension = true;
    let issuing_cert = issuing_params.signed_by(&issuing_key, &root)?;

    let root_pem = root_cert.pem();
    let issuing_pem = issuing_cert.pem();
    let issuing_key_pem = paths.key_text(&issuing_key, ROLE_ISSUING)?;
    let chain_pem = format!("{issuing_pem}{root_pem}");
    let contents: [(&[u8], Secrecy); 5] = [
        (root_pem.as_bytes(), Secrecy::Public),
        (root_key_pem.as_bytes(), Secrecy::Secret),
        (issuing_pem.as_bytes(), Secrecy::Public),
        (issuing_key_pem.as_bytes(), Secrecy::Secret),
        (chain_pem.as_bytes(), Secrecy::Public),
    ];

    create_dir(&paths.dir, true)?;
    for (i, (path, (data, secrecy))) in files.iter().zip(contents).enumerate() {
        if let Err(e) = write_new_file(path, data, secrecy) {
            for written in &files[..i] {
                let _ = std::fs::remove_file(written);
            }
            return Err(e);
        }
    }
    Ok(())
}

/// Parameters shared by both CA certificates.
pub(crate) fn ca_params(
    common_name: &str,
    path_len: u8,
    not_before: u64,
    not_after: u64,
) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.not_before = to_datetime(not_before)?;
    params.not_after = to_datetime(not_after)?;
    params.serial_number = Some(SerialNumber::from_slice(&random_serial()?));
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(params)
}

/// The issuing CA (certificate and private key) loaded in memory.
///
/// Loading parses the key once; issuing afterwards costs one ECDSA signature
/// per certificate (plus a key generation for [`IssuingCa::issue_device`]).
/// It is `Send + Sync`: share it behind an `Arc`.
pub struct IssuingCa {
    pub(crate) issuer: Issuer<'static, KeyPair>,
    pub(crate) cert_der: Vec<u8>,
    pub(crate) not_after: u64,
    pub(crate) serial_hex: String,
}

impl fmt::Debug for IssuingCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuingCa")
            .field("cert_der_len", &self.cert_der.len())
            .field("not_after", &self.not_after)
            .field("serial_hex", &self.serial_hex)
            .field("key", &"[redacted]")
            .finish()
    }
}

impl IssuingCa {
    /// Loads `issuing-ca.pem` and `issuing-ca.key.pem` from `paths`.
    ///
    /// # Errors
    /// [`PkiError::Io`] when a file cannot be read, plus the errors of
    /// [`IssuingCa::from_pem`].
    pub fn load(paths: &PkiPaths) -> Result<Self, PkiError> {
        let cert_pem = read_text(&paths.issuing_cert())?;
        let key = paths.read_key(&paths.issuing_key(), ROLE_ISSUING)?;
        Self::from_parts(&cert_pem, key)
    }

    /// Builds the issuing CA from its certificate (first `CERTIFICATE` block of
    /// `cert_pem`) and its PKCS#8 P-256 private key (`key_pem`).
    ///
    /// # Errors
    /// [`PkiError::Malformed`] for unreadable PEM/DER or a key that does not
    /// match the certificate, [`PkiError::UnsupportedKey`] for a non-P-256
    /// key, [`PkiError::InvalidChain`] when the certificate is not a CA that
    /// may sign certificates.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, PkiError> {
        let key = KeyPair::from_pem(key_pem).map_err(|e| {
            PkiError::Malformed(format!(
                "issuing CA key is not a readable PKCS#8 PEM private key: {e}"
            ))
        })?;
        Self::from_parts(cert_pem, key)
    }

    /// [`IssuingCa::from_pem`] with the private key already parsed.
    pub(crate) fn from_parts(cert_pem: &str, key: KeyPair) -> Result<Self, PkiError> {
        let cert_der = parse_pem_certs(cert_pem)?
            .into_iter()
            .next()
            .ok_or_else(|| PkiError::Malformed("issuing CA certificate missing".into()))?;
        let x509 = parse_der(&cert_der, "issuing CA certificate")?;
        if !x509.subject().iter().all(|rdn| rdn.iter().count() == 1) {
            return Err(PkiError::Malformed(
                "the issuing CA subject has an empty or multi-valued RDN; \
                 use a CA certificate made by `certbound init`"
                    .into(),
            ));
        }
        let bc = x509
            .basic_constraints()
            .map_err(|e| PkiError::Malformed(format!("issuing CA basicConstraints: {e}")))?;
        if !bc.is_some_and(|bc| bc.value.ca) {
            return Err(PkiError::InvalidChain(
                "the issuing CA certificate is not a CA (basicConstraints CA:TRUE missing)".into(),
            ));
        }
        let ku = x509
            .key_usage()
            .map_err(|e| PkiError::Malformed(format!("issuing CA keyUsage: {e}")))?;
        if ku.is_some_and(|ku| !ku.value.key_cert_sign()) {
            return Err(PkiError::InvalidChain(
                "the issuing CA certificate lacks the keyCertSign key usage".into(),
            ));
        }
        if key.algorithm() != &PKCS_ECDSA_P256_SHA256 {
            return Err(PkiError::UnsupportedKey(
                "the issuing CA key is not an ECDSA P-256 key".into(),
            ));
        }
        if key.subject_public_key_info() != x509.public_key().raw {
            return Err(PkiError::Malformed(
                "the issuing CA key does not belong to the issuing CA certificate; \
                 check that issuing-ca.pem and issuing-ca.key.pem come from the same init"
                    .into(),
            ));
        }
        let not_after = unix_u64(x509.validity().not_after.timestamp());
        let serial_hex = serial_hex(x509.raw_serial());
        let issuer = Issuer::from_ca_cert_pem(&encode_pem("CERTIFICATE", &cert_der), key)?;
        Ok(IssuingCa {
            issuer,
            cert_der,
            not_after,
            serial_hex,
        })
    }

    /// The issuing CA certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The issuing CA certificate, PEM.
    pub fn cert_pem(&self) -> String {
        encode_pem("CERTIFICATE", &self.cert_der)
    }

    /// notAfter of the issuing CA certificate, unix seconds. Device
    /// certificates are never issued past it.
    pub fn not_after(&self) -> u64 {
        self.not_after
    }
}

#[cfg(test)]
mod tests;
