//! A keep-alive HTTP/1.1 client for the load, over TCP or TLS (with a client
//! certificate for mutual TLS): one connection carries one request at a
//! time, and many requests one after the other.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::header;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::rustls::pki_types::ServerName;

/// Largest answer body read (certificates and chains are a few KiB).
const MAX_ANSWER: usize = 256 * 1024;
/// Deadline of one exchange (connecting included).
const TIMEOUT: Duration = Duration::from_secs(60);

/// Where requests go: an address, and the TLS client configuration (server
/// trust and, for mutual TLS, the client certificate) unless plain HTTP.
#[derive(Clone)]
pub struct Target {
    /// The server's address (its IP is the TLS server name).
    pub addr: SocketAddr,
    /// `None`: plain HTTP.
    pub tls: Option<Arc<ClientConfig>>,
}

/// An answer: the status, `Retry-After` if any, the body.
pub struct Answer {
    /// HTTP status code.
    pub status: u16,
    /// The `Retry-After` header.
    pub retry_after: Option<String>,
    /// The whole body (at most 256 KiB).
    pub body: Bytes,
}

/// One open connection.
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
    driver: JoinHandle<()>,
    authority: String,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

impl Conn {
    /// Connects (TCP, then the TLS handshake when `target.tls` is set).
    pub async fn open(target: &Target) -> anyhow::Result<Conn> {
        tokio::time::timeout(TIMEOUT, Self::open_now(target))
            .await
            .with_context(|| format!("connecting to {} timed out", target.addr))?
    }

    async fn open_now(target: &Target) -> anyhow::Result<Conn> {
        let tcp = TcpStream::connect(target.addr)
            .await
            .with_context(|| format!("connecting to {}", target.addr))?;
        tcp.set_nodelay(true)?;
        let authority = target.addr.to_string();
        match &target.tls {
            None => Self::handshake(tcp, authority).await,
            Some(config) => {
                let name = ServerName::from(target.addr.ip());
                let tls = TlsConnector::from(Arc::clone(config))
                    .connect(name, tcp)
                    .await
                    .with_context(|| format!("TLS handshake with {}", target.addr))?;
                Self::handshake(tls, authority).await
            }
        }
    }

    async fn handshake<IO>(io: IO, authority: String) -> anyhow::Result<Conn>
    where
        IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn {
            sender,
            driver,
            authority,
        })
    }

    /// `POST path` with `body` of `content_type`; the connection stays open.
    pub async fn post(
        &mut self,
        path: &str,
        content_type: &str,
        body: Bytes,
    ) -> anyhow::Result<Answer> {
        self.send(hyper::Method::POST, path, Some(content_type), body)
            .await
    }

    /// `GET path`.
    pub async fn get(&mut self, path: &str) -> anyhow::Result<Answer> {
        self.send(hyper::Method::GET, path, None, Bytes::new())
            .await
    }

    async fn send(
        &mut self,
        method: hyper::Method,
        path: &str,
        content_type: Option<&str>,
        body: Bytes,
    ) -> anyhow::Result<Answer> {
        tokio::time::timeout(TIMEOUT, self.send_now(method, path, content_type, body))
            .await
            .with_context(|| format!("{path}: no answer within {TIMEOUT:?}"))?
    }

    async fn send_now(
        &mut self,
        method: hyper::Method,
        path: &str,
        content_type: Option<&str>,
        body: Bytes,
    ) -> anyhow::Result<Answer> {
        self.sender.ready().await.context("the connection closed")?;
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, self.authority.as_str());
        if let Some(ct) = content_type {
            request = request.header(header::CONTENT_TYPE, ct);
        }
        let response = self
            .sender
            .send_request(request.body(Full::new(body))?)
            .await
            .with_context(|| format!("sending {path}"))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = Limited::new(response.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| anyhow::anyhow!("reading the answer to {path}: {e}"))?
            .to_bytes();
        Ok(Answer {
            status,
            retry_after,
            body,
        })
    }
}

/// The start of a body as one line of text (for refusal messages).
pub fn excerpt(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(300)])
        .trim()
        .replace('\n', " ")
}
