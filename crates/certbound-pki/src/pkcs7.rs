//! PKCS#7 / CMS "certs-only" messages: the degenerate SignedData that EST
//! (RFC 7030 §4.1.3, §4.2.3) and EST-coaps (RFC 9148, content-format 281)
//! use to carry certificates. Written by hand: the structure is fixed and tiny.

use crate::PkiError;

/// DER of OBJECT IDENTIFIER 1.2.840.113549.1.7.2 (id-signedData), tag and length included.
const OID_SIGNED_DATA: [u8; 11] = [
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02,
];
/// DER of OBJECT IDENTIFIER 1.2.840.113549.1.7.1 (id-data), tag and length included.
const OID_DATA: [u8; 11] = [
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01,
];

/// Wraps DER certificates in a PKCS#7 certs-only message (DER):
///
/// ```text
/// ContentInfo { contentType id-signedData,
///   content [0] EXPLICIT SignedData {
///     version 1, digestAlgorithms {} (empty SET),
///     encapContentInfo { eContentType id-data } (no content),
///     certificates [0] IMPLICIT SET OF Certificate,
///     signerInfos {} (empty SET) } }
/// ```
///
/// This is the `application/pkcs7-mime; smime-type=certs-only` body of EST
/// `cacerts` / `simpleenroll` / `simplereenroll` (base64 over HTTP, raw DER
/// over CoAP). The certificates are embedded byte for byte and not checked:
/// pass DER certificates. As DER requires for a SET OF, they are sorted by
/// their encoding and exact duplicates are dropped, so the output does not
/// depend on the order given (readers must not rely on the order; EST clients
/// identify the issued certificate by its key). With no certificates the
/// optional `certificates` field is left out.
///
/// ```
/// let p7 = certbound_pki::pkcs7_certs_only(&[]);
/// assert_eq!(p7[0], 0x30); // a DER SEQUENCE
/// ```
pub fn pkcs7_certs_only(certs_der: &[Vec<u8>]) -> Vec<u8> {
    let mut certs: Vec<&[u8]> = certs_der.iter().map(Vec::as_slice).collect();
    certs.sort_unstable();
    certs.dedup();

    let mut signed_data = Vec::new();
    signed_data.extend(tlv(0x02, &[0x01])); // version INTEGER 1
    signed_data.extend(tlv(0x31, &[])); // digestAlgorithms SET OF, empty
    signed_data.extend(tlv(0x30, &OID_DATA)); // encapContentInfo, no eContent
    if !certs.is_empty() {
        signed_data.extend(tlv(0xa0, &certs.concat())); // certificates [0] IMPLICIT
    }
    signed_data.extend(tlv(0x31, &[])); // signerInfos SET OF, empty

    let mut content_info = OID_SIGNED_DATA.to_vec();
    content_info.extend(tlv(0xa0, &tlv(0x30, &signed_data))); // content [0] EXPLICIT
    tlv(0x30, &content_info)
}

/// One DER TLV: `tag`, the definite length of `content`, then `content`.
pub(crate) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    push_len(&mut out, content.len());
    out.extend_from_slice(content);
    out
}

/// Appends a DER definite length: short form below 128, else `0x80 | n`
/// followed by the `n` big-endian length bytes (no leading zero bytes).
fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        // Fits in 7 bits, so the cast is lossless.
        out.push(len as u8);
        return;
    }
    let bytes = len.to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count();
    let significant = &bytes[skip..];
    // At most size_of::<usize>() = 8 bytes.
    out.push(0x80 | significant.len() as u8);
    out.extend_from_slice(significant);
}

/// Most certificates [`pkcs7_certificates`] reads from one message.
pub const MAX_PKCS7_CERTS: usize = 16;

/// One DER element: `(tag, content, whole element, rest)`.
type Element<'a> = (u8, &'a [u8], &'a [u8], &'a [u8]);

