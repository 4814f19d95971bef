//! MQTT 5: CONNECT/CONNACK properties, keep-alive, client ids, refusals
//! and the reason codes of server DISCONNECTs.

use super::*;

#[test]
fn v5_connect_with_properties_gets_the_server_limits_in_connack() {
    let t0 = Instant::now();
    let (hook, seen) = admission(Ok(None));
    let mut s = new_session5(t0).with_admission(hook);
    let props = props5(|p| {
        p.session_expiry_interval = Some(7200);
        p.receive_maximum = Some(10);
        p.max_packet_size = Some(4096);
        p.topic_alias_max = Some(3);
        p.user_properties = vec![("app".into(), "x".into())];
    });
    feed5(&mut s, &[connect5("c5", 30, props)], t0);
    let out = decode5(s.take_transmit());
    let ack = the_connack(&out);
    assert!(!ack.session_present);
    assert_eq!(ack.code, r5::ConnectReturnCode::Success);
    let p = connack_props(&out);
    assert_eq!(p.receive_max, Some(config().receive_maximum));
    assert_eq!(p.topic_alias_max, Some(config().topic_alias_max));
    let announced = p.max_packet_size.expect("Maximum Packet Size");
    assert!(
        usize::try_from(announced).expect("fits") > config().max_packet_size,
        "the whole packet, header included"
    );
    assert_eq!(p.session_expiry_interval, Some(3600), "capped and said so");
    assert_eq!(p.server_keep_alive, None, "30 s is allowed");
    assert_eq!(p.assigned_client_identifier, None);
    assert_eq!(p.authentication_method, None);
    assert_eq!(
        *seen.lock().expect("lock"),
        vec![("c5".to_owned(), true, true)]
    );
    assert_eq!(
        events(&mut s),
        vec![Event::Connected {
            client_id: "c5".into()
        }]
    );
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(45)));
    s.abort(CloseReason::ConnectionLost);
    assert_eq!(s.snapshot().0, 3600);

    // No session expiry asked: none in CONNACK, nothing kept.
    let (hook, seen) = admission(Ok(None));
    let mut s = new_session5(t0).with_admission(hook);
    feed5(&mut s, &[connect5("c5", 30, None)], t0);
    assert_eq!(
        connack_props(&decode5(s.take_transmit())).session_expiry_interval,
        None
    );
    assert_eq!(
        *seen.lock().expect("lock"),
        vec![("c5".to_owned(), true, false)]
    );
}

#[test]
fn v5_keep_alive_zero_or_too_long_gets_server_keep_alive() {
    let t0 = Instant::now();
    for (asked, used, announced) in [
        (0u16, 60u64, Some(60u16)),
        (600, 60, Some(60)),
        (61, 60, Some(60)),
        (60, 60, None),
        (5, 5, None),
    ] {
        let mut s = new_session5(t0);
        feed5(&mut s, &[connect5("c5", asked, None)], t0);
        let p = connack_props(&decode5(s.take_transmit()));
        assert_eq!(p.server_keep_alive, announced, "asked {asked}");
        assert_eq!(
            s.poll_timeout(),
            Some(t0 + Duration::from_millis(used * 1500)),
            "asked {asked}"
        );
    }
}

#[test]
fn v5_keep_alive_timeout_sends_disconnect_0x8d() {
    let t0 = Instant::now();
    let mut s = connected5(t0, None);
    s.handle_timeout(t0 + Duration::from_secs(45));
    assert_eq!(
        disconnect_code(&decode5(s.take_transmit())),
        r5::DisconnectReasonCode::KeepAliveTimeout
    );
    assert_eq!(
        events(&mut s),
        vec![Event::Closed(CloseReason::KeepAliveTimeout)]
    );
}

#[test]
fn v5_empty_client_id_gets_an_assigned_one() {
    let t0 = Instant::now();
    let (hook, seen) = admission(Ok(None));
    let mut s = new_session5(t0).with_admission(hook);
    feed5(
        &mut s,
        &[connect5(
            "",
            30,
            props5(|p| p.session_expiry_interval = Some(60)),
        )],
        t0,
    );
    let p = connack_props(&decode5(s.take_transmit()));
    let assigned = "cb-auto-00000000000000ab".to_owned();
    assert_eq!(p.assigned_client_identifier, Some(assigned.clone()));
    assert_eq!(
        events(&mut s),
        vec![Event::Connected {
            client_id: assigned.clone()
        }]
    );
    assert_eq!(
        *seen.lock().expect("lock"),
        vec![(assigned, true, true)],
        "an assigned id can hold a persistent session"
    );
}

