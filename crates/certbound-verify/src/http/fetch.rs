//! A small, bounded HTTPS client: one request per connection, HTTP/1.1 over
//! tokio-rustls, a deadline for the whole exchange and a cap on the body.

use std::error::Error as StdError;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ::http::header::{self, HeaderValue};
use ::http::{HeaderMap, Method, Request, Uri};
use base64::Engine as _;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::VerifyError;

/// `User-Agent` of every request.
const USER_AGENT: &str = concat!("certbound/", env!("CARGO_PKG_VERSION"));

/// At most this many bytes of an error response body are kept in
/// [`VerifyError::HttpStatus`].
const ERROR_BODY_EXCERPT: usize = 256;

/// A successful (2xx) response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The HTTP status code (200..=299).
    pub status: u16,
    /// The `Content-Type` header, when present and visible ASCII.
    pub content_type: Option<String>,
    /// How long the response may be cached, in seconds, from `Cache-Control`:
    /// its `max-age`, or `Some(0)` for `no-store`/`no-cache`; `None` when the
    /// header says neither.
    pub max_age: Option<u64>,
    /// The whole body (at most the fetcher's `max_body` bytes).
    pub body: Vec<u8>,
}

/// An HTTPS client for key sets, status lists and OAuth endpoints.
///
/// Each request opens its own connection (`Connection: close`), verifies the
/// server with the given rustls configuration (SNI from the URL host; IP
/// addresses are checked against the certificate's IP SANs), and must finish
/// (connect, handshake, request, whole body) within `timeout`. Bodies larger
/// than `max_body` are refused while streaming, never buffered. Redirects are
/// not followed (a 3xx is an error like every non-2xx status).
#[derive(Debug, Clone)]
pub struct HttpsFetcher {
    tls: Arc<rustls::ClientConfig>,
    timeout: Duration,
    max_body: usize,
    allow_plain_http: bool,
}

impl HttpsFetcher {
    /// A fetcher that trusts the servers `tls` trusts (see
    /// [`client_tls_config`](super::client_tls_config)), giving each request
    /// `timeout` and accepting bodies of at most `max_body` bytes.
    pub fn new(tls: Arc<rustls::ClientConfig>, timeout: Duration, max_body: usize) -> Self {
        HttpsFetcher {
            tls,
            timeout,
            max_body,
            allow_plain_http: false,
        }
    }

    /// Also allows `http://` URLs (no TLS). For tests and loopback tools only:
    /// tokens, keys and client secrets must never travel in clear text.
    #[must_use]
    pub fn allow_plain_http(mut self, allow: bool) -> Self {
        self.allow_plain_http = allow;
        self
    }

    /// Whether `http://` URLs are allowed (see [`HttpsFetcher::allow_plain_http`]).
    pub fn allows_plain_http(&self) -> bool {
        self.allow_plain_http
    }

    /// The per-request deadline.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The largest accepted body, in bytes.
    pub fn max_body(&self) -> usize {
        self.max_body
    }

    /// `GET url` with `Accept: accept`.
    ///
    /// # Errors
    /// [`VerifyError::InvalidUrl`], [`VerifyError::TlsHandshake`],
    /// [`VerifyError::HttpRequest`], [`VerifyError::HttpTimeout`],
    /// [`VerifyError::HttpStatus`] for a non-2xx answer,
    /// [`VerifyError::BodyTooLarge`].
    pub async fn get(&self, url: &str, accept: &str) -> Result<Fetched, VerifyError> {
        let accept = header_value(url, "Accept", accept)?;
        self.request(
            url,
            Method::GET,
            vec![(header::ACCEPT, accept)],
            Bytes::new(),
        )
        .await
    }

