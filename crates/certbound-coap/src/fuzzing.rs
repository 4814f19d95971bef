//! The `coap_datagram` fuzz harness (fuzz/fuzz_targets/coap_datagram.rs),
//! public so the corpus can be replayed on stable
//! (tests/fuzz_corpus.rs). Not part of the supported API.
//!
//! The input is a series of records `[flags, len_hi, len_lo, datagram...]`
//! fed to one [`ServerCore`] with a fixed clock. `flags & 3` picks one of
//! four source addresses; `(flags >> 2) & 3` the size of the handler's answer
//! (0, 40, 1 000 or 5 000 bytes); `0x10` puts the last Echo value that
//! address was sent into the datagram (when it parses), so the fuzzer reaches
//! verified addresses and Block2 transfers; `0x20` moves the clock 61 s on;
//! `0x40` leaves the request with the handler (the in-flight cap).
//!
//! Properties (a panic otherwise): no panic; every datagram to an address the
//! endpoint does not count as verified is at most 3 times the datagram that
//! caused it (plus, after a Block1 upload or within a Block2 transfer, the
//! allowance of what the address sent), or an Echo challenge at most 16
//! bytes longer than that datagram.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use coap_lite::Packet;

use crate::echo::ECHO;
use crate::message::{self, opt};
use crate::server_core::{ServerCore, is_challenge};
use crate::{Response, ResponseType, ServerConfig};

const FACTOR: usize = 3;

/// Runs one fuzz input; panics when a property fails.
pub fn run(data: &[u8]) {
    let t0 = Instant::now();
    let config = ServerConfig {
        max_body: 4096,
        max_in_flight: 4,
        dedup_capacity: 64,
        dedup_bytes: 16 * 1024,
        ..ServerConfig::default()
    };
    let mut core = ServerCore::new(&config, 7, [5; 32], t0);
    let mut now = t0;
    let mut echoes: HashMap<SocketAddr, Vec<u8>> = HashMap::new();
    // Bytes received from each address since start: the loosest honest bound
    // for answers that complete a Block1 upload or continue a Block2 transfer.
    let mut received: HashMap<SocketAddr, usize> = HashMap::new();
    let mut held = Vec::new();
    let mut rest = data;
    while let [flags, hi, lo, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
        let (datagram, next) = tail.split_at(len);
        rest = next;
        let peer = SocketAddr::from(([127, 0, 0, 1 + (flags & 3)], 5683));
        if flags & 0x20 != 0 {
            now += Duration::from_secs(61);
        }
        let mut datagram = datagram.to_vec();
        if flags & 0x10 != 0
            && let (Some(echo), Ok(mut p)) = (echoes.get(&peer), Packet::from_bytes(&datagram))
        {
            message::set(&mut p, ECHO, echo.clone());
            if let Ok(bytes) = message::encode(&p) {
                datagram = bytes;
            }
        }
        *received.entry(peer).or_default() += datagram.len();
        let outcome = core.handle_datagram(peer, &datagram, now);
        let mut sent = Vec::new();
        sent.extend(outcome.transmit);
        if let Some((id, request)) = outcome.dispatch {
            if flags & 0x40 != 0 {
                held.push(id);
            } else {
                let size = [0, 40, 1000, 5000][usize::from((flags >> 2) & 3)];
                let response =
                    Response::new(ResponseType::Content).with_payload(0, vec![0x61; size]);
                sent.extend(core.complete(id, response, now));
                let _ = request;
            }
        }
        for t in sent {
            assert_eq!(t.peer, peer, "an answer went to another address");
            if let Ok(p) = Packet::from_bytes(&t.bytes)
                && let Some(echo) = message::first(&p, ECHO)
            {
                echoes.insert(peer, echo.to_vec());
            }
            if core.guard_is_verified(&peer, now) {
                continue;
            }
            let per_datagram = FACTOR * datagram.len();
            if t.bytes.len() <= per_datagram {
                continue;
            }
            if is_challenge(&t.bytes) {
                assert!(
                    t.bytes.len() <= datagram.len() + 16,
                    "an Echo challenge of {} bytes for a {}-byte datagram",
                    t.bytes.len(),
                    datagram.len()
                );
                continue;
            }
            let block_wise = Packet::from_bytes(&datagram).is_ok_and(|p| {
                message::first(&p, opt::BLOCK1).is_some()
                    || message::first(&p, opt::BLOCK2).is_some()
            });
            let total = received.get(&peer).copied().unwrap_or(0);
            assert!(
                block_wise && t.bytes.len() <= FACTOR * total,
                "{} bytes to an unverified address for a {}-byte datagram ({} received in all)",
                t.bytes.len(),
                datagram.len(),
                total
            );
        }
    }
    for id in held {
        let _ = core.complete(id, Response::new(ResponseType::Content), now);
    }
}
