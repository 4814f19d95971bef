//! One client request as a sans-IO state machine: it produces the datagrams
//! to send, consumes the datagrams routed to it and the timer, and ends with
//! the whole response. It covers retransmission, separate responses (empty
//! ACK, then a CON response that it acknowledges), Block1 uploads and Block2
//! downloads with a fresh token for every block request, and the Echo option
//! (RFC 9175 §2.4): a 4.01 carrying an Echo restarts the request once with
//! that Echo, so servers that limit answers to unverified addresses (RFC 7252
//! §11.3) are served transparently.

use std::time::Instant;

use coap_lite::{CoapOption, MessageClass, MessageType, Packet};

use crate::block::{self, BlockOption};
use crate::echo::{ECHO, ECHO_MAX_LEN};
use crate::message::{self, opt};
use crate::reliability::{Retransmission, RetransmitAction, TransmissionParams};
use crate::{CoapError, Method, Response, ResponseType};

/// How many 4.01 Echo challenges one exchange answers before it returns the
/// 4.01 to the caller (a server whose verification keeps expiring).
const MAX_ECHO_RETRIES: u32 = 2;

/// Where new message ids, tokens and random numbers come from.
pub(crate) trait IdSource {
    /// A message id not used recently on this socket.
    fn message_id(&mut self) -> u16;
    /// A fresh random token (4-8 bytes).
    fn token(&mut self) -> Vec<u8>;
    /// A random number uniform in `[0, 1)`.
    fn random(&mut self) -> f64;
}

/// Limits of one exchange.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ExchangeParams {
    pub transmission: TransmissionParams,
    pub szx: u8,
    pub max_body: usize,
}

/// What the shell must do after feeding the exchange.
#[derive(Debug, Default)]
pub(crate) struct Step {
    /// Datagrams to send, in order.
    pub transmit: Vec<Vec<u8>>,
    /// The final result, once the exchange is over.
    pub done: Option<Result<Response, CoapError>>,
}

impl Step {
    fn done(result: Result<Response, CoapError>) -> Self {
        Step {
            transmit: Vec::new(),
            done: Some(result),
        }
    }
}

/// The message currently awaiting its response.
struct InFlight {
    mid: u16,
    token: Vec<u8>,
    bytes: Vec<u8>,
    retransmission: Retransmission,
    /// Set when an empty ACK arrived: the response will come separately.
    acked_at: Option<Instant>,
    /// The Block1 option carried by this message, if any.
    block1: Option<BlockOption>,
}

/// Code, Content-Format and Max-Age of the first Block2 block.
struct Head {
    code: ResponseType,
    content_format: Option<u16>,
    max_age: Option<u32>,
}

/// Progress of a Block2 download.
struct Download {
    head: Head,
    body: Vec<u8>,
    etag: Option<Vec<u8>>,
}

/// One logical request, possibly spanning several CoAP messages.
pub(crate) struct ClientExchange {
    code: MessageClass,
    segments: Vec<String>,
    query: Vec<String>,
    content_format: Option<u16>,
    body: Vec<u8>,
    params: ExchangeParams,
    /// Request bytes acknowledged by 2.31 Continue so far.
    uploaded: usize,
    /// Current Block1 size exponent (the server may lower it).
    block1_szx: u8,
    download: Option<Download>,
    inflight: Option<InFlight>,
    /// An Echo value to send with the next request message.
    echo: Option<Vec<u8>>,
    /// Echo challenges answered so far.
    echo_retries: u32,
}

