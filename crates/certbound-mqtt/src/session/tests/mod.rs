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

mod ace;
mod v311_connect;
mod v311_pubsub;
mod v5_connect;
mod v5_flow;
mod v5_session;
mod v5_subscribe;

pub(super) const Q0: QoS = QoS::AtMostOnce;
pub(super) const Q1: QoS = QoS::AtLeastOnce;
pub(super) const Q2: QoS = QoS::ExactlyOnce;
pub(super) const R0: QoS5 = QoS5::AtMostOnce;
pub(super) const R1: QoS5 = QoS5::AtLeastOnce;
pub(super) const R2: QoS5 = QoS5::ExactlyOnce;

/// The client certificate the session binds tokens to (the stub
/// authorizer only compares bytes).
pub(super) const CERT: &[u8] = b"client certificate DER";

/// Allows `own/...` to everyone (and the share group `g` on it), nothing
/// else; accepts the tokens `good`, `fresh` and `narrow`.
pub(super) struct OwnPrefix;

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

pub(super) fn config() -> SessionConfig {
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

pub(super) fn new_session(t0: Instant) -> Session {
    Session::new(Ok(Identity::Device("d".into())), config(), t0)
}

pub(super) fn events(s: &mut Session) -> Vec<Event> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

pub(super) fn msg(topic: &str, qos: QoS) -> Message {
    Message::new(topic, Bytes::from_static(b"hello"), qos)
}

// ------------------------------------------------------------ MQTT 3.1.1

pub(super) fn encode(packets: &[V4Packet]) -> BytesMut {
    let mut buf = BytesMut::new();
    for p in packets {
        p.write(&mut buf, usize::MAX).expect("encodable");
    }
    buf
}

pub(super) fn decode(mut buf: BytesMut) -> Vec<V4Packet> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        out.push(V4Packet::read(&mut buf, usize::MAX).expect("server output decodes"));
    }
    out
}

pub(super) fn feed(s: &mut Session, packets: &[V4Packet], now: Instant) {
    let mut buf = encode(packets);
    s.handle_input(&mut buf, now, &OwnPrefix);
    assert!(buf.is_empty());
}

pub(super) fn connect_packet(keep_alive: u16) -> V4Packet {
    let mut c = Connect::new("client-1");
    c.keep_alive = keep_alive;
    V4Packet::Connect(c)
}

pub(super) fn connack(code: ConnectReturnCode, session_present: bool) -> V4Packet {
    V4Packet::ConnAck(ConnAck::new(code, session_present))
}

