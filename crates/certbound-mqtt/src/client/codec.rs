//! The client's packet vocabulary on the server's codec ([`crate::wire`],
//! MQTT 3.1.1 and 5 including AUTH): the client state machine speaks only
//! [`Incoming`] and the `encode_*` functions.
//!
//! rumqttc's codec served here before; its MQTT 5 reader cannot read AUTH,
//! which in-session re-authentication (RFC 9431) needs. The tests still
//! check this client against rumqttc's encoder and decoder.

use bytes::{Bytes, BytesMut};

use super::{Message, Protocol, QoS};
use crate::MqttError;
use crate::wire::{self, Ack, Level, Packet, Properties, Reasoned, SubFilter, reason};

/// A packet from the server, protocol version folded away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Incoming {
    /// CONNACK; `refused` names the reason when the server said no.
    ConnAck {
        refused: Option<String>,
        /// MQTT 5 Receive Maximum of the server.
        receive_max: Option<u16>,
        /// MQTT 5 Maximum Packet Size of the server.
        max_packet: Option<u32>,
    },
    /// PUBLISH (QoS 0 or 1; QoS 2 is a protocol error of the server).
    Publish { pkid: u16, message: Message },
    /// PUBACK; `refused` is an MQTT 5 reason code >= 0x80.
    PubAck { pkid: u16, refused: Option<String> },
    /// SUBACK: per filter, the granted QoS or the refusal.
    SubAck {
        pkid: u16,
        codes: Vec<Result<QoS, String>>,
    },
    /// UNSUBACK.
    UnsubAck,
    /// PINGRESP.
    PingResp,
    /// DISCONNECT from the server (MQTT 5 carries a reason).
    Disconnect { reason: String },
    /// AUTH from the server: `Ok` for Success (re-authentication done),
    /// `Err` naming any other reason.
    Auth { outcome: Result<(), String> },
}

fn level(protocol: Protocol) -> Level {
    match protocol {
        Protocol::V311 => Level::V311,
        Protocol::V5 => Level::V5,
    }
}

/// The name of an MQTT 5 reason code, for error messages.
fn reason_name(code: u8) -> &'static str {
    match code {
        0x00 => "Success",
        0x04 => "DisconnectWithWillMessage",
        0x10 => "NoMatchingSubscribers",
        0x18 => "ContinueAuthentication",
        0x19 => "ReAuthenticate",
        0x80 => "UnspecifiedError",
        0x81 => "MalformedPacket",
        0x82 => "ProtocolError",
        0x83 => "ImplementationSpecificError",
        0x84 => "UnsupportedProtocolVersion",
        0x85 => "ClientIdentifierNotValid",
        0x86 => "BadUserNamePassword",
        0x87 => "NotAuthorized",
        0x88 => "ServerUnavailable",
        0x89 => "ServerBusy",
        0x8A => "Banned",
        0x8B => "ServerShuttingDown",
        0x8C => "BadAuthenticationMethod",
        0x8D => "KeepAliveTimeout",
        0x8E => "SessionTakenOver",
        0x8F => "TopicFilterInvalid",
        0x90 => "TopicNameInvalid",
        0x93 => "ReceiveMaximumExceeded",
        0x94 => "TopicAliasInvalid",
        0x95 => "PacketTooLarge",
        0x97 => "QuotaExceeded",
        0x98 => "AdministrativeAction",
        0x99 => "PayloadFormatInvalid",
        0x9A => "RetainNotSupported",
        0x9B => "QoSNotSupported",
        0x9C => "UseAnotherServer",
        0x9D => "ServerMoved",
        0x9E => "SharedSubscriptionsNotSupported",
        0x9F => "ConnectionRateExceeded",
        _ => "Unknown",
    }
}

/// "`Name` (0xNN)" plus the server's reason string, if any.
fn describe(code: u8, props: &Properties) -> String {
    let base = format!("{} (0x{code:02x})", reason_name(code));
    match &props.reason_string {
        Some(why) => format!("{base}: {why}"),
        None => base,
    }
}

/// The 3.1.1 name of a CONNACK return code.
fn connack_v311(code: u8) -> String {
    let name = match code {
        1 => "RefusedProtocolVersion",
        2 => "BadClientId",
        3 => "ServiceUnavailable",
        4 => "BadUserNamePassword",
        5 => "NotAuthorized",
        _ => "Refused",
    };
    format!("{name} (0x{code:02x})")
}