    /// `POST url` with an `application/x-www-form-urlencoded` body made of
    /// `form` (in order), `Accept: application/json`, and, when `basic_auth`
    /// is `Some((client_id, client_secret))`, HTTP Basic authentication as
    /// OAuth 2.0 specifies it (RFC 6749 §2.3.1: both parts form-urlencoded,
    /// then joined with `:` and base64-encoded).
    ///
    /// # Errors
    /// As for [`HttpsFetcher::get`]; an OAuth error answer (e.g. 400 or 401)
    /// is a [`VerifyError::HttpStatus`] whose `body` holds the start of the
    /// JSON error.
    pub async fn post_form(
        &self,
        url: &str,
        form: &[(&str, &str)],
        basic_auth: Option<(&str, &str)>,
    ) -> Result<Fetched, VerifyError> {
        let mut headers = vec![
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            ),
            (header::ACCEPT, HeaderValue::from_static("application/json")),
        ];
        if let Some((user, password)) = basic_auth {
            let credentials = format!("{}:{}", form_encode(user), form_encode(password));
            let value = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(credentials)
            );
            let mut value = header_value(url, "Authorization", &value)?;
            value.set_sensitive(true);
            headers.push((header::AUTHORIZATION, value));
        }
        self.request(url, Method::POST, headers, Bytes::from(encode_form(form)))
            .await
    }

    /// Sends any request and returns the answer whatever its status (the
    /// whole body up to `max_body`, and every header): for clients that must
    /// read error answers, e.g. OAuth errors and `Retry-After`.
    ///
    /// # Errors
    /// As for [`HttpsFetcher::get`], except that a non-2xx status is not an error.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: Vec<(header::HeaderName, HeaderValue)>,
        body: Vec<u8>,
    ) -> Result<RawResponse, VerifyError> {
        self.run(url, method, headers, Bytes::from(body), true)
            .await
            .map(|(raw, _)| raw)
    }

    async fn request(
        &self,
        url: &str,
        method: Method,
        headers: Vec<(header::HeaderName, HeaderValue)>,
        body: Bytes,
    ) -> Result<Fetched, VerifyError> {
        self.run(url, method, headers, body, false)
            .await
            .and_then(|(_, fetched)| fetched)
    }

    /// One request: build, connect, exchange, all within the timeout.
    async fn run(
        &self,
        url: &str,
        method: Method,
        headers: Vec<(header::HeaderName, HeaderValue)>,
        body: Bytes,
        raw: bool,
    ) -> Result<Answer, VerifyError> {
        let target = Target::parse(url, self.allow_plain_http)?;
        let mut builder = Request::builder()
            .method(method)
            .uri(target.path_and_query.as_str())
            .header(header::HOST, target.authority.as_str())
            .header(header::USER_AGENT, USER_AGENT)
            .header(header::CONNECTION, "close");
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        let request = builder
            .body(Full::new(body))
            .map_err(|e| request_error(url, format!("the request cannot be built: {e}")))?;
        let exchange = self.exchange(url, &target, request, raw);
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(VerifyError::HttpTimeout {
                url: url.to_owned(),
                timeout_ms: u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX),
            }),
        }
    }

    async fn exchange(
        &self,
        url: &str,
        target: &Target,
        request: Request<Full<Bytes>>,
        raw: bool,
    ) -> Result<Answer, VerifyError> {
        let tcp = TcpStream::connect((target.host.as_str(), target.port))
            .await
            .map_err(|e| request_error(url, format!("cannot connect: {e}")))?;
        let _ = tcp.set_nodelay(true);
        if !target.tls {
            return send(url, tcp, request, self.max_body, raw).await;
        }
        let server_name =
            ServerName::try_from(target.host.clone()).map_err(|e| VerifyError::InvalidUrl {
                url: url.to_owned(),
                reason: format!("the host is neither a DNS name nor an IP address: {e}"),
            })?;
        let tls = TlsConnector::from(self.tls.clone())
            .connect(server_name, tcp)
            .await
            .map_err(|e| VerifyError::TlsHandshake {
                url: url.to_owned(),
                reason: e.to_string(),
            })?;
        send(url, tls, request, self.max_body, raw).await
    }
}

