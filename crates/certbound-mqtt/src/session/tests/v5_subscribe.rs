//! MQTT 5: subscription options and identifiers.

use super::*;

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
