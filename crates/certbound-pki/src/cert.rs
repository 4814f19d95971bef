//! Certificate facts shared by issuance, validation and `device show`:
//! thumbprints, serial numbers, validity times, device identity.

use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::oid_registry::{OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY};
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::{DEVICE_URI_PREFIX, PkiError, validate_device_id};

/// SHA-256 over the certificate DER: the `x5t#S256` / COSE `x5t` thumbprint.
pub fn thumbprint_sha256(der: &[u8]) -> [u8; 32] {
    Sha256::digest(der).into()
}

/// A readable summary of one certificate, for `certbound device show`.
///
/// It is descriptive only: building it does not validate anything.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CertSummary {
    /// Subject DN in RFC 4514 form, e.g. `CN=sensor-1`.
    pub subject: String,
    /// Issuer DN in RFC 4514 form.
    pub issuer: String,
    /// Serial number, lowercase hex without leading zero bytes (see [`crate::IssuedCert::serial_hex`]).
    pub serial_hex: String,
    /// notBefore, unix seconds (0 for dates before 1970).
    pub not_before: u64,
    /// notAfter, unix seconds (0 for dates before 1970).
    pub not_after: u64,
    /// The device id from a `urn:certbound:device:<id>` SAN URI, when present and valid.
    pub device_id: Option<String>,
    /// Whether basicConstraints says CA:TRUE.
    pub is_ca: bool,
    /// SHA-256 of the DER.
    pub thumbprint: [u8; 32],
}

/// Summarises a DER certificate (subject, issuer, serial, validity, device id,
/// thumbprint).
///
/// # Errors
/// [`PkiError::Malformed`] when `der` is not one X.509 certificate.
pub fn cert_summary(der: &[u8]) -> Result<CertSummary, PkiError> {
    let x509 = parse_der(der, "certificate")?;
    let device_id = device_uri_ids(&x509)
        .ok()
        .and_then(|ids| match ids.as_slice() {
            [one] if validate_device_id(one).is_ok() => Some(one.clone()),
            _ => None,
        });
    Ok(CertSummary {
        subject: x509.subject().to_string(),
        issuer: x509.issuer().to_string(),
        serial_hex: serial_hex(x509.raw_serial()),
        not_before: unix_u64(x509.validity().not_before.timestamp()),
        not_after: unix_u64(x509.validity().not_after.timestamp()),
        device_id,
        is_ca: x509.is_ca(),
        thumbprint: thumbprint_sha256(der),
    })
}

/// Parses exactly one DER certificate (no trailing bytes).
pub(crate) fn parse_der<'a>(der: &'a [u8], what: &str) -> Result<X509Certificate<'a>, PkiError> {
    let (rest, x509) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| PkiError::Malformed(format!("{what} is not a DER X.509 certificate: {e}")))?;
    if !rest.is_empty() {
        return Err(PkiError::Malformed(format!(
            "{what} has {} trailing bytes after the DER certificate",
            rest.len()
        )));
    }
    Ok(x509)
}

/// Serial number as lowercase hex of its big-endian magnitude, without the
/// DER sign byte or other leading zero bytes ("00" for zero).
///
/// This is `openssl x509 -serial` output in lowercase.
pub(crate) fn serial_hex(raw: &[u8]) -> String {
    let start = raw.iter().position(|&b| b != 0).unwrap_or(raw.len());
    if start == raw.len() {
        return "00".into();
    }
    hex::encode(&raw[start..])
}

/// A fresh random serial: 16 bytes, top byte in `0x40..=0x7f`, so the number
/// is positive and always exactly 16 bytes long (32 hex digits), with 126
/// random bits.
pub(crate) fn random_serial() -> Result<[u8; 16], PkiError> {
    let mut serial = [0u8; 16];
    aws_lc_rs::rand::fill(&mut serial).map_err(|_| PkiError::Random)?;
    serial[0] = (serial[0] & 0x3f) | 0x40;
    Ok(serial)
}

/// Clamps an ASN.1 timestamp to unix seconds as `u64` (dates before 1970 -> 0).
pub(crate) fn unix_u64(ts: i64) -> u64 {
    u64::try_from(ts).unwrap_or(0)
}

