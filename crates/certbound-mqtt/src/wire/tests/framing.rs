//! The fixed header and the byte stream: size limits, remaining lengths,
//! header flags, packet types per level, incomplete input, short v5 acks,
//! trailing bytes and the QoS bits.

use super::*;
use bytes::{BufMut, BytesMut};
use rumqttc::v5::mqttbytes as r5q;

fn r5qos(q: QoS) -> r5q::QoS {
    match q {
        QoS::AtMostOnce => r5q::QoS::AtMostOnce,
        QoS::AtLeastOnce => r5q::QoS::AtLeastOnce,
        QoS::ExactlyOnce => r5q::QoS::ExactlyOnce,
    }
}

#[test]
fn too_large_is_refused_before_the_body_arrives() {
    // PUBLISH announcing 16 383 bytes; none of them here.
    let mut buf = BytesMut::from(&[0x30, 0xFF, 0x7F][..]);
    assert_eq!(
        read(&mut buf, Level::V311, 100),
        Err(WireError::TooLarge {
            size: 16_383,
            max: 100
        })
    );
    // Exactly the limit is fine (incomplete here).
    let mut buf = BytesMut::from(&[0x30, 0x64][..]);
    assert_eq!(read(&mut buf, Level::V311, 100), Ok(None));
    assert_eq!(buf.len(), 2, "nothing consumed");
    assert_eq!(
        WireError::TooLarge { size: 1, max: 0 }.reason_code(),
        reason::PACKET_TOO_LARGE
    );
}

#[test]
fn remaining_length_of_five_bytes_is_malformed() {
    for bytes in [
        &[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01][..],
        &[0x30, 0x80, 0x80, 0x80, 0x80][..],
    ] {
        let err = read_one(bytes, Level::V5).expect_err("five bytes");
        assert!(matches!(err, WireError::Malformed(_)), "{err:?}");
        assert_eq!(err.reason_code(), reason::MALFORMED_PACKET);
    }
    // The largest four-byte value is allowed (and too large here).
    assert_eq!(
        read(
            &mut BytesMut::from(&[0x30, 0xFF, 0xFF, 0xFF, 0x7F][..]),
            Level::V5,
            10
        ),
        Err(WireError::TooLarge {
            size: 268_435_455,
            max: 10
        })
    );
}

#[test]
fn bad_fixed_header_flags_are_malformed() {
    let subscribe_body = [&[0, 1][..], &string(b"a"), &[0]].concat();
    for (first, body) in [
        (0x80u8, subscribe_body.clone()), // SUBSCRIBE without 0b0010
        (0x83, subscribe_body),
        (0xA0, [&[0, 1][..], &string(b"a")].concat()), // UNSUBSCRIBE
        (0x60, vec![0, 1]),                            // PUBREL
        (0x42, vec![0, 1]),                            // PUBACK
        (0xC1, vec![]),                                // PINGREQ
        (0xE2, vec![]),                                // DISCONNECT
        (0x11, vec![]),                                // CONNECT
    ] {
        for level in [Level::V311, Level::V5] {
            assert!(
                matches!(
                    read_one(&raw(first, &body), level),
                    Err(WireError::Malformed(_))
                ),
                "first byte 0x{first:02x} at {level:?}"
            );
        }
    }
}

#[test]
fn publish_flags_qos3_and_dup_on_qos0_are_malformed() {
    let body = [&string(b"t")[..], &[0, 1], b"x"].concat();
    assert!(matches!(
        read_one(&raw(0x36, &body), Level::V311),
        Err(WireError::Malformed(_))
    ));
    let body0 = [&string(b"t")[..], b"x"].concat();
    assert!(matches!(
        read_one(&raw(0x38, &body0), Level::V311),
        Err(WireError::Malformed(_))
    ));
    // DUP on QoS 1 is fine.
    assert!(matches!(
        read_one(&raw(0x3A, &body), Level::V311),
        Ok(Some(Packet::Publish(Publish {
            dup: true,
            qos: Q1,
            pkid: 1,
            ..
        })))
    ));
}

