//! The server endpoint as a sans-IO state machine: datagrams and the current
//! time go in, datagrams to send and requests to dispatch come out.
//!
//! It answers CON requests with piggybacked ACKs and NON requests with NON
//! responses, replays cached responses for duplicates, answers pings with
//! RST, reassembles Block1 bodies and serves large bodies with Block2.
//!
//! Amplification (RFC 7252 §11.3): every datagram to an address that has not
//! proven it receives ours (see [`crate::echo`]) is at most
//! `amplification_factor` times the bytes that address sent for the
//! exchange. A larger handler answer becomes 4.01 Unauthorized with an Echo
//! option (RFC 9175 §2.4); a larger diagnostic of the endpoint itself loses
//! its payload; a larger cached answer is not replayed. Block2 state is kept
//! only for verified addresses. At most `max_in_flight` requests are with the
//! handler at once: more get 5.03 with Max-Age (CON) or are dropped (NON).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use coap_lite::{MessageClass, MessageType, Packet};
use tracing::debug;

use crate::block::{self, Block1Outcome, Block1Reassembly, Block2Cache, BlockOption};
use crate::dedup::{DedupCache, Lookup};
use crate::echo::{self, AmplificationGuard, ECHO, ECHO_MAX_LEN, EchoCheck, GuardConfig};
use crate::message::{self, ParsedRequest, opt};
use crate::{Method, Request, Response, ResponseType, ServerConfig, ServerStats};

/// How long partial Block1 bodies and Block2 response bodies are kept at most.
const TRANSFER_LIFETIME: Duration = Duration::from_secs(60);
/// How many block-wise transfers may be in progress at once (each direction).
const TRANSFER_CAPACITY: usize = 256;
/// Max-Age of the 5.03 answer when too many requests are in flight, seconds.
const OVERLOAD_RETRY_SECS: u32 = 2;

/// Identifies a request handed to the handler until its response comes back.
pub(crate) type ExchangeId = u64;

/// One datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Transmit {
    pub peer: SocketAddr,
    pub bytes: Vec<u8>,
}

/// What the endpoint wants done after a datagram arrived.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// A datagram to send right away.
    pub transmit: Option<Transmit>,
    /// A complete request to run through the handler, then pass to
    /// [`ServerCore::complete`] with the same id.
    pub dispatch: Option<(ExchangeId, Request)>,
}

/// A block-wise transfer is identified by peer, method and request URI.
type TransferKey = (SocketAddr, u8, String, Vec<String>);

struct Pending {
    peer: SocketAddr,
    mid: u16,
    con: bool,
    token: Vec<u8>,
    transfer: TransferKey,
    block1_echo: Option<BlockOption>,
    block2_num: u32,
    block2_szx: u8,
    /// Bytes the peer sent for this request (all Block1 blocks included).
    received: usize,
}

/// Where a response goes and how it is labelled.
struct Reply<'a> {
    peer: SocketAddr,
    mid: u16,
    con: bool,
    token: &'a [u8],
    /// The largest datagram the peer may get (unverified address), if limited.
    budget: Option<usize>,
    now: Instant,
}

/// What to do with an answer over the budget of an unverified address.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Oversize {
    /// An endpoint diagnostic: send it without its payload.
    Truncate,
    /// A handler answer or a Block2 block: 4.01 with an Echo instead.
    Challenge,
}

/// The sans-IO server endpoint.
pub(crate) struct ServerCore {
    max_body: usize,
    preferred_szx: u8,
    dedup: DedupCache<(SocketAddr, u16)>,
    block1: Block1Reassembly<TransferKey>,
    block2: Block2Cache<TransferKey>,
    pending: HashMap<ExchangeId, Pending>,
    max_in_flight: usize,
    guard: AmplificationGuard,
    next_exchange: ExchangeId,
    next_mid: u16,
    stats: ServerStats,
}

