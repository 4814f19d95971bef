//! The per-connection MQTT 3.1.1 / 5 protocol state machine, without I/O.
//!
//! The shell feeds it the bytes read from the TLS stream
//! ([`Session::handle_input`]), the messages the router hands to this
//! connection ([`Session::deliver`]) and the current time
//! ([`Session::handle_timeout`]); it answers with bytes to write
//! ([`Session::take_transmit`]) and [`Event`]s for the hub
//! ([`Session::poll_event`]). Events are produced before the bytes that
//! acknowledge them, so a shell that applies every event before writing makes
//! a subscription active before its SUBACK is on the wire and routes a
//! message before its PUBACK.
//!
//! One state machine for both versions (the protocol level comes from
//! CONNECT); the codec ([`crate::wire`]) maps MQTT 5 reason codes to 3.1.1
//! return codes and drops properties for 3.1.1.
//!
//! * CONNECT first, within the connect timeout. The identity comes from the
//!   client certificate; user name and password are ignored. A refused
//!   identity gets CONNACK 0x87 (3.1.1: 0x05).
//! * MQTT 5 enhanced authentication with method `ace` (RFC 9431, see
//!   `connect.rs`): a certbound token bound to the TLS client certificate's
//!   key adds the topic rights of its scope; AUTH 0x19 re-authenticates
//!   in-session; a token that expires ends the session (DISCONNECT 0x87).
//! * QoS 0, 1 and 2 both ways; Receive Maximum both ways; topic aliases both
//!   ways; Maximum Packet Size both ways; subscription options and
//!   identifiers; retained messages (stored by the hub); will messages with
//!   Will Delay; sessions that outlive the connection (Session Expiry), whose
//!   state the shell parks in the hub ([`Session::snapshot`]).
//! * A PUBLISH the ACL refuses: 3.1.1 closes the connection (no negative
//!   PUBACK); MQTT 5 answers PUBACK/PUBREC 0x87, or DISCONNECT 0x87 at QoS 0.
//!   A refused SUBSCRIBE filter gets 0x87 (3.1.1: 0x80), an invalid one 0x8F,
//!   one over the per-session cap 0x97 (quota exceeded).
//! * Keep-alive: no packet for 1.5 × keep-alive closes the connection; the
//!   server caps keep-alive (MQTT 5: Server Keep Alive in CONNACK).
//! * The session ends when the client certificate expires
//!   ([`Session::with_expiry`]).
//! * Topic names and filters: UTF-8 (the codec refuses anything else), no
//!   NUL or control characters, no wildcards in topic names; anything else
//!   closes the connection ([`CloseReason::InvalidTopic`]).

mod connect;
mod events;
mod flow;
mod subscribe;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tracing::{debug, info, warn};

pub(crate) use events::{Admission, AdmitRequest, CloseReason, Event, Outgoing, Snapshot, Stage};

use crate::identity::{Authorizer, Identity};
pub(crate) use crate::message::{Message, SubOpts};
use crate::wire::{self, Level, Packet, Properties, Reasoned, WireError, reason};

/// Limits of one session.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SessionConfig {
    /// Largest accepted packet (remaining length), bytes.
    pub max_packet_size: usize,
    /// Time from the start of the connection until CONNECT must have arrived.
    pub connect_timeout: Duration,
    /// QoS 1 and 2 messages sent to the client and not yet acknowledged
    /// (lowered by the client's Receive Maximum).
    pub max_inflight: usize,
    /// Subscriptions one session may hold.
    pub max_subscriptions: usize,
    /// QoS 2 messages from the client awaiting PUBREL (our Receive Maximum).
    pub receive_maximum: u16,
    /// Topic aliases the client may set (our Topic Alias Maximum).
    pub topic_alias_max: u16,
    /// Longest keep-alive accepted, seconds (longer or 0 is lowered to it).
    pub max_keep_alive: u16,
    /// Longest session expiry accepted, seconds.
    pub max_session_expiry: u32,
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

/// The topic rights and lifetime of an accepted access token.
#[derive(Debug, Clone)]
struct TokenState {
    expires: Instant,
    publish: Vec<String>,
    subscribe: Vec<String>,
}

