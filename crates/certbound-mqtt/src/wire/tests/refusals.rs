//! Malformed and protocol-error packet bodies: CONNECT flags, unsupported
//! protocols, properties, packet identifiers, strings and subscription
//! options.

use super::*;

fn connect_body(name: &[u8], level: u8, flags: u8, rest: &[u8]) -> Vec<u8> {
    [&string(name)[..], &[level, flags, 0, 30], rest].concat()
}

#[test]
fn connect_flag_errors() {
    // Reserved flag.
    let body = connect_body(b"MQTT", 4, 0b11, &string(b"c"));
    assert!(matches!(
        read_one(&raw(0x10, &body), Level::V311),
        Err(WireError::Malformed(_))
    ));
    // Will QoS 3.
    let will = [&string(b"c")[..], &string(b"w"), &string(b"p")].concat();
    let body = connect_body(b"MQTT", 4, 0b0001_1110, &will);
    assert!(matches!(
        read_one(&raw(0x10, &body), Level::V311),
        Err(WireError::Malformed(_))
    ));
    // Will QoS or retain without a will.
    for flags in [0b0000_1010, 0b0010_0010] {
        let body = connect_body(b"MQTT", 4, flags, &string(b"c"));
        assert!(matches!(
            read_one(&raw(0x10, &body), Level::V311),
            Err(WireError::Malformed(_))
        ));
    }
    // Password without user name: malformed in 3.1.1, fine in 5.
    let body = connect_body(
        b"MQTT",
        4,
        0b0100_0010,
        &[&string(b"c")[..], &string(b"pw")].concat(),
    );
    assert!(matches!(
        read_one(&raw(0x10, &body), Level::V311),
        Err(WireError::Malformed(_))
    ));
    let body = connect_body(
        b"MQTT",
        5,
        0b0100_0010,
        &[&[0u8][..], &string(b"c"), &string(b"pw")].concat(),
    );
    assert!(matches!(
        read_one(&raw(0x10, &body), Level::V311),
        Ok(Some(Packet::Connect(c))) if c.password.as_deref() == Some(&b"pw"[..]) && c.username.is_none()
    ));
    // A CONNECT that ends early.
    let body = connect_body(b"MQTT", 4, 0b1000_0010, &string(b"c"));
    assert!(matches!(
        read_one(&raw(0x10, &body), Level::V311),
        Err(WireError::Malformed(_))
    ));
}

#[test]
fn unsupported_protocols_are_named() {
    let body = connect_body(b"MQIsdp", 3, 0b10, &string(b"c"));
    let err = read_one(&raw(0x10, &body), Level::V311).expect_err("3.1");
    assert_eq!(
        err,
        WireError::UnsupportedProtocol {
            name: "MQIsdp".into(),
            level: 3
        }
    );
    assert_eq!(err.reason_code(), reason::UNSUPPORTED_PROTOCOL_VERSION);
    for (name, level) in [
        (&b"MQTT"[..], 6u8),
        (b"MQTT", 3),
        (b"MQIsdp", 4),
        (b"mqtt", 4),
    ] {
        let body = connect_body(name, level, 0b10, &string(b"c"));
        assert!(
            matches!(
                read_one(&raw(0x10, &body), Level::V5),
                Err(WireError::UnsupportedProtocol { level: l, .. }) if l == level
            ),
            "{name:?} {level}"
        );
    }
}

/// A v5 PUBLISH (QoS 0, topic "t") with a raw property block.
fn publish_with_props(props: &[u8]) -> Vec<u8> {
    let body = [
        &string(b"t")[..],
        &[u8::try_from(props.len()).expect("short")],
        props,
        b"x",
    ]
    .concat();
    raw(0x30, &body)
}

/// A v5 CONNECT (clean start, client id "c") with a raw property block.
fn connect_with_props(props: &[u8]) -> Vec<u8> {
    let rest = [
        &[u8::try_from(props.len()).expect("short")][..],
        props,
        &string(b"c"),
    ]
    .concat();
    raw(0x10, &connect_body(b"MQTT", 5, 0b10, &rest))
}

