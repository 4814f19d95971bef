//! MQTT 3.1.1: PUBLISH and SUBSCRIBE, QoS 1/2 both ways, topic and
//! filter validation.

use super::*;

#[test]
fn subscribe_grants_allowed_filters_and_refuses_the_rest_with_0x80() {
    let t0 = Instant::now();
    let mut s = connected(t0, 0);
    let subscribe = Subscribe {
        pkid: 7,
        filters: vec![
            SubscribeFilter::new("own/a/#".into(), Q2),
            SubscribeFilter::new("other/#".into(), Q1),
            SubscribeFilter::new("own/a#".into(), Q0),
            SubscribeFilter::new("own/b".into(), Q0),
        ],
    };
    feed(&mut s, &[V4Packet::Subscribe(subscribe)], t0);
    assert_eq!(
        events(&mut s),
        vec![
            Event::SubscribeRefused("other/#".into()),
            Event::Subscribe(vec![
                ("own/a/#".into(), SubOpts::qos(Q2), true),
                ("own/b".into(), SubOpts::qos(Q0), true)
            ]),
        ]
    );
    assert_eq!(
        decode(s.take_transmit()),
        vec![V4Packet::SubAck(SubAck::new(
            7,
            vec![
                SubscribeReasonCode::Success(Q2),
                SubscribeReasonCode::Failure,
                SubscribeReasonCode::Failure,
                SubscribeReasonCode::Success(Q0),
            ]
        ))]
    );

    feed(&mut s, &[unsubscribe("own/b")], t0);
    assert_eq!(
        events(&mut s),
        vec![Event::Unsubscribe(vec!["own/b".into()])]
    );
    assert!(matches!(
        decode(s.take_transmit())[..],
        [V4Packet::UnsubAck(_)]
    ));
    assert_eq!(s.subscription_count(), 1);
}

#[test]
fn authorised_publish_is_routed_then_acknowledged() {
    let t0 = Instant::now();
    let mut s = connected(t0, 0);
    let mut retained = Publish::new("own/r", Q0, b"hello".to_vec());
    retained.retain = true;
    feed(
        &mut s,
        &[
            publish("own/t", Q1, 42),
            publish("own/u", Q0, 0),
            V4Packet::Publish(retained),
        ],
        t0,
    );
    assert_eq!(
        events(&mut s),
        vec![
            Event::Publish(msg("own/t", Q1)),
            Event::Publish(msg("own/u", Q0)),
            Event::Publish(Message {
                retain: true,
                ..msg("own/r", Q0)
            })
        ]
    );
    assert_eq!(
        decode(s.take_transmit()),
        vec![V4Packet::PubAck(PubAck::new(42))]
    );
}

#[test]
fn unauthorised_publish_closes_the_connection_without_routing() {
    let t0 = Instant::now();
    let mut s = connected(t0, 0);
    feed(&mut s, &[publish("other/t", Q1, 1), V4Packet::PingReq], t0);
    assert_eq!(
        events(&mut s),
        vec![
            Event::PublishRefused("other/t".into()),
            Event::Closed(CloseReason::UnauthorizedPublish)
        ]
    );
    assert!(s.take_transmit().is_empty(), "no PUBACK, no PINGRESP");
}

#[test]
fn qos2_publish_is_routed_exactly_once() {
    let t0 = Instant::now();
    let mut s = connected(t0, 0);
    feed(&mut s, &[publish("own/t", Q2, 1)], t0);
    assert_eq!(events(&mut s), vec![Event::Publish(msg("own/t", Q2))]);
    assert_eq!(
        decode(s.take_transmit()),
        vec![V4Packet::PubRec(PubRec::new(1))]
    );
    // The client did not see the PUBREC and sends again: not routed twice.
    let V4Packet::Publish(mut again) = publish("own/t", Q2, 1) else {
        unreachable!()
    };
    again.dup = true;
    feed(&mut s, &[V4Packet::Publish(again)], t0);
    assert_eq!(events(&mut s), vec![]);
    assert_eq!(
        decode(s.take_transmit()),
        vec![V4Packet::PubRec(PubRec::new(1))]
    );
    feed(&mut s, &[V4Packet::PubRel(PubRel::new(1))], t0);
    assert_eq!(
        decode(s.take_transmit()),
        vec![V4Packet::PubComp(PubComp::new(1))]
    );
    // Released: the same packet id is a new message.
    feed(&mut s, &[publish("own/t", Q2, 1)], t0);
    assert_eq!(events(&mut s), vec![Event::Publish(msg("own/t", Q2))]);
    assert!(s.is_connected());
}

