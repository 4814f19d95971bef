//! Thin helpers over the coap-lite codec: option numbers, uint option values,
//! URI splitting, code conversion and request validation (RFC 7252 §5.4).

use coap_lite::{CoapOption, MessageClass, MessageType, Packet};

use crate::block::{BlockError, BlockOption};
use crate::{CoapError, Method, ResponseType};

/// Option numbers used here (RFC 7252 §12.2, RFC 7959 §6).
pub(crate) mod opt {
    pub const URI_HOST: u16 = 3;
    pub const ETAG: u16 = 4;
    pub const URI_PORT: u16 = 7;
    pub const URI_PATH: u16 = 11;
    pub const CONTENT_FORMAT: u16 = 12;
    pub const MAX_AGE: u16 = 14;
    pub const URI_QUERY: u16 = 15;
    pub const ACCEPT: u16 = 17;
    pub const BLOCK2: u16 = 23;
    pub const BLOCK1: u16 = 27;
    pub const SIZE2: u16 = 28;
    pub const PROXY_URI: u16 = 35;
    pub const PROXY_SCHEME: u16 = 39;
    pub const SIZE1: u16 = 60;
}

/// Encodes an unsigned integer option value in its minimal form (RFC 7252 §3.2).
pub(crate) fn uint_value(value: u64) -> Vec<u8> {
    let bytes = value.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    bytes[skip..].to_vec()
}

/// Decodes an unsigned integer option value of at most `max_len` bytes.
pub(crate) fn read_uint(value: &[u8], max_len: usize) -> Option<u64> {
    if value.len() > max_len || value.len() > 8 {
        return None;
    }
    Some(value.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
}

/// The first value of option `number`, if present.
pub(crate) fn first(packet: &Packet, number: u16) -> Option<&[u8]> {
    packet
        .get_first_option(CoapOption::from(number))
        .map(Vec::as_slice)
}

/// Sets option `number` to a single value, replacing earlier values.
pub(crate) fn set(packet: &mut Packet, number: u16, value: Vec<u8>) {
    packet.clear_option(CoapOption::from(number));
    packet.add_option(CoapOption::from(number), value);
}

/// The message code of a request method, or `None` for `Method::UnKnown`.
pub(crate) fn method_class(method: Method) -> Option<MessageClass> {
    match method {
        Method::UnKnown => None,
        m => Some(MessageClass::Request(m)),
    }
}

/// Splits `"a/b?x=1&y"` into path segments and query parameters.
/// A leading `/` and empty segments are ignored.
pub(crate) fn split_uri(uri: &str) -> (Vec<String>, Vec<String>) {
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    let segments = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let query = query
        .split('&')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    (segments, query)
}

/// Builds an empty message (ACK, RST or ping) with message id `mid`.
pub(crate) fn empty(kind: MessageType, mid: u16) -> Packet {
    let mut p = Packet::new();
    p.header.set_type(kind);
    p.header.code = MessageClass::Empty;
    p.header.message_id = mid;
    p
}

/// Encodes a packet without coap-lite's 1280-byte cap (callers bound sizes).
pub(crate) fn encode(packet: &Packet) -> Result<Vec<u8>, CoapError> {
    packet
        .to_bytes_unlimited()
        .map_err(|e| CoapError::Encode(e.to_string()))
}

/// Peeks at the fixed header of a datagram that coap-lite could not parse:
/// `(is_version_1_confirmable, message_id)`.
pub(crate) fn peek_header(datagram: &[u8]) -> Option<(bool, u16)> {
    if datagram.len() < 4 {
        return None;
    }
    let con = datagram[0] >> 6 == 1 && (datagram[0] >> 4) & 0x3 == 0;
    Some((con, u16::from_be_bytes([datagram[2], datagram[3]])))
}

/// Whether a datagram is well-formed beyond what coap-lite checks: version 1,
/// empty messages carry nothing, and a payload marker is followed by a payload.
pub(crate) fn is_well_formed(datagram: &[u8], packet: &Packet) -> bool {
    if packet.header.get_version() != 1 {
        return false;
    }
    if packet.header.code == MessageClass::Empty {
        return datagram.len() == 4;
    }
    // coap-lite accepts a trailing 0xFF marker with no payload (RFC 7252 §3: format error).
    !(packet.payload.is_empty()
        && datagram.last() == Some(&0xFF)
        && options_end(datagram) < datagram.len())
}

/// Byte index where the option section ends (payload marker or end of datagram).
fn options_end(datagram: &[u8]) -> usize {
    let tkl = usize::from(datagram.first().map_or(0, |b| b & 0x0F));
    let mut idx = 4 + tkl;
    while idx < datagram.len() && datagram[idx] != 0xFF {
        let byte = datagram[idx];
        idx += 1;
        let ext = |n: u8| match n {
            13 => 1,
            14 => 2,
            _ => 0,
        };
        let delta_ext = ext(byte >> 4);
        let len_nibble = byte & 0x0F;
        let len_ext = ext(len_nibble);
        let mut len = usize::from(len_nibble);
        let at = idx + delta_ext;
        if len_nibble == 13 {
            len = 13 + usize::from(datagram.get(at).copied().unwrap_or(0));
        } else if len_nibble == 14 {
            let hi = usize::from(datagram.get(at).copied().unwrap_or(0));
            let lo = usize::from(datagram.get(at + 1).copied().unwrap_or(0));
            len = 269 + (hi << 8 | lo);
        }
        idx = at + len_ext + len;
    }
    idx
}

/// Whether a message code is a response code (class 2, 4 or 5, including
/// codes coap-lite has no name for).
pub(crate) fn is_response(class: MessageClass) -> bool {
    match class {
        MessageClass::Response(_) => true,
        MessageClass::Reserved(code) => matches!(code >> 5, 2..=5),
        _ => false,
    }
}

/// Converts a response message code into coap-lite's enum.
pub(crate) fn response_type(class: MessageClass) -> ResponseType {
    match class {
        MessageClass::Response(r) => r,
        _ => ResponseType::UnKnown,
    }
}

/// Why a request cannot be processed, and which error response it gets.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rejection {
    /// The error response code.
    pub code: ResponseType,
    /// Diagnostic payload (RFC 7252 §5.5.2): what was wrong and what to do.
    pub diagnostic: String,
}

