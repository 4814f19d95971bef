//! Cross-checks with rumqttc's MQTT 5 codec.

use super::*;
use bytes::BytesMut;
use rumqttc::v5::mqttbytes as r5q;
use rumqttc::v5::mqttbytes::v5 as r5;

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
