//! P-256 public keys and their COSE_Key (RFC 9052 §7) and JWK forms.

use ciborium::Value;
use sha2::{Digest, Sha256};

use crate::cbor::{self, int, map_get};
use crate::error::ProtoError;

/// COSE_Key labels and values used here (RFC 9052 §7, RFC 9053 §7).
pub mod labels {
    /// kty
    pub const KTY: i64 = 1;
    /// kid
    pub const KID: i64 = 2;
    /// alg
    pub const ALG: i64 = 3;
    /// EC2 crv
    pub const CRV: i64 = -1;
    /// EC2 x
    pub const X: i64 = -2;
    /// EC2 y
    pub const Y: i64 = -3;
    /// EC2 d (private; never accepted in a public key)
    pub const D: i64 = -4;
    /// kty EC2
    pub const KTY_EC2: i64 = 2;
    /// crv P-256
    pub const CRV_P256: i64 = 1;
}

/// ES256 (RFC 9053).
pub const ALG_ES256: i64 = -7;
/// ESP256 (RFC 9864), the fully specified ES256.
pub const ALG_ESP256: i64 = -9;

/// An uncompressed P-256 public key (affine coordinates).
///
/// Only the curve point's encoding is checked here; the crypto backend checks
/// that it is on the curve when a verifier is built from it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct EcPublicKey {
    /// x coordinate, big-endian.
    pub x: [u8; 32],
    /// y coordinate, big-endian.
    pub y: [u8; 32],
}

impl std::fmt::Debug for EcPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EcPublicKey(kid {})", self.kid())
    }
}

impl EcPublicKey {
    /// From the 65-byte SEC1 uncompressed form `04 || x || y`.
    pub fn from_sec1(sec1: &[u8]) -> Result<Self, ProtoError> {
        match sec1 {
            [0x04, rest @ ..] if rest.len() == 64 => {
                let mut x = [0u8; 32];
                let mut y = [0u8; 32];
                x.copy_from_slice(&rest[..32]);
                y.copy_from_slice(&rest[32..]);
                Ok(Self { x, y })
            }
            _ => Err(ProtoError::InvalidKey(
                "expected a 65-byte uncompressed P-256 point (04 || x || y)".into(),
            )),
        }
    }

    /// The 65-byte SEC1 uncompressed form.
    pub fn to_sec1(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(65);
        out.push(0x04);
        out.extend_from_slice(&self.x);
        out.extend_from_slice(&self.y);
        out
    }

    /// The COSE_Key `{1: 2, -1: 1, -2: x, -3: y}` as a CBOR value.
    pub fn to_cose_key(&self) -> Value {
        Value::Map(vec![
            (int(labels::KTY), int(labels::KTY_EC2)),
            (int(labels::CRV), int(labels::CRV_P256)),
            (int(labels::X), Value::Bytes(self.x.to_vec())),
            (int(labels::Y), Value::Bytes(self.y.to_vec())),
        ])
    }

    /// The COSE_Key with the point compressed (RFC 9053 §7.1.1): `-3` is the
    /// sign bit of y (`true` when y is odd, SEC1's `03` prefix) instead of the
    /// 32-byte coordinate, 33 bytes shorter. Tokens carry their `cnf` key
    /// this way; key sets and thumbprints keep the full form.
    pub fn to_cose_key_compressed(&self) -> Value {
        Value::Map(vec![
            (int(labels::KTY), int(labels::KTY_EC2)),
            (int(labels::CRV), int(labels::CRV_P256)),
            (int(labels::X), Value::Bytes(self.x.to_vec())),
            (int(labels::Y), Value::Bool(self.y_is_odd())),
        ])
    }

    /// The sign bit of y (SEC1 §2.3.3): whether y is odd.
    pub fn y_is_odd(&self) -> bool {
        self.y[31] & 1 == 1
    }

    /// The point from its x coordinate and the sign bit of y (SEC1 §2.3.4).
    /// An x that is not on the curve is refused.
    pub fn from_compressed(x: &[u8; 32], y_is_odd: bool) -> Result<Self, ProtoError> {
        decompress(x, y_is_odd)
    }