/// Reads one packet from the front of `buf`: `Ok(None)` when more bytes are
/// needed.
pub(crate) fn read(
    protocol: Protocol,
    buf: &mut BytesMut,
    max_packet: usize,
) -> Result<Option<Incoming>, MqttError> {
    match wire::read(buf, level(protocol), max_packet) {
        Ok(Some(packet)) => from_wire(protocol, packet).map(Some),
        Ok(None) => Ok(None),
        Err(e) => Err(MqttError::Protocol(format!("unreadable packet: {e}"))),
    }
}

fn unexpected(what: &str) -> MqttError {
    MqttError::Protocol(format!(
        "the server sent {what}, which a client never receives or certbound never asks for"
    ))
}

fn from_wire(protocol: Protocol, packet: Packet) -> Result<Incoming, MqttError> {
    let v5 = protocol == Protocol::V5;
    Ok(match packet {
        Packet::ConnAck(ack) => Incoming::ConnAck {
            refused: (ack.code != reason::SUCCESS).then(|| {
                if v5 {
                    describe(ack.code, &ack.props)
                } else {
                    connack_v311(ack.code)
                }
            }),
            receive_max: ack.props.receive_max,
            max_packet: ack.props.max_packet_size,
        },
        Packet::Publish(p) => {
            if p.topic.is_empty() {
                // Topic aliases are never allowed (CONNECT has no Topic Alias Maximum).
                return Err(unexpected("a PUBLISH with an empty topic (topic alias)"));
            }
            if p.qos == QoS::ExactlyOnce {
                return Err(unexpected("a QoS 2 PUBLISH"));
            }
            Incoming::Publish {
                pkid: p.pkid,
                message: Message {
                    topic: p.topic,
                    payload: p.payload,
                    qos: p.qos,
                    retain: p.retain,
                    response_topic: p.props.response_topic,
                    correlation_data: p.props.correlation_data,
                },
            }
        }
        Packet::PubAck(ack) => Incoming::PubAck {
            pkid: ack.pkid,
            refused: (ack.code >= 0x80).then(|| describe(ack.code, &ack.props)),
        },
        Packet::SubAck(ack) => Incoming::SubAck {
            pkid: ack.pkid,
            codes: ack
                .codes
                .into_iter()
                .map(|c| match c {
                    0 => Ok(QoS::AtMostOnce),
                    1 => Ok(QoS::AtLeastOnce),
                    2 => Ok(QoS::ExactlyOnce),
                    other if v5 => Err(describe(other, &Properties::default())),
                    other => Err(format!("Failure (0x{other:02x})")),
                })
                .collect(),
        },
        Packet::UnsubAck(_) => Incoming::UnsubAck,
        Packet::PingResp => Incoming::PingResp,
        Packet::Disconnect(d) if v5 => Incoming::Disconnect {
            reason: describe(d.code, &d.props),
        },
        Packet::Disconnect(_) => Err(unexpected("DISCONNECT (MQTT 3.1.1 servers never send it)"))?,
        Packet::Auth(a) => Incoming::Auth {
            outcome: if a.code == reason::SUCCESS {
                Ok(())
            } else {
                Err(describe(a.code, &a.props))
            },
        },
        Packet::PubRec(_) | Packet::PubRel(_) | Packet::PubComp(_) => {
            Err(unexpected("a QoS 2 packet"))?
        }
        Packet::Connect(_) | Packet::Subscribe(_) | Packet::Unsubscribe(_) | Packet::PingReq => {
            Err(unexpected("a client packet"))?
        }
    })
}

fn write(protocol: Protocol, packet: &Packet, out: &mut BytesMut) -> Result<(), MqttError> {
    wire::write(packet, level(protocol), out)
        .map(drop)
        .map_err(|e| MqttError::Protocol(format!("cannot encode the packet: {e}")))
}

/// What CONNECT says.
#[derive(Debug, Clone)]
pub(crate) struct ConnectParams<'a> {
    pub client_id: &'a str,
    pub keep_alive_secs: u16,
    pub clean: bool,
    pub max_packet: usize,
    pub receive_max: u16,
    /// MQTT 5 Authentication Method and Data (RFC 9431: `ace` and a token).
    pub auth: Option<(&'a str, &'a Bytes)>,
}

