//! Reading packets.

use bytes::{Buf, Bytes, BytesMut};

use super::props::Kind;
use super::{
    Ack, ConnAck, Connect, Level, Packet, Properties, Publish, Reasoned, SubAck, SubFilter,
    Subscribe, Unsubscribe, Will, WireError, qos_from,
};

/// Takes one packet off the front of `buf`: `Ok(None)` while it is
/// incomplete (nothing consumed). `level` is the session's protocol level
/// (CONNECT carries its own). A remaining length over `max` is refused as
/// soon as the fixed header is read.
pub(crate) fn read(
    buf: &mut BytesMut,
    level: Level,
    max: usize,
) -> Result<Option<Packet>, WireError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    // Remaining length: up to four bytes of 7 bits each (§1.5.5).
    let mut len = 0usize;
    let mut header = 1;
    loop {
        let Some(&byte) = buf.get(header) else {
            return Ok(None);
        };
        len |= usize::from(byte & 0x7F) << (7 * (header - 1));
        header += 1;
        if byte & 0x80 == 0 {
            break;
        }
        if header > 4 {
            return Err(WireError::Malformed(
                "remaining length longer than four bytes".into(),
            ));
        }
    }
    if len > max {
        return Err(WireError::TooLarge { size: len, max });
    }
    if buf.len() < header + len {
        return Ok(None);
    }
    buf.advance(header);
    let body = buf.split_to(len).freeze();
    decode(first, body, level).map(Some)
}

fn decode(first: u8, mut b: Bytes, level: Level) -> Result<Packet, WireError> {
    let kind = first >> 4;
    let flags = first & 0x0F;
    let expect_flags = |want: u8| {
        if flags == want {
            Ok(())
        } else {
            Err(WireError::Malformed(format!(
                "fixed header flags 0x{flags:x} on packet type {kind}"
            )))
        }
    };
    let v5 = level == Level::V5;
    let packet = match kind {
        1 => {
            expect_flags(0)?;
            Packet::Connect(Box::new(connect(&mut b)?))
        }
        2 => {
            expect_flags(0)?;
            let ack_flags = read_u8(&mut b)?;
            if ack_flags & 0xFE != 0 {
                return Err(WireError::Malformed("CONNACK flags".into()));
            }
            let code = read_u8(&mut b)?;
            let props = if v5 {
                Properties::read(&mut b, Kind::ConnAck)?
            } else {
                Properties::default()
            };
            Packet::ConnAck(ConnAck {
                session_present: ack_flags & 1 == 1,
                code,
                props,
            })
        }
        3 => Packet::Publish(publish(flags, &mut b, v5)?),
        4 => {
            expect_flags(0)?;
            Packet::PubAck(ack(&mut b, v5)?)
        }
        5 => {
            expect_flags(0)?;
            Packet::PubRec(ack(&mut b, v5)?)
        }
        6 => {
            expect_flags(2)?;
            Packet::PubRel(ack(&mut b, v5)?)
        }
        7 => {
            expect_flags(0)?;
            Packet::PubComp(ack(&mut b, v5)?)
        }
        8 => {
            expect_flags(2)?;
            Packet::Subscribe(subscribe(&mut b, v5)?)
        }
        9 => {
            expect_flags(0)?;
            Packet::SubAck(suback(&mut b, v5)?)
        }
        10 => {
            expect_flags(2)?;
            let pkid = packet_id(&mut b)?;
            let props = if v5 {
                Properties::read(&mut b, Kind::Unsubscribe)?
            } else {
                Properties::default()
            };
            let mut filters = Vec::new();
            while b.has_remaining() {
                filters.push(read_string(&mut b)?);
            }
            if filters.is_empty() {
                return Err(WireError::Protocol("UNSUBSCRIBE without a filter".into()));
            }
            Packet::Unsubscribe(Unsubscribe {
                pkid,
                filters,
                props,
            })
        }
        11 => {
            expect_flags(0)?;
            Packet::UnsubAck(suback(&mut b, v5)?)
        }
        12 => {
            expect_flags(0)?;
            Packet::PingReq
        }
        13 => {
            expect_flags(0)?;
            Packet::PingResp
        }
        14 => {
            expect_flags(0)?;
            Packet::Disconnect(reasoned(&mut b, v5, Kind::Disconnect)?)
        }
        15 if v5 => {
            expect_flags(0)?;
            Packet::Auth(reasoned(&mut b, v5, Kind::Auth)?)
        }
        _ => {
            return Err(WireError::Malformed(format!(
                "packet type {kind} does not exist in this protocol version"
            )));
        }
    };
    if b.has_remaining() {
        return Err(WireError::Malformed(format!(
            "{} bytes left over after the {}",
            b.remaining(),
            packet.name()
        )));
    }
    Ok(packet)
}

