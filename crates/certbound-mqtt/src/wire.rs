//! The MQTT 3.1.1 and 5 packet codec of the embedded server: one packet
//! vocabulary for both versions (the MQTT 5 one; 3.1.1 is the subset
//! without properties and with its own return codes), pure functions over
//! bytes.
//!
//! Why not rumqttc's codec here (it stays the client's): its MQTT 5 reader
//! does not know the AUTH packet at all (type 15 is "invalid packet type"),
//! which enhanced authentication and RFC 9431 re-authentication need, and
//! refuses a DISCONNECT without a reason code, which §3.14.2.1 allows; and
//! one vocabulary for both versions lets the session be one state machine.
//!
//! * [`read`] takes one packet off the front of a buffer (`Ok(None)` while
//!   it is incomplete), checking the remaining length against the largest
//!   packet allowed *before* buffering it, the fixed-header flags, UTF-8
//!   (no U+0000), which properties each packet may carry and that no
//!   property but User Property and Subscription Identifier is repeated.
//! * [`write`] encodes a packet for the session's protocol level: for 3.1.1
//!   properties are dropped and MQTT 5 reason codes are mapped to 3.1.1
//!   return codes (CONNACK) or 0x80 (SUBACK failures).

mod decode;
mod encode;
mod props;
#[cfg(test)]
mod tests;

use bytes::Bytes;
use rumqttc::QoS;

pub(crate) use decode::read;
pub(crate) use encode::write;
pub(crate) use props::Properties;

/// The protocol level a session speaks (CONNECT's protocol level byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Level {
    /// MQTT 3.1.1 (level 4).
    V311,
    /// MQTT 5.0 (level 5).
    V5,
}

/// MQTT 5 reason codes the server uses (§2.4).
pub(crate) mod reason {
    pub const SUCCESS: u8 = 0x00;
    pub const DISCONNECT_WITH_WILL: u8 = 0x04;
    pub const NO_SUBSCRIPTION_EXISTED: u8 = 0x11;
    pub const REAUTHENTICATE: u8 = 0x19;
    pub const MALFORMED_PACKET: u8 = 0x81;
    pub const PROTOCOL_ERROR: u8 = 0x82;
    pub const IMPLEMENTATION_SPECIFIC: u8 = 0x83;
    pub const UNSUPPORTED_PROTOCOL_VERSION: u8 = 0x84;
    pub const CLIENT_ID_NOT_VALID: u8 = 0x85;
    pub const BAD_USERNAME_OR_PASSWORD: u8 = 0x86;
    pub const NOT_AUTHORIZED: u8 = 0x87;
    pub const SERVER_UNAVAILABLE: u8 = 0x88;
    pub const SERVER_BUSY: u8 = 0x89;
    pub const BAD_AUTHENTICATION_METHOD: u8 = 0x8C;
    pub const KEEP_ALIVE_TIMEOUT: u8 = 0x8D;
    pub const SESSION_TAKEN_OVER: u8 = 0x8E;
    pub const TOPIC_FILTER_INVALID: u8 = 0x8F;
    pub const TOPIC_NAME_INVALID: u8 = 0x90;
    pub const PACKET_ID_NOT_FOUND: u8 = 0x92;
    pub const RECEIVE_MAXIMUM_EXCEEDED: u8 = 0x93;
    pub const TOPIC_ALIAS_INVALID: u8 = 0x94;
    pub const PACKET_TOO_LARGE: u8 = 0x95;
    pub const QUOTA_EXCEEDED: u8 = 0x97;
    pub const ADMINISTRATIVE_ACTION: u8 = 0x98;
}

/// Why bytes are not a packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WireError {
    /// The packet is larger than allowed (remaining length).
    #[error("packet of {size} bytes is larger than the {max} allowed")]
    TooLarge {
        /// Remaining length announced.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// Not well-formed (§1.5, §2): the text says what.
    #[error("malformed packet: {0}")]
    Malformed(String),
    /// Well-formed but against the protocol (a property a packet may not
    /// carry, a repeated property, a zero Receive Maximum...).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A string that is not UTF-8 or holds U+0000.
    #[error("a string is not valid UTF-8 or contains U+0000")]
    BadUtf8,
    /// CONNECT with a protocol name or level the server does not speak
    /// (answered with CONNACK 0x84 / 3.1.1 0x01).
    #[error("unsupported protocol {name:?} level {level}")]
    UnsupportedProtocol {
        /// Protocol name sent.
        name: String,
        /// Protocol level sent.
        level: u8,
    },
}

impl WireError {
    /// The MQTT 5 reason code for a DISCONNECT (or CONNACK) about this error.
    pub(crate) fn reason_code(&self) -> u8 {
        match self {
            WireError::TooLarge { .. } => reason::PACKET_TOO_LARGE,
            WireError::Malformed(_) | WireError::BadUtf8 => reason::MALFORMED_PACKET,
            WireError::Protocol(_) => reason::PROTOCOL_ERROR,
            WireError::UnsupportedProtocol { .. } => reason::UNSUPPORTED_PROTOCOL_VERSION,
        }
    }
}

/// CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Connect {
    pub level: Level,
    pub clean_start: bool,
    pub keep_alive: u16,
    pub client_id: String,
    pub will: Option<Will>,
    pub username: Option<String>,
    pub password: Option<Bytes>,
    pub props: Properties,
}

/// The will message of a CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Will {
    pub topic: String,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    /// Will properties (MQTT 5): delay, expiry, content type, ...
    pub props: Properties,
}

/// CONNACK.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct ConnAck {
    pub session_present: bool,
    /// MQTT 5 reason code (mapped to a 3.1.1 return code on the wire).
    pub code: u8,
    pub props: Properties,
}

/// PUBLISH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Publish {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    /// Empty when an MQTT 5 Topic Alias stands for it.
    pub topic: String,
    /// 0 for QoS 0.
    pub pkid: u16,
    pub payload: Bytes,
    pub props: Properties,
}

/// PUBACK, PUBREC, PUBREL and PUBCOMP.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Ack {
    pub pkid: u16,
    /// MQTT 5 reason code (not on the wire in 3.1.1).
    pub code: u8,
    pub props: Properties,
}

/// One filter of a SUBSCRIBE with its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SubFilter {
    pub filter: String,
    pub qos: QoS,
    /// MQTT 5: do not send the subscriber its own publications.
    pub no_local: bool,
    /// MQTT 5: keep the retain flag as published.
    pub retain_as_published: bool,
    /// MQTT 5: 0 send retained messages, 1 only for a new subscription, 2 never.
    pub retain_handling: u8,
}

impl SubFilter {
    /// A filter with 3.1.1 semantics.
    #[cfg(test)]
    pub(crate) fn new(filter: &str, qos: QoS) -> Self {
        SubFilter {
            filter: filter.to_owned(),
            qos,
            no_local: false,
            retain_as_published: false,
            retain_handling: 0,
        }
    }
}

/// SUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Subscribe {
    pub pkid: u16,
    pub filters: Vec<SubFilter>,
    pub props: Properties,
}

/// SUBACK and UNSUBACK: one reason code per filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SubAck {
    pub pkid: u16,
    pub codes: Vec<u8>,
    pub props: Properties,
}

/// UNSUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unsubscribe {
    pub pkid: u16,
    pub filters: Vec<String>,
    pub props: Properties,
}

/// DISCONNECT (3.1.1: no reason code or properties) and AUTH.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Reasoned {
    pub code: u8,
    pub props: Properties,
}

/// Every MQTT control packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Packet {
    Connect(Box<Connect>),
    ConnAck(ConnAck),
    Publish(Publish),
    PubAck(Ack),
    PubRec(Ack),
    PubRel(Ack),
    PubComp(Ack),
    Subscribe(Subscribe),
    SubAck(SubAck),
    Unsubscribe(Unsubscribe),
    UnsubAck(SubAck),
    PingReq,
    PingResp,
    Disconnect(Reasoned),
    Auth(Reasoned),
}

impl Packet {
    /// The packet's name, for logs.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Packet::Connect(_) => "CONNECT",
            Packet::ConnAck(_) => "CONNACK",
            Packet::Publish(_) => "PUBLISH",
            Packet::PubAck(_) => "PUBACK",
            Packet::PubRec(_) => "PUBREC",
            Packet::PubRel(_) => "PUBREL",
            Packet::PubComp(_) => "PUBCOMP",
            Packet::Subscribe(_) => "SUBSCRIBE",
            Packet::SubAck(_) => "SUBACK",
            Packet::Unsubscribe(_) => "UNSUBSCRIBE",
            Packet::UnsubAck(_) => "UNSUBACK",
            Packet::PingReq => "PINGREQ",
            Packet::PingResp => "PINGRESP",
            Packet::Disconnect(_) => "DISCONNECT",
            Packet::Auth(_) => "AUTH",
        }
    }
}

/// The size of a whole packet whose remaining length is `remaining`
/// (fixed header byte, remaining length bytes, body): what MQTT 5's
/// Maximum Packet Size counts.
pub(crate) fn packet_size(remaining: usize) -> usize {
    1 + encode::varint_len(remaining) + remaining
}

/// QoS from its two bits.
pub(crate) fn qos_from(bits: u8) -> Option<QoS> {
    match bits {
        0 => Some(QoS::AtMostOnce),
        1 => Some(QoS::AtLeastOnce),
        2 => Some(QoS::ExactlyOnce),
        _ => None,
    }
}

/// QoS as its two bits.
pub(crate) fn qos_bits(qos: QoS) -> u8 {
    match qos {
        QoS::AtMostOnce => 0,
        QoS::AtLeastOnce => 1,
        QoS::ExactlyOnce => 2,
    }
}
