//! Amplification limit, Echo round trips and the in-flight cap of the server
//! endpoint, and our client exchange following the Echo (no sockets, virtual
//! clock).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use coap_lite::{CoapOption, MessageClass, MessageType, Packet};

use super::*;
use crate::block::BlockOption;
use crate::client_core::{ClientExchange, ExchangeParams, IdSource};
use crate::message::{self, opt};
use crate::reliability::TransmissionParams;
use crate::{CoapError, Method, Response, ResponseType, ServerConfig};

fn peer(last: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, last], 40000))
}

fn core(config: ServerConfig, t0: Instant) -> ServerCore {
    ServerCore::new(&config, 42, [3; 32], t0)
}

fn get(mid: u16, path: &str) -> Packet {
    let mut p = Packet::new();
    p.header.set_type(MessageType::Confirmable);
    p.header.code = MessageClass::Request(Method::Get);
    p.header.message_id = mid;
    p.set_token(vec![0xA0, mid as u8]);
    for s in path.split('/') {
        p.add_option(CoapOption::UriPath, s.as_bytes().to_vec());
    }
    p
}

fn bytes(p: &Packet) -> Vec<u8> {
    message::encode(p).unwrap_or_else(|e| panic!("{e}"))
}

fn parse(b: &[u8]) -> Packet {
    Packet::from_bytes(b).unwrap_or_else(|e| panic!("{e}"))
}

fn code(p: &Packet) -> ResponseType {
    message::response_type(p.header.code)
}

/// Sends `request` from `from` and answers a dispatch with `body`; returns the datagram sent.
fn exchange(
    c: &mut ServerCore,
    from: SocketAddr,
    request: &[u8],
    body: usize,
    now: Instant,
) -> Vec<u8> {
    let out = c.handle_datagram(from, request, now);
    if let Some((id, _)) = out.dispatch {
        let resp = Response::new(ResponseType::Content).with_payload(281, vec![0x30; body]);
        return c
            .complete(id, resp, now)
            .map(|t| t.bytes)
            .unwrap_or_else(|| panic!("no answer"));
    }
    out.transmit.map(|t| t.bytes).unwrap_or_default()
}

#[test]
fn large_answer_to_an_unverified_address_is_an_echo_challenge() {
    let t0 = Instant::now();
    let mut c = core(ServerConfig::default(), t0);
    let request = bytes(&get(1, ".well-known/est/crts"));
    let answer = exchange(&mut c, peer(1), &request, 3000, t0);
    let p = parse(&answer);
    assert_eq!(code(&p), ResponseType::Unauthorized);
    let echo = message::first(&p, ECHO)
        .map(<[u8]>::to_vec)
        .unwrap_or_default();
    assert_eq!(echo.len(), echo::ECHO_LEN);
    assert!(
        answer.len() <= 3 * request.len(),
        "{} > 3 x {}",
        answer.len(),
        request.len()
    );
    assert!(p.payload.is_empty());
    assert_eq!(c.stats().echo_challenges, 1);
    // The retransmission gets the same challenge; nothing else is kept.
    assert_eq!(exchange(&mut c, peer(1), &request, 3000, t0), answer);
    assert_eq!(c.block2.len(), 0);
    // The request repeated with the Echo is answered in full (first block)...
    let mut again = get(2, ".well-known/est/crts");
    message::set(&mut again, ECHO, echo);
    let full = parse(&exchange(
        &mut c,
        peer(1),
        &bytes(&again),
        3000,
        t0 + Duration::from_secs(5),
    ));
    assert_eq!(code(&full), ResponseType::Content);
    assert_eq!(full.payload.len(), 1024);
    assert_eq!(c.stats().echo_verified, 1);
    // ...and the later blocks need no further Echo (served from the cache).
    for num in 1..3u32 {
        let mut next = get(2 + num as u16, ".well-known/est/crts");
        let b2 = BlockOption {
            num,
            more: false,
            szx: 6,
        };
        message::set(&mut next, opt::BLOCK2, b2.encode());
        let out = c.handle_datagram(peer(1), &bytes(&next), t0 + Duration::from_secs(6));
        assert!(out.dispatch.is_none(), "block {num} comes from the cache");
        let p = parse(&out.transmit.map(|t| t.bytes).unwrap_or_default());
        assert_eq!(code(&p), ResponseType::Content, "block {num}");
    }
    assert_eq!(c.stats().echo_challenges, 1);
}

