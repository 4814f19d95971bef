//! The client side of one MQTT connection, without I/O.
//!
//! The shell feeds it the bytes read from the stream
//! ([`ClientState::handle_input`]), the publishes and subscriptions of the
//! application ([`ClientState::publish`], [`ClientState::subscribe`]) and the
//! current time ([`ClientState::handle_timeout`]); it answers with bytes to
//! write ([`ClientState::take_transmit`]) and [`StateEvent`]s
//! ([`ClientState::poll_event`]). An incoming QoS 1 message is produced as an
//! event before its PUBACK is queued, so a shell that hands events over
//! before writing acknowledges only what it delivered.
//!
//! * CONNECT is queued at creation; nothing else may be sent before CONNACK
//!   (publishes wait), and no CONNACK within the connect timeout is an error.
//! * QoS 0 and 1 both ways. At most `max_inflight` QoS 1 publishes (or the
//!   server's MQTT 5 Receive Maximum, if smaller) await PUBACK; more wait in
//!   order. PUBACKs may come in any order; each resolves its own publish.
//! * Keep-alive: a PINGREQ after `keep_alive` without sending anything; no
//!   PINGRESP within another `keep_alive` is an error (a dead link).
//! * Everything in flight when the connection ends is reported as failed by
//!   [`ClientState::fail_all`] (clean sessions: nothing is retransmitted).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::codec::{self, ConnectParams, Incoming};
use super::{Message, Protocol, QoS};
use crate::MqttError;

/// Application tag of a publish or subscription, given back in its outcome.
pub type Token = u64;

/// Limits and identity of one connection.
#[derive(Debug, Clone)]
pub struct StateConfig {
    /// MQTT 3.1.1 or 5.
    pub protocol: Protocol,
    /// Client identifier.
    pub client_id: String,
    /// Keep-alive interval (0: none).
    pub keep_alive: Duration,
    /// Time from creation until CONNACK must have arrived.
    pub connect_timeout: Duration,
    /// Largest packet sent or accepted, bytes.
    pub max_packet: usize,
    /// QoS 1 publishes awaiting PUBACK at most.
    pub max_inflight: usize,
    /// MQTT 5 Authentication Method and Data for CONNECT.
    pub auth: Option<(String, Bytes)>,
}

/// What the connection reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateEvent {
    /// CONNACK accepted.
    Connected,
    /// A message from the server (in the order received).
    Message(Message),
    /// A publish is done: QoS 0 handed to the stream, QoS 1 acknowledged.
    Delivered(Token),
    /// The server refused a QoS 1 publish (MQTT 5 PUBACK reason >= 0x80).
    PublishRefused(Token, String),
    /// SUBACK: per filter, the granted QoS or the refusal.
    Subscribed(Token, Vec<Result<QoS, String>>),
    /// The server ended the connection (MQTT 5 DISCONNECT).
    ServerDisconnect(String),
    /// The server answered a re-authentication (AUTH): `Ok` for Success.
    Reauthenticated(Token, Result<(), String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    AwaitConnAck { deadline: Instant },
    Connected,
    Closed,
}

/// One connection's protocol state.
#[derive(Debug)]
pub struct ClientState {
    config: StateConfig,
    phase: Phase,
    read: BytesMut,
    out: BytesMut,
    events: VecDeque<StateEvent>,
    last_sent: Instant,
    ping_sent: Option<Instant>,
    next_pkid: u16,
    inflight: HashMap<u16, Token>,
    subscribing: HashMap<u16, Token>,
    waiting: VecDeque<(Message, Token)>,
    max_inflight: usize,
    max_out: usize,
    /// The re-authentication awaiting the server's AUTH.
    reauth: Option<Token>,
}

