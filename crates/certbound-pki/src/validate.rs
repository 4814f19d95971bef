//! Pure device-certificate validation: chain building, signatures, validity
//! and the device profile. Time is always passed in; no clock is read here.

use std::fmt;

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::ParsedExtension;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_SIG_ECDSA_WITH_SHA256,
    OID_X509_EXT_BASIC_CONSTRAINTS, OID_X509_EXT_EXTENDED_KEY_USAGE, OID_X509_EXT_KEY_USAGE,
    OID_X509_EXT_SUBJECT_ALT_NAME,
};

use crate::cert::{common_names, device_uri_ids, p256_point, parse_der, serial_hex, unix_u64};
use crate::files::read_text;
use crate::path::PathWork;
use crate::{PkiError, PkiPaths, parse_pem_certs, thumbprint_sha256, validate_device_id};

/// Most CA certificates allowed between a leaf and its root (root included).
pub(crate) const MAX_PATH_LEN: usize = 5;
/// Most extra chain certificates a peer may send.
pub(crate) const MAX_EXTRA_CERTS: usize = 8;

/// What a successful [`TrustStore::verify_device_cert`] proves about a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedDeviceCert {
    /// The device id (SAN URI `urn:certbound:device:<id>`, equal to the subject CN).
    pub device_id: String,
    /// Serial number, lowercase hex without leading zero bytes (see [`crate::IssuedCert::serial_hex`]).
    pub serial_hex: String,
    /// notBefore, unix seconds.
    pub not_before: u64,
    /// notAfter, unix seconds.
    pub not_after: u64,
    /// SHA-256 of the leaf DER (`x5t#S256`).
    pub thumbprint: [u8; 32],
    /// The device public key: 65-byte uncompressed SEC1 P-256 point (`04 || x || y`).
    pub public_key_sec1: Vec<u8>,
    /// The window in which every certificate of the validated path (the
    /// leaf and its CAs) is valid, unix seconds: for the same trust store,
    /// the validation holds at any time inside it (with the same leeway),
    /// which lets a caller cache it by thumbprint.
    pub path_valid: Validity,
}

/// A validity window, unix seconds, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// The latest notBefore.
    pub not_before: u64,
    /// The earliest notAfter.
    pub not_after: u64,
}

impl Validity {
    /// Whether `now` is inside the window, allowing `leeway` seconds of
    /// clock skew at both ends (as validation does).
    pub fn contains(&self, now: u64, leeway: u64) -> bool {
        now.saturating_add(leeway) >= self.not_before
            && now <= self.not_after.saturating_add(leeway)
    }
}

/// What [`TrustStore::verify_claim_cert`] proves.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifiedClaimCert {
    /// The claim id (SAN URI `urn:certbound:claim:<id>`).
    pub claim_id: String,
    /// The claim key: 65-byte uncompressed SEC1 P-256 point.
    pub public_key_sec1: Vec<u8>,
    /// notAfter, unix seconds.
    pub not_after: u64,
}

#[derive(Clone)]
struct StoreCert {
    der: Vec<u8>,
    anchor: bool,
}

/// Trusted CA certificates: self-signed roots (trust anchors) and
/// intermediates. Immutable, `Send + Sync`, cheap to share behind an `Arc`.
#[derive(Clone)]
pub struct TrustStore {
    certs: Vec<StoreCert>,
    /// `(child, parent)` store indices whose signature was checked at construction.
    verified_links: Vec<(usize, usize)>,
    /// External CAs for [`TrustStore::verify_external_device_cert`]; never
    /// used by [`TrustStore::verify_device_cert`].
    pub(crate) external: Vec<crate::external::ExternalEntry>,
}

impl fmt::Debug for TrustStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let anchors = self.certs.iter().filter(|c| c.anchor).count();
        f.debug_struct("TrustStore")
            .field("roots", &anchors)
            .field("intermediates", &(self.certs.len() - anchors))
            .field("external_anchors", &self.external.len())
            .finish()
    }
}

