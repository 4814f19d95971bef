//! The tokio shell of the client: sockets, TLS, timers, the handle and the
//! event channel. Protocol decisions are [`ClientState`](super::ClientState)'s.

use std::collections::HashMap;
use std::hash::{BuildHasher as _, Hasher as _};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::{mpsc, oneshot, watch};

use super::connect::{Conn, establish, lost};
use super::state::{StateEvent, Token};
use super::{Authentication, ClientOptions, Message, QoS};
use crate::MqttError;

/// What the client reports, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A connection is up and its subscriptions are acknowledged; `session`
    /// counts them (1 for the one [`MqttClient::connect`] made).
    Connected {
        /// 1, 2, ... per usable connection.
        session: u64,
    },
    /// A message from the server.
    Message(Message),
    /// The connection was lost, or a reconnection attempt failed. Without
    /// [`ClientOptions::reconnect`] the events end after this.
    Disconnected {
        /// What happened.
        reason: String,
    },
}

/// The client's events; ends when the client stops for good.
#[derive(Debug)]
pub struct MqttEvents {
    rx: mpsc::Receiver<Event>,
}

impl MqttEvents {
    /// The next event; `None` once the client stopped (DISCONNECT, every
    /// handle dropped, or the connection lost without reconnect).
    pub async fn recv(&mut self) -> Option<Event> {
        self.rx.recv().await
    }
}

/// The outcome of one publish.
#[derive(Debug)]
pub struct Delivery {
    rx: oneshot::Receiver<Result<(), MqttError>>,
}

impl Delivery {
    /// Waits until QoS 0 is written or QoS 1 acknowledged; fails when the
    /// connection was lost first (the message may or may not have arrived)
    /// or the server refused it (MQTT 5).
    pub async fn wait(self) -> Result<(), MqttError> {
        self.rx.await.unwrap_or(Err(MqttError::Closed))
    }

    /// The outcome if already known.
    pub fn try_result(&mut self) -> Option<Result<(), MqttError>> {
        match self.rx.try_recv() {
            Ok(r) => Some(r),
            Err(oneshot::error::TryRecvError::Empty) => None,
            Err(oneshot::error::TryRecvError::Closed) => Some(Err(MqttError::Closed)),
        }
    }

    /// The receiver, for `select!`.
    pub fn receiver(&mut self) -> &mut oneshot::Receiver<Result<(), MqttError>> {
        &mut self.rx
    }
}

type SubAckCodes = Vec<Result<QoS, String>>;

enum Command {
    Publish(Message, oneshot::Sender<Result<(), MqttError>>),
    Reauthenticate(Bytes, oneshot::Sender<Result<(), MqttError>>),
    Subscribe(
        Vec<(String, QoS)>,
        oneshot::Sender<Result<SubAckCodes, MqttError>>,
    ),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Run,
    Disconnect,
    Abort,
}

struct Inner {
    commands: mpsc::Sender<Command>,
    authentication: Option<Authentication>,
    stop: watch::Sender<Stop>,
    connected: watch::Receiver<bool>,
    done: watch::Receiver<bool>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.send_if_modified(|s| {
            let run = *s == Stop::Run;
            if run {
                *s = Stop::Disconnect;
            }
            run
        });
    }
}

/// A handle to the client (cheap to clone). When the last handle is
/// dropped, the client sends DISCONNECT and stops.
#[derive(Clone)]
pub struct MqttClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MqttClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttClient")
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}

impl MqttClient {
    /// Connects, subscribes [`ClientOptions::subscriptions`], and returns
    /// once that is acknowledged; the connection is then driven by a task.
    ///
    /// # Errors
    /// [`MqttError::Connect`] (TCP or TLS), [`MqttError::ConnectionRefused`],
    /// [`MqttError::SubscribeRefused`], [`MqttError::Timeout`] (nothing
    /// within [`ClientOptions::connect_timeout`]), [`MqttError::Protocol`].
    pub async fn connect(options: ClientOptions) -> Result<(MqttClient, MqttEvents), MqttError> {
        let subscriptions = options.subscriptions.clone();
        let first = establish(&options, &subscriptions).await?;
        let (commands, cmd_rx) = mpsc::channel(options.queue.max(1));
        let (events_tx, rx) = mpsc::channel(options.queue.max(1));
        let (stop, stop_rx) = watch::channel(Stop::Run);
        let (connected_tx, connected) = watch::channel(true);
        let (done_tx, done) = watch::channel(false);
        let authentication = options.authentication.clone();
        tokio::spawn(drive(Driver {
            options,
            subscriptions,
            commands: cmd_rx,
            events: events_tx,
            stop: stop_rx,
            connected: connected_tx,
            first: Some(first),
            done: done_tx,
        }));
        Ok((
            MqttClient {
                inner: Arc::new(Inner {
                    commands,
                    authentication,
                    stop,
                    connected,
                    done,
                }),
            },
            MqttEvents { rx },
        ))
    }