/// A whole HTTP answer, whatever its status (see [`HttpsFetcher::send`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawResponse {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-case, in order.
    pub headers: Vec<(String, String)>,
    /// The body (at most the fetcher's `max_body`).
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The raw answer, and the checked form `get`/`post_form` return.
type Answer = (RawResponse, Result<Fetched, VerifyError>);

/// Sends `request` on `io`, driving the connection while reading the response.
async fn send<IO>(
    url: &str,
    io: IO,
    request: Request<Full<Bytes>>,
    max_body: usize,
    raw: bool,
) -> Result<Answer, VerifyError>
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| transport_error(url, &e))?;
    let work = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| transport_error(url, &e))?;
        read_response(url, response, max_body, raw).await
    };
    let mut conn = std::pin::pin!(conn);
    let mut work = std::pin::pin!(work);
    let mut conn_done = false;
    loop {
        tokio::select! {
            result = &mut work => return result,
            ended = &mut conn, if !conn_done => {
                conn_done = true;
                if let Err(e) = ended {
                    tracing::debug!(%url, error = %error_chain(&e), "HTTP client connection ended with an error");
                }
            }
        }
    }
}

async fn read_response(
    url: &str,
    response: hyper::Response<hyper::body::Incoming>,
    max_body: usize,
    raw: bool,
) -> Result<Answer, VerifyError> {
    let (parts, mut body) = response.into_parts();
    let status = parts.status.as_u16();
    // In raw mode every answer is read like a success.
    let success = parts.status.is_success() || raw;
    // An error answer only needs its first bytes (for the message).
    let limit = if success {
        max_body
    } else {
        ERROR_BODY_EXCERPT
    };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if success && declared.is_some_and(|len| len > max_body as u64) {
        return Err(too_large(url, max_body));
    }
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| transport_error(url, &e))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        if bytes.len() + data.len() > limit {
            if success {
                return Err(too_large(url, max_body));
            }
            let room = limit - bytes.len();
            bytes.extend_from_slice(&data[..room]);
            break;
        }
        bytes.extend_from_slice(&data);
    }
    let raw_response = RawResponse {
        status,
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: Vec::new(),
    };
    let checked = if parts.status.is_success() {
        Ok(Fetched {
            status,
            content_type: parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            max_age: cache_max_age(&parts.headers),
            body: if raw { Vec::new() } else { bytes.clone() },
        })
    } else {
        Err(VerifyError::HttpStatus {
            url: url.to_owned(),
            status,
            body: excerpt(&bytes[..bytes.len().min(ERROR_BODY_EXCERPT)]),
        })
    };
    Ok((
        RawResponse {
            body: bytes,
            ..raw_response
        },
        checked,
    ))
}

/// Where a URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) tls: bool,
    /// Host without IPv6 brackets (for connecting and SNI).
    pub(crate) host: String,
    pub(crate) port: u16,
    /// `host[:port]` as in the URL (for the `Host` header).
    pub(crate) authority: String,
    pub(crate) path_and_query: String,
}

