use super::*;
use bytes::Bytes;
use std::time::Duration;

use crate::session::{Outgoing, Stage};

const NO_ONE: ConnId = 0;

fn add(
    hub: &mut Hub,
    conn: ConnId,
    who: &str,
    cap: usize,
) -> (mpsc::Receiver<Message>, Arc<Notify>) {
    let (tx, rx) = mpsc::channel(cap);
    let kill = Arc::new(Notify::new());
    hub.register(
        conn,
        Identity::Device(who.into()),
        Some([conn as u8; 32]),
        tx,
        Arc::clone(&kill),
    );
    (rx, kill)
}

fn message(topic: &str, qos: QoS) -> Message {
    Message::new(topic, Bytes::from_static(b"x"), qos)
}

fn now() -> Instant {
    Instant::now()
}

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

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn drain(rx: &mut mpsc::Receiver<Message>) -> Vec<Message> {
    std::iter::from_fn(|| rx.try_recv().ok()).collect()
}

fn killed(kill: &Notify) -> bool {
    let notified = kill.notified();
    tokio::pin!(notified);
    futures_ready(notified.as_mut())
}

/// Registers `conn` for `who` and admits it with `client_id` as a
/// persistent session (clean start).
fn persistent(
    hub: &mut Hub,
    conn: ConnId,
    who: &str,
    client_id: &str,
    t: Instant,
) -> (mpsc::Receiver<Message>, Arc<Notify>) {
    let (rx, kill) = add(hub, conn, who, 8);
    assert_eq!(
        hub.admit(conn, client_id, true, true, 4, t)
            .map(|r| r.is_some()),
        Ok(false)
    );
    (rx, kill)
}

fn subs(filters: &[(&str, QoS)]) -> Vec<(String, SubOpts, bool)> {
    filters
        .iter()
        .map(|(f, q)| ((*f).to_owned(), SubOpts::qos(*q), false))
        .collect()
}

fn snapshot_of(filters: &[(&str, QoS)]) -> Snapshot {
    Snapshot {
        subscriptions: filters
            .iter()
            .map(|(f, q)| ((*f).to_owned(), SubOpts::qos(*q)))
            .collect(),
        ..Snapshot::default()
    }
}

fn payload_of(m: &Message) -> &[u8] {
    &m.payload
}

fn with_payload(topic: &str, payload: &'static [u8], qos: QoS) -> Message {
    Message::new(topic, Bytes::from_static(payload), qos)
}

fn retained(topic: &str, payload: &'static [u8], qos: QoS) -> Message {
    Message {
        retain: true,
        ..with_payload(topic, payload, qos)
    }
}

#[test]
fn a_persistent_session_is_parked_queues_qos1_and_is_resumed() {
    let t0 = now();
    let mut hub = Hub::new();
    let (_rx1, _k1) = persistent(&mut hub, 1, "a", "c1", t0);
    hub.subscribe(1, &subs(&[("t", QoS::ExactlyOnce)]), t0);
    let stored = Snapshot {
        incoming_qos2: vec![7],
        ..snapshot_of(&[("t", QoS::ExactlyOnce)])
    };
    // The connection ends with a message still in its queue.
    let leftover = with_payload("t", b"left", QoS::AtLeastOnce);
    let due = hub.park(
        1,
        60,
        stored.clone(),
        vec![leftover.clone(), with_payload("t", b"q0", QoS::AtMostOnce)],
        None,
        t0,
    );
    assert!(due.is_empty());
    hub.unregister(1); // the connection's task ends: the session stays
    assert_eq!((hub.len(), hub.counts().parked), (1, 1));
    assert_eq!(hub.next_deadline(), Some(t0 + secs(60)));

    // Routed while parked: QoS 1 and 2 queue up, QoS 0 does not.
    let q1 = with_payload("t", b"one", QoS::AtLeastOnce);
    let q2 = with_payload("t", b"two", QoS::ExactlyOnce);
    assert_eq!(hub.route(&q1, NO_ONE, t0).delivered, 1);
    assert_eq!(
        hub.route(&message("t", QoS::AtMostOnce), NO_ONE, t0)
            .delivered,
        0
    );
    assert_eq!(hub.route(&q2, NO_ONE, t0).delivered, 1);

    // A new connection of the same identity and client id resumes it.
    let (mut rx2, _k2) = add(&mut hub, 2, "a", 8);
    assert_eq!(
        hub.admit(2, "c1", false, true, 4, t0 + secs(5)),
        Ok(Some(stored))
    );
    assert_eq!(drain(&mut rx2), vec![leftover, q1, q2]);
    assert_eq!(hub.counts().parked, 0);
    assert_eq!(hub.len(), 1, "the stored session is gone");
    // Its subscriptions moved to the new connection.
    assert_eq!(hub.router.subscriptions_of(2), 1);
    assert_eq!(hub.router.subscriptions_of(1), 0);
    assert_eq!(
        hub.route(&message("t", QoS::AtLeastOnce), NO_ONE, t0)
            .delivered,
        1
    );
    assert_eq!(drain(&mut rx2).len(), 1);
    // The old expiry deadline is stale and harmless.
    hub.tick(t0 + secs(60));
    assert_eq!(
        hub.route(&message("t", QoS::AtLeastOnce), NO_ONE, t0)
            .delivered,
        1
    );
    hub.unregister(2);
    assert_eq!(hub.len(), 0);
    assert!(hub.by_client.is_empty() && hub.by_identity.is_empty());
    assert!(hub.router.is_empty());
}

