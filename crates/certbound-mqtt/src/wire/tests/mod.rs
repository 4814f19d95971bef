//! The codec against itself (every packet type round-trips at both levels),
//! against rumqttc's v4 and v5 codecs (a codec we did not write), and
//! against malformed input.
//!
//! Shared helpers live here; the tests are in the sub-modules.

mod framing;
mod refusals;
mod roundtrip;
mod rumqttc_v4;
mod rumqttc_v5;

use super::*;
use bytes::BytesMut;

pub(super) const Q0: QoS = QoS::AtMostOnce;
pub(super) const Q1: QoS = QoS::AtLeastOnce;
pub(super) const Q2: QoS = QoS::ExactlyOnce;
pub(super) const BIG: usize = 1 << 28;

pub(super) fn encode(packet: &Packet, level: Level) -> BytesMut {
    let mut out = BytesMut::new();
    let n = write(packet, level, &mut out).expect("encodable");
    assert_eq!(n, out.len(), "write returns the bytes it wrote");
    out
}

/// Reads exactly one packet from raw bytes.
pub(super) fn read_one(bytes: &[u8], level: Level) -> Result<Option<Packet>, WireError> {
    let mut buf = BytesMut::from(bytes);
    let packet = read(&mut buf, level, BIG);
    if let Ok(Some(_)) = packet {
        assert!(buf.is_empty(), "bytes left over");
    }
    packet
}

/// A packet from a first byte and a body (remaining length < 128).
pub(super) fn raw(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first, u8::try_from(body.len()).expect("short body")];
    out.extend_from_slice(body);
    out
}

pub(super) fn string(s: &[u8]) -> Vec<u8> {
    let mut out = u16::try_from(s.len())
        .expect("short")
        .to_be_bytes()
        .to_vec();
    out.extend_from_slice(s);
    out
}

pub(super) fn ack(pkid: u16) -> Ack {
    Ack {
        pkid,
        ..Ack::default()
    }
}

/// Every property at once (not valid in any one packet, but the codec's
/// property block writes and reads them all for a kind that allows them;
/// used per kind below with the allowed subset).
pub(super) fn publish_props() -> Properties {
    Properties {
        payload_format: Some(1),
        message_expiry: Some(3600),
        content_type: Some("application/json".into()),
        response_topic: Some("resp/t".into()),
        correlation_data: Some(Bytes::from_static(b"\x00\x01corr")),
        subscription_ids: vec![1, 200, 268_435_455],
        topic_alias: Some(3),
        user: vec![("k".into(), "v".into()), ("k".into(), "v2".into())],
        ..Properties::default()
    }
}

pub(super) fn connect_v5() -> Connect {
    Connect {
        level: Level::V5,
        clean_start: false,
        keep_alive: 30,
        client_id: "client-ü".into(),
        will: Some(Will {
            topic: "will/t".into(),
            payload: Bytes::from_static(b"gone"),
            qos: Q1,
            retain: true,
            props: Properties {
                will_delay: Some(30),
                payload_format: Some(0),
                message_expiry: Some(60),
                content_type: Some("text/plain".into()),
                response_topic: Some("r".into()),
                correlation_data: Some(Bytes::from_static(b"c")),
                user: vec![("a".into(), "b".into())],
                ..Properties::default()
            },
        }),
        username: Some("user".into()),
        password: Some(Bytes::from_static(b"\x00secret")),
        props: Properties {
            session_expiry: Some(7200),
            receive_max: Some(10),
            max_packet_size: Some(4096),
            topic_alias_max: Some(5),
            request_response_info: Some(1),
            request_problem_info: Some(0),
            auth_method: Some("ace".into()),
            auth_data: Some(Bytes::from_static(b"\xd2\x84token")),
            user: vec![("x".into(), "y".into())],
            ..Properties::default()
        },
    }
}

pub(super) fn connect_v311() -> Connect {
    Connect {
        level: Level::V311,
        clean_start: true,
        keep_alive: 60,
        client_id: "c".into(),
        will: Some(Will {
            topic: "w".into(),
            payload: Bytes::from_static(b"bye"),
            qos: Q2,
            retain: false,
            props: Properties::default(),
        }),
        username: Some("u".into()),
        password: Some(Bytes::from_static(b"p")),
        props: Properties::default(),
    }
}