impl ClientExchange {
    /// Prepares a request to `uri` (`"path/segments?query&params"`).
    pub fn new(
        method: Method,
        uri: &str,
        content_format: Option<u16>,
        body: Vec<u8>,
        params: ExchangeParams,
    ) -> Result<Self, CoapError> {
        let code = message::method_class(method).ok_or_else(|| {
            CoapError::InvalidRequest(
                "Method::UnKnown cannot be sent; pick a concrete method".into(),
            )
        })?;
        let (segments, query) = message::split_uri(uri);
        if let Some(long) = segments.iter().chain(&query).find(|s| s.len() > 255) {
            return Err(CoapError::InvalidRequest(format!(
                "URI part of {} bytes exceeds the 255-byte option limit; shorten it",
                long.len()
            )));
        }
        Ok(ClientExchange {
            code,
            segments,
            query,
            content_format,
            body,
            params,
            uploaded: 0,
            block1_szx: params.szx,
            download: None,
            inflight: None,
            echo: None,
            echo_retries: 0,
        })
    }

    /// The token of the message in flight (for routing responses).
    pub fn token(&self) -> Option<&[u8]> {
        self.inflight.as_ref().map(|f| f.token.as_slice())
    }

    /// The message id of the message in flight (for routing empty ACK/RST).
    pub fn message_id(&self) -> Option<u16> {
        self.inflight.as_ref().map(|f| f.mid)
    }

    /// When [`ClientExchange::on_timeout`] must be called next.
    pub fn deadline(&self) -> Option<Instant> {
        let f = self.inflight.as_ref()?;
        Some(match f.acked_at {
            Some(at) => at + self.params.transmission.max_transmit_wait(),
            None => f.retransmission.deadline(),
        })
    }

    /// Builds the first datagram.
    pub fn start(&mut self, ids: &mut dyn IdSource, now: Instant) -> Result<Vec<u8>, CoapError> {
        self.send_next_request(ids, now, None)
    }

    /// Advances the timer.
    pub fn on_timeout(&mut self, now: Instant) -> Step {
        let Some(f) = self.inflight.as_mut() else {
            return Step::default();
        };
        let give_up = Step::done(Err(CoapError::Timeout {
            transmissions: f.retransmission.transmissions(),
            waited: f.retransmission.elapsed(now),
        }));
        if let Some(at) = f.acked_at {
            if now >= at + self.params.transmission.max_transmit_wait() {
                self.inflight = None;
                return give_up;
            }
            return Step::default();
        }
        match f.retransmission.on_timeout(now) {
            RetransmitAction::Wait(_) => Step::default(),
            RetransmitAction::Resend => Step {
                transmit: vec![f.bytes.clone()],
                done: None,
            },
            RetransmitAction::GiveUp => {
                self.inflight = None;
                give_up
            }
        }
    }

    /// Feeds a datagram addressed to this exchange (matching token or message id).
    pub fn on_packet(&mut self, packet: &Packet, ids: &mut dyn IdSource, now: Instant) -> Step {
        let Some(f) = self.inflight.as_mut() else {
            return Step::default();
        };
        let kind = packet.header.get_type();
        let mid = packet.header.message_id;
        match packet.header.code {
            MessageClass::Empty if mid == f.mid => match kind {
                MessageType::Reset => {
                    self.inflight = None;
                    Step::done(Err(CoapError::Reset))
                }
                MessageType::Acknowledgement => {
                    f.acked_at.get_or_insert(now);
                    Step::default()
                }
                _ => Step::default(),
            },
            code if message::is_response(code) && packet.get_token() == f.token.as_slice() => {
                if kind == MessageType::Acknowledgement && mid != f.mid {
                    return Step::default(); // a stale ACK for an earlier message
                }
                let mut step = Step::default();
                if kind == MessageType::Confirmable {
                    match message::encode(&message::empty(MessageType::Acknowledgement, mid)) {
                        Ok(ack) => step.transmit.push(ack),
                        Err(e) => return Step::done(Err(e)),
                    }
                }
                let block1 = f.block1;
                match self.on_response(packet, block1, ids, now) {
                    Ok(Next::Send(bytes)) => step.transmit.push(bytes),
                    Ok(Next::Finished(response)) => {
                        self.inflight = None;
                        step.done = Some(Ok(response));
                    }
                    Err(e) => {
                        self.inflight = None;
                        step.done = Some(Err(e));
                    }
                }
                step
            }
            _ => Step::default(),
        }
    }

