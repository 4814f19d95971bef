use super::*;
use crate::topic::matches;

const Q0: QoS = QoS::AtMostOnce;
const Q1: QoS = QoS::AtLeastOnce;

fn all(_: ConnId) -> bool {
    true
}

fn route(router: &mut Router, topic: &str) -> Vec<Target> {
    let mut out = Vec::new();
    router.route(topic, 0, &all, &mut out);
    out
}

fn target(conn: ConnId, qos: QoS) -> Target {
    Target {
        conn,
        qos,
        retain_as_published: false,
        sub_ids: Vec::new(),
    }
}

fn conns(router: &mut Router, topic: &str) -> Vec<ConnId> {
    route(router, topic).into_iter().map(|t| t.conn).collect()
}

#[test]
fn plain_filters_match_per_section_4_7() {
    let mut r = Router::default();
    assert!(r.subscribe(1, "cb/v1/a/#", SubOpts::qos(Q1)));
    assert!(r.subscribe(2, "cb/v1/+/telemetry", SubOpts::qos(Q0)));
    assert!(r.subscribe(3, "#", SubOpts::qos(Q0)));
    assert!(r.subscribe(4, "cb/v1/b/telemetry", SubOpts::qos(Q0)));
    assert!(r.subscribe(5, "$SYS/#", SubOpts::qos(Q0)));

    assert_eq!(conns(&mut r, "cb/v1/a/telemetry"), vec![1, 2, 3]);
    assert_eq!(conns(&mut r, "cb/v1/a"), vec![1, 3]);
    assert_eq!(conns(&mut r, "cb/v1/b/telemetry"), vec![2, 3, 4]);
    assert_eq!(conns(&mut r, "cb/v1/b/token/req"), vec![3]);
    assert_eq!(conns(&mut r, "$SYS/load"), vec![5]);
    assert_eq!(conns(&mut r, "other"), vec![3]);
}

#[test]
fn one_copy_per_connection_with_highest_qos() {
    let mut r = Router::default();
    r.subscribe(7, "a/+", SubOpts::qos(Q0));
    r.subscribe(7, "a/#", SubOpts::qos(Q1));
    r.subscribe(7, "a/b", SubOpts::qos(Q0));
    assert_eq!(route(&mut r, "a/b"), vec![target(7, Q1)]);
}

#[test]
fn resubscribing_replaces_the_qos() {
    let mut r = Router::default();
    r.subscribe(1, "a", SubOpts::qos(Q1));
    r.subscribe(1, "a", SubOpts::qos(Q0));
    assert_eq!(route(&mut r, "a"), vec![target(1, Q0)]);
    assert_eq!(r.subscriptions_of(1), 1);
}

#[test]
fn invalid_filters_are_refused() {
    let mut r = Router::default();
    for bad in ["", "a/#/b", "a+", "$share/g", "$share//a", "$share/g/"] {
        assert!(!r.subscribe(1, bad, SubOpts::qos(Q0)), "{bad:?}");
    }
    assert!(r.is_empty());
}

#[test]
fn shared_group_round_robin_delivers_each_message_once() {
    let mut r = Router::default();
    for conn in [10, 11, 12] {
        assert!(r.subscribe(conn, "$share/certbound/cb/v1/+/token/req", SubOpts::qos(Q1)));
    }
    let mut counts: HashMap<ConnId, usize> = HashMap::new();
    for i in 0..30 {
        let out = route(&mut r, &format!("cb/v1/dev-{i}/token/req"));
        assert_eq!(out.len(), 1, "exactly one member per message");
        *counts.entry(out[0].conn).or_default() += 1;
    }
    assert_eq!(counts, HashMap::from([(10, 10), (11, 10), (12, 10)]));
    assert!(conns(&mut r, "cb/v1/dev/token/res").is_empty());
}

#[test]
fn shared_groups_are_independent_and_coexist_with_plain_subscribers() {
    let mut r = Router::default();
    r.subscribe(1, "$share/g1/t", SubOpts::qos(Q0));
    r.subscribe(2, "$share/g1/t", SubOpts::qos(Q0));
    r.subscribe(3, "$share/g2/t", SubOpts::qos(Q0));
    r.subscribe(4, "t", SubOpts::qos(Q0));
    let first = conns(&mut r, "t");
    let second = conns(&mut r, "t");
    assert_eq!(first.len(), 3);
    assert!(first.contains(&3) && first.contains(&4));
    assert!(second.contains(&3) && second.contains(&4));
    let g1_first = if first.contains(&1) { 1 } else { 2 };
    let g1_second = if second.contains(&1) { 1 } else { 2 };
    assert_ne!(g1_first, g1_second, "g1 alternates");
}

