//! PEM encoding and decoding.

use base64::Engine as _;
use x509_parser::pem::Pem;

use crate::PkiError;

/// Returns the DER of every `CERTIFICATE` block of `pem`, in file order.
///
/// Other blocks (keys, CRLs) and text between blocks are ignored. Every
/// certificate must parse as X.509.
///
/// # Errors
/// [`PkiError::Malformed`] when a block is broken, a certificate does not
/// parse, or there is no `CERTIFICATE` block at all.
pub fn parse_pem_certs(pem: &str) -> Result<Vec<Vec<u8>>, PkiError> {
    let mut certs = Vec::new();
    for block in Pem::iter_from_buffer(pem.as_bytes()) {
        let block = block.map_err(|e| PkiError::Malformed(format!("invalid PEM block: {e}")))?;
        if block.label != "CERTIFICATE" {
            continue;
        }
        let (rest, _) = x509_parser::parse_x509_certificate(&block.contents).map_err(|e| {
            PkiError::Malformed(format!(
                "PEM block {} is not an X.509 certificate: {e}",
                certs.len() + 1
            ))
        })?;
        if !rest.is_empty() {
            return Err(PkiError::Malformed(format!(
                "PEM block {} has trailing bytes after the certificate",
                certs.len() + 1
            )));
        }
        certs.push(block.contents);
    }
    if certs.is_empty() {
        return Err(PkiError::Malformed(
            "no CERTIFICATE block found; expected PEM text with \
             -----BEGIN CERTIFICATE----- blocks"
                .into(),
        ));
    }
    Ok(certs)
}

/// Encodes `der` as one PEM block with the given label (64-column base64, LF).
pub(crate) fn encode_pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 2 * label.len() + 40);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    // base64 output is ASCII, so splitting on byte boundaries is safe.
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

#[cfg(test)]
mod tests;