    fn on_response(
        &mut self,
        packet: &Packet,
        sent_block1: Option<BlockOption>,
        ids: &mut dyn IdSource,
        now: Instant,
    ) -> Result<Next, CoapError> {
        let code = message::response_type(packet.header.code);
        if code == ResponseType::Unauthorized
            && self.echo_retries < MAX_ECHO_RETRIES
            && let Some(value) = message::first(packet, ECHO)
            && !value.is_empty()
            && value.len() <= ECHO_MAX_LEN
        {
            // RFC 9175 §2.4: repeat the request with the Echo. The server
            // kept nothing for us, so start over (Block1 from block 0, Block2
            // from block 0).
            self.echo_retries += 1;
            self.echo = Some(value.to_vec());
            self.uploaded = 0;
            self.block1_szx = self.params.szx;
            self.download = None;
            return self.send_next_request(ids, now, None).map(Next::Send);
        }
        if let (Some(b1), ResponseType::Continue) = (sent_block1, code) {
            if !b1.more {
                return Err(protocol("2.31 Continue answered the last Block1 block"));
            }
            let szx = match message::first(packet, opt::BLOCK1).map(BlockOption::decode) {
                None => b1.szx,
                Some(Ok(ack)) => ack.szx.min(b1.szx),
                Some(Err(_)) => return Err(protocol("invalid Block1 option in 2.31 Continue")),
            };
            self.uploaded = b1.offset().saturating_add(b1.size());
            self.block1_szx = szx;
            return self.send_next_request(ids, now, None).map(Next::Send);
        }
        let content_format = message::first(packet, opt::CONTENT_FORMAT)
            .and_then(|v| message::read_uint(v, 2))
            .and_then(|v| u16::try_from(v).ok());
        let max_age = message::first(packet, opt::MAX_AGE)
            .and_then(|v| message::read_uint(v, 4))
            .and_then(|v| u32::try_from(v).ok());
        let block2 = match message::first(packet, opt::BLOCK2).map(BlockOption::decode) {
            None => None,
            Some(Ok(b)) => Some(b),
            Some(Err(_)) => return Err(protocol("invalid Block2 option in the response")),
        };
        let limit = self.params.max_body;
        let Some(b2) = block2 else {
            if self.download.is_some() {
                return Err(protocol("the server stopped the Block2 transfer midway"));
            }
            if packet.payload.len() > limit {
                return Err(CoapError::ResponseTooLarge { limit });
            }
            return Ok(Next::Finished(Response {
                code,
                content_format,
                payload: packet.payload.clone(),
                max_age,
            }));
        };
        let etag = message::first(packet, opt::ETAG).map(<[u8]>::to_vec);
        let size2 = message::first(packet, opt::SIZE2).and_then(|v| message::read_uint(v, 4));
        if size2.is_some_and(|s| s > limit as u64) {
            return Err(CoapError::ResponseTooLarge { limit });
        }
        let download = self.download.get_or_insert_with(|| Download {
            head: Head {
                code,
                content_format,
                max_age,
            },
            body: Vec::new(),
            etag: etag.clone(),
        });
        if b2.offset() != download.body.len() {
            return Err(protocol(
                "a Block2 block does not continue where the previous one ended",
            ));
        }
        if download.etag != etag {
            return Err(protocol(
                "the resource changed during the Block2 transfer (ETag differs)",
            ));
        }
        let len = packet.payload.len();
        if len > b2.size() || (b2.more && len != b2.size()) {
            return Err(protocol("a Block2 block does not match its block size"));
        }
        if download.body.len().saturating_add(len) > limit {
            return Err(CoapError::ResponseTooLarge { limit });
        }
        download.body.extend_from_slice(&packet.payload);
        if b2.more {
            let szx = b2.szx.min(self.params.szx);
            let num = u32::try_from(download.body.len() / block::size_of_szx(szx))
                .ok()
                .filter(|n| *n <= BlockOption::MAX_NUM)
                .ok_or_else(|| protocol("the Block2 transfer needs more than 2^20 blocks"))?;
            let next = BlockOption {
                num,
                more: false,
                szx,
            };
            return self.send_next_request(ids, now, Some(next)).map(Next::Send);
        }
        let Some(done) = self.download.take() else {
            return Err(protocol("Block2 state lost"));
        };
        Ok(Next::Finished(Response {
            code: done.head.code,
            content_format: done.head.content_format,
            payload: done.body,
            max_age: done.head.max_age,
        }))
    }

