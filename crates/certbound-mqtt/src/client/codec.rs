//! One packet vocabulary for MQTT 3.1.1 and 5 on rumqttc's codec
//! (`rumqttc::mqttbytes::v4`, `rumqttc::v5::mqttbytes::v5`): the client state
//! machine speaks only [`Incoming`] and the `encode_*` functions.

use bytes::BytesMut;
use rumqttc::mqttbytes::v4;
use rumqttc::v5::mqttbytes as m5;
use rumqttc::v5::mqttbytes::v5;

use super::{Message, Protocol, QoS};
use crate::MqttError;

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
}

/// Reads one packet from the front of `buf`: `Ok(None)` when more bytes are
/// needed.
pub(crate) fn read(
    protocol: Protocol,
    buf: &mut BytesMut,
    max_packet: usize,
) -> Result<Option<Incoming>, MqttError> {
    match protocol {
        Protocol::V311 => match v4::Packet::read(buf, max_packet) {
            Ok(packet) => from_v4(packet).map(Some),
            Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => Ok(None),
            Err(e) => Err(MqttError::Protocol(format!("unreadable packet: {e}"))),
        },
        Protocol::V5 => {
            // rumqttc's v5 reader refuses a DISCONNECT without a reason code
            // (remaining length 0), which §3.14.2.1 allows: "normal".
            if buf.len() >= 2 && buf[0] == 0xE0 && buf[1] == 0 {
                let _ = buf.split_to(2);
                return Ok(Some(Incoming::Disconnect {
                    reason: "NormalDisconnection".into(),
                }));
            }
            let max = u32::try_from(max_packet).unwrap_or(u32::MAX);
            match v5::Packet::read(buf, Some(max)) {
                Ok(packet) => from_v5(packet).map(Some),
                Err(m5::Error::InsufficientBytes(_)) => Ok(None),
                Err(e) => Err(MqttError::Protocol(format!("unreadable packet: {e}"))),
            }
        }
    }
}

fn unexpected(what: &str) -> MqttError {
    MqttError::Protocol(format!(
        "the server sent {what}, which a client never receives or certbound never asks for"
    ))
}

fn refuse(what: &str) -> Result<Incoming, MqttError> {
    Err(unexpected(what))
}

fn from_v4(packet: v4::Packet) -> Result<Incoming, MqttError> {
    Ok(match packet {
        v4::Packet::ConnAck(ack) => Incoming::ConnAck {
            refused: (ack.code != v4::ConnectReturnCode::Success)
                .then(|| format!("{:?} (0x{:02x})", ack.code, ack.code as u8)),
            receive_max: None,
            max_packet: None,
        },
        v4::Packet::Publish(p) => Incoming::Publish {
            pkid: p.pkid,
            message: Message {
                topic: p.topic,
                payload: p.payload,
                qos: qos_from_v4(p.qos)?,
                retain: p.retain,
                response_topic: None,
                correlation_data: None,
            },
        },
        v4::Packet::PubAck(ack) => Incoming::PubAck {
            pkid: ack.pkid,
            refused: None,
        },
        v4::Packet::SubAck(ack) => Incoming::SubAck {
            pkid: ack.pkid,
            codes: ack
                .return_codes
                .into_iter()
                .map(|c| match c {
                    v4::SubscribeReasonCode::Success(q) => Ok(q),
                    v4::SubscribeReasonCode::Failure => Err("Failure (0x80)".into()),
                })
                .collect(),
        },
        v4::Packet::UnsubAck(_) => Incoming::UnsubAck,
        v4::Packet::PingResp => Incoming::PingResp,
        v4::Packet::Disconnect => refuse("DISCONNECT (MQTT 3.1.1 servers never send it)")?,
        v4::Packet::PubRec(_) | v4::Packet::PubRel(_) | v4::Packet::PubComp(_) => {
            refuse("a QoS 2 packet")?
        }
        v4::Packet::Connect(_)
        | v4::Packet::Subscribe(_)
        | v4::Packet::Unsubscribe(_)
        | v4::Packet::PingReq => refuse("a client packet")?,
    })
}

fn qos_from_v4(q: QoS) -> Result<QoS, MqttError> {
    match q {
        QoS::ExactlyOnce => Err(unexpected("a QoS 2 PUBLISH")),
        q => Ok(q),
    }
}

fn qos_from_v5(q: m5::QoS) -> Result<QoS, MqttError> {
    match q {
        m5::QoS::AtMostOnce => Ok(QoS::AtMostOnce),
        m5::QoS::AtLeastOnce => Ok(QoS::AtLeastOnce),
        m5::QoS::ExactlyOnce => Err(unexpected("a QoS 2 PUBLISH")),
    }
}