/// A certificate taking part in path building.
pub(crate) struct Candidate<'a> {
    pub(crate) x509: X509Certificate<'a>,
    /// Index in the store, `None` for certificates sent by the peer.
    pub(crate) store_index: Option<usize>,
    pub(crate) anchor: bool,
}

impl TrustStore {
    /// Builds a store from PEM (typically `ca-chain.pem`): self-signed
    /// certificates become trust anchors, the others intermediates.
    ///
    /// # Errors
    /// [`PkiError::Malformed`] for unreadable PEM or when no self-signed root
    /// is present, [`PkiError::InvalidChain`] when a certificate is not a CA.
    pub fn from_pem(ca_chain_pem: &str) -> Result<Self, PkiError> {
        Self::build(parse_pem_certs(ca_chain_pem)?, Vec::new())
    }

    /// `chain`: certificates that may be trust anchors (the self-signed ones);
    /// `intermediates_only`: `(file, DER)` of certificates that must not be
    /// self-signed (the kept issuing CAs).
    fn build(
        chain: Vec<Vec<u8>>,
        intermediates_only: Vec<(std::path::PathBuf, Vec<u8>)>,
    ) -> Result<Self, PkiError> {
        let mut ders: Vec<(Vec<u8>, Option<std::path::PathBuf>)> = chain
            .into_iter()
            .map(|d| (d, None))
            .chain(intermediates_only.into_iter().map(|(p, d)| (d, Some(p))))
            .collect();
        let mut seen = std::collections::HashSet::new();
        ders.retain(|(d, _)| seen.insert(d.clone()));
        let mut certs = Vec::with_capacity(ders.len());
        for (i, (der, file)) in ders.iter().enumerate() {
            let x509 = parse_der(der, "trust store certificate")?;
            if !x509.is_ca() {
                return Err(PkiError::InvalidChain(format!(
                    "certificate {} ({}) of the CA chain is not a CA certificate",
                    i + 1,
                    x509.subject()
                )));
            }
            let anchor = x509.subject().as_raw() == x509.issuer().as_raw()
                && match check_signed_by(&x509, &x509) {
                    Ok(()) => true,
                    Err(e @ PkiError::UnsupportedKey(_)) => return Err(e),
                    Err(_) => false,
                };
            if let (true, Some(file)) = (anchor, file) {
                return Err(PkiError::InvalidChain(format!(
                    "{} holds a self-signed certificate, not an issuing CA signed by the root; \
                     remove it from the pki directory",
                    file.display()
                )));
            }
            certs.push(StoreCert {
                der: der.clone(),
                anchor,
            });
        }
        if !certs.iter().any(|c| c.anchor) {
            return Err(PkiError::Malformed(
                "the CA chain has no self-signed root CA; include the root certificate \
                 (ca-chain.pem lists the issuing CA, then the root)"
                    .into(),
            ));
        }
        let parsed = parse_store(&certs)?;
        let mut verified_links = Vec::new();
        for child in &parsed {
            for parent in &parsed {
                let (Some(c), Some(p)) = (child.store_index, parent.store_index) else {
                    continue;
                };
                if c != p
                    && !child.anchor
                    && may_have_issued(&child.x509, &parent.x509)
                    && check_signed_by(&child.x509, &parent.x509).is_ok()
                {
                    verified_links.push((c, p));
                }
            }
        }
        Ok(TrustStore {
            certs,
            verified_links,
            external: Vec::new(),
        })
    }

    /// Loads `ca-chain.pem` from `paths`, plus every issuing CA kept in
    /// `pki/issuing-ca.<serial>.pem` by [`crate::rotate_issuing`], so that
    /// device certificates issued before a rotation keep validating (until
    /// their issuing CA expires: validity is checked at verification time).
    /// Kept issuing CAs are only ever intermediates under the root, never
    /// trust anchors.
    ///
    /// # Errors
    /// [`PkiError::Io`] when a file cannot be read, [`PkiError::InvalidChain`]
    /// for a self-signed kept issuing CA, then as [`TrustStore::from_pem`].
    pub fn load(paths: &PkiPaths) -> Result<Self, PkiError> {
        Self::load_with(paths, &[])
    }

