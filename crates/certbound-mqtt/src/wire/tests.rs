//! The codec against itself (every packet type round-trips at both levels),
//! against rumqttc's v4 and v5 codecs (a codec we did not write), and
//! against malformed input.

use super::*;
use bytes::{BufMut, BytesMut};
use rumqttc::mqttbytes::v4 as r4;
use rumqttc::v5::mqttbytes as r5q;
use rumqttc::v5::mqttbytes::v5 as r5;

const Q0: QoS = QoS::AtMostOnce;
const Q1: QoS = QoS::AtLeastOnce;
const Q2: QoS = QoS::ExactlyOnce;
const BIG: usize = 1 << 28;

fn encode(packet: &Packet, level: Level) -> BytesMut {
    let mut out = BytesMut::new();
    let n = write(packet, level, &mut out).expect("encodable");
    assert_eq!(n, out.len(), "write returns the bytes it wrote");
    out
}

/// Writes `packet`, reads it back, and checks it is the same packet and
/// every byte was consumed.
fn round_trip(packet: &Packet, level: Level) {
    let mut buf = encode(packet, level);
    let read_back = read(&mut buf, level, BIG)
        .unwrap_or_else(|e| panic!("{} at {level:?} does not read back: {e}", packet.name()));
    assert_eq!(read_back.as_ref(), Some(packet), "{level:?}");
    assert!(buf.is_empty(), "{} left {} bytes", packet.name(), buf.len());
}

/// Reads exactly one packet from raw bytes.
fn read_one(bytes: &[u8], level: Level) -> Result<Option<Packet>, WireError> {
    let mut buf = BytesMut::from(bytes);
    let packet = read(&mut buf, level, BIG);
    if let Ok(Some(_)) = packet {
        assert!(buf.is_empty(), "bytes left over");
    }
    packet
}

/// A packet from a first byte and a body (remaining length < 128).
fn raw(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first, u8::try_from(body.len()).expect("short body")];
    out.extend_from_slice(body);
    out
}

fn string(s: &[u8]) -> Vec<u8> {
    let mut out = u16::try_from(s.len())
        .expect("short")
        .to_be_bytes()
        .to_vec();
    out.extend_from_slice(s);
    out
}

fn ack(pkid: u16) -> Ack {
    Ack {
        pkid,
        ..Ack::default()
    }
}

fn r5qos(q: QoS) -> r5q::QoS {
    match q {
        QoS::AtMostOnce => r5q::QoS::AtMostOnce,
        QoS::AtLeastOnce => r5q::QoS::AtLeastOnce,
        QoS::ExactlyOnce => r5q::QoS::ExactlyOnce,
    }
}