    /// True while a connection is up.
    pub fn is_connected(&self) -> bool {
        *self.inner.connected.borrow()
    }

    /// True once the client stopped for good.
    pub fn is_closed(&self) -> bool {
        *self.inner.done.borrow()
    }

    /// Queues a publish, waiting for room in the queue.
    ///
    /// # Errors
    /// [`MqttError::Closed`] when the client has stopped.
    pub async fn publish(&self, message: Message) -> Result<Delivery, MqttError> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .commands
            .send(Command::Publish(message, tx))
            .await
            .map_err(|_| MqttError::Closed)?;
        Ok(Delivery { rx })
    }

    /// Queues a publish without waiting.
    ///
    /// # Errors
    /// [`MqttError::QueueFull`], [`MqttError::Closed`].
    pub fn try_publish(&self, message: Message) -> Result<Delivery, MqttError> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .commands
            .try_send(Command::Publish(message, tx))
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => MqttError::QueueFull,
                mpsc::error::TrySendError::Closed(_) => MqttError::Closed,
            })?;
        Ok(Delivery { rx })
    }

    /// Subscribes `filter` and waits for the SUBACK: the granted QoS, or the
    /// server's refusal as `Err`. Granted filters are subscribed again on
    /// every reconnection.
    ///
    /// # Errors
    /// [`MqttError::Closed`], or the connection was lost before the SUBACK.
    pub async fn subscribe(
        &self,
        filter: impl Into<String>,
        qos: QoS,
    ) -> Result<Result<QoS, String>, MqttError> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .commands
            .send(Command::Subscribe(vec![(filter.into(), qos)], tx))
            .await
            .map_err(|_| MqttError::Closed)?;
        let mut codes = rx.await.map_err(|_| MqttError::Closed)??;
        codes
            .pop()
            .ok_or_else(|| MqttError::Protocol("a SUBACK without a return code".into()))
    }

    /// Re-authenticates the live session in place (MQTT 5 AUTH with the
    /// method of [`ClientOptions::authenticate`]; RFC 9431: a fresh access
    /// token): no reconnect, no new TLS handshake, subscriptions kept.
    /// Resolves once the server accepts it. `data` is also used by every
    /// later CONNECT.
    ///
    /// # Errors
    /// [`MqttError::Reauthentication`] when the server refuses it (it then
    /// also ends the connection) or the session has no Authentication
    /// Method; [`MqttError::ConnectionLost`] when the connection ends first;
    /// [`MqttError::Closed`].
    pub async fn reauthenticate(&self, data: impl Into<Bytes>) -> Result<(), MqttError> {
        let data = data.into();
        let Some(authentication) = &self.inner.authentication else {
            return Err(MqttError::Reauthentication(
                "the client was not configured with an authentication method".into(),
            ));
        };
        authentication.set_data(data.clone());
        let (tx, rx) = oneshot::channel();
        self.inner
            .commands
            .send(Command::Reauthenticate(data, tx))
            .await
            .map_err(|_| MqttError::Closed)?;
        rx.await.map_err(|_| MqttError::Closed)?
    }

    /// Sends DISCONNECT (when connected) and stops; returns once stopped.
    pub async fn disconnect(&self) {
        self.stop(Stop::Disconnect).await;
    }

    /// Drops the connection without DISCONNECT (the server publishes the
    /// will, if any) and stops.
    pub async fn abort(&self) {
        self.stop(Stop::Abort).await;
    }

    async fn stop(&self, how: Stop) {
        self.inner.stop.send_if_modified(|s| {
            let run = *s == Stop::Run;
            if run {
                *s = how;
            }
            run
        });
        let mut done = self.inner.done.clone();
        let _ = done.wait_for(|d| *d).await;
    }
}