#[test]
fn qos1_deliveries_are_bounded_by_the_inflight_window() {
    let t0 = Instant::now();
    let mut s = connected(t0, 0);
    let message = Message::new("own/x", Bytes::from_static(b"m"), Q1);
    for _ in 0..3 {
        assert!(s.can_deliver());
        s.deliver(&message, t0);
    }
    assert!(!s.can_deliver(), "window of 3 full");
    let ids: Vec<u16> = decode(s.take_transmit())
        .into_iter()
        .map(|p| match p {
            V4Packet::Publish(p) => {
                assert_eq!((p.qos, p.retain, p.dup), (Q1, false, false));
                p.pkid
            }
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(ids, vec![1, 2, 3]);
    feed(
        &mut s,
        &[
            V4Packet::PubAck(PubAck::new(2)),
            V4Packet::PubAck(PubAck::new(99)),
        ],
        t0,
    );
    assert!(s.can_deliver());
    s.deliver(
        &Message {
            qos: Q0,
            ..message.clone()
        },
        t0,
    );
    assert!(
        matches!(&decode(s.take_transmit())[..], [V4Packet::Publish(p)] if p.pkid == 0 && p.qos == Q0)
    );
    // The next id skips those still in flight (1 and 3).
    s.deliver(&message, t0);
    assert!(matches!(&decode(s.take_transmit())[..], [V4Packet::Publish(p)] if p.pkid == 4));
}

#[test]
fn qos2_delivery_handshake_in_311() {
    let t0 = Instant::now();
    let mut s = connected(t0, 0);
    s.deliver(&msg("own/x", Q2), t0);
    assert!(
        matches!(&decode(s.take_transmit())[..], [V4Packet::Publish(p)] if p.pkid == 1 && p.qos == Q2)
    );
    // PUBACK does not end a QoS 2 exchange.
    feed(&mut s, &[V4Packet::PubAck(PubAck::new(1))], t0);
    feed(&mut s, &[V4Packet::PubRec(PubRec::new(1))], t0);
    assert_eq!(
        decode(s.take_transmit()),
        vec![V4Packet::PubRel(PubRel::new(1))]
    );
    for _ in 0..2 {
        s.deliver(&msg("own/y", Q1), t0);
    }
    assert!(!s.can_deliver(), "1 awaiting PUBCOMP + 2 awaiting PUBACK");
    feed(&mut s, &[V4Packet::PubComp(PubComp::new(1))], t0);
    assert!(s.can_deliver());
    assert!(s.is_connected());
}

#[test]
fn pubrel_for_an_unknown_packet_id_is_completed() {
    let t0 = Instant::now();
    let mut s = connected(t0, 0);
    feed(&mut s, &[V4Packet::PubRel(PubRel::new(1))], t0);
    // 3.1.1 has no reason code: a plain PUBCOMP, the session stays.
    assert_eq!(
        decode(s.take_transmit()),
        vec![V4Packet::PubComp(PubComp::new(1))]
    );
    assert!(s.is_connected());
    // Likewise PUBREC for nothing in flight gets a PUBREL.
    feed(&mut s, &[V4Packet::PubRec(PubRec::new(5))], t0);
    assert_eq!(
        decode(s.take_transmit()),
        vec![V4Packet::PubRel(PubRel::new(5))]
    );
    assert!(s.is_connected());
}

/// A SUBSCRIBE packet (pkid 1) with one raw filter at QoS 0.
fn raw_subscribe(filter: &[u8]) -> BytesMut {
    let mut body = vec![0, 1];
    body.extend_from_slice(&u16::try_from(filter.len()).expect("short").to_be_bytes());
    body.extend_from_slice(filter);
    body.push(0);
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&[0x82, u8::try_from(body.len()).expect("short")]);
    buf.extend_from_slice(&body);
    buf
}

#[test]
fn invalid_utf8_topics_and_filters_close_with_a_clear_reason() {
    let t0 = Instant::now();
    for mut input in [raw_publish(b"own/\xff\xfe"), raw_subscribe(b"own/\xc3")] {
        let mut s = connected(t0, 0);
        s.handle_input(&mut input, t0, &OwnPrefix);
        assert_eq!(
            events(&mut s),
            vec![Event::Closed(CloseReason::InvalidTopic(
                "not valid UTF-8".into()
            ))]
        );
        assert!(s.take_transmit().is_empty(), "nothing routed or answered");
    }
}

#[test]
fn wildcards_nul_and_control_characters_in_topics_close() {
    let t0 = Instant::now();
    for topic in ["own/+", "own/#", "own/a\0b", "own/\u{1b}[2J", "own/\u{9b}"] {
        let mut s = connected(t0, 0);
        feed(&mut s, &[publish(topic, Q1, 1)], t0);
        assert!(
            matches!(
                events(&mut s)[..],
                [Event::Closed(CloseReason::InvalidTopic(_))]
            ),
            "{topic:?}"
        );
        assert!(s.take_transmit().is_empty(), "no PUBACK for {topic:?}");
    }
    let mut s = connected(t0, 0);
    feed(&mut s, &[subscribe(&[("own/\n", Q0)])], t0);
    assert!(matches!(
        events(&mut s)[..],
        [Event::Closed(CloseReason::InvalidTopic(_))]
    ));
}

#[test]
fn subscriptions_per_session_are_capped() {
    let t0 = Instant::now();
    let mut s = connected(t0, 0);
    // The cap is 4: a, b, c, d granted; e refused; a again is not new.
    feed(
        &mut s,
        &[subscribe(&[
            ("own/a", Q0),
            ("own/b", Q0),
            ("own/c", Q0),
            ("own/d", Q0),
            ("own/e", Q0),
            ("own/a", Q1),
        ])],
        t0,
    );
    let out = decode(s.take_transmit());
    let [V4Packet::SubAck(ack)] = &out[..] else {
        panic!("one SUBACK, got {out:?}")
    };
    assert_eq!(
        ack.return_codes,
        vec![
            SubscribeReasonCode::Success(Q0),
            SubscribeReasonCode::Success(Q0),
            SubscribeReasonCode::Success(Q0),
            SubscribeReasonCode::Success(Q0),
            SubscribeReasonCode::Failure,
            SubscribeReasonCode::Success(Q1),
        ]
    );
    assert!(
        events(&mut s).contains(&Event::SubscribeRefused("own/e".into())),
        "the refusal is reported"
    );
    assert_eq!(s.subscription_count(), 4);
    // Unsubscribing makes room again.
    feed(&mut s, &[unsubscribe("own/b")], t0);
    feed(&mut s, &[subscribe(&[("own/e", Q0)])], t0);
    assert_eq!(s.subscription_count(), 4);
    assert!(!s.is_closed());
}
