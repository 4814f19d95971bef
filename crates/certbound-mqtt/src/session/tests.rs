//! The session state machine, driven with packets encoded by rumqttc (a
//! codec we did not write): its v4 codec for MQTT 3.1.1, its v5 codec for
//! MQTT 5. Exceptions, where rumqttc cannot: AUTH (its v5 reader does not
//! know packet type 15 and its writer miscounts AUTH properties) and a
//! DISCONNECT shorter than two bytes of remaining length (its v5 reader
//! wants a property length), which go through `crate::wire`.

use super::*;
use bytes::Bytes;
use rumqttc::mqttbytes::v4::Packet as V4Packet;
use rumqttc::v5::mqttbytes::QoS as QoS5;
use rumqttc::v5::mqttbytes::v5::{self as r5, Packet as V5Packet};
use rumqttc::{
    ConnAck, Connect, ConnectReturnCode, LastWill, PubAck, PubComp, PubRec, PubRel, Publish, QoS,
    SubAck, Subscribe, SubscribeFilter, SubscribeReasonCode, Unsubscribe,
};

use crate::identity::TokenGrant;
use crate::message::AppProps;

const Q0: QoS = QoS::AtMostOnce;
const Q1: QoS = QoS::AtLeastOnce;
const Q2: QoS = QoS::ExactlyOnce;
const R0: QoS5 = QoS5::AtMostOnce;
const R1: QoS5 = QoS5::AtLeastOnce;
const R2: QoS5 = QoS5::ExactlyOnce;

/// The client certificate the session binds tokens to (the stub
/// authorizer only compares bytes).
const CERT: &[u8] = b"client certificate DER";

/// Allows `own/...` to everyone (and the share group `g` on it), nothing
/// else; accepts the tokens `good`, `fresh` and `narrow`.
struct OwnPrefix;

impl Authorizer for OwnPrefix {
    async fn authenticate(&self, _: &[u8]) -> Result<Identity, String> {
        Ok(Identity::Device("d".into()))
    }
    fn may_publish(&self, _: &Identity, topic: &str) -> bool {
        topic.starts_with("own/")
    }
    fn may_subscribe(&self, _: &Identity, filter: &str) -> bool {
        filter.starts_with("own/") || filter.starts_with("$share/g/own/")
    }
    fn verify_token(
        &self,
        who: &Identity,
        peer_cert_der: &[u8],
        token: &[u8],
    ) -> Result<TokenGrant, String> {
        assert_eq!(who, &Identity::Device("d".into()));
        assert_eq!(
            peer_cert_der, CERT,
            "the token is checked against the session's certificate"
        );
        let grant = |id: &[u8], secs, publish: &[&str], subscribe: &[&str]| {
            TokenGrant::new(
                id.to_vec(),
                Duration::from_secs(secs),
                publish.iter().map(|s| (*s).to_owned()).collect(),
                subscribe.iter().map(|s| (*s).to_owned()).collect(),
            )
        };
        match token {
            b"good" => Ok(grant(b"t1", 60, &["tok/+/up"], &["tok/#"])),
            b"fresh" => Ok(grant(b"t2", 120, &["tok/+/up"], &["tok/#"])),
            b"narrow" => Ok(grant(b"t3", 120, &[], &["tok/a/#"])),
            _ => Err("token refused".into()),
        }
    }
}

fn config() -> SessionConfig {
    SessionConfig {
        max_packet_size: 1024,
        connect_timeout: Duration::from_secs(10),
        max_inflight: 3,
        max_subscriptions: 4,
        receive_maximum: 2,
        topic_alias_max: 4,
        max_keep_alive: 60,
        max_session_expiry: 3600,
    }
}

fn new_session(t0: Instant) -> Session {
    Session::new(Ok(Identity::Device("d".into())), config(), t0)
}

fn events(s: &mut Session) -> Vec<Event> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

fn msg(topic: &str, qos: QoS) -> Message {
    Message::new(topic, Bytes::from_static(b"hello"), qos)
}

// ------------------------------------------------------------ MQTT 3.1.1

fn encode(packets: &[V4Packet]) -> BytesMut {
    let mut buf = BytesMut::new();
    for p in packets {
        p.write(&mut buf, usize::MAX).expect("encodable");
    }
    buf
}

fn decode(mut buf: BytesMut) -> Vec<V4Packet> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        out.push(V4Packet::read(&mut buf, usize::MAX).expect("server output decodes"));
    }
    out
}

fn feed(s: &mut Session, packets: &[V4Packet], now: Instant) {
    let mut buf = encode(packets);
    s.handle_input(&mut buf, now, &OwnPrefix);
    assert!(buf.is_empty());
}

fn connect_packet(keep_alive: u16) -> V4Packet {
    let mut c = Connect::new("client-1");
    c.keep_alive = keep_alive;
    V4Packet::Connect(c)
}

