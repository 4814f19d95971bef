//! Cross-checks with rumqttc's MQTT 3.1.1 (v4) codec.

use super::*;
use bytes::BytesMut;
use rumqttc::mqttbytes::v4 as r4;

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