#[test]
fn another_identity_cannot_resume_a_stored_session() {
    let t0 = now();
    let mut hub = Hub::new();
    let _c1 = persistent(&mut hub, 1, "a", "c1", t0);
    hub.subscribe(1, &subs(&[("t", QoS::AtLeastOnce)]), t0);
    hub.park(
        1,
        60,
        snapshot_of(&[("t", QoS::AtLeastOnce)]),
        vec![],
        None,
        t0,
    );
    let _c2 = add(&mut hub, 2, "b", 8);
    assert_eq!(hub.admit(2, "c1", false, true, 4, t0), Ok(None));
    assert_eq!(hub.counts().parked, 1);
}

#[test]
fn the_offline_queue_is_bounded() {
    let t0 = now();
    let mut hub = Hub::with_limits(HubLimits {
        offline_queue: 2,
        ..HubLimits::default()
    });
    let _c1 = persistent(&mut hub, 1, "a", "c1", t0);
    hub.subscribe(1, &subs(&[("t", QoS::AtLeastOnce)]), t0);
    hub.park(
        1,
        60,
        snapshot_of(&[("t", QoS::AtLeastOnce)]),
        vec![],
        None,
        t0,
    );
    let delivered: Vec<u64> = (0..3)
        .map(|_| {
            hub.route(&message("t", QoS::AtLeastOnce), NO_ONE, t0)
                .delivered
        })
        .collect();
    assert_eq!(delivered, vec![1, 1, 0]);
    assert_eq!(hub.counts().offline_drops, 1);
    let (mut rx2, _k2) = add(&mut hub, 2, "a", 8);
    assert!(matches!(
        hub.admit(2, "c1", false, true, 4, t0),
        Ok(Some(_))
    ));
    assert_eq!(drain(&mut rx2).len(), 2);
}

#[test]
fn clean_start_discards_a_stored_session() {
    let t0 = now();
    let mut hub = Hub::new();
    let _c1 = persistent(&mut hub, 1, "a", "c1", t0);
    hub.subscribe(1, &subs(&[("t", QoS::AtLeastOnce)]), t0);
    hub.park(
        1,
        60,
        snapshot_of(&[("t", QoS::AtLeastOnce)]),
        vec![],
        None,
        t0,
    );
    hub.route(&message("t", QoS::AtLeastOnce), NO_ONE, t0);
    let (mut rx2, _k2) = add(&mut hub, 2, "a", 8);
    assert_eq!(hub.admit(2, "c1", true, true, 4, t0), Ok(None));
    assert!(drain(&mut rx2).is_empty(), "its queue is gone");
    assert_eq!(hub.counts().parked, 0);
    assert_eq!(hub.len(), 1);
    assert_eq!(
        hub.route(&message("t", QoS::AtLeastOnce), NO_ONE, t0),
        RouteOutcome::default(),
        "its subscriptions are gone"
    );
}