#[test]
fn echo_from_another_address_forged_or_stale_is_refused() {
    let t0 = Instant::now();
    let mut c = core(ServerConfig::default(), t0);
    let challenge = parse(&exchange(&mut c, peer(1), &bytes(&get(1, "crl")), 3000, t0));
    let echo = message::first(&challenge, ECHO)
        .map(<[u8]>::to_vec)
        .unwrap_or_default();
    // Peer 2 replays peer 1's Echo: still a challenge.
    let mut replay = get(2, "crl");
    message::set(&mut replay, ECHO, echo.clone());
    let p = parse(&exchange(&mut c, peer(2), &bytes(&replay), 3000, t0));
    assert_eq!(code(&p), ResponseType::Unauthorized);
    assert_ne!(message::first(&p, ECHO), Some(echo.as_slice()));
    // An altered Echo: a challenge.
    let mut forged = get(3, "crl");
    let mut altered = echo.clone();
    altered[5] ^= 0x40;
    message::set(&mut forged, ECHO, altered);
    assert_eq!(
        code(&parse(&exchange(
            &mut c,
            peer(1),
            &bytes(&forged),
            3000,
            t0
        ))),
        ResponseType::Unauthorized
    );
    // Peer 1's own Echo after the echo lifetime: a challenge with a new Echo.
    let mut stale = get(4, "crl");
    message::set(&mut stale, ECHO, echo);
    let late = t0 + Duration::from_secs(61);
    assert_eq!(
        code(&parse(&exchange(
            &mut c,
            peer(1),
            &bytes(&stale),
            3000,
            late
        ))),
        ResponseType::Unauthorized
    );
    assert_eq!(c.stats().echo_refused, 3);
    assert_eq!(c.stats().echo_verified, 0);
    assert_eq!(c.stats().verified_addresses, 0);
}

#[test]
fn small_answers_and_endpoint_diagnostics_need_no_echo() {
    let t0 = Instant::now();
    let mut c = core(ServerConfig::default(), t0);
    // An answer within 3x is sent as is.
    let request = bytes(&get(1, "token"));
    let p = parse(&exchange(&mut c, peer(1), &request, request.len(), t0));
    assert_eq!(code(&p), ResponseType::Content);
    // An unknown critical option gets 4.02; its diagnostic is dropped to fit.
    let mut bad = get(2, "x");
    bad.add_option(CoapOption::Unknown(9), vec![1]);
    let bad = bytes(&bad);
    let answer = exchange(&mut c, peer(1), &bad, 0, t0);
    assert!(answer.len() <= 3 * bad.len());
    assert_eq!(code(&parse(&answer)), ResponseType::BadOption);
    assert_eq!(c.stats().echo_challenges, 0);
}

#[test]
fn short_datagram_reusing_a_message_id_gets_no_replay() {
    let t0 = Instant::now();
    let mut c = core(ServerConfig::default(), t0);
    // A long request (padded with an elective option) earns a 1 KB answer.
    let mut long = get(9, "crts");
    long.add_option(CoapOption::Unknown(2048), vec![0; 400]);
    let long = bytes(&long);
    let answer = exchange(&mut c, peer(1), &long, 1000, t0);
    assert_eq!(code(&parse(&answer)), ResponseType::Content);
    // The same message id in a 4-byte-header datagram: not replayed.
    let short = bytes(&get(9, "crts"));
    let out = c.handle_datagram(peer(1), &short, t0);
    assert!(out.transmit.is_none() && out.dispatch.is_none());
    assert_eq!(c.stats().amplification_drops, 1);
    // The real retransmission still gets its answer.
    assert_eq!(exchange(&mut c, peer(1), &long, 1000, t0), answer);
}

#[test]
fn in_flight_cap_answers_5_03_and_drops_non() {
    let t0 = Instant::now();
    let config = ServerConfig {
        max_in_flight: 2,
        ..ServerConfig::default()
    };
    let mut c = core(config, t0);
    let mut ids = Vec::new();
    for mid in 1..=2u16 {
        let out = c.handle_datagram(peer(1), &bytes(&get(mid, "token")), t0);
        ids.push(
            out.dispatch
                .map(|(id, _)| id)
                .unwrap_or_else(|| panic!("dispatched")),
        );
    }
    let third = bytes(&get(3, "token"));
    let out = c.handle_datagram(peer(1), &third, t0);
    assert!(out.dispatch.is_none());
    let p = parse(&out.transmit.map(|t| t.bytes).unwrap_or_default());
    assert_eq!(code(&p), ResponseType::ServiceUnavailable);
    assert_eq!(message::first(&p, opt::MAX_AGE), Some(&[2u8][..]));
    let mut non = get(4, "token");
    non.header.set_type(MessageType::NonConfirmable);
    let out = c.handle_datagram(peer(1), &bytes(&non), t0);
    assert!(out.transmit.is_none() && out.dispatch.is_none());
    assert_eq!(c.stats().overloaded, 2);
    assert_eq!(c.stats().in_flight, 2);
    // Once a handler finishes, the retransmitted third request is processed.
    let done = c.complete(ids[0], Response::new(ResponseType::Created), t0);
    assert!(done.is_some());
    assert!(c.handle_datagram(peer(1), &third, t0).dispatch.is_some());
}

