use super::*;
use rumqttc::Connect;
use rumqttc::mqttbytes::v4::{LastWill, Subscribe, SubscribeFilter, Unsubscribe};

const Q0: QoS = QoS::AtMostOnce;
const Q1: QoS = QoS::AtLeastOnce;
const Q2: QoS = QoS::ExactlyOnce;

/// Allows `own/...` to everyone, nothing else.
struct OwnPrefix;

impl Authorizer for OwnPrefix {
    async fn authenticate(&self, _: &[u8]) -> Result<Identity, String> {
        Ok(Identity::Device("d".into()))
    }
    fn may_publish(&self, _: &Identity, topic: &str) -> bool {
        topic.starts_with("own/")
    }
    fn may_subscribe(&self, _: &Identity, filter: &str) -> bool {
        filter.starts_with("own/")
    }
}

fn config() -> SessionConfig {
    SessionConfig {
        max_packet_size: 1024,
        connect_timeout: Duration::from_secs(10),
        max_inflight: 3,
        max_subscriptions: 4,
    }
}

fn encode(packets: &[Packet]) -> BytesMut {
    let mut buf = BytesMut::new();
    for p in packets {
        p.write(&mut buf, usize::MAX).expect("encodable");
    }
    buf
}

fn decode(mut buf: BytesMut) -> Vec<Packet> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        out.push(Packet::read(&mut buf, usize::MAX).expect("server output decodes"));
    }
    out
}

fn events(s: &mut Session) -> Vec<Event> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

fn feed(s: &mut Session, packets: &[Packet], now: Instant) {
    let mut buf = encode(packets);
    s.handle_input(&mut buf, now, &OwnPrefix);
    assert!(buf.is_empty());
}

fn connect_packet(keep_alive: u16) -> Packet {
    let mut c = Connect::new("client-1");
    c.keep_alive = keep_alive;
    Packet::Connect(c)
}

/// A connected session at `t0`, with the CONNECT exchange drained.
fn connected(t0: Instant, keep_alive: u16) -> Session {
    let mut s = Session::new(Ok(Identity::Device("d".into())), config(), t0);
    feed(&mut s, &[connect_packet(keep_alive)], t0);
    assert_eq!(
        decode(s.take_transmit()),
        vec![Packet::ConnAck(ConnAck::new(
            ConnectReturnCode::Success,
            false
        ))]
    );
    assert_eq!(
        events(&mut s),
        vec![Event::Connected {
            client_id: "client-1".into()
        }]
    );
    s
}

fn publish(topic: &str, qos: QoS, pkid: u16) -> Packet {
    let mut p = Publish::new(topic, qos, b"hello".to_vec());
    p.pkid = pkid;
    Packet::Publish(p)
}

#[test]
fn connect_must_arrive_within_the_timeout() {
    let t0 = Instant::now();
    let mut s = Session::new(Ok(Identity::Device("d".into())), config(), t0);
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
    let mut s = Session::new(Ok(Identity::Device("d".into())), config(), t0);
    feed(&mut s, &[Packet::PingReq], t0);
    assert!(matches!(
        events(&mut s)[..],
        [Event::Closed(CloseReason::Protocol(_))]
    ));
    assert!(s.take_transmit().is_empty());
}

#[test]
fn garbage_closes_without_answer() {
    let t0 = Instant::now();
    let mut s = Session::new(Ok(Identity::Device("d".into())), config(), t0);
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
    let mut big = Publish::new("own/x", Q0, vec![0u8; 2000]);
    big.pkid = 0;
    feed(&mut s, &[Packet::Publish(big)], t0);
    assert!(matches!(
        events(&mut s)[..],
        [Event::Closed(CloseReason::Protocol(_))]
    ));
}