fn connect(b: &mut Bytes) -> Result<Connect, WireError> {
    let name = read_string(b)?;
    let level_byte = read_u8(b)?;
    let level = match (name.as_str(), level_byte) {
        ("MQTT", 4) => Level::V311,
        ("MQTT", 5) => Level::V5,
        _ => {
            return Err(WireError::UnsupportedProtocol {
                name,
                level: level_byte,
            });
        }
    };
    let flags = read_u8(b)?;
    if flags & 1 != 0 {
        return Err(WireError::Malformed("CONNECT reserved flag is set".into()));
    }
    let clean_start = flags & 0b10 != 0;
    let will_flag = flags & 0b100 != 0;
    let will_qos_bits = (flags >> 3) & 0b11;
    let will_retain = flags & 0b10_0000 != 0;
    let has_password = flags & 0b100_0000 != 0;
    let has_username = flags & 0b1000_0000 != 0;
    let will_qos =
        qos_from(will_qos_bits).ok_or_else(|| WireError::Malformed("will QoS 3".into()))?;
    if !will_flag && (will_qos_bits != 0 || will_retain) {
        return Err(WireError::Malformed(
            "will QoS or retain set without a will".into(),
        ));
    }
    if level == Level::V311 && has_password && !has_username {
        return Err(WireError::Malformed(
            "password without user name (MQTT 3.1.1)".into(),
        ));
    }
    let keep_alive = read_u16(b)?;
    let v5 = level == Level::V5;
    let props = if v5 {
        Properties::read(b, Kind::Connect)?
    } else {
        Properties::default()
    };
    let client_id = read_string(b)?;
    let will = if will_flag {
        let props = if v5 {
            Properties::read(b, Kind::Will)?
        } else {
            Properties::default()
        };
        let topic = read_string(b)?;
        let payload = read_binary(b)?;
        Some(Will {
            topic,
            payload,
            qos: will_qos,
            retain: will_retain,
            props,
        })
    } else {
        None
    };
    let username = has_username.then(|| read_string(b)).transpose()?;
    let password = has_password.then(|| read_binary(b)).transpose()?;
    Ok(Connect {
        level,
        clean_start,
        keep_alive,
        client_id,
        will,
        username,
        password,
        props,
    })
}

fn publish(flags: u8, b: &mut Bytes, v5: bool) -> Result<Publish, WireError> {
    let dup = flags & 0b1000 != 0;
    let retain = flags & 1 != 0;
    let qos = qos_from((flags >> 1) & 0b11)
        .ok_or_else(|| WireError::Malformed("PUBLISH with QoS 3".into()))?;
    if dup && qos == rumqttc::QoS::AtMostOnce {
        return Err(WireError::Malformed("DUP set on a QoS 0 PUBLISH".into()));
    }
    let topic = read_string(b)?;
    let pkid = if qos == rumqttc::QoS::AtMostOnce {
        0
    } else {
        packet_id(b)?
    };
    let props = if v5 {
        Properties::read(b, Kind::Publish)?
    } else {
        Properties::default()
    };
    let payload = b.split_off(0);
    Ok(Publish {
        dup,
        qos,
        retain,
        topic,
        pkid,
        payload,
        props,
    })
}

fn ack(b: &mut Bytes, v5: bool) -> Result<Ack, WireError> {
    let pkid = packet_id(b)?;
    // MQTT 5: reason code and properties may be left out (§3.4.2.1).
    let code = if v5 && b.has_remaining() {
        read_u8(b)?
    } else {
        0
    };
    let props = if v5 && b.has_remaining() {
        Properties::read(b, Kind::Ack)?
    } else {
        Properties::default()
    };
    Ok(Ack { pkid, code, props })
}

