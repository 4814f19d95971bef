//! Stored (persistent) sessions: parking, offline queues, resuming,
//! expiry, caps and delayed wills.

use super::*;

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

fn snapshot_of(filters: &[(&str, QoS)]) -> Snapshot {
    Snapshot {
        subscriptions: filters
            .iter()
            .map(|(f, q)| ((*f).to_owned(), SubOpts::qos(*q)))
            .collect(),
        ..Snapshot::default()
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
fn a_stored_sessions_queue_is_bounded_in_bytes_as_well_as_in_messages() {
    let t0 = now();
    let mut hub = Hub::new();
    let (_rx, _kill) = persistent(&mut hub, 1, "a", "c1", t0);
    hub.subscribe(1, &subs(&[("t", QoS::AtLeastOnce)]), t0);
    hub.park(
        1,
        60,
        snapshot_of(&[("t", QoS::AtLeastOnce)]),
        Vec::new(),
        None,
        t0,
    );
    hub.unregister(1);
    // 100 KiB messages: ten fit in the byte bound, far below the count bound.
    let big = Message::new(
        "t",
        bytes::Bytes::from(vec![0u8; 100 * 1024]),
        QoS::AtLeastOnce,
    );
    let queued: u64 = (0..20).map(|_| hub.route(&big, NO_ONE, t0).delivered).sum();
    assert_eq!(
        queued as usize,
        crate::hub::parked::OFFLINE_QUEUE_BYTES / (100 * 1024)
    );
    assert_eq!(hub.counts().offline_drops, 20 - queued);
}