/// One client connection's protocol state.
pub(crate) struct Session {
    config: SessionConfig,
    state: State,
    level: Level,
    auth: Result<Identity, String>,
    peer_cert: Option<Arc<[u8]>>,
    will: Option<(Message, u32)>,
    session_expiry: u32,
    /// Outgoing QoS 1/2 messages by packet id.
    inflight: HashMap<u16, Outgoing>,
    /// The client's Receive Maximum, capped by the configuration.
    send_quota: usize,
    /// The client's Maximum Packet Size.
    client_max_packet: usize,
    /// The client asked for Reason Strings and User Properties on errors.
    problem_info: bool,
    /// QoS 2 packet ids received and not yet released.
    incoming_qos2: HashSet<u16>,
    /// Topic aliases the client set.
    aliases_in: HashMap<u16, String>,
    /// Topic aliases the server set, and how many the client allows.
    aliases_out: HashMap<Arc<str>, u16>,
    alias_out_max: u16,
    subscriptions: HashMap<String, SubOpts>,
    last_pkid: u16,
    auth_method: Option<String>,
    token: Option<TokenState>,
    transmit: BytesMut,
    events: VecDeque<Event>,
    /// When the client certificate expires.
    expires: Option<Instant>,
    admission: Option<Admission>,
    /// Messages resumed from a stored session, sent after CONNACK.
    resend: Vec<(u16, Outgoing)>,
    /// Sequence for assigned client ids.
    conn_tag: u64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("state", &self.state)
            .field("level", &self.level)
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
            level: Level::V311,
            config,
            auth,
            peer_cert: None,
            will: None,
            session_expiry: 0,
            inflight: HashMap::new(),
            send_quota: config.max_inflight,
            client_max_packet: usize::MAX,
            problem_info: true,
            incoming_qos2: HashSet::new(),
            aliases_in: HashMap::new(),
            aliases_out: HashMap::new(),
            alias_out_max: 0,
            subscriptions: HashMap::new(),
            last_pkid: 0,
            auth_method: None,
            token: None,
            transmit: BytesMut::new(),
            events: VecDeque::new(),
            expires: None,
            admission: None,
            resend: Vec::new(),
            conn_tag: 0,
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

    /// The client certificate (DER), for access tokens bound to its key;
    /// `tag` makes assigned client ids unique.
    pub(crate) fn with_peer_cert(mut self, der: Option<Arc<[u8]>>, tag: u64) -> Self {
        self.peer_cert = der;
        self.conn_tag = tag;
        self
    }

    /// Number of subscriptions held.
    #[cfg(test)]
    pub(crate) fn subscription_count(&self) -> usize {
        self.subscriptions.len()
    }

    /// The protocol level of the session (3.1.1 until CONNECT says otherwise).
    pub(crate) fn level(&self) -> Level {
        self.level
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
        self.is_connected() && self.inflight.len() < self.send_quota
    }