#[test]
fn shared_group_prefers_available_members() {
    let mut r = Router::default();
    r.subscribe(1, "$share/g/t", SubOpts::qos(Q0));
    r.subscribe(2, "$share/g/t", SubOpts::qos(Q0));
    let only_two = |c: ConnId| c == 2;
    let mut out = Vec::new();
    for _ in 0..4 {
        r.route("t", 0, &only_two, &mut out);
        assert_eq!(out, vec![target(2, Q0)]);
    }
    // Nobody available: still one member (the caller drops it if it is full).
    r.route("t", 0, &|_| false, &mut out);
    assert_eq!(out.len(), 1);
}

#[test]
fn leaving_a_group_keeps_round_robin_going() {
    let mut r = Router::default();
    for conn in [1, 2, 3] {
        r.subscribe(conn, "$share/g/t", SubOpts::qos(Q0));
    }
    conns(&mut r, "t");
    conns(&mut r, "t");
    assert!(r.unsubscribe(3, "$share/g/t"));
    let seen: HashSet<ConnId> = (0..4).flat_map(|_| conns(&mut r, "t")).collect();
    assert_eq!(seen, HashSet::from([1, 2]));
}

#[test]
fn unsubscribe_and_remove_conn_prune_the_tree() {
    let mut r = Router::default();
    r.subscribe(1, "a/b/c", SubOpts::qos(Q0));
    r.subscribe(1, "$share/g/a/+/c", SubOpts::qos(Q1));
    r.subscribe(2, "a/#", SubOpts::qos(Q0));
    assert!(!r.unsubscribe(1, "a/b"), "not subscribed");
    assert!(!r.unsubscribe(3, "a/b/c"), "unknown connection");
    assert!(r.unsubscribe(1, "a/b/c"));
    assert_eq!(conns(&mut r, "a/b/c"), vec![1, 2]);
    assert_eq!(r.remove_conn(1), 1);
    assert_eq!(conns(&mut r, "a/b/c"), vec![2]);
    assert_eq!(r.remove_conn(2), 1);
    assert!(r.is_empty());
    assert!(conns(&mut r, "a/b/c").is_empty());
}

#[test]
fn tree_agrees_with_the_reference_matcher() {
    let filters = [
        "#", "+", "+/+", "+/#", "/+", "a", "a/#", "a/+", "a/b", "a/+/c", "a/b/#", "+/b/#", "a//c",
        "$SYS/#", "$SYS/+", "+/+/+", "a/b/c/#", "/#",
    ];
    let topics = [
        "a", "a/b", "a/b/c", "a/b/c/d", "a//c", "/", "/a", "b", "b/b/x", "$SYS", "$SYS/x", "$a/b",
        "a/", "é/b",
    ];
    let mut r = Router::default();
    for (i, f) in filters.iter().enumerate() {
        assert!(r.subscribe(i as ConnId, f, SubOpts::qos(Q0)), "{f}");
    }
    for topic in topics {
        let expected: Vec<ConnId> = filters
            .iter()
            .enumerate()
            .filter(|(_, f)| matches(topic, f))
            .map(|(i, _)| i as ConnId)
            .collect();
        let mut got = conns(&mut r, topic);
        got.sort_unstable();
        assert_eq!(got, expected, "topic {topic:?}");
    }
}

#[test]
fn no_local_and_subscription_identifiers() {
    let mut r = Router::default();
    let with_id = |qos, id| SubOpts {
        sub_id: Some(id),
        ..SubOpts::qos(qos)
    };
    r.subscribe(1, "a/+", with_id(Q0, 2));
    r.subscribe(1, "a/#", with_id(Q1, 3));
    r.subscribe(
        2,
        "a/b",
        SubOpts {
            no_local: true,
            ..SubOpts::qos(Q1)
        },
    );
    let mut out = Vec::new();
    r.route("a/b", 2, &all, &mut out);
    assert_eq!(
        out.len(),
        1,
        "the publisher's No Local subscription is skipped"
    );
    let first = out.first().expect("one target");
    assert_eq!((first.conn, first.qos), (1, Q1));
    let mut ids = first.sub_ids.clone();
    ids.sort_unstable();
    assert_eq!(ids, vec![2, 3], "one copy with both identifiers");
    r.route("a/b", 1, &all, &mut out);
    assert_eq!(out.len(), 2, "another publisher reaches both");
}

#[test]
fn rekey_moves_subscriptions_with_their_options() {
    let mut r = Router::default();
    let opts = SubOpts {
        retain_as_published: true,
        ..SubOpts::qos(Q1)
    };
    r.subscribe(1, "a/#", opts);
    r.subscribe(1, "$share/g/b", SubOpts::qos(Q0));
    r.rekey(1, 9);
    assert_eq!(r.subscriptions_of(1), 0);
    let mut subs = r.subscriptions(9);
    subs.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        subs,
        vec![
            ("$share/g/b".to_owned(), SubOpts::qos(Q0)),
            ("a/#".to_owned(), opts)
        ]
    );
    assert_eq!(conns(&mut r, "a/x"), vec![9]);
    assert_eq!(conns(&mut r, "b"), vec![9]);
}