impl ServerCore {
    /// A server endpoint; `seed` randomises message ids, `secret` keys the
    /// Echo values, `now` starts the Echo clock.
    pub fn new(config: &ServerConfig, seed: u64, secret: [u8; 32], now: Instant) -> Self {
        let lifetime = config.exchange_lifetime.min(TRANSFER_LIFETIME);
        let guard = GuardConfig {
            factor: config.amplification_factor,
            echo_lifetime: config.echo_lifetime,
            verified_lifetime: config.verified_lifetime,
            verified_capacity: config.verified_capacity,
        };
        ServerCore {
            max_body: config.max_body,
            preferred_szx: block::szx_for_size(config.block_size),
            dedup: DedupCache::new(
                config.exchange_lifetime,
                config.dedup_capacity,
                config.dedup_bytes,
            ),
            block1: Block1Reassembly::new(config.max_body, lifetime, TRANSFER_CAPACITY),
            block2: Block2Cache::new(lifetime, TRANSFER_CAPACITY),
            pending: HashMap::new(),
            max_in_flight: config.max_in_flight.max(1),
            guard: AmplificationGuard::new(guard, secret, now),
            next_exchange: 0,
            // Truncation is intended: any 16 bits of the seed will do.
            next_mid: seed as u16,
            stats: ServerStats::default(),
        }
    }

    /// Counters since start, and the current sizes of the bounded tables.
    pub fn stats(&self) -> ServerStats {
        let gauge = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        ServerStats {
            in_flight: gauge(self.pending.len()),
            dedup_entries: gauge(self.dedup.len()),
            dedup_bytes: gauge(self.dedup.bytes()),
            verified_addresses: gauge(self.guard.verified_len()),
            ..self.stats
        }
    }

    /// Whether `peer` counts as verified now (for the fuzz harness).
    pub(crate) fn guard_is_verified(&mut self, peer: &SocketAddr, now: Instant) -> bool {
        !self.guard.enabled() || self.guard.is_verified(peer, now)
    }

    /// Processes one received datagram.
    pub fn handle_datagram(&mut self, peer: SocketAddr, datagram: &[u8], now: Instant) -> Outcome {
        self.stats.received += 1;
        let packet = match Packet::from_bytes(datagram) {
            Ok(p) if message::is_well_formed(datagram, &p) => p,
            Ok(_) | Err(_) => {
                self.stats.malformed += 1;
                debug!(%peer, len = datagram.len(), "dropping malformed CoAP datagram");
                // RFC 7252 §4.2: reject a malformed CON with RST (only when it is version 1).
                return match message::peek_header(datagram) {
                    Some((true, mid)) => self.reset(peer, mid),
                    _ => Outcome::default(),
                };
            }
        };
        let kind = packet.header.get_type();
        let mid = packet.header.message_id;
        match packet.header.code {
            MessageClass::Empty => {
                if kind == MessageType::Confirmable {
                    self.stats.pings += 1;
                    return self.reset(peer, mid);
                }
                Outcome::default()
            }
            MessageClass::Request(_) | MessageClass::Reserved(0..=0x1f)
                if matches!(kind, MessageType::Confirmable | MessageType::NonConfirmable) =>
            {
                self.handle_request(peer, packet, datagram.len(), now)
            }
            _ => {
                // A response, reserved class, or request in an ACK/RST: we never asked.
                self.stats.malformed += 1;
                debug!(%peer, "dropping unexpected CoAP message {:?} {}", kind, packet.header.code);
                if kind == MessageType::Confirmable {
                    return self.reset(peer, mid);
                }
                Outcome::default()
            }
        }
    }