fn qos_to_v5(q: QoS) -> m5::QoS {
    match q {
        QoS::AtMostOnce => m5::QoS::AtMostOnce,
        QoS::AtLeastOnce => m5::QoS::AtLeastOnce,
        QoS::ExactlyOnce => m5::QoS::ExactlyOnce,
    }
}

fn from_v5(packet: v5::Packet) -> Result<Incoming, MqttError> {
    Ok(match packet {
        v5::Packet::ConnAck(ack) => {
            let props = ack.properties.as_ref();
            let reason_string = props.and_then(|p| p.reason_string.clone());
            Incoming::ConnAck {
                refused: (ack.code != v5::ConnectReturnCode::Success).then(
                    || match reason_string {
                        Some(why) => format!("{:?}: {why}", ack.code),
                        None => format!("{:?}", ack.code),
                    },
                ),
                receive_max: props.and_then(|p| p.receive_max),
                max_packet: props.and_then(|p| p.max_packet_size),
            }
        }
        v5::Packet::Publish(p) => {
            let topic = String::from_utf8(p.topic.to_vec())
                .map_err(|_| MqttError::Protocol("a PUBLISH topic is not UTF-8".into()))?;
            let props = p.properties.unwrap_or_default();
            if topic.is_empty() {
                // Topic aliases are never allowed (CONNECT has no Topic Alias Maximum).
                return Err(unexpected("a PUBLISH with an empty topic (topic alias)"));
            }
            Incoming::Publish {
                pkid: p.pkid,
                message: Message {
                    topic,
                    payload: p.payload,
                    qos: qos_from_v5(p.qos)?,
                    retain: p.retain,
                    response_topic: props.response_topic,
                    correlation_data: props.correlation_data,
                },
            }
        }
        v5::Packet::PubAck(ack) => Incoming::PubAck {
            pkid: ack.pkid,
            refused: match ack.reason {
                v5::PubAckReason::Success | v5::PubAckReason::NoMatchingSubscribers => None,
                other => Some(match ack.properties.and_then(|p| p.reason_string) {
                    Some(why) => format!("{other:?}: {why}"),
                    None => format!("{other:?}"),
                }),
            },
        },
        v5::Packet::SubAck(ack) => Incoming::SubAck {
            pkid: ack.pkid,
            codes: ack
                .return_codes
                .into_iter()
                .map(|c| match c {
                    v5::SubscribeReasonCode::Success(m5::QoS::AtMostOnce) => Ok(QoS::AtMostOnce),
                    v5::SubscribeReasonCode::Success(m5::QoS::AtLeastOnce) => Ok(QoS::AtLeastOnce),
                    v5::SubscribeReasonCode::Success(m5::QoS::ExactlyOnce) => Ok(QoS::ExactlyOnce),
                    other => Err(format!("{other:?}")),
                })
                .collect(),
        },
        v5::Packet::UnsubAck(_) => Incoming::UnsubAck,
        v5::Packet::PingResp(_) => Incoming::PingResp,
        v5::Packet::Disconnect(d) => Incoming::Disconnect {
            reason: match d.properties.and_then(|p| p.reason_string) {
                Some(why) => format!("{:?}: {why}", d.reason_code),
                None => format!("{:?}", d.reason_code),
            },
        },
        v5::Packet::Auth(_) => refuse("AUTH (no authentication method was asked for)")?,
        v5::Packet::PubRec(_) | v5::Packet::PubRel(_) | v5::Packet::PubComp(_) => {
            refuse("a QoS 2 packet")?
        }
        v5::Packet::Connect(..)
        | v5::Packet::Subscribe(_)
        | v5::Packet::Unsubscribe(_)
        | v5::Packet::PingReq(_) => refuse("a client packet")?,
    })
}

fn encode_err(e: impl std::fmt::Display) -> MqttError {
    MqttError::Protocol(format!("cannot encode the packet: {e}"))
}

/// What CONNECT says.
#[derive(Debug, Clone)]
pub(crate) struct ConnectParams<'a> {
    pub client_id: &'a str,
    pub keep_alive_secs: u16,
    pub clean: bool,
    pub max_packet: usize,
    pub receive_max: u16,
}