impl ClientState {
    /// A new connection: CONNECT (clean session) is queued for sending.
    ///
    /// # Errors
    /// [`MqttError::Protocol`] when CONNECT cannot be encoded (a client id
    /// longer than 65 535 bytes).
    pub fn new(config: StateConfig, now: Instant) -> Result<Self, MqttError> {
        let mut out = BytesMut::new();
        let keep_alive_secs = u16::try_from(config.keep_alive.as_secs()).unwrap_or(u16::MAX);
        codec::encode_connect(
            config.protocol,
            &ConnectParams {
                client_id: &config.client_id,
                keep_alive_secs,
                clean: true,
                max_packet: config.max_packet,
                receive_max: u16::try_from(config.max_inflight.max(1)).unwrap_or(u16::MAX),
                auth: config.auth.as_ref().map(|(m, d)| (m.as_str(), d)),
            },
            &mut out,
        )?;
        Ok(Self {
            phase: Phase::AwaitConnAck {
                deadline: now + config.connect_timeout,
            },
            read: BytesMut::new(),
            out,
            events: VecDeque::new(),
            last_sent: now,
            ping_sent: None,
            next_pkid: 0,
            inflight: HashMap::new(),
            subscribing: HashMap::new(),
            waiting: VecDeque::new(),
            max_inflight: config.max_inflight.max(1),
            max_out: config.max_packet,
            reauth: None,
            config,
        })
    }

    /// True once CONNACK accepted the connection (and until it closes).
    pub fn is_connected(&self) -> bool {
        self.phase == Phase::Connected
    }

    /// True when another publish can be taken without queueing it here
    /// (the shell stops taking publishes otherwise: backpressure).
    pub fn can_publish(&self) -> bool {
        self.phase == Phase::Connected && self.inflight.len() < self.max_inflight
    }

    /// QoS 1 publishes awaiting PUBACK.
    pub fn inflight(&self) -> usize {
        self.inflight.len()
    }

    /// Feeds bytes read from the stream.
    ///
    /// # Errors
    /// A refused CONNACK ([`MqttError::ConnectionRefused`]), a malformed or
    /// unexpected packet ([`MqttError::Protocol`]), or a server DISCONNECT
    /// ([`MqttError::ConnectionLost`]). The connection is then unusable.
    pub fn handle_input(&mut self, data: &[u8], now: Instant) -> Result<(), MqttError> {
        if self.phase == Phase::Closed {
            return Err(MqttError::ConnectionLost("the connection is closed".into()));
        }
        self.read.extend_from_slice(data);
        loop {
            let packet =
                match codec::read(self.config.protocol, &mut self.read, self.config.max_packet) {
                    Ok(Some(p)) => p,
                    Ok(None) => return Ok(()),
                    Err(e) => return Err(self.close(e)),
                };
            if let Err(e) = self.on_packet(packet, now) {
                return Err(self.close(e));
            }
        }
    }

    fn close(&mut self, e: MqttError) -> MqttError {
        self.phase = Phase::Closed;
        e
    }

    fn on_packet(&mut self, packet: Incoming, now: Instant) -> Result<(), MqttError> {
        if let Phase::AwaitConnAck { .. } = self.phase {
            let Incoming::ConnAck {
                refused,
                receive_max,
                max_packet,
            } = packet
            else {
                return Err(MqttError::Protocol(
                    "the server sent another packet before CONNACK".into(),
                ));
            };
            if let Some(reason) = refused {
                return Err(MqttError::ConnectionRefused(reason));
            }
            if let Some(max) = receive_max {
                self.max_inflight = self.max_inflight.min(usize::from(max.max(1)));
            }
            if let Some(max) = max_packet {
                self.max_out = self.max_out.min(usize::try_from(max).unwrap_or(usize::MAX));
            }
            self.phase = Phase::Connected;
            self.events.push_back(StateEvent::Connected);
            self.send_waiting(now)?;
            return Ok(());
        }
        match packet {
            Incoming::ConnAck { .. } => {
                return Err(MqttError::Protocol("a second CONNACK".into()));
            }
            Incoming::Publish { pkid, message } => {
                let qos = message.qos;
                self.events.push_back(StateEvent::Message(message));
                if qos == QoS::AtLeastOnce {
                    codec::encode_puback(self.config.protocol, pkid, &mut self.out)?;
                    self.last_sent = now;
                }
            }
            Incoming::PubAck { pkid, refused } => {
                let Some(token) = self.inflight.remove(&pkid) else {
                    return Err(MqttError::Protocol(format!(
                        "PUBACK for packet id {pkid}, which is not in flight"
                    )));
                };
                self.events.push_back(match refused {
                    None => StateEvent::Delivered(token),
                    Some(reason) => StateEvent::PublishRefused(token, reason),
                });
                self.send_waiting(now)?;
            }
            Incoming::SubAck { pkid, codes } => {
                let Some(token) = self.subscribing.remove(&pkid) else {
                    return Err(MqttError::Protocol(format!(
                        "SUBACK for packet id {pkid}, which was never subscribed"
                    )));
                };
                self.events.push_back(StateEvent::Subscribed(token, codes));
            }
            Incoming::Auth { outcome } => {
                let Some(token) = self.reauth.take() else {
                    return Err(MqttError::Protocol(
                        "AUTH from the server without a re-authentication in progress".into(),
                    ));
                };
                self.events
                    .push_back(StateEvent::Reauthenticated(token, outcome));
            }
            Incoming::UnsubAck => {}
            Incoming::PingResp => self.ping_sent = None,
            Incoming::Disconnect { reason } => {
                self.events
                    .push_back(StateEvent::ServerDisconnect(reason.clone()));
                return Err(MqttError::ConnectionLost(format!(
                    "the server sent DISCONNECT ({reason})"
                )));
            }
        }
        Ok(())
    }

