//! Device certificates from external CAs (a manufacturer's or a cloud
//! provider's), for just-in-time registration: path validation up to an
//! operator-configured anchor, kept apart from certbound's own CA.

use x509_parser::certificate::X509Certificate;

use crate::cert::{common_names, p256_point, parse_der, serial_hex, unix_u64};
use crate::path::{PathSearch, PathWork};
use crate::validate::{
    Candidate, MAX_EXTRA_CERTS, check_ca, check_critical_extensions, check_validity,
};
use crate::{PkiError, TrustStore, thumbprint_sha256, validate_device_id};

/// A CA certificate trusted for [`TrustStore::verify_external_device_cert`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalAnchor {
    /// Operator-chosen name of the anchor (for logs and for binding the
    /// registrations it allows), non-empty and unique in a store.
    pub name: String,
    /// The CA certificate, DER. It need not be self-signed: an intermediate
    /// may be the anchor, and the path then ends at it.
    pub cert_der: Vec<u8>,
}

/// An external anchor in a [`TrustStore`].
#[derive(Debug, Clone)]
pub(crate) struct ExternalEntry {
    name: String,
    der: Vec<u8>,
}

/// What [`TrustStore::verify_external_device_cert`] proves about a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExternalDeviceCert {
    /// Name of the [`ExternalAnchor`] the path ends at.
    pub anchor_name: String,
    /// The only subject CN, when the subject has exactly one (as text).
    pub subject_cn: Option<String>,
    /// The device public key: 65-byte uncompressed SEC1 P-256 point.
    pub public_key_sec1: Vec<u8>,
    /// SHA-256 of the leaf DER (`x5t#S256`).
    pub thumbprint: [u8; 32],
    /// notAfter of the leaf, unix seconds.
    pub not_after: u64,
    /// Serial number, lowercase hex without leading zero bytes.
    pub serial_hex: String,
}

impl ExternalDeviceCert {
    /// The device id for this certificate: its subject CN, when that is a
    /// valid device id ([`validate_device_id`]).
    ///
    /// The id space is shared with certbound's own devices: whoever registers
    /// the device should record [`ExternalDeviceCert::anchor_name`] with it and
    /// refuse an id that already belongs to another anchor or to a device
    /// provisioned by certbound.
    ///
    /// # Errors
    /// [`PkiError::ExternalDeviceId`] when the subject has no CN, several
    /// CNs, or a CN that is not a valid device id.
    pub fn device_id(&self) -> Result<&str, PkiError> {
        let cn = self.subject_cn.as_deref().ok_or_else(|| {
            PkiError::ExternalDeviceId("its subject has no CN, or more than one".into())
        })?;
        validate_device_id(cn).map_err(|e| {
            let reason = match e {
                PkiError::InvalidDeviceId { reason, .. } => reason,
                _ => "it is not a valid device id",
            };
            PkiError::ExternalDeviceId(format!(
                "its subject CN {:?} is not a valid device id ({reason})",
                cn.chars().take(140).collect::<String>()
            ))
        })?;
        Ok(cn)
    }
}

impl TrustStore {
    /// Returns this store with `anchors` as its external CAs (replacing any
    /// set before). External anchors are only used by
    /// [`TrustStore::verify_external_device_cert`]; they never make a
    /// certificate pass [`TrustStore::verify_device_cert`], and certbound's
    /// own CAs never serve as external anchors.
    ///
    /// Each anchor must parse, be a CA (basicConstraints CA:TRUE, keyCertSign
    /// when keyUsage is present) with an ECDSA P-256 key, and differ from
    /// certbound's own CA certificates; names must be non-empty and unique.
    ///
    /// # Errors
    /// [`PkiError::InvalidArgument`] for empty or duplicate names or
    /// certificates, [`PkiError::Malformed`], [`PkiError::InvalidChain`] for
    /// a non-CA, [`PkiError::UnsupportedKey`] for a non-P-256 key.
    pub fn with_external(mut self, anchors: Vec<ExternalAnchor>) -> Result<Self, PkiError> {
        let mut entries: Vec<ExternalEntry> = Vec::with_capacity(anchors.len());
        for anchor in anchors {
            let what = format!("external anchor {:?}", anchor.name);
            if anchor.name.trim().is_empty() {
                return Err(PkiError::InvalidArgument(
                    "an external anchor needs a non-empty name".into(),
                ));
            }
            if entries.iter().any(|e| e.name == anchor.name) {
                return Err(PkiError::InvalidArgument(format!(
                    "{what} is configured twice; give every external anchor its own name"
                )));
            }
            if let Some(e) = entries.iter().find(|e| e.der == anchor.cert_der) {
                return Err(PkiError::InvalidArgument(format!(
                    "{what} is the same certificate as external anchor {:?}",
                    e.name
                )));
            }
            if self.is_own_ca(&anchor.cert_der) {
                return Err(PkiError::InvalidArgument(format!(
                    "{what} is one of certbound's own CA certificates; remove it from the \
                     external anchors"
                )));
            }
            let x509 = parse_der(&anchor.cert_der, &what)?;
            check_ca(&x509, 0)?;
            p256_point(x509.public_key(), &what)?;
            entries.push(ExternalEntry {
                name: anchor.name,
                der: anchor.cert_der,
            });
        }
        self.external = entries;
        Ok(self)
    }

