//! JWS signing algorithms beyond ES256 for JWT access tokens: RS256 and
//! PS256 (RFC 7518 §3.3, §3.5) and EdDSA with Ed25519 (RFC 8037).
//!
//! ES256 stays the default and the only algorithm of CWTs; an API may ask for
//! one of the others for consumers that cannot verify ES256. The rules that
//! make algorithm confusion impossible live here:
//!
//! - a [`JwsKey`] carries exactly one algorithm, fixed by its type: P-256
//!   keys are ES256, Ed25519 keys EdDSA, RSA keys RS256 *or* PS256 (one key
//!   per algorithm, never both; RFC 7517's `alg` has one value);
//! - [`JwsKey::verify`] refuses a JWS whose header `alg` is not the key's;
//! - RSA keys under 2048 bits are refused when a key is built
//!   ([`MIN_RSA_BITS`]), and aws-lc-rs refuses them again when verifying;
//! - `none`, HMAC and every other algorithm are not in [`JwsAlg`] at all.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

use crate::error::ProtoError;
use crate::key::{EcPublicKey, base64url};

/// The smallest RSA modulus accepted, in bits (RFC 7518 §3.3).
pub const MIN_RSA_BITS: usize = 2048;
/// The largest RSA modulus accepted, in bits (aws-lc-rs verifies up to 8192).
pub const MAX_RSA_BITS: usize = 8192;

/// A JWS algorithm certbound signs JWTs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JwsAlg {
    /// ECDSA P-256 SHA-256 (the default; CWTs use only this).
    Es256,
    /// RSASSA-PKCS1-v1_5 SHA-256.
    Rs256,
    /// RSASSA-PSS SHA-256, MGF1 SHA-256, 32-byte salt.
    Ps256,
    /// EdDSA over Ed25519 (RFC 8037).
    EdDsa,
}

impl JwsAlg {
    /// Every algorithm, ES256 first.
    pub const ALL: [JwsAlg; 4] = [JwsAlg::Es256, JwsAlg::Rs256, JwsAlg::Ps256, JwsAlg::EdDsa];

    /// The JOSE name (`ES256`, `RS256`, `PS256`, `EdDSA`).
    pub fn as_str(self) -> &'static str {
        match self {
            JwsAlg::Es256 => "ES256",
            JwsAlg::Rs256 => "RS256",
            JwsAlg::Ps256 => "PS256",
            JwsAlg::EdDsa => "EdDSA",
        }
    }

    /// Reads the exact JOSE name (case-sensitive, as in a JWS header).
    pub fn from_jose(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }

    /// Whether keys of this algorithm are RSA keys.
    pub fn is_rsa(self) -> bool {
        matches!(self, JwsAlg::Rs256 | JwsAlg::Ps256)
    }
}

impl fmt::Display for JwsAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JwsAlg {
    type Err = ProtoError;

    /// Reads an algorithm name as an operator types it: the JOSE name in any
    /// case (`rs256`, `EdDSA`, `eddsa`).
    fn from_str(s: &str) -> Result<Self, ProtoError> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                ProtoError::UnsupportedJwsAlgorithm(format!(
                    "{s} (use one of ES256, RS256, PS256, EdDSA)"
                ))
            })
    }
}

/// The public part of a JWS signing key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicMaterial {
    /// An EC P-256 point.
    Ec(EcPublicKey),
    /// An RSA modulus and public exponent, big-endian without leading zeros.
    Rsa {
        /// Modulus.
        n: Vec<u8>,
        /// Public exponent.
        e: Vec<u8>,
    },
    /// An Ed25519 public key.
    Ed25519([u8; 32]),
}

/// A verification key with the one algorithm it may be used with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwsKey {
    alg: JwsAlg,
    material: PublicMaterial,
}

fn strip_zeros(b: &[u8]) -> Vec<u8> {
    let start = b.iter().position(|x| *x != 0).unwrap_or(b.len());
    b[start..].to_vec()
}

impl JwsKey {
    /// An ES256 key.
    pub fn es256(key: EcPublicKey) -> Self {
        Self {
            alg: JwsAlg::Es256,
            material: PublicMaterial::Ec(key),
        }
    }

