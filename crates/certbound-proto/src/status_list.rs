//! Token Status List (draft-ietf-oauth-status-list), CWT form: revocation
//! and suspension of issued tokens by index into a compressed bit array.
//!
//! * A referenced token (an access token, CWT or JWT) carries claim `65535`
//!   = `{"status_list": {"idx": uint, "uri": tstr}}` ([`StatusRef`]).
//! * The issuer publishes, at `uri`, a Status List Token: a COSE_Sign1
//!   (tag 18, never tag 61) with protected `{1: -7, 4: kid, 16:
//!   "application/statuslist+cwt"}` and claims `{2: sub (= uri), 4: exp,
//!   6: iat, 65533: {"bits": 1|2|4|8, "lst": zlib(list)}, 65534: ttl}`
//!   ([`mint_status_list`], [`UnverifiedStatusList`]).
//! * [`StatusList`] packs entry `i` at bit `(i * bits) mod 8` of byte
//!   `floor(i * bits / 8)`, counting from the least-significant bit, exactly
//!   as the draft; inflation is bounded (zip-bomb guard) and strict.
//!
//! Maps are written in deterministic order (RFC 8949 §4.2.1): integer labels
//! ascending, then `"lst"` before `"bits"`; decoding accepts any order.

use std::io::Write as _;

use ciborium::Value;
use flate2::{Compression, Decompress, FlushDecompress, Status, write::ZlibEncoder};
use serde::{Deserialize, Serialize};

use crate::cbor::{self, Limits, int, uint};
use crate::cose::{self, ProtectedParams, UnverifiedSign1};
use crate::crypto::{Signer, Verifier};
use crate::error::{ClaimError, ProtoError};

/// `typ` (COSE header 16) of a Status List Token.
pub const TYP_STATUS_LIST: &str = "application/statuslist+cwt";
/// CWT claim `status` of a referenced token.
pub const CLAIM_STATUS: i64 = 65535;
/// CWT claim `ttl` of a Status List Token (seconds a fetched list may be cached).
pub const CLAIM_TTL: i64 = 65534;
/// CWT claim `status_list` of a Status List Token.
pub const CLAIM_STATUS_LIST: i64 = 65533;

/// Status value: the token is valid.
pub const STATUS_VALID: u8 = 0;
/// Status value: the token is revoked (invalid for good).
pub const STATUS_INVALID: u8 = 1;
/// Status value: the token is suspended (may become valid again).
pub const STATUS_SUSPENDED: u8 = 2;

const CLAIM_SUB: i64 = 2;
const CLAIM_EXP: i64 = 4;
const CLAIM_IAT: i64 = 6;

/// The `status_list` reference a token carries: which entry of which list
/// holds its status. CWT claim 65535 is `{"status_list": {"idx", "uri"}}`;
/// JWT claim `status` has the same shape in JSON.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StatusRef {
    /// Index of the token's entry in the list.
    pub idx: u64,
    /// URI of the Status List Token (its `sub`).
    pub uri: String,
}

impl StatusRef {
    /// The value of claim 65535: `{"status_list": {"idx": idx, "uri": uri}}`.
    pub fn to_claim_value(&self) -> Value {
        let inner = Value::Map(vec![
            (Value::Text("idx".into()), uint(self.idx)),
            (Value::Text("uri".into()), Value::Text(self.uri.clone())),
        ]);
        Value::Map(vec![(Value::Text("status_list".into()), inner)])
    }

    /// Reads the value of claim 65535. Other status mechanisms next to
    /// `status_list` are ignored, but `status_list` itself is required: a
    /// token whose status cannot be checked is refused rather than trusted.
    pub fn from_claim_value(v: &Value) -> Result<Self, ProtoError> {
        let outer = cbor::map(v, "status claim (65535)")?;
        let inner = text_key(outer, "status_list").ok_or_else(|| {
            ProtoError::structure(
                "status claim (65535)",
                "no \"status_list\" member: only the Token Status List mechanism is supported",
            )
        })?;
        let inner = cbor::map(inner, "status claim (65535) status_list")?;
        let idx = match text_key(inner, "idx") {
            Some(Value::Integer(i)) => u64::try_from(i128::from(*i)).map_err(|_| {
                ProtoError::structure("status_list idx", "must be a non-negative integer")
            })?,
            Some(_) => {
                return Err(ProtoError::structure(
                    "status_list idx",
                    "must be an unsigned integer",
                ));
            }
            None => return Err(ProtoError::structure("status_list", "\"idx\" is missing")),
        };
        let uri = match text_key(inner, "uri") {
            Some(u) => cbor::text(u, "status_list uri")?,
            None => return Err(ProtoError::structure("status_list", "\"uri\" is missing")),
        };
        Ok(Self { idx, uri })
    }
}

