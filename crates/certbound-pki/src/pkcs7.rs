//! PKCS#7 / CMS "certs-only" messages: the degenerate SignedData that EST
//! (RFC 7030 §4.1.3, §4.2.3) and EST-coaps (RFC 9148, content-format 281)
//! use to carry certificates. Written by hand: the structure is fixed and tiny.

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

#[cfg(test)]
mod tests;
