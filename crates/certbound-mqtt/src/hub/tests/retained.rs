//! Retained messages: storing, sending on subscribe, deleting, expiry
//! and bounds.

use super::*;

fn payload_of(m: &Message) -> &[u8] {
    &m.payload
}

fn retained(topic: &str, payload: &'static [u8], qos: QoS) -> Message {
    Message {
        retain: true,
        ..with_payload(topic, payload, qos)
    }
}

#[test]
fn retained_messages_are_stored_and_sent_on_subscribe() {
    let t0 = now();
    let mut hub = Hub::new();
    hub.route(&retained("r/1", b"one", QoS::AtLeastOnce), NO_ONE, t0);
    hub.route(&retained("r/2", b"two", QoS::AtMostOnce), NO_ONE, t0);
    hub.route(
        &with_payload("r/3", b"not retained", QoS::AtMostOnce),
        NO_ONE,
        t0,
    );
    assert_eq!(hub.counts().retained, 2);

    // Sent with the retain flag, at the granted QoS, with the subscription id.
    let (mut rx1, _k1) = add(&mut hub, 1, "a", 8);
    let opts = SubOpts {
        sub_id: Some(5),
        ..SubOpts::qos(QoS::AtMostOnce)
    };
    hub.subscribe(1, &[("r/+".into(), opts, true)], t0);
    let mut got = drain(&mut rx1);
    got.sort_by(|a, b| a.topic.cmp(&b.topic));
    assert_eq!(
        got,
        vec![
            Message {
                qos: QoS::AtMostOnce,
                sub_ids: vec![5],
                ..retained("r/1", b"one", QoS::AtLeastOnce)
            },
            Message {
                sub_ids: vec![5],
                ..retained("r/2", b"two", QoS::AtMostOnce)
            },
        ]
    );
    // Not when the subscription asks for none.
    let (mut rx2, _k2) = add(&mut hub, 2, "b", 8);
    hub.subscribe(
        2,
        &[("r/1".into(), SubOpts::qos(QoS::AtLeastOnce), false)],
        t0,
    );
    assert!(drain(&mut rx2).is_empty());
    // `#` from the root does not match `$` topics.
    hub.route(&retained("$SYS/x", b"sys", QoS::AtMostOnce), NO_ONE, t0);
    let (mut rx3, _k3) = add(&mut hub, 3, "c", 8);
    hub.subscribe(3, &[("#".into(), SubOpts::qos(QoS::AtLeastOnce), true)], t0);
    assert_eq!(drain(&mut rx3).len(), 2);
}

#[test]
fn retained_flag_on_live_copies_follows_retain_as_published() {
    let t0 = now();
    let mut hub = Hub::new();
    let (mut plain, _k1) = add(&mut hub, 1, "a", 8);
    let (mut rap, _k2) = add(&mut hub, 2, "b", 8);
    hub.subscribe(1, &[("r".into(), SubOpts::qos(QoS::AtMostOnce), false)], t0);
    let opts = SubOpts {
        retain_as_published: true,
        ..SubOpts::qos(QoS::AtMostOnce)
    };
    hub.subscribe(2, &[("r".into(), opts, false)], t0);
    hub.route(&retained("r", b"x", QoS::AtMostOnce), NO_ONE, t0);
    assert_eq!(
        drain(&mut plain)
            .iter()
            .map(|m| m.retain)
            .collect::<Vec<_>>(),
        [false]
    );
    assert_eq!(
        drain(&mut rap).iter().map(|m| m.retain).collect::<Vec<_>>(),
        [true]
    );
}

#[test]
fn an_empty_retained_payload_deletes_the_retained_message() {
    let t0 = now();
    let mut hub = Hub::new();
    let (mut live, _k1) = add(&mut hub, 1, "a", 8);
    hub.subscribe(
        1,
        &[("r/#".into(), SubOpts::qos(QoS::AtMostOnce), false)],
        t0,
    );
    hub.route(&retained("r/1", b"one", QoS::AtMostOnce), NO_ONE, t0);
    hub.route(&retained("r/2", b"two", QoS::AtMostOnce), NO_ONE, t0);
    assert_eq!(hub.counts().retained, 2);
    hub.route(&retained("r/1", b"", QoS::AtMostOnce), NO_ONE, t0);
    assert_eq!(hub.counts().retained, 1);
    // The empty message still reaches current subscribers.
    assert_eq!(
        drain(&mut live).iter().map(payload_of).collect::<Vec<_>>(),
        [&b"one"[..], b"two", b""]
    );
    let (mut late, _k2) = add(&mut hub, 2, "b", 8);
    hub.subscribe(
        2,
        &[("r/#".into(), SubOpts::qos(QoS::AtMostOnce), true)],
        t0,
    );
    assert_eq!(
        drain(&mut late)
            .iter()
            .map(|m| m.topic.to_string())
            .collect::<Vec<_>>(),
        ["r/2"]
    );
    // Deleting what is not there is fine.
    hub.route(&retained("r/none", b"", QoS::AtMostOnce), NO_ONE, t0);
    assert_eq!(hub.counts().retained_refused, 0);
}

