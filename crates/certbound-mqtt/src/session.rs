//! The per-connection MQTT 3.1.1 protocol state machine, without I/O.
//!
//! The shell feeds it the bytes read from the TLS stream
//! ([`Session::handle_input`]), the messages the router hands to this
//! connection ([`Session::deliver`]) and the current time
//! ([`Session::handle_timeout`]); it answers with bytes to write
//! ([`Session::take_transmit`]) and [`Event`]s for the router
//! ([`Session::poll_event`]). Events are produced before the bytes that
//! acknowledge them, so a shell that applies every event before writing makes
//! a subscription active before its SUBACK is on the wire and routes a
//! message before its PUBACK.
//!
//! Behaviour (and what is not supported):
//! * The first packet must be CONNECT, within the connect timeout. MQTT 3.1.1
//!   only (other protocol levels get CONNACK 0x01). Username and password are
//!   ignored: the identity comes from the client certificate. A refused
//!   identity gets CONNACK 0x05.
//! * Clean sessions only: CONNECT with `clean_session = false` is accepted
//!   and treated as clean (CONNACK `session_present = 0`); nothing survives
//!   the connection. An empty client id with `clean_session = false` gets
//!   CONNACK 0x02 (§3.1.3-8).
//! * QoS 0 and 1. A QoS 2 PUBLISH closes the connection; SUBSCRIBE asking for
//!   QoS 2 is granted QoS 1. PUBREC/PUBREL/PUBCOMP close the connection.
//! * Retained messages are not stored: the retain flag is ignored and
//!   messages go out with retain = 0.
//! * A PUBLISH the ACL refuses closes the connection (3.1.1 has no negative
//!   PUBACK); a refused SUBSCRIBE filter gets 0x80 in the SUBACK.
//! * A will message is accepted when the ACL allows its topic (else CONNACK
//!   0x05) and published when the connection ends without DISCONNECT; not
//!   when the server itself ends the connection (see [`Session::abort`]).
//! * Keep-alive: no packet for 1.5 × keep-alive closes the connection.
//! * The session ends when the client certificate expires
//!   ([`Session::with_expiry`]; the shell passes notAfter as an `Instant`).
//! * The shell's admission hook ([`Session::with_admission`]) may refuse a
//!   CONNECT (per-identity connection cap): CONNACK 0x05.
//! * Topic names and filters: UTF-8 (the codec refuses anything else), no
//!   NUL or control characters, no wildcards in topic names; anything else
//!   closes the connection ([`CloseReason::InvalidTopic`]).
//! * At most `max_subscriptions` subscriptions per session; further filters
//!   get 0x80 in the SUBACK.
//! * At most `max_inflight` QoS 1 messages await PUBACK from the client;
//!   [`Session::can_deliver`] tells the shell when to stop handing over
//!   messages (they then wait in the bounded per-client queue).

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::v4::{Packet, SubscribeReasonCode};
use rumqttc::mqttbytes::{Error as CodecError, Protocol};
use rumqttc::{ConnAck, ConnectReturnCode, PubAck, Publish, QoS, SubAck, UnsubAck};
use tracing::{debug, info, warn};

use crate::identity::{Authorizer, Identity};
use crate::topic::{has_control_chars, parse_filter, valid_topic};

/// Limits of one session.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SessionConfig {
    /// Largest accepted packet (remaining length), bytes.
    pub max_packet_size: usize,
    /// Time from the start of the connection until CONNECT must have arrived.
    pub connect_timeout: Duration,
    /// QoS 1 messages sent to the client and not yet acknowledged.
    pub max_inflight: usize,
    /// Subscriptions one session may hold.
    pub max_subscriptions: usize,
}

/// The shell's say on a CONNECT the session accepted: `Err(reason)` refuses
/// it with CONNACK 0x05 (the per-identity connection cap). Called with the
/// client id; may take over an older connection of the same identity.
pub(crate) type Admission = Box<dyn FnMut(&str) -> Result<(), String> + Send>;

