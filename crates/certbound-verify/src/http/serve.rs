//! Serving an axum [`Router`] over TLS, with the client certificate and the
//! remote address of each connection handed to the handlers.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, FromRequestParts, OptionalFromRequestParts};
use axum::http::StatusCode;
use axum::http::request::Parts;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::{JoinError, JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use crate::VerifyError;

/// A client that has not finished the TLS handshake within this time is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Default [`ServeLimits::max_connections`].
pub const MAX_CONNECTIONS: usize = 1024;

/// Default [`ServeLimits::body_timeout`].
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// After shutdown is requested, open connections get this long to finish
/// their in-flight requests before they are cut.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A client must send a request's headers within this time (also between
/// keep-alive requests), or its connection is closed.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a connection whose handshake failed is drained before it is closed.
const LINGER_TIME: Duration = Duration::from_secs(1);

/// How many bytes a connection whose handshake failed may still send.
const LINGER_BYTES: usize = 64 * 1024;

/// After a failed `accept` (e.g. out of file descriptors) wait this long before the next.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Bounds on what one listener gives its clients: a client (or many) that
/// opens connections and sends nothing, trickles a body, or idles between
/// keep-alive requests is cut off; connections beyond the cap are closed at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    /// Most connections open at once (handshaking, busy or idle); one more
    /// is accepted and closed at once. Default [`MAX_CONNECTIONS`].
    pub max_connections: usize,
    /// Time to finish the TLS handshake. Default [`HANDSHAKE_TIMEOUT`].
    pub handshake_timeout: Duration,
    /// Time to send a request's headers, and the most a keep-alive
    /// connection may idle between requests. Default [`HEADER_READ_TIMEOUT`].
    pub idle_timeout: Duration,
    /// Time to send a whole request body, counted from when its headers
    /// arrived; a slower body fails with [`BodyTimeout`] (the handler's body
    /// read errors) and the connection is closed. Default [`BODY_TIMEOUT`].
    pub body_timeout: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            max_connections: MAX_CONNECTIONS,
            handshake_timeout: HANDSHAKE_TIMEOUT,
            idle_timeout: HEADER_READ_TIMEOUT,
            body_timeout: BODY_TIMEOUT,
        }
    }
}

/// The error a request body yields when it did not arrive within
/// [`ServeLimits::body_timeout`]; handlers can find it in the source chain of
/// a body-read error to answer 408.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyTimeout(pub Duration);

impl std::fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the request body did not arrive within {} s",
            self.0.as_secs_f64()
        )
    }
}

impl std::error::Error for BodyTimeout {}

impl BodyTimeout {
    /// Whether `error` (or one of its sources) is a [`BodyTimeout`].
    pub fn is_cause_of(error: &(dyn std::error::Error + 'static)) -> bool {
        let mut next = Some(error);
        while let Some(e) = next {
            if e.is::<BodyTimeout>() {
                return true;
            }
            next = e.source();
        }
        false
    }
}

/// A request body that fails with [`BodyTimeout`] once its deadline passes.
struct DeadlineBody {
    inner: Incoming,
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
    limit: Duration,
}

impl hyper::body::Body for DeadlineBody {
    type Data = axum::body::Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        use std::task::Poll;
        let this = self.get_mut();
        match std::pin::Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|f| f.map_err(Into::into))),
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimeout(this.limit))))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// The certificate chain the TLS client presented and the server verified:
/// leaf first, each certificate DER.
///
/// Inserted as a request extension by [`serve_tls`] for every request of a
/// connection whose client showed a certificate; absent otherwise. It is also
/// an axum extractor: `PeerCertificates` answers `401` when absent,
/// `Option<PeerCertificates>` never rejects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCertificates(pub Arc<Vec<Vec<u8>>>);

impl PeerCertificates {
    /// The client's own (leaf) certificate, DER.
    pub fn leaf(&self) -> Option<&[u8]> {
        self.0.first().map(Vec::as_slice)
    }
}

/// The TCP peer address of the connection a request arrived on.
///
/// Inserted as a request extension by [`serve_tls`] for every request (as is
/// axum's `ConnectInfo<SocketAddr>`, so either extractor works).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RemoteAddr(pub SocketAddr);