#[test]
fn properties_a_packet_may_not_carry_are_protocol_errors() {
    // Topic Alias (0x23) in CONNECT.
    let err = read_one(&connect_with_props(&[0x23, 0, 1]), Level::V5).expect_err("topic alias");
    assert!(matches!(err, WireError::Protocol(_)), "{err:?}");
    assert_eq!(err.reason_code(), reason::PROTOCOL_ERROR);
    // Session Expiry (0x11) in PUBLISH.
    assert!(matches!(
        read_one(&publish_with_props(&[0x11, 0, 0, 0, 1]), Level::V5),
        Err(WireError::Protocol(_))
    ));
    // Will Delay (0x18) in CONNECT (only in the will's properties).
    assert!(matches!(
        read_one(&connect_with_props(&[0x18, 0, 0, 0, 1]), Level::V5),
        Err(WireError::Protocol(_))
    ));
    // Assigned Client Identifier (0x12) from a client.
    assert!(matches!(
        read_one(
            &connect_with_props(&[&[0x12][..], &string(b"x")].concat()),
            Level::V5
        ),
        Err(WireError::Protocol(_))
    ));
    // Unknown property 0x7F.
    assert!(matches!(
        read_one(&publish_with_props(&[0x7F, 0]), Level::V5),
        Err(WireError::Protocol(_))
    ));
    // Authentication Method (0x15) in DISCONNECT.
    let body = [&[0x00, 4, 0x15][..], &string(b"a")].concat();
    assert!(matches!(
        read_one(&raw(0xE0, &body), Level::V5),
        Err(WireError::Protocol(_))
    ));
    // The same bytes in 3.1.1 are payload, not properties.
    assert!(matches!(
        read_one(&publish_with_props(&[0x11, 0, 0, 0, 1]), Level::V311),
        Ok(Some(Packet::Publish(_)))
    ));
}

#[test]
fn repeated_properties_are_protocol_errors_except_user_and_subscription_id() {
    // Message Expiry twice.
    assert!(matches!(
        read_one(
            &publish_with_props(&[0x02, 0, 0, 0, 1, 0x02, 0, 0, 0, 2]),
            Level::V5
        ),
        Err(WireError::Protocol(_))
    ));
    // Session Expiry twice in CONNECT.
    assert!(matches!(
        read_one(
            &connect_with_props(&[0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 1]),
            Level::V5
        ),
        Err(WireError::Protocol(_))
    ));
    // User properties may repeat, also with the same name.
    let user = [&[0x26][..], &string(b"k"), &string(b"v")].concat();
    let Ok(Some(Packet::Publish(p))) =
        read_one(&publish_with_props(&[&user[..], &user].concat()), Level::V5)
    else {
        panic!("user properties repeat");
    };
    assert_eq!(p.props.user.len(), 2);
    // Subscription identifiers may repeat in a PUBLISH (server to client)...
    let Ok(Some(Packet::Publish(p))) =
        read_one(&publish_with_props(&[0x0B, 1, 0x0B, 2]), Level::V5)
    else {
        panic!("subscription ids repeat");
    };
    assert_eq!(p.props.subscription_ids, vec![1, 2]);
    // ... but not in a SUBSCRIBE, and never 0.
    let sub = |props: &[u8]| {
        let body = [
            &[0, 1, u8::try_from(props.len()).expect("short")][..],
            props,
            &string(b"a"),
            &[0],
        ]
        .concat();
        raw(0x82, &body)
    };
    assert!(matches!(
        read_one(&sub(&[0x0B, 1, 0x0B, 2]), Level::V5),
        Err(WireError::Protocol(_))
    ));
    assert!(matches!(
        read_one(&sub(&[0x0B, 0]), Level::V5),
        Err(WireError::Protocol(_))
    ));
    assert!(matches!(
        read_one(&sub(&[0x0B, 7]), Level::V5),
        Ok(Some(Packet::Subscribe(s))) if s.props.subscription_ids == vec![7]
    ));
}

#[test]
fn zero_and_out_of_range_property_values_are_refused() {
    // Receive Maximum 0.
    assert!(matches!(
        read_one(&connect_with_props(&[0x21, 0, 0]), Level::V5),
        Err(WireError::Protocol(_))
    ));
    // Maximum Packet Size 0.
    assert!(matches!(
        read_one(&connect_with_props(&[0x27, 0, 0, 0, 0]), Level::V5),
        Err(WireError::Protocol(_))
    ));
    // Request Problem Information 2.
    assert!(matches!(
        read_one(&connect_with_props(&[0x17, 2]), Level::V5),
        Err(WireError::Protocol(_))
    ));
    // Payload Format Indicator 2.
    assert!(matches!(
        read_one(&publish_with_props(&[0x01, 2]), Level::V5),
        Err(WireError::Protocol(_))
    ));
    // A property block longer than the packet.
    assert!(matches!(
        read_one(&publish_with_props(&[0x02, 0, 0])[..], Level::V5),
        Err(WireError::Malformed(_))
    ));
    // Valid values read.
    assert!(matches!(
        read_one(&connect_with_props(&[0x21, 0, 1, 0x27, 0, 0, 0, 9]), Level::V5),
        Ok(Some(Packet::Connect(c))) if c.props.receive_max == Some(1) && c.props.max_packet_size == Some(9)
    ));
}

