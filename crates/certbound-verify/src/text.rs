//! [`decode_token_text`]: tokens pasted on a command line, as hex or base64.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use crate::error::VerifyError;

const LENIENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);
const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);

/// Decodes a token given as text: hex (upper or lower case, optionally with a
/// `0x` prefix), base64url or standard base64 (padding optional).
/// Whitespace anywhere (line breaks of a pasted token) is ignored.
///
/// Text made only of hex digits with an even length is read as hex (a
/// certbound token in hex starts with `d2` or `d83d`).
///
/// # Errors
/// [`VerifyError::InvalidTokenText`] for empty input or text that is none of
/// these encodings.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use certbound_verify::decode_token_text;
/// assert_eq!(decode_token_text("D2 84 43")?, [0xd2, 0x84, 0x43]);
/// assert_eq!(decode_token_text("0oRD")?, [0xd2, 0x84, 0x43]);
/// # Ok(())
/// # }
/// ```
pub fn decode_token_text(input: &str) -> Result<Vec<u8>, VerifyError> {
    let compact: String = input.chars().filter(|c| !c.is_whitespace()).collect();
    let text = compact
        .strip_prefix("0x")
        .or_else(|| compact.strip_prefix("0X"))
        .filter(|rest| is_hex(rest))
        .unwrap_or(&compact);
    if text.is_empty() {
        return Err(VerifyError::InvalidTokenText("the input is empty".into()));
    }
    if is_hex(text) {
        return Ok(hex_decode(text));
    }
    let url = text.contains(['-', '_']);
    let std = text.contains(['+', '/']);
    let result = match (url, std) {
        (true, true) => {
            return Err(VerifyError::InvalidTokenText(
                "the text mixes base64url (-_) and standard base64 (+/) characters".into(),
            ));
        }
        (true, false) => URL_SAFE.decode(text),
        (false, true) => STANDARD.decode(text),
        // Characters common to both alphabets: either engine gives the same bytes.
        (false, false) => URL_SAFE.decode(text),
    };
    result.map_err(|e| {
        VerifyError::InvalidTokenText(format!(
            "neither hex (an even number of 0-9a-f) nor base64: {e}"
        ))
    })
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.len().is_multiple_of(2) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Decodes text already checked by [`is_hex`].
fn hex_decode(s: &str) -> Vec<u8> {
    let nibble = |b: u8| match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b - b'A' + 10,
    };
    s.as_bytes()
        .chunks(2)
        .map(|p| (nibble(p[0]) << 4) | nibble(p[1]))
        .collect()
}
