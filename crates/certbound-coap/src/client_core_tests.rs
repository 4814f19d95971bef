//! Unit tests of the client exchange state machine (virtual clock, fake ids).

use std::time::{Duration, Instant};

use coap_lite::{CoapOption, MessageClass, MessageType, Packet};

use super::*;
use crate::block::BlockOption;
use crate::message::{self, opt};

struct FakeIds {
    mid: u16,
    token: u8,
}

impl IdSource for FakeIds {
    fn message_id(&mut self) -> u16 {
        self.mid += 1;
        self.mid
    }
    fn token(&mut self) -> Vec<u8> {
        self.token += 1;
        vec![self.token; 4]
    }
    fn random(&mut self) -> f64 {
        0.0
    }
}

fn ids() -> FakeIds {
    FakeIds { mid: 100, token: 0 }
}

fn params(szx: u8, max_body: usize) -> ExchangeParams {
    ExchangeParams {
        transmission: TransmissionParams {
            ack_timeout: Duration::from_secs(2),
            ack_random_factor: 1.5,
            max_retransmit: 4,
        },
        szx,
        max_body,
    }
}

fn parse(bytes: &[u8]) -> Packet {
    Packet::from_bytes(bytes).unwrap_or_else(|e| panic!("unparsable datagram: {e}"))
}

fn response_to(request: &Packet, kind: MessageType, code: ResponseType, payload: &[u8]) -> Packet {
    let mut p = Packet::new();
    p.header.set_type(kind);
    p.header.code = MessageClass::Response(code);
    p.header.message_id = if kind == MessageType::Acknowledgement {
        request.header.message_id
    } else {
        7777
    };
    p.set_token(request.get_token().to_vec());
    p.payload = payload.to_vec();
    p
}

fn block_of(p: &Packet, number: u16) -> Option<BlockOption> {
    message::first(p, number).and_then(|v| BlockOption::decode(v).ok())
}