#[test]
fn dedup_cache_stays_within_its_byte_bound() {
    let t0 = Instant::now();
    let config = ServerConfig {
        dedup_bytes: 64 * 1024,
        amplification_factor: 0,
        ..ServerConfig::default()
    };
    let mut c = core(config, t0);
    for mid in 0..2000u16 {
        let answer = exchange(&mut c, peer(1), &bytes(&get(mid, "crts")), 1000, t0);
        assert!(!answer.is_empty());
        assert!(c.stats().dedup_bytes <= 64 * 1024);
    }
    assert!(c.stats().dedup_entries < 100);
}

struct Ids(u16);

impl IdSource for Ids {
    fn message_id(&mut self) -> u16 {
        self.0 = self.0.wrapping_add(1);
        self.0
    }
    fn token(&mut self) -> Vec<u8> {
        self.0.to_be_bytes().to_vec()
    }
    fn random(&mut self) -> f64 {
        0.0
    }
}

/// Runs a client exchange against the server core; the handler answers every
/// complete request with `answer_len` bytes. Returns the response and the
/// request bodies the handler saw.
fn client_run(
    c: &mut ServerCore,
    from: SocketAddr,
    method: Method,
    body: Vec<u8>,
    szx: u8,
    answer_len: usize,
    now: Instant,
) -> (Result<Response, CoapError>, Vec<Vec<u8>>) {
    let params = ExchangeParams {
        transmission: TransmissionParams {
            ack_timeout: Duration::from_secs(2),
            ack_random_factor: 1.5,
            max_retransmit: 4,
        },
        szx,
        max_body: 1 << 20,
    };
    let mut ids = Ids(500);
    let mut seen = Vec::new();
    let mut x = ClientExchange::new(method, "res", Some(60), body, params)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut datagram = x.start(&mut ids, now).unwrap_or_else(|e| panic!("{e}"));
    for _ in 0..500 {
        let out = c.handle_datagram(from, &datagram, now);
        let reply = match out.dispatch {
            Some((id, request)) => {
                seen.push(request.payload);
                let resp =
                    Response::new(ResponseType::Content).with_payload(60, vec![7; answer_len]);
                c.complete(id, resp, now).map(|t| t.bytes)
            }
            None => out.transmit.map(|t| t.bytes),
        };
        let step = x.on_packet(
            &parse(&reply.unwrap_or_else(|| panic!("silence"))),
            &mut ids,
            now,
        );
        if let Some(done) = step.done {
            return (done, seen);
        }
        datagram = step
            .transmit
            .last()
            .cloned()
            .unwrap_or_else(|| panic!("client sent nothing"));
    }
    panic!("exchange did not end");
}

#[test]
fn our_client_follows_the_echo_for_get_and_block1_post() {
    let t0 = Instant::now();
    let mut c = core(ServerConfig::default(), t0);
    let (r, _) = client_run(&mut c, peer(1), Method::Get, Vec::new(), 6, 5000, t0);
    let r = r.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((r.code, r.payload.len()), (ResponseType::Content, 5000));
    assert_eq!(c.stats().echo_challenges, 1);
    assert_eq!(c.stats().echo_verified, 1);
    // A Block1 upload whose answer is too large restarts from block 0 with the Echo.
    let mut c = core(ServerConfig::default(), t0);
    let body: Vec<u8> = (0..100u8).collect();
    let (r, seen) = client_run(&mut c, peer(2), Method::Post, body.clone(), 0, 3000, t0);
    let r = r.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((r.code, r.payload.len()), (ResponseType::Content, 3000));
    assert_eq!(seen, vec![body.clone(), body]);
    assert_eq!(c.stats().echo_challenges, 1);
}

#[test]
fn our_client_gives_up_after_repeated_challenges() {
    let t0 = Instant::now();
    // verified_lifetime 0: the Echo verifies nothing for long; every answer is a challenge.
    let config = ServerConfig {
        verified_lifetime: Duration::ZERO,
        ..ServerConfig::default()
    };
    let mut c = core(config, t0);
    let (r, _) = client_run(&mut c, peer(1), Method::Get, Vec::new(), 6, 5000, t0);
    let r = r.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.code, ResponseType::Unauthorized);
    assert_eq!(c.stats().echo_challenges, 3);
}
