//! Strict CBOR: a well-formedness and strictness check that runs before any
//! decoding or crypto, plus small helpers over [`ciborium::Value`].
//!
//! [`check_strict`] refuses, in one linear pass without allocating from
//! declared lengths: inputs over the size bound, nesting deeper than the depth
//! bound, indefinite-length items, non-shortest ("non-preferred") integer and
//! length encodings, reserved additional-information values, invalid simple
//! values, duplicate map keys (compared by their encoded bytes, which is exact
//! because encodings are shortest-form), and trailing bytes after the item.

use std::collections::BTreeSet;

use ciborium::Value;

use crate::error::ProtoError;

/// Hard ceiling on nesting, whatever [`Limits::max_depth`] says (stack safety).
pub const MAX_DEPTH_CAP: usize = 64;

/// Bounds applied to every decoded object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted input, in bytes.
    pub max_size: usize,
    /// Deepest accepted nesting of arrays, maps and tags.
    pub max_depth: usize,
}

impl Default for Limits {
    /// 8 KiB (a token with an x5chain of two P-256 certificates fits in 3 KiB)
    /// and depth 16 (the deepest certbound object nests 6 levels).
    fn default() -> Self {
        Self {
            max_size: 8 * 1024,
            max_depth: 16,
        }
    }
}

/// Checks that `input` is exactly one strictly-encoded CBOR data item.
pub fn check_strict(input: &[u8], limits: Limits) -> Result<(), ProtoError> {
    if input.len() > limits.max_size {
        return Err(ProtoError::TooLarge {
            size: input.len(),
            limit: limits.max_size,
        });
    }
    let mut scanner = Scanner {
        input,
        pos: 0,
        // The scanner recurses: cap the depth whatever the caller asks.
        max_depth: limits.max_depth.min(MAX_DEPTH_CAP),
    };
    scanner.item(0)?;
    if scanner.pos != input.len() {
        return Err(malformed(scanner.pos, "trailing bytes after the CBOR item"));
    }
    Ok(())
}

/// Checks strictly, then decodes into a [`Value`].
pub fn decode_strict(input: &[u8], limits: Limits) -> Result<Value, ProtoError> {
    check_strict(input, limits)?;
    ciborium::de::from_reader_with_recursion_limit(input, limits.max_depth + 1)
        .map_err(|_| malformed(0, "CBOR item could not be decoded"))
}

/// Encodes a [`Value`] (encoding into a `Vec` cannot fail for values we build).
pub fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing to a Vec is infallible; a failure here would only come from a
    // value ciborium cannot represent, which we never construct.
    if ciborium::ser::into_writer(value, &mut out).is_err() {
        out.clear();
    }
    out
}

fn malformed(offset: usize, reason: &'static str) -> ProtoError {
    ProtoError::MalformedCbor { offset, reason }
}

struct Scanner<'a> {
    input: &'a [u8],
    pos: usize,
    max_depth: usize,
}

