//! Reading the certificates out of a PKCS#7 / CMS "certs-only" message (the
//! EST answer, RFC 7030 §4.1.3): a degenerate SignedData with no signers.
//! DER only; small and strict, written by hand like the broker's writer.
//!
//! ```text
//! ContentInfo ::= SEQUENCE { contentType id-signedData,
//!   content [0] EXPLICIT SignedData ::= SEQUENCE {
//!     version INTEGER, digestAlgorithms SET, encapContentInfo SEQUENCE,
//!     certificates [0] IMPLICIT SET OF Certificate OPTIONAL,
//!     crls [1] IMPLICIT ... OPTIONAL, signerInfos SET } }
//! ```

use crate::error::AgentError;

/// DER of OBJECT IDENTIFIER 1.2.840.113549.1.7.2 (id-signedData), content only.
const OID_SIGNED_DATA: [u8; 9] = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];

/// Largest number of certificates read from one message.
const MAX_CERTS: usize = 16;

fn malformed(why: &str) -> AgentError {
    AgentError::UnexpectedResponse(format!("the PKCS#7 certs-only answer is malformed: {why}"))
}

/// One DER element and what follows it.
struct Element<'a> {
    tag: u8,
    content: &'a [u8],
    /// Tag, length and content.
    whole: &'a [u8],
    rest: &'a [u8],
}

fn element(input: &[u8]) -> Result<Element<'_>, AgentError> {
    let (&tag, after_tag) = input.split_first().ok_or_else(|| malformed("truncated"))?;
    if tag & 0x1f == 0x1f {
        return Err(malformed("multi-byte tags are not used here"));
    }
    let (&first, mut rest) = after_tag
        .split_first()
        .ok_or_else(|| malformed("truncated length"))?;
    let len = match first {
        0..=0x7f => usize::from(first),
        0x80 => return Err(malformed("indefinite lengths are not DER")),
        _ => {
            let n = usize::from(first & 0x7f);
            if n > 4 || rest.len() < n {
                return Err(malformed("bad length"));
            }
            let (bytes, after) = rest.split_at(n);
            rest = after;
            if bytes[0] == 0 {
                return Err(malformed("non-minimal length"));
            }
            let len = bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            if len < 0x80 {
                return Err(malformed("non-minimal length"));
            }
            len
        }
    };
    if rest.len() < len {
        return Err(malformed("truncated content"));
    }
    let header = input.len() - rest.len();
    let (content, after) = rest.split_at(len);
    Ok(Element {
        tag,
        content,
        whole: &input[..header + len],
        rest: after,
    })
}

fn expect<'a>(input: &'a [u8], tag: u8, what: &str) -> Result<(&'a [u8], &'a [u8]), AgentError> {
    let e = element(input)?;
    if e.tag != tag {
        return Err(malformed(&format!("expected {what}")));
    }
    Ok((e.content, e.rest))
}

/// The certificates (DER, in message order) of a certs-only message (DER).
pub fn pkcs7_certificates(der: &[u8]) -> Result<Vec<Vec<u8>>, AgentError> {
    let (content_info, trailing) = expect(der, 0x30, "a ContentInfo SEQUENCE")?;
    if !trailing.is_empty() {
        return Err(malformed("trailing bytes"));
    }
    let (oid, rest) = expect(content_info, 0x06, "the content type")?;
    if oid != OID_SIGNED_DATA {
        return Err(malformed("the content type is not signedData"));
    }
    let (explicit, _) = expect(rest, 0xa0, "[0] content")?;
    let (signed_data, _) = expect(explicit, 0x30, "a SignedData SEQUENCE")?;
    let (_, rest) = expect(signed_data, 0x02, "the version")?;
    let (_, rest) = expect(rest, 0x31, "digestAlgorithms")?;
    let (_, rest) = expect(rest, 0x30, "encapContentInfo")?;
    let mut certs = Vec::new();
    if let Ok(Element {
        tag: 0xa0,
        content: mut set,
        ..
    }) = element(rest)
    {
        while !set.is_empty() {
            let e = element(set)?;
            // Other CertificateChoices (attribute certificates...) are skipped.
            if e.tag == 0x30 {
                if certs.len() == MAX_CERTS {
                    return Err(malformed("too many certificates"));
                }
                certs.push(e.whole.to_vec());
            }
            set = e.rest;
        }
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        match content.len() {
            n @ 0..=0x7f => out.push(n as u8),
            n @ 0x80..=0xff => out.extend([0x81, n as u8]),
            n => out.extend([0x82, (n >> 8) as u8, n as u8]),
        }
        out.extend(content);
        out
    }

    /// What the broker's `pkcs7_certs_only` writes.
    fn certs_only(certs: &[Vec<u8>]) -> Vec<u8> {
        let mut sd = tlv(0x02, &[1]);
        sd.extend(tlv(0x31, &[]));
        sd.extend(tlv(
            0x30,
            &tlv(
                0x06,
                &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01],
            ),
        ));
        if !certs.is_empty() {
            sd.extend(tlv(0xa0, &certs.concat()));
        }
        sd.extend(tlv(0x31, &[]));
        let mut ci = tlv(0x06, &OID_SIGNED_DATA);
        ci.extend(tlv(0xa0, &tlv(0x30, &sd)));
        tlv(0x30, &ci)
    }

    #[test]
    fn reads_the_certificates_back() {
        let a = tlv(0x30, &[7u8; 300]);
        let b = tlv(0x30, &[1, 2, 3]);
        let msg = certs_only(&[a.clone(), b.clone()]);
        assert_eq!(pkcs7_certificates(&msg).unwrap(), [a, b]);
        assert!(pkcs7_certificates(&certs_only(&[])).unwrap().is_empty());
    }

    #[test]
    fn refuses_what_is_not_a_certs_only_message() {
        let good = certs_only(&[tlv(0x30, &[1])]);
        let mut trailing = good.clone();
        trailing.push(0);
        let mut wrong_oid = good.clone();
        let at = good.windows(9).position(|w| w == OID_SIGNED_DATA).unwrap();
        wrong_oid[at + 8] = 0x01;
        let indefinite = [0x30, 0x80, 0, 0];
        for bad in [
            &[][..],
            &good[..good.len() - 1],
            &trailing,
            &wrong_oid,
            &indefinite,
            &[0x30, 0x81, 0x05, 1, 2, 3, 4, 5], // non-minimal length
            &[0x1f, 0x00],
        ] {
            assert!(pkcs7_certificates(bad).is_err(), "{bad:02x?}");
        }
    }
}