    /// An RS256 or PS256 key. A modulus under [`MIN_RSA_BITS`] (or over
    /// [`MAX_RSA_BITS`]), an even modulus, or an exponent that is not odd
    /// and greater than 1 is refused.
    pub fn rsa(alg: JwsAlg, n: &[u8], e: &[u8]) -> Result<Self, ProtoError> {
        if !alg.is_rsa() {
            return Err(ProtoError::InvalidKey(format!(
                "an RSA key cannot be used with {alg}; RSA keys sign RS256 or PS256"
            )));
        }
        let n = strip_zeros(n);
        let e = strip_zeros(e);
        let bits = n.len() * 8 - n.first().map_or(8, |b| b.leading_zeros() as usize);
        if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
            return Err(ProtoError::InvalidKey(format!(
                "RSA modulus is {bits} bits; {MIN_RSA_BITS} to {MAX_RSA_BITS} bits are accepted \
                 (RFC 7518 §3.3 requires at least 2048)"
            )));
        }
        let odd = |v: &[u8]| v.last().is_some_and(|b| b & 1 == 1);
        if !odd(&n) || !odd(&e) || e.as_slice() == [1] || e.len() > 8 {
            return Err(ProtoError::InvalidKey(
                "RSA public key: the modulus and the exponent must be odd, the exponent > 1 \
                 and at most 64 bits"
                    .into(),
            ));
        }
        Ok(Self {
            alg,
            material: PublicMaterial::Rsa { n, e },
        })
    }

    /// An EdDSA (Ed25519) key.
    pub fn ed25519(x: [u8; 32]) -> Self {
        Self {
            alg: JwsAlg::EdDsa,
            material: PublicMaterial::Ed25519(x),
        }
    }

    /// The algorithm this key verifies (and nothing else).
    pub fn alg(&self) -> JwsAlg {
        self.alg
    }

    /// The public key material.
    pub fn material(&self) -> &PublicMaterial {
        &self.material
    }

    /// The RSA modulus size in bits (`None` for other keys).
    pub fn rsa_bits(&self) -> Option<usize> {
        match &self.material {
            PublicMaterial::Rsa { n, .. } => {
                Some(n.len() * 8 - n.first().map_or(8, |b| b.leading_zeros() as usize))
            }
            _ => None,
        }
    }

    /// The key id: for ES256 keys [`EcPublicKey::kid`] (unchanged), for the
    /// others the first 8 bytes of the RFC 7638 JWK thumbprint, base64url.
    /// RS256 and PS256 never share a key, so their kids differ.
    pub fn kid(&self) -> String {
        match &self.material {
            PublicMaterial::Ec(k) => k.kid(),
            _ => base64url(&self.thumbprint()[..8]),
        }
    }

    /// RFC 7638 JWK thumbprint: SHA-256 over the required members in
    /// lexicographic order without whitespace.
    pub fn thumbprint(&self) -> [u8; 32] {
        let json = match &self.material {
            PublicMaterial::Ec(k) => format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                base64url(&k.x),
                base64url(&k.y)
            ),
            PublicMaterial::Rsa { n, e } => format!(
                r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                base64url(e),
                base64url(n)
            ),
            PublicMaterial::Ed25519(x) => {
                format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, base64url(x))
            }
        };
        Sha256::digest(json.as_bytes()).into()
    }

    /// The public JWK (RFC 7517) with `kid`, `alg` and `use: sig`: `EC`
    /// with `crv`/`x`/`y`, `RSA` with `n`/`e` (RFC 7518 §6.3), or `OKP`
    /// with `crv: Ed25519` and `x` (RFC 8037 §2).
    pub fn to_jwk(&self, kid: &str) -> serde_json::Value {
        use serde_json::json;
        let alg = self.alg.as_str();
        match &self.material {
            PublicMaterial::Ec(k) => json!({
                "kty": "EC", "crv": "P-256", "x": base64url(&k.x), "y": base64url(&k.y),
                "kid": kid, "alg": alg, "use": "sig",
            }),
            PublicMaterial::Rsa { n, e } => json!({
                "kty": "RSA", "n": base64url(n), "e": base64url(e),
                "kid": kid, "alg": alg, "use": "sig",
            }),
            PublicMaterial::Ed25519(x) => json!({
                "kty": "OKP", "crv": "Ed25519", "x": base64url(x),
                "kid": kid, "alg": alg, "use": "sig",
            }),
        }
    }

    /// Stored form of the public key (the `signing_keys.public_key`
    /// column): the SEC1 point for ES256, the PKCS#1 `RSAPublicKey` DER for
    /// RSA, the 32 raw bytes for Ed25519.
    pub fn to_stored(&self) -> Vec<u8> {
        match &self.material {
            PublicMaterial::Ec(k) => k.to_sec1(),
            PublicMaterial::Rsa { n, e } => rsa_public_der(n, e),
            PublicMaterial::Ed25519(x) => x.to_vec(),
        }
    }

    /// Reads [`JwsKey::to_stored`] back for `alg`.
    pub fn from_stored(alg: JwsAlg, bytes: &[u8]) -> Result<Self, ProtoError> {
        match alg {
            JwsAlg::Es256 => Ok(Self::es256(EcPublicKey::from_sec1(bytes)?)),
            JwsAlg::Rs256 | JwsAlg::Ps256 => {
                let (n, e) = parse_rsa_public_der(bytes)?;
                Self::rsa(alg, &n, &e)
            }
            JwsAlg::EdDsa => Ok(Self::ed25519(bytes.try_into().map_err(|_| {
                ProtoError::InvalidKey(format!(
                    "an Ed25519 public key is 32 bytes, not {}",
                    bytes.len()
                ))
            })?)),
        }
    }

    /// Verifies a JWS signature made with `header_alg` over `message`. The
    /// header's algorithm must be this key's: an RSA key never checks an
    /// HMAC or ECDSA signature, an RS256 key never a PS256 one.
    #[cfg(feature = "aws-lc")]
    pub fn verify(
        &self,
        header_alg: JwsAlg,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), ProtoError> {
        use aws_lc_rs::signature::{
            ED25519, RSA_PKCS1_2048_8192_SHA256, RSA_PSS_2048_8192_SHA256, RsaPublicKeyComponents,
            UnparsedPublicKey,
        };
        if header_alg != self.alg {
            return Err(ProtoError::AlgorithmMismatch {
                header: header_alg.as_str().into(),
                key: self.alg.as_str().into(),
            });
        }
        let ok = match (&self.material, self.alg) {
            (PublicMaterial::Ec(k), _) => {
                use crate::crypto::Verifier as _;
                return crate::crypto::AwsLcVerifier::new(k)?.verify(message, signature);
            }
            (PublicMaterial::Rsa { n, e }, alg) => {
                let params = if alg == JwsAlg::Rs256 {
                    &RSA_PKCS1_2048_8192_SHA256
                } else {
                    &RSA_PSS_2048_8192_SHA256
                };
                RsaPublicKeyComponents { n, e }
                    .verify(params, message, signature)
                    .is_ok()
            }
            (PublicMaterial::Ed25519(x), _) => UnparsedPublicKey::new(&ED25519, x)
                .verify(message, signature)
                .is_ok(),
        };
        if ok {
            Ok(())
        } else {
            Err(ProtoError::BadSignature)
        }
    }
}

