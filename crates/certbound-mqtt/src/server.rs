//! The tokio shell: TCP accept, TLS with client certificates, one task per
//! connection driving a [`Session`], and the shared [`Hub`].

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use tokio::io::{AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;
use tracing::{Instrument as _, Span, debug, field, info, info_span, warn};

use crate::hub::{Hub, HubLimits, RetainedLimits};
use crate::identity::{Authorizer, Identity, PeerCert};
use crate::router::ConnId;
use crate::session::{AdmitRequest, CloseReason, Event, Message, Session, SessionConfig};
use crate::stats::{Counters, MqttStats, bump};
use crate::{MqttError, MqttServerConfig, tls};

/// QoS 1 messages in flight to one client before further ones wait in its queue.
/// (With `OUTPUT_HIGH_WATER`, `READ_CHUNK` and the bounded outgoing queue this
/// caps the work one connection can have in flight: input is not read while
/// its output waits, and routing never blocks.)
const MAX_INFLIGHT: usize = 256;
/// Stop reading from a client (and taking its deliveries) while this much
/// output waits for it.
const OUTPUT_HIGH_WATER: usize = 256 * 1024;
/// Room made in a connection's input buffer before a read. An idle session
/// keeps no more than this (a buffer grown by a burst is dropped once it is
/// empty): buffers are most of what a held session costs (BENCHMARKS.md).
const READ_CHUNK: usize = 2 * 1024;
/// An empty input or output buffer larger than this is released.
const KEEP_BUFFER: usize = 16 * 1024;
/// Most queued messages handed to one session per turn.
const DELIVERY_BATCH: usize = 64;
/// How long the last bytes (a refusing CONNACK, say) may take to go out.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// How long `shutdown` waits for connections to close before aborting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// QoS 2 messages a client may have unreleased (our Receive Maximum).
const RECEIVE_MAXIMUM: u16 = 64;
/// Topic aliases a client may set (our Topic Alias Maximum).
const TOPIC_ALIAS_MAX: u16 = 32;
/// How often stored sessions and delayed wills are looked at.
const HOUSEKEEPING: Duration = Duration::from_millis(200);

/// State shared by the accept loop, the connections and [`MqttServer`].
#[derive(Debug)]
struct Shared {
    hub: Mutex<Hub>,
    counters: Counters,
    next_conn: AtomicU64,
}

impl Shared {
    fn hub(&self) -> MutexGuard<'_, Hub> {
        self.hub.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Routes an authorised message `publisher` sent.
    fn route(&self, message: &Message, publisher: ConnId) {
        self.hub().route(message, publisher, Instant::now());
    }

    fn stats(&self) -> MqttStats {
        let counts = self.hub().counts();
        self.counters.snapshot(&counts)
    }
}

/// Everything a connection task needs.
struct Context<A> {
    shared: Arc<Shared>,
    authorizer: Arc<A>,
    acceptor: TlsAcceptor,
    session: SessionConfig,
    outgoing_queue: usize,
    max_clients: usize,
    max_connections_per_device: usize,
    max_connections_per_service: usize,
}

impl<A> Context<A> {
    /// The connection cap of `who`'s kind of identity.
    fn connection_cap(&self, who: &Identity) -> usize {
        match who {
            Identity::Service(_) => self.max_connections_per_service,
            Identity::Device(_) | Identity::Claim(_) => self.max_connections_per_device,
        }
    }
}

/// A running MQTT 3.1.1 server (see the crate documentation).
///
/// Dropping it stops accepting and closes every connection in the
/// background; [`MqttServer::shutdown`] does the same and waits for it.
#[derive(Debug)]
pub struct MqttServer {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// A cloneable handle to a running [`MqttServer`]; it does not keep the
/// server running.
#[derive(Debug, Clone)]
pub struct MqttServerHandle {
    shared: Arc<Shared>,
}

impl MqttServerHandle {
    /// See [`MqttServer::disconnect`].
    pub fn disconnect(&self, who: &Identity) -> usize {
        self.shared.hub().disconnect_identity(who)
    }

    /// See [`MqttServer::disconnect_certificate`].
    pub fn disconnect_certificate(&self, thumbprint: &[u8; 32]) -> usize {
        self.shared.hub().disconnect_certificate(thumbprint)
    }

    /// See [`MqttServer::disconnect_token`].
    pub fn disconnect_token(&self, token_id: &[u8]) -> usize {
        self.shared.hub().disconnect_token(token_id)
    }

    /// See [`MqttServer::stats`].
    pub fn stats(&self) -> MqttStats {
        self.shared.stats()
    }
}

impl MqttServer {
    /// Binds `config.listen` and starts serving; `authorizer` maps client
    /// certificates to identities and decides what they may publish and
    /// subscribe to. Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// [`MqttError::ServerCert`], [`MqttError::ServerKey`],
    /// [`MqttError::ClientCa`] for unusable PEM, [`MqttError::Config`] for
    /// out-of-range limits, [`MqttError::Bind`] when the socket cannot be
    /// opened.
    pub async fn bind<A: Authorizer>(
        config: MqttServerConfig,
        authorizer: Arc<A>,
    ) -> Result<MqttServer, MqttError> {
        config.validate()?;
        let tls = tls::server_config(
            &config.server_cert_chain_pem,
            &config.server_key_pem,
            &config.client_ca_pem,
        )?;
        let bind_error = |source| MqttError::Bind {
            addr: config.listen,
            source,
        };
        let listener = TcpListener::bind(config.listen).await.map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        let limits = HubLimits {
            offline_queue: config.offline_queue.min(config.outgoing_queue),
            parked_per_identity: config.max_stored_sessions_per_identity,
            parked_total: config.max_clients,
            retained: RetainedLimits {
                count: config.max_retained_messages,
                bytes: config.max_retained_bytes,
            },
        };
        let shared = Arc::new(Shared {
            hub: Mutex::new(Hub::with_limits(limits)),
            counters: Counters::default(),
            next_conn: AtomicU64::new(1),
        });
        let context = Arc::new(Context {
            shared: Arc::clone(&shared),
            authorizer,
            acceptor: TlsAcceptor::from(tls),
            session: SessionConfig {
                max_packet_size: config.max_packet_size,
                connect_timeout: config.connect_timeout,
                max_inflight: MAX_INFLIGHT,
                max_subscriptions: config.max_subscriptions_per_session,
                receive_maximum: RECEIVE_MAXIMUM,
                topic_alias_max: TOPIC_ALIAS_MAX,
                max_keep_alive: config.max_keep_alive,
                max_session_expiry: config.max_session_expiry,
            },
            outgoing_queue: config.outgoing_queue,
            max_clients: config.max_clients,
            max_connections_per_device: config.max_connections_per_device,
            max_connections_per_service: config.max_connections_per_service,
        });
        let (shutdown, shutdown_rx) = watch::channel(false);
        let task = tokio::spawn(
            accept_loop(listener, context, shutdown_rx)
                .instrument(info_span!("mqtt_server", listen = %local_addr)),
        );
        info!(%local_addr, "MQTT server listening (mTLS)");
        Ok(MqttServer {
            local_addr,
            shared,
            shutdown,
            task,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> MqttStats {
        self.shared.stats()
    }

    /// Drops every live connection whose session authenticated with the
    /// access token `token_id` (its `cti`; used when a token is revoked).
    /// Returns how many were closed.
    pub fn disconnect_token(&self, token_id: &[u8]) -> usize {
        self.shared.hub().disconnect_token(token_id)
    }

    /// Drops every live connection of this identity (used when a device is
    /// revoked). Returns how many were closed. Does not stop it from
    /// connecting again: make the authorizer refuse it first.
    pub fn disconnect(&self, who: &Identity) -> usize {
        self.shared.hub().disconnect_identity(who)
    }

    /// Drops every live connection made with the certificate whose SHA-256
    /// is `thumbprint` (used when one certificate is revoked while its
    /// device stays active). Returns how many were closed. Make the
    /// authorizer refuse the certificate first.
    pub fn disconnect_certificate(&self, thumbprint: &[u8; 32]) -> usize {
        self.shared.hub().disconnect_certificate(thumbprint)
    }

    /// A cheap, cloneable handle for other tasks (disconnects, stats).
    pub fn handle(&self) -> MqttServerHandle {
        MqttServerHandle {
            shared: self.shared.clone(),
        }
    }

    /// Stops accepting, closes every connection and waits (up to a few
    /// seconds) for their tasks to end.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        if let Err(e) = self.task.await {
            warn!(error = %e, "MQTT accept loop ended abnormally");
        }
        info!(local_addr = %self.local_addr, "MQTT server stopped");
    }
}

async fn accept_loop<A: Authorizer>(
    listener: TcpListener,
    context: Arc<Context<A>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tasks = JoinSet::new();
    let mut housekeeping = tokio::time::interval(HOUSEKEEPING);
    housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            // Also ends when the MqttServer was dropped (sender gone).
            _ = shutdown.changed() => break,
            _ = housekeeping.tick() => {
                let now = Instant::now();
                let mut hub = context.shared.hub();
                if hub.next_deadline().is_some_and(|t| t <= now) {
                    hub.tick(now);
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    // Nagle + delayed ACK stall every mTLS handshake by ~40 ms.
                    if let Err(e) = tcp.set_nodelay(true) {
                        debug!(%peer, error = %e, "cannot set TCP_NODELAY");
                    }
                    let live = &context.shared.counters.live;
                    if live.load(Ordering::Relaxed) >= context.max_clients {
                        warn!(%peer, max = context.max_clients, "too many connections; refusing");
                        bump(&context.shared.counters.refused_over_capacity, 1);
                        continue;
                    }
                    // Counted from here; the guard uncounts however the task ends
                    // (even when it is aborted before it first runs).
                    live.fetch_add(1, Ordering::Relaxed);
                    let guard = ConnGuard {
                        shared: Arc::clone(&context.shared),
                        conn: context.shared.next_conn.fetch_add(1, Ordering::Relaxed),
                        connected: false,
                    };
                    let span = info_span!("mqtt", %peer, id = field::Empty);
                    let task = connection(tcp, guard, Arc::clone(&context), shutdown.clone(), span.clone());
                    tasks.spawn(task.instrument(span));
                }
                Err(e) => {
                    // Typically out of file descriptors: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                if let Err(e) = done {
                    warn!(error = %e, "connection task failed");
                }
            }
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.shutdown().await;
}

/// Releases a connection's resources however its task ends.
struct ConnGuard {
    shared: Arc<Shared>,
    conn: ConnId,
    connected: bool,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.shared.hub().unregister(self.conn);
        let counters = &self.shared.counters;
        counters.live.fetch_sub(1, Ordering::Relaxed);
        if self.connected {
            counters.connected.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// One client connection, from TCP accept to close.
async fn connection<A: Authorizer>(
    tcp: TcpStream,
    mut guard: ConnGuard,
    context: Arc<Context<A>>,
    mut shutdown: watch::Receiver<bool>,
    span: Span,
) {
    let shared = Arc::clone(&context.shared);
    let conn = guard.conn;
    let started = Instant::now();
    let deadline = tokio::time::Instant::from_std(started + context.session.connect_timeout);

    let tls = match tokio::time::timeout_at(deadline, context.acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            bump(&shared.counters.tls_failures, 1);
            info!(error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            bump(&shared.counters.tls_failures, 1);
            info!("TLS handshake timed out");
            return;
        }
    };
    let peer_cert = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .cloned();
    let facts = peer_cert.as_deref().map(PeerCert::from_der);
    let auth = match (&peer_cert, &facts) {
        (Some(_), Some(Err(reason))) => Err(reason.clone()),
        (Some(der), _) => tokio::time::timeout_at(deadline, context.authorizer.authenticate(der))
            .await
            .unwrap_or_else(|_| Err("authentication timed out".to_owned())),
        (None, _) => Err("no client certificate".to_owned()),
    };
    let facts = facts.and_then(Result::ok);

    let (tx, mut rx) = mpsc::channel(context.outgoing_queue);
    let kill = Arc::new(Notify::new());
    let mut session = Session::new(auth.clone(), context.session, started)
        .with_expiry(facts.as_ref().map(|f| expiry_instant(f.not_after)))
        .with_peer_cert(peer_cert.as_deref().map(Arc::from), conn);
    if let Ok(identity) = &auth {
        span.record("id", field::debug(identity));
        shared.hub().register(
            conn,
            identity.clone(),
            facts.as_ref().map(|f| f.thumbprint),
            tx,
            Arc::clone(&kill),
        );
        let cap = context.connection_cap(identity);
        let hub_ref = Arc::clone(&shared);
        session = session.with_admission(Box::new(move |request: &AdmitRequest<'_>| {
            hub_ref.hub().admit(
                conn,
                request.client_id,
                request.clean_start,
                request.persistent,
                cap,
                Instant::now(),
            )
        }));
    }
    let (mut reader, mut writer) = tokio::io::split(tls);
    let mut input = BytesMut::new();
    let mut output = BytesMut::new();
    let mut need_flush = false;

    loop {
        let routed = apply_events(&mut session, &shared, &mut guard);
        output.unsplit(session.take_transmit());
        if session.is_closed() {
            break;
        }
        if routed > 0 {
            // Let the subscribers drain their queues before the next burst.
            tokio::task::yield_now().await;
        }
        let timeout = session.poll_timeout();
        let room = output.len() < OUTPUT_HIGH_WATER;
        if input.capacity() - input.len() < READ_CHUNK / 4 {
            input.reserve(READ_CHUNK);
        }
        tokio::select! {
            biased;
            () = kill.notified() => {
                let why = shared.hub().kill_reason(conn).unwrap_or("dropped by the server");
                session.abort(CloseReason::Server(why));
            }
            _ = shutdown.changed() => session.abort(CloseReason::Server("server shutdown")),
            written = write_some(&mut writer, &mut output), if !output.is_empty() || need_flush => {
                match written {
                    Ok(flush_pending) => {
                        need_flush = flush_pending;
                        if output.is_empty() && output.capacity() > KEEP_BUFFER {
                            output = BytesMut::new();
                        }
                    }
                    Err(e) => {
                        debug!(error = %e, "write failed");
                        session.abort(CloseReason::ConnectionLost);
                    }
                }
            }
            // Cancel safe: bytes enter `input` only when read.
            read = reader.read_buf(&mut input), if room => match read {
                Ok(0) => {
                    debug!("peer closed the connection");
                    session.abort(CloseReason::ConnectionLost);
                }
                Ok(_) => {
                    session.handle_input(&mut input, Instant::now(), &*context.authorizer);
                    if input.is_empty() && input.capacity() > KEEP_BUFFER {
                        input = BytesMut::new();
                    }
                }
                Err(e) => {
                    debug!(error = %e, "read failed");
                    session.abort(CloseReason::ConnectionLost);
                }
            },
            Some(message) = rx.recv(), if room && session.can_deliver() => {
                let now = Instant::now();
                session.deliver(&message, now);
                // Take what else is queued in one go (bounded, to stay fair).
                for _ in 1..DELIVERY_BATCH {
                    if !session.can_deliver() {
                        break;
                    }
                    match rx.try_recv() {
                        Ok(message) => session.deliver(&message, now),
                        Err(_) => break,
                    }
                }
            }
            () = sleep_until(timeout), if timeout.is_some() => session.handle_timeout(Instant::now()),
        }
    }

    // The last bytes (a refusing CONNACK) go out before the close_notify.
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        writer.write_all_buf(&mut output).await?;
        writer.shutdown().await
    })
    .await;
    // Messages still queued for this connection belong to its session.
    let will = session.take_will();
    let (expiry, snapshot) = session.snapshot();
    let mut queued = Vec::new();
    if expiry > 0 {
        rx.close();
        while let Ok(message) = rx.try_recv() {
            queued.push(message);
        }
    }
    let now = Instant::now();
    let due = shared.hub().park(conn, expiry, snapshot, queued, will, now);
    for message in due {
        debug!(topic = %message.topic, "publishing the will message");
        shared.route(&message, conn);
    }
}

/// Hands the session's events to the hub and the counters. Returns how
/// many messages were routed.
fn apply_events(session: &mut Session, shared: &Shared, guard: &mut ConnGuard) -> usize {
    let conn = guard.conn;
    let mut routed = 0;
    while let Some(event) = session.poll_event() {
        match event {
            Event::Connected { .. } => {
                // Admitted (and any takeover done) by the session's admission hook.
                shared.counters.connected.fetch_add(1, Ordering::Relaxed);
                guard.connected = true;
            }
            Event::Subscribe(filters) => shared.hub().subscribe(conn, &filters, Instant::now()),
            Event::Unsubscribe(filters) => shared.hub().unsubscribe(conn, &filters),
            Event::Publish(message) => {
                shared.route(&message, conn);
                routed += 1;
            }
            Event::TokenAccepted(id) => {
                bump(&shared.counters.tokens_accepted, 1);
                shared.hub().set_token(conn, id);
            }
            Event::Closed(CloseReason::TokenExpired) => {
                bump(&shared.counters.expired_tokens, 1);
            }
            Event::PublishRefused(_) => bump(&shared.counters.publish_refusals, 1),
            Event::SubscribeRefused(_) => bump(&shared.counters.subscribe_refusals, 1),
            Event::AuthRefused(_) => bump(&shared.counters.auth_failures, 1),
            Event::Closed(CloseReason::ConnectionCap(_)) => {
                bump(&shared.counters.refused_over_identity_cap, 1);
            }
            Event::Closed(CloseReason::CertificateExpired) => {
                bump(&shared.counters.expired_certificates, 1);
            }
            Event::Closed(CloseReason::InvalidTopic(_)) => {
                bump(&shared.counters.invalid_topics, 1);
            }
            Event::Closed(reason) => debug!(?reason, "session closed"),
        }
    }
    routed
}

/// Writes some of `output`, or flushes once it is empty. Returns whether a
/// flush is still due. Cancel-safe: bytes leave `output` only when written.
async fn write_some<W: AsyncWrite + Unpin>(
    writer: &mut W,
    output: &mut BytesMut,
) -> io::Result<bool> {
    if output.is_empty() {
        writer.flush().await?;
        return Ok(false);
    }
    if writer.write_buf(output).await? == 0 {
        return Err(io::ErrorKind::WriteZero.into());
    }
    Ok(true)
}

/// The instant just after `not_after` (Unix seconds; a certificate is
/// valid through its notAfter second).
fn expiry_instant(not_after: u64) -> Instant {
    let end = UNIX_EPOCH + Duration::from_secs(not_after.saturating_add(1));
    let left = end
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    Instant::now() + left
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
        None => std::future::pending().await,
    }
}