fn connack(code: ConnectReturnCode, session_present: bool) -> V4Packet {
    V4Packet::ConnAck(ConnAck::new(code, session_present))
}

/// A connected session at `t0`, with the CONNECT exchange drained.
fn connected(t0: Instant, keep_alive: u16) -> Session {
    let mut s = new_session(t0);
    feed(&mut s, &[connect_packet(keep_alive)], t0);
    assert_eq!(
        decode(s.take_transmit()),
        vec![connack(ConnectReturnCode::Success, false)]
    );
    assert_eq!(
        events(&mut s),
        vec![Event::Connected {
            client_id: "client-1".into()
        }]
    );
    assert_eq!(s.level(), Level::V311);
    s
}

fn publish(topic: &str, qos: QoS, pkid: u16) -> V4Packet {
    let mut p = Publish::new(topic, qos, b"hello".to_vec());
    p.pkid = pkid;
    V4Packet::Publish(p)
}

/// rumqttc leaves packet ids to its client state: 0 until set, which the
/// server refuses (§2.2.1).
fn subscribe(filters: &[(&str, QoS)]) -> V4Packet {
    let mut subscribe = Subscribe::new_many(
        filters
            .iter()
            .map(|(f, q)| SubscribeFilter::new((*f).to_string(), *q)),
    );
    subscribe.pkid = 1;
    V4Packet::Subscribe(subscribe)
}

fn unsubscribe(filter: &str) -> V4Packet {
    let mut unsubscribe = Unsubscribe::new(filter);
    unsubscribe.pkid = 2;
    V4Packet::Unsubscribe(unsubscribe)
}

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

type Requests = Arc<std::sync::Mutex<Vec<(String, bool, bool)>>>;

/// An admission hook that records each request and answers `answer`.
fn admission(answer: Result<Option<Snapshot>, String>) -> (Admission, Requests) {
    let seen: Requests = Arc::default();
    let log = Arc::clone(&seen);
    let hook: Admission = Box::new(move |request: &AdmitRequest<'_>| {
        log.lock().expect("lock").push((
            request.client_id.to_owned(),
            request.clean_start,
            request.persistent,
        ));
        answer.clone()
    });
    (hook, seen)
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

// ------------------------------------------------------------------ MQTT 5

fn encode5(packets: &[V5Packet]) -> BytesMut {
    let mut buf = BytesMut::new();
    for p in packets {
        p.write(&mut buf, None).expect("encodable");
    }
    buf
}

/// A server packet, read by rumqttc's v5 codec where it can, by ours for AUTH.
#[derive(Debug)]
enum Out {
    Mqtt(V5Packet),
    Auth(wire::Reasoned),
}

fn decode_out(mut buf: BytesMut) -> Vec<Out> {
    let mut out = Vec::new();
    while let Some(&first) = buf.first() {
        let ours = match first >> 4 {
            15 => true,
            // rumqttc needs a property length after the reason code.
            14 => buf.get(1).is_some_and(|&len| len < 2),
            _ => false,
        };
        if ours {
            match wire::read(&mut buf, Level::V5, usize::MAX) {
                Ok(Some(Packet::Auth(auth))) => out.push(Out::Auth(auth)),
                Ok(Some(Packet::Disconnect(d))) => {
                    let code = d.code.try_into().expect("a known reason code");
                    out.push(Out::Mqtt(V5Packet::Disconnect(r5::Disconnect::new(code))));
                }
                other => panic!("server output {other:?}"),
            }
        } else {
            out.push(Out::Mqtt(
                V5Packet::read(&mut buf, None).expect("server output decodes"),
            ));
        }
    }
    out
}

fn decode5(buf: BytesMut) -> Vec<V5Packet> {
    decode_out(buf)
        .into_iter()
        .map(|o| match o {
            Out::Mqtt(p) => p,
            Out::Auth(a) => panic!("unexpected AUTH {a:?}"),
        })
        .collect()
}

fn feed5(s: &mut Session, packets: &[V5Packet], now: Instant) {
    let mut buf = encode5(packets);
    s.handle_input(&mut buf, now, &OwnPrefix);
    assert!(buf.is_empty());
}

/// Feeds a packet our codec encodes (AUTH: rumqttc's writer miscounts its
/// property length).
fn feed_ours(s: &mut Session, packet: &Packet, now: Instant) {
    let mut buf = BytesMut::new();
    wire::write(packet, Level::V5, &mut buf).expect("encodable");
    s.handle_input(&mut buf, now, &OwnPrefix);
    assert!(buf.is_empty());
}

fn new_session5(t0: Instant) -> Session {
    new_session(t0).with_peer_cert(Some(Arc::from(CERT)), 0xab)
}

fn connect5(client_id: &str, keep_alive: u16, props: Option<r5::ConnectProperties>) -> V5Packet {
    V5Packet::Connect(
        r5::Connect {
            keep_alive,
            client_id: client_id.into(),
            clean_start: true,
            properties: props,
        },
        None,
        None,
    )
}

