//! Replays every file of fuzz/corpus/coap_datagram/ through the
//! `coap_datagram` fuzz harness (no panic, no answer to an unverified
//! address beyond the amplification bound), plus seeded mutations of the
//! seeds. `CERTBOUND_WRITE_FUZZ_CORPUS=1` rewrites the seeds.

use std::path::PathBuf;

use certbound_coap::fuzzing;
use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType};

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/coap_datagram")
}

fn record(flags: u8, datagram: &[u8]) -> Vec<u8> {
    let len = u16::try_from(datagram.len()).unwrap_or(u16::MAX);
    let mut out = vec![flags];
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(datagram);
    out
}

fn request(
    method: RequestType,
    mid: u16,
    path: &str,
    options: &[(u16, Vec<u8>)],
    payload: &[u8],
) -> Vec<u8> {
    let mut p = Packet::new();
    p.header.set_type(MessageType::Confirmable);
    p.header.code = MessageClass::Request(method);
    p.header.message_id = mid;
    p.set_token(vec![1, 2, 3, 4]);
    for s in path.split('/').filter(|s| !s.is_empty()) {
        p.add_option(CoapOption::UriPath, s.as_bytes().to_vec());
    }
    for (n, v) in options {
        p.add_option(CoapOption::from(*n), v.clone());
    }
    p.payload = payload.to_vec();
    p.to_bytes_unlimited().expect("encodes")
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let get = |mid, path| request(RequestType::Get, mid, path, &[], b"");
    let mut echo_flow = record(0x0c, &get(1, ".well-known/est/crts"));
    echo_flow.extend(record(0x1c, &get(2, ".well-known/est/crts")));
    for num in 1..5u8 {
        echo_flow.extend(record(
            0x0c,
            &request(
                RequestType::Get,
                2 + u16::from(num),
                ".well-known/est/crts",
                &[(23, vec![(num << 4) | 6])],
                b"",
            ),
        ));
    }
    let mut block1 = Vec::new();
    for num in 0..4u8 {
        let more = if num < 3 { 8 } else { 0 };
        block1.extend(record(
            0x08,
            &request(
                RequestType::Post,
                20 + u16::from(num),
                "sren",
                &[(27, vec![(num << 4) | more | 2])],
                &[0x42; 64],
            ),
        ));
    }
    let mut replay = record(
        0x08,
        &request(RequestType::Get, 9, "crl", &[(2048, vec![0; 300])], b""),
    );
    replay.extend(record(0x08, &get(9, "crl")));
    let mut flood = Vec::new();
    for mid in 0..8u16 {
        flood.extend(record(
            0x40 | (mid as u8 & 3),
            &request(RequestType::Post, mid, "token", &[], &[0x84; 40]),
        ));
    }
    let mut stale = record(0x0d, &get(1, "crl"));
    stale.extend(record(0x3d, &get(2, "crl")));
    vec![
        ("seed-echo-then-block2", echo_flow),
        ("seed-block1-upload", block1),
        ("seed-short-replay", replay),
        ("seed-in-flight-cap", flood),
        ("seed-stale-echo", stale),
        ("seed-ping", record(0, &[0x40, 0x00, 0x12, 0x34])),
        (
            "seed-critical-option",
            record(0, &request(RequestType::Get, 3, "x", &[(9, vec![1])], b"")),
        ),
        (
            "seed-garbage",
            record(1, &[0x41, 0x01, 0x00, 0x01, 0xee, 0xff, 0xff]),
        ),
    ]
}

#[test]
fn write_seed_corpus() {
    if std::env::var("CERTBOUND_WRITE_FUZZ_CORPUS").as_deref() != Ok("1") {
        return;
    }
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).expect("corpus dir");
    for (name, data) in seeds() {
        std::fs::write(dir.join(name), data).expect("write seed");
    }
}

#[test]
fn replay_fuzz_corpus() {
    let dir = corpus_dir();
    let mut replayed = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}; run CERTBOUND_WRITE_FUZZ_CORPUS=1 cargo test -p certbound-coap --test fuzz_corpus", dir.display())) {
        let path = entry.expect("dir entry").path();
        let data = std::fs::read(&path).expect("read corpus file");
        fuzzing::run(&data);
        replayed += 1;
    }
    assert!(replayed >= seeds().len(), "only {replayed} corpus files");
}

#[test]
fn seeds_and_mutations_keep_the_bound() {
    // A small deterministic mutation round (xorshift) over the seeds.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for (_, seed) in seeds() {
        fuzzing::run(&seed);
        for _ in 0..300 {
            let mut m = seed.clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() as usize) % m.len().max(1);
                match next() % 3 {
                    0 if !m.is_empty() => m[at] ^= 1 << (next() % 8),
                    1 => m.insert(at.min(m.len()), next() as u8),
                    _ if m.len() > 1 => {
                        m.remove(at.min(m.len() - 1));
                    }
                    _ => {}
                }
            }
            fuzzing::run(&m);
        }
    }
}