/// A connected session at `t0`, with the CONNECT exchange drained.
pub(super) fn connected(t0: Instant, keep_alive: u16) -> Session {
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

pub(super) fn publish(topic: &str, qos: QoS, pkid: u16) -> V4Packet {
    let mut p = Publish::new(topic, qos, b"hello".to_vec());
    p.pkid = pkid;
    V4Packet::Publish(p)
}

/// rumqttc leaves packet ids to its client state: 0 until set, which the
/// server refuses (§2.2.1).
pub(super) fn subscribe(filters: &[(&str, QoS)]) -> V4Packet {
    let mut subscribe = Subscribe::new_many(
        filters
            .iter()
            .map(|(f, q)| SubscribeFilter::new((*f).to_string(), *q)),
    );
    subscribe.pkid = 1;
    V4Packet::Subscribe(subscribe)
}

pub(super) fn unsubscribe(filter: &str) -> V4Packet {
    let mut unsubscribe = Unsubscribe::new(filter);
    unsubscribe.pkid = 2;
    V4Packet::Unsubscribe(unsubscribe)
}

pub(super) type Requests = Arc<std::sync::Mutex<Vec<(String, bool, bool)>>>;

/// An admission hook that records each request and answers `answer`.
pub(super) fn admission(answer: Result<Option<Snapshot>, String>) -> (Admission, Requests) {
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

/// A PUBLISH packet with raw topic bytes (the codec cannot encode invalid UTF-8).
pub(super) fn raw_publish(topic: &[u8]) -> BytesMut {
    let mut body = Vec::new();
    body.extend_from_slice(&u16::try_from(topic.len()).expect("short").to_be_bytes());
    body.extend_from_slice(topic);
    body.extend_from_slice(b"payload");
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&[0x30, u8::try_from(body.len()).expect("short")]);
    buf.extend_from_slice(&body);
    buf
}

// ------------------------------------------------------------------ MQTT 5

pub(super) fn encode5(packets: &[V5Packet]) -> BytesMut {
    let mut buf = BytesMut::new();
    for p in packets {
        p.write(&mut buf, None).expect("encodable");
    }
    buf
}

/// A server packet, read by rumqttc's v5 codec where it can, by ours for AUTH.
#[derive(Debug)]
pub(super) enum Out {
    Mqtt(V5Packet),
    Auth(wire::Reasoned),
}

pub(super) fn decode_out(mut buf: BytesMut) -> Vec<Out> {
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

pub(super) fn decode5(buf: BytesMut) -> Vec<V5Packet> {
    decode_out(buf)
        .into_iter()
        .map(|o| match o {
            Out::Mqtt(p) => p,
            Out::Auth(a) => panic!("unexpected AUTH {a:?}"),
        })
        .collect()
}

pub(super) fn feed5(s: &mut Session, packets: &[V5Packet], now: Instant) {
    let mut buf = encode5(packets);
    s.handle_input(&mut buf, now, &OwnPrefix);
    assert!(buf.is_empty());
}

pub(super) fn new_session5(t0: Instant) -> Session {
    new_session(t0).with_peer_cert(Some(Arc::from(CERT)), 0xab)
}

pub(super) fn connect5(
    client_id: &str,
    keep_alive: u16,
    props: Option<r5::ConnectProperties>,
) -> V5Packet {
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

pub(super) fn props5(f: impl FnOnce(&mut r5::ConnectProperties)) -> Option<r5::ConnectProperties> {
    let mut p = r5::ConnectProperties::new();
    f(&mut p);
    Some(p)
}

pub(super) fn the_connack(out: &[V5Packet]) -> &r5::ConnAck {
    match out {
        [V5Packet::ConnAck(ack)] => ack,
        other => panic!("expected one CONNACK, got {other:?}"),
    }
}

pub(super) fn connack_props(out: &[V5Packet]) -> r5::ConnAckProperties {
    the_connack(out)
        .properties
        .clone()
        .expect("CONNACK properties")
}

/// A connected MQTT 5 session at `t0` (client id `c5`, keep-alive 30),
/// with the CONNECT exchange drained.
pub(super) fn connected5(t0: Instant, props: Option<r5::ConnectProperties>) -> Session {
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

pub(super) fn publish5(
    topic: &str,
    qos: QoS5,
    pkid: u16,
    props: Option<r5::PublishProperties>,
) -> V5Packet {
    let mut p = r5::Publish::new(topic, qos, Bytes::from_static(b"hello"), props);
    p.pkid = pkid;
    V5Packet::Publish(p)
}

pub(super) fn disconnect_code(out: &[V5Packet]) -> r5::DisconnectReasonCode {
    match out {
        [V5Packet::Disconnect(d)] => d.reason_code,
        other => panic!("expected one DISCONNECT, got {other:?}"),
    }
}

pub(super) fn disconnect_reason_string(out: &[V5Packet]) -> Option<String> {
    match out {
        [V5Packet::Disconnect(d)] => d.properties.as_ref().and_then(|p| p.reason_string.clone()),
        other => panic!("expected one DISCONNECT, got {other:?}"),
    }
}

pub(super) fn puback5(pkid: u16) -> V5Packet {
    V5Packet::PubAck(r5::PubAck::new(pkid, None))
}

/// The PUBLISH packets in `out`: (topic, pkid, QoS, dup, topic alias).
pub(super) fn publishes(out: &[V5Packet]) -> Vec<(String, u16, QoS5, bool, Option<u16>)> {
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