    fn handle_request(
        &mut self,
        peer: SocketAddr,
        packet: Packet,
        received: usize,
        now: Instant,
    ) -> Outcome {
        let con = packet.header.get_type() == MessageType::Confirmable;
        let mid = packet.header.message_id;
        match self.dedup.check((peer, mid), now) {
            Lookup::New => {}
            Lookup::InProgress => {
                self.stats.duplicates += 1;
                return Outcome::default();
            }
            Lookup::Replay(bytes) => {
                self.stats.duplicates += 1;
                if self
                    .guard
                    .budget(&peer, received, now)
                    .is_some_and(|limit| bytes.len() > limit)
                {
                    // A short datagram reusing the message id of a longer request
                    // must not earn that request's answer.
                    self.stats.amplification_drops += 1;
                    return Outcome::default();
                }
                return transmit(peer, bytes);
            }
        }
        if let Some(value) = message::first(&packet, ECHO)
            && !self.guard.is_verified(&peer, now)
        {
            let check = if value.len() > ECHO_MAX_LEN {
                EchoCheck::Invalid
            } else {
                self.guard.check_echo(&peer, value, now)
            };
            if check == EchoCheck::Fresh {
                self.stats.echo_verified += 1;
            } else {
                self.stats.echo_refused += 1;
                debug!(%peer, ?check, "CoAP request with an Echo that does not verify the address");
            }
        }
        let token = packet.get_token().to_vec();
        let reply = Reply {
            peer,
            mid,
            con,
            token: &token,
            budget: self.guard.budget(&peer, received, now),
            now,
        };
        let parsed = match message::parse_request(&packet) {
            Ok(p) => p,
            Err(rejection) => {
                self.stats.rejected += 1;
                debug!(%peer, code = ?rejection.code, "rejecting CoAP request: {}", rejection.diagnostic);
                if !con && rejection.code == ResponseType::BadOption {
                    // RFC 7252 §5.4.1: a NON with an unknown critical option is rejected silently.
                    self.dedup.complete(&(peer, mid), Vec::new());
                    return Outcome::default();
                }
                return self.error(&reply, rejection.code, &rejection.diagnostic, None);
            }
        };
        let mut received = received;
        let method_code = u8::from(MessageClass::Request(parsed.method));
        let transfer: TransferKey = (peer, method_code, parsed.path.clone(), parsed.query.clone());
        let mut body = packet.payload;
        let mut block1_echo = None;
        if let Some(b1) = parsed.block1 {
            match self.block1.on_block(
                transfer.clone(),
                b1,
                &body,
                parsed.size1,
                self.preferred_szx,
                now,
            ) {
                Block1Outcome::Continue(ack) => {
                    let mut p = self.response_packet(&reply, ResponseType::Continue);
                    message::set(&mut p, opt::BLOCK1, ack.encode());
                    return self.send(&reply, p, Oversize::Truncate);
                }
                Block1Outcome::Complete(full, echo) => {
                    // The whole body came from this address: it counts.
                    received = received.saturating_add(full.len());
                    body = full;
                    block1_echo = Some(echo);
                }
                Block1Outcome::Incomplete => {
                    self.stats.rejected += 1;
                    return self.error(
                        &reply,
                        ResponseType::RequestEntityIncomplete,
                        "a Block1 block is missing or the transfer expired; resend the body from block 0",
                        None,
                    );
                }
                Block1Outcome::TooLarge => return self.too_large(&reply),
                Block1Outcome::BadRequest(diagnostic) => {
                    self.stats.rejected += 1;
                    return self.error(&reply, ResponseType::BadRequest, diagnostic, None);
                }
            }
        } else if body.len() > self.max_body {
            return self.too_large(&reply);
        }
        let (block2_num, block2_szx) = match parsed.block2 {
            Some(b2) => (b2.num, b2.szx.min(self.preferred_szx)),
            None => (0, self.preferred_szx),
        };
        if block2_num > 0 {
            if let Some(cached) = self.block2.get(&transfer, now) {
                let (response, etag) = (cached.response.clone(), cached.etag.clone());
                let allowance = cached.allowance;
                // An unverified address may get what is left of the transfer's
                // allowance plus the amplification factor of this request.
                let budget = match (self.guard.budget(&peer, received, now), allowance) {
                    (None, _) => None,
                    (Some(d), Some(a)) => Some(a.saturating_add(d)),
                    (Some(d), None) => Some(d),
                };
                let reply = Reply { budget, ..reply };
                let out = self.send_block2(
                    &reply,
                    &transfer,
                    block1_echo,
                    &response,
                    &etag,
                    block2_num,
                    block2_szx,
                );
                if let (Some(_), Some(t)) = (budget, &out.transmit) {
                    self.block2.spend(&transfer, t.bytes.len());
                }
                return out;
            }
            if !matches!(parsed.method, Method::Get | Method::Fetch) {
                self.stats.rejected += 1;
                return self.error(
                    &reply,
                    ResponseType::BadRequest,
                    "the block-wise response state expired; repeat the request from Block2 block 0",
                    None,
                );
            }
        }
        let pending = Pending {
            peer,
            mid,
            con,
            token: token.clone(),
            transfer,
            block1_echo,
            block2_num,
            block2_szx,
            received,
        };
        if self.pending.len() >= self.max_in_flight {
            return self.overloaded(&reply);
        }
        self.dispatch(pending, parsed, body)
    }

    /// Too many requests are with the handler: 5.03 with Max-Age for a CON,
    /// nothing for a NON; not remembered, so a retransmission is tried again.
    fn overloaded(&mut self, reply: &Reply<'_>) -> Outcome {
        self.stats.overloaded += 1;
        debug!(peer = %reply.peer, in_flight = self.pending.len(), "CoAP server busy, refusing a request");
        if !reply.con {
            self.dedup.forget(&(reply.peer, reply.mid));
            return Outcome::default();
        }
        let mut p = self.response_packet(reply, ResponseType::ServiceUnavailable);
        message::set(
            &mut p,
            opt::MAX_AGE,
            message::uint_value(u64::from(OVERLOAD_RETRY_SECS)),
        );
        p.payload = b"too many requests in progress; retry after Max-Age seconds".to_vec();
        let out = self.send(reply, p, Oversize::Truncate);
        self.dedup.forget(&(reply.peer, reply.mid));
        out
    }