impl Target {
    pub(crate) fn parse(url: &str, allow_plain_http: bool) -> Result<Target, VerifyError> {
        let invalid = |reason: &str| VerifyError::InvalidUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: Uri = url.parse().map_err(|_| {
            invalid("it is not a valid absolute URL; give it as https://host[:port]/path")
        })?;
        let tls = match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("https") => true,
            Some(s) if s.eq_ignore_ascii_case("http") => {
                if !allow_plain_http {
                    return Err(invalid(
                        "plain http:// is refused because keys, tokens and client secrets must travel over TLS; use the https:// URL of the server",
                    ));
                }
                false
            }
            _ => {
                return Err(invalid(
                    "only https:// URLs can be fetched; give it as https://host[:port]/path",
                ));
            }
        };
        let authority = uri
            .authority()
            .ok_or_else(|| invalid("it has no host; give it as https://host[:port]/path"))?;
        if authority.as_str().contains('@') {
            return Err(invalid(
                "credentials in the URL (user@host) are refused; pass them as basic_auth instead",
            ));
        }
        let host = authority.host();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() {
            return Err(invalid(
                "it has an empty host; give it as https://host[:port]/path",
            ));
        }
        if host.starts_with('[') || (host.contains(':') && host.parse::<IpAddr>().is_err()) {
            return Err(invalid("its host is not a valid IPv6 address"));
        }
        let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let path_and_query = uri
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .to_owned();
        let path_and_query = if path_and_query.is_empty() {
            "/".to_owned()
        } else {
            path_and_query
        };
        Ok(Target {
            tls,
            host: host.to_owned(),
            port,
            authority: authority.as_str().to_owned(),
            path_and_query,
        })
    }
}

/// `application/x-www-form-urlencoded` encoding of one name or value (the
/// WHATWG URL standard's byte serializer): ASCII alphanumerics and `*-._` stay,
/// space becomes `+`, every other byte `%XX`.
pub(crate) fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0x0f)]));
            }
        }
    }
    out
}

/// `name=value&name=value` with [`form_encode`]d parts.
pub(crate) fn encode_form(form: &[(&str, &str)]) -> String {
    form.iter()
        .map(|(name, value)| format!("{}={}", form_encode(name), form_encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Caching lifetime from `Cache-Control`: `no-store`/`no-cache` → 0, else `max-age`.
pub(crate) fn cache_max_age(headers: &HeaderMap) -> Option<u64> {
    let mut max_age = None;
    for value in headers.get_all(header::CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',') {
            let directive = directive.trim();
            let (name, arg) = match directive.split_once('=') {
                Some((name, arg)) => (name.trim(), Some(arg.trim().trim_matches('"'))),
                None => (directive, None),
            };
            if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
                return Some(0);
            }
            if name.eq_ignore_ascii_case("max-age")
                && let Some(secs) = arg.and_then(|a| a.parse::<u64>().ok())
            {
                max_age = Some(max_age.map_or(secs, |m: u64| m.min(secs)));
            }
        }
    }
    max_age
}

fn header_value(url: &str, name: &str, value: &str) -> Result<HeaderValue, VerifyError> {
    HeaderValue::from_str(value).map_err(|_| {
        request_error(
            url,
            format!("the {name} header value contains characters not allowed in HTTP headers"),
        )
    })
}

fn request_error(url: &str, reason: String) -> VerifyError {
    VerifyError::HttpRequest {
        url: url.to_owned(),
        reason,
    }
}

fn too_large(url: &str, limit: usize) -> VerifyError {
    VerifyError::BodyTooLarge {
        url: url.to_owned(),
        limit,
    }
}

/// A hyper failure; a TLS alert from the server (which under TLS 1.3 arrives
/// after the client's side of the handshake, e.g. for a refused client
/// certificate) becomes [`VerifyError::TlsHandshake`].
fn transport_error(url: &str, e: &hyper::Error) -> VerifyError {
    let mut source: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && let Some(tls) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>())
        {
            return VerifyError::TlsHandshake {
                url: url.to_owned(),
                reason: tls.to_string(),
            };
        }
        source = err.source();
    }
    request_error(url, error_chain(e))
}

/// `e: source: source ...` on one line.
fn error_chain(e: &(dyn StdError + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(err) = source {
        let next = err.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = err.source();
    }
    text
}

/// The start of an error body as printable text (control characters dropped).
fn excerpt(body: &[u8]) -> String {
    String::from_utf8_lossy(body)
        .chars()
        .filter(|c| !c.is_control() || *c == ' ')
        .take(ERROR_BODY_EXCERPT)
        .collect::<String>()
        .trim()
        .to_owned()
}
