//! MQTT 3.1.1: CONNECT/CONNACK, keep-alive, admission, the will and
//! the ways a connection ends.

use super::*;

#[test]
fn connect_must_arrive_within_the_timeout() {
    let t0 = Instant::now();
    let mut s = new_session(t0);
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(10)));
    s.handle_timeout(t0 + Duration::from_secs(9));
    assert!(!s.is_closed());
    s.handle_timeout(t0 + Duration::from_secs(10));
    assert_eq!(
        events(&mut s),
        vec![Event::Closed(CloseReason::ConnectTimeout)]
    );
    assert!(s.take_transmit().is_empty());
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn anything_but_connect_first_closes() {
    let t0 = Instant::now();
    let mut s = new_session(t0);
    feed(&mut s, &[V4Packet::PingReq], t0);
    assert!(matches!(
        events(&mut s)[..],
        [Event::Closed(CloseReason::Protocol(_))]
    ));
    assert!(s.take_transmit().is_empty());
}

#[test]
fn garbage_closes_without_answer() {
    let t0 = Instant::now();
    let mut s = new_session(t0);
    let mut buf = BytesMut::from(&b"\xff\xff\xff\xff\xff GET / HTTP/1.1\r\n\r\n"[..]);
    s.handle_input(&mut buf, t0, &OwnPrefix);
    assert!(s.is_closed());
    assert!(buf.is_empty());
    assert!(s.take_transmit().is_empty());
}

#[test]
fn oversized_packets_close() {
    let t0 = Instant::now();
    let mut s = connected(t0, 0);
    let big = Publish::new("own/x", Q0, vec![0u8; 2000]);
    feed(&mut s, &[V4Packet::Publish(big)], t0);
    assert!(matches!(
        events(&mut s)[..],
        [Event::Closed(CloseReason::Protocol(_))]
    ));
    assert!(
        s.take_transmit().is_empty(),
        "3.1.1 has no DISCONNECT from the server"
    );
}

#[test]
fn packets_split_across_reads_are_reassembled() {
    let t0 = Instant::now();
    let mut s = new_session(t0);
    let bytes = encode(&[connect_packet(30), V4Packet::PingReq]);
    let mut input = BytesMut::new();
    for b in bytes.iter() {
        input.extend_from_slice(&[*b]);
        s.handle_input(&mut input, t0, &OwnPrefix);
    }
    assert!(input.is_empty());
    assert_eq!(
        decode(s.take_transmit()),
        vec![
            connack(ConnectReturnCode::Success, false),
            V4Packet::PingResp
        ]
    );
}

#[test]
fn refused_certificate_gets_connack_not_authorized() {
    let t0 = Instant::now();
    let mut s = Session::new(Err("revoked".into()), config(), t0);
    feed(&mut s, &[connect_packet(30)], t0);
    assert_eq!(
        decode(s.take_transmit()),
        vec![connack(ConnectReturnCode::NotAuthorized, false)]
    );
    assert_eq!(
        events(&mut s),
        vec![
            Event::AuthRefused("revoked".into()),
            Event::Closed(CloseReason::NotAuthorized)
        ]
    );
}

#[test]
fn other_protocol_levels_get_connack_0x01() {
    let t0 = Instant::now();
    let mut s = new_session(t0);
    let mut buf = encode(&[connect_packet(30)]);
    // Fixed header (2) + protocol name (6): the level byte.
    assert_eq!(buf[8], 4);
    buf[8] = 3;
    s.handle_input(&mut buf, t0, &OwnPrefix);
    assert_eq!(
        decode(s.take_transmit()),
        vec![connack(ConnectReturnCode::RefusedProtocolVersion, false)]
    );
    assert_eq!(
        events(&mut s),
        vec![Event::Closed(CloseReason::ConnectRefused)]
    );
}