#[test]
fn packets_split_across_reads_are_reassembled() {
    let t0 = Instant::now();
    let mut s = Session::new(Ok(Identity::Device("d".into())), config(), t0);
    let bytes = encode(&[connect_packet(30), Packet::PingReq]);
    let mut input = BytesMut::new();
    for b in bytes.iter() {
        input.extend_from_slice(&[*b]);
        s.handle_input(&mut input, t0, &OwnPrefix);
    }
    assert!(input.is_empty());
    assert_eq!(
        decode(s.take_transmit()),
        vec![
            Packet::ConnAck(ConnAck::new(ConnectReturnCode::Success, false)),
            Packet::PingResp
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
        vec![Packet::ConnAck(ConnAck::new(
            ConnectReturnCode::NotAuthorized,
            false
        ))]
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
    let mut s = Session::new(Ok(Identity::Device("d".into())), config(), t0);
    let mut buf = encode(&[connect_packet(30)]);
    // Fixed header (2) + protocol name (6): the level byte.
    assert_eq!(buf[8], 4);
    buf[8] = 3;
    s.handle_input(&mut buf, t0, &OwnPrefix);
    assert_eq!(
        decode(s.take_transmit()),
        vec![Packet::ConnAck(ConnAck::new(
            ConnectReturnCode::RefusedProtocolVersion,
            false
        ))]
    );
    assert_eq!(
        events(&mut s),
        vec![Event::Closed(CloseReason::ConnectRefused)]
    );
}

#[test]
fn persistent_session_requests_are_treated_as_clean() {
    let t0 = Instant::now();
    let mut s = Session::new(Ok(Identity::Device("d".into())), config(), t0);
    let mut c = Connect::new("keep-me");
    c.clean_session = false;
    feed(&mut s, &[Packet::Connect(c)], t0);
    assert_eq!(
        decode(s.take_transmit()),
        vec![Packet::ConnAck(ConnAck::new(
            ConnectReturnCode::Success,
            false
        ))]
    );

    let mut s = Session::new(Ok(Identity::Device("d".into())), config(), t0);
    let mut c = Connect::new("");
    c.clean_session = false;
    feed(&mut s, &[Packet::Connect(c)], t0);
    assert_eq!(
        decode(s.take_transmit()),
        vec![Packet::ConnAck(ConnAck::new(
            ConnectReturnCode::BadClientId,
            false
        ))]
    );
}

#[test]
fn keep_alive_is_one_and_a_half_intervals_from_the_last_packet() {
    let t0 = Instant::now();
    let mut s = connected(t0, 10);
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(15)));
    let t1 = t0 + Duration::from_secs(10);
    feed(&mut s, &[Packet::PingReq], t1);
    assert_eq!(decode(s.take_transmit()), vec![Packet::PingResp]);
    assert_eq!(s.poll_timeout(), Some(t1 + Duration::from_secs(15)));
    s.handle_timeout(t0 + Duration::from_secs(16));
    assert!(s.is_connected());
    s.handle_timeout(t1 + Duration::from_secs(15));
    assert_eq!(
        events(&mut s),
        vec![Event::Closed(CloseReason::KeepAliveTimeout)]
    );
}

#[test]
fn keep_alive_zero_never_times_out() {
    let t0 = Instant::now();
    let s = connected(t0, 0);
    assert_eq!(s.poll_timeout(), None);
}

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
    feed(&mut s, &[Packet::Subscribe(subscribe)], t0);
    assert_eq!(
        events(&mut s),
        vec![
            Event::SubscribeRefused("other/#".into()),
            Event::Subscribe(vec![("own/a/#".into(), Q1), ("own/b".into(), Q0)]),
        ]
    );
    assert_eq!(
        decode(s.take_transmit()),
        vec![Packet::SubAck(SubAck::new(
            7,
            vec![
                SubscribeReasonCode::Success(Q1),
                SubscribeReasonCode::Failure,
                SubscribeReasonCode::Failure,
                SubscribeReasonCode::Success(Q0),
            ]
        ))]
    );

    feed(
        &mut s,
        &[Packet::Unsubscribe(Unsubscribe::new("own/b"))],
        t0,
    );
    assert_eq!(
        events(&mut s),
        vec![Event::Unsubscribe(vec!["own/b".into()])]
    );
    assert!(matches!(
        decode(s.take_transmit())[..],
        [Packet::UnsubAck(_)]
    ));
}

#[test]
fn authorised_publish_is_routed_then_acknowledged() {
    let t0 = Instant::now();
    let mut s = connected(t0, 0);
    feed(
        &mut s,
        &[publish("own/t", Q1, 42), publish("own/u", Q0, 0)],
        t0,
    );
    let msg = |topic: &str, qos| Message {
        topic: Arc::from(topic),
        payload: Bytes::from_static(b"hello"),
        qos,
    };
    assert_eq!(
        events(&mut s),
        vec![
            Event::Publish(msg("own/t", Q1)),
            Event::Publish(msg("own/u", Q0))
        ]
    );
    assert_eq!(
        decode(s.take_transmit()),
        vec![Packet::PubAck(PubAck::new(42))]
    );
}