    /// Builds, records and returns the next request message: the next Block1
    /// block (or the whole body) when `block2` is `None`, otherwise a request
    /// for that Block2 block.
    fn send_next_request(
        &mut self,
        ids: &mut dyn IdSource,
        now: Instant,
        block2: Option<BlockOption>,
    ) -> Result<Vec<u8>, CoapError> {
        let mut p = Packet::new();
        p.header.set_type(MessageType::Confirmable);
        p.header.code = self.code;
        p.header.message_id = ids.message_id();
        p.set_token(ids.token());
        for segment in &self.segments {
            p.add_option(CoapOption::UriPath, segment.as_bytes().to_vec());
        }
        for param in &self.query {
            p.add_option(CoapOption::UriQuery, param.as_bytes().to_vec());
        }
        if let Some(echo) = self.echo.take() {
            message::set(&mut p, ECHO, echo);
        }
        let mut sent_block1 = None;
        if let Some(b2) = block2 {
            message::set(&mut p, opt::BLOCK2, b2.encode());
        } else {
            let total = self.body.len();
            let size = block::size_of_szx(self.block1_szx);
            let mut last = true;
            if total > size || self.uploaded > 0 {
                let start = self.uploaded.min(total);
                let end = start.saturating_add(size).min(total);
                let num = u32::try_from(start / size)
                    .ok()
                    .filter(|n| *n <= BlockOption::MAX_NUM)
                    .ok_or_else(|| {
                        CoapError::InvalidRequest(
                            "request body needs more than 2^20 blocks; send less data".into(),
                        )
                    })?;
                let b1 = BlockOption {
                    num,
                    more: end < total,
                    szx: self.block1_szx,
                };
                message::set(&mut p, opt::BLOCK1, b1.encode());
                if num == 0 {
                    message::set(&mut p, opt::SIZE1, message::uint_value(total as u64));
                }
                p.payload = self.body[start..end].to_vec();
                last = !b1.more;
                sent_block1 = Some(b1);
            } else {
                p.payload = self.body.clone();
            }
            if let Some(cf) = self.content_format {
                message::set(
                    &mut p,
                    opt::CONTENT_FORMAT,
                    message::uint_value(u64::from(cf)),
                );
            }
            if last && self.params.szx < block::MAX_SZX {
                // Ask for smaller response blocks up front (RFC 7959 §2.4).
                let early = BlockOption {
                    num: 0,
                    more: false,
                    szx: self.params.szx,
                };
                message::set(&mut p, opt::BLOCK2, early.encode());
            }
        }
        let bytes = message::encode(&p)?;
        self.inflight = Some(InFlight {
            mid: p.header.message_id,
            token: p.get_token().to_vec(),
            bytes: bytes.clone(),
            retransmission: Retransmission::new(&self.params.transmission, ids.random(), now),
            acked_at: None,
            block1: sent_block1,
        });
        Ok(bytes)
    }
}

/// What a response leads to.
enum Next {
    /// Send this next request (next Block1 or Block2 block).
    Send(Vec<u8>),
    /// The exchange is complete.
    Finished(Response),
}

fn protocol(what: &str) -> CoapError {
    CoapError::Protocol(what.to_owned())
}

#[cfg(test)]
#[path = "client_core_tests.rs"]
mod tests;