/// A status list: `len` entries of `bits` bits each, packed LSB-first.
#[derive(Clone, PartialEq, Eq)]
pub struct StatusList {
    bits: u8,
    len: u64,
    bytes: Vec<u8>,
}

impl std::fmt::Debug for StatusList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "StatusList({} entries of {} bits, {} bytes)",
            self.len,
            self.bits,
            self.bytes.len()
        )
    }
}

fn check_bits(bits: u8) -> Result<(), ProtoError> {
    if matches!(bits, 1 | 2 | 4 | 8) {
        Ok(())
    } else {
        Err(ProtoError::InvalidStatusList(format!(
            "bits is {bits}; it must be 1, 2, 4 or 8"
        )))
    }
}

impl StatusList {
    /// A list of `len` entries of `bits` bits (1, 2, 4 or 8), all
    /// [`STATUS_VALID`]. Fails on other `bits` or when the list would not fit
    /// in memory (the allocation is attempted, never assumed).
    pub fn new(bits: u8, len: u64) -> Result<Self, ProtoError> {
        check_bits(bits)?;
        let n = len
            .checked_mul(u64::from(bits))
            .map(|b| b.div_ceil(8))
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| {
                ProtoError::InvalidStatusList(format!(
                    "{len} entries of {bits} bits do not fit in memory; use a smaller list"
                ))
            })?;
        let mut bytes = Vec::new();
        bytes.try_reserve_exact(n).map_err(|_| {
            ProtoError::InvalidStatusList(format!(
                "cannot allocate {n} bytes for {len} entries; use a smaller list"
            ))
        })?;
        bytes.resize(n, 0);
        Ok(Self { bits, len, bytes })
    }

    /// A list over already-packed bytes; its length is every entry the bytes
    /// hold (`bytes.len() * 8 / bits`).
    pub fn from_bytes(bits: u8, bytes: Vec<u8>) -> Result<Self, ProtoError> {
        check_bits(bits)?;
        let len = (bytes.len() as u64).saturating_mul(8) / u64::from(bits);
        Ok(Self { bits, len, bytes })
    }

    /// Bits per entry.
    pub fn bits(&self) -> u8 {
        self.bits
    }

    /// Number of entries.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when the list has no entries.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The packed bytes (before compression).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    fn position(&self, idx: u64) -> Option<(usize, u32)> {
        if idx >= self.len {
            return None;
        }
        // idx < len and len * bits fitted when the list was built.
        let bit = idx.checked_mul(u64::from(self.bits))?;
        let byte = usize::try_from(bit / 8).ok()?;
        Some((byte, (bit % 8) as u32))
    }

    fn mask(&self) -> u8 {
        // bits is 1, 2, 4 or 8: (1 << bits) - 1 computed in u16 to allow 8.
        ((1u16 << self.bits) - 1) as u8
    }

    /// The status of entry `idx`, or `None` when `idx` is out of bounds.
    pub fn get(&self, idx: u64) -> Option<u8> {
        let (byte, shift) = self.position(idx)?;
        self.bytes.get(byte).map(|b| (b >> shift) & self.mask())
    }

    /// The status of entry `idx`; an index out of bounds is an error, and the
    /// draft requires the referenced token to be treated as invalid then.
    pub fn status(&self, idx: u64) -> Result<u8, ProtoError> {
        self.get(idx).ok_or_else(|| {
            ProtoError::InvalidStatusList(format!(
                "index {idx} is outside the list of {} entries: the referenced token must be \
                 treated as invalid",
                self.len
            ))
        })
    }

    /// Sets entry `idx` to `value`, which must fit in `bits` bits.
    pub fn set(&mut self, idx: u64, value: u8) -> Result<(), ProtoError> {
        let mask = self.mask();
        if value > mask {
            return Err(ProtoError::InvalidStatusList(format!(
                "status {value} does not fit in {} bits (maximum {mask}); use a list with more bits",
                self.bits
            )));
        }
        let len = self.len;
        let (byte, shift) = self.position(idx).ok_or_else(|| {
            ProtoError::InvalidStatusList(format!(
                "index {idx} is outside the list of {len} entries; allocate a larger list"
            ))
        })?;
        let slot = self.bytes.get_mut(byte).ok_or_else(|| {
            ProtoError::InvalidStatusList(format!("index {idx} is outside the packed bytes"))
        })?;
        *slot = (*slot & !(mask << shift)) | (value << shift);
        Ok(())
    }

    /// The `lst` value: the packed bytes, DEFLATE-compressed in ZLIB format
    /// at the highest compression level (as the draft recommends).
    pub fn to_compressed(&self) -> Vec<u8> {
        let mut encoder = ZlibEncoder::new(Vec::new(), Compression::best());
        // Writing into a Vec cannot fail, and DEFLATE accepts any input.
        if encoder.write_all(&self.bytes).is_err() {
            return Vec::new();
        }
        encoder.finish().unwrap_or_default()
    }

    /// Inflates an `lst` value. Refuses to produce more than `max_bytes`
    /// (zip-bomb guard), and refuses anything but exactly one complete ZLIB
    /// stream with a correct checksum (no preset dictionary, no trailing bytes).
    pub fn from_compressed(bits: u8, lst: &[u8], max_bytes: usize) -> Result<Self, ProtoError> {
        check_bits(bits)?;
        let bad = |why: &str| {
            ProtoError::InvalidStatusList(format!(
                "lst is not a valid ZLIB/DEFLATE stream ({why}); the issuer must publish \
                 zlib-compressed bytes"
            ))
        };
        let mut inflater = Decompress::new(true);
        // Room for one byte more than allowed, so that "too large" is seen.
        let hard_cap = max_bytes.saturating_add(1);
        let mut out: Vec<u8> = Vec::new();
        loop {
            if out.len() == out.capacity() {
                let want = out.len().saturating_mul(2).max(1024).min(hard_cap);
                out.try_reserve_exact(want.saturating_sub(out.len()))
                    .map_err(|_| ProtoError::StatusListTooLarge { limit: max_bytes })?;
            }
            let consumed = usize::try_from(inflater.total_in()).unwrap_or(usize::MAX);
            let input = lst.get(consumed..).unwrap_or_default();
            let (before_in, before_out) = (inflater.total_in(), inflater.total_out());
            let status = inflater
                .decompress_vec(input, &mut out, FlushDecompress::None)
                .map_err(|e| bad(&e.to_string()))?;
            if out.len() > max_bytes {
                return Err(ProtoError::StatusListTooLarge { limit: max_bytes });
            }
            match status {
                Status::StreamEnd => break,
                Status::Ok | Status::BufError => {
                    let progressed =
                        inflater.total_in() != before_in || inflater.total_out() != before_out;
                    if !progressed && out.len() < out.capacity() {
                        return Err(bad("stream is truncated"));
                    }
                }
            }
        }
        if inflater.total_in() != lst.len() as u64 {
            return Err(bad("trailing bytes after the stream"));
        }
        Self::from_bytes(bits, out)
    }
}