struct Driver {
    options: ClientOptions,
    subscriptions: Vec<(String, QoS)>,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<Event>,
    stop: watch::Receiver<Stop>,
    connected: watch::Sender<bool>,
    first: Option<Conn>,
    done: watch::Sender<bool>,
}

enum Pending {
    Publish(oneshot::Sender<Result<(), MqttError>>),
    Reauthenticate(oneshot::Sender<Result<(), MqttError>>),
    Subscribe(
        Vec<(String, QoS)>,
        oneshot::Sender<Result<SubAckCodes, MqttError>>,
    ),
}

enum End {
    Stopped,
    Lost(MqttError),
}

/// Resolves once a stop was asked for (or every handle is gone).
async fn stopped(stop: &mut watch::Receiver<Stop>) -> Stop {
    loop {
        let now = *stop.borrow_and_update();
        if now != Stop::Run {
            return now;
        }
        if stop.changed().await.is_err() {
            return Stop::Disconnect;
        }
    }
}

/// A sample in `[0, 1)` for backoff jitter (no `rand` dependency needed).
fn jitter() -> f64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

async fn drive(mut d: Driver) {
    let mut session = 1u64;
    let _ = d.events.send(Event::Connected { session }).await;
    let mut conn = d.first.take();
    'outer: while let Some(c) = conn.take() {
        let end = run_connection(&mut d, c).await;
        d.connected.send_replace(false);
        let reason = match end {
            End::Stopped => break,
            End::Lost(e) => e.to_string(),
        };
        tracing::debug!(client_id = %d.options.client_id, %reason, "MQTT connection lost");
        let _ = d.events.send(Event::Disconnected { reason }).await;
        let Some(backoff) = d.options.reconnect else {
            break;
        };
        let mut attempt = 0u32;
        loop {
            let delay = Duration::from_millis(backoff.delay_ms(attempt, jitter()));
            let attempt_result = tokio::select! {
                _ = stopped(&mut d.stop) => break 'outer,
                r = async {
                    tokio::time::sleep(delay).await;
                    establish(&d.options, &d.subscriptions).await
                } => r,
            };
            match attempt_result {
                Ok(c) => {
                    conn = Some(c);
                    break;
                }
                Err(e) => {
                    tracing::debug!(client_id = %d.options.client_id, attempt, error = %e, "MQTT reconnection failed");
                    let _ = d
                        .events
                        .send(Event::Disconnected {
                            reason: e.to_string(),
                        })
                        .await;
                    attempt = attempt.saturating_add(1);
                }
            }
        }
        session += 1;
        d.connected.send_replace(true);
        let _ = d.events.send(Event::Connected { session }).await;
    }
    d.connected.send_replace(false);
    d.done.send_replace(true);
}