    fn alloc_pkid(&mut self) -> u16 {
        loop {
            self.next_pkid = self.next_pkid.wrapping_add(1).max(1);
            if !self.inflight.contains_key(&self.next_pkid)
                && !self.subscribing.contains_key(&self.next_pkid)
            {
                return self.next_pkid;
            }
        }
    }

    fn send_waiting(&mut self, now: Instant) -> Result<(), MqttError> {
        while self.can_publish() {
            let Some((message, token)) = self.waiting.pop_front() else {
                break;
            };
            self.send_publish(message, token, now)?;
        }
        Ok(())
    }

    fn send_publish(
        &mut self,
        message: Message,
        token: Token,
        now: Instant,
    ) -> Result<(), MqttError> {
        let pkid = if message.qos == QoS::AtMostOnce {
            0
        } else {
            self.alloc_pkid()
        };
        match codec::encode_publish(
            self.config.protocol,
            &message,
            pkid,
            self.max_out,
            &mut self.out,
        ) {
            Ok(()) => {}
            // Too large: only this publish fails.
            Err(MqttError::Publish(why)) => {
                self.events
                    .push_back(StateEvent::PublishRefused(token, why));
                return Ok(());
            }
            Err(e) => return Err(e),
        }
        self.last_sent = now;
        if message.qos == QoS::AtMostOnce {
            self.events.push_back(StateEvent::Delivered(token));
        } else {
            self.inflight.insert(pkid, token);
        }
        Ok(())
    }

    /// Queues a publish (QoS 0 or 1; QoS 2 is refused). It waits here until
    /// CONNACK and while `max_inflight` publishes are unacknowledged.
    ///
    /// # Errors
    /// [`MqttError::Publish`] for QoS 2 or an invalid topic.
    pub fn publish(
        &mut self,
        message: Message,
        token: Token,
        now: Instant,
    ) -> Result<(), MqttError> {
        if message.qos == QoS::ExactlyOnce {
            return Err(MqttError::Publish("QoS 2 is not supported".into()));
        }
        if message.topic.is_empty() || message.topic.contains(['+', '#', '\0']) {
            return Err(MqttError::Publish(format!(
                "{:?} is not a topic name (empty, a wildcard or NUL)",
                message.topic
            )));
        }
        if self.can_publish() && self.waiting.is_empty() {
            self.send_publish(message, token, now)?;
        } else {
            self.waiting.push_back((message, token));
        }
        Ok(())
    }

    /// Sends SUBSCRIBE for `filters` (each with its maximum QoS).
    ///
    /// # Errors
    /// [`MqttError::Protocol`] before CONNACK or when nothing is given.
    pub fn subscribe(
        &mut self,
        filters: &[(String, QoS)],
        token: Token,
        now: Instant,
    ) -> Result<(), MqttError> {
        if self.phase != Phase::Connected {
            return Err(MqttError::Protocol("SUBSCRIBE before CONNACK".into()));
        }
        if filters.is_empty() {
            return Err(MqttError::Protocol("SUBSCRIBE without a filter".into()));
        }
        let pkid = self.alloc_pkid();
        codec::encode_subscribe(self.config.protocol, pkid, filters, &mut self.out)?;
        self.subscribing.insert(pkid, token);
        self.last_sent = now;
        Ok(())
    }