    /// Validates a device certificate issued by an external CA, with the
    /// intermediates the device sent (`chain`), at `now` (unix seconds) with
    /// `leeway` seconds of clock skew.
    ///
    /// Checks: a path leaf -> intermediates -> one of the external anchors
    /// exists and every signature verifies (ECDSA P-256 with SHA-256 only, so
    /// every CA of the path has a P-256 key); every certificate of the path,
    /// the anchor included, is valid at `now`; every issuer is a CA
    /// (basicConstraints, keyCertSign, path length); no unsupported critical
    /// extension; the leaf is not a CA, has EKU clientAuth when it has an
    /// extendedKeyUsage extension, digitalSignature when it has a keyUsage
    /// extension, and an ECDSA P-256 key. The subject is not checked here;
    /// see [`ExternalDeviceCert::device_id`].
    ///
    /// # Errors
    /// [`PkiError::UnknownIssuer`] when no external anchor is reached (also
    /// for certificates from certbound's own CA), [`PkiError::BadSignature`],
    /// [`PkiError::Expired`], [`PkiError::NotYetValid`],
    /// [`PkiError::InvalidChain`], [`PkiError::NotAnExternalDeviceCert`],
    /// [`PkiError::UnsupportedKey`], [`PkiError::Malformed`].
    pub fn verify_external_device_cert(
        &self,
        leaf_der: &[u8],
        chain: &[Vec<u8>],
        now: u64,
        leeway: u64,
    ) -> Result<ExternalDeviceCert, PkiError> {
        self.verify_external_device_cert_counted(leaf_der, chain, now, leeway)
            .0
    }

    /// [`TrustStore::verify_external_device_cert`], also returning the work
    /// path building did (bounded as for [`TrustStore::verify_device_cert_counted`]).
    pub fn verify_external_device_cert_counted(
        &self,
        leaf_der: &[u8],
        chain: &[Vec<u8>],
        now: u64,
        leeway: u64,
    ) -> (Result<ExternalDeviceCert, PkiError>, PathWork) {
        let mut work = PathWork::default();
        let result = self.external_inner(leaf_der, chain, now, leeway, &mut work);
        (result, work)
    }

    fn external_inner(
        &self,
        leaf_der: &[u8],
        chain: &[Vec<u8>],
        now: u64,
        leeway: u64,
        work: &mut PathWork,
    ) -> Result<ExternalDeviceCert, PkiError> {
        let leaf = parse_der(leaf_der, "external device certificate")?;
        if chain.len() > MAX_EXTRA_CERTS {
            return Err(PkiError::Malformed(format!(
                "{} chain certificates sent; at most {MAX_EXTRA_CERTS} are accepted",
                chain.len()
            )));
        }
        if self.external.is_empty() {
            return Err(PkiError::UnknownIssuer(
                "no external CA is configured, so certificates from other CAs are not accepted"
                    .into(),
            ));
        }
        // The anchors come first in the pool, so a path ends at index < anchors.len().
        let mut pool = Vec::with_capacity(self.external.len() + chain.len());
        for entry in &self.external {
            pool.push(Candidate {
                x509: parse_der(&entry.der, "external anchor")?,
                store_index: None,
                anchor: true,
            });
        }
        for der in chain {
            if der.as_slice() == leaf_der || self.external.iter().any(|e| &e.der == der) {
                continue;
            }
            pool.push(Candidate {
                x509: parse_der(der, "chain certificate")?,
                store_index: None,
                anchor: false,
            });
        }
        let mut search = PathSearch::new(&[], &pool, &leaf);
        let found = search.run();
        *work = search.work();
        let path = found?;
        let anchor_index = path.last().copied().unwrap_or(0);
        let anchor_name = self
            .external
            .get(anchor_index)
            .map(|e| e.name.clone())
            .ok_or_else(|| PkiError::UnknownIssuer("the path ends outside the anchors".into()))?;
        let issuers: Vec<&X509Certificate<'_>> = path.iter().map(|&i| &pool[i].x509).collect();
        check_validity(&leaf, now, leeway)?;
        for ca in &issuers {
            check_validity(ca, now, leeway)?;
        }
        for (below, ca) in issuers.iter().enumerate() {
            check_ca(ca, below)?;
        }
        for cert in std::iter::once(&leaf).chain(issuers.iter().copied()) {
            check_critical_extensions(cert)?;
        }
        check_external_leaf(&leaf)?;
        let cns = common_names(&leaf).ok().unwrap_or_default();
        Ok(ExternalDeviceCert {
            anchor_name,
            subject_cn: match <[String; 1]>::try_from(cns) {
                Ok([cn]) => Some(cn),
                Err(_) => None,
            },
            public_key_sec1: p256_point(leaf.public_key(), "the external device certificate")?,
            thumbprint: thumbprint_sha256(leaf_der),
            not_after: unix_u64(leaf.validity().not_after.timestamp()),
            serial_hex: serial_hex(leaf.raw_serial()),
        })
    }

    /// Whether `der` is one of certbound's own CA certificates.
    fn is_own_ca(&self, der: &[u8]) -> bool {
        self.own_ca_ders().any(|own| own == der)
    }
}

fn check_external_leaf(leaf: &X509Certificate<'_>) -> Result<(), PkiError> {
    let reject = |why: &str| PkiError::NotAnExternalDeviceCert(why.into());
    let bc = leaf
        .basic_constraints()
        .map_err(|e| PkiError::Malformed(format!("basicConstraints: {e}")))?;
    if bc.is_some_and(|bc| bc.value.ca) {
        return Err(reject("it is a CA certificate"));
    }
    let eku = leaf
        .extended_key_usage()
        .map_err(|e| PkiError::Malformed(format!("extendedKeyUsage: {e}")))?;
    if eku.is_some_and(|eku| !eku.value.client_auth) {
        return Err(reject("its extendedKeyUsage does not include clientAuth"));
    }
    let ku = leaf
        .key_usage()
        .map_err(|e| PkiError::Malformed(format!("keyUsage: {e}")))?;
    if ku.is_some_and(|ku| !ku.value.digital_signature()) {
        return Err(reject("its keyUsage lacks digitalSignature"));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
