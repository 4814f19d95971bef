//! PKCS#10 certificate signing requests: proof that the requester holds a
//! P-256 key, and issuance of the device profile for that key.
//!
//! Only the key is taken from a CSR. Its subject, SANs, requested extensions
//! and EKUs are ignored: certbound's device profile decides what the
//! certificate says, and the caller decides (and authorises) the device id.

use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::oid_registry::OID_SIG_ECDSA_WITH_SHA256;
use x509_parser::pem::Pem;
use x509_parser::prelude::FromDer as _;
use x509_parser::x509::X509Version;

use crate::cert::p256_key;
use crate::{IssuedCert, IssuingCa, PkiError};

/// Largest CSR accepted, DER or PEM, in bytes. A P-256 CSR is about 300 bytes
/// of DER.
pub const MAX_CSR_LEN: usize = 8 * 1024;

/// Longest subject kept in [`VerifiedCsr::subject`], in characters.
const MAX_SUBJECT_CHARS: usize = 256;

/// A CSR whose self-signature verified: the requester holds the private key
/// of `spki_der`.
///
/// Only [`verify_csr`] makes one, so holding a `VerifiedCsr` means the checks
/// ran.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifiedCsr {
    /// The requested public key: a 65-byte uncompressed SEC1 P-256 point
    /// (`04 || x || y`).
    pub public_key_sec1: Vec<u8>,
    /// The requested public key as SubjectPublicKeyInfo DER, exactly as in the CSR.
    pub spki_der: Vec<u8>,
    /// The subject the requester asked for (RFC 4514 style, control characters
    /// replaced by `?`, at most 256 characters). For logs only: it is never
    /// copied into a certificate.
    pub subject: String,
    /// What the request asks for beyond its key, for [`VerifiedCsr::check_identity`].
    requested: Requested,
}

/// What a CSR asks for besides its key.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Requested {
    /// Subject common names.
    common_names: Vec<String>,
    /// Requested subjectAltNames, rendered (`URI:...`, `DNS:...`).
    san: Vec<String>,
    /// basicConstraints CA:TRUE requested.
    ca: bool,
    /// keyUsage keyCertSign or cRLSign requested.
    ca_key_usage: bool,
    /// Number of extensionRequest attributes.
    extension_requests: usize,
    /// A requested extension that does not parse.
    unparsable: Option<String>,
}

impl VerifiedCsr {
    /// Checks that the request asks for nothing but a device certificate
    /// for `device_id`. certbound never copies anything but the key from a
    /// CSR, but a request asking for more is refused rather than silently
    /// trimmed: it is either a misconfigured device or an attack.
    ///
    /// Refused: basicConstraints CA:TRUE, keyUsage keyCertSign or cRLSign;
    /// any subjectAltName other than the one URI
    /// `urn:certbound:device:<device_id>` (DNS names, IP addresses, e-mail,
    /// another device's URI, several URIs); a subject CN other than
    /// `device_id`; more than one extensionRequest attribute, or a requested
    /// extension that does not parse. A subject without CN and a request
    /// without extensions are fine.
    ///
    /// # Errors
    /// [`PkiError::BadCsr`] saying which rule the request breaks.
    pub fn check_identity(&self, device_id: &str) -> Result<(), PkiError> {
        let r = &self.requested;
        let bad = |why: String| Err(PkiError::BadCsr(why));
        if r.extension_requests > 1 {
            return bad(format!(
                "it has {} extensionRequest attributes; at most one is allowed",
                r.extension_requests
            ));
        }
        if let Some(e) = &r.unparsable {
            return bad(format!("a requested extension does not parse: {e}"));
        }
        if r.ca {
            return bad("it asks for a CA certificate (basicConstraints CA:TRUE); \
                        certbound issues devices end-entity certificates only"
                .into());
        }
        if r.ca_key_usage {
            return bad("it asks for keyCertSign or cRLSign key usage, which only CAs have".into());
        }
        let own = format!("URI:{}{device_id}", crate::DEVICE_URI_PREFIX);
        match r.san.as_slice() {
            [] => {}
            [one] if *one == own => {}
            sans => {
                let other_device = sans.iter().find(|s| {
                    **s != own && s.starts_with(&format!("URI:{}", crate::DEVICE_URI_PREFIX))
                });
                return match other_device {
                    Some(other) => bad(format!(
                        "its subjectAltName {} names another device than {device_id:?}",
                        log_safe(other)
                    )),
                    None => bad(format!(
                        "it asks for the subjectAltName(s) {}; a device certificate carries \
                         exactly one, {own}",
                        log_safe(&sans.join(", "))
                    )),
                };
            }
        }
        if let Some(cn) = r.common_names.iter().find(|cn| *cn != device_id) {
            return bad(format!(
                "its subject CN {:?} is not the device id {device_id:?}",
                log_safe(cn)
            ));
        }
        Ok(())
    }
}