    fn dispatch(&mut self, pending: Pending, parsed: ParsedRequest, payload: Vec<u8>) -> Outcome {
        let id = self.next_exchange;
        self.next_exchange += 1;
        self.stats.dispatched += 1;
        let request = Request {
            method: parsed.method,
            path: parsed.path,
            query: parsed.query,
            content_format: parsed.content_format,
            accept: parsed.accept,
            payload,
            peer: pending.peer,
        };
        self.pending.insert(id, pending);
        Outcome {
            transmit: None,
            dispatch: Some((id, request)),
        }
    }

    /// Turns the handler's response to exchange `id` into a datagram.
    pub fn complete(
        &mut self,
        id: ExchangeId,
        response: Response,
        now: Instant,
    ) -> Option<Transmit> {
        let p = self.pending.remove(&id)?;
        let reply = Reply {
            peer: p.peer,
            mid: p.mid,
            con: p.con,
            token: &p.token,
            budget: self.guard.budget(&p.peer, p.received, now),
            now,
        };
        let block_size = block::size_of_szx(p.block2_szx);
        if response.payload.len() <= block_size && p.block2_num == 0 {
            let mut packet = self.response_packet(&reply, response.code);
            apply_head(&mut packet, &response);
            if let Some(echo) = p.block1_echo {
                message::set(&mut packet, opt::BLOCK1, echo.encode());
            }
            packet.payload = response.payload;
            return self.send(&reply, packet, Oversize::Challenge).transmit;
        }
        if reply
            .budget
            .is_some_and(|limit| response.payload.len() > limit)
        {
            // A body larger than the allowance of an unverified address is
            // not split into blocks: a series of small Block2 requests must
            // not earn it. Nothing is kept for a spoofed source.
            return self.challenge(&reply).transmit;
        }
        let etag = echo::etag_of(
            u8::from(MessageClass::Response(response.code)),
            response.content_format,
            &response.payload,
        );
        // An unverified address (e.g. after a Block1 upload) gets the body
        // within an allowance of `factor` times what it sent, spent block by block.
        self.block2.insert(
            p.transfer.clone(),
            response.clone(),
            etag.clone(),
            reply.budget,
            now,
        );
        let out = self.send_block2(
            &reply,
            &p.transfer,
            p.block1_echo,
            &response,
            &etag,
            p.block2_num,
            p.block2_szx,
        );
        if let (Some(_), Some(t)) = (reply.budget, &out.transmit) {
            self.block2.spend(&p.transfer, t.bytes.len());
        }
        out.transmit
    }

    #[allow(clippy::too_many_arguments)]
    fn send_block2(
        &mut self,
        reply: &Reply<'_>,
        transfer: &TransferKey,
        block1_echo: Option<BlockOption>,
        response: &Response,
        etag: &[u8],
        num: u32,
        szx: u8,
    ) -> Outcome {
        let Some((chunk, more)) = block::slice(&response.payload, num, szx) else {
            self.stats.rejected += 1;
            self.block2.remove(transfer);
            return self.error(
                reply,
                ResponseType::BadOption,
                "the Block2 block number is beyond the end of the resource; restart from block 0",
                None,
            );
        };
        let mut packet = self.response_packet(reply, response.code);
        apply_head(&mut packet, response);
        message::set(
            &mut packet,
            opt::BLOCK2,
            BlockOption { num, more, szx }.encode(),
        );
        message::set(&mut packet, opt::ETAG, etag.to_vec());
        if num == 0 {
            message::set(
                &mut packet,
                opt::SIZE2,
                message::uint_value(response.payload.len() as u64),
            );
        }
        if let Some(echo) = block1_echo {
            message::set(&mut packet, opt::BLOCK1, echo.encode());
        }
        packet.payload = chunk.to_vec();
        let out = self.send(reply, packet, Oversize::Challenge);
        if !more
            && out
                .transmit
                .as_ref()
                .is_some_and(|t| !is_challenge(&t.bytes))
        {
            self.block2.remove(transfer);
        }
        out
    }