/// A message on its way through the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Message {
    /// Topic name.
    pub topic: Arc<str>,
    /// Payload.
    pub payload: Bytes,
    /// QoS 0 or 1.
    pub qos: QoS,
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CloseReason {
    /// The client sent DISCONNECT.
    Disconnect,
    /// No CONNECT within the connect timeout.
    ConnectTimeout,
    /// Nothing received for 1.5 × keep-alive.
    KeepAliveTimeout,
    /// Authentication or the will topic was refused (CONNACK 0x05 sent).
    NotAuthorized,
    /// Not MQTT 3.1.1 (CONNACK 0x01 sent) or an unusable client id (0x02).
    ConnectRefused,
    /// A PUBLISH to a topic the ACL refuses.
    UnauthorizedPublish,
    /// A QoS 2 PUBLISH (not supported).
    QoS2Unsupported,
    /// The connection broke or the peer closed it.
    ConnectionLost,
    /// The server ended the connection (takeover, revocation, overflow, shutdown).
    Server(&'static str),
    /// A malformed or unexpected packet.
    Protocol(String),
    /// A topic name or filter that is not valid UTF-8, holds NUL or control
    /// characters, or (topic names) wildcards.
    InvalidTopic(String),
    /// The client certificate expired (notAfter passed).
    CertificateExpired,
    /// The admission hook refused the CONNECT (CONNACK 0x05 sent).
    ConnectionCap(String),
}

impl CloseReason {
    /// Whether the will message is published after this kind of close.
    fn publishes_will(&self) -> bool {
        !matches!(
            self,
            CloseReason::Disconnect
                | CloseReason::Server(_)
                | CloseReason::CertificateExpired
                | CloseReason::ConnectionCap(_)
        )
    }
}

/// What the session asks of the router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    /// CONNECT accepted; `client_id` may be empty (then no takeover applies).
    Connected {
        /// The client id from CONNECT.
        client_id: String,
    },
    /// Add these (already authorised) subscriptions with their granted QoS.
    Subscribe(Vec<(String, QoS)>),
    /// Remove these subscriptions.
    Unsubscribe(Vec<String>),
    /// Route this authorised message.
    Publish(Message),
    /// The ACL refused a PUBLISH (or a will) to this topic.
    PublishRefused(String),
    /// The ACL refused a SUBSCRIBE filter.
    SubscribeRefused(String),
    /// The authorizer refused the client certificate.
    AuthRefused(String),
    /// The session is over; close the connection after writing what is left.
    Closed(CloseReason),
}

#[derive(Debug)]
enum State {
    AwaitingConnect {
        deadline: Instant,
    },
    Connected {
        /// 1.5 × keep-alive, or `None` when keep-alive is off.
        grace: Option<Duration>,
        last_seen: Instant,
    },
    Closed(CloseReason),
}

/// One client connection's protocol state.
pub(crate) struct Session {
    config: SessionConfig,
    state: State,
    auth: Result<Identity, String>,
    will: Option<Message>,
    inflight: HashSet<u16>,
    /// The filters subscribed to, as sent.
    subscriptions: HashSet<String>,
    last_pkid: u16,
    transmit: BytesMut,
    events: VecDeque<Event>,
    /// When the client certificate expires.
    expires: Option<Instant>,
    admission: Option<Admission>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("state", &self.state)
            .field("auth", &self.auth)
            .field("inflight", &self.inflight.len())
            .field("subscriptions", &self.subscriptions.len())
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session for a connection that started at `now`, whose certificate
    /// authenticated as `auth`.
    pub(crate) fn new(auth: Result<Identity, String>, config: SessionConfig, now: Instant) -> Self {
        Session {
            state: State::AwaitingConnect {
                deadline: now + config.connect_timeout,
            },
            config,
            auth,
            will: None,
            inflight: HashSet::new(),
            subscriptions: HashSet::new(),
            last_pkid: 0,
            transmit: BytesMut::new(),
            events: VecDeque::new(),
            expires: None,
            admission: None,
        }
    }

    /// Ends the session at `expires` (the client certificate's notAfter).
    pub(crate) fn with_expiry(mut self, expires: Option<Instant>) -> Self {
        self.expires = expires;
        self
    }

    /// Asks `admission` before accepting a CONNECT.
    pub(crate) fn with_admission(mut self, admission: Admission) -> Self {
        self.admission = Some(admission);
        self
    }

    /// Number of subscriptions held.
    #[cfg(test)]
    pub(crate) fn subscription_count(&self) -> usize {
        self.subscriptions.len()
    }

    /// True after CONNACK 0x00 and before the close.
    pub(crate) fn is_connected(&self) -> bool {
        matches!(self.state, State::Connected { .. })
    }