fn requested_of(
    info: &x509_parser::certification_request::X509CertificationRequestInfo<'_>,
) -> Requested {
    use x509_parser::cri_attributes::ParsedCriAttribute;
    use x509_parser::extensions::{GeneralName, ParsedExtension};
    let mut r = Requested {
        common_names: info
            .subject
            .iter_common_name()
            .map(|cn| {
                cn.as_str()
                    .map_or_else(|_| "(not text)".to_string(), str::to_string)
            })
            .collect(),
        ..Requested::default()
    };
    for attr in info.iter_attributes() {
        let ParsedCriAttribute::ExtensionRequest(req) = attr.parsed_attribute() else {
            continue;
        };
        r.extension_requests += 1;
        for ext in &req.extensions {
            match ext.parsed_extension() {
                ParsedExtension::BasicConstraints(bc) => r.ca |= bc.ca,
                ParsedExtension::KeyUsage(ku) => {
                    r.ca_key_usage |= ku.key_cert_sign() || ku.crl_sign();
                }
                ParsedExtension::SubjectAlternativeName(san) => {
                    for name in &san.general_names {
                        r.san.push(match name {
                            GeneralName::URI(u) => format!("URI:{u}"),
                            GeneralName::DNSName(d) => format!("DNS:{d}"),
                            GeneralName::RFC822Name(m) => format!("email:{m}"),
                            GeneralName::IPAddress(ip) => format!("IP:{ip:02x?}"),
                            other => format!("{other:?}"),
                        });
                    }
                }
                ParsedExtension::ParseError { error } => {
                    r.unparsable = Some(format!("{}: {error}", ext.oid));
                }
                _ => {}
            }
        }
    }
    r
}

