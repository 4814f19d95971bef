//! The sans-IO session driven by arbitrary bytes, for the `mqtt_session`
//! fuzz target and its corpus replay test. Not part of the stable API.
//!
//! Input layout: byte 0 picks the identity (device `sensor-1`, the broker,
//! another service, a claim holder) and whether the shell's admission hook
//! refuses the CONNECT; byte 1 the read chunk size (1..=64 bytes, to
//! exercise reassembly); the rest is the byte stream from the client. Time
//! advances one second per chunk (the certificate expires after 40 s).
//!
//! Properties checked (a violation panics):
//! * nothing the ACL forbids is routed or subscribed: every `Publish` event
//!   has a valid topic the identity may publish to, every `Subscribe` filter
//!   is valid and allowed;
//! * a session never holds more subscriptions than its cap;
//! * nothing is routed or subscribed after the session closed, and the
//!   session is closed once the certificate expired;
//! * everything the server writes is a well-formed packet of the session's
//!   version (3.1.1: read back with rumqttc's codec, an implementation we
//!   did not write; MQTT 5: with ours, which knows AUTH).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rumqttc::QoS;
use rumqttc::mqttbytes::v4::Packet;

use crate::identity::{Authorizer, Identity};
use crate::message::Message;
use crate::router::Router;
use crate::session::{AdmitRequest, Event, Session, SessionConfig};
use crate::topic::{parse_filter, valid_topic};
use crate::wire::{self, Level};
use crate::{BROKER_SHARE_GROUP, CertboundAcl};

const BROKER: &str = "certbound-broker";
const MAX_SUBSCRIPTIONS: usize = 8;

/// Runs one input; panics when a property above is violated.
pub fn session(data: &[u8]) {
    let (mode, chunk, stream) = match data {
        [mode, chunk, rest @ ..] => (*mode, usize::from(*chunk % 64) + 1, rest),
        _ => return,
    };
    let identity = match mode % 4 {
        0 => Identity::Device("sensor-1".into()),
        1 => Identity::Service(BROKER.into()),
        2 => Identity::Service("ingest".into()),
        _ => Identity::Claim("claim-c1".into()),
    };
    let refuse_connect = mode & 0x80 != 0;
    let acl = CertboundAcl::new().with_broker(BROKER);
    let t0 = Instant::now();
    let expires = t0 + Duration::from_secs(40);
    let config = SessionConfig {
        max_packet_size: 64 * 1024,
        connect_timeout: Duration::from_secs(10),
        max_inflight: 4,
        max_subscriptions: MAX_SUBSCRIPTIONS,
        receive_maximum: 4,
        topic_alias_max: 4,
        max_keep_alive: 60,
        max_session_expiry: 60,
    };
    let mut session = Session::new(Ok(identity.clone()), config, t0)
        .with_expiry(Some(expires))
        .with_admission(Box::new(move |_: &AdmitRequest<'_>| {
            if refuse_connect {
                Err("cap".into())
            } else {
                Ok(None)
            }
        }));
    let mut router = Router::default();
    let mut subscribed: HashSet<String> = HashSet::new();
    let mut closed = false;
    let mut input = BytesMut::new();
    let mut now = t0;
    let mut out = Vec::new();
    let delivery = Message::new(
        "cb/v1/sensor-1/token/res",
        Bytes::from_static(b"answer"),
        QoS::AtLeastOnce,
    );
    for piece in stream.chunks(chunk) {
        now += Duration::from_secs(1);
        input.extend_from_slice(piece);
        session.handle_input(&mut input, now, &acl);
        session.handle_timeout(now);
        if session.can_deliver() {
            session.deliver(&delivery, now);
        }
        while let Some(event) = session.poll_event() {
            match event {
                Event::Publish(message) => {
                    assert!(!closed, "routed after the close");
                    assert!(valid_topic(&message.topic), "invalid topic routed");
                    assert!(
                        acl.may_publish(&identity, &message.topic),
                        "{identity} routed to {:?}",
                        message.topic
                    );
                    router.route(&message.topic, 1, &|_| true, &mut out);
                }
                Event::Subscribe(filters) => {
                    assert!(!closed, "subscribed after the close");
                    for (filter, opts, _) in filters {
                        assert!(parse_filter(&filter).is_some(), "invalid filter granted");
                        assert!(
                            acl.may_subscribe(&identity, &filter),
                            "{identity} subscribed to {filter:?}"
                        );
                        if let Some(share) = filter.strip_prefix("$share/") {
                            assert!(
                                !share.starts_with(&format!("{BROKER_SHARE_GROUP}/"))
                                    || identity == Identity::Service(BROKER.into()),
                                "{identity} joined the broker's share group"
                            );
                        }
                        assert!(router.subscribe(1, &filter, opts));
                        subscribed.insert(filter);
                    }
                    assert!(
                        subscribed.len() <= MAX_SUBSCRIPTIONS,
                        "subscription cap passed"
                    );
                }
                Event::Unsubscribe(filters) => {
                    for filter in filters {
                        router.unsubscribe(1, &filter);
                        subscribed.remove(&filter);
                    }
                }
                Event::Closed(_) => closed = true,
                Event::Connected { .. }
                | Event::TokenAccepted(_)
                | Event::PublishRefused(_)
                | Event::SubscribeRefused(_)
                | Event::AuthRefused(_) => {}
            }
        }
        let mut written = session.take_transmit();
        while !written.is_empty() {
            let read = match session.level() {
                Level::V311 => Packet::read(&mut written, usize::MAX)
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                Level::V5 => match wire::read(&mut written, Level::V5, usize::MAX) {
                    Ok(Some(_)) => Ok(()),
                    Ok(None) => Err("a truncated packet".to_owned()),
                    Err(e) => Err(e.to_string()),
                },
            };
            if let Err(e) = read {
                panic!("the server wrote a malformed packet: {e}");
            }
        }
        if now >= expires {
            assert!(session.is_closed(), "session outlived its certificate");
        }
    }
    let _ = session.take_will();
    router.remove_conn(1);
}