pub(crate) fn encode_connect(
    protocol: Protocol,
    p: &ConnectParams<'_>,
    out: &mut BytesMut,
) -> Result<(), MqttError> {
    let props = match protocol {
        Protocol::V311 => Properties::default(),
        Protocol::V5 => Properties {
            receive_max: Some(p.receive_max.max(1)),
            max_packet_size: Some(u32::try_from(p.max_packet).unwrap_or(u32::MAX).max(1)),
            auth_method: p.auth.map(|(m, _)| m.to_owned()),
            auth_data: p.auth.map(|(_, d)| d.clone()),
            ..Properties::default()
        },
    };
    let connect = wire::Connect {
        level: level(protocol),
        clean_start: p.clean,
        keep_alive: p.keep_alive_secs,
        client_id: p.client_id.to_owned(),
        will: None,
        username: None,
        password: None,
        props,
    };
    write(protocol, &Packet::Connect(Box::new(connect)), out)
}

/// AUTH with Re-authenticate (0x19): `method` and fresh `data`.
pub(crate) fn encode_reauth(
    method: &str,
    data: &Bytes,
    out: &mut BytesMut,
) -> Result<(), MqttError> {
    let auth = Reasoned {
        code: reason::REAUTHENTICATE,
        props: Properties {
            auth_method: Some(method.to_owned()),
            auth_data: Some(data.clone()),
            ..Properties::default()
        },
    };
    write(Protocol::V5, &Packet::Auth(auth), out)
}

/// PUBLISH of `message` with packet id `pkid` (ignored for QoS 0); fails when
/// it would be larger than `max_packet`.
pub(crate) fn encode_publish(
    protocol: Protocol,
    message: &Message,
    pkid: u16,
    max_packet: usize,
    out: &mut BytesMut,
) -> Result<(), MqttError> {
    let props = match protocol {
        Protocol::V311 => Properties::default(),
        Protocol::V5 => Properties {
            response_topic: message.response_topic.clone(),
            correlation_data: message.correlation_data.clone(),
            ..Properties::default()
        },
    };
    let publish = wire::Publish {
        dup: false,
        qos: message.qos,
        retain: message.retain,
        topic: message.topic.clone(),
        pkid: if message.qos == QoS::AtMostOnce {
            0
        } else {
            pkid
        },
        payload: message.payload.clone(),
        props,
    };
    let start = out.len();
    write(protocol, &Packet::Publish(publish), out)?;
    let size = out.len() - start;
    if size > max_packet {
        out.truncate(start);
        return Err(MqttError::Publish(format!(
            "a {size}-byte PUBLISH to {} exceeds the {max_packet}-byte packet limit",
            message.topic
        )));
    }
    Ok(())
}

pub(crate) fn encode_puback(
    protocol: Protocol,
    pkid: u16,
    out: &mut BytesMut,
) -> Result<(), MqttError> {
    write(
        protocol,
        &Packet::PubAck(Ack {
            pkid,
            ..Ack::default()
        }),
        out,
    )
}

pub(crate) fn encode_subscribe(
    protocol: Protocol,
    pkid: u16,
    filters: &[(String, QoS)],
    out: &mut BytesMut,
) -> Result<(), MqttError> {
    let subscribe = wire::Subscribe {
        pkid,
        filters: filters
            .iter()
            .map(|(f, q)| SubFilter {
                filter: f.clone(),
                qos: *q,
                no_local: false,
                retain_as_published: false,
                retain_handling: 0,
            })
            .collect(),
        props: Properties::default(),
    };
    write(protocol, &Packet::Subscribe(subscribe), out)
}

pub(crate) fn encode_pingreq(protocol: Protocol, out: &mut BytesMut) -> Result<(), MqttError> {
    write(protocol, &Packet::PingReq, out)
}

pub(crate) fn encode_disconnect(protocol: Protocol, out: &mut BytesMut) -> Result<(), MqttError> {
    match protocol {
        // 3.1.1: DISCONNECT is just the fixed header (the shared encoder
        // writes nothing for 3.1.1, where only clients send it).
        Protocol::V311 => {
            out.extend_from_slice(&[0xE0, 0x00]);
            Ok(())
        }
        Protocol::V5 => write(protocol, &Packet::Disconnect(Reasoned::default()), out),
    }
}