fn props5(f: impl FnOnce(&mut r5::ConnectProperties)) -> Option<r5::ConnectProperties> {
    let mut p = r5::ConnectProperties::new();
    f(&mut p);
    Some(p)
}

fn the_connack(out: &[V5Packet]) -> &r5::ConnAck {
    match out {
        [V5Packet::ConnAck(ack)] => ack,
        other => panic!("expected one CONNACK, got {other:?}"),
    }
}

fn connack_props(out: &[V5Packet]) -> r5::ConnAckProperties {
    the_connack(out)
        .properties
        .clone()
        .expect("CONNACK properties")
}

/// A connected MQTT 5 session at `t0` (client id `c5`, keep-alive 30),
/// with the CONNECT exchange drained.
fn connected5(t0: Instant, props: Option<r5::ConnectProperties>) -> Session {
    let mut s = new_session5(t0);
    feed5(&mut s, &[connect5("c5", 30, props)], t0);
    let out = decode5(s.take_transmit());
    assert_eq!(the_connack(&out).code, r5::ConnectReturnCode::Success);
    assert_eq!(
        events(&mut s),
        vec![Event::Connected {
            client_id: "c5".into()
        }]
    );
    assert_eq!(s.level(), Level::V5);
    s
}

fn publish5(topic: &str, qos: QoS5, pkid: u16, props: Option<r5::PublishProperties>) -> V5Packet {
    let mut p = r5::Publish::new(topic, qos, Bytes::from_static(b"hello"), props);
    p.pkid = pkid;
    V5Packet::Publish(p)
}

fn alias(n: u16) -> Option<r5::PublishProperties> {
    Some(r5::PublishProperties {
        topic_alias: Some(n),
        ..r5::PublishProperties::default()
    })
}

fn disconnect_code(out: &[V5Packet]) -> r5::DisconnectReasonCode {
    match out {
        [V5Packet::Disconnect(d)] => d.reason_code,
        other => panic!("expected one DISCONNECT, got {other:?}"),
    }
}

fn disconnect_reason_string(out: &[V5Packet]) -> Option<String> {
    match out {
        [V5Packet::Disconnect(d)] => d.properties.as_ref().and_then(|p| p.reason_string.clone()),
        other => panic!("expected one DISCONNECT, got {other:?}"),
    }
}

fn puback5(pkid: u16) -> V5Packet {
    V5Packet::PubAck(r5::PubAck::new(pkid, None))
}

/// The PUBLISH packets in `out`: (topic, pkid, QoS, dup, topic alias).
fn publishes(out: &[V5Packet]) -> Vec<(String, u16, QoS5, bool, Option<u16>)> {
    out.iter()
        .map(|p| match p {
            V5Packet::Publish(p) => (
                String::from_utf8(p.topic.to_vec()).expect("UTF-8"),
                p.pkid,
                p.qos,
                p.dup,
                p.properties.as_ref().and_then(|p| p.topic_alias),
            ),
            other => panic!("expected PUBLISH, got {other:?}"),
        })
        .collect()
}

#[test]
fn v5_connect_with_properties_gets_the_server_limits_in_connack() {
    let t0 = Instant::now();
    let (hook, seen) = admission(Ok(None));
    let mut s = new_session5(t0).with_admission(hook);
    let props = props5(|p| {
        p.session_expiry_interval = Some(7200);
        p.receive_maximum = Some(10);
        p.max_packet_size = Some(4096);
        p.topic_alias_max = Some(3);
        p.user_properties = vec![("app".into(), "x".into())];
    });
    feed5(&mut s, &[connect5("c5", 30, props)], t0);
    let out = decode5(s.take_transmit());
    let ack = the_connack(&out);
    assert!(!ack.session_present);
    assert_eq!(ack.code, r5::ConnectReturnCode::Success);
    let p = connack_props(&out);
    assert_eq!(p.receive_max, Some(config().receive_maximum));
    assert_eq!(p.topic_alias_max, Some(config().topic_alias_max));
    let announced = p.max_packet_size.expect("Maximum Packet Size");
    assert!(
        usize::try_from(announced).expect("fits") > config().max_packet_size,
        "the whole packet, header included"
    );
    assert_eq!(p.session_expiry_interval, Some(3600), "capped and said so");
    assert_eq!(p.server_keep_alive, None, "30 s is allowed");
    assert_eq!(p.assigned_client_identifier, None);
    assert_eq!(p.authentication_method, None);
    assert_eq!(
        *seen.lock().expect("lock"),
        vec![("c5".to_owned(), true, true)]
    );
    assert_eq!(
        events(&mut s),
        vec![Event::Connected {
            client_id: "c5".into()
        }]
    );
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(45)));
    s.abort(CloseReason::ConnectionLost);
    assert_eq!(s.snapshot().0, 3600);

    // No session expiry asked: none in CONNACK, nothing kept.
    let (hook, seen) = admission(Ok(None));
    let mut s = new_session5(t0).with_admission(hook);
    feed5(&mut s, &[connect5("c5", 30, None)], t0);
    assert_eq!(
        connack_props(&decode5(s.take_transmit())).session_expiry_interval,
        None
    );
    assert_eq!(
        *seen.lock().expect("lock"),
        vec![("c5".to_owned(), true, false)]
    );
}