#[test]
fn incomplete_input_returns_none_and_consumes_nothing() {
    let packets = [
        (Packet::Connect(Box::new(connect_v5())), Level::V5),
        (
            Packet::Publish(Publish {
                dup: false,
                qos: Q1,
                retain: false,
                topic: "t".into(),
                pkid: 1,
                payload: Bytes::from(vec![1u8; 300]),
                props: publish_props(),
            }),
            Level::V5,
        ),
        (Packet::PingReq, Level::V311),
        (Packet::Connect(Box::new(connect_v311())), Level::V311),
    ];
    for (packet, level) in packets {
        let full = encode(&packet, level);
        for cut in 0..full.len() {
            let mut buf = BytesMut::from(&full[..cut]);
            assert_eq!(
                read(&mut buf, level, BIG),
                Ok(None),
                "{} cut at {cut}",
                packet.name()
            );
            assert_eq!(buf.len(), cut, "nothing consumed");
        }
        // Two packets back to back: one at a time.
        let mut buf = full.clone();
        buf.extend_from_slice(&full);
        buf.put_u8(0xC0); // start of a third
        assert_eq!(read(&mut buf, level, BIG), Ok(Some(packet.clone())));
        assert_eq!(read(&mut buf, level, BIG), Ok(Some(packet.clone())));
        assert_eq!(read(&mut buf, level, BIG), Ok(None));
        assert_eq!(&buf[..], &[0xC0]);
    }
    assert_eq!(read(&mut BytesMut::new(), Level::V5, BIG), Ok(None));
}

#[test]
fn auth_does_not_exist_in_mqtt_311() {
    assert!(matches!(
        read_one(&[0xF0, 0x00], Level::V311),
        Err(WireError::Malformed(_))
    ));
    assert_eq!(
        read_one(&[0xF0, 0x00], Level::V5),
        Ok(Some(Packet::Auth(Reasoned::default())))
    );
    let mut out = BytesMut::new();
    assert!(matches!(
        write(&Packet::Auth(Reasoned::default()), Level::V311, &mut out),
        Err(WireError::Protocol(_))
    ));
    assert!(out.is_empty());
    // Packet type 0 exists in neither.
    for level in [Level::V311, Level::V5] {
        assert!(matches!(
            read_one(&[0x00, 0x00], level),
            Err(WireError::Malformed(_))
        ));
    }
}

#[test]
fn v5_disconnect_and_acks_without_reason_code_read_as_success() {
    assert_eq!(
        read_one(&[0xE0, 0x00], Level::V5),
        Ok(Some(Packet::Disconnect(Reasoned::default())))
    );
    // Reason code only (no property length).
    assert_eq!(
        read_one(&[0xE0, 0x01, 0x04], Level::V5),
        Ok(Some(Packet::Disconnect(Reasoned {
            code: reason::DISCONNECT_WITH_WILL,
            props: Properties::default()
        })))
    );
    assert_eq!(
        read_one(&[0x40, 0x02, 0, 7], Level::V5),
        Ok(Some(Packet::PubAck(ack(7))))
    );
    assert_eq!(
        read_one(&[0x50, 0x03, 0, 7, 0x10], Level::V5),
        Ok(Some(Packet::PubRec(Ack {
            pkid: 7,
            code: 0x10,
            props: Properties::default()
        })))
    );
    // We write a successful ack in two bytes, DISCONNECT in none.
    assert_eq!(
        &encode(&Packet::PubComp(ack(7)), Level::V5)[..],
        &[0x70, 2, 0, 7]
    );
    assert_eq!(
        &encode(&Packet::Disconnect(Reasoned::default()), Level::V5)[..],
        &[0xE0, 0]
    );
}

#[test]
fn trailing_bytes_are_malformed() {
    for (bytes, level) in [
        (&[0xC0, 0x01, 0x00][..], Level::V311), // PINGREQ with a body
        (&[0x40, 0x03, 0, 1, 0][..], Level::V311), // PUBACK with a code in 3.1.1
        (&[0x20, 0x03, 0, 0, 0][..], Level::V311), // CONNACK with a byte more
        (&[0x20, 0x02, 0x02, 0][..], Level::V311), // CONNACK with reserved flags
    ] {
        assert!(
            matches!(read_one(bytes, level), Err(WireError::Malformed(_))),
            "{bytes:?}"
        );
    }
}

#[test]
fn qos_bits_both_ways() {
    for q in [Q0, Q1, Q2] {
        assert_eq!(qos_from(qos_bits(q)), Some(q));
        assert_eq!(qos_bits(q), r5qos(q) as u8);
    }
    assert_eq!(qos_from(3), None);
}