/// Drives one connection until it is lost or a stop is asked for.
async fn run_connection(d: &mut Driver, mut conn: Conn) -> End {
    let mut pending: HashMap<Token, Pending> = HashMap::new();
    let mut next_token: Token = 1;
    let mut buf = BytesMut::with_capacity(8 * 1024);
    while let Some(m) = conn.early.pop_front() {
        let _ = d.events.send(Event::Message(m)).await;
    }
    let end = loop {
        // Hand over what the last input produced, then write its acknowledgements.
        while let Some(event) = conn.state.poll_event() {
            match event {
                StateEvent::Message(m) => {
                    let _ = d.events.send(Event::Message(m)).await;
                }
                StateEvent::Delivered(t) => {
                    if let Some(Pending::Publish(tx)) = pending.remove(&t) {
                        let _ = tx.send(Ok(()));
                    }
                }
                StateEvent::PublishRefused(t, why) => {
                    if let Some(Pending::Publish(tx)) = pending.remove(&t) {
                        let _ = tx.send(Err(MqttError::Publish(why)));
                    }
                }
                StateEvent::Subscribed(t, codes) => {
                    if let Some(Pending::Subscribe(filters, tx)) = pending.remove(&t) {
                        for ((filter, qos), code) in filters.into_iter().zip(&codes) {
                            if code.is_ok() && !d.subscriptions.iter().any(|(f, _)| *f == filter) {
                                d.subscriptions.push((filter, qos));
                            }
                        }
                        let _ = tx.send(Ok(codes));
                    }
                }
                StateEvent::Reauthenticated(t, outcome) => {
                    if let Some(Pending::Reauthenticate(tx)) = pending.remove(&t) {
                        let _ = tx.send(outcome.map_err(MqttError::Reauthentication));
                    }
                }
                StateEvent::Connected | StateEvent::ServerDisconnect(_) => {}
            }
        }
        if let Err(e) = conn.flush().await {
            break End::Lost(e);
        }
        let deadline = conn
            .state
            .poll_timeout()
            .map(tokio::time::Instant::from_std);
        let can_take = conn.state.can_publish();
        tokio::select! {
            how = stopped(&mut d.stop) => {
                if how == Stop::Disconnect {
                    conn.state.disconnect();
                    let _ = tokio::time::timeout(Duration::from_secs(1), async {
                        let _ = conn.flush().await;
                        let _ = conn.stream.shutdown().await;
                    })
                    .await;
                }
                break End::Stopped;
            }
            // Only the read itself races the other branches (it is cancel
            // safe); feeding and writing happen after the select.
            r = conn.stream.read_buf(&mut buf) => {
                match r {
                    Ok(0) => {
                        break End::Lost(MqttError::ConnectionLost(
                            "the server closed the connection".into(),
                        ));
                    }
                    Ok(_) => {
                        let fed = conn.state.handle_input(&buf, Instant::now());
                        buf.clear();
                        if let Err(e) = fed {
                            break End::Lost(e);
                        }
                    }
                    Err(e) => break End::Lost(lost(e)),
                }
            }
            cmd = d.commands.recv(), if can_take => {
                let now = Instant::now();
                match cmd {
                    None => {
                        conn.state.disconnect();
                        let _ = conn.flush().await;
                        break End::Stopped;
                    }
                    Some(Command::Publish(message, tx)) => {
                        let token = next_token;
                        next_token += 1;
                        match conn.state.publish(message, token, now) {
                            Ok(()) => {
                                pending.insert(token, Pending::Publish(tx));
                            }
                            Err(e @ MqttError::Publish(_)) => {
                                let _ = tx.send(Err(e));
                            }
                            Err(e) => break End::Lost(e),
                        }
                    }
                    Some(Command::Reauthenticate(data, tx)) => {
                        let token = next_token;
                        next_token += 1;
                        match conn.state.reauthenticate(data, token, now) {
                            Ok(()) => {
                                pending.insert(token, Pending::Reauthenticate(tx));
                            }
                            Err(e) => {
                                let _ = tx.send(Err(e));
                            }
                        }
                    }
                    Some(Command::Subscribe(filters, tx)) => {
                        let token = next_token;
                        next_token += 1;
                        match conn.state.subscribe(&filters, token, now) {
                            Ok(()) => {
                                pending.insert(token, Pending::Subscribe(filters, tx));
                            }
                            Err(e) => {
                                let _ = tx.send(Err(e));
                            }
                        }
                    }
                }
            }
            () = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {
                if let Err(e) = conn.state.handle_timeout(Instant::now()) {
                    break End::Lost(e);
                }
            }
        }
    };
    let reason = match &end {
        End::Stopped => "the client disconnected".to_string(),
        End::Lost(e) => format!("the MQTT connection was lost: {e}"),
    };
    for token in conn.state.fail_all() {
        if let Some(p) = pending.remove(&token) {
            fail(p, &reason);
        }
    }
    for (_, p) in pending.drain() {
        fail(p, &reason);
    }
    end
}

fn fail(p: Pending, reason: &str) {
    match p {
        Pending::Publish(tx) | Pending::Reauthenticate(tx) => {
            let _ = tx.send(Err(MqttError::ConnectionLost(reason.to_string())));
        }
        Pending::Subscribe(_, tx) => {
            let _ = tx.send(Err(MqttError::ConnectionLost(reason.to_string())));
        }
    }
}