fn p7_malformed(why: &str) -> PkiError {
    PkiError::Malformed(format!("PKCS#7 certs-only message: {why}"))
}

/// Reads one DER element: single-byte tag, definite minimal length (at most
/// 4 length bytes), content within the input.
fn element(input: &[u8]) -> Result<Element<'_>, PkiError> {
    let (&tag, after_tag) = input
        .split_first()
        .ok_or_else(|| p7_malformed("truncated"))?;
    if tag & 0x1f == 0x1f {
        return Err(p7_malformed("multi-byte tags are not used here"));
    }
    let (&first, mut rest) = after_tag
        .split_first()
        .ok_or_else(|| p7_malformed("truncated length"))?;
    let len = match first {
        0..=0x7f => usize::from(first),
        0x80 => return Err(p7_malformed("indefinite length (not DER)")),
        _ => {
            let n = usize::from(first & 0x7f);
            if n > 4 || rest.len() < n {
                return Err(p7_malformed("bad length"));
            }
            let (bytes, after) = rest.split_at(n);
            rest = after;
            if bytes.first() == Some(&0) {
                return Err(p7_malformed("non-minimal length"));
            }
            let len = bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            if len < 0x80 {
                return Err(p7_malformed("non-minimal length"));
            }
            len
        }
    };
    if rest.len() < len {
        return Err(p7_malformed("truncated content"));
    }
    let header = input.len() - rest.len();
    let (content, after) = rest.split_at(len);
    Ok((tag, content, &input[..header + len], after))
}

fn expect_tag<'a>(input: &'a [u8], tag: u8, what: &str) -> Result<(&'a [u8], &'a [u8]), PkiError> {
    let (t, content, _, rest) = element(input)?;
    if t != tag {
        return Err(p7_malformed(&format!("expected {what}")));
    }
    Ok((content, rest))
}

/// Reads the certificates (DER, in message order) out of a PKCS#7 / CMS
/// certs-only message (DER), the inverse of [`pkcs7_certs_only`]: what EST
/// clients receive from `cacerts`, `simpleenroll` and `simplereenroll`.
///
/// Strict DER framing (definite minimal lengths, no trailing bytes after the
/// ContentInfo), content type id-signedData, the SignedData fields in order;
/// certificate choices other than a plain Certificate SEQUENCE are skipped;
/// at most [`MAX_PKCS7_CERTS`] certificates. The certificates themselves are
/// returned as found (parse and validate them separately).
///
/// # Errors
/// [`PkiError::Malformed`] saying what is wrong.
pub fn pkcs7_certificates(der: &[u8]) -> Result<Vec<Vec<u8>>, PkiError> {
    let (content_info, trailing) = expect_tag(der, 0x30, "a ContentInfo SEQUENCE")?;
    if !trailing.is_empty() {
        return Err(p7_malformed("trailing bytes"));
    }
    let (oid, rest) = expect_tag(content_info, 0x06, "the content type")?;
    if oid != &OID_SIGNED_DATA[2..] {
        return Err(p7_malformed("the content type is not signedData"));
    }
    let (explicit, _) = expect_tag(rest, 0xa0, "[0] content")?;
    let (signed_data, _) = expect_tag(explicit, 0x30, "a SignedData SEQUENCE")?;
    let (_, rest) = expect_tag(signed_data, 0x02, "the version")?;
    let (_, rest) = expect_tag(rest, 0x31, "digestAlgorithms")?;
    let (_, rest) = expect_tag(rest, 0x30, "encapContentInfo")?;
    let mut certs = Vec::new();
    if let Ok((0xa0, mut set, _, _)) = element(rest) {
        while !set.is_empty() {
            let (tag, _, whole, after) = element(set)?;
            if tag == 0x30 {
                if certs.len() == MAX_PKCS7_CERTS {
                    return Err(p7_malformed("too many certificates"));
                }
                certs.push(whole.to_vec());
            }
            set = after;
        }
    }
    Ok(certs)
}

#[cfg(test)]
mod tests;