#[test]
fn v5_refusals_carry_mqtt5_reason_codes() {
    let t0 = Instant::now();
    // Refused certificate: 0x87 with a reason string.
    let mut s = Session::new(Err("revoked".into()), config(), t0);
    feed5(&mut s, &[connect5("c5", 30, None)], t0);
    let out = decode5(s.take_transmit());
    let ack = the_connack(&out);
    assert_eq!(ack.code, r5::ConnectReturnCode::NotAuthorized);
    assert!(
        ack.properties
            .as_ref()
            .and_then(|p| p.reason_string.as_deref())
            .is_some_and(|r| r.contains("revoked"))
    );
    // ... unless the client asked for no problem information.
    let mut s = Session::new(Err("revoked".into()), config(), t0);
    feed5(
        &mut s,
        &[connect5(
            "c5",
            30,
            props5(|p| p.request_problem_info = Some(0)),
        )],
        t0,
    );
    let out = decode5(s.take_transmit());
    assert_eq!(the_connack(&out).code, r5::ConnectReturnCode::NotAuthorized);
    assert_eq!(
        the_connack(&out)
            .properties
            .as_ref()
            .and_then(|p| p.reason_string.clone()),
        None
    );

    // Admission refused: 0x97 quota exceeded.
    let (hook, _) = admission(Err("cap reached".into()));
    let mut s = new_session5(t0).with_admission(hook);
    feed5(&mut s, &[connect5("c5", 30, None)], t0);
    assert_eq!(
        the_connack(&decode5(s.take_transmit())).code,
        r5::ConnectReturnCode::QuotaExceeded
    );
    assert_eq!(
        events(&mut s),
        vec![Event::Closed(CloseReason::ConnectionCap(
            "cap reached".into()
        ))]
    );

    // Client id with control characters: 0x85.
    let mut s = new_session5(t0);
    feed5(&mut s, &[connect5("a\u{7}b", 30, None)], t0);
    assert_eq!(
        the_connack(&decode5(s.take_transmit())).code,
        r5::ConnectReturnCode::ClientIdentifierNotValid
    );

    // Protocol level 6 gets an MQTT 5 CONNACK 0x84.
    let mut s = new_session5(t0);
    let mut buf = encode5(&[connect5("c5", 30, None)]);
    assert_eq!(buf[8], 5);
    buf[8] = 6;
    s.handle_input(&mut buf, t0, &OwnPrefix);
    assert_eq!(
        the_connack(&decode5(s.take_transmit())).code,
        r5::ConnectReturnCode::UnsupportedProtocolVersion
    );
    assert_eq!(
        events(&mut s),
        vec![Event::Closed(CloseReason::ConnectRefused)]
    );
}

#[test]
fn v5_server_disconnects_say_why() {
    let t0 = Instant::now();
    let mut s = connected5(t0, None);
    s.abort(CloseReason::Server(
        "session taken over by a new connection",
    ));
    assert_eq!(
        disconnect_code(&decode5(s.take_transmit())),
        r5::DisconnectReasonCode::SessionTakenOver
    );
    let mut s = connected5(t0, None);
    s.abort(CloseReason::Server("revoked"));
    assert_eq!(
        disconnect_code(&decode5(s.take_transmit())),
        r5::DisconnectReasonCode::AdministrativeAction
    );
    assert_eq!(
        events(&mut s),
        vec![Event::Closed(CloseReason::Server("revoked"))]
    );
    // Certificate expiry: 0x87.
    let mut s = new_session5(t0).with_expiry(Some(t0 + Duration::from_secs(5)));
    feed5(&mut s, &[connect5("c5", 30, None)], t0);
    let _ = s.take_transmit();
    s.handle_timeout(t0 + Duration::from_secs(5));
    assert_eq!(
        disconnect_code(&decode5(s.take_transmit())),
        r5::DisconnectReasonCode::NotAuthorized
    );
    // A second CONNECT: protocol error.
    let mut s = connected5(t0, None);
    feed5(&mut s, &[connect5("c5", 30, None)], t0);
    assert_eq!(
        disconnect_code(&decode5(s.take_transmit())),
        r5::DisconnectReasonCode::ProtocolError
    );
    // Invalid UTF-8: malformed packet.
    let mut s = connected5(t0, None);
    let mut input = raw_publish(b"own/\xff");
    s.handle_input(&mut input, t0, &OwnPrefix);
    assert_eq!(
        disconnect_code(&decode5(s.take_transmit())),
        r5::DisconnectReasonCode::MalformedPacket
    );
    assert_eq!(
        events(&mut s),
        vec![Event::Closed(CloseReason::InvalidTopic(
            "not valid UTF-8".into()
        ))]
    );
}

#[test]

fn v5_a_second_connect_with_another_version_is_a_protocol_error() {
    let t0 = Instant::now();
    let mut s = connected5(t0, None);
    let mut buf = encode5(&[connect5("c5", 30, None)]);
    buf[8] = 6;
    s.handle_input(&mut buf, t0, &OwnPrefix);
    // Read with our codec: rumqttc refuses the reason code 0x84 in a DISCONNECT.
    let mut out = s.take_transmit();
    let packet = wire::read(&mut out, Level::V5, usize::MAX);
    assert!(
        matches!(&packet, Ok(Some(Packet::Disconnect(d))) if d.code == reason::PROTOCOL_ERROR),
        "{packet:?}"
    );
}