pub(crate) fn encode_connect(
    protocol: Protocol,
    p: &ConnectParams<'_>,
    out: &mut BytesMut,
) -> Result<(), MqttError> {
    match protocol {
        Protocol::V311 => {
            let mut connect = v4::Connect::new(p.client_id);
            connect.keep_alive = p.keep_alive_secs;
            connect.clean_session = p.clean;
            v4::Packet::Connect(connect)
                .write(out, usize::MAX)
                .map_err(encode_err)?;
        }
        Protocol::V5 => {
            let properties = v5::ConnectProperties {
                receive_maximum: Some(p.receive_max),
                max_packet_size: Some(u32::try_from(p.max_packet).unwrap_or(u32::MAX)),
                ..v5::ConnectProperties::new()
            };
            let connect = v5::Connect {
                keep_alive: p.keep_alive_secs,
                client_id: p.client_id.to_string(),
                clean_start: p.clean,
                properties: Some(properties),
            };
            v5::Packet::Connect(connect, None, None)
                .write(out, None)
                .map_err(encode_err)?;
        }
    }
    Ok(())
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
    let too_large = |size: usize| {
        MqttError::Publish(format!(
            "a {size}-byte PUBLISH to {} exceeds the {max_packet}-byte packet limit",
            message.topic
        ))
    };
    match protocol {
        Protocol::V311 => {
            let mut p = v4::Publish::from_bytes(
                message.topic.as_str(),
                message.qos,
                message.payload.clone(),
            );
            p.retain = message.retain;
            p.pkid = if message.qos == QoS::AtMostOnce {
                0
            } else {
                pkid
            };
            let packet = v4::Packet::Publish(p);
            if packet.size() > max_packet {
                return Err(too_large(packet.size()));
            }
            packet.write(out, max_packet).map_err(encode_err)?;
        }
        Protocol::V5 => {
            let properties = (message.response_topic.is_some()
                || message.correlation_data.is_some())
            .then(|| v5::PublishProperties {
                response_topic: message.response_topic.clone(),
                correlation_data: message.correlation_data.clone(),
                ..v5::PublishProperties::default()
            });
            let mut p = v5::Publish::new(
                message.topic.as_str(),
                qos_to_v5(message.qos),
                message.payload.clone(),
                properties,
            );
            p.retain = message.retain;
            p.pkid = if message.qos == QoS::AtMostOnce {
                0
            } else {
                pkid
            };
            let packet = v5::Packet::Publish(p);
            if packet.size() > max_packet {
                return Err(too_large(packet.size()));
            }
            packet
                .write(out, Some(u32::try_from(max_packet).unwrap_or(u32::MAX)))
                .map_err(encode_err)?;
        }
    }
    Ok(())
}

pub(crate) fn encode_puback(
    protocol: Protocol,
    pkid: u16,
    out: &mut BytesMut,
) -> Result<(), MqttError> {
    match protocol {
        Protocol::V311 => v4::Packet::PubAck(v4::PubAck::new(pkid))
            .write(out, usize::MAX)
            .map(drop)
            .map_err(encode_err),
        Protocol::V5 => v5::Packet::PubAck(v5::PubAck::new(pkid, None))
            .write(out, None)
            .map(drop)
            .map_err(encode_err),
    }
}

pub(crate) fn encode_subscribe(
    protocol: Protocol,
    pkid: u16,
    filters: &[(String, QoS)],
    out: &mut BytesMut,
) -> Result<(), MqttError> {
    match protocol {
        Protocol::V311 => {
            let mut s = v4::Subscribe::new_many(
                filters
                    .iter()
                    .map(|(f, q)| v4::SubscribeFilter::new(f.clone(), *q)),
            );
            s.pkid = pkid;
            v4::Packet::Subscribe(s)
                .write(out, usize::MAX)
                .map(drop)
                .map_err(encode_err)
        }
        Protocol::V5 => {
            let mut s = v5::Subscribe::new_many(
                filters
                    .iter()
                    .map(|(f, q)| v5::Filter::new(f.clone(), qos_to_v5(*q))),
                None,
            );
            s.pkid = pkid;
            v5::Packet::Subscribe(s)
                .write(out, None)
                .map(drop)
                .map_err(encode_err)
        }
    }
}

pub(crate) fn encode_pingreq(protocol: Protocol, out: &mut BytesMut) -> Result<(), MqttError> {
    match protocol {
        Protocol::V311 => v4::Packet::PingReq
            .write(out, usize::MAX)
            .map_err(encode_err),
        Protocol::V5 => v5::Packet::PingReq(v5::PingReq)
            .write(out, None)
            .map_err(encode_err),
    }
    .map(drop)
}

pub(crate) fn encode_disconnect(protocol: Protocol, out: &mut BytesMut) -> Result<(), MqttError> {
    match protocol {
        Protocol::V311 => v4::Packet::Disconnect
            .write(out, usize::MAX)
            .map_err(encode_err),
        Protocol::V5 => v5::Packet::Disconnect(v5::Disconnect::new(
            v5::DisconnectReasonCode::NormalDisconnection,
        ))
        .write(out, None)
        .map_err(encode_err),
    }
    .map(drop)
}