impl<S: Send + Sync> FromRequestParts<S> for PeerCertificates {
    type Rejection = (StatusCode, &'static str);

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<PeerCertificates>().cloned().ok_or((
            StatusCode::UNAUTHORIZED,
            "a client certificate is required: connect with mutual TLS, presenting a certificate issued by the certbound CA\n",
        ))
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for PeerCertificates {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<PeerCertificates>().cloned())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RemoteAddr {
    type Rejection = (StatusCode, &'static str);

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<RemoteAddr>().copied().ok_or((
            StatusCode::INTERNAL_SERVER_ERROR,
            "the remote address is unknown: serve this router with certbound_verify::http::serve_tls\n",
        ))
    }
}

/// Serves `app` over TLS on `listener` until `shutdown` resolves.
///
/// Each accepted connection runs in its own task: the TLS handshake (bounded
/// by [`HANDSHAKE_TIMEOUT`]), then HTTP/1.1 with keep-alive. A client that
/// stalls or fails the handshake (wrong CA, no certificate where one is
/// required, not TLS at all) is logged at debug level and dropped; it never
/// affects other connections or the server. Every request carries the
/// [`RemoteAddr`] and, when the client presented a certificate, the
/// [`PeerCertificates`] extensions.
///
/// When `shutdown` resolves the listener is closed, idle connections are
/// closed, and in-flight requests get [`SHUTDOWN_GRACE`] to finish before the
/// remaining connections are cut; then this returns.
///
/// # Errors
/// None at present: per-connection and `accept` failures are logged and the
/// loop goes on. The `Result` leaves room for fatal listener errors.
pub async fn serve_tls(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), VerifyError> {
    serve_tls_with(listener, tls, app, ServeLimits::default(), shutdown).await
}

/// [`serve_tls`] with explicit [`ServeLimits`].
///
/// # Errors
/// As for [`serve_tls`].
pub async fn serve_tls_with(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), VerifyError> {
    let local = listener.local_addr().ok();
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    tracing::debug!(addr = ?local, "serving HTTPS");
    let acceptor = TlsAcceptor::from(tls);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => match slots.clone().try_acquire_owned() {
                    Ok(slot) => {
                        let conn = connection(acceptor.clone(), tcp, peer, app.clone(), limits, stop_rx.clone());
                        tasks.spawn(async move {
                            conn.await;
                            drop(slot);
                        });
                    }
                    Err(_) => {
                        // Over the cap: closed at once (the client sees EOF),
                        // never queued; the server keeps serving the others.
                        tracing::debug!(%peer, max = limits.max_connections, "connection limit reached; connection closed");
                        drop(tcp);
                    }
                },
                Err(e) => {
                    tracing::warn!(addr = ?local, error = %e, "accepting a TCP connection failed; retrying");
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                    }
                }
            },
            Some(done) = tasks.join_next(), if !tasks.is_empty() => log_join(done),
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let open = tasks.len();
    let drain = async {
        while let Some(done) = tasks.join_next().await {
            log_join(done);
        }
    };
    if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
        tracing::debug!(
            addr = ?local,
            remaining = tasks.len(),
            "connections still busy after the shutdown grace period; closing them"
        );
        tasks.shutdown().await;
    }
    tracing::debug!(addr = ?local, connections_at_shutdown = open, "HTTPS server stopped");
    Ok(())
}

fn log_join(done: Result<(), JoinError>) {
    if let Err(e) = done
        && e.is_panic()
    {
        tracing::error!(error = %e, "an HTTPS connection task panicked");
    }
}

/// Closes a connection whose handshake failed so that the client reads the
/// TLS alert that explains why (e.g. `CertificateRequired`, `UnknownCA`)
/// instead of a TCP reset: half-close, then drain what the client still
/// sends (it may already have sent its first request) until it hangs up,
/// for at most [`LINGER_TIME`] and [`LINGER_BYTES`].
async fn linger_close(mut tcp: TcpStream) {
    if tcp.shutdown().await.is_err() {
        return;
    }
    let drain = async {
        let mut buf = [0u8; 4096];
        let mut total = 0usize;
        while let Ok(n @ 1..) = tcp.read(&mut buf).await {
            total += n;
            if total >= LINGER_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_TIME, drain).await;
}

/// Resolves once the server stops (or the accept loop is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// One connection: handshake, then HTTP/1.1 until the client leaves or the
/// server stops.
async fn connection(
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: ServeLimits,
    mut stop: watch::Receiver<bool>,
) {
    let handshake = tokio::time::timeout(
        limits.handshake_timeout,
        acceptor.accept(tcp).into_fallible(),
    );
    let tls = tokio::select! {
        done = handshake => match done {
            Ok(Ok(tls)) => tls,
            Ok(Err((e, tcp))) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed; connection dropped");
                tokio::select! {
                    () = linger_close(tcp) => {}
                    () = stopped(&mut stop) => {}
                }
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, timeout = ?limits.handshake_timeout, "TLS handshake timed out; connection dropped");
                return;
            }
        },
        () = stopped(&mut stop) => return,
    };
    let certs = tls
        .get_ref()
        .1
        .peer_certificates()
        .filter(|chain| !chain.is_empty())
        .map(|chain| {
            PeerCertificates(Arc::new(
                chain.iter().map(|c| c.as_ref().to_vec()).collect(),
            ))
        });
    tracing::debug!(%peer, client_cert = certs.is_some(), "TLS connection established");
    let body_timeout = limits.body_timeout;
    let service = app.map_request(move |req: axum::http::Request<Incoming>| {
        let (mut parts, body) = req.into_parts();
        let ext = &mut parts.extensions;
        ext.insert(RemoteAddr(peer));
        ext.insert(ConnectInfo(peer));
        if let Some(certs) = &certs {
            ext.insert(certs.clone());
        }
        let body = DeadlineBody {
            inner: body,
            deadline: Box::pin(tokio::time::sleep(body_timeout)),
            limit: body_timeout,
        };
        axum::http::Request::from_parts(parts, axum::body::Body::new(body))
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.idle_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(tls), TowerToHyperService::new(service));
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        done = conn.as_mut() => done,
        () = stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
    }
}