/// The content of a Status List Token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusListToken {
    /// `sub` (2): the URI of this list, which referenced tokens name.
    pub sub: String,
    /// `iat` (6), Unix seconds.
    pub iat: u64,
    /// `exp` (4), Unix seconds (RECOMMENDED by the draft).
    pub exp: Option<u64>,
    /// `ttl` (65534): seconds a relying party may cache the list.
    pub ttl: Option<u64>,
    /// The statuses.
    pub list: StatusList,
}

impl StatusListToken {
    fn to_cbor(&self) -> Vec<u8> {
        let mut m = vec![(int(CLAIM_SUB), Value::Text(self.sub.clone()))];
        if let Some(exp) = self.exp {
            m.push((int(CLAIM_EXP), uint(exp)));
        }
        m.push((int(CLAIM_IAT), uint(self.iat)));
        let list = Value::Map(vec![
            (
                Value::Text("lst".into()),
                Value::Bytes(self.list.to_compressed()),
            ),
            (Value::Text("bits".into()), uint(u64::from(self.list.bits))),
        ]);
        m.push((int(CLAIM_STATUS_LIST), list));
        if let Some(ttl) = self.ttl {
            m.push((int(CLAIM_TTL), uint(ttl)));
        }
        cbor::encode(&Value::Map(m))
    }
}

/// The claims of a Status List Token before the list is inflated.
struct ListClaims<'v> {
    sub: String,
    iat: u64,
    exp: Option<u64>,
    ttl: Option<u64>,
    bits: u8,
    lst: &'v [u8],
}