    /// [`TrustStore::load`] plus `published`: issuing CA certificates of the
    /// service's other instances (from the store), trusted as intermediates
    /// only, so a certificate they issued validates when its path reaches
    /// this store's root. One that is self-signed, or not a CA, is refused.
    ///
    /// # Errors
    /// As [`TrustStore::load`].
    pub fn load_with(paths: &PkiPaths, published: &[Vec<u8>]) -> Result<Self, PkiError> {
        let chain = parse_pem_certs(&read_text(&paths.chain())?)?;
        let mut kept = Vec::new();
        for serial in paths.archived_issuing_serials()? {
            let file = paths.issuing_cert_archived(&serial);
            let ders = parse_pem_certs(&read_text(&file)?)
                .map_err(|e| PkiError::Malformed(format!("{}: {e}", file.display())))?;
            kept.extend(ders.into_iter().map(|d| (file.clone(), d)));
        }
        let store = std::path::PathBuf::from("(published by another instance)");
        kept.extend(published.iter().map(|d| (store.clone(), d.clone())));
        Self::build(chain, kept)
    }

    /// The DER of every certbound CA certificate in the store.
    pub(crate) fn own_ca_ders(&self) -> impl Iterator<Item = &[u8]> {
        self.certs.iter().map(|c| c.der.as_slice())
    }

    /// Validates a device certificate (`leaf_der`), with optional extra chain
    /// certificates sent by the peer, at time `now` (unix seconds) allowing
    /// `leeway` seconds of clock skew on every notBefore/notAfter.
    ///
    /// Checks, in this order: a path leaf -> intermediates -> trusted root
    /// exists (store intermediates plus `extra_chain`) and every signature in
    /// it verifies (ECDSA P-256 with SHA-256 only); every certificate is valid
    /// at `now`; every issuer is a CA (basicConstraints, keyCertSign, path
    /// length); no certificate has an unsupported critical extension; the leaf
    /// is not a CA, has EKU clientAuth, exactly one SAN URI
    /// `urn:certbound:device:<id>` with a valid id equal to its only subject
    /// CN, and a P-256 key.
    ///
    /// # Errors
    /// [`PkiError::UnknownIssuer`], [`PkiError::BadSignature`],
    /// [`PkiError::Expired`], [`PkiError::NotYetValid`],
    /// [`PkiError::InvalidChain`], [`PkiError::NotADeviceCert`],
    /// [`PkiError::UnsupportedKey`], [`PkiError::Malformed`].
    pub fn verify_device_cert(
        &self,
        leaf_der: &[u8],
        extra_chain: &[Vec<u8>],
        now: u64,
        leeway: u64,
    ) -> Result<VerifiedDeviceCert, PkiError> {
        self.verify_device_cert_counted(leaf_der, extra_chain, now, leeway)
            .0
    }

    /// [`TrustStore::verify_device_cert`], also returning how much work path
    /// building did (signature verifications, issuer candidates): bounded by
    /// [`crate::MAX_SIGNATURE_CHECKS`] and [`crate::MAX_PATH_STEPS`] whatever
    /// the peer sends.
    pub fn verify_device_cert_counted(
        &self,
        leaf_der: &[u8],
        extra_chain: &[Vec<u8>],
        now: u64,
        leeway: u64,
    ) -> (Result<VerifiedDeviceCert, PkiError>, PathWork) {
        let mut work = PathWork::default();
        let result = parse_der(leaf_der, "device certificate").and_then(|leaf| {
            let window = self.check_path(&leaf, leaf_der, extra_chain, now, leeway, &mut work)?;
            let mut cert = check_leaf_profile(&leaf, leaf_der)?;
            cert.path_valid = window;
            Ok(cert)
        });
        (result, work)
    }

