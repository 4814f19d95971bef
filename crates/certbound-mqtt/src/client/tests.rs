//! The client state machine against packets written by rumqttc's codec.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::v4;
use rumqttc::v5::mqttbytes as m5;
use rumqttc::v5::mqttbytes::v5;

use super::{ClientState, Message, Protocol, QoS, StateConfig, StateEvent};
use crate::MqttError;

fn config(protocol: Protocol) -> StateConfig {
    StateConfig {
        protocol,
        client_id: "sensor-1".into(),
        keep_alive: Duration::from_secs(30),
        connect_timeout: Duration::from_secs(10),
        max_packet: 64 * 1024,
        max_inflight: 2,
        auth: None,
    }
}

fn v4_bytes(p: v4::Packet) -> Vec<u8> {
    let mut b = BytesMut::new();
    p.write(&mut b, usize::MAX).unwrap();
    b.to_vec()
}

fn v5_bytes(p: v5::Packet) -> Vec<u8> {
    let mut b = BytesMut::new();
    p.write(&mut b, None).unwrap();
    b.to_vec()
}

fn sent_v4(s: &mut ClientState) -> Vec<v4::Packet> {
    let mut buf = BytesMut::from(&s.take_transmit().unwrap_or_default()[..]);
    let mut out = Vec::new();
    while !buf.is_empty() {
        out.push(v4::Packet::read(&mut buf, usize::MAX).unwrap());
    }
    out
}

fn events(s: &mut ClientState) -> Vec<StateEvent> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

fn connected_v4(t0: Instant) -> ClientState {
    let mut s = ClientState::new(config(Protocol::V311), t0).unwrap();
    let connect = sent_v4(&mut s);
    match &connect[..] {
        [v4::Packet::Connect(c)] => {
            assert_eq!(c.client_id, "sensor-1");
            assert_eq!(c.keep_alive, 30);
            assert!(c.clean_session);
        }
        other => panic!("expected CONNECT, got {other:?}"),
    }
    let ack = v4_bytes(v4::Packet::ConnAck(v4::ConnAck::new(
        v4::ConnectReturnCode::Success,
        false,
    )));
    s.handle_input(&ack, t0).unwrap();
    assert_eq!(events(&mut s), vec![StateEvent::Connected]);
    s
}

#[test]
fn a_refused_connack_is_an_error_naming_the_reason() {
    let t0 = Instant::now();
    let mut s = ClientState::new(config(Protocol::V311), t0).unwrap();
    let ack = v4_bytes(v4::Packet::ConnAck(v4::ConnAck::new(
        v4::ConnectReturnCode::NotAuthorized,
        false,
    )));
    match s.handle_input(&ack, t0) {
        Err(MqttError::ConnectionRefused(why)) => assert!(why.contains("NotAuthorized"), "{why}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(!s.is_connected());
}

#[test]
fn no_connack_in_time_is_a_timeout() {
    let t0 = Instant::now();
    let mut s = ClientState::new(config(Protocol::V311), t0).unwrap();
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(10)));
    s.handle_timeout(t0 + Duration::from_secs(9)).unwrap();
    assert!(matches!(
        s.handle_timeout(t0 + Duration::from_secs(10)),
        Err(MqttError::Timeout(_))
    ));
}