    /// The next event for the hub.
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
        [
            protocol,
            self.expires,
            self.token.as_ref().map(|t| t.expires),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Closes the session when the certificate or token has expired or the
    /// connect or keep-alive deadline has passed.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.is_closed() {
            return;
        }
        if self.expires.is_some_and(|t| now >= t) {
            warn!("client certificate expired (notAfter passed); closing the session");
            return self.disconnect(
                reason::NOT_AUTHORIZED,
                "the client certificate expired",
                CloseReason::CertificateExpired,
            );
        }
        if self.token.as_ref().is_some_and(|t| now >= t.expires) {
            warn!("access token expired without re-authentication; closing the session");
            return self.disconnect(
                reason::NOT_AUTHORIZED,
                "the access token expired: send AUTH (0x19) with a fresh token before it does",
                CloseReason::TokenExpired,
            );
        }
        if self.poll_timeout().is_some_and(|t| now >= t) {
            if self.is_connected() {
                info!("keep-alive timeout; closing");
                self.disconnect(
                    reason::KEEP_ALIVE_TIMEOUT,
                    "keep-alive timeout",
                    CloseReason::KeepAliveTimeout,
                );
            } else {
                info!("no CONNECT in time; closing");
                self.close(CloseReason::ConnectTimeout);
            }
        }
    }

    /// Ends the session from outside: `ConnectionLost` for a broken
    /// connection (publishes the will), `Server(..)` when the server drops
    /// the client (does not; MQTT 5 clients get DISCONNECT 0x98, or 0x8E
    /// when taken over).
    pub(crate) fn abort(&mut self, why: CloseReason) {
        if let CloseReason::Server(text) = &why {
            let code = if text.contains("taken over") {
                reason::SESSION_TAKEN_OVER
            } else {
                reason::ADMINISTRATIVE_ACTION
            };
            return self.disconnect(code, text, why.clone());
        }
        self.close(why);
    }

    /// The will message to publish once the session has ended without a
    /// normal DISCONNECT, with its Will Delay Interval (seconds).
    pub(crate) fn take_will(&mut self) -> Option<(Message, u32)> {
        match &self.state {
            State::Closed(why) if why.publishes_will() => self.will.take(),
            _ => None,
        }
    }

    /// After the close: how long the session is to be kept (seconds, 0 =
    /// not at all) and its state.
    pub(crate) fn snapshot(&mut self) -> (u32, Snapshot) {
        let mut outgoing: Vec<(u16, Outgoing)> = self.inflight.drain().collect();
        outgoing.sort_by_key(|(pkid, _)| *pkid);
        (
            self.session_expiry,
            Snapshot {
                subscriptions: std::mem::take(&mut self.subscriptions),
                outgoing,
                incoming_qos2: self.incoming_qos2.drain().collect(),
            },
        )
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
            match wire::read(input, self.level, self.config.max_packet_size) {
                Ok(Some(packet)) => self.handle_packet(packet, now, acl),
                Ok(None) => return,
                Err(e) => self.on_wire_error(&e),
            }
        }
        if self.is_closed() {
            input.clear();
        }
    }

    fn on_wire_error(&mut self, e: &WireError) {
        match e {
            WireError::UnsupportedProtocol { name, level } if !self.is_connected() => {
                info!(%name, level, "refusing an MQTT version other than 3.1.1 and 5");
                // Answer in the version the client speaks (§3.1.2.2).
                self.level = if *level >= 5 { Level::V5 } else { Level::V311 };
                self.refuse(
                    reason::UNSUPPORTED_PROTOCOL_VERSION,
                    CloseReason::ConnectRefused,
                );
            }
            WireError::BadUtf8 => {
                warn!(
                    "refusing a packet whose topic, filter or string is not valid UTF-8; closing"
                );
                self.disconnect(
                    reason::MALFORMED_PACKET,
                    "a string is not valid UTF-8",
                    CloseReason::InvalidTopic("not valid UTF-8".into()),
                );
            }
            e => {
                warn!(error = %e, "unreadable packet; closing");
                if self.is_connected() {
                    // A second CONNECT of another version is a protocol
                    // error; 0x84 is a CONNACK code, not a DISCONNECT one.
                    let code = match e {
                        WireError::UnsupportedProtocol { .. } => reason::PROTOCOL_ERROR,
                        e => e.reason_code(),
                    };
                    self.disconnect(code, &e.to_string(), CloseReason::Protocol(e.to_string()));
                } else {
                    self.close(CloseReason::Protocol(e.to_string()));
                }
            }
        }
    }

    /// Handles one packet from the client.
    fn handle_packet(&mut self, packet: Packet, now: Instant, acl: &impl Authorizer) {
        let identity = match (&mut self.state, &self.auth) {
            (State::Closed(_), _) => return,
            (State::AwaitingConnect { .. }, _) => {
                match packet {
                    Packet::Connect(connect) => self.on_connect(*connect, now, acl),
                    other => {
                        self.protocol_error(&format!("expected CONNECT, got {}", other.name()))
                    }
                }
                return;
            }
            (State::Connected { last_seen, .. }, Ok(identity)) => {
                *last_seen = now;
                identity.clone()
            }
            (State::Connected { .. }, Err(_)) => {
                return self.protocol_error("connected without identity");
            }
        };
        match packet {
            Packet::Publish(publish) => self.on_publish(publish, &identity, now, acl),
            Packet::PubAck(ack) => self.on_puback(ack.pkid),
            Packet::PubRec(ack) => self.on_pubrec(&ack),
            Packet::PubRel(ack) => self.on_pubrel(ack.pkid),
            Packet::PubComp(ack) => self.on_pubcomp(ack.pkid),
            Packet::Subscribe(subscribe) => self.on_subscribe(subscribe, &identity, acl),
            Packet::Unsubscribe(unsubscribe) => self.on_unsubscribe(unsubscribe),
            Packet::PingReq => {
                self.send(&Packet::PingResp);
            }
            Packet::Disconnect(d) => self.on_disconnect(&d),
            Packet::Auth(auth) => self.on_auth(auth, &identity, now, acl),
            Packet::Connect(_) => self.protocol_error("second CONNECT"),
            other => self.protocol_error(&format!("a client never sends {}", other.name())),
        }
    }

    fn on_disconnect(&mut self, d: &Reasoned) {
        if let Some(expiry) = d.props.session_expiry {
            if self.session_expiry == 0 && expiry > 0 {
                // §3.14.2.2.2: not from 0 to non-zero.
                return self
                    .protocol_error("DISCONNECT sets a session expiry on a session without one");
            }
            self.session_expiry = expiry.min(self.config.max_session_expiry);
        }
        let with_will = d.code == reason::DISCONNECT_WITH_WILL;
        debug!(code = d.code, "client disconnected");
        if !with_will {
            self.will = None;
        }
        self.close(CloseReason::Disconnect(with_will));
    }

    /// Refuses CONNECT with `code` (an MQTT 5 reason; mapped for 3.1.1).
    fn refuse(&mut self, code: u8, why: CloseReason) {
        self.send(&Packet::ConnAck(wire::ConnAck {
            session_present: false,
            code,
            props: Properties::default(),
        }));
        self.close(why);
    }

    /// Refuses CONNECT with `code` and a reason string (MQTT 5).
    fn refuse_with(&mut self, code: u8, text: &str, why: CloseReason) {
        self.send(&Packet::ConnAck(wire::ConnAck {
            session_present: false,
            code,
            props: self.problem(text),
        }));
        self.close(why);
    }

    fn protocol_error(&mut self, what: &str) {
        warn!(error = what, "protocol violation; closing");
        self.disconnect(
            reason::PROTOCOL_ERROR,
            what,
            CloseReason::Protocol(what.to_owned()),
        );
    }

    /// Sends DISCONNECT with `code` (MQTT 5 only; 3.1.1 just closes) and
    /// closes.
    fn disconnect(&mut self, code: u8, text: &str, why: CloseReason) {
        if self.is_connected() && self.level == Level::V5 {
            let props = self.problem(text);
            self.send(&Packet::Disconnect(Reasoned { code, props }));
        }
        self.close(why);
    }

    /// A Reason String property, when the client wants problem information.
    fn problem(&self, text: &str) -> Properties {
        Properties {
            reason_string: (self.problem_info && self.level == Level::V5).then(|| text.to_owned()),
            ..Properties::default()
        }
    }

    /// Encodes `packet`; one larger than the client accepts is sent without
    /// its Reason String and User Properties, or not at all (§3.1.2.11.4).
    /// Returns whether it was sent.
    fn send(&mut self, packet: &Packet) -> bool {
        let start = self.transmit.len();
        match wire::write(packet, self.level, &mut self.transmit) {
            Ok(n) if n <= self.client_max_packet => true,
            Ok(_) => {
                self.transmit.truncate(start);
                match strip_problem_info(packet) {
                    Some(smaller) => self.send(&smaller),
                    None => false,
                }
            }
            Err(e) => {
                self.transmit.truncate(start);
                warn!(error = %e, packet = packet.name(), "cannot encode a packet");
                false
            }
        }
    }

    fn close(&mut self, why: CloseReason) {
        if !self.is_closed() {
            self.events.push_back(Event::Closed(why.clone()));
            self.state = State::Closed(why);
        }
    }
}