    /// Validates a claim certificate ([`crate::IssuingCa::issue_claim`]) as
    /// [`TrustStore::verify_device_cert`] does a device certificate; returns
    /// the claim id and key.
    ///
    /// # Errors
    /// As [`TrustStore::verify_device_cert`]; [`PkiError::NotADeviceCert`]
    /// when it is not a claim certificate.
    pub fn verify_claim_cert(
        &self,
        leaf_der: &[u8],
        extra_chain: &[Vec<u8>],
        now: u64,
        leeway: u64,
    ) -> Result<VerifiedClaimCert, PkiError> {
        let leaf = parse_der(leaf_der, "claim certificate")?;
        self.check_path(
            &leaf,
            leaf_der,
            extra_chain,
            now,
            leeway,
            &mut PathWork::default(),
        )?;
        let not_claim =
            |why: &str| PkiError::NotADeviceCert(format!("not a claim certificate: {why}"));
        let eku = leaf
            .extended_key_usage()
            .map_err(|e| PkiError::Malformed(format!("extendedKeyUsage: {e}")))?;
        if !eku.is_some_and(|eku| eku.value.client_auth) {
            return Err(not_claim("it lacks extendedKeyUsage clientAuth"));
        }
        let mut ids = Vec::new();
        if let Some(san) = leaf
            .subject_alternative_name()
            .map_err(|e| PkiError::Malformed(format!("subjectAltName: {e}")))?
        {
            for name in &san.value.general_names {
                if let x509_parser::extensions::GeneralName::URI(uri) = name
                    && let Some(id) = uri.strip_prefix(crate::issue::CLAIM_URI_PREFIX)
                {
                    ids.push(id.to_string());
                }
            }
        }
        let [claim_id] = ids.as_slice() else {
            return Err(not_claim(
                "it needs exactly one SAN URI urn:certbound:claim:<id>",
            ));
        };
        crate::validate_name(claim_id).map_err(|_| not_claim("bad claim id"))?;
        Ok(VerifiedClaimCert {
            claim_id: claim_id.clone(),
            public_key_sec1: p256_point(leaf.public_key(), "the claim certificate")?,
            not_after: crate::cert::unix_u64(leaf.validity().not_after.timestamp()),
        })
    }

    /// Everything but the leaf profile: a path to a trusted root whose
    /// signatures verify, validity at `now`, CA constraints, no unknown
    /// critical extension.
    pub(crate) fn check_path(
        &self,
        leaf: &X509Certificate<'_>,
        leaf_der: &[u8],
        extra_chain: &[Vec<u8>],
        now: u64,
        leeway: u64,
        work: &mut PathWork,
    ) -> Result<Validity, PkiError> {
        if extra_chain.len() > MAX_EXTRA_CERTS {
            return Err(PkiError::Malformed(format!(
                "{} extra chain certificates sent; at most {MAX_EXTRA_CERTS} are accepted",
                extra_chain.len()
            )));
        }
        let mut pool = parse_store(&self.certs)?;
        for der in extra_chain {
            if der.as_slice() == leaf_der || self.certs.iter().any(|c| &c.der == der) {
                continue;
            }
            pool.push(Candidate {
                x509: parse_der(der, "extra chain certificate")?,
                store_index: None,
                anchor: false,
            });
        }

        let mut search = crate::path::PathSearch::new(&self.verified_links, &pool, leaf);
        let found = search.run();
        *work = search.work();
        let path = found?;
        let issuers: Vec<&X509Certificate<'_>> = path.iter().map(|&i| &pool[i].x509).collect();

        check_validity(leaf, now, leeway)?;
        for ca in &issuers {
            check_validity(ca, now, leeway)?;
        }
        for (below, ca) in issuers.iter().enumerate() {
            check_ca(ca, below)?;
        }
        let mut window = Validity {
            not_before: 0,
            not_after: u64::MAX,
        };
        for cert in std::iter::once(leaf).chain(issuers.iter().copied()) {
            check_critical_extensions(cert)?;
            let v = cert.validity();
            window.not_before = window.not_before.max(unix_u64(v.not_before.timestamp()));
            window.not_after = window.not_after.min(unix_u64(v.not_after.timestamp()));
        }
        Ok(window)
    }
}

