//! MQTT 5: QoS 1/2 both ways, receive maximum, packet sizes, topic
//! aliases, negative acks and PUBLISH properties.

use super::*;

fn alias(n: u16) -> Option<r5::PublishProperties> {
    Some(r5::PublishProperties {
        topic_alias: Some(n),
        ..r5::PublishProperties::default()
    })
}

#[test]
fn v5_qos2_inbound_is_routed_once_and_released() {
    let t0 = Instant::now();
    let mut s = connected5(t0, None);
    feed5(&mut s, &[publish5("own/q", R2, 5, None)], t0);
    assert_eq!(events(&mut s), vec![Event::Publish(msg("own/q", Q2))]);
    assert_eq!(
        decode5(s.take_transmit()),
        vec![V5Packet::PubRec(r5::PubRec::new(5, None))]
    );
    // A retransmission before PUBREL: acknowledged, not routed again.
    let V5Packet::Publish(mut again) = publish5("own/q", R2, 5, None) else {
        unreachable!()
    };
    again.dup = true;
    feed5(&mut s, &[V5Packet::Publish(again)], t0);
    assert_eq!(events(&mut s), vec![]);
    assert_eq!(
        decode5(s.take_transmit()),
        vec![V5Packet::PubRec(r5::PubRec::new(5, None))]
    );
    feed5(&mut s, &[V5Packet::PubRel(r5::PubRel::new(5, None))], t0);
    assert_eq!(
        decode5(s.take_transmit()),
        vec![V5Packet::PubComp(r5::PubComp::new(5, None))]
    );
    // A second PUBREL: packet identifier not found.
    feed5(&mut s, &[V5Packet::PubRel(r5::PubRel::new(5, None))], t0);
    assert_eq!(
        decode5(s.take_transmit()),
        vec![V5Packet::PubComp(r5::PubComp {
            pkid: 5,
            reason: r5::PubCompReason::PacketIdentifierNotFound,
            properties: None
        })]
    );
    // After the release, the same id is a new message.
    feed5(&mut s, &[publish5("own/q", R2, 5, None)], t0);
    assert_eq!(events(&mut s), vec![Event::Publish(msg("own/q", Q2))]);
    assert!(s.is_connected());
}

#[test]
fn v5_more_unreleased_qos2_than_receive_maximum_disconnects_0x93() {
    let t0 = Instant::now();
    let mut s = connected5(t0, None);
    // Our Receive Maximum is 2.
    feed5(
        &mut s,
        &[
            publish5("own/q", R2, 1, None),
            publish5("own/q", R2, 2, None),
        ],
        t0,
    );
    assert_eq!(events(&mut s).len(), 2);
    let _ = s.take_transmit();
    // Releasing one makes room.
    feed5(
        &mut s,
        &[
            V5Packet::PubRel(r5::PubRel::new(1, None)),
            publish5("own/q", R2, 3, None),
        ],
        t0,
    );
    assert_eq!(events(&mut s).len(), 1);
    let _ = s.take_transmit();
    // QoS 1 and 0 are not limited by it.
    feed5(
        &mut s,
        &[
            publish5("own/q", R1, 4, None),
            publish5("own/q", R0, 0, None),
        ],
        t0,
    );
    assert_eq!(events(&mut s).len(), 2);
    let _ = s.take_transmit();
    feed5(&mut s, &[publish5("own/q", R2, 6, None)], t0);
    assert_eq!(
        disconnect_code(&decode5(s.take_transmit())),
        r5::DisconnectReasonCode::ReceiveMaximumExceeded
    );
    assert!(matches!(
        events(&mut s)[..],
        [Event::Closed(CloseReason::Protocol(_))]
    ));
}