#[test]
fn packet_id_zero_is_refused() {
    for (first, body) in [
        (0x32u8, [&string(b"t")[..], &[0, 0], b"x"].concat()), // PUBLISH QoS 1
        (0x34, [&string(b"t")[..], &[0, 0]].concat()),         // PUBLISH QoS 2
        (0x40, vec![0, 0]),                                    // PUBACK
        (0x50, vec![0, 0]),                                    // PUBREC
        (0x62, vec![0, 0]),                                    // PUBREL
        (0x70, vec![0, 0]),                                    // PUBCOMP
        (0x82, [&[0, 0][..], &string(b"a"), &[0]].concat()),   // SUBSCRIBE
        (0xA2, [&[0, 0][..], &string(b"a")].concat()),         // UNSUBSCRIBE
    ] {
        assert!(
            matches!(
                read_one(&raw(first, &body), Level::V311),
                Err(WireError::Protocol(_))
            ),
            "0x{first:02x}"
        );
    }
}

#[test]
fn invalid_utf8_and_nul_in_strings_are_refused() {
    // Topic name.
    assert_eq!(
        read_one(
            &raw(0x30, &[&string(b"a/\xff")[..], b"x"].concat()),
            Level::V311
        ),
        Err(WireError::BadUtf8)
    );
    assert_eq!(
        read_one(
            &raw(0x30, &[&string(b"a\0b")[..], b"x"].concat()),
            Level::V311
        ),
        Err(WireError::BadUtf8)
    );
    // Client id.
    let body = connect_body(b"MQTT", 4, 0b10, &string(b"c\0"));
    assert_eq!(
        read_one(&raw(0x10, &body), Level::V311),
        Err(WireError::BadUtf8)
    );
    // Filter; a surrogate encoded in UTF-8 is not UTF-8 either.
    let body = [&[0, 1][..], &string(b"a/\xed\xa0\x80"), &[0]].concat();
    assert_eq!(
        read_one(&raw(0x82, &body), Level::V311),
        Err(WireError::BadUtf8)
    );
    // A string property (content type).
    assert_eq!(
        read_one(
            &publish_with_props(&[&[0x03][..], &string(b"\xc3")].concat()),
            Level::V5
        ),
        Err(WireError::BadUtf8)
    );
    // User property value with U+0000.
    assert_eq!(
        read_one(
            &publish_with_props(&[&[0x26][..], &string(b"k"), &string(b"\0")].concat()),
            Level::V5
        ),
        Err(WireError::BadUtf8)
    );
    assert_eq!(WireError::BadUtf8.reason_code(), reason::MALFORMED_PACKET);
    // Binary data may hold anything (payload, password, correlation data).
    let body = connect_body(
        b"MQTT",
        4,
        0b1100_0010,
        &[&string(b"c")[..], &string(b"u"), &string(b"\xff\0")].concat(),
    );
    assert!(matches!(
        read_one(&raw(0x10, &body), Level::V311),
        Ok(Some(Packet::Connect(_)))
    ));
}

#[test]
fn subscribe_option_errors() {
    let sub = |options: u8| raw(0x82, &[&[0, 1][..], &string(b"a"), &[options]].concat());
    // QoS 3.
    assert!(matches!(
        read_one(&sub(3), Level::V311),
        Err(WireError::Malformed(_))
    ));
    // 3.1.1: only the QoS bits.
    assert!(matches!(
        read_one(&sub(0b0000_0100), Level::V311),
        Err(WireError::Malformed(_))
    ));
    // 5: the two top bits are reserved; retain handling 3 is an error.
    let v5 = |options: u8| raw(0x82, &[&[0, 1, 0][..], &string(b"a"), &[options]].concat());
    assert!(matches!(
        read_one(&v5(0b0100_0000), Level::V5),
        Err(WireError::Malformed(_))
    ));
    assert!(matches!(
        read_one(&v5(0b0011_0000), Level::V5),
        Err(WireError::Protocol(_))
    ));
    // No Local on a shared subscription.
    let shared = raw(
        0x82,
        &[&[0, 1, 0][..], &string(b"$share/g/a"), &[0b100]].concat(),
    );
    assert!(matches!(
        read_one(&shared, Level::V5),
        Err(WireError::Protocol(_))
    ));
    // SUBSCRIBE and UNSUBSCRIBE need a filter.
    assert!(matches!(
        read_one(&raw(0x82, &[0, 1]), Level::V311),
        Err(WireError::Protocol(_))
    ));
    assert!(matches!(
        read_one(&raw(0xA2, &[0, 1]), Level::V311),
        Err(WireError::Protocol(_))
    ));
    assert!(matches!(
        read_one(&raw(0x82, &[0, 1, 0]), Level::V5),
        Err(WireError::Protocol(_))
    ));
}