fn parse_store(certs: &[StoreCert]) -> Result<Vec<Candidate<'_>>, PkiError> {
    certs
        .iter()
        .enumerate()
        .map(|(i, c)| {
            Ok(Candidate {
                x509: parse_der(&c.der, "trust store certificate")?,
                store_index: Some(i),
                anchor: c.anchor,
            })
        })
        .collect()
}

/// Name chaining plus, when both are present, AKI == SKI.
pub(crate) fn may_have_issued(child: &X509Certificate<'_>, parent: &X509Certificate<'_>) -> bool {
    if child.issuer().as_raw() != parent.subject().as_raw() {
        return false;
    }
    let aki = child
        .iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                aki.key_identifier.as_ref().map(|k| k.0)
            }
            _ => None,
        });
    let ski = parent
        .iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0),
            _ => None,
        });
    match (aki, ski) {
        (Some(a), Some(s)) => a == s,
        _ => true,
    }
}

/// Verifies `child`'s signature with `parent`'s key (ECDSA P-256 / SHA-256 only).
pub(crate) fn check_signed_by(
    child: &X509Certificate<'_>,
    parent: &X509Certificate<'_>,
) -> Result<(), PkiError> {
    if child.signature_algorithm.algorithm != OID_SIG_ECDSA_WITH_SHA256 {
        return Err(PkiError::UnsupportedKey(format!(
            "\"{}\" is signed with algorithm {} instead of ecdsa-with-SHA256",
            child.subject(),
            child.signature_algorithm.algorithm
        )));
    }
    let key = &parent.public_key().algorithm;
    let curve = key.parameters.as_ref().and_then(|p| p.as_oid().ok());
    if key.algorithm != OID_KEY_TYPE_EC_PUBLIC_KEY || curve.as_ref() != Some(&OID_EC_P256) {
        return Err(PkiError::UnsupportedKey(format!(
            "issuer \"{}\" does not have a P-256 key",
            parent.subject()
        )));
    }
    child
        .verify_signature(Some(parent.public_key()))
        .map_err(|_| {
            PkiError::BadSignature(format!(
                "the signature on \"{}\" does not verify with the key of \"{}\"",
                child.subject(),
                parent.subject()
            ))
        })
}

pub(crate) fn check_validity(
    cert: &X509Certificate<'_>,
    now: u64,
    leeway: u64,
) -> Result<(), PkiError> {
    let validity = cert.validity();
    let not_before = unix_u64(validity.not_before.timestamp());
    let not_after = unix_u64(validity.not_after.timestamp());
    if now.saturating_add(leeway) < not_before {
        return Err(PkiError::NotYetValid { not_before, now });
    }
    if now > not_after.saturating_add(leeway) {
        return Err(PkiError::Expired { not_after, now });
    }
    Ok(())
}

/// `below` = number of CA certificates between `ca` and the leaf.
pub(crate) fn check_ca(ca: &X509Certificate<'_>, below: usize) -> Result<(), PkiError> {
    let bc = ca.basic_constraints().map_err(|e| {
        PkiError::Malformed(format!("basicConstraints of \"{}\": {e}", ca.subject()))
    })?;
    let Some(bc) = bc.filter(|bc| bc.value.ca) else {
        return Err(PkiError::InvalidChain(format!(
            "issuer \"{}\" is not a CA (basicConstraints CA:TRUE missing)",
            ca.subject()
        )));
    };
    if let Some(max) = bc.value.path_len_constraint
        && u64::try_from(below).unwrap_or(u64::MAX) > u64::from(max)
    {
        return Err(PkiError::InvalidChain(format!(
            "issuer \"{}\" allows {max} intermediate CA(s) below it, the chain has {below}",
            ca.subject()
        )));
    }
    let ku = ca
        .key_usage()
        .map_err(|e| PkiError::Malformed(format!("keyUsage of \"{}\": {e}", ca.subject())))?;
    if ku.is_some_and(|ku| !ku.value.key_cert_sign()) {
        return Err(PkiError::InvalidChain(format!(
            "issuer \"{}\" lacks the keyCertSign key usage",
            ca.subject()
        )));
    }
    Ok(())
}