    /// The COSE_Key with `kid` and `alg: ES256`, as published in a key set.
    pub fn to_cose_key_with_kid(&self, kid: &str) -> Value {
        let Value::Map(mut entries) = self.to_cose_key() else {
            return Value::Null;
        };
        entries.insert(1, (int(labels::KID), Value::Bytes(kid.as_bytes().to_vec())));
        entries.insert(2, (int(labels::ALG), int(ALG_ES256)));
        Value::Map(entries)
    }

    /// Reads an EC2 P-256 public COSE_Key. A private part (`d`), another key
    /// type or curve, or an `alg` other than ES256/ESP256 is refused.
    pub fn from_cose_key(value: &Value) -> Result<Self, ProtoError> {
        let entries = cbor::map(value, "COSE_Key")?;
        let get = |label| map_get(entries, label);
        let bad = |reason: &str| ProtoError::InvalidKey(format!("COSE_Key: {reason}"));
        if get(labels::KTY).and_then(cbor::as_i64) != Some(labels::KTY_EC2) {
            return Err(bad("kty must be EC2 (2)"));
        }
        if get(labels::CRV).and_then(cbor::as_i64) != Some(labels::CRV_P256) {
            return Err(bad("crv must be P-256 (1)"));
        }
        if get(labels::D).is_some() {
            return Err(bad(
                "contains a private key (d); only public keys are accepted",
            ));
        }
        if let Some(alg) = get(labels::ALG) {
            match cbor::as_i64(alg) {
                Some(ALG_ES256 | ALG_ESP256) => {}
                Some(other) => return Err(ProtoError::UnsupportedAlgorithm(other)),
                None => return Err(bad("alg must be an integer")),
            }
        }
        let coord = |label, name| -> Result<[u8; 32], ProtoError> {
            match get(label) {
                Some(Value::Bytes(b)) if b.len() == 32 => {
                    let mut out = [0u8; 32];
                    out.copy_from_slice(b);
                    Ok(out)
                }
                _ => Err(ProtoError::InvalidKey(format!(
                    "COSE_Key: {name} must be a 32-byte string"
                ))),
            }
        };
        let x = coord(labels::X, "x")?;
        match get(labels::Y) {
            Some(Value::Bool(odd)) => Self::from_compressed(&x, *odd),
            _ => Ok(Self {
                x,
                y: coord(labels::Y, "y")?,
            }),
        }
    }

    /// RFC 9679 COSE Key Thumbprint (SHA-256 over the deterministic encoding of
    /// the required members kty, crv, x, y).
    pub fn thumbprint(&self) -> [u8; 32] {
        Sha256::digest(cbor::encode(&self.to_cose_key())).into()
    }

    /// The key id certbound uses for this key: the base64url (no padding) form
    /// of the first 8 bytes of its thumbprint — 11 ASCII characters, identical
    /// in JWKS (`kid` string) and COSE (`kid` bytes).
    pub fn kid(&self) -> String {
        let thumb = self.thumbprint();
        base64url(&thumb[..8])
    }
}

#[cfg(feature = "p256")]
fn decompress(x: &[u8; 32], y_is_odd: bool) -> Result<EcPublicKey, ProtoError> {
    use p256::elliptic_curve::sec1::ToSec1Point as _;
    let mut sec1 = [0u8; 33];
    sec1[0] = if y_is_odd { 0x03 } else { 0x02 };
    sec1[1..].copy_from_slice(x);
    let point = p256::PublicKey::from_sec1_bytes(&sec1).map_err(|_| {
        ProtoError::InvalidKey("COSE_Key: x is not the x coordinate of a P-256 point".into())
    })?;
    EcPublicKey::from_sec1(point.to_sec1_point(false).as_bytes())
}

#[cfg(not(feature = "p256"))]
fn decompress(_x: &[u8; 32], _y_is_odd: bool) -> Result<EcPublicKey, ProtoError> {
    Err(ProtoError::InvalidKey(
        "COSE_Key: a compressed point (y as sign bit) needs certbound-proto's `p256` feature"
            .into(),
    ))
}

/// base64url without padding (RFC 4648 §5), the JOSE encoding.
pub fn base64url(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            let idx = (n >> (18 - 6 * i)) & 0x3f;
            out.push(char::from(ALPHABET[idx as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests;
