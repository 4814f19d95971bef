//! Live connections: delivery, slow clients, takeover, caps and
//! disconnecting by certificate or token.

use super::*;

#[test]
fn delivers_at_the_lower_qos() {
    let mut hub = Hub::new();
    let (mut rx1, _) = add(&mut hub, 1, "a", 4);
    let (mut rx2, _) = add(&mut hub, 2, "b", 4);
    hub.subscribe(
        1,
        &[("t".into(), SubOpts::qos(QoS::AtLeastOnce), false)],
        now(),
    );
    hub.subscribe(
        2,
        &[("t".into(), SubOpts::qos(QoS::AtMostOnce), false)],
        now(),
    );
    let out = hub.route(&message("t", QoS::AtLeastOnce), NO_ONE, now());
    assert_eq!(
        out,
        RouteOutcome {
            delivered: 2,
            dropped: 0
        }
    );
    assert_eq!(rx1.try_recv().map(|m| m.qos), Ok(QoS::AtLeastOnce));
    assert_eq!(rx2.try_recv().map(|m| m.qos), Ok(QoS::AtMostOnce));
    hub.route(&message("t", QoS::AtMostOnce), NO_ONE, now());
    assert_eq!(rx1.try_recv().map(|m| m.qos), Ok(QoS::AtMostOnce));
}

#[test]
fn overflowing_client_is_dropped_without_blocking() {
    let mut hub = Hub::new();
    let (_rx, kill) = add(&mut hub, 1, "slow", 2);
    hub.subscribe(
        1,
        &[("t".into(), SubOpts::qos(QoS::AtMostOnce), false)],
        now(),
    );
    assert_eq!(
        hub.route(&message("t", QoS::AtMostOnce), NO_ONE, now())
            .delivered,
        1
    );
    assert_eq!(
        hub.route(&message("t", QoS::AtMostOnce), NO_ONE, now())
            .delivered,
        1
    );
    assert_eq!(
        hub.route(&message("t", QoS::AtMostOnce), NO_ONE, now()),
        RouteOutcome {
            delivered: 0,
            dropped: 1
        }
    );
    // Its subscriptions are gone and the task was told to stop.
    assert_eq!(
        hub.route(&message("t", QoS::AtMostOnce), NO_ONE, now()),
        RouteOutcome::default()
    );
    let notified = kill.notified();
    tokio::pin!(notified);
    assert!(futures_ready(notified.as_mut()));
}

#[test]
fn takeover_is_per_identity() {
    let mut hub = Hub::new();
    let (_r1, k1) = add(&mut hub, 1, "a", 1);
    let (_r2, _k2) = add(&mut hub, 2, "b", 1);
    let (_r3, _k3) = add(&mut hub, 3, "a", 1);
    assert_eq!(
        hub.admit(1, "cid", true, false, 4, now())
            .map(|r| r.is_some()),
        Ok(false)
    );
    assert_eq!(
        hub.admit(2, "cid", true, false, 4, now())
            .map(|r| r.is_some()),
        Ok(false),
        "another identity cannot take over"
    );
    assert_eq!(
        hub.admit(3, "cid", true, false, 4, now())
            .map(|r| r.is_some()),
        Ok(false)
    );
    let notified = k1.notified();
    tokio::pin!(notified);
    assert!(futures_ready(notified.as_mut()));
    hub.unregister(1);
    assert_eq!(hub.len(), 2);
    assert_eq!(hub.disconnect_identity(&Identity::Device("a".into())), 1);
    assert_eq!(
        hub.disconnect_identity(&Identity::Device("a".into())),
        0,
        "already dropped"
    );
    hub.unregister(2);
    hub.unregister(3);
    assert_eq!(hub.len(), 0);
    assert!(hub.by_client.is_empty() && hub.by_identity.is_empty());
}

#[test]
fn connections_per_identity_are_capped_but_takeover_is_not() {
    let mut hub = Hub::new();
    let _a: Vec<_> = (1..=3).map(|c| add(&mut hub, c, "d", 1)).collect();
    assert_eq!(
        hub.admit(1, "one", true, false, 2, now())
            .map(|r| r.is_some()),
        Ok(false)
    );
    assert_eq!(
        hub.admit(2, "two", true, false, 2, now())
            .map(|r| r.is_some()),
        Ok(false)
    );
    let refused = hub
        .admit(3, "three", true, false, 2, now())
        .map(|r| r.is_some())
        .expect_err("over the cap");
    assert!(refused.contains("most allowed is 2"), "{refused}");
    // The same client id takes over even at the cap.
    assert_eq!(
        hub.admit(3, "one", true, false, 2, now())
            .map(|r| r.is_some()),
        Ok(false)
    );
    // Another identity is not affected; empty client ids count too.
    let _b = add(&mut hub, 4, "other", 1);
    assert_eq!(
        hub.admit(4, "", true, false, 2, now()).map(|r| r.is_some()),
        Ok(false)
    );
    // Dropped connections no longer count.
    hub.unregister(1);
    hub.unregister(2);
    let _c = add(&mut hub, 5, "d", 1);
    assert_eq!(
        hub.admit(5, "", true, false, 2, now()).map(|r| r.is_some()),
        Ok(false)
    );
}

#[test]
fn disconnect_by_certificate() {
    let mut hub = Hub::new();
    let (_r1, k1) = add(&mut hub, 1, "d", 1);
    let (_r2, _k2) = add(&mut hub, 2, "d", 1);
    assert_eq!(hub.disconnect_certificate(&[1; 32]), 1);
    assert_eq!(hub.disconnect_certificate(&[1; 32]), 0, "already dropped");
    let notified = k1.notified();
    tokio::pin!(notified);
    assert!(futures_ready(notified.as_mut()));
    assert_eq!(hub.disconnect_identity(&Identity::Device("d".into())), 1);
}

#[test]
fn disconnect_by_token() {
    let t0 = now();
    let mut hub = Hub::new();
    let (_r1, k1) = add(&mut hub, 1, "d", 1);
    let (_r2, k2) = add(&mut hub, 2, "d", 1);
    let (_r3, _k3) = add(&mut hub, 3, "e", 1);
    hub.set_token(1, b"tok-1".to_vec());
    hub.set_token(2, b"tok-2".to_vec());
    hub.set_token(99, b"tok-1".to_vec()); // unknown connection: ignored
    assert_eq!(hub.disconnect_token(b"tok-1"), 1);
    assert!(killed(&k1));
    assert!(!killed(&k2));
    assert_eq!(hub.disconnect_token(b"tok-1"), 0, "already dropped");
    assert_eq!(hub.disconnect_token(b"nope"), 0);
    // A stored session no longer holds its connection's token.
    assert_eq!(hub.admit(2, "c2", true, true, 4, t0), Ok(None));
    hub.park(2, 60, Snapshot::default(), vec![], None, t0);
    assert_eq!(hub.disconnect_token(b"tok-2"), 0);
    assert_eq!(hub.counts().parked, 1);
}

#[test]
fn subscriptions_of_a_dropped_connection_are_ignored() {
    let t0 = now();
    let mut hub = Hub::new();
    let (_r1, _k1) = add(&mut hub, 1, "a", 1);
    assert!(hub.kill(1, "test"));
    assert!(!hub.kill(1, "test"), "once");
    hub.subscribe(1, &subs(&[("t", QoS::AtMostOnce)]), t0);
    assert_eq!(hub.router.subscriptions_of(1), 0);
    assert!(hub.admit(1, "c", true, false, 4, t0).is_err());
    hub.unsubscribe(1, &["t".into()]);
    hub.unregister(1);
    assert_eq!(hub.len(), 0);
}
