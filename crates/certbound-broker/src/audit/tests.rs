use super::*;

fn refusal(subject: &str, outcome: &str, peer: &str, detail_tail: &str) -> AuditEvent {
    AuditEvent {
        ts_ms: 1,
        actor: format!("device:{subject}"),
        action: "token.refused".into(),
        subject: subject.into(),
        outcome: outcome.into(),
        detail: format!("transport=coap peer={peer} {detail_tail}"),
    }
}

#[test]
fn control_characters_and_bidi_controls_are_escaped() {
    assert_eq!(escape_field("a\nb\r\tc"), "a\\nb\\r\\tc");
    assert_eq!(escape_field("\u{1b}[31mred"), "\\u{1b}[31mred");
    assert_eq!(escape_field("x\u{9b}y\u{7f}"), "x\\u{9b}y\\u{7f}");
    assert_eq!(
        escape_field("ab\u{202e}cd\u{2066}"),
        "ab\\u{202e}cd\\u{2066}"
    );
    assert_eq!(escape_field("plain ünïcode ok"), "plain ünïcode ok");
}

#[test]
fn long_fields_are_cut_and_marked() {
    let long = "x".repeat(2 * 1024 * 1024);
    let out = bound_field(&long, FIELD_MAX);
    assert!(out.len() < FIELD_MAX + 40, "{}", out.len());
    assert!(out.ends_with("…[truncated, 2097152 bytes]"), "{out}");
    // Escapes count against the bound and are never cut in half.
    let nasty = "\u{1b}".repeat(1000);
    let out = bound_field(&nasty, 64);
    assert!(out.starts_with("\\u{1b}"), "{out}");
    let body = out.split('…').next().unwrap_or_default();
    assert_eq!(body.len() % "\\u{1b}".len(), 0, "{out}");
    // Multi-byte characters are cut at a boundary.
    let out = bound_field(&"é".repeat(300), 101);
    assert!(out.starts_with(&"é".repeat(50)), "{out}");
    assert_eq!(bound_field("short", 64), "short");
}

#[test]
fn sanitize_bounds_every_field() {
    let big = "\n".repeat(5000);
    let e = sanitize(&AuditEvent {
        ts_ms: 7,
        actor: big.clone(),
        action: big.clone(),
        subject: big.clone(),
        outcome: big.clone(),
        detail: big,
    });
    for f in [&e.actor, &e.action, &e.subject, &e.outcome] {
        assert!(f.len() < FIELD_MAX + 40 && !f.contains('\n'), "{f}");
    }
    assert!(e.detail.len() < DETAIL_MAX + 40 && !e.detail.contains('\n'));
    assert_eq!(e.ts_ms, 7);
}

#[test]
fn unauthenticated_refusals_are_aggregated_per_peer_and_reason() {
    let metrics = Metrics::new();
    let mut agg = Aggregator::new(Duration::from_secs(3600));
    let mut written = 0;
    for i in 0..1000 {
        let e = refusal(
            "(unauthenticated)",
            "invalid_request",
            "10.0.0.1",
            &format!("garbage {i}"),
        );
        written += usize::from(agg.admit(e, &metrics).is_some());
    }
    assert_eq!(written, 1, "one row for the first of the window");
    // Another peer, another reason: their own first rows.
    assert!(
        agg.admit(
            refusal("(unauthenticated)", "invalid_request", "10.0.0.2", "x"),
            &metrics
        )
        .is_some()
    );
    assert!(
        agg.admit(
            refusal("(unauthenticated)", "invalid_client", "10.0.0.1", "x"),
            &metrics
        )
        .is_some()
    );
    // Authenticated refusals and successes are never aggregated.
    for _ in 0..3 {
        assert!(
            agg.admit(
                refusal("sensor-1", "invalid_scope", "10.0.0.1", "x"),
                &metrics
            )
            .is_some()
        );
        assert!(
            agg.admit(refusal("sensor-1", "ok", "10.0.0.1", "x"), &metrics)
                .is_some()
        );
    }
    assert!(agg.flush_due().is_empty(), "the window has not ended");
    let rows = agg.flush_all();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(
        rows[0]
            .detail
            .starts_with("transport=coap peer=10.0.0.1 repeated=999 "),
        "{}",
        rows[0].detail
    );
    assert_eq!(rows[0].outcome, "invalid_request");
    // The metric counts every one.
    let text = metrics.render(0);
    assert!(
        text.contains("certbound_unauthenticated_refusals_total{transport=\"coap\",reason=\"invalid_request\"} 1001"),
        "{text}"
    );
    // A new window starts with a logged row again.
    assert!(
        agg.admit(
            refusal("(unauthenticated)", "invalid_request", "10.0.0.1", "y"),
            &metrics
        )
        .is_some()
    );
}

#[test]
fn spoofed_peers_cannot_grow_the_aggregator_without_bound() {
    let metrics = Metrics::new();
    let mut agg = Aggregator::new(Duration::from_secs(3600));
    let mut written = 0;
    for i in 0..(MAX_KEYS as u32 + 5000) {
        let peer = std::net::Ipv4Addr::from(i).to_string();
        written += usize::from(
            agg.admit(
                refusal("(unauthenticated)", "invalid_request", &peer, ""),
                &metrics,
            )
            .is_some(),
        );
    }
    assert!(agg.keys.len() <= MAX_KEYS + 1, "{}", agg.keys.len());
    assert_eq!(written, MAX_KEYS + 1);
}