impl Scanner<'_> {
    fn byte(&mut self) -> Result<u8, ProtoError> {
        let b = *self
            .input
            .get(self.pos)
            .ok_or_else(|| malformed(self.pos, "unexpected end of input"))?;
        self.pos += 1;
        Ok(b)
    }

    fn skip(&mut self, n: u64) -> Result<(), ProtoError> {
        let remaining = (self.input.len() - self.pos) as u64;
        if n > remaining {
            return Err(malformed(self.pos, "length runs past the end of input"));
        }
        self.pos += n as usize;
        Ok(())
    }

    /// Reads the argument of a head, enforcing shortest-form encoding.
    fn argument(&mut self, info: u8, start: usize) -> Result<u64, ProtoError> {
        let (len, min) = match info {
            0..=23 => return Ok(u64::from(info)),
            24 => (1, 24u64),
            25 => (2, 0x100),
            26 => (4, 0x1_0000),
            27 => (8, 0x1_0000_0000),
            28..=30 => return Err(malformed(start, "reserved additional information value")),
            _ => return Err(malformed(start, "indefinite-length items are not accepted")),
        };
        let mut value = 0u64;
        for _ in 0..len {
            value = (value << 8) | u64::from(self.byte()?);
        }
        if value < min {
            return Err(malformed(start, "integer or length not in shortest form"));
        }
        Ok(value)
    }

    fn item(&mut self, depth: usize) -> Result<(), ProtoError> {
        let start = self.pos;
        let initial = self.byte()?;
        let major = initial >> 5;
        let info = initial & 0x1f;
        if major == 7 {
            return self.simple_or_float(info, start);
        }
        let arg = self.argument(info, start)?;
        match major {
            0 | 1 => Ok(()),
            2 => self.skip(arg),
            3 => {
                let from = self.pos;
                self.skip(arg)?;
                std::str::from_utf8(&self.input[from..self.pos])
                    .map(|_| ())
                    .map_err(|_| malformed(from, "text string is not valid UTF-8"))
            }
            4 => {
                self.enter(depth, start)?;
                for _ in 0..arg {
                    self.item(depth + 1)?;
                }
                Ok(())
            }
            5 => {
                self.enter(depth, start)?;
                let mut keys: BTreeSet<&[u8]> = BTreeSet::new();
                for _ in 0..arg {
                    let key_start = self.pos;
                    // Keys are integers or text strings only: then equal keys
                    // always have equal (shortest-form) encodings, so comparing
                    // bytes finds every duplicate (no 1 vs 2(h'01'), 1.0 vs 1.0f32).
                    match self.input.get(key_start).map(|b| b >> 5) {
                        Some(0 | 1 | 3) => {}
                        Some(_) => {
                            return Err(malformed(
                                key_start,
                                "map keys must be integers or text strings",
                            ));
                        }
                        None => return Err(malformed(key_start, "unexpected end of input")),
                    }
                    self.item(depth + 1)?;
                    let key = &self.input[key_start..self.pos];
                    if !keys.insert(key) {
                        return Err(malformed(key_start, "duplicate map key"));
                    }
                    self.item(depth + 1)?;
                }
                Ok(())
            }
            _ => {
                // major 6: a tag followed by one item. Bignums (tags 2 and 3)
                // are refused: no certbound structure uses them, and they make
                // integers with two encodings.
                if arg == 2 || arg == 3 {
                    return Err(malformed(start, "bignum tags (2, 3) are not accepted"));
                }
                self.enter(depth, start)?;
                self.item(depth + 1)
            }
        }
    }

    fn enter(&self, depth: usize, start: usize) -> Result<(), ProtoError> {
        if depth >= self.max_depth {
            return Err(malformed(start, "nesting deeper than the limit"));
        }
        Ok(())
    }

    fn simple_or_float(&mut self, info: u8, start: usize) -> Result<(), ProtoError> {
        match info {
            20..=23 => Ok(()), // false, true, null, undefined
            0..=19 => Err(malformed(start, "unassigned simple value")),
            24 => {
                let v = self.byte()?;
                if v < 32 {
                    Err(malformed(start, "simple value not in shortest form"))
                } else {
                    Err(malformed(start, "unassigned simple value"))
                }
            }
            25 => self.skip(2),
            26 => self.skip(4),
            27 => self.skip(8),
            28..=30 => Err(malformed(start, "reserved additional information value")),
            _ => Err(malformed(start, "indefinite-length break outside an item")),
        }
    }
}

// === Value helpers ===

/// Looks up an integer label in a CBOR map.
pub fn map_get(map: &[(Value, Value)], label: i64) -> Option<&Value> {
    map.iter()
        .find(|(k, _)| as_i64(k) == Some(label))
        .map(|(_, v)| v)
}

/// The integer in `v`, if it is one that fits an `i64`.
pub fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Integer(i) => i64::try_from(i128::from(*i)).ok(),
        _ => None,
    }
}

/// An integer CBOR value.
pub fn int(v: i64) -> Value {
    Value::Integer(v.into())
}

/// An unsigned integer CBOR value.
pub fn uint(v: u64) -> Value {
    Value::Integer(v.into())
}

/// Reads a NumericDate (RFC 8392: int or float) as whole Unix seconds.
pub fn numeric_date(v: &Value, what: &'static str) -> Result<u64, ProtoError> {
    match v {
        Value::Integer(i) => u64::try_from(i128::from(*i))
            .map_err(|_| ProtoError::structure(what, "date is negative or too large")),
        Value::Float(f) if f.is_finite() && *f >= 0.0 && *f < 1.8e19 => Ok(f.floor() as u64),
        _ => Err(ProtoError::structure(what, "date is not a number")),
    }
}

/// Reads a text string.
pub fn text(v: &Value, what: &'static str) -> Result<String, ProtoError> {
    match v {
        Value::Text(s) => Ok(s.clone()),
        _ => Err(ProtoError::structure(what, "expected a text string")),
    }
}

/// Reads a byte string.
pub fn bytes(v: &Value, what: &'static str) -> Result<Vec<u8>, ProtoError> {
    match v {
        Value::Bytes(b) => Ok(b.clone()),
        _ => Err(ProtoError::structure(what, "expected a byte string")),
    }
}

/// Reads a map.
pub fn map<'v>(v: &'v Value, what: &'static str) -> Result<&'v [(Value, Value)], ProtoError> {
    match v {
        Value::Map(m) => Ok(m),
        _ => Err(ProtoError::structure(what, "expected a map")),
    }
}

#[cfg(test)]
mod tests;