    /// Sends AUTH (Re-authenticate, 0x19) with fresh Authentication Data
    /// under the method of CONNECT (MQTT 5; RFC 9431: a fresh token). The
    /// outcome comes as [`StateEvent::Reauthenticated`]; a refusal also
    /// ends the connection (the server sends DISCONNECT).
    ///
    /// # Errors
    /// [`MqttError::Reauthentication`] before CONNACK, on MQTT 3.1.1, without
    /// an Authentication Method, or while another re-authentication runs.
    pub fn reauthenticate(
        &mut self,
        data: Bytes,
        token: Token,
        now: Instant,
    ) -> Result<(), MqttError> {
        if self.phase != Phase::Connected || self.config.protocol != Protocol::V5 {
            return Err(MqttError::Reauthentication(
                "re-authentication needs a connected MQTT 5 session".into(),
            ));
        }
        let Some((method, _)) = &self.config.auth else {
            return Err(MqttError::Reauthentication(
                "the session did not authenticate with a method at CONNECT".into(),
            ));
        };
        if self.reauth.is_some() {
            return Err(MqttError::Reauthentication(
                "a re-authentication is already in progress".into(),
            ));
        }
        codec::encode_reauth(method, &data, &mut self.out)?;
        self.config.auth = Some((method.clone(), data));
        self.reauth = Some(token);
        self.last_sent = now;
        Ok(())
    }

    /// Queues DISCONNECT; the connection is closed afterwards.
    pub fn disconnect(&mut self) {
        if self.phase == Phase::Connected {
            // Encoding a fixed two-byte packet cannot fail.
            let _ = codec::encode_disconnect(self.config.protocol, &mut self.out);
        }
        self.phase = Phase::Closed;
    }

    /// When [`ClientState::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::AwaitConnAck { deadline } => Some(deadline),
            Phase::Closed => None,
            Phase::Connected if self.config.keep_alive.is_zero() => None,
            Phase::Connected => Some(match self.ping_sent {
                Some(sent) => sent + self.config.keep_alive,
                None => self.last_sent + self.config.keep_alive,
            }),
        }
    }

    /// Sends a PINGREQ when due; fails when CONNACK or PINGRESP is overdue.
    ///
    /// # Errors
    /// [`MqttError::Timeout`].
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), MqttError> {
        match self.phase {
            Phase::AwaitConnAck { deadline } if now >= deadline => {
                Err(self.close(MqttError::Timeout(format!(
                    "no CONNACK within {:?}",
                    self.config.connect_timeout
                ))))
            }
            Phase::Connected if !self.config.keep_alive.is_zero() => {
                match self.ping_sent {
                    Some(sent) if now >= sent + self.config.keep_alive => {
                        return Err(self.close(MqttError::Timeout(format!(
                            "no PINGRESP within {:?}: the link is dead",
                            self.config.keep_alive
                        ))));
                    }
                    Some(_) => {}
                    None if now >= self.last_sent + self.config.keep_alive => {
                        codec::encode_pingreq(self.config.protocol, &mut self.out)?;
                        self.ping_sent = Some(now);
                        self.last_sent = now;
                    }
                    None => {}
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Bytes to write, if any.
    pub fn take_transmit(&mut self) -> Option<Bytes> {
        (!self.out.is_empty()).then(|| self.out.split().freeze())
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<StateEvent> {
        self.events.pop_front()
    }

    /// Ends the connection: the tokens of every publish and subscription not
    /// yet done (their outcome is unknown; nothing is retransmitted).
    pub fn fail_all(&mut self) -> Vec<Token> {
        self.phase = Phase::Closed;
        let mut tokens: Vec<Token> = self.inflight.drain().map(|(_, t)| t).collect();
        tokens.extend(self.subscribing.drain().map(|(_, t)| t));
        tokens.extend(self.reauth.take());
        tokens.extend(self.waiting.drain(..).map(|(_, t)| t));
        tokens
    }
}