#[test]
fn v5_keep_alive_zero_or_too_long_gets_server_keep_alive() {
    let t0 = Instant::now();
    for (asked, used, announced) in [
        (0u16, 60u64, Some(60u16)),
        (600, 60, Some(60)),
        (61, 60, Some(60)),
        (60, 60, None),
        (5, 5, None),
    ] {
        let mut s = new_session5(t0);
        feed5(&mut s, &[connect5("c5", asked, None)], t0);
        let p = connack_props(&decode5(s.take_transmit()));
        assert_eq!(p.server_keep_alive, announced, "asked {asked}");
        assert_eq!(
            s.poll_timeout(),
            Some(t0 + Duration::from_millis(used * 1500)),
            "asked {asked}"
        );
    }
}

#[test]
fn v5_keep_alive_timeout_sends_disconnect_0x8d() {
    let t0 = Instant::now();
    let mut s = connected5(t0, None);
    s.handle_timeout(t0 + Duration::from_secs(45));
    assert_eq!(
        disconnect_code(&decode5(s.take_transmit())),
        r5::DisconnectReasonCode::KeepAliveTimeout
    );
    assert_eq!(
        events(&mut s),
        vec![Event::Closed(CloseReason::KeepAliveTimeout)]
    );
}

#[test]
fn v5_empty_client_id_gets_an_assigned_one() {
    let t0 = Instant::now();
    let (hook, seen) = admission(Ok(None));
    let mut s = new_session5(t0).with_admission(hook);
    feed5(
        &mut s,
        &[connect5(
            "",
            30,
            props5(|p| p.session_expiry_interval = Some(60)),
        )],
        t0,
    );
    let p = connack_props(&decode5(s.take_transmit()));
    let assigned = "cb-auto-00000000000000ab".to_owned();
    assert_eq!(p.assigned_client_identifier, Some(assigned.clone()));
    assert_eq!(
        events(&mut s),
        vec![Event::Connected {
            client_id: assigned.clone()
        }]
    );
    assert_eq!(
        *seen.lock().expect("lock"),
        vec![(assigned, true, true)],
        "an assigned id can hold a persistent session"
    );
}