/// Every property at once (not valid in any one packet, but the codec's
/// property block writes and reads them all for a kind that allows them;
/// used per kind below with the allowed subset).
fn publish_props() -> Properties {
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

fn connect_v5() -> Connect {
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

fn connect_v311() -> Connect {
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

// ---------------------------------------------------------------- round trips

#[test]
fn every_packet_round_trips_in_mqtt_311() {
    let level = Level::V311;
    let packets = [
        Packet::Connect(Box::new(connect_v311())),
        Packet::Connect(Box::new(Connect {
            will: None,
            username: None,
            password: None,
            client_id: String::new(),
            keep_alive: 0,
            ..connect_v311()
        })),
        Packet::ConnAck(ConnAck {
            session_present: true,
            code: 0,
            props: Properties::default(),
        }),
        Packet::Publish(Publish {
            dup: false,
            qos: Q0,
            retain: true,
            topic: "a/b".into(),
            pkid: 0,
            payload: Bytes::from_static(b"payload"),
            props: Properties::default(),
        }),
        Packet::Publish(Publish {
            dup: true,
            qos: Q1,
            retain: false,
            topic: "a/b".into(),
            pkid: 7,
            payload: Bytes::new(),
            props: Properties::default(),
        }),
        Packet::Publish(Publish {
            dup: false,
            qos: Q2,
            retain: false,
            topic: "a".into(),
            pkid: 65535,
            payload: Bytes::from_static(b"x"),
            props: Properties::default(),
        }),
        Packet::PubAck(ack(1)),
        Packet::PubRec(ack(2)),
        Packet::PubRel(ack(3)),
        Packet::PubComp(ack(4)),
        Packet::Subscribe(Subscribe {
            pkid: 5,
            filters: vec![
                SubFilter::new("a/+", Q0),
                SubFilter::new("b/#", Q1),
                SubFilter::new("$share/g/c", Q2),
            ],
            props: Properties::default(),
        }),
        Packet::SubAck(SubAck {
            pkid: 5,
            codes: vec![0, 1, 2, 0x80],
            props: Properties::default(),
        }),
        Packet::Unsubscribe(Unsubscribe {
            pkid: 6,
            filters: vec!["a/+".into(), "b/#".into()],
            props: Properties::default(),
        }),
        // 3.1.1 UNSUBACK carries no codes.
        Packet::UnsubAck(SubAck {
            pkid: 6,
            codes: vec![],
            props: Properties::default(),
        }),
        Packet::PingReq,
        Packet::PingResp,
    ];
    for packet in &packets {
        round_trip(packet, level);
    }
}

#[test]
fn disconnect_in_mqtt_311_has_no_body_and_the_server_sends_none() {
    // A 3.1.1 server closes the connection without a DISCONNECT.
    let mut out = BytesMut::new();
    assert_eq!(
        write(
            &Packet::Disconnect(Reasoned::default()),
            Level::V311,
            &mut out
        ),
        Ok(0)
    );
    assert!(out.is_empty());
    // A client's DISCONNECT is two bytes.
    assert_eq!(
        read_one(&[0xE0, 0x00], Level::V311),
        Ok(Some(Packet::Disconnect(Reasoned::default())))
    );
    // ... and nothing more.
    assert!(matches!(
        read_one(&[0xE0, 0x01, 0x04], Level::V311),
        Err(WireError::Malformed(_))
    ));
}

#[test]
fn every_packet_round_trips_in_mqtt_5() {
    let level = Level::V5;
    let reason_props = Properties {
        reason_string: Some("why".into()),
        user: vec![("u".into(), "v".into())],
        ..Properties::default()
    };
    let packets = [
        Packet::Connect(Box::new(connect_v5())),
        Packet::Connect(Box::new(Connect {
            will: None,
            username: None,
            password: Some(Bytes::from_static(b"pw")), // allowed without a user name in 5
            props: Properties::default(),
            ..connect_v5()
        })),
        Packet::ConnAck(ConnAck {
            session_present: false,
            code: reason::BAD_AUTHENTICATION_METHOD,
            props: Properties::default(),
        }),
        Packet::ConnAck(ConnAck {
            session_present: true,
            code: reason::SUCCESS,
            props: Properties {
                session_expiry: Some(100),
                receive_max: Some(64),
                max_qos: Some(1),
                retain_available: Some(1),
                max_packet_size: Some(1 << 20),
                assigned_client_id: Some("cb-auto-1".into()),
                topic_alias_max: Some(32),
                reason_string: Some("ok".into()),
                user: vec![("a".into(), "b".into())],
                wildcard_sub_available: Some(1),
                sub_ids_available: Some(0),
                shared_sub_available: Some(1),
                server_keep_alive: Some(60),
                response_info: Some("resp/".into()),
                server_reference: Some("other:8883".into()),
                auth_method: Some("ace".into()),
                auth_data: Some(Bytes::from_static(b"d")),
                ..Properties::default()
            },
        }),
        Packet::Publish(Publish {
            dup: true,
            qos: Q2,
            retain: true,
            topic: "a/b".into(),
            pkid: 9,
            payload: Bytes::from_static(b"{}"),
            props: publish_props(),
        }),
        // Topic alias standing in for the topic.
        Packet::Publish(Publish {
            dup: false,
            qos: Q0,
            retain: false,
            topic: String::new(),
            pkid: 0,
            payload: Bytes::new(),
            props: Properties {
                topic_alias: Some(1),
                ..Properties::default()
            },
        }),
        Packet::PubAck(ack(1)),
        Packet::PubAck(Ack {
            pkid: 1,
            code: reason::NOT_AUTHORIZED,
            props: reason_props.clone(),
        }),
        // A reason code without properties.
        Packet::PubAck(Ack {
            pkid: 2,
            code: 0x10,
            props: Properties::default(),
        }),
        Packet::PubRec(Ack {
            pkid: 3,
            code: reason::QUOTA_EXCEEDED,
            props: Properties::default(),
        }),
        // Success with properties keeps its code byte.
        Packet::PubRel(Ack {
            pkid: 4,
            code: reason::SUCCESS,
            props: reason_props.clone(),
        }),
        Packet::PubRel(Ack {
            pkid: 4,
            code: reason::PACKET_ID_NOT_FOUND,
            props: Properties::default(),
        }),
        Packet::PubComp(ack(5)),
        Packet::Subscribe(Subscribe {
            pkid: 6,
            filters: vec![
                SubFilter {
                    filter: "a/+".into(),
                    qos: Q1,
                    no_local: true,
                    retain_as_published: true,
                    retain_handling: 2,
                },
                SubFilter {
                    filter: "$share/g/b".into(),
                    qos: Q2,
                    no_local: false,
                    retain_as_published: false,
                    retain_handling: 1,
                },
            ],
            props: Properties {
                subscription_ids: vec![42],
                user: vec![("k".into(), "v".into())],
                ..Properties::default()
            },
        }),
        Packet::SubAck(SubAck {
            pkid: 6,
            codes: vec![0, 1, 2, 0x87, 0x8F, 0x97],
            props: reason_props,
        }),
        Packet::Unsubscribe(Unsubscribe {
            pkid: 7,
            filters: vec!["a/+".into()],
            props: Properties {
                user: vec![("k".into(), "v".into())],
                ..Properties::default()
            },
        }),
        Packet::UnsubAck(SubAck {
            pkid: 7,
            codes: vec![0x00, 0x11],
            props: Properties::default(),
        }),
        Packet::PingReq,
        Packet::PingResp,
        Packet::Disconnect(Reasoned::default()),
        Packet::Disconnect(Reasoned {
            code: reason::DISCONNECT_WITH_WILL,
            props: Properties::default(),
        }),
        Packet::Disconnect(Reasoned {
            code: reason::SESSION_TAKEN_OVER,
            props: Properties {
                session_expiry: Some(0),
                reason_string: Some("taken over".into()),
                server_reference: Some("elsewhere".into()),
                user: vec![("a".into(), "b".into())],
                ..Properties::default()
            },
        }),
        Packet::Auth(Reasoned {
            code: reason::REAUTHENTICATE,
            props: Properties {
                auth_method: Some("ace".into()),
                auth_data: Some(Bytes::from_static(b"\x00\x02ab")),
                ..Properties::default()
            },
        }),
        Packet::Auth(Reasoned {
            code: reason::SUCCESS,
            props: Properties {
                auth_method: Some("ace".into()),
                reason_string: Some("fine".into()),
                ..Properties::default()
            },
        }),
        Packet::Auth(Reasoned::default()),
    ];
    for packet in &packets {
        round_trip(packet, level);
    }
}

#[test]
fn remaining_lengths_of_one_to_four_bytes_round_trip() {
    // Remaining length = 2 (topic length) + 1 (topic) + 1 (no properties) + payload.
    for (payload, header) in [
        (0usize, 2usize),
        (123, 2),
        (124, 3),
        (16_379, 3),
        (16_380, 4),
        (2_097_147, 4),
        (2_097_148, 5),
    ] {
        let packet = Packet::Publish(Publish {
            dup: false,
            qos: Q0,
            retain: false,
            topic: "t".into(),
            pkid: 0,
            payload: Bytes::from(vec![7u8; payload]),
            props: Properties::default(),
        });
        let buf = encode(&packet, Level::V5);
        assert_eq!(buf.len(), header + 4 + payload, "payload {payload}");
        round_trip(&packet, Level::V5);
    }
}

#[test]
fn property_block_length_matches_what_is_written() {
    let all = [
        publish_props(),
        connect_v5().props,
        connect_v5().will.expect("will").props,
        Properties {
            subscription_ids: vec![127, 128, 16_383, 16_384, 2_097_151, 2_097_152],
            ..Properties::default()
        },
    ];
    for props in all {
        let mut out = BytesMut::new();
        props.write(&mut out);
        let prefix = match props.len() {
            0..=127 => 1,
            128..=16_383 => 2,
            _ => 3,
        };
        assert_eq!(out.len(), prefix + props.len());
        assert!(!props.is_empty());
    }
    assert!(Properties::default().is_empty());
    let stripped = Properties {
        reason_string: Some("r".into()),
        user: vec![("a".into(), "b".into())],
        session_expiry: Some(5),
        ..Properties::default()
    }
    .without_problem_info();
    assert_eq!(
        stripped,
        Properties {
            session_expiry: Some(5),
            ..Properties::default()
        }
    );
}

// ------------------------------------------------------ rumqttc v4 cross-checks

fn r4_encode(packet: &r4::Packet) -> BytesMut {
    let mut out = BytesMut::new();
    packet.write(&mut out, usize::MAX).expect("rumqttc encodes");
    out
}

fn r4_decode(mut buf: BytesMut) -> r4::Packet {
    let packet = r4::Packet::read(&mut buf, usize::MAX).expect("rumqttc decodes our output");
    assert!(buf.is_empty());
    packet
}

fn ours_v311(buf: BytesMut) -> Packet {
    let mut buf = buf;
    let packet = read(&mut buf, Level::V311, BIG)
        .expect("we read rumqttc's output")
        .expect("complete");
    assert!(buf.is_empty());
    packet
}

#[test]
fn rumqttc_v4_connect_reads_the_same() {
    let mut c = r4::Connect::new("dev-1");
    c.keep_alive = 45;
    c.clean_session = false;
    c.last_will = Some(r4::LastWill::new(
        "status/dev-1",
        b"offline".to_vec(),
        Q1,
        true,
    ));
    c.set_login("user", "pass");
    let Packet::Connect(ours) = ours_v311(r4_encode(&r4::Packet::Connect(c))) else {
        panic!("not a CONNECT");
    };
    assert_eq!(
        *ours,
        Connect {
            level: Level::V311,
            clean_start: false,
            keep_alive: 45,
            client_id: "dev-1".into(),
            will: Some(Will {
                topic: "status/dev-1".into(),
                payload: Bytes::from_static(b"offline"),
                qos: Q1,
                retain: true,
                props: Properties::default(),
            }),
            username: Some("user".into()),
            password: Some(Bytes::from_static(b"pass")),
            props: Properties::default(),
        }
    );
    // A CONNECT is read whatever the session's level: it carries its own.
    let mut buf = r4_encode(&r4::Packet::Connect(r4::Connect::new("x")));
    assert!(matches!(
        read(&mut buf, Level::V5, BIG),
        Ok(Some(Packet::Connect(c))) if c.level == Level::V311 && c.clean_start && c.keep_alive == 10
    ));
}

#[test]
fn rumqttc_v4_client_packets_read_the_same() {
    let mut publish = r4::Publish::new("a/b", Q1, b"data".to_vec());
    publish.pkid = 77;
    publish.retain = true;
    publish.dup = true;
    let mut qos2 = r4::Publish::new("c", Q2, b"".to_vec());
    qos2.pkid = 3;
    let cases = [
        (
            r4::Packet::Publish(publish),
            Packet::Publish(Publish {
                dup: true,
                qos: Q1,
                retain: true,
                topic: "a/b".into(),
                pkid: 77,
                payload: Bytes::from_static(b"data"),
                props: Properties::default(),
            }),
        ),
        (
            r4::Packet::Publish(qos2),
            Packet::Publish(Publish {
                dup: false,
                qos: Q2,
                retain: false,
                topic: "c".into(),
                pkid: 3,
                payload: Bytes::new(),
                props: Properties::default(),
            }),
        ),
        (
            r4::Packet::Publish(r4::Publish::new("q0", Q0, b"z".to_vec())),
            Packet::Publish(Publish {
                dup: false,
                qos: Q0,
                retain: false,
                topic: "q0".into(),
                pkid: 0,
                payload: Bytes::from_static(b"z"),
                props: Properties::default(),
            }),
        ),
        (
            r4::Packet::Subscribe(r4::Subscribe {
                pkid: 12,
                filters: vec![
                    r4::SubscribeFilter::new("a/#".into(), Q2),
                    r4::SubscribeFilter::new("+/b".into(), Q0),
                ],
            }),
            Packet::Subscribe(Subscribe {
                pkid: 12,
                filters: vec![SubFilter::new("a/#", Q2), SubFilter::new("+/b", Q0)],
                props: Properties::default(),
            }),
        ),
        (
            r4::Packet::Unsubscribe(r4::Unsubscribe {
                pkid: 13,
                topics: vec!["a/#".into(), "x".into()],
            }),
            Packet::Unsubscribe(Unsubscribe {
                pkid: 13,
                filters: vec!["a/#".into(), "x".into()],
                props: Properties::default(),
            }),
        ),
        (
            r4::Packet::PubAck(r4::PubAck::new(1)),
            Packet::PubAck(ack(1)),
        ),
        (
            r4::Packet::PubRec(r4::PubRec::new(2)),
            Packet::PubRec(ack(2)),
        ),
        (
            r4::Packet::PubRel(r4::PubRel::new(3)),
            Packet::PubRel(ack(3)),
        ),
        (
            r4::Packet::PubComp(r4::PubComp::new(4)),
            Packet::PubComp(ack(4)),
        ),
        (r4::Packet::PingReq, Packet::PingReq),
        (
            r4::Packet::Disconnect,
            Packet::Disconnect(Reasoned::default()),
        ),
    ];
    for (theirs, expected) in cases {
        assert_eq!(ours_v311(r4_encode(&theirs)), expected, "{theirs:?}");
    }
}

#[test]
fn our_v311_server_packets_read_in_rumqttc_v4() {
    let publish = Packet::Publish(Publish {
        dup: true,
        qos: Q2,
        retain: true,
        topic: "a/b".into(),
        pkid: 500,
        payload: Bytes::from_static(b"hello"),
        // Dropped for 3.1.1.
        props: publish_props(),
    });
    let mut expected = r4::Publish::new("a/b", Q2, b"hello".to_vec());
    expected.pkid = 500;
    expected.dup = true;
    expected.retain = true;
    let cases = [
        (publish, r4::Packet::Publish(expected)),
        (
            Packet::PubAck(Ack {
                pkid: 9,
                code: reason::NOT_AUTHORIZED, // not on the 3.1.1 wire
                props: Properties {
                    reason_string: Some("no".into()),
                    ..Properties::default()
                },
            }),
            r4::Packet::PubAck(r4::PubAck::new(9)),
        ),
        (
            Packet::PubRec(ack(10)),
            r4::Packet::PubRec(r4::PubRec::new(10)),
        ),
        (
            Packet::PubRel(ack(11)),
            r4::Packet::PubRel(r4::PubRel::new(11)),
        ),
        (
            Packet::PubComp(ack(12)),
            r4::Packet::PubComp(r4::PubComp::new(12)),
        ),
        (
            Packet::UnsubAck(SubAck {
                pkid: 13,
                codes: vec![0, 0x11],
                props: Properties::default(),
            }),
            r4::Packet::UnsubAck(r4::UnsubAck::new(13)),
        ),
        (Packet::PingResp, r4::Packet::PingResp),
    ];
    for (ours, expected) in cases {
        assert_eq!(r4_decode(encode(&ours, Level::V311)), expected, "{ours:?}");
    }
}

#[test]
fn v311_connack_return_codes_are_mapped_from_mqtt5_reason_codes() {
    use r4::ConnectReturnCode as Rc;
    for (code, expected) in [
        (reason::SUCCESS, Rc::Success),
        (
            reason::UNSUPPORTED_PROTOCOL_VERSION,
            Rc::RefusedProtocolVersion,
        ),
        (reason::CLIENT_ID_NOT_VALID, Rc::BadClientId),
        (reason::SERVER_UNAVAILABLE, Rc::ServiceUnavailable),
        (reason::SERVER_BUSY, Rc::ServiceUnavailable),
        (reason::BAD_USERNAME_OR_PASSWORD, Rc::BadUserNamePassword),
        (reason::NOT_AUTHORIZED, Rc::NotAuthorized),
        (reason::QUOTA_EXCEEDED, Rc::NotAuthorized),
        (reason::BAD_AUTHENTICATION_METHOD, Rc::NotAuthorized),
        (reason::TOPIC_NAME_INVALID, Rc::NotAuthorized),
    ] {
        let connack = Packet::ConnAck(ConnAck {
            session_present: code == reason::SUCCESS,
            code,
            props: Properties {
                receive_max: Some(5), // dropped for 3.1.1
                ..Properties::default()
            },
        });
        let bytes = encode(&connack, Level::V311);
        assert_eq!(bytes.len(), 4, "3.1.1 CONNACK is four bytes");
        assert_eq!(
            r4_decode(bytes),
            r4::Packet::ConnAck(r4::ConnAck::new(expected, code == reason::SUCCESS)),
            "code 0x{code:02x}"
        );
    }
}

#[test]
fn v311_suback_failures_are_0x80() {
    let suback = Packet::SubAck(SubAck {
        pkid: 3,
        codes: vec![
            0,
            1,
            2,
            reason::NOT_AUTHORIZED,
            reason::TOPIC_FILTER_INVALID,
            reason::QUOTA_EXCEEDED,
        ],
        props: Properties {
            reason_string: Some("dropped".into()),
            ..Properties::default()
        },
    });
    let bytes = encode(&suback, Level::V311);
    assert_eq!(&bytes[..], &[0x90, 8, 0, 3, 0, 1, 2, 0x80, 0x80, 0x80][..]);
    use r4::SubscribeReasonCode as S;
    assert_eq!(
        r4_decode(bytes),
        r4::Packet::SubAck(r4::SubAck::new(
            3,
            vec![
                S::Success(Q0),
                S::Success(Q1),
                S::Success(Q2),
                S::Failure,
                S::Failure,
                S::Failure
            ]
        ))
    );
}

// ------------------------------------------------------ rumqttc v5 cross-checks

fn r5_encode(packet: &r5::Packet) -> BytesMut {
    let mut out = BytesMut::new();
    packet.write(&mut out, None).expect("rumqttc encodes");
    out
}

fn r5_decode(mut buf: BytesMut) -> r5::Packet {
    let packet = r5::Packet::read(&mut buf, None).expect("rumqttc decodes our output");
    assert!(buf.is_empty());
    packet
}

fn ours_v5(buf: BytesMut) -> Packet {
    let mut buf = buf;
    let packet = read(&mut buf, Level::V5, BIG)
        .expect("we read rumqttc's output")
        .expect("complete");
    assert!(buf.is_empty());
    packet
}

#[test]
fn rumqttc_v5_connect_with_properties_reads_the_same() {
    let mut props = r5::ConnectProperties::new();
    props.session_expiry_interval = Some(3600);
    props.receive_maximum = Some(20);
    props.max_packet_size = Some(2048);
    props.topic_alias_max = Some(7);
    props.request_response_info = Some(1);
    props.request_problem_info = Some(0);
    props.user_properties = vec![("app".into(), "test".into())];
    props.authentication_method = Some("ace".into());
    props.authentication_data = Some(Bytes::from_static(b"\x00\x03tok"));
    let will = r5::LastWill::new(
        "will/t",
        b"gone".to_vec(),
        r5q::QoS::ExactlyOnce,
        false,
        Some(r5::LastWillProperties {
            delay_interval: Some(10),
            payload_format_indicator: Some(1),
            message_expiry_interval: Some(20),
            content_type: Some("text/plain".into()),
            response_topic: Some("resp".into()),
            correlation_data: Some(Bytes::from_static(b"cd")),
            user_properties: vec![("w".into(), "1".into())],
        }),
    );
    let connect = r5::Connect {
        keep_alive: 15,
        client_id: "v5-client".into(),
        clean_start: true,
        properties: Some(props),
    };
    let packet = r5::Packet::Connect(connect, Some(will), Some(r5::Login::new("u", "p")));
    let Packet::Connect(ours) = ours_v5(r5_encode(&packet)) else {
        panic!("not a CONNECT");
    };
    assert_eq!(
        *ours,
        Connect {
            level: Level::V5,
            clean_start: true,
            keep_alive: 15,
            client_id: "v5-client".into(),
            will: Some(Will {
                topic: "will/t".into(),
                payload: Bytes::from_static(b"gone"),
                qos: Q2,
                retain: false,
                props: Properties {
                    will_delay: Some(10),
                    payload_format: Some(1),
                    message_expiry: Some(20),
                    content_type: Some("text/plain".into()),
                    response_topic: Some("resp".into()),
                    correlation_data: Some(Bytes::from_static(b"cd")),
                    user: vec![("w".into(), "1".into())],
                    ..Properties::default()
                },
            }),
            username: Some("u".into()),
            password: Some(Bytes::from_static(b"p")),
            props: Properties {
                session_expiry: Some(3600),
                receive_max: Some(20),
                max_packet_size: Some(2048),
                topic_alias_max: Some(7),
                request_response_info: Some(1),
                request_problem_info: Some(0),
                user: vec![("app".into(), "test".into())],
                auth_method: Some("ace".into()),
                auth_data: Some(Bytes::from_static(b"\x00\x03tok")),
                ..Properties::default()
            },
        }
    );
}

fn r5_publish_props() -> r5::PublishProperties {
    r5::PublishProperties {
        payload_format_indicator: Some(1),
        message_expiry_interval: Some(90),
        topic_alias: Some(2),
        response_topic: Some("reply/to".into()),
        correlation_data: Some(Bytes::from_static(b"\x01\x02")),
        user_properties: vec![("a".into(), "1".into()), ("a".into(), "2".into())],
        subscription_identifiers: vec![],
        content_type: Some("application/cbor".into()),
    }
}

fn ours_publish_props() -> Properties {
    Properties {
        payload_format: Some(1),
        message_expiry: Some(90),
        topic_alias: Some(2),
        response_topic: Some("reply/to".into()),
        correlation_data: Some(Bytes::from_static(b"\x01\x02")),
        user: vec![("a".into(), "1".into()), ("a".into(), "2".into())],
        content_type: Some("application/cbor".into()),
        ..Properties::default()
    }
}

#[test]
fn rumqttc_v5_publish_with_properties_reads_the_same() {
    let mut publish = r5::Publish::new(
        "req/x",
        r5q::QoS::AtLeastOnce,
        Bytes::from_static(b"body"),
        Some(r5_publish_props()),
    );
    publish.pkid = 4;
    publish.retain = true;
    assert_eq!(
        ours_v5(r5_encode(&r5::Packet::Publish(publish))),
        Packet::Publish(Publish {
            dup: false,
            qos: Q1,
            retain: true,
            topic: "req/x".into(),
            pkid: 4,
            payload: Bytes::from_static(b"body"),
            props: ours_publish_props(),
        })
    );
}

#[test]
fn our_v5_publish_with_properties_reads_in_rumqttc() {
    let ours = Packet::Publish(Publish {
        dup: true,
        qos: Q2,
        retain: false,
        topic: "req/x".into(),
        pkid: 40,
        payload: Bytes::from_static(b"body"),
        props: Properties {
            subscription_ids: vec![5, 300],
            ..ours_publish_props()
        },
    });
    let r5::Packet::Publish(theirs) = r5_decode(encode(&ours, Level::V5)) else {
        panic!("not a PUBLISH");
    };
    assert_eq!(
        (theirs.dup, theirs.qos, theirs.retain),
        (true, r5q::QoS::ExactlyOnce, false)
    );
    assert_eq!((&theirs.topic[..], theirs.pkid), (&b"req/x"[..], 40));
    assert_eq!(&theirs.payload[..], b"body");
    let props = theirs.properties.expect("properties");
    assert_eq!(
        props,
        r5::PublishProperties {
            subscription_identifiers: vec![5, 300],
            ..r5_publish_props()
        }
    );
}

#[test]
fn rumqttc_v5_subscribe_with_options_reads_the_same() {
    let filters = vec![
        r5::Filter {
            path: "a/+".into(),
            qos: r5q::QoS::AtLeastOnce,
            nolocal: true,
            preserve_retain: true,
            retain_forward_rule: r5::RetainForwardRule::Never,
        },
        r5::Filter {
            path: "b/#".into(),
            qos: r5q::QoS::ExactlyOnce,
            nolocal: false,
            preserve_retain: false,
            retain_forward_rule: r5::RetainForwardRule::OnNewSubscribe,
        },
        r5::Filter::new("c", r5q::QoS::AtMostOnce),
    ];
    let mut subscribe = r5::Subscribe::new_many(
        filters,
        Some(r5::SubscribeProperties {
            id: Some(1234),
            user_properties: vec![("k".into(), "v".into())],
        }),
    );
    subscribe.pkid = 8;
    assert_eq!(
        ours_v5(r5_encode(&r5::Packet::Subscribe(subscribe))),
        Packet::Subscribe(Subscribe {
            pkid: 8,
            filters: vec![
                SubFilter {
                    filter: "a/+".into(),
                    qos: Q1,
                    no_local: true,
                    retain_as_published: true,
                    retain_handling: 2,
                },
                SubFilter {
                    filter: "b/#".into(),
                    qos: Q2,
                    no_local: false,
                    retain_as_published: false,
                    retain_handling: 1,
                },
                SubFilter::new("c", Q0),
            ],
            props: Properties {
                subscription_ids: vec![1234],
                user: vec![("k".into(), "v".into())],
                ..Properties::default()
            },
        })
    );
}

#[test]
fn rumqttc_v5_acks_and_disconnect_read_the_same() {
    let mut rec = r5::PubRec::new(3, None);
    rec.reason = r5::PubRecReason::QuotaExceeded;
    let cases = [
        (
            r5::Packet::PubAck(r5::PubAck::new(1, None)),
            Packet::PubAck(ack(1)),
        ),
        (
            r5::Packet::PubRec(rec),
            Packet::PubRec(Ack {
                pkid: 3,
                code: reason::QUOTA_EXCEEDED,
                props: Properties::default(),
            }),
        ),
        (
            r5::Packet::PubRel(r5::PubRel::new(4, None)),
            Packet::PubRel(ack(4)),
        ),
        (
            r5::Packet::PubComp(r5::PubComp::new(5, None)),
            Packet::PubComp(ack(5)),
        ),
        (
            r5::Packet::Unsubscribe(r5::Unsubscribe {
                pkid: 6,
                ..r5::Unsubscribe::new("a/#", None)
            }),
            Packet::Unsubscribe(Unsubscribe {
                pkid: 6,
                filters: vec!["a/#".into()],
                props: Properties::default(),
            }),
        ),
        (r5::Packet::PingReq(r5::PingReq), Packet::PingReq),
        (
            // rumqttc writes a normal DISCONNECT with remaining length 0.
            r5::Packet::Disconnect(r5::Disconnect::new(
                r5::DisconnectReasonCode::NormalDisconnection,
            )),
            Packet::Disconnect(Reasoned::default()),
        ),
        (
            r5::Packet::Disconnect(r5::Disconnect {
                reason_code: r5::DisconnectReasonCode::DisconnectWithWillMessage,
                properties: Some(r5::DisconnectProperties {
                    session_expiry_interval: Some(0),
                    reason_string: Some("bye".into()),
                    user_properties: vec![],
                    server_reference: None,
                }),
            }),
            Packet::Disconnect(Reasoned {
                code: reason::DISCONNECT_WITH_WILL,
                props: Properties {
                    session_expiry: Some(0),
                    reason_string: Some("bye".into()),
                    ..Properties::default()
                },
            }),
        ),
    ];
    for (theirs, expected) in cases {
        assert_eq!(ours_v5(r5_encode(&theirs)), expected, "{theirs:?}");
    }
}

#[test]
fn our_v5_connack_with_properties_reads_in_rumqttc() {
    let ours = Packet::ConnAck(ConnAck {
        session_present: true,
        code: reason::SUCCESS,
        props: Properties {
            session_expiry: Some(3600),
            receive_max: Some(64),
            max_packet_size: Some(1029),
            topic_alias_max: Some(32),
            assigned_client_id: Some("cb-auto-0000000000000001".into()),
            server_keep_alive: Some(60),
            auth_method: Some("ace".into()),
            reason_string: Some("welcome".into()),
            user: vec![("k".into(), "v".into())],
            ..Properties::default()
        },
    });
    let r5::Packet::ConnAck(theirs) = r5_decode(encode(&ours, Level::V5)) else {
        panic!("not a CONNACK");
    };
    assert!(theirs.session_present);
    assert_eq!(theirs.code, r5::ConnectReturnCode::Success);
    let p = theirs.properties.expect("properties");
    assert_eq!(p.session_expiry_interval, Some(3600));
    assert_eq!(p.receive_max, Some(64));
    assert_eq!(p.max_packet_size, Some(1029));
    assert_eq!(p.topic_alias_max, Some(32));
    assert_eq!(
        p.assigned_client_identifier.as_deref(),
        Some("cb-auto-0000000000000001")
    );
    assert_eq!(p.server_keep_alive, Some(60));
    assert_eq!(p.authentication_method.as_deref(), Some("ace"));
    assert_eq!(p.reason_string.as_deref(), Some("welcome"));
    assert_eq!(p.user_properties, vec![("k".to_owned(), "v".to_owned())]);

    // Refusal codes pass through unchanged in MQTT 5.
    use r5::ConnectReturnCode as Rc;
    for (code, expected) in [
        (reason::NOT_AUTHORIZED, Rc::NotAuthorized),
        (
            reason::BAD_AUTHENTICATION_METHOD,
            Rc::BadAuthenticationMethod,
        ),
        (reason::QUOTA_EXCEEDED, Rc::QuotaExceeded),
        (
            reason::UNSUPPORTED_PROTOCOL_VERSION,
            Rc::UnsupportedProtocolVersion,
        ),
        (reason::CLIENT_ID_NOT_VALID, Rc::ClientIdentifierNotValid),
    ] {
        let r5::Packet::ConnAck(theirs) = r5_decode(encode(
            &Packet::ConnAck(ConnAck {
                session_present: false,
                code,
                props: Properties::default(),
            }),
            Level::V5,
        )) else {
            panic!("not a CONNACK");
        };
        assert_eq!(theirs.code, expected);
    }
}

#[test]
fn our_v5_acks_read_in_rumqttc() {
    use r5::SubscribeReasonCode as S;
    let suback = Packet::SubAck(SubAck {
        pkid: 9,
        codes: vec![0, 1, 2, 0x87, 0x8F, 0x97],
        props: Properties::default(),
    });
    assert_eq!(
        r5_decode(encode(&suback, Level::V5)),
        r5::Packet::SubAck(r5::SubAck {
            pkid: 9,
            return_codes: vec![
                S::Success(r5q::QoS::AtMostOnce),
                S::Success(r5q::QoS::AtLeastOnce),
                S::Success(r5q::QoS::ExactlyOnce),
                S::NotAuthorized,
                S::TopicFilterInvalid,
                S::QuotaExceeded,
            ],
            properties: None,
        })
    );
    let puback = Packet::PubAck(Ack {
        pkid: 2,
        code: reason::NOT_AUTHORIZED,
        props: Properties {
            reason_string: Some("not yours".into()),
            ..Properties::default()
        },
    });
    let r5::Packet::PubAck(theirs) = r5_decode(encode(&puback, Level::V5)) else {
        panic!("not a PUBACK");
    };
    assert_eq!(
        (theirs.pkid, theirs.reason),
        (2, r5::PubAckReason::NotAuthorized)
    );
    assert_eq!(
        theirs.properties.and_then(|p| p.reason_string).as_deref(),
        Some("not yours")
    );
    assert_eq!(
        r5_decode(encode(&Packet::PubAck(ack(3)), Level::V5)),
        r5::Packet::PubAck(r5::PubAck::new(3, None))
    );
    let r5::Packet::PubRel(rel) = r5_decode(encode(
        &Packet::PubRel(Ack {
            pkid: 4,
            code: reason::PACKET_ID_NOT_FOUND,
            props: Properties::default(),
        }),
        Level::V5,
    )) else {
        panic!("not a PUBREL");
    };
    assert_eq!(
        (rel.pkid, rel.reason),
        (4, r5::PubRelReason::PacketIdentifierNotFound)
    );
    let r5::Packet::UnsubAck(unsuback) = r5_decode(encode(
        &Packet::UnsubAck(SubAck {
            pkid: 5,
            codes: vec![0x00, 0x11],
            props: Properties::default(),
        }),
        Level::V5,
    )) else {
        panic!("not an UNSUBACK");
    };
    assert_eq!(
        unsuback.reasons,
        vec![
            r5::UnsubAckReason::Success,
            r5::UnsubAckReason::NoSubscriptionExisted
        ]
    );
    let r5::Packet::Disconnect(d) = r5_decode(encode(
        &Packet::Disconnect(Reasoned {
            code: reason::TOPIC_ALIAS_INVALID,
            props: Properties {
                reason_string: Some("alias".into()),
                ..Properties::default()
            },
        }),
        Level::V5,
    )) else {
        panic!("not a DISCONNECT");
    };
    assert_eq!(d.reason_code, r5::DisconnectReasonCode::TopicAliasInvalid);
    assert_eq!(
        d.properties.and_then(|p| p.reason_string).as_deref(),
        Some("alias")
    );
    assert_eq!(
        r5_decode(encode(&Packet::PingResp, Level::V5)),
        r5::Packet::PingResp(r5::PingResp)
    );
}

// ------------------------------------------------------------------- refusals

#[test]
fn too_large_is_refused_before_the_body_arrives() {
    // PUBLISH announcing 16 383 bytes; none of them here.
    let mut buf = BytesMut::from(&[0x30, 0xFF, 0x7F][..]);
    assert_eq!(
        read(&mut buf, Level::V311, 100),
        Err(WireError::TooLarge {
            size: 16_383,
            max: 100
        })
    );
    // Exactly the limit is fine (incomplete here).
    let mut buf = BytesMut::from(&[0x30, 0x64][..]);
    assert_eq!(read(&mut buf, Level::V311, 100), Ok(None));
    assert_eq!(buf.len(), 2, "nothing consumed");
    assert_eq!(
        WireError::TooLarge { size: 1, max: 0 }.reason_code(),
        reason::PACKET_TOO_LARGE
    );
}

#[test]
fn remaining_length_of_five_bytes_is_malformed() {
    for bytes in [
        &[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01][..],
        &[0x30, 0x80, 0x80, 0x80, 0x80][..],
    ] {
        let err = read_one(bytes, Level::V5).expect_err("five bytes");
        assert!(matches!(err, WireError::Malformed(_)), "{err:?}");
        assert_eq!(err.reason_code(), reason::MALFORMED_PACKET);
    }
    // The largest four-byte value is allowed (and too large here).
    assert_eq!(
        read(
            &mut BytesMut::from(&[0x30, 0xFF, 0xFF, 0xFF, 0x7F][..]),
            Level::V5,
            10
        ),
        Err(WireError::TooLarge {
            size: 268_435_455,
            max: 10
        })
    );
}

#[test]
fn bad_fixed_header_flags_are_malformed() {
    let subscribe_body = [&[0, 1][..], &string(b"a"), &[0]].concat();
    for (first, body) in [
        (0x80u8, subscribe_body.clone()), // SUBSCRIBE without 0b0010
        (0x83, subscribe_body),
        (0xA0, [&[0, 1][..], &string(b"a")].concat()), // UNSUBSCRIBE
        (0x60, vec![0, 1]),                            // PUBREL
        (0x42, vec![0, 1]),                            // PUBACK
        (0xC1, vec![]),                                // PINGREQ
        (0xE2, vec![]),                                // DISCONNECT
        (0x11, vec![]),                                // CONNECT
    ] {
        for level in [Level::V311, Level::V5] {
            assert!(
                matches!(
                    read_one(&raw(first, &body), level),
                    Err(WireError::Malformed(_))
                ),
                "first byte 0x{first:02x} at {level:?}"
            );
        }
    }
}

#[test]
fn publish_flags_qos3_and_dup_on_qos0_are_malformed() {
    let body = [&string(b"t")[..], &[0, 1], b"x"].concat();
    assert!(matches!(
        read_one(&raw(0x36, &body), Level::V311),
        Err(WireError::Malformed(_))
    ));
    let body0 = [&string(b"t")[..], b"x"].concat();
    assert!(matches!(
        read_one(&raw(0x38, &body0), Level::V311),
        Err(WireError::Malformed(_))
    ));
    // DUP on QoS 1 is fine.
    assert!(matches!(
        read_one(&raw(0x3A, &body), Level::V311),
        Ok(Some(Packet::Publish(Publish {
            dup: true,
            qos: Q1,
            pkid: 1,
            ..
        })))
    ));
}

fn connect_body(name: &[u8], level: u8, flags: u8, rest: &[u8]) -> Vec<u8> {
    [&string(name)[..], &[level, flags, 0, 30], rest].concat()
}

#[test]
fn connect_flag_errors() {
    // Reserved flag.
    let body = connect_body(b"MQTT", 4, 0b11, &string(b"c"));
    assert!(matches!(
        read_one(&raw(0x10, &body), Level::V311),
        Err(WireError::Malformed(_))
    ));
    // Will QoS 3.
    let will = [&string(b"c")[..], &string(b"w"), &string(b"p")].concat();
    let body = connect_body(b"MQTT", 4, 0b0001_1110, &will);
    assert!(matches!(
        read_one(&raw(0x10, &body), Level::V311),
        Err(WireError::Malformed(_))
    ));
    // Will QoS or retain without a will.
    for flags in [0b0000_1010, 0b0010_0010] {
        let body = connect_body(b"MQTT", 4, flags, &string(b"c"));
        assert!(matches!(
            read_one(&raw(0x10, &body), Level::V311),
            Err(WireError::Malformed(_))
        ));
    }
    // Password without user name: malformed in 3.1.1, fine in 5.
    let body = connect_body(
        b"MQTT",
        4,
        0b0100_0010,
        &[&string(b"c")[..], &string(b"pw")].concat(),
    );
    assert!(matches!(
        read_one(&raw(0x10, &body), Level::V311),
        Err(WireError::Malformed(_))
    ));
    let body = connect_body(
        b"MQTT",
        5,
        0b0100_0010,
        &[&[0u8][..], &string(b"c"), &string(b"pw")].concat(),
    );
    assert!(matches!(
        read_one(&raw(0x10, &body), Level::V311),
        Ok(Some(Packet::Connect(c))) if c.password.as_deref() == Some(&b"pw"[..]) && c.username.is_none()
    ));
    // A CONNECT that ends early.
    let body = connect_body(b"MQTT", 4, 0b1000_0010, &string(b"c"));
    assert!(matches!(
        read_one(&raw(0x10, &body), Level::V311),
        Err(WireError::Malformed(_))
    ));
}

#[test]
fn unsupported_protocols_are_named() {
    let body = connect_body(b"MQIsdp", 3, 0b10, &string(b"c"));
    let err = read_one(&raw(0x10, &body), Level::V311).expect_err("3.1");
    assert_eq!(
        err,
        WireError::UnsupportedProtocol {
            name: "MQIsdp".into(),
            level: 3
        }
    );
    assert_eq!(err.reason_code(), reason::UNSUPPORTED_PROTOCOL_VERSION);
    for (name, level) in [
        (&b"MQTT"[..], 6u8),
        (b"MQTT", 3),
        (b"MQIsdp", 4),
        (b"mqtt", 4),
    ] {
        let body = connect_body(name, level, 0b10, &string(b"c"));
        assert!(
            matches!(
                read_one(&raw(0x10, &body), Level::V5),
                Err(WireError::UnsupportedProtocol { level: l, .. }) if l == level
            ),
            "{name:?} {level}"
        );
    }
}

/// A v5 PUBLISH (QoS 0, topic "t") with a raw property block.
fn publish_with_props(props: &[u8]) -> Vec<u8> {
    let body = [
        &string(b"t")[..],
        &[u8::try_from(props.len()).expect("short")],
        props,
        b"x",
    ]
    .concat();
    raw(0x30, &body)
}

/// A v5 CONNECT (clean start, client id "c") with a raw property block.
fn connect_with_props(props: &[u8]) -> Vec<u8> {
    let rest = [
        &[u8::try_from(props.len()).expect("short")][..],
        props,
        &string(b"c"),
    ]
    .concat();
    raw(0x10, &connect_body(b"MQTT", 5, 0b10, &rest))
}

#[test]
fn properties_a_packet_may_not_carry_are_protocol_errors() {
    // Topic Alias (0x23) in CONNECT.
    let err = read_one(&connect_with_props(&[0x23, 0, 1]), Level::V5).expect_err("topic alias");
    assert!(matches!(err, WireError::Protocol(_)), "{err:?}");
    assert_eq!(err.reason_code(), reason::PROTOCOL_ERROR);
    // Session Expiry (0x11) in PUBLISH.
    assert!(matches!(
        read_one(&publish_with_props(&[0x11, 0, 0, 0, 1]), Level::V5),
        Err(WireError::Protocol(_))
    ));
    // Will Delay (0x18) in CONNECT (only in the will's properties).
    assert!(matches!(
        read_one(&connect_with_props(&[0x18, 0, 0, 0, 1]), Level::V5),
        Err(WireError::Protocol(_))
    ));
    // Assigned Client Identifier (0x12) from a client.
    assert!(matches!(
        read_one(
            &connect_with_props(&[&[0x12][..], &string(b"x")].concat()),
            Level::V5
        ),
        Err(WireError::Protocol(_))
    ));
    // Unknown property 0x7F.
    assert!(matches!(
        read_one(&publish_with_props(&[0x7F, 0]), Level::V5),
        Err(WireError::Protocol(_))
    ));
    // Authentication Method (0x15) in DISCONNECT.
    let body = [&[0x00, 4, 0x15][..], &string(b"a")].concat();
    assert!(matches!(
        read_one(&raw(0xE0, &body), Level::V5),
        Err(WireError::Protocol(_))
    ));
    // The same bytes in 3.1.1 are payload, not properties.
    assert!(matches!(
        read_one(&publish_with_props(&[0x11, 0, 0, 0, 1]), Level::V311),
        Ok(Some(Packet::Publish(_)))
    ));
}

#[test]
fn repeated_properties_are_protocol_errors_except_user_and_subscription_id() {
    // Message Expiry twice.
    assert!(matches!(
        read_one(
            &publish_with_props(&[0x02, 0, 0, 0, 1, 0x02, 0, 0, 0, 2]),
            Level::V5
        ),
        Err(WireError::Protocol(_))
    ));
    // Session Expiry twice in CONNECT.
    assert!(matches!(
        read_one(
            &connect_with_props(&[0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 1]),
            Level::V5
        ),
        Err(WireError::Protocol(_))
    ));
    // User properties may repeat, also with the same name.
    let user = [&[0x26][..], &string(b"k"), &string(b"v")].concat();
    let Ok(Some(Packet::Publish(p))) =
        read_one(&publish_with_props(&[&user[..], &user].concat()), Level::V5)
    else {
        panic!("user properties repeat");
    };
    assert_eq!(p.props.user.len(), 2);
    // Subscription identifiers may repeat in a PUBLISH (server to client)...
    let Ok(Some(Packet::Publish(p))) =
        read_one(&publish_with_props(&[0x0B, 1, 0x0B, 2]), Level::V5)
    else {
        panic!("subscription ids repeat");
    };
    assert_eq!(p.props.subscription_ids, vec![1, 2]);
    // ... but not in a SUBSCRIBE, and never 0.
    let sub = |props: &[u8]| {
        let body = [
            &[0, 1, u8::try_from(props.len()).expect("short")][..],
            props,
            &string(b"a"),
            &[0],
        ]
        .concat();
        raw(0x82, &body)
    };
    assert!(matches!(
        read_one(&sub(&[0x0B, 1, 0x0B, 2]), Level::V5),
        Err(WireError::Protocol(_))
    ));
    assert!(matches!(
        read_one(&sub(&[0x0B, 0]), Level::V5),
        Err(WireError::Protocol(_))
    ));
    assert!(matches!(
        read_one(&sub(&[0x0B, 7]), Level::V5),
        Ok(Some(Packet::Subscribe(s))) if s.props.subscription_ids == vec![7]
    ));
}

#[test]
fn zero_and_out_of_range_property_values_are_refused() {
    // Receive Maximum 0.
    assert!(matches!(
        read_one(&connect_with_props(&[0x21, 0, 0]), Level::V5),
        Err(WireError::Protocol(_))
    ));
    // Maximum Packet Size 0.
    assert!(matches!(
        read_one(&connect_with_props(&[0x27, 0, 0, 0, 0]), Level::V5),
        Err(WireError::Protocol(_))
    ));
    // Request Problem Information 2.
    assert!(matches!(
        read_one(&connect_with_props(&[0x17, 2]), Level::V5),
        Err(WireError::Protocol(_))
    ));
    // Payload Format Indicator 2.
    assert!(matches!(
        read_one(&publish_with_props(&[0x01, 2]), Level::V5),
        Err(WireError::Protocol(_))
    ));
    // A property block longer than the packet.
    assert!(matches!(
        read_one(&publish_with_props(&[0x02, 0, 0])[..], Level::V5),
        Err(WireError::Malformed(_))
    ));
    // Valid values read.
    assert!(matches!(
        read_one(&connect_with_props(&[0x21, 0, 1, 0x27, 0, 0, 0, 9]), Level::V5),
        Ok(Some(Packet::Connect(c))) if c.props.receive_max == Some(1) && c.props.max_packet_size == Some(9)
    ));
}

#[test]
fn packet_id_zero_is_refused() {
    for (first, body) in [
        (0x32u8, [&string(b"t")[..], &[0, 0], b"x"].concat()), // PUBLISH QoS 1
        (0x34, [&string(b"t")[..], &[0, 0]].concat()),         // PUBLISH QoS 2
        (0x40, vec![0, 0]),                                    // PUBACK
        (0x50, vec![0, 0]),                                    // PUBREC
        (0x62, vec![0, 0]),                                    // PUBREL
        (0x70, vec![0, 0]),                                    // PUBCOMP
        (0x82, [&[0, 0][..], &string(b"a"), &[0]].concat()),   // SUBSCRIBE
        (0xA2, [&[0, 0][..], &string(b"a")].concat()),         // UNSUBSCRIBE
    ] {
        assert!(
            matches!(
                read_one(&raw(first, &body), Level::V311),
                Err(WireError::Protocol(_))
            ),
            "0x{first:02x}"
        );
    }
}

#[test]
fn invalid_utf8_and_nul_in_strings_are_refused() {
    // Topic name.
    assert_eq!(
        read_one(
            &raw(0x30, &[&string(b"a/\xff")[..], b"x"].concat()),
            Level::V311
        ),
        Err(WireError::BadUtf8)
    );
    assert_eq!(
        read_one(
            &raw(0x30, &[&string(b"a\0b")[..], b"x"].concat()),
            Level::V311
        ),
        Err(WireError::BadUtf8)
    );
    // Client id.
    let body = connect_body(b"MQTT", 4, 0b10, &string(b"c\0"));
    assert_eq!(
        read_one(&raw(0x10, &body), Level::V311),
        Err(WireError::BadUtf8)
    );
    // Filter; a surrogate encoded in UTF-8 is not UTF-8 either.
    let body = [&[0, 1][..], &string(b"a/\xed\xa0\x80"), &[0]].concat();
    assert_eq!(
        read_one(&raw(0x82, &body), Level::V311),
        Err(WireError::BadUtf8)
    );
    // A string property (content type).
    assert_eq!(
        read_one(
            &publish_with_props(&[&[0x03][..], &string(b"\xc3")].concat()),
            Level::V5
        ),
        Err(WireError::BadUtf8)
    );
    // User property value with U+0000.
    assert_eq!(
        read_one(
            &publish_with_props(&[&[0x26][..], &string(b"k"), &string(b"\0")].concat()),
            Level::V5
        ),
        Err(WireError::BadUtf8)
    );
    assert_eq!(WireError::BadUtf8.reason_code(), reason::MALFORMED_PACKET);
    // Binary data may hold anything (payload, password, correlation data).
    let body = connect_body(
        b"MQTT",
        4,
        0b1100_0010,
        &[&string(b"c")[..], &string(b"u"), &string(b"\xff\0")].concat(),
    );
    assert!(matches!(
        read_one(&raw(0x10, &body), Level::V311),
        Ok(Some(Packet::Connect(_)))
    ));
}

#[test]
fn incomplete_input_returns_none_and_consumes_nothing() {
    let packets = [
        (Packet::Connect(Box::new(connect_v5())), Level::V5),
        (
            Packet::Publish(Publish {
                dup: false,
                qos: Q1,
                retain: false,
                topic: "t".into(),
                pkid: 1,
                payload: Bytes::from(vec![1u8; 300]),
                props: publish_props(),
            }),
            Level::V5,
        ),
        (Packet::PingReq, Level::V311),
        (Packet::Connect(Box::new(connect_v311())), Level::V311),
    ];
    for (packet, level) in packets {
        let full = encode(&packet, level);
        for cut in 0..full.len() {
            let mut buf = BytesMut::from(&full[..cut]);
            assert_eq!(
                read(&mut buf, level, BIG),
                Ok(None),
                "{} cut at {cut}",
                packet.name()
            );
            assert_eq!(buf.len(), cut, "nothing consumed");
        }
        // Two packets back to back: one at a time.
        let mut buf = full.clone();
        buf.extend_from_slice(&full);
        buf.put_u8(0xC0); // start of a third
        assert_eq!(read(&mut buf, level, BIG), Ok(Some(packet.clone())));
        assert_eq!(read(&mut buf, level, BIG), Ok(Some(packet.clone())));
        assert_eq!(read(&mut buf, level, BIG), Ok(None));
        assert_eq!(&buf[..], &[0xC0]);
    }
    assert_eq!(read(&mut BytesMut::new(), Level::V5, BIG), Ok(None));
}

#[test]
fn auth_does_not_exist_in_mqtt_311() {
    assert!(matches!(
        read_one(&[0xF0, 0x00], Level::V311),
        Err(WireError::Malformed(_))
    ));
    assert_eq!(
        read_one(&[0xF0, 0x00], Level::V5),
        Ok(Some(Packet::Auth(Reasoned::default())))
    );
    let mut out = BytesMut::new();
    assert!(matches!(
        write(&Packet::Auth(Reasoned::default()), Level::V311, &mut out),
        Err(WireError::Protocol(_))
    ));
    assert!(out.is_empty());
    // Packet type 0 exists in neither.
    for level in [Level::V311, Level::V5] {
        assert!(matches!(
            read_one(&[0x00, 0x00], level),
            Err(WireError::Malformed(_))
        ));
    }
}

#[test]
fn v5_disconnect_and_acks_without_reason_code_read_as_success() {
    assert_eq!(
        read_one(&[0xE0, 0x00], Level::V5),
        Ok(Some(Packet::Disconnect(Reasoned::default())))
    );
    // Reason code only (no property length).
    assert_eq!(
        read_one(&[0xE0, 0x01, 0x04], Level::V5),
        Ok(Some(Packet::Disconnect(Reasoned {
            code: reason::DISCONNECT_WITH_WILL,
            props: Properties::default()
        })))
    );
    assert_eq!(
        read_one(&[0x40, 0x02, 0, 7], Level::V5),
        Ok(Some(Packet::PubAck(ack(7))))
    );
    assert_eq!(
        read_one(&[0x50, 0x03, 0, 7, 0x10], Level::V5),
        Ok(Some(Packet::PubRec(Ack {
            pkid: 7,
            code: 0x10,
            props: Properties::default()
        })))
    );
    // We write a successful ack in two bytes, DISCONNECT in none.
    assert_eq!(
        &encode(&Packet::PubComp(ack(7)), Level::V5)[..],
        &[0x70, 2, 0, 7]
    );
    assert_eq!(
        &encode(&Packet::Disconnect(Reasoned::default()), Level::V5)[..],
        &[0xE0, 0]
    );
}

#[test]
fn subscribe_option_errors() {
    let sub = |options: u8| raw(0x82, &[&[0, 1][..], &string(b"a"), &[options]].concat());
    // QoS 3.
    assert!(matches!(
        read_one(&sub(3), Level::V311),
        Err(WireError::Malformed(_))
    ));
    // 3.1.1: only the QoS bits.
    assert!(matches!(
        read_one(&sub(0b0000_0100), Level::V311),
        Err(WireError::Malformed(_))
    ));
    // 5: the two top bits are reserved; retain handling 3 is an error.
    let v5 = |options: u8| raw(0x82, &[&[0, 1, 0][..], &string(b"a"), &[options]].concat());
    assert!(matches!(
        read_one(&v5(0b0100_0000), Level::V5),
        Err(WireError::Malformed(_))
    ));
    assert!(matches!(
        read_one(&v5(0b0011_0000), Level::V5),
        Err(WireError::Protocol(_))
    ));
    // No Local on a shared subscription.
    let shared = raw(
        0x82,
        &[&[0, 1, 0][..], &string(b"$share/g/a"), &[0b100]].concat(),
    );
    assert!(matches!(
        read_one(&shared, Level::V5),
        Err(WireError::Protocol(_))
    ));
    // SUBSCRIBE and UNSUBSCRIBE need a filter.
    assert!(matches!(
        read_one(&raw(0x82, &[0, 1]), Level::V311),
        Err(WireError::Protocol(_))
    ));
    assert!(matches!(
        read_one(&raw(0xA2, &[0, 1]), Level::V311),
        Err(WireError::Protocol(_))
    ));
    assert!(matches!(
        read_one(&raw(0x82, &[0, 1, 0]), Level::V5),
        Err(WireError::Protocol(_))
    ));
}

#[test]
fn trailing_bytes_are_malformed() {
    for (bytes, level) in [
        (&[0xC0, 0x01, 0x00][..], Level::V311), // PINGREQ with a body
        (&[0x40, 0x03, 0, 1, 0][..], Level::V311), // PUBACK with a code in 3.1.1
        (&[0x20, 0x03, 0, 0, 0][..], Level::V311), // CONNACK with a byte more
        (&[0x20, 0x02, 0x02, 0][..], Level::V311), // CONNACK with reserved flags
    ] {
        assert!(
            matches!(read_one(bytes, level), Err(WireError::Malformed(_))),
            "{bytes:?}"
        );
    }
}

#[test]
fn qos_bits_both_ways() {
    for q in [Q0, Q1, Q2] {
        assert_eq!(qos_from(qos_bits(q)), Some(q));
        assert_eq!(qos_bits(q), r5qos(q) as u8);
    }
    assert_eq!(qos_from(3), None);
}