#[test]
fn an_expired_stored_session_ends_and_its_will_is_published() {
    let t0 = now();
    let mut hub = Hub::new();
    let (mut watcher, _kw) = add(&mut hub, 9, "w", 8);
    hub.subscribe(9, &subs(&[("will/#", QoS::AtLeastOnce)]), t0);
    let _c1 = persistent(&mut hub, 1, "a", "c1", t0);
    let will = with_payload("will/a", b"gone", QoS::AtLeastOnce);
    // The delay (100 s) outlasts the session (10 s): the will is due at its end.
    let due = hub.park(
        1,
        10,
        Snapshot::default(),
        vec![],
        Some((will.clone(), 100)),
        t0,
    );
    assert!(due.is_empty());
    assert_eq!(hub.next_deadline(), Some(t0 + secs(10)));
    hub.tick(t0 + secs(9));
    assert!(drain(&mut watcher).is_empty());
    assert_eq!(hub.counts().parked, 1);
    hub.tick(t0 + secs(10));
    assert_eq!(drain(&mut watcher), vec![will]);
    assert_eq!(hub.counts().parked, 0);
    assert_eq!(hub.len(), 1, "only the watcher is left");
    assert_eq!(hub.next_deadline(), None);
    // Nothing to resume.
    let _c2 = add(&mut hub, 2, "a", 8);
    assert_eq!(hub.admit(2, "c1", false, true, 4, t0 + secs(11)), Ok(None));
}

#[test]
fn a_will_delay_shorter_than_the_expiry_fires_at_its_time() {
    let t0 = now();
    let mut hub = Hub::new();
    let (mut watcher, _kw) = add(&mut hub, 9, "w", 8);
    hub.subscribe(9, &subs(&[("will/#", QoS::AtLeastOnce)]), t0);
    let _c1 = persistent(&mut hub, 1, "a", "c1", t0);
    let will = with_payload("will/a", b"gone", QoS::AtLeastOnce);
    hub.park(
        1,
        100,
        Snapshot::default(),
        vec![],
        Some((will.clone(), 5)),
        t0,
    );
    assert_eq!(hub.next_deadline(), Some(t0 + secs(5)));
    hub.tick(t0 + secs(4));
    assert!(drain(&mut watcher).is_empty());
    hub.tick(t0 + secs(5));
    assert_eq!(drain(&mut watcher), vec![will]);
    assert_eq!(hub.counts().parked, 1, "the session outlives its will");
    assert_eq!(hub.next_deadline(), Some(t0 + secs(100)));
    hub.tick(t0 + secs(100));
    assert!(drain(&mut watcher).is_empty(), "published once");
    assert_eq!(hub.counts().parked, 0);
}

#[test]
fn resuming_before_the_will_delay_cancels_the_will() {
    let t0 = now();
    let mut hub = Hub::new();
    let (mut watcher, _kw) = add(&mut hub, 9, "w", 8);
    hub.subscribe(9, &subs(&[("will/#", QoS::AtLeastOnce)]), t0);
    let _c1 = persistent(&mut hub, 1, "a", "c1", t0);
    let will = with_payload("will/a", b"gone", QoS::AtLeastOnce);
    hub.park(1, 100, Snapshot::default(), vec![], Some((will, 30)), t0);
    let _c2 = add(&mut hub, 2, "a", 8);
    assert!(matches!(
        hub.admit(2, "c1", false, true, 4, t0 + secs(10)),
        Ok(Some(_))
    ));
    for t in [30, 100] {
        hub.tick(t0 + secs(t));
    }
    assert!(
        drain(&mut watcher).is_empty(),
        "§3.1.3-9: no will after a reconnect in time"
    );
}