#[test]
fn v5_refusals_carry_mqtt5_reason_codes() {
    let t0 = Instant::now();
    // Refused certificate: 0x87 with a reason string.
    let mut s = Session::new(Err("revoked".into()), config(), t0);
    feed5(&mut s, &[connect5("c5", 30, None)], t0);
    let out = decode5(s.take_transmit());
    let ack = the_connack(&out);
    assert_eq!(ack.code, r5::ConnectReturnCode::NotAuthorized);
    assert!(
        ack.properties
            .as_ref()
            .and_then(|p| p.reason_string.as_deref())
            .is_some_and(|r| r.contains("revoked"))
    );
    // ... unless the client asked for no problem information.
    let mut s = Session::new(Err("revoked".into()), config(), t0);
    feed5(
        &mut s,
        &[connect5(
            "c5",
            30,
            props5(|p| p.request_problem_info = Some(0)),
        )],
        t0,
    );
    let out = decode5(s.take_transmit());
    assert_eq!(the_connack(&out).code, r5::ConnectReturnCode::NotAuthorized);
    assert_eq!(
        the_connack(&out)
            .properties
            .as_ref()
            .and_then(|p| p.reason_string.clone()),
        None
    );

    // Admission refused: 0x97 quota exceeded.
    let (hook, _) = admission(Err("cap reached".into()));
    let mut s = new_session5(t0).with_admission(hook);
    feed5(&mut s, &[connect5("c5", 30, None)], t0);
    assert_eq!(
        the_connack(&decode5(s.take_transmit())).code,
        r5::ConnectReturnCode::QuotaExceeded
    );
    assert_eq!(
        events(&mut s),
        vec![Event::Closed(CloseReason::ConnectionCap(
            "cap reached".into()
        ))]
    );

    // Client id with control characters: 0x85.
    let mut s = new_session5(t0);
    feed5(&mut s, &[connect5("a\u{7}b", 30, None)], t0);
    assert_eq!(
        the_connack(&decode5(s.take_transmit())).code,
        r5::ConnectReturnCode::ClientIdentifierNotValid
    );

    // Protocol level 6 gets an MQTT 5 CONNACK 0x84.
    let mut s = new_session5(t0);
    let mut buf = encode5(&[connect5("c5", 30, None)]);
    assert_eq!(buf[8], 5);
    buf[8] = 6;
    s.handle_input(&mut buf, t0, &OwnPrefix);
    assert_eq!(
        the_connack(&decode5(s.take_transmit())).code,
        r5::ConnectReturnCode::UnsupportedProtocolVersion
    );
    assert_eq!(
        events(&mut s),
        vec![Event::Closed(CloseReason::ConnectRefused)]
    );
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
fn v5_subscription_options_and_identifier_reach_the_subscribe_event() {
    let t0 = Instant::now();
    let mut s = connected5(t0, None);
    let filter = |path: &str, qos, nolocal, preserve_retain, rule| r5::Filter {
        path: path.into(),
        qos,
        nolocal,
        preserve_retain,
        retain_forward_rule: rule,
    };
    use r5::RetainForwardRule::{Never, OnEverySubscribe, OnNewSubscribe};
    let mut subscribe = r5::Subscribe::new_many(
        [
            filter("own/a", R1, true, true, Never),
            filter("own/b", R2, false, false, OnNewSubscribe),
            filter("other/x", R1, false, false, OnEverySubscribe),
            filter("own/+x", R0, false, false, OnEverySubscribe),
            filter("own/c", R0, false, false, OnEverySubscribe),
            filter("$share/g/own/d", R1, false, false, OnEverySubscribe),
        ],
        Some(r5::SubscribeProperties {
            id: Some(9),
            user_properties: vec![],
        }),
    );
    subscribe.pkid = 3;
    feed5(&mut s, &[V5Packet::Subscribe(subscribe)], t0);
    let opts = |qos, no_local, retain_as_published| SubOpts {
        qos,
        no_local,
        retain_as_published,
        sub_id: Some(9),
    };
    assert_eq!(
        events(&mut s),
        vec![
            Event::SubscribeRefused("other/x".into()),
            Event::Subscribe(vec![
                ("own/a".into(), opts(Q1, true, true), false),
                ("own/b".into(), opts(Q2, false, false), true),
                ("own/c".into(), opts(Q0, false, false), true),
                // Never retained messages for a shared subscription.
                ("$share/g/own/d".into(), opts(Q1, false, false), false),
            ]),
        ]
    );
    use r5::SubscribeReasonCode as S;
    assert_eq!(
        decode5(s.take_transmit()),
        vec![V5Packet::SubAck(r5::SubAck {
            pkid: 3,
            return_codes: vec![
                S::Success(R1),
                S::Success(R2),
                S::NotAuthorized,
                S::TopicFilterInvalid,
                S::Success(R0),
                S::Success(R1),
            ],
            properties: None,
        })]
    );
    assert_eq!(s.subscription_count(), 4);

    // Subscribing again: "on new subscription" sends nothing now; the cap
    // (4) refuses a fifth filter with 0x97.
    let mut again = r5::Subscribe::new_many(
        [
            filter("own/b", R1, false, false, OnNewSubscribe),
            filter("own/c", R0, false, false, OnEverySubscribe),
            filter("own/e", R0, false, false, OnEverySubscribe),
        ],
        None,
    );
    again.pkid = 4;
    feed5(&mut s, &[V5Packet::Subscribe(again)], t0);
    assert_eq!(
        events(&mut s),
        vec![
            Event::SubscribeRefused("own/e".into()),
            Event::Subscribe(vec![
                ("own/b".into(), SubOpts::qos(Q1), false),
                ("own/c".into(), SubOpts::qos(Q0), true),
            ]),
        ]
    );
    assert_eq!(
        decode5(s.take_transmit()),
        vec![V5Packet::SubAck(r5::SubAck {
            pkid: 4,
            return_codes: vec![S::Success(R1), S::Success(R0), S::QuotaExceeded],
            properties: None,
        })]
    );

    // UNSUBACK says which subscriptions existed.
    let mut unsubscribe = r5::Unsubscribe::new("own/b", None);
    unsubscribe.filters.push("own/zzz".into());
    unsubscribe.pkid = 5;
    feed5(&mut s, &[V5Packet::Unsubscribe(unsubscribe)], t0);
    assert_eq!(
        events(&mut s),
        vec![Event::Unsubscribe(vec!["own/b".into(), "own/zzz".into()])]
    );
    assert_eq!(
        decode5(s.take_transmit()),
        vec![V5Packet::UnsubAck(r5::UnsubAck {
            pkid: 5,
            reasons: vec![
                r5::UnsubAckReason::Success,
                r5::UnsubAckReason::NoSubscriptionExisted
            ],
            properties: None,
        })]
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
fn v5_server_disconnects_say_why() {
    let t0 = Instant::now();
    let mut s = connected5(t0, None);
    s.abort(CloseReason::Server(
        "session taken over by a new connection",
    ));
    assert_eq!(
        disconnect_code(&decode5(s.take_transmit())),
        r5::DisconnectReasonCode::SessionTakenOver
    );
    let mut s = connected5(t0, None);
    s.abort(CloseReason::Server("revoked"));
    assert_eq!(
        disconnect_code(&decode5(s.take_transmit())),
        r5::DisconnectReasonCode::AdministrativeAction
    );
    assert_eq!(
        events(&mut s),
        vec![Event::Closed(CloseReason::Server("revoked"))]
    );
    // Certificate expiry: 0x87.
    let mut s = new_session5(t0).with_expiry(Some(t0 + Duration::from_secs(5)));
    feed5(&mut s, &[connect5("c5", 30, None)], t0);
    let _ = s.take_transmit();
    s.handle_timeout(t0 + Duration::from_secs(5));
    assert_eq!(
        disconnect_code(&decode5(s.take_transmit())),
        r5::DisconnectReasonCode::NotAuthorized
    );
    // A second CONNECT: protocol error.
    let mut s = connected5(t0, None);
    feed5(&mut s, &[connect5("c5", 30, None)], t0);
    assert_eq!(
        disconnect_code(&decode5(s.take_transmit())),
        r5::DisconnectReasonCode::ProtocolError
    );
    // Invalid UTF-8: malformed packet.
    let mut s = connected5(t0, None);
    let mut input = raw_publish(b"own/\xff");
    s.handle_input(&mut input, t0, &OwnPrefix);
    assert_eq!(
        disconnect_code(&decode5(s.take_transmit())),
        r5::DisconnectReasonCode::MalformedPacket
    );
    assert_eq!(
        events(&mut s),
        vec![Event::Closed(CloseReason::InvalidTopic(
            "not valid UTF-8".into()
        ))]
    );
}

// ------------------------------------------------ RFC 9431 access tokens

fn ace(token: &[u8]) -> Option<r5::ConnectProperties> {
    let token = Bytes::copy_from_slice(token);
    props5(move |p| {
        p.authentication_method = Some("ace".into());
        p.authentication_data = Some(token);
    })
}

fn auth_packet(code: u8, method: Option<&str>, token: Option<&[u8]>) -> Packet {
    Packet::Auth(Reasoned {
        code,
        props: Properties {
            auth_method: method.map(str::to_owned),
            auth_data: token.map(Bytes::copy_from_slice),
            ..Properties::default()
        },
    })
}

/// A session connected at `t0` with the token `good` (60 s), keep-alive 60.
fn connected_with_token(t0: Instant) -> Session {
    let mut s = new_session5(t0);
    feed5(&mut s, &[connect5("c5", 60, ace(b"good"))], t0);
    let out = decode5(s.take_transmit());
    let ack = the_connack(&out);
    assert_eq!(ack.code, r5::ConnectReturnCode::Success);
    assert_eq!(
        ack.properties
            .as_ref()
            .and_then(|p| p.authentication_method.as_deref()),
        Some("ace"),
        "the method is echoed"
    );
    assert_eq!(
        events(&mut s),
        vec![
            Event::TokenAccepted(b"t1".to_vec()),
            Event::Connected {
                client_id: "c5".into()
            }
        ]
    );
    s
}

#[test]
fn ace_token_at_connect_is_accepted() {
    let t0 = Instant::now();
    let s = connected_with_token(t0);
    // The token (60 s) ends the session before keep-alive (90 s) would.
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(60)));
    // RFC 9431 framing: a two-byte length before the token.
    let mut s = new_session5(t0);
    feed5(&mut s, &[connect5("c5", 60, ace(b"\x00\x04good"))], t0);
    assert_eq!(
        the_connack(&decode5(s.take_transmit())).code,
        r5::ConnectReturnCode::Success
    );
}

#[test]
fn ace_refusals_at_connect() {
    let t0 = Instant::now();
    // Another method: 0x8C.
    let mut s = new_session5(t0);
    let scram = props5(|p| p.authentication_method = Some("SCRAM-SHA-1".into()));
    feed5(&mut s, &[connect5("c5", 60, scram)], t0);
    assert_eq!(
        the_connack(&decode5(s.take_transmit())).code,
        r5::ConnectReturnCode::BadAuthenticationMethod
    );
    assert_eq!(
        events(&mut s),
        vec![Event::Closed(CloseReason::ConnectRefused)]
    );
    // A token the authorizer refuses: 0x87.
    let mut s = new_session5(t0);
    feed5(&mut s, &[connect5("c5", 60, ace(b"forged"))], t0);
    assert_eq!(
        the_connack(&decode5(s.take_transmit())).code,
        r5::ConnectReturnCode::NotAuthorized
    );
    assert_eq!(
        events(&mut s),
        vec![
            Event::AuthRefused("token refused".into()),
            Event::Closed(CloseReason::NotAuthorized)
        ]
    );
    // No Authentication Data, or more than the token.
    for data in [&b""[..], b"\x00\x02goodproof"] {
        let mut s = new_session5(t0);
        let props = props5(|p| {
            p.authentication_method = Some("ace".into());
            p.authentication_data = (!data.is_empty()).then(|| Bytes::copy_from_slice(data));
        });
        feed5(&mut s, &[connect5("c5", 60, props)], t0);
        assert_eq!(
            the_connack(&decode5(s.take_transmit())).code,
            r5::ConnectReturnCode::NotAuthorized,
            "{data:?}"
        );
    }
    // No client certificate to bind the token to.
    let mut s = new_session(t0);
    feed5(&mut s, &[connect5("c5", 60, ace(b"good"))], t0);
    assert_eq!(
        the_connack(&decode5(s.take_transmit())).code,
        r5::ConnectReturnCode::NotAuthorized
    );
    assert!(matches!(
        &events(&mut s)[..],
        [Event::AuthRefused(why), Event::Closed(CloseReason::NotAuthorized)] if why.contains("certificate")
    ));
}

#[test]
fn ace_token_rights_add_to_the_acl() {
    let t0 = Instant::now();
    let mut s = connected_with_token(t0);
    // Publish filter tok/+/up matches topic names.
    feed5(
        &mut s,
        &[
            publish5("tok/x/up", R1, 1, None),
            publish5("own/t", R1, 2, None),
            publish5("tok/x/down", R1, 3, None),
            publish5("tok/x/y/up", R1, 4, None),
        ],
        t0,
    );
    assert_eq!(
        events(&mut s),
        vec![
            Event::Publish(msg("tok/x/up", Q1)),
            Event::Publish(msg("own/t", Q1)),
            Event::PublishRefused("tok/x/down".into()),
            Event::PublishRefused("tok/x/y/up".into()),
        ]
    );
    let reasons: Vec<(u16, r5::PubAckReason)> = decode5(s.take_transmit())
        .into_iter()
        .map(|p| match p {
            V5Packet::PubAck(a) => (a.pkid, a.reason),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    use r5::PubAckReason::{NotAuthorized, Success};
    assert_eq!(
        reasons,
        vec![
            (1, Success),
            (2, Success),
            (3, NotAuthorized),
            (4, NotAuthorized)
        ]
    );
    // Subscribe filter tok/# covers the filters asked, not wider ones.
    let mut subscribe = r5::Subscribe::new_many(
        [
            r5::Filter::new("tok/a/+", R1),
            r5::Filter::new("tok", R0),
            r5::Filter::new("#", R0),
            r5::Filter::new("+/a", R0),
        ],
        None,
    );
    subscribe.pkid = 5;
    feed5(&mut s, &[V5Packet::Subscribe(subscribe)], t0);
    use r5::SubscribeReasonCode as S;
    assert_eq!(
        decode5(s.take_transmit()),
        vec![V5Packet::SubAck(r5::SubAck {
            pkid: 5,
            return_codes: vec![
                S::Success(R1),
                S::Success(R0),
                S::NotAuthorized,
                S::NotAuthorized
            ],
            properties: None,
        })]
    );
    // Without a token: the ACL alone.
    let mut s = connected5(t0, None);
    feed5(&mut s, &[publish5("tok/x/up", R1, 1, None)], t0);
    assert_eq!(
        events(&mut s),
        vec![Event::PublishRefused("tok/x/up".into())]
    );
}

#[test]
fn ace_session_ends_when_the_token_expires() {
    let t0 = Instant::now();
    let mut s = connected_with_token(t0);
    s.handle_timeout(t0 + Duration::from_secs(59));
    assert!(s.is_connected());
    s.handle_timeout(t0 + Duration::from_secs(60));
    let out = decode5(s.take_transmit());
    assert_eq!(
        disconnect_code(&out),
        r5::DisconnectReasonCode::NotAuthorized
    );
    assert!(disconnect_reason_string(&out).is_some_and(|r| r.contains("expired")));
    assert_eq!(
        events(&mut s),
        vec![Event::Closed(CloseReason::TokenExpired)]
    );
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn ace_reauthentication_extends_the_session() {
    let t0 = Instant::now();
    let mut s = connected_with_token(t0);
    let t1 = t0 + Duration::from_secs(50);
    feed_ours(&mut s, &auth_packet(0x19, Some("ace"), Some(b"fresh")), t1);
    let out = decode_out(s.take_transmit());
    let [Out::Auth(answer)] = &out[..] else {
        panic!("one AUTH, got {out:?}")
    };
    assert_eq!(answer.code, reason::SUCCESS);
    assert_eq!(answer.props.auth_method.as_deref(), Some("ace"));
    assert_eq!(events(&mut s), vec![Event::TokenAccepted(b"t2".to_vec())]);
    // Past the first token's expiry: still connected.
    s.handle_timeout(t0 + Duration::from_secs(61));
    assert!(s.is_connected());
    // The fresh token (120 s from t1) ends it unless renewed again; keep
    // the connection alive meanwhile.
    feed5(
        &mut s,
        &[V5Packet::PingReq(r5::PingReq)],
        t1 + Duration::from_secs(80),
    );
    assert_eq!(
        decode5(s.take_transmit()),
        vec![V5Packet::PingResp(r5::PingResp)]
    );
    assert_eq!(s.poll_timeout(), Some(t1 + Duration::from_secs(120)));
    s.handle_timeout(t1 + Duration::from_secs(120));
    assert_eq!(
        disconnect_code(&decode5(s.take_transmit())),
        r5::DisconnectReasonCode::NotAuthorized
    );
    assert_eq!(
        events(&mut s),
        vec![Event::Closed(CloseReason::TokenExpired)]
    );
}

#[test]
fn ace_reauthentication_with_a_narrower_token_drops_subscriptions() {
    let t0 = Instant::now();
    let mut s = connected_with_token(t0);
    let mut subscribe = r5::Subscribe::new_many(
        [
            r5::Filter::new("tok/a/+", R1),
            r5::Filter::new("tok/b", R1),
            r5::Filter::new("own/x", R1),
        ],
        None,
    );
    subscribe.pkid = 1;
    feed5(&mut s, &[V5Packet::Subscribe(subscribe)], t0);
    let _ = (s.take_transmit(), events(&mut s));
    feed_ours(&mut s, &auth_packet(0x19, Some("ace"), Some(b"narrow")), t0);
    assert_eq!(
        events(&mut s),
        vec![
            Event::TokenAccepted(b"t3".to_vec()),
            Event::Unsubscribe(vec!["tok/b".into()])
        ]
    );
    assert_eq!(s.subscription_count(), 2, "tok/a/+ and own/x stay");
    assert!(matches!(
        &decode_out(s.take_transmit())[..],
        [Out::Auth(a)] if a.code == reason::SUCCESS
    ));
}

#[test]
fn ace_refused_reauthentication_disconnects_0x87() {
    let t0 = Instant::now();
    let mut s = connected_with_token(t0);
    feed_ours(&mut s, &auth_packet(0x19, Some("ace"), Some(b"forged")), t0);
    assert_eq!(
        disconnect_code(&decode5(s.take_transmit())),
        r5::DisconnectReasonCode::NotAuthorized
    );
    assert_eq!(
        events(&mut s),
        vec![
            Event::AuthRefused("token refused".into()),
            Event::Closed(CloseReason::NotAuthorized)
        ]
    );
}

#[test]
fn auth_protocol_errors_disconnect_0x82() {
    let t0 = Instant::now();
    // AUTH on a session that did not authenticate with a method.
    let mut s = connected5(t0, None);
    feed_ours(&mut s, &auth_packet(0x19, Some("ace"), Some(b"good")), t0);
    assert_eq!(
        disconnect_code(&decode5(s.take_transmit())),
        r5::DisconnectReasonCode::ProtocolError
    );
    assert!(matches!(
        events(&mut s)[..],
        [Event::Closed(CloseReason::Protocol(_))]
    ));
    // Another method than at CONNECT, or no method.
    for method in [Some("other"), None] {
        let mut s = connected_with_token(t0);
        feed_ours(&mut s, &auth_packet(0x19, method, Some(b"fresh")), t0);
        assert_eq!(
            disconnect_code(&decode5(s.take_transmit())),
            r5::DisconnectReasonCode::ProtocolError,
            "{method:?}"
        );
    }
    // A reason code other than Re-authenticate from the client.
    let mut s = connected_with_token(t0);
    feed_ours(&mut s, &auth_packet(0x18, Some("ace"), Some(b"fresh")), t0);
    assert_eq!(
        disconnect_code(&decode5(s.take_transmit())),
        r5::DisconnectReasonCode::ProtocolError
    );
    // AUTH before CONNECT: closed without an answer.
    let mut s = new_session5(t0);
    feed_ours(&mut s, &auth_packet(0x19, Some("ace"), Some(b"good")), t0);
    assert!(s.is_closed());
    assert!(s.take_transmit().is_empty());
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

#[test]

fn v5_a_second_connect_with_another_version_is_a_protocol_error() {
    let t0 = Instant::now();
    let mut s = connected5(t0, None);
    let mut buf = encode5(&[connect5("c5", 30, None)]);
    buf[8] = 6;
    s.handle_input(&mut buf, t0, &OwnPrefix);
    // Read with our codec: rumqttc refuses the reason code 0x84 in a DISCONNECT.
    let mut out = s.take_transmit();
    let packet = wire::read(&mut out, Level::V5, usize::MAX);
    assert!(
        matches!(&packet, Ok(Some(Packet::Disconnect(d))) if d.code == reason::PROTOCOL_ERROR),
        "{packet:?}"
    );
}