#[test]
fn expired_retained_messages_are_not_sent() {
    let t0 = now();
    let mut hub = Hub::new();
    let short = Message {
        expires: Some(t0 + secs(1)),
        ..retained("r/short", b"s", QoS::AtMostOnce)
    };
    hub.route(&short, NO_ONE, t0);
    hub.route(&retained("r/long", b"l", QoS::AtMostOnce), NO_ONE, t0);
    let (mut rx, _k) = add(&mut hub, 1, "a", 8);
    hub.subscribe(
        1,
        &[("r/+".into(), SubOpts::qos(QoS::AtMostOnce), true)],
        t0 + secs(1),
    );
    assert_eq!(
        drain(&mut rx)
            .iter()
            .map(|m| m.topic.to_string())
            .collect::<Vec<_>>(),
        ["r/long"]
    );
    assert_eq!(hub.counts().retained, 1, "the expired one is dropped");
}

#[test]
fn the_retained_store_is_bounded() {
    let t0 = now();
    let mut hub = Hub::with_limits(HubLimits {
        retained: RetainedLimits {
            count: 2,
            bytes: 10,
        },
        ..HubLimits::default()
    });
    let (mut rx, _k) = add(&mut hub, 1, "a", 8);
    hub.subscribe(1, &[("#".into(), SubOpts::qos(QoS::AtMostOnce), false)], t0);
    hub.route(&retained("a", b"1234", QoS::AtMostOnce), NO_ONE, t0);
    hub.route(&retained("b", b"1234", QoS::AtMostOnce), NO_ONE, t0);
    // A third topic: over the count. Routed, not retained.
    assert_eq!(
        hub.route(&retained("c", b"1", QoS::AtMostOnce), NO_ONE, t0)
            .delivered,
        1
    );
    assert_eq!(
        (hub.counts().retained, hub.counts().retained_refused),
        (2, 1)
    );
    // Replacing counts the difference: 6 + 4 = 10 bytes fit, 6 + 5 do not.
    hub.route(&retained("a", b"123456", QoS::AtMostOnce), NO_ONE, t0);
    assert_eq!(hub.counts().retained_refused, 1);
    hub.route(&retained("b", b"12345", QoS::AtMostOnce), NO_ONE, t0);
    assert_eq!(hub.counts().retained_refused, 2);
    assert_eq!(drain(&mut rx).len(), 5, "every message was routed");
    // Deleting makes room.
    hub.route(&retained("a", b"", QoS::AtMostOnce), NO_ONE, t0);
    hub.route(&retained("c", b"1", QoS::AtMostOnce), NO_ONE, t0);
    assert_eq!(
        (hub.counts().retained, hub.counts().retained_refused),
        (2, 2)
    );
    let (mut late, _k2) = add(&mut hub, 2, "b", 8);
    hub.subscribe(2, &[("+".into(), SubOpts::qos(QoS::AtMostOnce), true)], t0);
    let mut got: Vec<(String, Vec<u8>)> = drain(&mut late)
        .into_iter()
        .map(|m| (m.topic.to_string(), m.payload.to_vec()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![("b".into(), b"1234".to_vec()), ("c".into(), b"1".to_vec())],
        "the refused replacement left the old message"
    );
}

#[test]

fn many_retained_messages_do_not_drop_the_subscriber() {
    let t0 = now();
    let mut hub = Hub::new();
    for topic in ["r/1", "r/2", "r/3"] {
        hub.route(&retained(topic, b"x", QoS::AtMostOnce), NO_ONE, t0);
    }
    let (mut rx, kill) = add(&mut hub, 1, "a", 2);
    hub.subscribe(
        1,
        &[("r/+".into(), SubOpts::qos(QoS::AtMostOnce), true)],
        t0,
    );
    assert!(
        !killed(&kill),
        "a new subscription is dropped as a slow client"
    );
    assert!(!drain(&mut rx).is_empty());
}