#[test]
fn piggybacked_response() {
    let t0 = Instant::now();
    let mut ids = ids();
    let mut ex = ClientExchange::new(
        Method::Get,
        "/.well-known/core?rt=x",
        None,
        vec![],
        params(6, 1000),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let req = parse(&ex.start(&mut ids, t0).unwrap_or_else(|e| panic!("{e}")));
    assert_eq!(req.header.get_type(), MessageType::Confirmable);
    assert_eq!(req.header.code, MessageClass::Request(Method::Get));
    let path: Vec<_> = req
        .get_option(CoapOption::UriPath)
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    assert_eq!(path, vec![b".well-known".to_vec(), b"core".to_vec()]);
    assert!(
        block_of(&req, opt::BLOCK2).is_none(),
        "no early Block2 at the maximum size"
    );
    assert_eq!(ex.token(), Some(req.get_token()));

    // A response with another token is ignored.
    let mut other = response_to(
        &req,
        MessageType::Acknowledgement,
        ResponseType::Content,
        b"x",
    );
    other.set_token(vec![9, 9, 9, 9]);
    assert!(ex.on_packet(&other, &mut ids, t0).done.is_none());

    let mut resp = response_to(
        &req,
        MessageType::Acknowledgement,
        ResponseType::Content,
        b"</token>",
    );
    resp.add_option(CoapOption::ContentFormat, vec![40]);
    let step = ex.on_packet(&resp, &mut ids, t0);
    let r = step
        .done
        .unwrap_or_else(|| panic!("not done"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.code, ResponseType::Content);
    assert_eq!(r.content_format, Some(40));
    assert_eq!(r.payload, b"</token>");
    assert!(step.transmit.is_empty());
}

#[test]
fn retransmits_then_times_out_on_virtual_clock() {
    let t0 = Instant::now();
    let mut ids = ids();
    let mut ex = ClientExchange::new(
        Method::Post,
        "token",
        Some(18),
        vec![1, 2, 3],
        params(6, 1000),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let first = ex.start(&mut ids, t0).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        ex.on_timeout(t0 + Duration::from_secs(1))
            .transmit
            .is_empty()
    );
    let mut resend_times = vec![];
    loop {
        let now = ex.deadline().unwrap_or_else(|| panic!("no deadline"));
        let step = ex.on_timeout(now);
        if let Some(result) = step.done {
            match result {
                Err(CoapError::Timeout {
                    transmissions,
                    waited,
                }) => {
                    assert_eq!(transmissions, 5);
                    assert_eq!(waited, Duration::from_secs(62));
                }
                other => panic!("expected timeout, got {other:?}"),
            }
            break;
        }
        assert_eq!(
            step.transmit,
            vec![first.clone()],
            "retransmits the same bytes"
        );
        resend_times.push((now - t0).as_secs());
    }
    assert_eq!(resend_times, vec![2, 6, 14, 30]);
    assert!(ex.deadline().is_none());
}

#[test]
fn separate_response_is_acknowledged() {
    let t0 = Instant::now();
    let mut ids = ids();
    let mut ex = ClientExchange::new(Method::Get, "slow", None, vec![], params(6, 1000))
        .unwrap_or_else(|e| panic!("{e}"));
    let req = parse(&ex.start(&mut ids, t0).unwrap_or_else(|e| panic!("{e}")));
    let ack = message::empty(MessageType::Acknowledgement, req.header.message_id);
    assert!(ex.on_packet(&ack, &mut ids, t0).transmit.is_empty());
    // No retransmission after the empty ACK.
    let first_deadline = t0 + Duration::from_secs(2);
    assert!(ex.on_timeout(first_deadline).transmit.is_empty());
    let con = response_to(
        &req,
        MessageType::Confirmable,
        ResponseType::Content,
        b"late",
    );
    let step = ex.on_packet(&con, &mut ids, first_deadline);
    assert_eq!(step.transmit.len(), 1);
    let sent = parse(&step.transmit[0]);
    assert_eq!(sent.header.get_type(), MessageType::Acknowledgement);
    assert_eq!(sent.header.code, MessageClass::Empty);
    assert_eq!(sent.header.message_id, 7777);
    let r = step
        .done
        .unwrap_or_else(|| panic!("not done"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.payload, b"late");
}

#[test]
fn separate_response_that_never_comes_times_out() {
    let t0 = Instant::now();
    let mut ids = ids();
    let mut ex = ClientExchange::new(Method::Get, "slow", None, vec![], params(6, 1000))
        .unwrap_or_else(|e| panic!("{e}"));
    let req = parse(&ex.start(&mut ids, t0).unwrap_or_else(|e| panic!("{e}")));
    let ack = message::empty(MessageType::Acknowledgement, req.header.message_id);
    let _ = ex.on_packet(&ack, &mut ids, t0);
    let deadline = ex.deadline().unwrap_or_else(|| panic!("no deadline"));
    assert_eq!(deadline - t0, Duration::from_secs(93));
    assert!(matches!(
        ex.on_timeout(deadline).done,
        Some(Err(CoapError::Timeout { .. }))
    ));
}

#[test]
fn reset_ends_the_exchange() {
    let t0 = Instant::now();
    let mut ids = ids();
    let mut ex = ClientExchange::new(Method::Get, "x", None, vec![], params(6, 1000))
        .unwrap_or_else(|e| panic!("{e}"));
    let req = parse(&ex.start(&mut ids, t0).unwrap_or_else(|e| panic!("{e}")));
    let rst = message::empty(MessageType::Reset, req.header.message_id.wrapping_add(1));
    assert!(
        ex.on_packet(&rst, &mut ids, t0).done.is_none(),
        "RST for another message id"
    );
    let rst = message::empty(MessageType::Reset, req.header.message_id);
    assert!(matches!(
        ex.on_packet(&rst, &mut ids, t0).done,
        Some(Err(CoapError::Reset))
    ));
}

#[test]
fn block1_upload_follows_smaller_server_blocks() {
    let t0 = Instant::now();
    let mut ids = ids();
    let body: Vec<u8> = (0..1500u32).map(|i| (i % 251) as u8).collect();
    let mut ex = ClientExchange::new(
        Method::Post,
        "sren",
        Some(286),
        body.clone(),
        params(6, 1000),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let req = parse(&ex.start(&mut ids, t0).unwrap_or_else(|e| panic!("{e}")));
    assert_eq!(
        block_of(&req, opt::BLOCK1),
        Some(BlockOption {
            num: 0,
            more: true,
            szx: 6
        })
    );
    assert_eq!(message::first(&req, opt::SIZE1), Some(&[0x05, 0xdc][..]));
    assert_eq!(req.payload, body[..1024]);
    // The server asks for 256-byte blocks.
    let mut cont = response_to(
        &req,
        MessageType::Acknowledgement,
        ResponseType::Continue,
        b"",
    );
    message::set(
        &mut cont,
        opt::BLOCK1,
        BlockOption {
            num: 0,
            more: true,
            szx: 4,
        }
        .encode(),
    );
    let step = ex.on_packet(&cont, &mut ids, t0);
    assert!(step.done.is_none());
    let mut received = req.payload.clone();
    let mut req2 = parse(&step.transmit[0]);
    let mut tokens = vec![req.get_token().to_vec()];
    loop {
        assert!(
            !tokens.contains(&req2.get_token().to_vec()),
            "a new token per block"
        );
        tokens.push(req2.get_token().to_vec());
        let b1 = block_of(&req2, opt::BLOCK1).unwrap_or_else(|| panic!("no Block1"));
        assert_eq!(b1.szx, 4);
        assert_eq!(b1.offset(), received.len());
        received.extend_from_slice(&req2.payload);
        if !b1.more {
            break;
        }
        let mut cont = response_to(
            &req2,
            MessageType::Acknowledgement,
            ResponseType::Continue,
            b"",
        );
        message::set(&mut cont, opt::BLOCK1, b1.encode());
        req2 = parse(&ex.on_packet(&cont, &mut ids, t0).transmit[0]);
    }
    assert_eq!(received, body);
    let done = response_to(
        &req2,
        MessageType::Acknowledgement,
        ResponseType::Changed,
        b"ok",
    );
    let r = ex.on_packet(&done, &mut ids, t0).done;
    assert!(matches!(r, Some(Ok(ref r)) if r.code == ResponseType::Changed && r.payload == b"ok"));
}

fn block2_response(req: &Packet, body: &[u8], num: u32, szx: u8, etag: &[u8]) -> Packet {
    let (chunk, more) =
        crate::block::slice(body, num, szx).unwrap_or_else(|| panic!("out of range"));
    let mut p = response_to(
        req,
        MessageType::Acknowledgement,
        ResponseType::Content,
        chunk,
    );
    message::set(&mut p, opt::BLOCK2, BlockOption { num, more, szx }.encode());
    message::set(&mut p, opt::ETAG, etag.to_vec());
    p
}

#[test]
fn block2_download_with_new_tokens() {
    let t0 = Instant::now();
    let mut ids = ids();
    let body: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
    let mut ex = ClientExchange::new(Method::Get, "crl", None, vec![], params(2, 1000))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut req = parse(&ex.start(&mut ids, t0).unwrap_or_else(|e| panic!("{e}")));
    // The client asks for 64-byte blocks up front.
    assert_eq!(
        block_of(&req, opt::BLOCK2),
        Some(BlockOption {
            num: 0,
            more: false,
            szx: 2
        })
    );
    let mut tokens = vec![];
    for num in 0..5u32 {
        tokens.push(req.get_token().to_vec());
        let step = ex.on_packet(&block2_response(&req, &body, num, 2, b"e1"), &mut ids, t0);
        if num < 4 {
            assert!(step.done.is_none());
            req = parse(&step.transmit[0]);
            assert_eq!(
                block_of(&req, opt::BLOCK2),
                Some(BlockOption {
                    num: num + 1,
                    more: false,
                    szx: 2
                })
            );
            assert!(!tokens.contains(&req.get_token().to_vec()));
        } else {
            let r = step
                .done
                .unwrap_or_else(|| panic!("not done"))
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(r.payload, body);
        }
    }
}

#[test]
fn block2_etag_change_and_size_limit() {
    let t0 = Instant::now();
    let body = vec![5u8; 200];
    let mut ids = ids();
    let mut ex = ClientExchange::new(Method::Get, "r", None, vec![], params(2, 1000))
        .unwrap_or_else(|e| panic!("{e}"));
    let req = parse(&ex.start(&mut ids, t0).unwrap_or_else(|e| panic!("{e}")));
    let step = ex.on_packet(&block2_response(&req, &body, 0, 2, b"a"), &mut ids, t0);
    let req = parse(&step.transmit[0]);
    let step = ex.on_packet(&block2_response(&req, &body, 1, 2, b"b"), &mut ids, t0);
    assert!(matches!(step.done, Some(Err(CoapError::Protocol(_)))));

    let mut ex = ClientExchange::new(Method::Get, "r", None, vec![], params(2, 100))
        .unwrap_or_else(|e| panic!("{e}"));
    let req = parse(&ex.start(&mut ids, t0).unwrap_or_else(|e| panic!("{e}")));
    let step = ex.on_packet(&block2_response(&req, &body, 0, 2, b"a"), &mut ids, t0);
    let req = parse(&step.transmit[0]);
    let step = ex.on_packet(&block2_response(&req, &body, 1, 2, b"a"), &mut ids, t0);
    assert!(matches!(
        step.done,
        Some(Err(CoapError::ResponseTooLarge { limit: 100 }))
    ));
}

#[test]
fn response_code_unknown_to_coap_lite_still_completes() {
    let t0 = Instant::now();
    let mut ids = ids();
    let mut ex = ClientExchange::new(Method::Get, "x", None, vec![], params(6, 1000))
        .unwrap_or_else(|e| panic!("{e}"));
    let req = parse(&ex.start(&mut ids, t0).unwrap_or_else(|e| panic!("{e}")));
    let mut resp = response_to(
        &req,
        MessageType::Acknowledgement,
        ResponseType::Content,
        b"",
    );
    resp.header.code = MessageClass::Reserved(0x8A); // 4.10, not named by coap-lite
    let done = ex.on_packet(&resp, &mut ids, t0).done;
    assert!(matches!(done, Some(Ok(ref r)) if r.code == ResponseType::UnKnown));
}

#[test]
fn invalid_requests_are_refused() {
    assert!(matches!(
        ClientExchange::new(Method::UnKnown, "x", None, vec![], params(6, 10)),
        Err(CoapError::InvalidRequest(_))
    ));
    let long = "a".repeat(256);
    assert!(matches!(
        ClientExchange::new(Method::Get, &long, None, vec![], params(6, 10)),
        Err(CoapError::InvalidRequest(_))
    ));
}