/// Verifies a PKCS#10 CSR given as DER or PEM (`CERTIFICATE REQUEST` or
/// `NEW CERTIFICATE REQUEST`).
///
/// Rules, in order: at most [`MAX_CSR_LEN`] bytes of input; PEM holds exactly
/// one CSR block; the DER is one `CertificationRequest` with no trailing
/// bytes; version 1 (0); signature algorithm ecdsa-with-SHA256 with absent
/// parameters; an ECDSA P-256 key (id-ecPublicKey with prime256v1, a point on
/// the curve); and the self-signature verifies with that key (proof of
/// possession). Everything else in the request is ignored.
///
/// # Errors
/// [`PkiError::BadCsr`] for oversize, unreadable, wrong-version, wrong
/// algorithm or tampered requests, [`PkiError::UnsupportedKey`] for keys
/// other than P-256, [`PkiError::Malformed`] for a P-256 point not on the curve.
pub fn verify_csr(der_or_pem: &[u8]) -> Result<VerifiedCsr, PkiError> {
    if der_or_pem.len() > MAX_CSR_LEN {
        return Err(PkiError::BadCsr(format!(
            "it is {} bytes long, more than the {MAX_CSR_LEN} accepted",
            der_or_pem.len()
        )));
    }
    let pem_der;
    let der = if looks_like_pem(der_or_pem) {
        pem_der = csr_from_pem(der_or_pem)?;
        pem_der.as_slice()
    } else {
        der_or_pem
    };
    let (rest, csr) = X509CertificationRequest::from_der(der)
        .map_err(|e| PkiError::BadCsr(format!("it is not a DER PKCS#10 request: {e}")))?;
    if !rest.is_empty() {
        return Err(PkiError::BadCsr(format!(
            "it has {} trailing bytes after the request",
            rest.len()
        )));
    }
    let info = &csr.certification_request_info;
    if info.version != X509Version(0) {
        return Err(PkiError::BadCsr(format!(
            "its version is {} instead of 0 (PKCS#10 v1)",
            info.version.0
        )));
    }
    if csr.signature_algorithm.algorithm != OID_SIG_ECDSA_WITH_SHA256 {
        return Err(PkiError::UnsupportedKey(format!(
            "the CSR is signed with algorithm {} instead of ecdsa-with-SHA256",
            csr.signature_algorithm.algorithm
        )));
    }
    if csr.signature_algorithm.parameters.is_some() {
        return Err(PkiError::BadCsr(
            "its ecdsa-with-SHA256 algorithm identifier has parameters (RFC 5758 says absent)"
                .into(),
        ));
    }
    let (public_key_sec1, key) = p256_key(&info.subject_pki, "the CSR")?;
    if csr.signature_value.unused_bits != 0 {
        return Err(PkiError::BadCsr(
            "its signature BIT STRING has unused bits".into(),
        ));
    }
    key.verify_sig(info.raw, &csr.signature_value.data)
        .map_err(|_| {
            PkiError::BadCsr(
                "its signature does not verify with the key it contains, so it does not prove \
                 possession of that key (the request was altered or signed with another key)"
                    .into(),
            )
        })?;
    Ok(VerifiedCsr {
        public_key_sec1,
        spki_der: info.subject_pki.raw.to_vec(),
        subject: log_safe(&info.subject.to_string()),
        requested: requested_of(info),
    })
}

/// DER always starts with the SEQUENCE tag 0x30; anything else is taken as
/// PEM text (which may have explanatory text before the block).
fn looks_like_pem(input: &[u8]) -> bool {
    input.first() != Some(&0x30)
}

/// The DER of the only CSR block of a PEM text; other blocks are ignored.
pub(crate) fn csr_from_pem(pem: &[u8]) -> Result<Vec<u8>, PkiError> {
    let mut found = None;
    for block in Pem::iter_from_buffer(pem) {
        let block = block.map_err(|e| PkiError::BadCsr(format!("invalid PEM: {e}")))?;
        if block.label != "CERTIFICATE REQUEST" && block.label != "NEW CERTIFICATE REQUEST" {
            continue;
        }
        if found.is_some() {
            return Err(PkiError::BadCsr(
                "the PEM text holds more than one CERTIFICATE REQUEST block; send one".into(),
            ));
        }
        found = Some(block.contents);
    }
    found.ok_or_else(|| {
        PkiError::BadCsr(
            "the PEM text has no -----BEGIN CERTIFICATE REQUEST----- (or NEW CERTIFICATE \
             REQUEST) block"
                .into(),
        )
    })
}

/// Replaces control characters and bounds the length, so a requester cannot
/// forge log lines through its subject.
fn log_safe(s: &str) -> String {
    s.chars()
        .take(MAX_SUBJECT_CHARS)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

impl IssuingCa {
    /// Issues the normal device certificate (see
    /// [`IssuingCa::issue_device_cert`]) for the key of a verified CSR.
    ///
    /// `device_id` comes from the caller, who has authenticated and
    /// authorised the requester: the CSR's subject and SANs are ignored, so
    /// a CSR can never choose its own identity.
    ///
    /// # Errors
    /// As for [`IssuingCa::issue_device_cert`].
    pub fn issue_for_csr(
        &self,
        csr: &VerifiedCsr,
        device_id: &str,
        days: u32,
        now: u64,
    ) -> Result<IssuedCert, PkiError> {
        // `verify_csr` checked the key (P-256, a point on the curve).
        self.issue_device_cert_checked(device_id, &csr.spki_der, days, now)
    }
}

#[cfg(test)]
mod tests;