impl<'v> ListClaims<'v> {
    fn decode(value: &'v Value) -> Result<Self, ProtoError> {
        let claims = cbor::map(value, "status list token claims")?;
        let sub = cbor::map_get(claims, CLAIM_SUB).ok_or(ClaimError::Missing("sub"))?;
        let sub = cbor::text(sub, "sub")?;
        let iat = cbor::map_get(claims, CLAIM_IAT).ok_or(ClaimError::Missing("iat"))?;
        let iat = cbor::numeric_date(iat, "iat")?;
        let exp = cbor::map_get(claims, CLAIM_EXP)
            .map(|v| cbor::numeric_date(v, "exp"))
            .transpose()?;
        let ttl = match cbor::map_get(claims, CLAIM_TTL) {
            None => None,
            Some(Value::Integer(i)) => Some(
                u64::try_from(i128::from(*i))
                    .map_err(|_| ProtoError::structure("ttl", "must be a non-negative integer"))?,
            ),
            Some(_) => return Err(ProtoError::structure("ttl", "must be an unsigned integer")),
        };
        let list =
            cbor::map_get(claims, CLAIM_STATUS_LIST).ok_or(ClaimError::Missing("status_list"))?;
        let list = cbor::map(list, "status_list (65533)")?;
        let bits = match text_key(list, "bits") {
            Some(Value::Integer(i)) => u8::try_from(i128::from(*i))
                .map_err(|_| ProtoError::InvalidStatusList("bits must be 1, 2, 4 or 8".into()))?,
            Some(_) => {
                return Err(ProtoError::structure(
                    "status_list bits",
                    "must be an integer",
                ));
            }
            None => return Err(ProtoError::structure("status_list", "\"bits\" is missing")),
        };
        check_bits(bits)?;
        let lst = match text_key(list, "lst") {
            Some(Value::Bytes(b)) => b.as_slice(),
            Some(_) => {
                return Err(ProtoError::structure(
                    "status_list lst",
                    "must be a byte string",
                ));
            }
            None => return Err(ProtoError::structure("status_list", "\"lst\" is missing")),
        };
        Ok(Self {
            sub,
            iat,
            exp,
            ttl,
            bits,
            lst,
        })
    }
}

/// Signs a Status List Token: a tagged COSE_Sign1 (18, not wrapped in 61)
/// with protected `{1: -7, 4: kid, 16: "application/statuslist+cwt"}`.
pub fn mint_status_list(
    token: &StatusListToken,
    kid: &str,
    signer: &dyn Signer,
) -> Result<Vec<u8>, ProtoError> {
    let params = ProtectedParams {
        kid: Some(kid.as_bytes().to_vec()),
        typ: Some(TYP_STATUS_LIST),
        extra: Vec::new(),
    };
    cose::sign1(params, token.to_cbor(), signer)
}

/// A parsed Status List Token whose signature is not verified yet.
#[derive(Debug, Clone)]
pub struct UnverifiedStatusList {
    sign1: UnverifiedSign1,
}

impl UnverifiedStatusList {
    /// Parses a Status List Token: strict CBOR, a tagged COSE_Sign1 (a CWT tag
    /// 61 is refused, as the draft requires), ES256, and `typ` exactly
    /// `application/statuslist+cwt` (so an access token is never accepted here).
    pub fn parse(bytes: &[u8], limits: Limits) -> Result<Self, ProtoError> {
        let sign1 = UnverifiedSign1::parse(bytes, limits, false)?;
        sign1.expect_typ(TYP_STATUS_LIST, false)?;
        Ok(Self { sign1 })
    }

    /// The `kid` lookup hint (protected, else unprotected).
    pub fn kid(&self) -> &[u8] {
        self.sign1.kid()
    }

    /// Verifies the signature, then checks that `sub` is `expected_uri` (the
    /// `uri` of the referenced token), that `exp` (if any) has not passed
    /// (`now >= exp + leeway` is expired) and that `iat` is not in the future
    /// beyond `leeway`, and finally inflates the list, at most
    /// `max_list_bytes` bytes.
    pub fn verify(
        &self,
        verifier: &dyn Verifier,
        limits: Limits,
        expected_uri: &str,
        now: u64,
        leeway: u64,
        max_list_bytes: usize,
    ) -> Result<StatusListToken, ProtoError> {
        let payload = self.sign1.verify(verifier)?;
        let value = cbor::decode_strict(payload, limits)?;
        let claims = ListClaims::decode(&value)?;
        // Claims are checked before the list is inflated: no work on a list
        // that is stale or for another URI.
        if claims.sub != expected_uri {
            return Err(ClaimError::SubjectMismatch {
                expected: expected_uri.into(),
                found: claims.sub,
            }
            .into());
        }
        if let Some(exp) = claims.exp
            && now >= exp.saturating_add(leeway)
        {
            return Err(ClaimError::Expired { exp, now }.into());
        }
        if claims.iat > now.saturating_add(leeway) {
            return Err(ClaimError::NotYetValid {
                nbf: claims.iat,
                now,
            }
            .into());
        }
        let list = StatusList::from_compressed(claims.bits, claims.lst, max_list_bytes)?;
        Ok(StatusListToken {
            sub: claims.sub,
            iat: claims.iat,
            exp: claims.exp,
            ttl: claims.ttl,
            list,
        })
    }
}

fn text_key<'v>(map: &'v [(Value, Value)], key: &str) -> Option<&'v Value> {
    map.iter()
        .find(|(k, _)| matches!(k, Value::Text(t) if t == key))
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests;
