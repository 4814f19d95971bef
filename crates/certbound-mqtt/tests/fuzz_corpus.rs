//! Replays the `mqtt_session` fuzz corpus (`fuzz/corpus/mqtt_session/`)
//! through the sans-IO session on stable: no input may panic or make the
//! session route or subscribe to anything the ACL forbids
//! ([`certbound_mqtt::fuzzing::session`] checks that).
//!
//! `CERTBOUND_WRITE_FUZZ_CORPUS=1 cargo test -p certbound-mqtt --test
//! fuzz_corpus write_seed_corpus` rewrites the seed files.
#![allow(missing_docs)]

use std::path::PathBuf;

use bytes::BytesMut;
use rumqttc::QoS;
use rumqttc::mqttbytes::v4::{
    Connect, LastWill, Packet, Publish, Subscribe, SubscribeFilter, Unsubscribe,
};

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/mqtt_session")
}

#[test]
fn replay_fuzz_corpus() {
    let dir = corpus_dir();
    let mut replayed = 0;
    let mut failures = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("corpus entry").path();
        let data = std::fs::read(&path).expect("corpus file");
        if let Err(panic) = std::panic::catch_unwind(|| certbound_mqtt::fuzzing::session(&data)) {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            failures.push(format!("{}: {what}", path.display()));
        }
        replayed += 1;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(replayed >= seeds().len(), "only {replayed} corpus files");
}

/// Seeds also hold truncations and bit flips of each other, so the replay
/// covers more than the happy paths even without a fuzzing run.
#[test]
fn mutated_seeds_never_break_the_rules() {
    for (_, seed) in seeds() {
        for cut in 0..seed.len() {
            certbound_mqtt::fuzzing::session(seed.get(..cut).unwrap_or_default());
        }
        for i in 2..seed.len() {
            for bit in [0x01u8, 0x10, 0x80] {
                let mut flipped = seed.clone();
                if let Some(b) = flipped.get_mut(i) {
                    *b ^= bit;
                }
                certbound_mqtt::fuzzing::session(&flipped);
            }
        }
    }
}

#[test]
fn write_seed_corpus() {
    if std::env::var("CERTBOUND_WRITE_FUZZ_CORPUS").as_deref() != Ok("1") {
        return;
    }
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).expect("corpus dir");
    for (name, data) in seeds() {
        std::fs::write(dir.join(format!("seed-{name}")), data).expect("write seed");
    }
}

fn encode(packets: &[Packet]) -> Vec<u8> {
    let mut buf = BytesMut::new();
    for p in packets {
        p.write(&mut buf, usize::MAX).expect("encodable");
    }
    buf.to_vec()
}

fn connect(keep_alive: u16) -> Packet {
    let mut c = Connect::new("client-1");
    c.keep_alive = keep_alive;
    Packet::Connect(c)
}

fn publish(topic: &str, qos: QoS, pkid: u16) -> Packet {
    let mut p = Publish::new(topic, qos, b"payload".to_vec());
    p.pkid = pkid;
    Packet::Publish(p)
}

fn subscribe(filters: &[&str]) -> Packet {
    Packet::Subscribe(Subscribe::new_many(
        filters
            .iter()
            .map(|f| SubscribeFilter::new((*f).to_owned(), QoS::AtLeastOnce)),
    ))
}

/// `(name, input)`: byte 0 the identity (0 device, 1 broker, 2 service,
/// 3 claim; +0x80 refuses the CONNECT), byte 1 the chunk size, then packets.
fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let with = |mode: u8, chunk: u8, packets: &[Packet]| {
        let mut v = vec![mode, chunk];
        v.extend(encode(packets));
        v
    };
    let device_session = [
        connect(30),
        subscribe(&[
            "cb/v1/sensor-1/token/res",
            "cb/v1/+/telemetry",
            "#",
            "$SYS/#",
        ]),
        publish("cb/v1/sensor-1/token/req", QoS::AtLeastOnce, 1),
        publish("cb/v1/sensor-1/telemetry", QoS::AtMostOnce, 0),
        Packet::PingReq,
        Packet::Unsubscribe(Unsubscribe::new("cb/v1/sensor-1/token/res")),
        Packet::Disconnect,
    ];
    let mut will = Connect::new("w");
    will.last_will = Some(LastWill::new(
        "cb/v1/sensor-1/status",
        "gone",
        QoS::AtLeastOnce,
        false,
    ));
    let mut invalid_utf8 = encode(&[connect(0)]);
    invalid_utf8.extend_from_slice(&[0x30, 0x08, 0x00, 0x03, b'a', 0xff, b'b', b'x', b'y', b'z']);
    vec![
        ("device", with(0, 63, &device_session)),
        ("device-bytewise", with(0, 0, &device_session)),
        (
            "device-spoofs-another",
            with(
                0,
                63,
                &[
                    connect(0),
                    publish("cb/v1/sensor-2/token/res", QoS::AtLeastOnce, 1),
                ],
            ),
        ),
        (
            "device-wildcard-publish",
            with(
                0,
                63,
                &[connect(0), publish("cb/v1/sensor-1/#", QoS::AtMostOnce, 0)],
            ),
        ),
        ("device-will", with(0, 63, &[Packet::Connect(will)])),
        ("device-invalid-utf8", {
            let mut v = vec![0, 63];
            v.extend(invalid_utf8);
            v
        }),
        (
            "broker",
            with(
                1,
                63,
                &[
                    connect(0),
                    subscribe(&[
                        "$share/certbound/cb/v1/+/token/req",
                        "$share/certbound/cb/v1/+/cert/req",
                    ]),
                    publish("cb/v1/sensor-1/token/res", QoS::AtLeastOnce, 7),
                ],
            ),
        ),
        (
            "service",
            with(
                2,
                63,
                &[
                    connect(0),
                    subscribe(&[
                        "cb/v1/+/telemetry",
                        "$share/ingest/cb/v1/+/telemetry",
                        "$share/certbound/cb/v1/+/token/req",
                    ]),
                    publish("cb/v1/sensor-1/token/res", QoS::AtLeastOnce, 1),
                ],
            ),
        ),
        (
            "claim",
            with(
                3,
                63,
                &[
                    connect(0),
                    subscribe(&["cb/claims/claim-c1/res/+"]),
                    publish("cb/claims/claim-c1/req", QoS::AtLeastOnce, 1),
                ],
            ),
        ),
        (
            "many-subscriptions",
            with(
                0,
                63,
                &[
                    connect(0),
                    subscribe(&[
                        "cb/v1/sensor-1/a",
                        "cb/v1/sensor-1/b",
                        "cb/v1/sensor-1/c",
                        "cb/v1/sensor-1/d",
                        "cb/v1/sensor-1/e",
                        "cb/v1/sensor-1/f",
                        "cb/v1/sensor-1/g",
                        "cb/v1/sensor-1/h",
                        "cb/v1/sensor-1/i",
                    ]),
                ],
            ),
        ),
        (
            "refused-connect",
            with(0x80, 63, &[connect(0), Packet::PingReq]),
        ),
        ("long-session", {
            // Two bytes a second: PINGREQs for longer than the certificate lives.
            let mut packets = vec![connect(5)];
            packets.extend(std::iter::repeat_n(Packet::PingReq, 60));
            with(0, 1, &packets)
        }),
    ]
}