/// Converts unix seconds to a date rcgen can encode.
pub(crate) fn to_datetime(secs: u64) -> Result<OffsetDateTime, PkiError> {
    i64::try_from(secs)
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .ok_or_else(|| {
            PkiError::InvalidArgument(format!(
                "time {secs} (unix seconds) is out of the range X.509 can encode"
            ))
        })
}

/// `now + days` in unix seconds, checked.
/// The certificate's P-256 public key as a 65-byte uncompressed SEC1 point
/// (checked to be on the curve). Descriptive only: nothing else is validated.
///
/// # Errors
/// [`PkiError::Malformed`] for a bad certificate, [`PkiError::UnsupportedKey`]
/// for any key that is not P-256.
pub fn public_key_sec1(der: &[u8]) -> Result<Vec<u8>, PkiError> {
    let x509 = parse_der(der, "certificate")?;
    p256_point(x509.public_key(), "the certificate")
}

pub(crate) fn add_days(now: u64, days: u32) -> Result<u64, PkiError> {
    now.checked_add(u64::from(days) * 86_400).ok_or_else(|| {
        PkiError::InvalidArgument(format!("lifetime of {days} days overflows the time range"))
    })
}

/// Checks that `spki` is an ECDSA P-256 key whose point is on the curve and
/// returns the 65-byte uncompressed SEC1 point.
pub(crate) fn p256_point(spki: &SubjectPublicKeyInfo<'_>, what: &str) -> Result<Vec<u8>, PkiError> {
    p256_key(spki, what).map(|(point, _)| point)
}

/// Like [`p256_point`], with the key parsed for verification (parsing is
/// most of the cost of a check that the point is on the curve: a caller
/// that verifies with the key parses it once).
pub(crate) fn p256_key(
    spki: &SubjectPublicKeyInfo<'_>,
    what: &str,
) -> Result<(Vec<u8>, aws_lc_rs::signature::ParsedPublicKey), PkiError> {
    if spki.algorithm.algorithm != OID_KEY_TYPE_EC_PUBLIC_KEY {
        return Err(PkiError::UnsupportedKey(format!(
            "{what} has a key of type {} instead of an EC key",
            spki.algorithm.algorithm
        )));
    }
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok());
    if curve.as_ref() != Some(&OID_EC_P256) {
        return Err(PkiError::UnsupportedKey(format!(
            "{what} has an EC key on a curve other than P-256 (prime256v1)"
        )));
    }
    let point = spki.subject_public_key.data.as_ref();
    if point.len() != 65 || point[0] != 0x04 {
        return Err(PkiError::UnsupportedKey(format!(
            "{what} has a P-256 key that is not a 65-byte uncompressed point"
        )));
    }
    let parsed = aws_lc_rs::signature::ParsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
        point,
    )
    .map_err(|_| {
        PkiError::Malformed(format!("{what} has a P-256 point that is not on the curve"))
    })?;
    Ok((point.to_vec(), parsed))
}

/// The ids of every `urn:certbound:device:` SAN URI (unvalidated).
pub(crate) fn device_uri_ids(x509: &X509Certificate<'_>) -> Result<Vec<String>, PkiError> {
    let san = x509
        .subject_alternative_name()
        .map_err(|e| PkiError::Malformed(format!("bad subjectAltName extension: {e}")))?;
    let Some(san) = san else {
        return Ok(Vec::new());
    };
    Ok(san
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::URI(uri) => uri.strip_prefix(DEVICE_URI_PREFIX).map(str::to_owned),
            _ => None,
        })
        .collect())
}

/// The subject CNs of a certificate, as text.
pub(crate) fn common_names(x509: &X509Certificate<'_>) -> Result<Vec<String>, PkiError> {
    x509.subject()
        .iter_common_name()
        .map(|cn| {
            cn.as_str()
                .map(str::to_owned)
                .map_err(|e| PkiError::Malformed(format!("subject CN is not a string: {e}")))
        })
        .collect()
}

#[cfg(test)]
mod tests;
