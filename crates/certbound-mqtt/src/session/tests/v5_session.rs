//! MQTT 5: session expiry, snapshots, resuming with resends, and wills.

use super::*;

fn with_expiry(secs: u32) -> Option<r5::ConnectProperties> {
    props5(|p| p.session_expiry_interval = Some(secs))
}

#[test]
fn v5_session_expiry_and_snapshot() {
    let t0 = Instant::now();
    let mut s = connected5(t0, with_expiry(7200));
    let mut subscribe = r5::Subscribe::new(r5::Filter::new("own/#", R2), None);
    subscribe.pkid = 1;
    feed5(&mut s, &[V5Packet::Subscribe(subscribe)], t0);
    let _ = events(&mut s);
    let (m1, m2, m3) = (msg("own/1", Q1), msg("own/2", Q2), msg("own/3", Q2));
    for m in [&m1, &m2, &m3] {
        s.deliver(m, t0);
    }
    feed5(
        &mut s,
        &[
            V5Packet::PubRec(r5::PubRec::new(2, None)),
            publish5("own/in", R2, 9, None),
        ],
        t0,
    );
    let _ = s.take_transmit();
    s.abort(CloseReason::ConnectionLost);
    assert!(
        s.take_transmit().is_empty(),
        "nothing to say to a lost connection"
    );
    let (expiry, snapshot) = s.snapshot();
    assert_eq!(expiry, 3600, "capped by max_session_expiry");
    assert_eq!(
        snapshot,
        Snapshot {
            subscriptions: HashMap::from([("own/#".to_owned(), SubOpts::qos(Q2))]),
            outgoing: vec![
                (
                    1,
                    Outgoing {
                        message: m1,
                        stage: Stage::PubAck
                    }
                ),
                (
                    2,
                    Outgoing {
                        message: m2,
                        stage: Stage::PubComp
                    }
                ),
                (
                    3,
                    Outgoing {
                        message: m3,
                        stage: Stage::PubRec
                    }
                ),
            ],
            incoming_qos2: vec![9],
        }
    );
}

#[test]
fn v5_disconnect_may_change_the_session_expiry() {
    let t0 = Instant::now();
    let disconnect = |code, expiry| {
        V5Packet::Disconnect(r5::Disconnect {
            reason_code: code,
            properties: Some(r5::DisconnectProperties {
                session_expiry_interval: expiry,
                reason_string: None,
                user_properties: vec![],
                server_reference: None,
            }),
        })
    };
    use r5::DisconnectReasonCode::NormalDisconnection as Normal;
    // Down to 0: the session ends with the connection.
    let mut s = connected5(t0, with_expiry(100));
    feed5(&mut s, &[disconnect(Normal, Some(0))], t0);
    assert_eq!(s.snapshot().0, 0);
    // Up, capped.
    let mut s = connected5(t0, with_expiry(100));
    feed5(&mut s, &[disconnect(Normal, Some(999_999))], t0);
    assert_eq!(s.snapshot().0, 3600);
    // Not from 0 to more (§3.14.2.2.2): protocol error.
    let mut s = connected5(t0, None);
    feed5(&mut s, &[disconnect(Normal, Some(10))], t0);
    assert_eq!(
        disconnect_code(&decode5(s.take_transmit())),
        r5::DisconnectReasonCode::ProtocolError
    );
    assert!(matches!(
        events(&mut s)[..],
        [Event::Closed(CloseReason::Protocol(_))]
    ));
    assert_eq!(s.snapshot().0, 0);
}

