//! The tokio UDP shell around [`ClientExchange`]: one connected socket, one
//! receive task routing datagrams to the exchanges by token or message id.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use coap_lite::{MessageClass, MessageType, Packet};
use rand::Rng;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::debug;

use crate::client_core::{ClientExchange, ExchangeParams, IdSource};
use crate::reliability::TransmissionParams;
use crate::{CoapError, Method, Response, block, message};

/// Client settings (RFC 7252 §4.8 transmission parameters and block-wise limits).
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// ACK_TIMEOUT: wait before the first retransmission. Default 2 s.
    pub ack_timeout: Duration,
    /// ACK_RANDOM_FACTOR: the first wait is random in
    /// `[ack_timeout, ack_timeout * ack_random_factor]`. Default 1.5.
    pub ack_random_factor: f64,
    /// MAX_RETRANSMIT: retransmissions before [`CoapError::Timeout`]. Default 4.
    pub max_retransmit: u32,
    /// Block size for Block1 uploads and the largest Block2 block asked for
    /// (rounded down to a power of two in 16..=1024). Default 1024.
    pub block_size: usize,
    /// Largest response body accepted, in bytes; larger ones fail with
    /// [`CoapError::ResponseTooLarge`]. Default 1 MiB.
    pub max_body: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            ack_timeout: Duration::from_secs(2),
            ack_random_factor: 1.5,
            max_retransmit: 4,
            block_size: 1024,
            max_body: 1024 * 1024,
        }
    }
}

type Route = mpsc::UnboundedSender<Packet>;

#[derive(Default)]
struct Routes {
    by_token: HashMap<Vec<u8>, Route>,
    by_mid: HashMap<u16, Route>,
}

struct Shared {
    socket: UdpSocket,
    routes: Mutex<Routes>,
    next_mid: AtomicU16,
}

impl Shared {
    fn routes(&self) -> MutexGuard<'_, Routes> {
        self.routes.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A CoAP client for one server, usable from several tasks at once.
///
/// Dropping it stops its receive task; requests still running then fail
/// with [`CoapError::Closed`].
pub struct Client {
    shared: Arc<Shared>,
    receiver: JoinHandle<()>,
    config: ClientConfig,
    server: SocketAddr,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("server", &self.server)
            .field("config", &self.config)
            .finish()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.receiver.abort();
    }
}

impl Client {
    /// Binds an ephemeral UDP port and connects it to `server`.
    pub async fn connect(server: SocketAddr, config: ClientConfig) -> Result<Client, CoapError> {
        let local: SocketAddr = if server.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        Self::connect_from(local, server, config).await
    }

    /// Binds `local` (e.g. `127.0.0.2:0`: a chosen source address) and
    /// connects it to `server`.
    pub async fn connect_from(
        local: SocketAddr,
        server: SocketAddr,
        config: ClientConfig,
    ) -> Result<Client, CoapError> {
        let socket = UdpSocket::bind(local)
            .await
            .map_err(|e| CoapError::io("binding the CoAP client socket", e))?;
        socket
            .connect(server)
            .await
            .map_err(|e| CoapError::io("connecting the CoAP client socket", e))?;
        let shared = Arc::new(Shared {
            socket,
            routes: Mutex::new(Routes::default()),
            next_mid: AtomicU16::new(rand::random()),
        });
        let receiver = tokio::spawn(receive(Arc::clone(&shared)));
        Ok(Client {
            shared,
            receiver,
            config,
            server,
        })
    }

    /// Sends a request to `path` (e.g. `"token"` or `".well-known/core?rt=ace.est"`)
    /// and returns the whole response. Error responses (4.xx, 5.xx) are `Ok`.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        content_format: Option<u16>,
        payload: Vec<u8>,
    ) -> Result<Response, CoapError> {
        let params = ExchangeParams {
            transmission: TransmissionParams {
                ack_timeout: self.config.ack_timeout,
                ack_random_factor: self.config.ack_random_factor,
                max_retransmit: self.config.max_retransmit,
            },
            szx: block::szx_for_size(self.config.block_size),
            max_body: self.config.max_body,
        };
        let mut exchange = ClientExchange::new(method, path, content_format, payload, params)?;
        let mut ids = Ids(&self.shared);
        let (route, mut inbox) = mpsc::unbounded_channel();
        let mut registration = Registration {
            shared: &self.shared,
            route,
            token: None,
            mid: None,
        };
        let first = exchange.start(&mut ids, Instant::now())?;
        registration.update(&exchange);
        self.send(&first).await?;
        loop {
            let fallback = Instant::now() + params.transmission.max_transmit_wait();
            let deadline = exchange.deadline().unwrap_or(fallback);
            let step = tokio::select! {
                packet = inbox.recv() => match packet {
                    Some(packet) => exchange.on_packet(&packet, &mut ids, Instant::now()),
                    None => return Err(CoapError::Closed),
                },
                () = tokio::time::sleep_until(deadline.into()) => exchange.on_timeout(Instant::now()),
            };
            registration.update(&exchange);
            for datagram in &step.transmit {
                self.send(datagram).await?;
            }
            if let Some(result) = step.done {
                return result;
            }
        }
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Result<Response, CoapError> {
        self.request(Method::Get, path, None, Vec::new()).await
    }

    /// `POST path` with a payload of the given Content-Format.
    pub async fn post(
        &self,
        path: &str,
        content_format: u16,
        payload: Vec<u8>,
    ) -> Result<Response, CoapError> {
        self.request(Method::Post, path, Some(content_format), payload)
            .await
    }

    async fn send(&self, datagram: &[u8]) -> Result<(), CoapError> {
        if self.receiver.is_finished() {
            return Err(CoapError::Closed);
        }
        match self.shared.socket.send(datagram).await {
            Ok(_) => Ok(()),
            // ICMP errors from earlier datagrams: retransmission deals with them.
            Err(e) if transient(&e) => {
                debug!(server = %self.server, "CoAP send failed, will retransmit: {e}");
                Ok(())
            }
            Err(e) => Err(CoapError::io("sending a CoAP request", e)),
        }
    }
}

