//! Unit tests of the server endpoint state machine (no sockets, virtual clock).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use coap_lite::{CoapOption, MessageClass, MessageType, Packet};

use super::*;
use crate::block::BlockOption;
use crate::message::{self, opt};
use crate::{Method, Response, ResponseType, ServerConfig};

fn peer() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 40000))
}

fn core(max_body: usize) -> ServerCore {
    let config = ServerConfig {
        max_body,
        // These tests are about the protocol: amplification has its own tests.
        amplification_factor: 0,
        ..ServerConfig::default()
    };
    ServerCore::new(&config, 42, [1; 32], Instant::now())
}

fn request(kind: MessageType, method: Method, mid: u16, path: &str, payload: &[u8]) -> Packet {
    let mut p = Packet::new();
    p.header.set_type(kind);
    p.header.code = MessageClass::Request(method);
    p.header.message_id = mid;
    p.set_token(vec![mid as u8, 0xAA]);
    for s in path.split('/') {
        p.add_option(CoapOption::UriPath, s.as_bytes().to_vec());
    }
    p.payload = payload.to_vec();
    p
}

fn bytes(p: &Packet) -> Vec<u8> {
    message::encode(p).unwrap_or_else(|e| panic!("{e}"))
}

fn sent(outcome: &Outcome) -> Packet {
    let t = outcome
        .transmit
        .as_ref()
        .unwrap_or_else(|| panic!("nothing sent"));
    Packet::from_bytes(&t.bytes).unwrap_or_else(|e| panic!("{e}"))
}

fn code(p: &Packet) -> ResponseType {
    message::response_type(p.header.code)
}

fn block_of(p: &Packet, number: u16) -> Option<BlockOption> {
    message::first(p, number).and_then(|v| BlockOption::decode(v).ok())
}

#[test]
fn ping_gets_reset() {
    let mut c = core(1000);
    let out = c.handle_datagram(peer(), &[0x40, 0x00, 0x12, 0x34], Instant::now());
    let p = sent(&out);
    assert_eq!(p.header.get_type(), MessageType::Reset);
    assert_eq!(p.header.message_id, 0x1234);
    assert_eq!(c.stats().pings, 1);
}

#[test]
fn con_request_piggybacked_and_deduplicated() {
    let now = Instant::now();
    let mut c = core(1000);
    let req = bytes(&request(
        MessageType::Confirmable,
        Method::Post,
        7,
        "token",
        b"abc",
    ));
    let out = c.handle_datagram(peer(), &req, now);
    assert!(out.transmit.is_none());
    let (id, r) = out.dispatch.unwrap_or_else(|| panic!("not dispatched"));
    assert_eq!(
        (r.method, r.path.as_str(), r.payload.as_slice()),
        (Method::Post, "token", &b"abc"[..])
    );
    // Duplicate while the handler runs: dropped.
    let dup = c.handle_datagram(peer(), &req, now);
    assert!(dup.transmit.is_none() && dup.dispatch.is_none());
    let resp = Response::new(ResponseType::Created).with_payload(19, vec![0xa0]);
    let t = c
        .complete(id, resp, now)
        .unwrap_or_else(|| panic!("no response"));
    let p = Packet::from_bytes(&t.bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.header.get_type(), MessageType::Acknowledgement);
    assert_eq!(p.header.message_id, 7);
    assert_eq!(p.get_token(), &[7, 0xAA]);
    assert_eq!(code(&p), ResponseType::Created);
    assert_eq!(message::first(&p, opt::CONTENT_FORMAT), Some(&[19u8][..]));
    // Duplicate after the response: same bytes, no second dispatch.
    let again = c.handle_datagram(peer(), &req, now + Duration::from_secs(5));
    assert!(again.dispatch.is_none());
    assert_eq!(again.transmit.map(|t| t.bytes), Some(t.bytes));
    assert_eq!(c.stats().dispatched, 1);
    assert_eq!(c.stats().duplicates, 2);
    // After EXCHANGE_LIFETIME the id may be reused for a new request.
    let later = c.handle_datagram(peer(), &req, now + Duration::from_secs(248));
    assert!(later.dispatch.is_some());
}