/// Refuses critical extensions this validator does not enforce.
pub(crate) fn check_critical_extensions(cert: &X509Certificate<'_>) -> Result<(), PkiError> {
    let handled = [
        OID_X509_EXT_BASIC_CONSTRAINTS,
        OID_X509_EXT_KEY_USAGE,
        OID_X509_EXT_EXTENDED_KEY_USAGE,
        OID_X509_EXT_SUBJECT_ALT_NAME,
    ];
    for ext in cert.extensions() {
        if ext.critical && !handled.contains(&ext.oid) {
            return Err(PkiError::InvalidChain(format!(
                "\"{}\" has the critical extension {} which certbound does not process",
                cert.subject(),
                ext.oid
            )));
        }
        if let ParsedExtension::ParseError { error } = ext.parsed_extension() {
            return Err(PkiError::Malformed(format!(
                "extension {} of \"{}\" does not parse: {error}",
                ext.oid,
                cert.subject()
            )));
        }
    }
    Ok(())
}

fn check_leaf_profile(
    leaf: &X509Certificate<'_>,
    leaf_der: &[u8],
) -> Result<VerifiedDeviceCert, PkiError> {
    let not_device = |why: String| PkiError::NotADeviceCert(why);
    let bc = leaf
        .basic_constraints()
        .map_err(|e| PkiError::Malformed(format!("basicConstraints: {e}")))?;
    if bc.is_some_and(|bc| bc.value.ca) {
        return Err(not_device("it is a CA certificate".into()));
    }
    let eku = leaf
        .extended_key_usage()
        .map_err(|e| PkiError::Malformed(format!("extendedKeyUsage: {e}")))?;
    if !eku.is_some_and(|eku| eku.value.client_auth) {
        return Err(not_device("it lacks extendedKeyUsage clientAuth".into()));
    }
    let ku = leaf
        .key_usage()
        .map_err(|e| PkiError::Malformed(format!("keyUsage: {e}")))?;
    if ku.is_some_and(|ku| !ku.value.digital_signature()) {
        return Err(not_device("its keyUsage lacks digitalSignature".into()));
    }
    let device_id = match device_uri_ids(leaf)?.as_slice() {
        [] => {
            return Err(not_device(
                "it has no subjectAltName URI urn:certbound:device:<id>".into(),
            ));
        }
        [one] => one.clone(),
        _ => return Err(not_device("it has several device SAN URIs".into())),
    };
    validate_device_id(&device_id)
        .map_err(|e| not_device(format!("its SAN URI holds a bad id: {e}")))?;
    let cns = common_names(leaf)?;
    if cns.as_slice() != [device_id.as_str()] {
        return Err(not_device(format!(
            "its subject CN {cns:?} does not equal the SAN device id {device_id:?}"
        )));
    }
    let public_key_sec1 = p256_point(leaf.public_key(), "the device certificate")?;
    Ok(VerifiedDeviceCert {
        device_id,
        serial_hex: serial_hex(leaf.raw_serial()),
        not_before: unix_u64(leaf.validity().not_before.timestamp()),
        not_after: unix_u64(leaf.validity().not_after.timestamp()),
        thumbprint: thumbprint_sha256(leaf_der),
        public_key_sec1,
        // Narrowed to the whole path by the caller.
        path_valid: Validity {
            not_before: unix_u64(leaf.validity().not_before.timestamp()),
            not_after: unix_u64(leaf.validity().not_after.timestamp()),
        },
    })
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
