//! Writing packets.

use bytes::{BufMut, BytesMut};

use super::{Ack, Level, Packet, Reasoned, SubAck, WireError, qos_bits, reason};

/// Appends `packet`, encoded for `level`, to `out`. Returns the number of
/// bytes written (0 for a packet 3.1.1 does not have on the wire: a
/// server's DISCONNECT).
///
/// # Errors
/// AUTH for a 3.1.1 session, or a packet whose remaining length exceeds
/// 268 435 455 bytes.
pub(crate) fn write(packet: &Packet, level: Level, out: &mut BytesMut) -> Result<usize, WireError> {
    let v5 = level == Level::V5;
    let start = out.len();
    let mut body = BytesMut::new();
    let first = match packet {
        Packet::Connect(c) => {
            put_string(&mut body, "MQTT");
            body.put_u8(if c.level == Level::V5 { 5 } else { 4 });
            let mut flags = 0u8;
            if c.clean_start {
                flags |= 0b10;
            }
            if let Some(w) = &c.will {
                flags |= 0b100 | (qos_bits(w.qos) << 3);
                if w.retain {
                    flags |= 0b10_0000;
                }
            }
            if c.password.is_some() {
                flags |= 0b100_0000;
            }
            if c.username.is_some() {
                flags |= 0b1000_0000;
            }
            body.put_u8(flags);
            body.put_u16(c.keep_alive);
            let cv5 = c.level == Level::V5;
            if cv5 {
                c.props.write(&mut body);
            }
            put_string(&mut body, &c.client_id);
            if let Some(w) = &c.will {
                if cv5 {
                    w.props.write(&mut body);
                }
                put_string(&mut body, &w.topic);
                put_binary(&mut body, &w.payload);
            }
            if let Some(u) = &c.username {
                put_string(&mut body, u);
            }
            if let Some(p) = &c.password {
                put_binary(&mut body, p);
            }
            0x10
        }
        Packet::ConnAck(a) => {
            body.put_u8(u8::from(a.session_present));
            if v5 {
                body.put_u8(a.code);
                a.props.write(&mut body);
            } else {
                body.put_u8(connack_v311(a.code));
            }
            0x20
        }
        // The hot paths are written in place, without the body buffer
        // (`BytesMut::new` does not allocate).
        Packet::Publish(p) => return write_publish(p, v5, out),
        Packet::PubAck(a) => return Ok(write_ack(a, v5, 0x40, out)),
        Packet::PubRec(a) => return Ok(write_ack(a, v5, 0x50, out)),
        Packet::PubRel(a) => return Ok(write_ack(a, v5, 0x62, out)),
        Packet::PubComp(a) => return Ok(write_ack(a, v5, 0x70, out)),
        Packet::Subscribe(s) => {
            body.put_u16(s.pkid);
            if v5 {
                s.props.write(&mut body);
            }
            for f in &s.filters {
                put_string(&mut body, &f.filter);
                let mut options = qos_bits(f.qos);
                if v5 {
                    options |= u8::from(f.no_local) << 2
                        | u8::from(f.retain_as_published) << 3
                        | (f.retain_handling & 0b11) << 4;
                }
                body.put_u8(options);
            }
            0x82
        }
        Packet::SubAck(s) => {
            suback(&mut body, s, v5, true);
            0x90
        }
        Packet::Unsubscribe(u) => {
            body.put_u16(u.pkid);
            if v5 {
                u.props.write(&mut body);
            }
            for f in &u.filters {
                put_string(&mut body, f);
            }
            0xA2
        }
        Packet::UnsubAck(s) => {
            suback(&mut body, s, v5, false);
            0xB0
        }
        Packet::PingReq => 0xC0,
        Packet::PingResp => 0xD0,
        Packet::Disconnect(d) => {
            if !v5 {
                // 3.1.1 servers close the connection without a packet;
                // a 3.1.1 client's DISCONNECT has no body.
                return Ok(0);
            }
            reasoned(&mut body, d);
            0xE0
        }
        Packet::Auth(a) => {
            if !v5 {
                return Err(WireError::Protocol(
                    "AUTH does not exist in MQTT 3.1.1".into(),
                ));
            }
            reasoned(&mut body, a);
            0xF0
        }
    };
    if body.len() > 268_435_455 {
        return Err(WireError::TooLarge {
            size: body.len(),
            max: 268_435_455,
        });
    }
    out.put_u8(first);
    put_varint(out, body.len());
    out.put_slice(&body);
    Ok(out.len() - start)
}