    /// True once the session has ended.
    pub(crate) fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed(_))
    }

    /// True while another message may be handed to [`Session::deliver`].
    pub(crate) fn can_deliver(&self) -> bool {
        self.is_connected() && self.inflight.len() < self.config.max_inflight
    }

    /// The next event for the router.
    pub(crate) fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Bytes to write to the client.
    pub(crate) fn take_transmit(&mut self) -> BytesMut {
        self.transmit.split()
    }

    /// When [`Session::handle_timeout`] must be called next.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let protocol = match self.state {
            State::AwaitingConnect { deadline } => Some(deadline),
            State::Connected {
                grace: Some(grace),
                last_seen,
            } => Some(last_seen + grace),
            State::Connected { grace: None, .. } => None,
            State::Closed(_) => return None,
        };
        match (protocol, self.expires) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Closes the session when the certificate has expired or the connect or
    /// keep-alive deadline has passed.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.is_closed() {
            return;
        }
        if self.expires.is_some_and(|t| now >= t) {
            warn!("client certificate expired (notAfter passed); closing the session");
            return self.close(CloseReason::CertificateExpired);
        }
        if self.poll_timeout().is_some_and(|t| now >= t) {
            let reason = if self.is_connected() {
                CloseReason::KeepAliveTimeout
            } else {
                CloseReason::ConnectTimeout
            };
            info!(?reason, "closing");
            self.close(reason);
        }
    }

    /// Ends the session from outside: `ConnectionLost` for a broken
    /// connection (publishes the will), `Server(..)` when the server drops
    /// the client (does not).
    pub(crate) fn abort(&mut self, reason: CloseReason) {
        self.close(reason);
    }

    /// The will message to publish, once the session has ended without
    /// DISCONNECT.
    pub(crate) fn take_will(&mut self) -> Option<Message> {
        match &self.state {
            State::Closed(reason) if reason.publishes_will() => self.will.take(),
            _ => None,
        }
    }

    /// Parses and handles every complete packet in `input` (consumed);
    /// an incomplete packet stays in `input`.
    pub(crate) fn handle_input(
        &mut self,
        input: &mut BytesMut,
        now: Instant,
        acl: &impl Authorizer,
    ) {
        while !self.is_closed() && !input.is_empty() {
            match Packet::read(input, self.config.max_packet_size) {
                Ok(packet) => self.handle_packet(packet, now, acl),
                Err(CodecError::InsufficientBytes(_)) => return,
                Err(CodecError::TopicNotUtf8) => {
                    warn!(
                        "refusing a packet whose topic, filter or client id is not valid \
                         UTF-8; closing"
                    );
                    self.close(CloseReason::InvalidTopic("not valid UTF-8".into()));
                }
                Err(CodecError::InvalidProtocolLevel(level)) if !self.is_connected() => {
                    info!(level, "refusing a protocol other than MQTT 3.1.1");
                    self.send(Packet::ConnAck(ConnAck::new(
                        ConnectReturnCode::RefusedProtocolVersion,
                        false,
                    )));
                    self.close(CloseReason::ConnectRefused);
                }
                Err(e) => {
                    warn!(error = %e, "malformed packet");
                    self.close(CloseReason::Protocol(format!("malformed packet: {e}")));
                }
            }
        }
        if self.is_closed() {
            input.clear();
        }
    }

    /// Handles one packet from the client.
    pub(crate) fn handle_packet(&mut self, packet: Packet, now: Instant, acl: &impl Authorizer) {
        let identity = match (&mut self.state, &self.auth) {
            (State::Closed(_), _) => return,
            (State::AwaitingConnect { .. }, _) => {
                match packet {
                    Packet::Connect(connect) => self.on_connect(connect, now, acl),
                    other => self.protocol_error(&format!("expected CONNECT, got {other:?}")),
                }
                return;
            }
            (State::Connected { last_seen, .. }, Ok(identity)) => {
                *last_seen = now;
                identity.clone()
            }
            (State::Connected { .. }, Err(_)) => {
                self.protocol_error("connected without identity");
                return;
            }
        };
        match packet {
            Packet::Publish(publish) => self.on_publish(publish, &identity, acl),
            Packet::PubAck(ack) => {
                if !self.inflight.remove(&ack.pkid) {
                    debug!(pkid = ack.pkid, "PUBACK for a packet id not in flight");
                }
            }
            Packet::Subscribe(subscribe) => {
                let mut granted = Vec::new();
                let mut codes = Vec::with_capacity(subscribe.filters.len());
                for filter in subscribe.filters {
                    if has_control_chars(&filter.path) {
                        warn!(filter = ?filter.path, "topic filter with NUL or control characters; closing");
                        return self.close(CloseReason::InvalidTopic(
                            "control characters in a topic filter".into(),
                        ));
                    }
                    let known = self.subscriptions.contains(&filter.path);
                    if parse_filter(&filter.path).is_none() {
                        debug!(filter = %filter.path, "invalid topic filter");
                        codes.push(SubscribeReasonCode::Failure);
                    } else if !known && self.subscriptions.len() >= self.config.max_subscriptions {
                        warn!(
                            filter = %filter.path,
                            max = self.config.max_subscriptions,
                            "subscription refused: the session holds the most subscriptions allowed"
                        );
                        self.events.push_back(Event::SubscribeRefused(filter.path));
                        codes.push(SubscribeReasonCode::Failure);
                    } else if !acl.may_subscribe(&identity, &filter.path) {
                        warn!(filter = %filter.path, "subscription refused by the ACL");
                        self.events.push_back(Event::SubscribeRefused(filter.path));
                        codes.push(SubscribeReasonCode::Failure);
                    } else {
                        let qos = match filter.qos {
                            QoS::AtMostOnce => QoS::AtMostOnce,
                            QoS::AtLeastOnce | QoS::ExactlyOnce => QoS::AtLeastOnce,
                        };
                        codes.push(SubscribeReasonCode::Success(qos));
                        self.subscriptions.insert(filter.path.clone());
                        granted.push((filter.path, qos));
                    }
                }
                if !granted.is_empty() {
                    self.events.push_back(Event::Subscribe(granted));
                }
                self.send(Packet::SubAck(SubAck::new(subscribe.pkid, codes)));
            }
            Packet::Unsubscribe(unsubscribe) => {
                for topic in &unsubscribe.topics {
                    self.subscriptions.remove(topic);
                }
                self.events
                    .push_back(Event::Unsubscribe(unsubscribe.topics));
                self.send(Packet::UnsubAck(UnsubAck::new(unsubscribe.pkid)));
            }
            Packet::PingReq => self.send(Packet::PingResp),
            Packet::Disconnect => {
                debug!("client disconnected");
                self.will = None;
                self.close(CloseReason::Disconnect);
            }
            Packet::Connect(_) => self.protocol_error("second CONNECT"),
            Packet::PubRec(_) | Packet::PubRel(_) | Packet::PubComp(_) => {
                self.protocol_error("QoS 2 flow is not supported");
            }
            other => self.protocol_error(&format!("unexpected {other:?} from a client")),
        }
    }

    fn on_connect(&mut self, connect: rumqttc::Connect, now: Instant, acl: &impl Authorizer) {
        if connect.protocol != Protocol::V4 {
            info!(protocol = ?connect.protocol, "refusing a protocol other than MQTT 3.1.1");
            return self.refuse(
                ConnectReturnCode::RefusedProtocolVersion,
                CloseReason::ConnectRefused,
            );
        }
        let identity = match &self.auth {
            Ok(identity) => identity.clone(),
            Err(reason) => {
                warn!(%reason, "client certificate refused");
                self.events.push_back(Event::AuthRefused(reason.clone()));
                return self.refuse(ConnectReturnCode::NotAuthorized, CloseReason::NotAuthorized);
            }
        };
        if has_control_chars(&connect.client_id) {
            warn!(client_id = ?connect.client_id, "client id with control characters; refusing");
            return self.refuse(ConnectReturnCode::BadClientId, CloseReason::ConnectRefused);
        }
        if connect.client_id.is_empty() && !connect.clean_session {
            return self.refuse(ConnectReturnCode::BadClientId, CloseReason::ConnectRefused);
        }
        let mut will_message = None;
        if let Some(will) = connect.last_will {
            if !valid_topic(&will.topic) {
                warn!(topic = ?will.topic, "invalid will topic (empty, wildcards, NUL or control characters); closing");
                return self.close(CloseReason::InvalidTopic("invalid will topic".into()));
            }
            if !acl.may_publish(&identity, &will.topic) {
                warn!(topic = %will.topic, "will topic refused by the ACL");
                self.events.push_back(Event::PublishRefused(will.topic));
                return self.refuse(ConnectReturnCode::NotAuthorized, CloseReason::NotAuthorized);
            }
            will_message = Some(Message {
                topic: Arc::from(will.topic),
                payload: will.message,
                qos: if will.qos == QoS::AtMostOnce {
                    QoS::AtMostOnce
                } else {
                    QoS::AtLeastOnce
                },
            });
        }
        if let Some(admit) = self.admission.as_mut()
            && let Err(reason) = admit(&connect.client_id)
        {
            warn!(%identity, %reason, "CONNECT refused: connection cap");
            return self.refuse(
                ConnectReturnCode::NotAuthorized,
                CloseReason::ConnectionCap(reason),
            );
        }
        self.will = will_message;
        if !connect.clean_session {
            debug!("persistent session requested; treated as a clean session");
        }
        let grace = (connect.keep_alive > 0)
            .then(|| Duration::from_millis(u64::from(connect.keep_alive) * 1500));
        self.state = State::Connected {
            grace,
            last_seen: now,
        };
        info!(client_id = %connect.client_id, keep_alive = connect.keep_alive, "connected");
        self.events.push_back(Event::Connected {
            client_id: connect.client_id,
        });
        self.send(Packet::ConnAck(ConnAck::new(
            ConnectReturnCode::Success,
            false,
        )));
    }

    fn on_publish(&mut self, publish: Publish, identity: &Identity, acl: &impl Authorizer) {
        if publish.qos == QoS::ExactlyOnce {
            warn!(topic = %publish.topic, "QoS 2 PUBLISH is not supported; closing");
            return self.close(CloseReason::QoS2Unsupported);
        }
        if !valid_topic(&publish.topic) {
            warn!(
                topic = ?publish.topic,
                "refusing PUBLISH: invalid topic name (empty, wildcards, NUL or control characters); closing"
            );
            return self.close(CloseReason::InvalidTopic(
                "invalid topic name in PUBLISH".into(),
            ));
        }
        if !acl.may_publish(identity, &publish.topic) {
            warn!(topic = %publish.topic, "PUBLISH refused by the ACL; closing");
            self.events.push_back(Event::PublishRefused(publish.topic));
            return self.close(CloseReason::UnauthorizedPublish);
        }
        let (qos, pkid) = (publish.qos, publish.pkid);
        self.events.push_back(Event::Publish(Message {
            topic: Arc::from(publish.topic),
            payload: publish.payload,
            qos,
        }));
        if qos == QoS::AtLeastOnce {
            self.send(Packet::PubAck(PubAck::new(pkid)));
        }
    }

    /// Sends `message` (already at its effective QoS) to the client. Ignored
    /// unless connected; call only while [`Session::can_deliver`].
    pub(crate) fn deliver(&mut self, message: &Message) {
        if !self.is_connected() {
            return;
        }
        let pkid = match message.qos {
            QoS::AtMostOnce => 0,
            QoS::AtLeastOnce | QoS::ExactlyOnce => match self.next_pkid() {
                Some(pkid) => pkid,
                None => return self.close(CloseReason::Server("no free packet id")),
            },
        };
        let qos = if pkid == 0 {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        };
        self.send(Packet::Publish(Publish {
            dup: false,
            qos,
            retain: false,
            topic: message.topic.to_string(),
            pkid,
            payload: message.payload.clone(),
        }));
    }

    /// A free packet id, marked in flight.
    fn next_pkid(&mut self) -> Option<u16> {
        for _ in 0..u16::MAX {
            self.last_pkid = self.last_pkid.checked_add(1).unwrap_or(1);
            if self.inflight.insert(self.last_pkid) {
                return Some(self.last_pkid);
            }
        }
        None
    }

    fn refuse(&mut self, code: ConnectReturnCode, reason: CloseReason) {
        self.send(Packet::ConnAck(ConnAck::new(code, false)));
        self.close(reason);
    }

    fn protocol_error(&mut self, what: &str) {
        warn!(error = what, "protocol violation; closing");
        self.close(CloseReason::Protocol(what.to_owned()));
    }

    fn send(&mut self, packet: Packet) {
        if let Err(e) = packet.write(&mut self.transmit, usize::MAX) {
            warn!(error = %e, "cannot encode a packet; closing");
            self.close(CloseReason::Protocol(format!("cannot encode: {e}")));
        }
    }

    fn close(&mut self, reason: CloseReason) {
        if !self.is_closed() {
            self.events.push_back(Event::Closed(reason.clone()));
            self.state = State::Closed(reason);
        }
    }
}

#[cfg(test)]
mod tests;