#[test]
fn v5_a_resumed_session_resends_with_dup_and_the_same_packet_ids() {
    let t0 = Instant::now();
    let stored = Snapshot {
        subscriptions: HashMap::from([("own/#".to_owned(), SubOpts::qos(Q2))]),
        outgoing: vec![
            (
                4,
                Outgoing {
                    message: msg("own/1", Q1),
                    stage: Stage::PubAck,
                },
            ),
            (
                5,
                Outgoing {
                    message: msg("own/2", Q2),
                    stage: Stage::PubComp,
                },
            ),
            (
                7,
                Outgoing {
                    message: msg("own/3", Q2),
                    stage: Stage::PubRec,
                },
            ),
        ],
        incoming_qos2: vec![9],
    };
    let (hook, seen) = admission(Ok(Some(stored)));
    let mut s = new_session5(t0).with_admission(hook);
    let V5Packet::Connect(mut connect, _, _) = connect5("c5", 30, with_expiry(600)) else {
        unreachable!()
    };
    connect.clean_start = false;
    feed5(&mut s, &[V5Packet::Connect(connect, None, None)], t0);
    assert_eq!(
        *seen.lock().expect("lock"),
        vec![("c5".to_owned(), false, true)]
    );
    let out = decode5(s.take_transmit());
    let [V5Packet::ConnAck(ack), rest @ ..] = &out[..] else {
        panic!("CONNACK first, got {out:?}")
    };
    assert!(ack.session_present);
    assert_eq!(ack.code, r5::ConnectReturnCode::Success);
    let [
        V5Packet::Publish(p1),
        V5Packet::PubRel(rel),
        V5Packet::Publish(p3),
    ] = rest
    else {
        panic!("PUBLISH, PUBREL, PUBLISH, got {rest:?}")
    };
    assert_eq!(
        (&p1.topic[..], p1.pkid, p1.qos, p1.dup),
        (&b"own/1"[..], 4, R1, true)
    );
    assert_eq!(*rel, r5::PubRel::new(5, None));
    assert_eq!(
        (&p3.topic[..], p3.pkid, p3.qos, p3.dup),
        (&b"own/3"[..], 7, R2, true)
    );
    assert_eq!(s.subscription_count(), 1);
    assert!(
        !s.can_deliver(),
        "three resumed messages fill the window of 3"
    );
    // Their acknowledgements complete them.
    feed5(
        &mut s,
        &[
            puback5(4),
            V5Packet::PubComp(r5::PubComp::new(5, None)),
            V5Packet::PubRec(r5::PubRec::new(7, None)),
        ],
        t0,
    );
    assert_eq!(
        decode5(s.take_transmit()),
        vec![V5Packet::PubRel(r5::PubRel::new(7, None))]
    );
    assert!(s.can_deliver());
    // New messages continue after the highest stored id.
    s.deliver(&msg("own/4", Q1), t0);
    assert_eq!(publishes(&decode5(s.take_transmit()))[0].1, 8);
    // The stored incoming QoS 2 message: a retransmission is not routed
    // again, PUBREL completes it.
    let V5Packet::Publish(mut again) = publish5("own/in", R2, 9, None) else {
        unreachable!()
    };
    again.dup = true;
    feed5(
        &mut s,
        &[
            V5Packet::Publish(again),
            V5Packet::PubRel(r5::PubRel::new(9, None)),
        ],
        t0,
    );
    assert_eq!(
        events(&mut s),
        vec![Event::Connected {
            client_id: "c5".into()
        }]
    );
    assert_eq!(
        decode5(s.take_transmit()),
        vec![
            V5Packet::PubRec(r5::PubRec::new(9, None)),
            V5Packet::PubComp(r5::PubComp::new(9, None))
        ]
    );
}

fn will5(topic: &str, delay: Option<u32>) -> (r5::LastWill, Message) {
    let will = r5::LastWill::new(
        topic,
        b"gone".to_vec(),
        R1,
        true,
        Some(r5::LastWillProperties {
            delay_interval: delay,
            payload_format_indicator: None,
            message_expiry_interval: Some(600),
            content_type: Some("text/plain".into()),
            response_topic: None,
            correlation_data: None,
            user_properties: vec![("why".into(), "lost".into())],
        }),
    );
    let message = Message {
        retain: true,
        props: Some(Arc::new(AppProps {
            content_type: Some("text/plain".into()),
            user: vec![("why".into(), "lost".into())],
            ..AppProps::default()
        })),
        ..Message::new(topic, Bytes::from_static(b"gone"), Q1)
    };
    (will, message)
}