/// Under load: 20 000 requests from other endpoints arrive between a request
/// and its retransmission (a fleet at ~1 000 requests/s, first retransmission
/// after 2-3 s). The retransmission must still get the cached answer, not be
/// dispatched again (the broker would refuse it as a replay).
#[test]
fn retransmission_after_a_burst_is_still_deduplicated() {
    let now = Instant::now();
    let mut c = core(1000);
    let req = bytes(&request(
        MessageType::Confirmable,
        Method::Post,
        9,
        "token",
        b"x",
    ));
    let (id, _) = c
        .handle_datagram(peer(), &req, now)
        .dispatch
        .unwrap_or_else(|| panic!("not dispatched"));
    let answer = c
        .complete(id, Response::new(ResponseType::Created), now)
        .unwrap_or_else(|| panic!("no response"));
    for i in 0..20_000u32 {
        let other = SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 5683));
        let r = bytes(&request(
            MessageType::Confirmable,
            Method::Post,
            1,
            "token",
            b"y",
        ));
        let out = c.handle_datagram(other, &r, now + Duration::from_millis(u64::from(i) / 10));
        let (id, _) = out
            .dispatch
            .unwrap_or_else(|| panic!("request {i} not dispatched"));
        c.complete(id, Response::new(ResponseType::Created), now);
    }
    let retransmitted = c.handle_datagram(peer(), &req, now + Duration::from_secs(3));
    assert!(retransmitted.dispatch.is_none(), "dispatched twice");
    assert_eq!(retransmitted.transmit.map(|t| t.bytes), Some(answer.bytes));
}

#[test]
fn non_request_gets_non_response() {
    let now = Instant::now();
    let mut c = core(1000);
    let req = bytes(&request(
        MessageType::NonConfirmable,
        Method::Get,
        9,
        "crl",
        b"",
    ));
    let (id, _) = c
        .handle_datagram(peer(), &req, now)
        .dispatch
        .unwrap_or_else(|| panic!("no dispatch"));
    let t = c
        .complete(id, Response::new(ResponseType::Content), now)
        .unwrap_or_else(|| panic!("none"));
    let p = Packet::from_bytes(&t.bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.header.get_type(), MessageType::NonConfirmable);
    assert_eq!(p.get_token(), &[9, 0xAA]);
}

