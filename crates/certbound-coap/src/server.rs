//! The tokio UDP shell around [`ServerCore`]: one receive loop, one task per
//! request (at most `max_in_flight` at once, decided by the core), responses
//! sent as the handler tasks finish.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, error};

use crate::server_core::{ExchangeId, ServerCore, Transmit};
use crate::{CoapError, Handler, Response, ResponseType};

/// Largest UDP datagram we accept (bigger ones are truncated by the OS and then
/// fail to parse or fail the size checks).
const RECV_BUFFER: usize = 65_535;

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest request body accepted, in bytes; larger Block1 transfers get
    /// 4.13 Request Entity Too Large with Size1. Default 64 KiB.
    pub max_body: usize,
    /// Preferred block size for Block1/Block2 (rounded down to a power of two
    /// in 16..=1024); a peer asking for smaller blocks gets them. Default 1024.
    pub block_size: usize,
    /// How long a received message id is remembered for deduplication
    /// (RFC 7252 EXCHANGE_LIFETIME, default 247 s).
    pub exchange_lifetime: Duration,
    /// How many message ids (with their cached responses) are remembered at
    /// most; the oldest are evicted first. A retransmission whose entry was
    /// evicted is processed again, so size it for the peak request rate times
    /// MAX_TRANSMIT_SPAN (45 s): the default, 65 536, covers about 1 450
    /// requests/s.
    pub dedup_capacity: usize,
    /// Bytes the deduplication cache may hold at most, counting 128 bytes
    /// plus the cached answer per message; the oldest are evicted first and
    /// an answer larger than the whole bound is not kept. Default 64 MiB.
    pub dedup_bytes: usize,
    /// Amplification limit (RFC 7252 §11.3): an answer to an address that has
    /// not echoed a fresh Echo option (RFC 9175) may be at most this many
    /// times the bytes it sent; larger answers become 4.01 Unauthorized with
    /// an Echo. 0 switches the limit off (not for networks where sources can
    /// be spoofed). Default 3.
    pub amplification_factor: usize,
    /// How long an Echo value stays acceptable after it was sent. Default 60 s.
    pub echo_lifetime: Duration,
    /// How long an address counts as verified after it echoed a fresh value
    /// (long enough for a whole Block2 transfer). Default 300 s.
    pub verified_lifetime: Duration,
    /// Most verified addresses remembered at once (oldest forgotten first;
    /// a forgotten address needs one more Echo round trip). Default 65 536.
    pub verified_capacity: usize,
    /// Most requests with the handler at once; more get 5.03 Service
    /// Unavailable with Max-Age 2 (CON) or are dropped (NON). Default 1 024.
    pub max_in_flight: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_body: 64 * 1024,
            block_size: 1024,
            exchange_lifetime: Duration::from_secs(247),
            dedup_capacity: 65_536,
            dedup_bytes: 64 * 1024 * 1024,
            amplification_factor: 3,
            echo_lifetime: Duration::from_secs(60),
            verified_lifetime: Duration::from_secs(300),
            verified_capacity: 65_536,
            max_in_flight: 1024,
        }
    }
}

/// Counters of a running server, for tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerStats {
    /// Datagrams received.
    pub received: u64,
    /// Datagrams dropped or reset because they did not parse or made no sense.
    pub malformed: u64,
    /// Duplicate requests answered from the cache or dropped while in progress.
    pub duplicates: u64,
    /// Empty CON messages (pings) answered with RST.
    pub pings: u64,
    /// Requests answered with an error without reaching the handler.
    pub rejected: u64,
    /// Requests handed to the handler.
    pub dispatched: u64,
    /// Answers replaced by 4.01 with an Echo option because they were too
    /// large for an unverified address.
    pub echo_challenges: u64,
    /// Requests whose fresh Echo verified their address.
    pub echo_verified: u64,
    /// Requests with an Echo that was stale, forged or made for another address.
    pub echo_refused: u64,
    /// Cached answers not replayed because a shorter datagram reused the
    /// message id of an unverified address.
    pub amplification_drops: u64,
    /// Requests refused (5.03, or dropped when NON) because `max_in_flight`
    /// requests were with the handler.
    pub overloaded: u64,
    /// Requests with the handler now (gauge).
    pub in_flight: u64,
    /// Messages in the deduplication cache now (gauge).
    pub dedup_entries: u64,
    /// Bytes counted in the deduplication cache now (gauge).
    pub dedup_bytes: u64,
    /// Verified addresses remembered now (gauge).
    pub verified_addresses: u64,
}

/// Reads the counters of a running [`Server`]; cheap to clone.
#[derive(Clone)]
pub struct StatsHandle(Arc<Mutex<ServerCore>>);