fn connect_with_will(t0: Instant, will: r5::LastWill) -> Session {
    let mut s = new_session5(t0);
    let V5Packet::Connect(connect, _, _) = connect5("c5", 30, with_expiry(120)) else {
        unreachable!()
    };
    feed5(&mut s, &[V5Packet::Connect(connect, Some(will), None)], t0);
    let _ = s.take_transmit();
    let _ = events(&mut s);
    s
}

#[test]
fn v5_will_with_delay_is_returned_by_take_will() {
    let t0 = Instant::now();
    let (will, expected) = will5("own/status", Some(30));
    let mut s = connect_with_will(t0, will);
    assert_eq!(s.take_will(), None, "not while connected");
    s.abort(CloseReason::ConnectionLost);
    let expected = Message {
        expires: Some(t0 + Duration::from_secs(600)),
        ..expected
    };
    assert_eq!(s.take_will(), Some((expected, 30)));
    assert_eq!(s.take_will(), None);
}

#[test]
fn v5_disconnect_0x04_publishes_the_will_and_0x00_does_not() {
    let t0 = Instant::now();
    let (will, _) = will5("own/status", None);
    let mut s = connect_with_will(t0, will.clone());
    // (With a reason string: rumqttc writes a DISCONNECT whose remaining
    // length would be 2 as a normal one, and one without properties with a
    // property length byte its remaining length does not count.)
    feed5(
        &mut s,
        &[V5Packet::Disconnect(r5::Disconnect {
            reason_code: r5::DisconnectReasonCode::DisconnectWithWillMessage,
            properties: Some(r5::DisconnectProperties {
                session_expiry_interval: None,
                reason_string: Some("bye".into()),
                user_properties: vec![],
                server_reference: None,
            }),
        })],
        t0,
    );
    assert_eq!(
        events(&mut s),
        vec![Event::Closed(CloseReason::Disconnect(true))]
    );
    assert!(matches!(s.take_will(), Some((m, 0)) if &*m.topic == "own/status"));

    // rumqttc writes a normal DISCONNECT with remaining length 0.
    let mut s = connect_with_will(t0, will);
    feed5(
        &mut s,
        &[V5Packet::Disconnect(r5::Disconnect::new(
            r5::DisconnectReasonCode::NormalDisconnection,
        ))],
        t0,
    );
    assert_eq!(
        events(&mut s),
        vec![Event::Closed(CloseReason::Disconnect(false))]
    );
    assert_eq!(s.take_will(), None);
}

#[test]

fn v5_resent_messages_count_expiry_from_the_time_passed_in() {
    let t0 = Instant::now();
    let t1 = t0 + Duration::from_secs(100);
    let stored = Snapshot {
        outgoing: vec![(
            1,
            Outgoing {
                message: Message {
                    expires: Some(t0 + Duration::from_secs(150)),
                    ..msg("own/1", Q1)
                },
                stage: Stage::PubAck,
            },
        )],
        ..Snapshot::default()
    };
    let (hook, _) = admission(Ok(Some(stored)));
    let mut s = new_session5(t1).with_admission(hook);
    let V5Packet::Connect(mut connect, _, _) = connect5("c5", 30, with_expiry(600)) else {
        unreachable!()
    };
    connect.clean_start = false;
    feed5(&mut s, &[V5Packet::Connect(connect, None, None)], t1);
    let out = decode5(s.take_transmit());
    let [V5Packet::ConnAck(_), V5Packet::Publish(p)] = &out[..] else {
        panic!("CONNACK and PUBLISH, got {out:?}")
    };
    assert_eq!(
        p.properties
            .as_ref()
            .and_then(|p| p.message_expiry_interval),
        Some(50),
        "150 s from t0, resent at t0 + 100 s"
    );
}