#[test]
fn v5_qos2_outbound_handshake_frees_the_slot_on_pubcomp() {
    let t0 = Instant::now();
    let mut s = connected5(t0, None);
    for topic in ["own/1", "own/2", "own/3"] {
        assert!(s.can_deliver());
        s.deliver(&msg(topic, Q2), t0);
    }
    assert!(!s.can_deliver(), "window of 3 full");
    assert_eq!(
        publishes(&decode5(s.take_transmit())),
        vec![
            ("own/1".into(), 1, R2, false, None),
            ("own/2".into(), 2, R2, false, None),
            ("own/3".into(), 3, R2, false, None),
        ]
    );
    feed5(&mut s, &[V5Packet::PubRec(r5::PubRec::new(1, None))], t0);
    assert_eq!(
        decode5(s.take_transmit()),
        vec![V5Packet::PubRel(r5::PubRel::new(1, None))]
    );
    assert!(!s.can_deliver(), "still awaiting PUBCOMP");
    // PUBACK is not the answer to a QoS 2 PUBLISH.
    feed5(&mut s, &[puback5(2)], t0);
    assert!(!s.can_deliver());
    feed5(&mut s, &[V5Packet::PubComp(r5::PubComp::new(1, None))], t0);
    assert!(s.can_deliver(), "PUBCOMP frees the slot");
    // A PUBREC with an error code ends the exchange without PUBREL.
    let mut refused = r5::PubRec::new(2, None);
    refused.reason = r5::PubRecReason::NotAuthorized;
    s.deliver(&msg("own/4", Q1), t0);
    let _ = s.take_transmit();
    assert!(!s.can_deliver());
    feed5(&mut s, &[V5Packet::PubRec(refused)], t0);
    assert!(s.take_transmit().is_empty(), "no PUBREL after a refusal");
    assert!(s.can_deliver());
    // A PUBREC for nothing in flight: PUBREL 0x92.
    feed5(&mut s, &[V5Packet::PubRec(r5::PubRec::new(77, None))], t0);
    assert_eq!(
        decode5(s.take_transmit()),
        vec![V5Packet::PubRel(r5::PubRel {
            pkid: 77,
            reason: r5::PubRelReason::PacketIdentifierNotFound,
            properties: None
        })]
    );
    assert!(s.is_connected());
}

#[test]
fn v5_client_receive_maximum_limits_deliveries() {
    let t0 = Instant::now();
    let mut s = connected5(t0, props5(|p| p.receive_maximum = Some(1)));
    assert!(s.can_deliver());
    s.deliver(&msg("own/a", Q1), t0);
    assert!(!s.can_deliver(), "the client takes one at a time");
    feed5(&mut s, &[puback5(1)], t0);
    assert!(s.can_deliver());
    // A larger Receive Maximum than ours is capped by max_inflight.
    let mut s = connected5(t0, props5(|p| p.receive_maximum = Some(1000)));
    for _ in 0..3 {
        s.deliver(&msg("own/a", Q1), t0);
    }
    assert!(!s.can_deliver());
}

#[test]
fn v5_client_maximum_packet_size_drops_too_large_deliveries() {
    let t0 = Instant::now();
    let mut s = connected5(t0, props5(|p| p.max_packet_size = Some(64)));
    let big = Message::new("own/big", Bytes::from(vec![0u8; 100]), Q1);
    s.deliver(&big, t0);
    assert!(s.take_transmit().is_empty(), "dropped, not cut");
    assert!(s.can_deliver());
    assert_eq!(s.snapshot().1.outgoing, vec![], "not in flight either");
    s.deliver(&msg("own/small", Q1), t0);
    let out = decode5(s.take_transmit());
    assert_eq!(publishes(&out).len(), 1);

    // Error packets lose their reason string rather than being dropped.
    let mut s = connected5(t0, props5(|p| p.max_packet_size = Some(20)));
    feed5(&mut s, &[publish5("own/a", R0, 0, alias(0))], t0);
    let out = decode5(s.take_transmit());
    assert_eq!(
        disconnect_code(&out),
        r5::DisconnectReasonCode::TopicAliasInvalid
    );
    assert_eq!(disconnect_reason_string(&out), None);
}

#[test]
fn v5_too_large_packets_disconnect_0x95() {
    let t0 = Instant::now();
    let mut s = connected5(t0, None);
    feed5(
        &mut s,
        &[V5Packet::Publish(r5::Publish::new(
            "own/x",
            R0,
            vec![0u8; 2000],
            None,
        ))],
        t0,
    );
    assert_eq!(
        disconnect_code(&decode5(s.take_transmit())),
        r5::DisconnectReasonCode::PacketTooLarge
    );
    assert!(matches!(
        events(&mut s)[..],
        [Event::Closed(CloseReason::Protocol(_))]
    ));
}

/// A QoS 0 PUBLISH to `own/t` whose whole packet is `total` bytes.
fn publish_of_total_size(total: usize) -> V5Packet {
    // Fixed header 1 + 2 (remaining length 128..16383), topic 2 + 5,
    // property length 1.
    let payload = total - 3 - 7 - 1;
    let p = V5Packet::Publish(r5::Publish::new("own/t", R0, vec![1u8; payload], None));
    assert_eq!(p.size(), total);
    p
}

#[test]
fn v5_the_configured_remaining_length_is_accepted() {
    let t0 = Instant::now();
    let mut s = connected5(t0, None);
    // Remaining length exactly max_packet_size (1024).
    feed5(&mut s, &[publish_of_total_size(1024 + 3)], t0);
    assert!(matches!(events(&mut s)[..], [Event::Publish(_)]));
    assert!(s.is_connected());
}

#[test]