#[test]
fn garbage_is_counted_and_dropped_or_reset() {
    let now = Instant::now();
    let mut c = core(1000);
    for junk in [
        &[][..],
        &[0x40][..],
        &[0xff; 3][..],
        &[0x80, 0x01, 0, 1][..],
    ] {
        let out = c.handle_datagram(peer(), junk, now);
        assert!(out.transmit.is_none() && out.dispatch.is_none(), "{junk:?}");
    }
    // CON with token length 9 (invalid): RST.
    let out = c.handle_datagram(
        peer(),
        &[0x49, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        now,
    );
    assert_eq!(sent(&out).header.get_type(), MessageType::Reset);
    // A response sent to the server as CON: RST.
    let mut resp = request(MessageType::Confirmable, Method::Get, 11, "x", b"");
    resp.header.code = MessageClass::Response(ResponseType::Content);
    assert_eq!(
        sent(&c.handle_datagram(peer(), &bytes(&resp), now))
            .header
            .get_type(),
        MessageType::Reset
    );
    assert_eq!(c.stats().malformed, 6);
    assert_eq!(c.stats().dispatched, 0);
}

#[test]
fn unknown_critical_option_gets_bad_option() {
    let now = Instant::now();
    let mut c = core(1000);
    let mut req = request(MessageType::Confirmable, Method::Get, 12, "x", b"");
    req.add_option(CoapOption::Unknown(2049), vec![1]);
    let out = c.handle_datagram(peer(), &bytes(&req), now);
    assert_eq!(code(&sent(&out)), ResponseType::BadOption);
    assert!(out.dispatch.is_none());
    // The same message as NON is rejected silently.
    req.header.set_type(MessageType::NonConfirmable);
    req.header.message_id = 13;
    let out = c.handle_datagram(peer(), &bytes(&req), now);
    assert!(out.transmit.is_none() && out.dispatch.is_none());
}

fn block1_request(mid: u16, body: &[u8], num: u32, szx: u8) -> Vec<u8> {
    let (chunk, more) = crate::block::slice(body, num, szx).unwrap_or_else(|| panic!("range"));
    let mut p = request(MessageType::Confirmable, Method::Post, mid, "sren", chunk);
    message::set(&mut p, opt::BLOCK1, BlockOption { num, more, szx }.encode());
    bytes(&p)
}

#[test]
fn block1_reassembly_through_the_endpoint() {
    let now = Instant::now();
    let mut c = core(1000);
    let body: Vec<u8> = (0..100u8).collect();
    for num in 0..3u32 {
        let out = c.handle_datagram(peer(), &block1_request(20 + num as u16, &body, num, 1), now);
        let p = sent(&out);
        assert_eq!(code(&p), ResponseType::Continue);
        assert_eq!(
            block_of(&p, opt::BLOCK1),
            Some(BlockOption {
                num,
                more: true,
                szx: 1
            })
        );
    }
    let out = c.handle_datagram(peer(), &block1_request(23, &body, 3, 1), now);
    let (id, r) = out.dispatch.unwrap_or_else(|| panic!("not dispatched"));
    assert_eq!(r.payload, body);
    let t = c
        .complete(id, Response::new(ResponseType::Changed), now)
        .unwrap_or_else(|| panic!("none"));
    let p = Packet::from_bytes(&t.bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(code(&p), ResponseType::Changed);
    assert_eq!(
        block_of(&p, opt::BLOCK1),
        Some(BlockOption {
            num: 3,
            more: false,
            szx: 1
        })
    );
}

#[test]
fn block1_gap_and_too_large() {
    let now = Instant::now();
    let mut c = core(64);
    let body = vec![1u8; 200];
    let _ = c.handle_datagram(peer(), &block1_request(30, &body, 0, 0), now);
    let out = c.handle_datagram(peer(), &block1_request(31, &body, 2, 0), now);
    assert_eq!(code(&sent(&out)), ResponseType::RequestEntityIncomplete);
    for num in 0..4u32 {
        let _ = c.handle_datagram(peer(), &block1_request(40 + num as u16, &body, num, 0), now);
    }
    let out = c.handle_datagram(peer(), &block1_request(44, &body, 4, 0), now);
    let p = sent(&out);
    assert_eq!(code(&p), ResponseType::RequestEntityTooLarge);
    assert_eq!(message::first(&p, opt::SIZE1), Some(&[64u8][..]));
    // A plain request over the limit is refused too.
    let big = bytes(&request(
        MessageType::Confirmable,
        Method::Post,
        50,
        "x",
        &body,
    ));
    assert_eq!(
        code(&sent(&c.handle_datagram(peer(), &big, now))),
        ResponseType::RequestEntityTooLarge
    );
    assert_eq!(c.stats().dispatched, 0);
}

#[test]
fn block2_served_from_cache_with_requested_size() {
    let now = Instant::now();
    let mut c = core(1000);
    let body: Vec<u8> = (0..150u8).collect();
    let mut req = request(MessageType::Confirmable, Method::Get, 60, "crts", b"");
    message::set(
        &mut req,
        opt::BLOCK2,
        BlockOption {
            num: 0,
            more: false,
            szx: 2,
        }
        .encode(),
    );
    let (id, _) = c
        .handle_datagram(peer(), &bytes(&req), now)
        .dispatch
        .unwrap_or_else(|| panic!("no"));
    let resp = Response::new(ResponseType::Content).with_payload(281, body.clone());
    let t = c.complete(id, resp, now).unwrap_or_else(|| panic!("none"));
    let first = Packet::from_bytes(&t.bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        block_of(&first, opt::BLOCK2),
        Some(BlockOption {
            num: 0,
            more: true,
            szx: 2
        })
    );
    assert_eq!(message::first(&first, opt::SIZE2), Some(&[150u8][..]));
    let etag = message::first(&first, opt::ETAG).map(<[u8]>::to_vec);
    assert!(etag.is_some());
    let mut got = first.payload;
    for num in 1..3u32 {
        let mut next = request(
            MessageType::Confirmable,
            Method::Get,
            60 + num as u16,
            "crts",
            b"",
        );
        message::set(
            &mut next,
            opt::BLOCK2,
            BlockOption {
                num,
                more: false,
                szx: 2,
            }
            .encode(),
        );
        let out = c.handle_datagram(peer(), &bytes(&next), now);
        assert!(out.dispatch.is_none(), "served from the cache");
        let p = sent(&out);
        assert_eq!(message::first(&p, opt::ETAG).map(<[u8]>::to_vec), etag);
        assert_eq!(block_of(&p, opt::BLOCK2).map(|b| b.more), Some(num < 2));
        got.extend_from_slice(&p.payload);
    }
    assert_eq!(got, body);
    assert_eq!(c.stats().dispatched, 1);
    // A POST follow-up whose state is gone is refused instead of re-running the handler.
    let mut post = request(MessageType::Confirmable, Method::Post, 70, "sren", b"");
    message::set(
        &mut post,
        opt::BLOCK2,
        BlockOption {
            num: 1,
            more: false,
            szx: 2,
        }
        .encode(),
    );
    assert_eq!(
        code(&sent(&c.handle_datagram(peer(), &bytes(&post), now))),
        ResponseType::BadRequest
    );
}

#[test]
fn large_response_uses_server_block_size_by_default() {
    let now = Instant::now();
    let mut c = core(1000);
    let req = bytes(&request(
        MessageType::Confirmable,
        Method::Get,
        80,
        "big",
        b"",
    ));
    let (id, _) = c
        .handle_datagram(peer(), &req, now)
        .dispatch
        .unwrap_or_else(|| panic!("no"));
    let resp = Response::new(ResponseType::Content).with_payload(0, vec![0; 3000]);
    let t = c.complete(id, resp, now).unwrap_or_else(|| panic!("none"));
    let p = Packet::from_bytes(&t.bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        block_of(&p, opt::BLOCK2),
        Some(BlockOption {
            num: 0,
            more: true,
            szx: 6
        })
    );
    assert_eq!(p.payload.len(), 1024);
}