fn subscribe(b: &mut Bytes, v5: bool) -> Result<Subscribe, WireError> {
    let pkid = packet_id(b)?;
    let props = if v5 {
        Properties::read(b, Kind::Subscribe)?
    } else {
        Properties::default()
    };
    if props.subscription_ids.len() > 1 {
        return Err(WireError::Protocol(
            "SUBSCRIBE with more than one subscription identifier".into(),
        ));
    }
    let mut filters = Vec::new();
    while b.has_remaining() {
        let filter = read_string(b)?;
        let options = read_u8(b)?;
        let reserved = if v5 { 0b1100_0000 } else { 0b1111_1100 };
        if options & reserved != 0 {
            return Err(WireError::Malformed(
                "reserved subscription option bits set".into(),
            ));
        }
        let qos = qos_from(options & 0b11)
            .ok_or_else(|| WireError::Malformed("subscription QoS 3".into()))?;
        let retain_handling = (options >> 4) & 0b11;
        if retain_handling == 3 {
            return Err(WireError::Protocol("retain handling 3".into()));
        }
        let no_local = options & 0b100 != 0;
        if no_local && filter.starts_with("$share/") {
            return Err(WireError::Protocol(
                "No Local on a shared subscription".into(),
            ));
        }
        filters.push(SubFilter {
            filter,
            qos,
            no_local,
            retain_as_published: options & 0b1000 != 0,
            retain_handling,
        });
    }
    if filters.is_empty() {
        return Err(WireError::Protocol("SUBSCRIBE without a filter".into()));
    }
    Ok(Subscribe {
        pkid,
        filters,
        props,
    })
}

fn suback(b: &mut Bytes, v5: bool) -> Result<SubAck, WireError> {
    let pkid = packet_id(b)?;
    let props = if v5 {
        Properties::read(b, Kind::SubAck)?
    } else {
        Properties::default()
    };
    let codes = b.split_off(0).to_vec();
    Ok(SubAck { pkid, codes, props })
}

fn reasoned(b: &mut Bytes, v5: bool, kind: Kind) -> Result<Reasoned, WireError> {
    if !v5 {
        return Ok(Reasoned::default());
    }
    let code = if b.has_remaining() { read_u8(b)? } else { 0 };
    let props = if b.has_remaining() {
        Properties::read(b, kind)?
    } else {
        Properties::default()
    };
    Ok(Reasoned { code, props })
}

fn packet_id(b: &mut Bytes) -> Result<u16, WireError> {
    match read_u16(b)? {
        0 => Err(WireError::Protocol("packet identifier 0".into())),
        id => Ok(id),
    }
}

fn short(what: &str) -> WireError {
    WireError::Malformed(format!("packet ends inside {what}"))
}

pub(super) fn read_u8(b: &mut Bytes) -> Result<u8, WireError> {
    if b.remaining() < 1 {
        return Err(short("a byte"));
    }
    Ok(b.get_u8())
}

pub(super) fn read_u16(b: &mut Bytes) -> Result<u16, WireError> {
    if b.remaining() < 2 {
        return Err(short("a two-byte integer"));
    }
    Ok(b.get_u16())
}

pub(super) fn read_u32(b: &mut Bytes) -> Result<u32, WireError> {
    if b.remaining() < 4 {
        return Err(short("a four-byte integer"));
    }
    Ok(b.get_u32())
}

pub(super) fn read_varint(b: &mut Bytes) -> Result<usize, WireError> {
    let mut value = 0usize;
    for i in 0..4 {
        let byte = read_u8(b)?;
        value |= usize::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(WireError::Malformed(
        "variable byte integer longer than four bytes".into(),
    ))
}

pub(super) fn read_binary(b: &mut Bytes) -> Result<Bytes, WireError> {
    let len = usize::from(read_u16(b)?);
    if b.remaining() < len {
        return Err(short("binary data"));
    }
    Ok(b.split_to(len))
}

pub(super) fn read_string(b: &mut Bytes) -> Result<String, WireError> {
    let raw = read_binary(b)?;
    let text = std::str::from_utf8(&raw).map_err(|_| WireError::BadUtf8)?;
    if text.contains('\0') {
        return Err(WireError::BadUtf8);
    }
    Ok(text.to_owned())
}