#[test]
fn a_will_without_delay_or_without_a_stored_session_is_due_at_once() {
    let t0 = now();
    let mut hub = Hub::new();
    let will = with_payload("will/a", b"gone", QoS::AtMostOnce);
    // Stored session, will delay 0: returned to be routed now.
    let _c1 = persistent(&mut hub, 1, "a", "c1", t0);
    assert_eq!(
        hub.park(
            1,
            60,
            Snapshot::default(),
            vec![],
            Some((will.clone(), 0)),
            t0
        ),
        vec![will.clone()]
    );
    assert_eq!(hub.counts().parked, 1);
    // No session expiry: nothing stored, the will (whatever its delay) now.
    let _c2 = persistent(&mut hub, 2, "a", "c2", t0);
    assert_eq!(
        hub.park(
            2,
            0,
            Snapshot::default(),
            vec![],
            Some((will.clone(), 30)),
            t0
        ),
        vec![will.clone()]
    );
    hub.unregister(2);
    assert_eq!((hub.len(), hub.counts().parked), (1, 1));
    // A session without a client id cannot be stored.
    let _c3 = add(&mut hub, 3, "a", 8);
    assert_eq!(hub.admit(3, "", true, false, 4, t0), Ok(None));
    assert_eq!(
        hub.park(
            3,
            60,
            Snapshot::default(),
            vec![],
            Some((will.clone(), 30)),
            t0
        ),
        vec![will.clone()]
    );
    // An unknown connection: just the will.
    assert_eq!(
        hub.park(
            77,
            60,
            Snapshot::default(),
            vec![],
            Some((will.clone(), 30)),
            t0
        ),
        vec![will]
    );
    assert_eq!(hub.counts().parked, 1);
}

#[test]
fn the_total_of_stored_sessions_is_capped() {
    let t0 = now();
    let mut hub = Hub::with_limits(HubLimits {
        parked_total: 1,
        ..HubLimits::default()
    });
    let _c1 = persistent(&mut hub, 1, "a", "c1", t0);
    let _c2 = persistent(&mut hub, 2, "b", "c2", t0);
    assert!(
        hub.park(1, 60, Snapshot::default(), vec![], None, t0)
            .is_empty()
    );
    let will = message("will/b", QoS::AtMostOnce);
    assert_eq!(
        hub.park(
            2,
            60,
            Snapshot::default(),
            vec![],
            Some((will.clone(), 30)),
            t0
        ),
        vec![will],
        "not stored: the will is due now"
    );
    assert_eq!(hub.counts().parked, 1);
}

#[test]
fn the_stored_session_cap_per_identity_ends_the_oldest() {
    let t0 = now();
    let mut hub = Hub::with_limits(HubLimits {
        parked_per_identity: 2,
        ..HubLimits::default()
    });
    let (mut watcher, _kw) = add(&mut hub, 9, "w", 8);
    hub.subscribe(9, &subs(&[("will/#", QoS::AtLeastOnce)]), t0);
    // Another identity's stored session does not count.
    let _b = persistent(&mut hub, 10, "b", "c1", t0);
    hub.park(10, 50, Snapshot::default(), vec![], None, t0);
    for (conn, expiry) in [(1, 100), (2, 200), (3, 300)] {
        let _c = persistent(&mut hub, conn, "a", &format!("c{conn}"), t0);
        let will = with_payload(&format!("will/c{conn}"), b"gone", QoS::AtLeastOnce);
        hub.park(
            conn,
            expiry,
            Snapshot::default(),
            vec![],
            Some((will, 1000)),
            t0,
        );
        hub.unregister(conn);
    }
    // c1 (first to expire) was ended to store c3; its pending will went out.
    assert_eq!(
        drain(&mut watcher)
            .iter()
            .map(|m| m.topic.to_string())
            .collect::<Vec<_>>(),
        vec!["will/c1"]
    );
    assert_eq!(hub.counts().parked, 3);
    let _n1 = add(&mut hub, 4, "a", 8);
    assert_eq!(hub.admit(4, "c1", false, true, 4, t0), Ok(None));
    let _n2 = add(&mut hub, 5, "a", 8);
    assert!(matches!(
        hub.admit(5, "c2", false, true, 4, t0),
        Ok(Some(_))
    ));
    let _n3 = add(&mut hub, 6, "b", 8);
    assert!(matches!(
        hub.admit(6, "c1", false, true, 4, t0),
        Ok(Some(_))
    ));
}

