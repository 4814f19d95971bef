//! What the session tells the shell and the hub, and what it keeps across
//! connections.

use std::collections::HashMap;

use super::{Message, SubOpts};

/// What a CONNECT asks of the shell's admission hook.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AdmitRequest<'a> {
    /// The client id (assigned by the server when the client sent none).
    pub client_id: &'a str,
    /// Clean Start (3.1.1: Clean Session).
    pub clean_start: bool,
    /// The session is to outlive the connection (Session Expiry > 0).
    pub persistent: bool,
}

/// Session state that outlives a connection (Session Expiry > 0).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Snapshot {
    /// Subscriptions, as sent, with their options.
    pub subscriptions: HashMap<String, SubOpts>,
    /// QoS 1 and 2 messages sent and not yet acknowledged, by packet id.
    pub outgoing: Vec<(u16, Outgoing)>,
    /// Packet ids of QoS 2 messages received and not yet released.
    pub incoming_qos2: Vec<u16>,
}

/// A QoS 1 or 2 message to the client and where its handshake stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outgoing {
    pub message: Message,
    pub stage: Stage,
}

/// The acknowledgement an outgoing message waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)] // named after the packets
pub(crate) enum Stage {
    /// QoS 1, PUBLISH sent.
    PubAck,
    /// QoS 2, PUBLISH sent.
    PubRec,
    /// QoS 2, PUBREL sent.
    PubComp,
}

/// The shell's say on a CONNECT the session accepted: `Err(reason)` refuses
/// it with CONNACK 0x97 (3.1.1: 0x05; the per-identity connection cap);
/// `Ok(Some(snapshot))` resumes a stored session (Session Present).
pub(crate) type Admission =
    Box<dyn FnMut(&AdmitRequest<'_>) -> Result<Option<Snapshot>, String> + Send>;

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CloseReason {
    /// The client sent DISCONNECT (`true`: MQTT 5 0x04, publish the will).
    Disconnect(bool),
    /// No CONNECT within the connect timeout.
    ConnectTimeout,
    /// Nothing received for 1.5 × keep-alive.
    KeepAliveTimeout,
    /// Authentication or the will topic was refused (CONNACK 0x87/0x05).
    NotAuthorized,
    /// Unsupported protocol, unusable client id or authentication method.
    ConnectRefused,
    /// A PUBLISH to a topic the ACL refuses.
    UnauthorizedPublish,
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
    /// The access token of the session expired without re-authentication.
    TokenExpired,
    /// The admission hook refused the CONNECT.
    ConnectionCap(String),
}

impl CloseReason {
    /// Whether the will message is published after this kind of close.
    pub(super) fn publishes_will(&self) -> bool {
        match self {
            CloseReason::Disconnect(with_will) => *with_will,
            CloseReason::Server(_)
            | CloseReason::CertificateExpired
            | CloseReason::ConnectionCap(_) => false,
            _ => true,
        }
    }
}

/// What the session asks of the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    /// CONNECT accepted.
    Connected {
        /// The client id (assigned by the server when the client sent none).
        client_id: String,
    },
    /// Add these (already authorised) subscriptions; `true`: send the
    /// retained messages that match (Retain Handling).
    Subscribe(Vec<(String, SubOpts, bool)>),
    /// Remove these subscriptions.
    Unsubscribe(Vec<String>),
    /// Route this authorised message (and store it when `retain` is set).
    Publish(Message),
    /// The ACL refused a PUBLISH (or a will) to this topic.
    PublishRefused(String),
    /// The ACL refused a SUBSCRIBE filter.
    SubscribeRefused(String),
    /// The authorizer refused the client certificate or token.
    AuthRefused(String),
    /// An access token was accepted (CONNECT or re-authentication); its id,
    /// for revocation.
    TokenAccepted(Vec<u8>),
    /// The session is over; close the connection after writing what is left.
    Closed(CloseReason),
}
