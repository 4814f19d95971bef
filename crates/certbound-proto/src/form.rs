//! `application/x-www-form-urlencoded` bodies (the OAuth 2.0 endpoints'
//! requests, RFC 6749 §3.2 / WHATWG URL "urlencoded parsing"), parsed
//! strictly and in linear time.
//!
//! Strict where OAuth needs it: every parameter at most once (RFC 6749 §3.2),
//! at most [`FormLimits::max_params`] parameters, names and values valid
//! UTF-8 after percent-decoding, no malformed `%` escapes. The duplicate check
//! uses a hash set, so a body of `n` distinct keys costs `O(n)` (a quadratic
//! check let a 440 KB body pin a core for seconds).
//!
//! ```
//! use certbound_proto::form::{parse_form, FormLimits};
//! # fn main() -> Result<(), certbound_proto::form::FormError> {
//! let form = parse_form(b"grant_type=client_credentials&scope=a+b%3Ac", &FormLimits::default())?;
//! assert_eq!(form.get("scope"), Some("a b:c"));
//! assert!(parse_form(b"a=1&a=2", &FormLimits::default()).is_err());
//! # Ok(())
//! # }
//! ```

use std::collections::HashSet;
use std::fmt;

/// Bounds of a form body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormLimits {
    /// Largest body, bytes.
    pub max_bytes: usize,
    /// Most parameters (`name=value` pairs, empty pairs not counted).
    pub max_params: usize,
}

impl Default for FormLimits {
    /// 8 KiB and 32 parameters: ample for every OAuth request.
    fn default() -> Self {
        Self {
            max_bytes: 8 * 1024,
            max_params: 32,
        }
    }
}

/// Why a form body was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormError {
    /// The body is longer than [`FormLimits::max_bytes`].
    TooLarge {
        /// The limit.
        max: usize,
    },
    /// More than [`FormLimits::max_params`] parameters.
    TooManyParams {
        /// The limit.
        max: usize,
    },
    /// A parameter appears more than once (RFC 6749 §3.2).
    Duplicate(String),
    /// A `%` not followed by two hex digits, at this byte offset.
    BadEscape(usize),
    /// A name or value is not UTF-8 after decoding.
    NotUtf8,
}

impl fmt::Display for FormError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormError::TooLarge { max } => {
                write!(f, "the form body is larger than {max} bytes")
            }
            FormError::TooManyParams { max } => {
                write!(f, "the form has more than {max} parameters")
            }
            FormError::Duplicate(name) => {
                let shown: String = name.chars().take(64).flat_map(char::escape_debug).collect();
                write!(f, "parameter \"{shown}\" appears more than once")
            }
            FormError::BadEscape(at) => write!(
                f,
                "malformed percent-escape at byte {at}: '%' must be followed by two hex digits"
            ),
            FormError::NotUtf8 => write!(f, "a form name or value is not UTF-8"),
        }
    }
}

impl std::error::Error for FormError {}

/// A parsed form: parameters in the order they came, each name once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form {
    pairs: Vec<(String, String)>,
}

impl Form {
    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// All parameters, in order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// The number of parameters.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether there is no parameter.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes one name or value (`+` is a space, `%XX` a byte); `offset` is
/// where `part` starts in the body (for error messages).
pub fn decode_component(part: &[u8], offset: usize) -> Result<String, FormError> {
    let mut out = Vec::with_capacity(part.len());
    let mut i = 0;
    while i < part.len() {
        match part[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hi = part.get(i + 1).copied().and_then(hex_digit);
                let lo = part.get(i + 2).copied().and_then(hex_digit);
                match (hi, lo) {
                    (Some(h), Some(l)) => out.push(h << 4 | l),
                    _ => return Err(FormError::BadEscape(offset + i)),
                }
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| FormError::NotUtf8)
}

/// Parses a form body within `limits`, in time linear in its length.
///
/// # Errors
/// [`FormError`] saying what was wrong; the body is refused as a whole.
pub fn parse_form(body: &[u8], limits: &FormLimits) -> Result<Form, FormError> {
    if body.len() > limits.max_bytes {
        return Err(FormError::TooLarge {
            max: limits.max_bytes,
        });
    }
    let mut pairs = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut offset = 0usize;
    for piece in body.split(|&b| b == b'&') {
        let start = offset;
        offset += piece.len() + 1;
        if piece.is_empty() {
            continue;
        }
        if pairs.len() >= limits.max_params {
            return Err(FormError::TooManyParams {
                max: limits.max_params,
            });
        }
        let (name, value, value_at) = match piece.iter().position(|&b| b == b'=') {
            Some(eq) => (&piece[..eq], &piece[eq + 1..], start + eq + 1),
            None => (piece, &piece[piece.len()..], start + piece.len()),
        };
        let name = decode_component(name, start)?;
        let value = decode_component(value, value_at)?;
        if !seen.insert(name.clone()) {
            return Err(FormError::Duplicate(name));
        }
        pairs.push((name, value));
    }
    Ok(Form { pairs })
}

/// Encodes parameters as a form body (every byte outside `A-Za-z0-9*-._`
/// percent-escaped, spaces as `+`); [`parse_form`] reads it back unchanged.
pub fn encode_form(pairs: &[(String, String)]) -> String {
    fn push(out: &mut String, text: &str) {
        for &b in text.as_bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                    out.push(char::from(b));
                }
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
    }
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        push(&mut out, k);
        out.push('=');
        push(&mut out, v);
    }
    out
}

#[cfg(test)]
mod tests;