impl StatsHandle {
    /// The server's counters now.
    pub fn stats(&self) -> ServerStats {
        lock(&self.0).stats()
    }
}

impl std::fmt::Debug for StatsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("StatsHandle").field(&self.stats()).finish()
    }
}

/// A CoAP server on one UDP socket.
///
/// Dropping it stops the receive loop as well; [`Server::shutdown`] also
/// waits for the loop to end.
pub struct Server {
    local_addr: SocketAddr,
    core: Arc<Mutex<ServerCore>>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .finish()
    }
}

fn lock(core: &Mutex<ServerCore>) -> MutexGuard<'_, ServerCore> {
    core.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Server {
    /// Binds a UDP socket at `addr` (port 0 picks a free port) and starts serving.
    pub async fn bind<H: Handler>(
        addr: SocketAddr,
        handler: Arc<H>,
        config: ServerConfig,
    ) -> Result<Server, CoapError> {
        let socket = UdpSocket::bind(addr)
            .await
            .map_err(|e| CoapError::io("binding the CoAP server socket", e))?;
        let local_addr = socket
            .local_addr()
            .map_err(|e| CoapError::io("reading the CoAP server address", e))?;
        let core = Arc::new(Mutex::new(ServerCore::new(
            &config,
            rand::random(),
            rand::random(),
            Instant::now(),
        )));
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(run(socket, handler, Arc::clone(&core), stopped));
        debug!(%local_addr, "CoAP server listening");
        Ok(Server {
            local_addr,
            core,
            stop,
            task,
        })
    }

    /// The address the server is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Counters since the server started.
    pub fn stats(&self) -> ServerStats {
        lock(&self.core).stats()
    }

    /// A handle that reads [`Server::stats`] after the server moved elsewhere
    /// (metrics).
    pub fn stats_handle(&self) -> StatsHandle {
        StatsHandle(Arc::clone(&self.core))
    }

    /// Stops the receive loop, aborts handlers still running and waits for the loop to end.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        if let Err(e) = self.task.await {
            error!("CoAP server loop ended abnormally: {e}");
        }
    }
}

async fn send(socket: &UdpSocket, transmit: Option<Transmit>) {
    if let Some(t) = transmit
        && let Err(e) = socket.send_to(&t.bytes, t.peer).await
    {
        debug!(peer = %t.peer, "sending a CoAP response failed: {e}");
    }
}

async fn run<H: Handler>(
    socket: UdpSocket,
    handler: Arc<H>,
    core: Arc<Mutex<ServerCore>>,
    mut stopped: oneshot::Receiver<()>,
) {
    let socket = Arc::new(socket);
    let mut buf = vec![0u8; RECV_BUFFER];
    // A handler task completes its exchange and sends the answer itself:
    // the receive loop is one task, and routing every answer through it
    // made each one wait for that task's turn among all the handlers. The
    // loop only hears of a handler that panicked (and answers 5.00 for it).
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut exchanges: HashMap<tokio::task::Id, ExchangeId> = HashMap::new();
    loop {
        tokio::select! {
            biased;
            _ = &mut stopped => break,
            Some(joined) = tasks.join_next_with_id() => {
                match joined {
                    Ok((task, ())) => {
                        exchanges.remove(&task);
                    }
                    Err(e) => {
                        error!("CoAP handler failed: {e}");
                        let Some(exchange) = exchanges.remove(&e.id()) else { continue };
                        let response = Response::new(ResponseType::InternalServerError);
                        let transmit = lock(&core).complete(exchange, response, Instant::now());
                        send(&socket, transmit).await;
                    }
                }
            }
            received = socket.recv_from(&mut buf) => {
                let (len, peer) = match received {
                    Ok(r) => r,
                    Err(e) => {
                        // ICMP errors surface here on some platforms; they are not fatal.
                        debug!("CoAP server receive error: {e}");
                        continue;
                    }
                };
                let outcome = lock(&core).handle_datagram(peer, &buf[..len], Instant::now());
                send(&socket, outcome.transmit).await;
                if let Some((exchange, request)) = outcome.dispatch {
                    let handler = Arc::clone(&handler);
                    let core = Arc::clone(&core);
                    let socket = Arc::clone(&socket);
                    let handle = tasks.spawn(async move {
                        let response = handler.handle(request).await;
                        let transmit = lock(&core).complete(exchange, response, Instant::now());
                        send(&socket, transmit).await;
                    });
                    exchanges.insert(handle.id(), exchange);
                }
            }
        }
    }
    tasks.shutdown().await;
    debug!("CoAP server stopped");
}
