//! Certificate revocation lists signed by the issuing CA (RFC 5280 §5).

use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevokedCertParams, SerialNumber};
use x509_parser::extensions::ParsedExtension;

use crate::cert::{parse_der, to_datetime};
use crate::pem::encode_pem;
use crate::{IssuingCa, PkiError};

/// Why a certificate was revoked (RFC 5280 §5.3.1 reasonCode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RevocationReason {
    /// No reason given (written as no reasonCode extension, as RFC 5280 asks).
    Unspecified,
    /// The device key is known or suspected to be compromised.
    KeyCompromise,
    /// The issuing CA key is known or suspected to be compromised.
    CaCompromise,
    /// The device changed owner or affiliation.
    AffiliationChanged,
    /// A newer certificate replaced this one (renewal, re-enrollment).
    Superseded,
    /// The device was decommissioned.
    CessationOfOperation,
    /// The certificate is on hold (suspended); it may come back.
    CertificateHold,
    /// The device lost the privileges the certificate stood for.
    PrivilegeWithdrawn,
}

impl RevocationReason {
    fn to_rcgen(self) -> rcgen::RevocationReason {
        match self {
            RevocationReason::Unspecified => rcgen::RevocationReason::Unspecified,
            RevocationReason::KeyCompromise => rcgen::RevocationReason::KeyCompromise,
            RevocationReason::CaCompromise => rcgen::RevocationReason::CaCompromise,
            RevocationReason::AffiliationChanged => rcgen::RevocationReason::AffiliationChanged,
            RevocationReason::Superseded => rcgen::RevocationReason::Superseded,
            RevocationReason::CessationOfOperation => rcgen::RevocationReason::CessationOfOperation,
            RevocationReason::CertificateHold => rcgen::RevocationReason::CertificateHold,
            RevocationReason::PrivilegeWithdrawn => rcgen::RevocationReason::PrivilegeWithdrawn,
        }
    }
}

/// One revoked certificate for [`IssuingCa::crl`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedEntry {
    /// Serial number as hex, as in [`crate::IssuedCert::serial_hex`] (lowercase,
    /// no leading zero bytes). Uppercase, an odd digit count and leading zeros
    /// are accepted too; at most 20 bytes.
    pub serial_hex: String,
    /// When the revocation was recorded, unix seconds.
    pub revoked_at: u64,
    /// Optional reason code.
    pub reason: Option<RevocationReason>,
}

impl RevokedEntry {
    /// An entry without a reason code.
    pub fn new(serial_hex: impl Into<String>, revoked_at: u64) -> Self {
        RevokedEntry {
            serial_hex: serial_hex.into(),
            revoked_at,
            reason: None,
        }
    }
}

/// A signed CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crl {
    /// The CRL, DER (`application/pkix-crl`).
    pub der: Vec<u8>,
    /// The CRL, PEM (one `X509 CRL` block).
    pub pem: String,
}

/// Longest serial number RFC 5280 allows, in bytes.
const MAX_SERIAL_LEN: usize = 20;

impl IssuingCa {
    /// Signs a version 2 CRL with the issuing CA key: issuer = the issuing
    /// CA's subject, thisUpdate / nextUpdate as given (unix seconds), the
    /// revoked serials with their revocation times and optional reason codes,
    /// and the CRL extensions authorityKeyIdentifier (= the issuing CA's
    /// subjectKeyIdentifier) and cRLNumber.
    ///
    /// A CRL only covers certificates issued by *this* CA: after
    /// [`crate::rotate_issuing`], publish one CRL per issuing CA that is still
    /// valid (see [`IssuingCa::load_archived`] and [`IssuingCa::has_issued`]).
    /// `crl_number` must grow with every CRL this CA publishes (RFC 5280
    /// §5.2.3); keeping it is the caller's job. A serial listed twice is
    /// written once, with its earliest revocation time.
    ///
    /// # Errors
    /// [`PkiError::InvalidArgument`] when `next_update <= this_update`, a
    /// time cannot be encoded, or a serial is not 1 to 20 bytes of hex.
    pub fn crl(
        &self,
        revoked: &[RevokedEntry],
        crl_number: u64,
        this_update: u64,
        next_update: u64,
    ) -> Result<Crl, PkiError> {
        if next_update <= this_update {
            return Err(PkiError::InvalidArgument(format!(
                "CRL nextUpdate ({next_update}) must be after thisUpdate ({this_update})"
            )));
        }
        let mut revoked_certs: Vec<(Vec<u8>, &RevokedEntry)> = Vec::with_capacity(revoked.len());
        for entry in revoked {
            let serial = parse_serial_hex(&entry.serial_hex)?;
            match revoked_certs.iter_mut().find(|(s, _)| *s == serial) {
                Some(existing) if entry.revoked_at < existing.1.revoked_at => existing.1 = entry,
                Some(_) => {}
                None => revoked_certs.push((serial, entry)),
            }
        }
        let revoked_certs = revoked_certs
            .into_iter()
            .map(|(serial, entry)| {
                Ok(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&serial),
                    revocation_time: to_datetime(entry.revoked_at)?,
                    reason_code: entry.reason.map(RevocationReason::to_rcgen),
                    invalidity_date: None,
                })
            })
            .collect::<Result<Vec<_>, PkiError>>()?;
        let params = CertificateRevocationListParams {
            this_update: to_datetime(this_update)?,
            next_update: to_datetime(next_update)?,
            crl_number: SerialNumber::from_slice(&crl_number.to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::PreSpecified(self.key_id()?),
        };
        let der = params.signed_by(&self.issuer)?.der().to_vec();
        Ok(Crl {
            pem: encode_pem("X509 CRL", &der),
            der,
        })
    }

    /// The subjectKeyIdentifier of the issuing CA certificate (what device
    /// certificates and CRLs name in their authorityKeyIdentifier).
    fn key_id(&self) -> Result<Vec<u8>, PkiError> {
        let x509 = parse_der(&self.cert_der, "issuing CA certificate")?;
        x509.iter_extensions()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(ski) => Some(ski.0.to_vec()),
                _ => None,
            })
            .ok_or_else(|| {
                PkiError::InvalidChain(
                    "the issuing CA certificate has no subjectKeyIdentifier, so its CRLs \
                     cannot name it; use a CA made by `certbound init`"
                        .into(),
                )
            })
    }
}

/// Parses a serial number in hex into its big-endian magnitude without
/// leading zero bytes (`[0]` for zero).
pub(crate) fn parse_serial_hex(serial_hex: &str) -> Result<Vec<u8>, PkiError> {
    let bad = |why: &str| {
        PkiError::InvalidArgument(format!(
            "serial number {:?} {why}; give the serial as hex digits, as IssuedCert::serial_hex \
             or `openssl x509 -serial` print it",
            serial_hex.chars().take(64).collect::<String>()
        ))
    };
    if serial_hex.is_empty() {
        return Err(bad("is empty"));
    }
    let padded = if serial_hex.len() % 2 == 1 {
        format!("0{serial_hex}")
    } else {
        serial_hex.to_owned()
    };
    let bytes = hex::decode(&padded).map_err(|_| bad("is not hexadecimal"))?;
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    let magnitude = if start == bytes.len() {
        vec![0]
    } else {
        bytes[start..].to_vec()
    };
    if magnitude.len() > MAX_SERIAL_LEN {
        return Err(bad("is longer than 20 bytes (RFC 5280 limit)"));
    }
    Ok(magnitude)
}

#[cfg(test)]
mod tests;