    fn response_packet(&mut self, reply: &Reply<'_>, code: ResponseType) -> Packet {
        let mut p = Packet::new();
        if reply.con {
            p.header.set_type(MessageType::Acknowledgement);
            p.header.message_id = reply.mid;
        } else {
            p.header.set_type(MessageType::NonConfirmable);
            self.next_mid = self.next_mid.wrapping_add(1);
            p.header.message_id = self.next_mid;
        }
        // coap-lite would encode `UnKnown` as the invalid code 7.31.
        let code = match code {
            ResponseType::UnKnown => ResponseType::InternalServerError,
            known => known,
        };
        p.header.code = MessageClass::Response(code);
        p.set_token(reply.token.to_vec());
        p
    }

    fn send(&mut self, reply: &Reply<'_>, mut packet: Packet, oversize: Oversize) -> Outcome {
        let mut encoded = message::encode(&packet);
        if let (Some(limit), Ok(bytes)) = (reply.budget, &encoded)
            && bytes.len() > limit
        {
            if oversize == Oversize::Truncate {
                packet.payload.clear();
                encoded = message::encode(&packet);
            }
            if encoded.as_ref().is_ok_and(|b| b.len() > limit) {
                debug!(peer = %reply.peer, limit, "answer too large for an unverified address");
                return self.challenge(reply);
            }
        }
        match encoded {
            Ok(bytes) => {
                self.dedup.complete(&(reply.peer, reply.mid), bytes.clone());
                transmit(reply.peer, bytes)
            }
            Err(e) => {
                debug!(peer = %reply.peer, "cannot encode CoAP response: {e}");
                // Let a retransmission try again rather than replaying nothing.
                self.dedup.forget(&(reply.peer, reply.mid));
                Outcome::default()
            }
        }
    }

    /// 4.01 Unauthorized with a fresh Echo option (RFC 9175 §2.4) instead of
    /// an answer too large for an unverified address.
    fn challenge(&mut self, reply: &Reply<'_>) -> Outcome {
        self.stats.echo_challenges += 1;
        let mut p = self.response_packet(reply, ResponseType::Unauthorized);
        let value = self.guard.make_echo(&reply.peer, reply.now);
        message::set(&mut p, ECHO, value);
        self.send(
            &Reply {
                budget: None,
                ..*reply
            },
            p,
            Oversize::Truncate,
        )
    }

    fn error(
        &mut self,
        reply: &Reply<'_>,
        code: ResponseType,
        diagnostic: &str,
        size1: Option<usize>,
    ) -> Outcome {
        let mut p = self.response_packet(reply, code);
        if let Some(limit) = size1 {
            message::set(&mut p, opt::SIZE1, message::uint_value(limit as u64));
        }
        p.payload = diagnostic.as_bytes().to_vec();
        self.send(reply, p, Oversize::Truncate)
    }

    fn too_large(&mut self, reply: &Reply<'_>) -> Outcome {
        self.stats.rejected += 1;
        let diagnostic = format!(
            "request body exceeds the server limit of {} bytes (see Size1); send a smaller body",
            self.max_body
        );
        self.error(
            reply,
            ResponseType::RequestEntityTooLarge,
            &diagnostic,
            Some(self.max_body),
        )
    }

    fn reset(&mut self, peer: SocketAddr, mid: u16) -> Outcome {
        match message::encode(&message::empty(MessageType::Reset, mid)) {
            Ok(bytes) => transmit(peer, bytes),
            Err(_) => Outcome::default(),
        }
    }
}

fn transmit(peer: SocketAddr, bytes: Vec<u8>) -> Outcome {
    Outcome {
        transmit: Some(Transmit { peer, bytes }),
        dispatch: None,
    }
}

/// Whether `bytes` is an Echo challenge (4.01 carrying an Echo option).
pub(crate) fn is_challenge(bytes: &[u8]) -> bool {
    Packet::from_bytes(bytes).is_ok_and(|p| {
        p.header.code == MessageClass::Response(ResponseType::Unauthorized)
            && message::first(&p, ECHO).is_some()
    })
}

fn apply_head(packet: &mut Packet, response: &Response) {
    if let Some(cf) = response.content_format {
        message::set(
            packet,
            opt::CONTENT_FORMAT,
            message::uint_value(u64::from(cf)),
        );
    }
    if let Some(age) = response.max_age {
        message::set(packet, opt::MAX_AGE, message::uint_value(u64::from(age)));
    }
}

#[cfg(test)]
#[path = "server_core_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "amplification_tests.rs"]
mod amplification_tests;