fn transient(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionRefused
            | ErrorKind::ConnectionReset
            | ErrorKind::HostUnreachable
            | ErrorKind::NetworkUnreachable
            | ErrorKind::WouldBlock
            | ErrorKind::Interrupted
    )
}

/// Message ids from the socket-wide counter, tokens and jitter from the thread RNG.
struct Ids<'a>(&'a Shared);

impl IdSource for Ids<'_> {
    fn message_id(&mut self) -> u16 {
        self.0.next_mid.fetch_add(1, Ordering::Relaxed)
    }

    fn token(&mut self) -> Vec<u8> {
        let mut rng = rand::rng();
        let len = rng.random_range(4..=8);
        (0..len).map(|_| rng.random()).collect()
    }

    fn random(&mut self) -> f64 {
        rand::random()
    }
}

/// Keeps the routes of one exchange current; removes them when dropped.
struct Registration<'a> {
    shared: &'a Shared,
    route: Route,
    token: Option<Vec<u8>>,
    mid: Option<u16>,
}

impl Registration<'_> {
    fn update(&mut self, exchange: &ClientExchange) {
        let token = exchange.token().map(<[u8]>::to_vec);
        let mid = exchange.message_id();
        if token == self.token && mid == self.mid {
            return;
        }
        let mut routes = self.shared.routes();
        self.remove(&mut routes);
        if let Some(t) = &token {
            routes.by_token.insert(t.clone(), self.route.clone());
        }
        if let Some(m) = mid {
            routes.by_mid.insert(m, self.route.clone());
        }
        self.token = token;
        self.mid = mid;
    }

    fn remove(&self, routes: &mut Routes) {
        if let Some(t) = &self.token
            && routes
                .by_token
                .get(t)
                .is_some_and(|r| r.same_channel(&self.route))
        {
            routes.by_token.remove(t);
        }
        if let Some(m) = self.mid
            && routes
                .by_mid
                .get(&m)
                .is_some_and(|r| r.same_channel(&self.route))
        {
            routes.by_mid.remove(&m);
        }
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let shared = self.shared;
        self.remove(&mut shared.routes());
    }
}

async fn receive(shared: Arc<Shared>) {
    let mut buf = vec![0u8; 65_535];
    loop {
        let len = match shared.socket.recv(&mut buf).await {
            Ok(len) => len,
            Err(e) if transient(&e) => {
                debug!("CoAP client receive error (ignored): {e}");
                continue;
            }
            Err(e) => {
                debug!("CoAP client receive error: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let datagram = &buf[..len];
        let packet = match Packet::from_bytes(datagram) {
            Ok(p) if message::is_well_formed(datagram, &p) => p,
            _ => {
                debug!(len, "CoAP client dropped a malformed datagram");
                if let Some((true, mid)) = message::peek_header(datagram) {
                    reset(&shared, mid).await;
                }
                continue;
            }
        };
        let route = {
            let routes = shared.routes();
            match packet.header.code {
                MessageClass::Empty => routes.by_mid.get(&packet.header.message_id).cloned(),
                code if message::is_response(code) => {
                    routes.by_token.get(packet.get_token()).cloned()
                }
                _ => None,
            }
        };
        let confirmable = packet.header.get_type() == MessageType::Confirmable;
        let mid = packet.header.message_id;
        let delivered = route.is_some_and(|r| r.send(packet).is_ok());
        if !delivered && confirmable {
            // A CON we cannot place (ping, late response, request): reject it.
            reset(&shared, mid).await;
        }
    }
}

async fn reset(shared: &Shared, mid: u16) {
    if let Ok(bytes) = message::encode(&message::empty(MessageType::Reset, mid))
        && let Err(e) = shared.socket.send(&bytes).await
    {
        debug!("CoAP client could not send RST: {e}");
    }
}