#[test]
fn clean_session_0_asks_for_a_persistent_session() {
    let t0 = Instant::now();
    // Nothing stored: session present 0, but the session is kept as long as
    // the server allows.
    let (hook, seen) = admission(Ok(None));
    let mut s = new_session(t0).with_admission(hook);
    let mut c = Connect::new("keep-me");
    c.clean_session = false;
    feed(&mut s, &[V4Packet::Connect(c.clone())], t0);
    assert_eq!(
        decode(s.take_transmit()),
        vec![connack(ConnectReturnCode::Success, false)]
    );
    assert_eq!(
        *seen.lock().expect("lock"),
        vec![("keep-me".to_owned(), false, true)]
    );
    s.abort(CloseReason::ConnectionLost);
    assert_eq!(s.snapshot().0, config().max_session_expiry);

    // A stored session: session present 1, subscriptions back.
    let stored = Snapshot {
        subscriptions: HashMap::from([("own/a".to_owned(), SubOpts::qos(Q1))]),
        ..Snapshot::default()
    };
    let (hook, _) = admission(Ok(Some(stored)));
    let mut s = new_session(t0).with_admission(hook);
    feed(&mut s, &[V4Packet::Connect(c)], t0);
    assert_eq!(
        decode(s.take_transmit()),
        vec![connack(ConnectReturnCode::Success, true)]
    );
    assert_eq!(s.subscription_count(), 1);

    // Clean Session 1: not persistent, expiry 0.
    let (hook, seen) = admission(Ok(None));
    let mut s = new_session(t0).with_admission(hook);
    feed(&mut s, &[connect_packet(0)], t0);
    assert_eq!(
        *seen.lock().expect("lock"),
        vec![("client-1".to_owned(), true, false)]
    );
    s.abort(CloseReason::ConnectionLost);
    assert_eq!(s.snapshot().0, 0);

    // 3.1.1 needs a client id for a persistent session (§3.1.3-8).
    let mut s = new_session(t0);
    let mut c = Connect::new("");
    c.clean_session = false;
    feed(&mut s, &[V4Packet::Connect(c)], t0);
    assert_eq!(
        decode(s.take_transmit()),
        vec![connack(ConnectReturnCode::BadClientId, false)]
    );

    // An empty client id with Clean Session 1 is fine, and not replaced in 3.1.1.
    let mut s = new_session(t0);
    feed(&mut s, &[V4Packet::Connect(Connect::new(""))], t0);
    assert_eq!(
        decode(s.take_transmit()),
        vec![connack(ConnectReturnCode::Success, false)]
    );
    assert_eq!(
        events(&mut s),
        vec![Event::Connected {
            client_id: String::new()
        }]
    );
}

#[test]
fn keep_alive_is_one_and_a_half_intervals_from_the_last_packet() {
    let t0 = Instant::now();
    let mut s = connected(t0, 10);
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(15)));
    let t1 = t0 + Duration::from_secs(10);
    feed(&mut s, &[V4Packet::PingReq], t1);
    assert_eq!(decode(s.take_transmit()), vec![V4Packet::PingResp]);
    assert_eq!(s.poll_timeout(), Some(t1 + Duration::from_secs(15)));
    s.handle_timeout(t0 + Duration::from_secs(16));
    assert!(s.is_connected());
    s.handle_timeout(t1 + Duration::from_secs(15));
    assert_eq!(
        events(&mut s),
        vec![Event::Closed(CloseReason::KeepAliveTimeout)]
    );
    assert!(
        s.take_transmit().is_empty(),
        "3.1.1: no DISCONNECT from the server"
    );
}

#[test]
fn keep_alive_zero_never_times_out_in_311() {
    let t0 = Instant::now();
    let s = connected(t0, 0);
    assert_eq!(s.poll_timeout(), None);
    // 3.1.1 cannot be told a Server Keep Alive: a long one is kept as asked.
    let s = connected(t0, 600);
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(900)));
}

#[test]
fn second_connect_closes() {
    let t0 = Instant::now();
    let mut s = connected(t0, 0);
    feed(&mut s, &[connect_packet(0)], t0);
    assert!(matches!(
        events(&mut s)[..],
        [Event::Closed(CloseReason::Protocol(_))]
    ));
}