/// A running [`serve_tls`] server in a background task.
///
/// Dropping it without calling [`TlsServer::shutdown`] also stops the server
/// gracefully, in the background.
#[derive(Debug)]
pub struct TlsServer {
    local_addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), VerifyError>>,
}

impl TlsServer {
    /// Binds `addr` (port 0 picks a free port) and serves `app` over TLS in a
    /// new task of the current tokio runtime.
    ///
    /// # Errors
    /// [`VerifyError::Listen`] when the address cannot be bound or this is
    /// called outside a tokio runtime.
    pub fn start(
        addr: SocketAddr,
        tls: Arc<rustls::ServerConfig>,
        app: Router,
    ) -> Result<TlsServer, VerifyError> {
        Self::start_with(addr, tls, app, ServeLimits::default())
    }

    /// [`TlsServer::start`] with explicit [`ServeLimits`].
    ///
    /// # Errors
    /// As for [`TlsServer::start`].
    pub fn start_with(
        addr: SocketAddr,
        tls: Arc<rustls::ServerConfig>,
        app: Router,
        limits: ServeLimits,
    ) -> Result<TlsServer, VerifyError> {
        let listen_error = |reason: String| VerifyError::Listen {
            addr: addr.to_string(),
            reason,
        };
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(listen_error(
                "no tokio runtime is running; call TlsServer::start from within one".into(),
            ));
        }
        let std_listener =
            std::net::TcpListener::bind(addr).map_err(|e| listen_error(e.to_string()))?;
        std_listener
            .set_nonblocking(true)
            .map_err(|e| listen_error(e.to_string()))?;
        let listener =
            TcpListener::from_std(std_listener).map_err(|e| listen_error(e.to_string()))?;
        Self::from_listener_with(listener, tls, app, limits)
    }

    /// Serves `app` over TLS on an already bound `listener` in a new task of
    /// the current tokio runtime.
    ///
    /// # Errors
    /// [`VerifyError::Listen`] when the listener's address cannot be read or
    /// this is called outside a tokio runtime.
    pub fn from_listener(
        listener: TcpListener,
        tls: Arc<rustls::ServerConfig>,
        app: Router,
    ) -> Result<TlsServer, VerifyError> {
        Self::from_listener_with(listener, tls, app, ServeLimits::default())
    }

    /// [`TlsServer::from_listener`] with explicit [`ServeLimits`].
    ///
    /// # Errors
    /// As for [`TlsServer::from_listener`].
    pub fn from_listener_with(
        listener: TcpListener,
        tls: Arc<rustls::ServerConfig>,
        app: Router,
        limits: ServeLimits,
    ) -> Result<TlsServer, VerifyError> {
        let local_addr = listener.local_addr().map_err(|e| VerifyError::Listen {
            addr: "(bound listener)".into(),
            reason: e.to_string(),
        })?;
        let handle = tokio::runtime::Handle::try_current().map_err(|_| VerifyError::Listen {
            addr: local_addr.to_string(),
            reason: "no tokio runtime is running; start the server from within one".into(),
        })?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = handle.spawn(serve_tls_with(listener, tls, app, limits, async move {
            // A dropped sender (TlsServer dropped) stops the server too.
            let _ = stopped.await;
        }));
        Ok(TlsServer {
            local_addr,
            stop,
            task,
        })
    }

    /// The address the server listens on (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `https://<local address>`, for building request URLs in tests and tools.
    pub fn base_url(&self) -> String {
        format!("https://{}", self.local_addr)
    }

    /// Stops accepting, lets in-flight requests finish (at most
    /// [`SHUTDOWN_GRACE`]) and waits until the server task has ended.
    pub async fn shutdown(self) {
        let TlsServer {
            local_addr,
            stop,
            task,
        } = self;
        let _ = stop.send(());
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(addr = %local_addr, error = %e, "HTTPS server failed"),
            Err(e) => {
                tracing::error!(addr = %local_addr, error = %e, "HTTPS server task ended abnormally")
            }
        }
    }
}