fn write_publish(p: &super::Publish, v5: bool, out: &mut BytesMut) -> Result<usize, WireError> {
    let start = out.len();
    let with_pkid = p.qos != rumqttc::QoS::AtMostOnce;
    let props = if v5 { p.props.len() } else { 0 };
    let topic = p.topic.len().min(usize::from(u16::MAX));
    let remaining = 2
        + topic
        + if with_pkid { 2 } else { 0 }
        + if v5 { varint_len(props) + props } else { 0 }
        + p.payload.len();
    if remaining > 268_435_455 {
        return Err(WireError::TooLarge {
            size: remaining,
            max: 268_435_455,
        });
    }
    out.reserve(1 + varint_len(remaining) + remaining);
    out.put_u8(0x30 | (u8::from(p.dup) << 3) | (qos_bits(p.qos) << 1) | u8::from(p.retain));
    put_varint(out, remaining);
    put_string(out, &p.topic);
    if with_pkid {
        out.put_u16(p.pkid);
    }
    if v5 {
        p.props.write(out);
    }
    out.put_slice(&p.payload);
    Ok(out.len() - start)
}

/// An acknowledgement in place: packet id, then (MQTT 5, when not plain
/// success) the reason code and properties.
fn write_ack(a: &Ack, v5: bool, first: u8, out: &mut BytesMut) -> usize {
    let start = out.len();
    let with_code = v5 && (a.code != reason::SUCCESS || !a.props.is_empty());
    let props = if with_code && !a.props.is_empty() {
        a.props.len()
    } else {
        0
    };
    let remaining = 2
        + usize::from(with_code)
        + if props > 0 {
            varint_len(props) + props
        } else {
            0
        };
    out.put_u8(first);
    put_varint(out, remaining);
    out.put_u16(a.pkid);
    if with_code {
        out.put_u8(a.code);
        if props > 0 {
            a.props.write(out);
        }
    }
    out.len() - start
}

fn suback(body: &mut BytesMut, s: &SubAck, v5: bool, is_suback: bool) {
    body.put_u16(s.pkid);
    if v5 {
        s.props.write(body);
        body.put_slice(&s.codes);
    } else if is_suback {
        // 3.1.1: granted QoS 0-2 or 0x80.
        body.extend(s.codes.iter().map(|&c| if c <= 2 { c } else { 0x80 }));
    }
}

fn reasoned(body: &mut BytesMut, r: &Reasoned) {
    if r.code != reason::SUCCESS || !r.props.is_empty() {
        body.put_u8(r.code);
        if !r.props.is_empty() {
            r.props.write(body);
        }
    }
}

/// The MQTT 3.1.1 CONNACK return code for an MQTT 5 reason code.
fn connack_v311(code: u8) -> u8 {
    match code {
        reason::SUCCESS => 0x00,
        reason::UNSUPPORTED_PROTOCOL_VERSION => 0x01,
        reason::CLIENT_ID_NOT_VALID => 0x02,
        reason::SERVER_UNAVAILABLE | reason::SERVER_BUSY => 0x03,
        reason::BAD_USERNAME_OR_PASSWORD => 0x04,
        _ => 0x05,
    }
}

pub(super) fn varint_len(value: usize) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

pub(super) fn put_varint(out: &mut BytesMut, mut value: usize) {
    loop {
        #[allow(clippy::cast_possible_truncation)]
        let mut byte = (value % 128) as u8;
        value /= 128;
        if value > 0 {
            byte |= 0x80;
        }
        out.put_u8(byte);
        if value == 0 {
            break;
        }
    }
}

/// Strings and binary data are at most 65 535 bytes; longer ones are cut
/// (the session never builds one: topics and ids come from packets that
/// carried them with a two-byte length).
pub(super) fn put_binary(out: &mut BytesMut, data: &[u8]) {
    let len = data.len().min(usize::from(u16::MAX));
    #[allow(clippy::cast_possible_truncation)]
    out.put_u16(len as u16);
    out.put_slice(data.get(..len).unwrap_or_default());
}

pub(super) fn put_string(out: &mut BytesMut, text: &str) {
    put_binary(out, text.as_bytes());
}