/// `packet` without Reason String and User Properties, when it has any.
fn strip_problem_info(packet: &Packet) -> Option<Packet> {
    let strip = |p: &Properties| {
        let smaller = p.clone().without_problem_info();
        (smaller != *p).then_some(smaller)
    };
    Some(match packet {
        Packet::ConnAck(a) => Packet::ConnAck(wire::ConnAck {
            props: strip(&a.props)?,
            ..a.clone()
        }),
        Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => {
            let a = wire::Ack {
                props: strip(&a.props)?,
                ..a.clone()
            };
            match packet {
                Packet::PubAck(_) => Packet::PubAck(a),
                Packet::PubRec(_) => Packet::PubRec(a),
                Packet::PubRel(_) => Packet::PubRel(a),
                _ => Packet::PubComp(a),
            }
        }
        Packet::SubAck(s) => Packet::SubAck(wire::SubAck {
            props: strip(&s.props)?,
            ..s.clone()
        }),
        Packet::UnsubAck(s) => Packet::UnsubAck(wire::SubAck {
            props: strip(&s.props)?,
            ..s.clone()
        }),
        Packet::Disconnect(d) => Packet::Disconnect(Reasoned {
            props: strip(&d.props)?,
            code: d.code,
        }),
        Packet::Auth(d) => Packet::Auth(Reasoned {
            props: strip(&d.props)?,
            code: d.code,
        }),
        _ => return None,
    })
}