fn reject(code: ResponseType, diagnostic: impl Into<String>) -> Rejection {
    Rejection {
        code,
        diagnostic: diagnostic.into(),
    }
}

/// The parts of a request message the server needs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ParsedRequest {
    pub method: Method,
    pub path: String,
    pub query: Vec<String>,
    pub content_format: Option<u16>,
    pub accept: Option<u16>,
    pub block1: Option<BlockOption>,
    pub block2: Option<BlockOption>,
    pub size1: Option<u64>,
}

fn block(packet: &Packet, number: u16, name: &str) -> Result<Option<BlockOption>, Rejection> {
    match first(packet, number).map(BlockOption::decode) {
        None => Ok(None),
        Some(Ok(b)) => Ok(Some(b)),
        Some(Err(BlockError::TooLong)) => Err(reject(
            ResponseType::BadOption,
            format!(
                "{name} option value longer than 3 bytes; send NUM<<4|M<<3|SZX as a 0-3 byte uint"
            ),
        )),
        Some(Err(BlockError::ReservedSzx)) => Err(reject(
            ResponseType::BadRequest,
            format!(
                "{name} SZX 7 (BERT) is not supported over UDP; use a block size of 16..1024 bytes"
            ),
        )),
    }
}

fn text_values(packet: &Packet, number: u16, what: &str) -> Result<Vec<String>, Rejection> {
    let Some(values) = packet.get_option(CoapOption::from(number)) else {
        return Ok(Vec::new());
    };
    values
        .iter()
        .map(|v| {
            String::from_utf8(v.clone()).map_err(|_| {
                reject(
                    ResponseType::BadRequest,
                    format!("{what} is not valid UTF-8; percent-decode URIs into UTF-8 text"),
                )
            })
        })
        .collect()
}