/// DER of a PKCS#1 `RSAPublicKey ::= SEQUENCE { n INTEGER, e INTEGER }`.
pub fn rsa_public_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    fn integer(v: &[u8]) -> Vec<u8> {
        let v = strip_zeros(v);
        let mut body = Vec::with_capacity(v.len() + 1);
        if v.first().is_none_or(|b| b & 0x80 != 0) {
            body.push(0);
        }
        body.extend_from_slice(&v);
        tlv(0x02, &body)
    }
    let mut body = integer(n);
    body.extend(integer(e));
    tlv(0x30, &body)
}

fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = body.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(body);
    out
}

/// Reads a DER PKCS#1 `RSAPublicKey` into `(n, e)` (strict: definite
/// lengths, nothing trailing).
pub fn parse_rsa_public_der(der: &[u8]) -> Result<(Vec<u8>, Vec<u8>), ProtoError> {
    let bad = || ProtoError::InvalidKey("not a DER PKCS#1 RSAPublicKey".into());
    fn read(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
        let (&t, rest) = input.split_first()?;
        if t != tag {
            return None;
        }
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 || rest.len() < count {
                return None;
            }
            let len = rest[..count]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (len, &rest[count..])
        };
        if rest.len() < len {
            return None;
        }
        Some((&rest[..len], &rest[len..]))
    }
    let (seq, trailing) = read(der, 0x30).ok_or_else(bad)?;
    if !trailing.is_empty() {
        return Err(bad());
    }
    let (n, rest) = read(seq, 0x02).ok_or_else(bad)?;
    let (e, rest) = read(rest, 0x02).ok_or_else(bad)?;
    if !rest.is_empty() {
        return Err(bad());
    }
    Ok((strip_zeros(n), strip_zeros(e)))
}

/// Produces JWS signatures with one key and one algorithm.
pub trait JwsSigner: Send + Sync + fmt::Debug {
    /// The algorithm (the header's `alg`).
    fn alg(&self) -> JwsAlg;
    /// Signs the JWS signing input (`header.payload`).
    fn sign_jws(&self, message: &[u8]) -> Result<Vec<u8>, ProtoError>;
    /// The public key.
    fn jws_key(&self) -> JwsKey;
}

#[cfg(feature = "aws-lc")]
pub use self::signers::{Ed25519Signer, RSA_KEY_SIZE, RsaSigner, from_pkcs8_der, generate};

#[cfg(feature = "aws-lc")]
mod signers;

#[cfg(test)]
mod tests;