#[test]
fn will_is_published_when_the_connection_is_lost_but_not_after_disconnect() {
    let t0 = Instant::now();
    let with_will = |topic: &str| {
        let mut c = Connect::new("w");
        c.last_will = Some(LastWill::new(topic, b"gone".to_vec(), Q1, true));
        V4Packet::Connect(c)
    };

    let mut s = new_session(t0);
    feed(&mut s, &[with_will("own/status")], t0);
    assert!(s.take_will().is_none(), "not before the end");
    s.abort(CloseReason::ConnectionLost);
    let (will, delay) = s.take_will().expect("will after a lost connection");
    assert_eq!(
        will,
        Message {
            retain: true,
            ..Message::new("own/status", Bytes::from_static(b"gone"), Q1)
        }
    );
    assert_eq!(delay, 0, "3.1.1 has no will delay");
    assert!(s.take_will().is_none(), "taken once");

    let mut s = new_session(t0);
    feed(&mut s, &[with_will("own/status"), V4Packet::Disconnect], t0);
    assert_eq!(
        events(&mut s).last(),
        Some(&Event::Closed(CloseReason::Disconnect(false)))
    );
    assert!(s.take_will().is_none());

    let mut s = new_session(t0);
    feed(&mut s, &[with_will("own/status")], t0);
    s.abort(CloseReason::Server("revoked"));
    assert!(s.take_will().is_none());
    assert_eq!(
        s.take_transmit().len(),
        4,
        "only the CONNACK: 3.1.1 has no DISCONNECT"
    );

    let mut s = new_session(t0);
    feed(&mut s, &[with_will("other/status")], t0);
    assert_eq!(
        decode(s.take_transmit()),
        vec![connack(ConnectReturnCode::NotAuthorized, false)]
    );
    assert_eq!(
        events(&mut s),
        vec![
            Event::PublishRefused("other/status".into()),
            Event::Closed(CloseReason::NotAuthorized)
        ]
    );

    // A will topic with a wildcard is refused.
    let mut s = new_session(t0);
    feed(&mut s, &[with_will("own/+")], t0);
    assert_eq!(
        decode(s.take_transmit()),
        vec![connack(ConnectReturnCode::NotAuthorized, false)]
    );
    assert!(matches!(
        events(&mut s)[..],
        [Event::Closed(CloseReason::InvalidTopic(_))]
    ));
}

#[test]
fn the_session_ends_when_the_certificate_expires() {
    let t0 = Instant::now();
    let expiry = t0 + Duration::from_secs(30);
    let mut s = new_session(t0).with_expiry(Some(expiry));
    feed(&mut s, &[connect_packet(60)], t0);
    let _ = s.take_transmit();
    let _ = events(&mut s);
    // Keep-alive would allow 90 s; the certificate ends it at 30 s.
    assert_eq!(s.poll_timeout(), Some(expiry));
    s.handle_timeout(t0 + Duration::from_secs(29));
    assert!(s.is_connected());
    s.handle_timeout(expiry);
    assert_eq!(
        events(&mut s),
        vec![Event::Closed(CloseReason::CertificateExpired)]
    );
    assert_eq!(s.take_will(), None);
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn the_admission_hook_can_refuse_a_connect() {
    let t0 = Instant::now();
    let (hook, seen) = admission(Err("cap reached".into()));
    let mut s = new_session(t0).with_admission(hook);
    let mut c = Connect::new("client-1");
    c.last_will = Some(LastWill::new("own/will", "gone", Q0, false));
    feed(&mut s, &[V4Packet::Connect(c)], t0);
    // 0x97 (quota exceeded) is 0x05 in 3.1.1.
    assert_eq!(
        decode(s.take_transmit()),
        vec![connack(ConnectReturnCode::NotAuthorized, false)]
    );
    assert_eq!(
        events(&mut s),
        vec![Event::Closed(CloseReason::ConnectionCap(
            "cap reached".into()
        ))]
    );
    assert_eq!(s.take_will(), None, "a refused connect leaves no will");
    assert_eq!(
        *seen.lock().expect("lock"),
        vec![("client-1".to_owned(), true, false)]
    );
}

#[test]
fn client_ids_with_control_characters_are_refused() {
    let t0 = Instant::now();
    let mut s = new_session(t0);
    feed(
        &mut s,
        &[V4Packet::Connect(Connect::new("evil\u{1b}[2J"))],
        t0,
    );
    assert_eq!(
        decode(s.take_transmit()),
        vec![connack(ConnectReturnCode::BadClientId, false)]
    );
}