fn v5_a_packet_of_the_announced_maximum_size_is_accepted() {
    let t0 = Instant::now();
    let mut s = new_session5(t0);
    feed5(&mut s, &[connect5("c5", 30, None)], t0);
    let announced = connack_props(&decode5(s.take_transmit()))
        .max_packet_size
        .expect("Maximum Packet Size");
    let _ = events(&mut s);
    feed5(
        &mut s,
        &[publish_of_total_size(
            usize::try_from(announced).expect("fits"),
        )],
        t0,
    );
    assert!(
        matches!(events(&mut s)[..], [Event::Publish(_)]),
        "a PUBLISH of the announced Maximum Packet Size ({announced}) is refused"
    );
}

#[test]
fn v5_inbound_topic_aliases_are_set_and_used() {
    let t0 = Instant::now();
    let mut s = connected5(t0, None);
    feed5(
        &mut s,
        &[
            publish5("own/a", R0, 0, alias(1)),
            publish5("", R0, 0, alias(1)),
            publish5("own/b", R1, 7, alias(1)), // remapped
            publish5("", R0, 0, alias(1)),
            publish5("own/c", R0, 0, alias(4)), // the highest allowed
            publish5("", R0, 0, alias(4)),
        ],
        t0,
    );
    let topics: Vec<String> = events(&mut s)
        .into_iter()
        .map(|e| match e {
            Event::Publish(m) => m.topic.to_string(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        topics,
        ["own/a", "own/a", "own/b", "own/b", "own/c", "own/c"]
    );
    assert_eq!(decode5(s.take_transmit()), vec![puback5(7)]);

    // Alias 0 and one above our Topic Alias Maximum (4): 0x94.
    for n in [0, 5] {
        let mut s = connected5(t0, None);
        feed5(&mut s, &[publish5("own/a", R0, 0, alias(n))], t0);
        assert_eq!(
            disconnect_code(&decode5(s.take_transmit())),
            r5::DisconnectReasonCode::TopicAliasInvalid,
            "alias {n}"
        );
        assert!(matches!(
            events(&mut s)[..],
            [Event::Closed(CloseReason::Protocol(_))]
        ));
    }
    // An alias never set: protocol error.
    let mut s = connected5(t0, None);
    feed5(&mut s, &[publish5("", R0, 0, alias(2))], t0);
    assert_eq!(
        disconnect_code(&decode5(s.take_transmit())),
        r5::DisconnectReasonCode::ProtocolError
    );
    // An empty topic without an alias is no topic.
    let mut s = connected5(t0, None);
    feed5(&mut s, &[publish5("", R0, 0, None)], t0);
    assert!(s.is_closed());
    assert!(
        events(&mut s)
            .iter()
            .all(|e| !matches!(e, Event::Publish(_)))
    );
}

#[test]
fn v5_outbound_topic_aliases_when_the_client_allows_them() {
    let t0 = Instant::now();
    let mut s = connected5(t0, props5(|p| p.topic_alias_max = Some(2)));
    for topic in ["own/a", "own/a", "own/b", "own/c", "own/b", "own/a"] {
        s.deliver(&msg(topic, Q0), t0);
    }
    assert_eq!(
        publishes(&decode5(s.take_transmit())),
        vec![
            ("own/a".into(), 0, R0, false, Some(1)),
            (String::new(), 0, R0, false, Some(1)),
            ("own/b".into(), 0, R0, false, Some(2)),
            ("own/c".into(), 0, R0, false, None), // both aliases in use
            (String::new(), 0, R0, false, Some(2)),
            (String::new(), 0, R0, false, Some(1)),
        ]
    );
    // No Topic Alias Maximum from the client: no aliases.
    let mut s = connected5(t0, None);
    for _ in 0..2 {
        s.deliver(&msg("own/a", Q0), t0);
    }
    assert_eq!(
        publishes(&decode5(s.take_transmit())),
        vec![
            ("own/a".into(), 0, R0, false, None),
            ("own/a".into(), 0, R0, false, None)
        ]
    );
}

#[test]

fn v5_a_dropped_delivery_does_not_leave_an_unknown_topic_alias() {
    let t0 = Instant::now();
    let mut s = connected5(
        t0,
        props5(|p| {
            p.topic_alias_max = Some(2);
            p.max_packet_size = Some(64);
        }),
    );
    s.deliver(&Message::new("own/a", Bytes::from(vec![0u8; 100]), Q0), t0);
    assert!(s.take_transmit().is_empty(), "too large: dropped");
    s.deliver(&msg("own/a", Q0), t0);
    let out = publishes(&decode5(s.take_transmit()));
    assert_eq!(out.len(), 1);
    assert_eq!(
        out.first().map(|p| p.0.as_str()),
        Some("own/a"),
        "the first PUBLISH the client sees for an alias must carry the topic: {out:?}"
    );
}

#[test]
fn v5_refused_publish_gets_a_negative_ack() {
    let t0 = Instant::now();
    let mut s = connected5(t0, None);
    feed5(&mut s, &[publish5("other/t", R1, 3, None)], t0);
    assert_eq!(
        events(&mut s),
        vec![Event::PublishRefused("other/t".into())]
    );
    // The reason code alone (no Reason String: some MQTT 5 clients refuse
    // properties on PUBACK).
    assert_eq!(
        decode5(s.take_transmit()),
        vec![V5Packet::PubAck(r5::PubAck {
            pkid: 3,
            reason: r5::PubAckReason::NotAuthorized,
            properties: None
        })]
    );
    // QoS 2: PUBREC 0x87, and nothing left to release.
    feed5(&mut s, &[publish5("other/t", R2, 4, None)], t0);
    assert_eq!(
        decode5(s.take_transmit()),
        vec![V5Packet::PubRec(r5::PubRec {
            pkid: 4,
            reason: r5::PubRecReason::NotAuthorized,
            properties: None
        })]
    );
    feed5(&mut s, &[V5Packet::PubRel(r5::PubRel::new(4, None))], t0);
    assert_eq!(
        decode5(s.take_transmit()),
        vec![V5Packet::PubComp(r5::PubComp {
            pkid: 4,
            reason: r5::PubCompReason::PacketIdentifierNotFound,
            properties: None
        })]
    );
    assert!(s.is_connected(), "MQTT 5 keeps the connection");
    let _ = events(&mut s);
    // QoS 0 has no ack: DISCONNECT 0x87.
    feed5(&mut s, &[publish5("other/t", R0, 0, None)], t0);
    assert_eq!(
        disconnect_code(&decode5(s.take_transmit())),
        r5::DisconnectReasonCode::NotAuthorized
    );
    assert_eq!(
        events(&mut s),
        vec![
            Event::PublishRefused("other/t".into()),
            Event::Closed(CloseReason::UnauthorizedPublish)
        ]
    );

    // Without problem information: no reason string.
    let mut s = connected5(t0, props5(|p| p.request_problem_info = Some(0)));
    feed5(&mut s, &[publish5("other/t", R1, 3, None)], t0);
    assert_eq!(
        decode5(s.take_transmit()),
        vec![V5Packet::PubAck(r5::PubAck {
            pkid: 3,
            reason: r5::PubAckReason::NotAuthorized,
            properties: None
        })]
    );
}

#[test]
fn v5_publish_properties_are_forwarded() {
    let t0 = Instant::now();
    let mut s = connected5(t0, None);
    let props = r5::PublishProperties {
        payload_format_indicator: Some(1),
        message_expiry_interval: Some(60),
        topic_alias: None,
        response_topic: Some("own/reply".into()),
        correlation_data: Some(Bytes::from_static(b"\x01\x02")),
        user_properties: vec![("k".into(), "v".into())],
        subscription_identifiers: vec![],
        content_type: Some("application/json".into()),
    };
    feed5(
        &mut s,
        &[publish5("own/req", R1, 1, Some(props.clone()))],
        t0,
    );
    let app = AppProps {
        payload_format: Some(1),
        content_type: Some("application/json".into()),
        response_topic: Some("own/reply".into()),
        correlation_data: Some(Bytes::from_static(b"\x01\x02")),
        user: vec![("k".into(), "v".into())],
    };
    let expected = Message {
        props: Some(Arc::new(app)),
        expires: Some(t0 + Duration::from_secs(60)),
        ..msg("own/req", Q1)
    };
    assert_eq!(events(&mut s), vec![Event::Publish(expected.clone())]);
    let _ = s.take_transmit();

    // Delivered with what is left of the expiry and the subscription ids.
    let mut s = connected5(t0, None);
    let copy = Message {
        sub_ids: vec![3, 4],
        ..expected
    };
    s.deliver(&copy, t0 + Duration::from_secs(10));
    let out = decode5(s.take_transmit());
    let [V5Packet::Publish(p)] = &out[..] else {
        panic!("one PUBLISH, got {out:?}")
    };
    assert_eq!(
        p.properties,
        Some(r5::PublishProperties {
            message_expiry_interval: Some(50),
            subscription_identifiers: vec![3, 4],
            ..props
        })
    );
    // Expired: not sent.
    s.deliver(&copy, t0 + Duration::from_secs(60));
    assert!(s.take_transmit().is_empty());

    // A client may not send a subscription identifier.
    let mut s = connected5(t0, None);
    let with_id = r5::PublishProperties {
        subscription_identifiers: vec![1],
        ..r5::PublishProperties::default()
    };
    feed5(&mut s, &[publish5("own/a", R0, 0, Some(with_id))], t0);
    assert_eq!(
        disconnect_code(&decode5(s.take_transmit())),
        r5::DisconnectReasonCode::ProtocolError
    );
}