#[test]
fn publishes_wait_for_connack_and_for_room_in_flight_and_acks_resolve_in_any_order() {
    let t0 = Instant::now();
    let mut s = ClientState::new(config(Protocol::V311), t0).unwrap();
    let _ = s.take_transmit();
    for token in 1..=3 {
        let m = Message::new(
            "cb/v1/sensor-1/telemetry",
            vec![token as u8],
            QoS::AtLeastOnce,
        );
        s.publish(m, token, t0).unwrap();
    }
    assert!(s.take_transmit().is_none(), "nothing before CONNACK");
    let ack = v4_bytes(v4::Packet::ConnAck(v4::ConnAck::new(
        v4::ConnectReturnCode::Success,
        false,
    )));
    s.handle_input(&ack, t0).unwrap();
    let sent = sent_v4(&mut s);
    let pkids: Vec<u16> = sent
        .iter()
        .map(|p| match p {
            v4::Packet::Publish(p) => p.pkid,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(pkids.len(), 2, "max_inflight = 2");
    assert_eq!(s.inflight(), 2);
    assert!(!s.can_publish());
    // The second is acknowledged first.
    s.handle_input(&v4_bytes(v4::Packet::PubAck(v4::PubAck::new(pkids[1]))), t0)
        .unwrap();
    assert_eq!(
        events(&mut s),
        vec![StateEvent::Connected, StateEvent::Delivered(2)]
    );
    // The third goes out now, in order.
    match &sent_v4(&mut s)[..] {
        [v4::Packet::Publish(p)] => assert_eq!(&p.payload[..], &[3]),
        other => panic!("{other:?}"),
    }
    s.handle_input(&v4_bytes(v4::Packet::PubAck(v4::PubAck::new(pkids[0]))), t0)
        .unwrap();
    assert_eq!(events(&mut s), vec![StateEvent::Delivered(1)]);
    // The one still in flight fails when the connection ends.
    assert_eq!(s.fail_all(), vec![3]);
}

#[test]
fn a_puback_for_nothing_in_flight_is_a_protocol_error() {
    let mut s = connected_v4(Instant::now());
    let r = s.handle_input(
        &v4_bytes(v4::Packet::PubAck(v4::PubAck::new(7))),
        Instant::now(),
    );
    assert!(matches!(r, Err(MqttError::Protocol(_))), "{r:?}");
}

#[test]
fn an_incoming_qos1_message_is_an_event_before_its_puback() {
    let t0 = Instant::now();
    let mut s = connected_v4(t0);
    let mut p = v4::Publish::new(
        "cb/v1/sensor-1/token/res",
        QoS::AtLeastOnce,
        b"ans".to_vec(),
    );
    p.pkid = 42;
    let mut two = v4_bytes(v4::Packet::Publish(p));
    let q0 = v4::Publish::new(
        "cb/v1/sensor-1/token/res",
        QoS::AtMostOnce,
        b"second".to_vec(),
    );
    two.extend(v4_bytes(v4::Packet::Publish(q0)));
    // Split in the middle of a packet: nothing is lost.
    s.handle_input(&two[..5], t0).unwrap();
    s.handle_input(&two[5..], t0).unwrap();
    let got = events(&mut s);
    assert_eq!(got.len(), 2);
    assert!(
        matches!(&got[0], StateEvent::Message(m) if &m.payload[..] == b"ans" && m.qos == QoS::AtLeastOnce)
    );
    assert!(matches!(&got[1], StateEvent::Message(m) if &m.payload[..] == b"second"));
    assert_eq!(
        sent_v4(&mut s),
        vec![v4::Packet::PubAck(v4::PubAck::new(42))]
    );
}

#[test]
fn keep_alive_sends_pingreq_and_a_missing_pingresp_ends_the_connection() {
    let t0 = Instant::now();
    let mut s = connected_v4(t0);
    let t1 = t0 + Duration::from_secs(30);
    assert_eq!(s.poll_timeout(), Some(t1));
    s.handle_timeout(t1).unwrap();
    assert_eq!(sent_v4(&mut s), vec![v4::Packet::PingReq]);
    s.handle_input(&v4_bytes(v4::Packet::PingResp), t1).unwrap();
    let t2 = t1 + Duration::from_secs(30);
    s.handle_timeout(t2).unwrap();
    assert_eq!(sent_v4(&mut s), vec![v4::Packet::PingReq]);
    // No answer this time.
    let r = s.handle_timeout(t2 + Duration::from_secs(30));
    assert!(
        matches!(r, Err(MqttError::Timeout(ref m)) if m.contains("PINGRESP")),
        "{r:?}"
    );
}

#[test]
fn subscribe_reports_granted_and_refused_filters() {
    let t0 = Instant::now();
    let mut s = connected_v4(t0);
    let filters = vec![
        (
            "$share/certbound/cb/v1/+/token/req".to_string(),
            QoS::AtLeastOnce,
        ),
        ("cb/v1/other/#".to_string(), QoS::AtLeastOnce),
    ];
    s.subscribe(&filters, 9, t0).unwrap();
    let pkid = match &sent_v4(&mut s)[..] {
        [v4::Packet::Subscribe(sub)] => {
            assert_eq!(sub.filters[0].path, "$share/certbound/cb/v1/+/token/req");
            sub.pkid
        }
        other => panic!("{other:?}"),
    };
    let ack = v4::SubAck::new(
        pkid,
        vec![
            v4::SubscribeReasonCode::Success(QoS::AtLeastOnce),
            v4::SubscribeReasonCode::Failure,
        ],
    );
    s.handle_input(&v4_bytes(v4::Packet::SubAck(ack)), t0)
        .unwrap();
    match &events(&mut s)[..] {
        [StateEvent::Subscribed(9, codes)] => {
            assert_eq!(codes[0], Ok(QoS::AtLeastOnce));
            assert!(codes[1].is_err());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn garbage_and_qos2_are_protocol_errors_not_panics() {
    let t0 = Instant::now();
    let mut s = connected_v4(t0);
    assert!(s.handle_input(&[0x00, 0x00], t0).is_err());
    let mut s = connected_v4(t0);
    let mut p = v4::Publish::new("a", QoS::ExactlyOnce, b"x".to_vec());
    p.pkid = 1;
    assert!(matches!(
        s.handle_input(&v4_bytes(v4::Packet::Publish(p)), t0),
        Err(MqttError::Protocol(_))
    ));
    let mut s = connected_v4(t0);
    assert!(matches!(
        s.publish(Message::new("a/#", "x", QoS::AtMostOnce), 1, t0),
        Err(MqttError::Publish(_))
    ));
    assert!(matches!(
        s.publish(Message::new("a", "x", QoS::ExactlyOnce), 1, t0),
        Err(MqttError::Publish(_))
    ));
}

#[test]
fn an_oversized_publish_fails_alone() {
    let t0 = Instant::now();
    let mut s = connected_v4(t0);
    s.publish(
        Message::new("a", vec![0u8; 70_000], QoS::AtLeastOnce),
        1,
        t0,
    )
    .unwrap();
    s.publish(Message::new("a", "small", QoS::AtMostOnce), 2, t0)
        .unwrap();
    let got = events(&mut s);
    assert!(matches!(&got[0], StateEvent::PublishRefused(1, why) if why.contains("limit")));
    assert_eq!(got[1], StateEvent::Delivered(2));
}

fn connected_v5(t0: Instant) -> ClientState {
    let mut s = ClientState::new(config(Protocol::V5), t0).unwrap();
    let mut out = BytesMut::from(&s.take_transmit().unwrap()[..]);
    match v5::Packet::read(&mut out, None).unwrap() {
        v5::Packet::Connect(c, _, _) => {
            assert_eq!(c.client_id, "sensor-1");
            assert!(c.clean_start);
        }
        other => panic!("{other:?}"),
    }
    let ack = v5::ConnAck {
        session_present: false,
        code: v5::ConnectReturnCode::Success,
        properties: Some(v5::ConnAckProperties {
            session_expiry_interval: None,
            receive_max: Some(1),
            max_qos: None,
            retain_available: None,
            max_packet_size: None,
            assigned_client_identifier: None,
            topic_alias_max: None,
            reason_string: None,
            user_properties: Vec::new(),
            wildcard_subscription_available: None,
            subscription_identifiers_available: None,
            shared_subscription_available: None,
            server_keep_alive: None,
            response_information: None,
            server_reference: None,
            authentication_method: None,
            authentication_data: None,
        }),
    };
    s.handle_input(&v5_bytes(v5::Packet::ConnAck(ack)), t0)
        .unwrap();
    assert_eq!(events(&mut s), vec![StateEvent::Connected]);
    s
}

#[test]
fn mqtt5_carries_response_topic_and_correlation_data_both_ways() {
    let t0 = Instant::now();
    let mut s = connected_v5(t0);
    let m = Message::new("cb/v1/sensor-1/token/req", "req", QoS::AtLeastOnce)
        .with_response_topic("cb/v1/sensor-1/token/res/a")
        .with_correlation_data(Bytes::from_static(b"corr-1"));
    s.publish(m, 1, t0).unwrap();
    // The server's Receive Maximum (1) holds the second back.
    s.publish(
        Message::new("cb/v1/sensor-1/x", "2", QoS::AtLeastOnce),
        2,
        t0,
    )
    .unwrap();
    let mut out = BytesMut::from(&s.take_transmit().unwrap()[..]);
    let pkid = match v5::Packet::read(&mut out, None).unwrap() {
        v5::Packet::Publish(p) => {
            let props = p.properties.unwrap();
            assert_eq!(props.correlation_data.as_deref(), Some(&b"corr-1"[..]));
            assert_eq!(
                props.response_topic.as_deref(),
                Some("cb/v1/sensor-1/token/res/a")
            );
            p.pkid
        }
        other => panic!("{other:?}"),
    };
    assert!(out.is_empty(), "only one in flight");
    // A refused PUBACK fails that publish only; the next goes out.
    let mut ack = v5::PubAck::new(pkid, None);
    ack.reason = v5::PubAckReason::NotAuthorized;
    s.handle_input(&v5_bytes(v5::Packet::PubAck(ack)), t0)
        .unwrap();
    assert!(
        matches!(&events(&mut s)[..], [StateEvent::PublishRefused(1, why)] if why.contains("NotAuthorized"))
    );
    assert!(s.take_transmit().is_some());

    let incoming = v5::Publish::new(
        "cb/v1/sensor-1/token/res/a",
        m5::QoS::AtMostOnce,
        Bytes::from_static(b"answer"),
        Some(v5::PublishProperties {
            correlation_data: Some(Bytes::from_static(b"corr-1")),
            ..v5::PublishProperties::default()
        }),
    );
    s.handle_input(&v5_bytes(v5::Packet::Publish(incoming)), t0)
        .unwrap();
    match &events(&mut s)[..] {
        [StateEvent::Message(m)] => {
            assert_eq!(m.correlation_data.as_deref(), Some(&b"corr-1"[..]));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn mqtt5_disconnect_without_reason_code_ends_the_connection_cleanly() {
    let t0 = Instant::now();
    let mut s = connected_v5(t0);
    // 0xE0 0x00: DISCONNECT, normal (rumqttc's reader alone refuses this).
    let r = s.handle_input(&[0xE0, 0x00], t0);
    assert!(
        matches!(r, Err(MqttError::ConnectionLost(ref m)) if m.contains("DISCONNECT")),
        "{r:?}"
    );
}

#[test]
fn mqtt5_invalid_utf8_topic_is_refused() {
    let t0 = Instant::now();
    let mut s = connected_v5(t0);
    let mut p = v5::Publish::new(
        "cb/v1/x",
        m5::QoS::AtMostOnce,
        Bytes::from_static(b"x"),
        None,
    );
    p.topic = Bytes::from_static(b"cb/\xff\xfe");
    let r = s.handle_input(&v5_bytes(v5::Packet::Publish(p)), t0);
    assert!(
        matches!(r, Err(MqttError::Protocol(ref m)) if m.contains("UTF-8")),
        "{r:?}"
    );
}
