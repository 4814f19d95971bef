//! Round trips: every packet type, written and read back by our codec, at
//! both protocol levels.

use super::*;
use bytes::BytesMut;

/// Writes `packet`, reads it back, and checks it is the same packet and
/// every byte was consumed.
fn round_trip(packet: &Packet, level: Level) {
    let mut buf = encode(packet, level);
    let read_back = read(&mut buf, level, BIG)
        .unwrap_or_else(|e| panic!("{} at {level:?} does not read back: {e}", packet.name()));
    assert_eq!(read_back.as_ref(), Some(packet), "{level:?}");
    assert!(buf.is_empty(), "{} left {} bytes", packet.name(), buf.len());
}

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