#[test]
fn unauthorised_publish_closes_the_connection_without_routing() {
    let t0 = Instant::now();
    let mut s = connected(t0, 0);
    feed(&mut s, &[publish("other/t", Q1, 1), Packet::PingReq], t0);
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
fn qos2_publish_closes_the_connection() {
    let t0 = Instant::now();
    let mut s = connected(t0, 0);
    feed(&mut s, &[publish("own/t", Q2, 1)], t0);
    assert_eq!(
        events(&mut s),
        vec![Event::Closed(CloseReason::QoS2Unsupported)]
    );
    assert!(s.take_transmit().is_empty());
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
fn qos1_deliveries_are_bounded_by_the_inflight_window() {
    let t0 = Instant::now();
    let mut s = connected(t0, 0);
    let message = Message {
        topic: Arc::from("own/x"),
        payload: Bytes::from_static(b"m"),
        qos: Q1,
    };
    for _ in 0..3 {
        assert!(s.can_deliver());
        s.deliver(&message);
    }
    assert!(!s.can_deliver(), "window of 3 full");
    let ids: Vec<u16> = decode(s.take_transmit())
        .into_iter()
        .map(|p| match p {
            Packet::Publish(p) => {
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
            Packet::PubAck(PubAck::new(2)),
            Packet::PubAck(PubAck::new(99)),
        ],
        t0,
    );
    assert!(s.can_deliver());
    s.deliver(&Message { qos: Q0, ..message });
    assert!(
        matches!(&decode(s.take_transmit())[..], [Packet::Publish(p)] if p.pkid == 0 && p.qos == Q0)
    );
}

#[test]
fn will_is_published_when_the_connection_is_lost_but_not_after_disconnect() {
    let t0 = Instant::now();
    let with_will = |topic: &str| {
        let mut c = Connect::new("w");
        c.last_will = Some(LastWill::new(topic, b"gone".to_vec(), Q1, true));
        Packet::Connect(c)
    };

    let mut s = Session::new(Ok(Identity::Device("d".into())), config(), t0);
    feed(&mut s, &[with_will("own/status")], t0);
    assert!(s.take_will().is_none(), "not before the end");
    s.abort(CloseReason::ConnectionLost);
    let will = s.take_will().expect("will after a lost connection");
    assert_eq!((&*will.topic, will.qos), ("own/status", Q1));

    let mut s = Session::new(Ok(Identity::Device("d".into())), config(), t0);
    feed(&mut s, &[with_will("own/status"), Packet::Disconnect], t0);
    assert!(s.take_will().is_none());

    let mut s = Session::new(Ok(Identity::Device("d".into())), config(), t0);
    feed(&mut s, &[with_will("own/status")], t0);
    s.abort(CloseReason::Server("revoked"));
    assert!(s.take_will().is_none());

    let mut s = Session::new(Ok(Identity::Device("d".into())), config(), t0);
    feed(&mut s, &[with_will("other/status")], t0);
    assert_eq!(
        decode(s.take_transmit()),
        vec![Packet::ConnAck(ConnAck::new(
            ConnectReturnCode::NotAuthorized,
            false
        ))]
    );
}

#[test]
fn qos2_flow_packets_close() {
    let t0 = Instant::now();
    let mut s = connected(t0, 0);
    feed(&mut s, &[Packet::PubRel(rumqttc::PubRel::new(1))], t0);
    assert!(s.is_closed());
}

/// A PUBLISH packet with raw topic bytes (the codec cannot encode invalid UTF-8).
fn raw_publish(topic: &[u8]) -> BytesMut {
    let mut body = Vec::new();
    body.extend_from_slice(&u16::try_from(topic.len()).expect("short").to_be_bytes());
    body.extend_from_slice(topic);
    body.extend_from_slice(b"payload");
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&[0x30, u8::try_from(body.len()).expect("short")]);
    buf.extend_from_slice(&body);
    buf
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

fn subscribe(filters: &[(&str, QoS)]) -> Packet {
    Packet::Subscribe(Subscribe::new_many(
        filters
            .iter()
            .map(|(f, q)| SubscribeFilter::new((*f).to_string(), *q)),
    ))
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
    let [Packet::SubAck(ack)] = &out[..] else {
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
    feed(
        &mut s,
        &[Packet::Unsubscribe(Unsubscribe::new("own/b"))],
        t0,
    );
    feed(&mut s, &[subscribe(&[("own/e", Q0)])], t0);
    assert_eq!(s.subscription_count(), 4);
    assert!(!s.is_closed());
}

#[test]
fn the_session_ends_when_the_certificate_expires() {
    let t0 = Instant::now();
    let expiry = t0 + Duration::from_secs(30);
    let mut s =
        Session::new(Ok(Identity::Device("d".into())), config(), t0).with_expiry(Some(expiry));
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
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let mut s = Session::new(Ok(Identity::Device("d".into())), config(), t0).with_admission(
        Box::new(move |client_id: &str| {
            log.lock().expect("lock").push(client_id.to_owned());
            Err("cap reached".into())
        }),
    );
    let mut c = Connect::new("client-1");
    c.last_will = Some(LastWill::new("own/will", "gone", Q0, false));
    feed(&mut s, &[Packet::Connect(c)], t0);
    assert_eq!(
        decode(s.take_transmit()),
        vec![Packet::ConnAck(ConnAck::new(
            ConnectReturnCode::NotAuthorized,
            false
        ))]
    );
    assert_eq!(
        events(&mut s),
        vec![Event::Closed(CloseReason::ConnectionCap(
            "cap reached".into()
        ))]
    );
    assert_eq!(s.take_will(), None, "a refused connect leaves no will");
    assert_eq!(*seen.lock().expect("lock"), vec!["client-1".to_owned()]);
}

#[test]
fn client_ids_with_control_characters_are_refused() {
    let t0 = Instant::now();
    let mut s = Session::new(Ok(Identity::Device("d".into())), config(), t0);
    feed(
        &mut s,
        &[Packet::Connect(Connect::new("evil\u{1b}[2J"))],
        t0,
    );
    assert_eq!(
        decode(s.take_transmit()),
        vec![Packet::ConnAck(ConnAck::new(
            ConnectReturnCode::BadClientId,
            false
        ))]
    );
}
