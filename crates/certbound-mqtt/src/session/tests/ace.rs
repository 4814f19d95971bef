//! RFC 9431 access tokens: at CONNECT, their rights, their expiry, and
//! re-authentication with AUTH.

use super::*;

/// Feeds a packet our codec encodes (AUTH: rumqttc's writer miscounts its
/// property length).
fn feed_ours(s: &mut Session, packet: &Packet, now: Instant) {
    let mut buf = BytesMut::new();
    wire::write(packet, Level::V5, &mut buf).expect("encodable");
    s.handle_input(&mut buf, now, &OwnPrefix);
    assert!(buf.is_empty());
}

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