/// Validates the options of a request and extracts what the server needs.
/// Unrecognised critical options get 4.02, proxy requests 5.05 (RFC 7252 §5.4.1, §5.7.2).
pub(crate) fn parse_request(packet: &Packet) -> Result<ParsedRequest, Rejection> {
    let method = match packet.header.code {
        MessageClass::Request(Method::UnKnown) | MessageClass::Reserved(_) => {
            return Err(reject(
                ResponseType::MethodNotAllowed,
                "unknown request method; use GET, POST, PUT, DELETE, FETCH, PATCH or iPATCH",
            ));
        }
        MessageClass::Request(m) => m,
        _ => {
            return Err(reject(ResponseType::BadRequest, "not a request"));
        }
    };
    for (&number, values) in packet.options() {
        let too_long = |max: usize| values.iter().any(|v| v.len() > max);
        match number {
            opt::PROXY_URI | opt::PROXY_SCHEME => {
                return Err(reject(
                    ResponseType::ProxyingNotSupported,
                    "this endpoint is not a proxy; send the request to the origin server",
                ));
            }
            opt::URI_HOST | opt::URI_PATH | opt::URI_QUERY if too_long(255) => {
                return Err(reject(
                    ResponseType::BadOption,
                    format!("option {number} is longer than 255 bytes"),
                ));
            }
            opt::URI_PORT | opt::ACCEPT if too_long(2) => {
                return Err(reject(
                    ResponseType::BadOption,
                    format!("option {number} is longer than 2 bytes"),
                ));
            }
            opt::URI_HOST | opt::URI_PATH | opt::URI_QUERY | opt::URI_PORT | opt::ACCEPT => {}
            opt::BLOCK1 | opt::BLOCK2 => {}
            n if n % 2 == 1 => {
                return Err(reject(
                    ResponseType::BadOption,
                    format!(
                        "critical option {n} is not supported by this server; remove it from the request"
                    ),
                ));
            }
            _ => {} // elective: ignored when unknown or malformed
        }
    }
    let path = text_values(packet, opt::URI_PATH, "a Uri-Path segment")?.join("/");
    let query = text_values(packet, opt::URI_QUERY, "a Uri-Query parameter")?;
    let content_format = first(packet, opt::CONTENT_FORMAT)
        .and_then(|v| read_uint(v, 2))
        .and_then(|v| u16::try_from(v).ok());
    let accept = first(packet, opt::ACCEPT)
        .and_then(|v| read_uint(v, 2))
        .and_then(|v| u16::try_from(v).ok());
    let size1 = first(packet, opt::SIZE1).and_then(|v| read_uint(v, 4));
    Ok(ParsedRequest {
        method,
        path,
        query,
        content_format,
        accept,
        block1: block(packet, opt::BLOCK1, "Block1")?,
        block2: block(packet, opt::BLOCK2, "Block2")?,
        size1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uint_values_are_minimal() {
        assert_eq!(uint_value(0), Vec::<u8>::new());
        assert_eq!(uint_value(60), vec![60]);
        assert_eq!(uint_value(287), vec![1, 31]);
        assert_eq!(read_uint(&[1, 31], 2), Some(287));
        assert_eq!(read_uint(&[1, 2, 3], 2), None);
        assert_eq!(read_uint(&[], 2), Some(0));
    }

    #[test]
    fn uri_splitting() {
        let (p, q) = split_uri("/.well-known/core?rt=ace.est&if=x");
        assert_eq!(p, vec![".well-known", "core"]);
        assert_eq!(q, vec!["rt=ace.est", "if=x"]);
        assert_eq!(split_uri("token"), (vec!["token".to_owned()], vec![]));
        assert_eq!(split_uri(""), (vec![], vec![]));
    }

    fn request(code: MessageClass) -> Packet {
        let mut p = Packet::new();
        p.header.code = code;
        p
    }

    #[test]
    fn request_parsing_and_rejections() {
        let mut p = request(MessageClass::Request(Method::Post));
        p.add_option(CoapOption::UriPath, b"a".to_vec());
        p.add_option(CoapOption::UriPath, b"b".to_vec());
        p.add_option(CoapOption::ContentFormat, uint_value(60));
        p.add_option(CoapOption::Unknown(2048), vec![1]); // elective, ignored
        let r = parse_request(&p).map_err(|r| r.diagnostic);
        assert_eq!(r.as_ref().map(|r| r.path.as_str()), Ok("a/b"));
        assert_eq!(r.map(|r| r.content_format), Ok(Some(60)));

        p.add_option(CoapOption::Unknown(2049), vec![1]);
        assert_eq!(
            parse_request(&p).map_err(|r| r.code),
            Err(ResponseType::BadOption)
        );

        let mut p = request(MessageClass::Request(Method::Get));
        p.add_option(CoapOption::ProxyUri, b"coap://x".to_vec());
        assert_eq!(
            parse_request(&p).map_err(|r| r.code),
            Err(ResponseType::ProxyingNotSupported)
        );

        let mut p = request(MessageClass::Request(Method::Get));
        p.add_option(CoapOption::Block2, vec![0x07]);
        assert_eq!(
            parse_request(&p).map_err(|r| r.code),
            Err(ResponseType::BadRequest)
        );

        let mut p = request(MessageClass::Request(Method::Get));
        p.add_option(CoapOption::UriPath, vec![0xff, 0xfe]);
        assert_eq!(
            parse_request(&p).map_err(|r| r.code),
            Err(ResponseType::BadRequest)
        );

        let p = request(MessageClass::Reserved(0x1f));
        assert_eq!(
            parse_request(&p).map_err(|r| r.code),
            Err(ResponseType::MethodNotAllowed)
        );
    }

    #[test]
    fn well_formedness_checks() {
        // Ping: CON, empty, mid 0x1234.
        let ping = [0x40, 0x00, 0x12, 0x34];
        let p = Packet::from_bytes(&ping).map_err(|e| e.to_string());
        assert!(p.as_ref().is_ok_and(|p| is_well_formed(&ping, p)));
        // Empty message with a token is a format error.
        let bad = [0x41, 0x00, 0x12, 0x34, 0xaa];
        let p = Packet::from_bytes(&bad).map_err(|e| e.to_string());
        assert!(p.as_ref().is_ok_and(|p| !is_well_formed(&bad, p)));
        // GET with a payload marker but no payload.
        let bad = [0x40, 0x01, 0x00, 0x01, 0xff];
        let p = Packet::from_bytes(&bad).map_err(|e| e.to_string());
        assert!(p.as_ref().is_ok_and(|p| !is_well_formed(&bad, p)));
        // GET with an option whose value is 0xff is fine.
        let ok = [0x40, 0x01, 0x00, 0x01, 0xb1, 0xff];
        let p = Packet::from_bytes(&ok).map_err(|e| e.to_string());
        assert!(p.as_ref().is_ok_and(|p| is_well_formed(&ok, p)));
        // Version 2 is ignored.
        let v2 = [0x80, 0x01, 0x00, 0x01];
        let p = Packet::from_bytes(&v2).map_err(|e| e.to_string());
        assert!(p.as_ref().is_ok_and(|p| !is_well_formed(&v2, p)));
        assert_eq!(
            peek_header(&[0x40, 0x01, 0xab, 0xcd, 0xff]),
            Some((true, 0xabcd))
        );
        assert_eq!(peek_header(&[0x50, 0x01, 0, 1]), Some((false, 1)));
        assert_eq!(peek_header(&[0x40]), None);
    }
}