#[test]
fn dropping_an_identity_ends_its_stored_sessions_without_their_will() {
    let t0 = now();
    let mut hub = Hub::new();
    let (mut watcher, _kw) = add(&mut hub, 9, "w", 8);
    hub.subscribe(9, &subs(&[("will/#", QoS::AtLeastOnce)]), t0);
    let _c1 = persistent(&mut hub, 1, "a", "c1", t0);
    let will = with_payload("will/a", b"gone", QoS::AtLeastOnce);
    hub.park(1, 60, Snapshot::default(), vec![], Some((will, 30)), t0);
    hub.unregister(1);
    assert_eq!(hub.disconnect_identity(&Identity::Device("a".into())), 1);
    assert_eq!((hub.len(), hub.counts().parked), (1, 0));
    hub.tick(t0 + secs(60));
    assert!(drain(&mut watcher).is_empty());
    // Likewise by certificate.
    let _c2 = persistent(&mut hub, 2, "a", "c2", t0);
    hub.park(2, 60, Snapshot::default(), vec![], None, t0);
    assert_eq!(hub.disconnect_certificate(&[2; 32]), 1);
    assert_eq!(hub.counts().parked, 0);
}

#[test]
fn a_live_persistent_session_taken_over_moves_to_the_new_connection() {
    let t0 = now();
    let mut hub = Hub::new();
    let (mut rx1, k1) = persistent(&mut hub, 1, "a", "c", t0);
    hub.subscribe(1, &subs(&[("t", QoS::AtLeastOnce)]), t0);
    let (mut rx2, _k2) = add(&mut hub, 2, "a", 8);
    assert_eq!(
        hub.admit(2, "c", false, true, 4, t0),
        Ok(Some(snapshot_of(&[("t", QoS::AtLeastOnce)])))
    );
    assert!(killed(&k1));
    assert_eq!(
        hub.route(&message("t", QoS::AtLeastOnce), NO_ONE, t0)
            .delivered,
        1
    );
    assert_eq!(drain(&mut rx2).len(), 1);
    assert!(drain(&mut rx1).is_empty());
    // The old connection ends: what it left unacknowledged or unsent goes
    // to the new one.
    let unacked = with_payload("t", b"unacked", QoS::AtLeastOnce);
    let unsent = with_payload("t", b"unsent", QoS::AtLeastOnce);
    let snapshot = Snapshot {
        outgoing: vec![(
            1,
            Outgoing {
                message: unacked.clone(),
                stage: Stage::PubAck,
            },
        )],
        ..snapshot_of(&[("t", QoS::AtLeastOnce)])
    };
    assert!(
        hub.park(1, 60, snapshot, vec![unsent.clone()], None, t0)
            .is_empty()
    );
    assert_eq!(drain(&mut rx2), vec![unacked, unsent]);
    hub.unregister(1);
    assert_eq!((hub.len(), hub.counts().parked), (1, 0));
    assert_eq!(
        hub.router.subscriptions_of(2),
        1,
        "the old connection's end keeps them"
    );

    // Clean start instead: the old subscriptions go with the old connection.
    let (_rx3, k3) = add(&mut hub, 3, "a", 8);
    assert_eq!(hub.admit(3, "c", true, true, 4, t0), Ok(None));
    assert!(!killed(&k3));
    assert_eq!(
        hub.route(&message("t", QoS::AtLeastOnce), NO_ONE, t0),
        RouteOutcome::default()
    );
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

#[test]

fn resuming_a_session_with_a_long_offline_queue_does_not_drop_it() {
    let t0 = now();
    let mut hub = Hub::new();
    let _c1 = persistent(&mut hub, 1, "a", "c1", t0);
    hub.subscribe(1, &subs(&[("t", QoS::AtLeastOnce)]), t0);
    hub.park(
        1,
        60,
        snapshot_of(&[("t", QoS::AtLeastOnce)]),
        vec![],
        None,
        t0,
    );
    for _ in 0..3 {
        hub.route(&message("t", QoS::AtLeastOnce), NO_ONE, t0);
    }
    let (_rx2, kill) = add(&mut hub, 2, "a", 2);
    assert!(matches!(
        hub.admit(2, "c1", false, true, 4, t0),
        Ok(Some(_))
    ));
    assert!(
        !killed(&kill),
        "the resumed connection is dropped as a slow client"
    );
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

/// Polls a future once.
fn futures_ready<F: std::future::Future>(f: std::pin::Pin<&mut F>) -> bool {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    f.poll(&mut cx).is_ready()
}
