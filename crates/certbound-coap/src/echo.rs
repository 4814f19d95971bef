//! Amplification protection (RFC 7252 §11.3) with the Echo option (RFC 9175
//! §2.4): an answer to a source address that has not shown it can receive
//! our datagrams is limited to a small multiple of what that address sent.
//! A larger answer is replaced by 4.01 Unauthorized carrying an Echo option;
//! a request repeating a fresh Echo proves the address and marks it
//! verified for a while, so later requests (the rest of a Block2 transfer,
//! further requests of the same client) are answered in full.
//!
//! The Echo value is stateless: `t || MAC(secret, t, address)`, where `t` is
//! the server's coarse clock (seconds since the endpoint started) and the MAC
//! is HMAC-SHA-256 truncated to 8 bytes. Nothing is stored per client before
//! its address is verified; the verified table is bounded (oldest first out).
//! Pure: time and the secret are passed in.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// The Echo option number (RFC 9175 §2.2.1): elective, safe to forward.
pub(crate) const ECHO: u16 = 252;
/// Length of the Echo values this server makes: 4 bytes of time, 8 of MAC.
pub(crate) const ECHO_LEN: usize = 12;
/// Longest Echo value a request may carry (RFC 9175 §2.2.1).
pub(crate) const ECHO_MAX_LEN: usize = 40;

/// What a received Echo value is worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EchoCheck {
    /// Made by this server for this address and still fresh.
    Fresh,
    /// Made by this server for this address, but older than the echo lifetime.
    Stale,
    /// Not made by this server for this address (forged, altered, other address).
    Invalid,
}

/// Settings of the guard (see `ServerConfig`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct GuardConfig {
    /// Answers to unverified addresses may be at most this many times the
    /// bytes received; 0 switches the limit off.
    pub factor: usize,
    /// How long an Echo value is accepted after it was made.
    pub echo_lifetime: Duration,
    /// How long an address counts as verified after a fresh Echo.
    pub verified_lifetime: Duration,
    /// Most verified addresses remembered at once.
    pub verified_capacity: usize,
}

/// Decides which answers an address may get, and makes and checks Echo values.
pub(crate) struct AmplificationGuard {
    config: GuardConfig,
    secret: [u8; 32],
    epoch: Instant,
    verified: HashMap<SocketAddr, Instant>,
    order: VecDeque<(SocketAddr, Instant)>,
}

impl AmplificationGuard {
    /// A guard keyed with `secret`, whose clock starts at `epoch`.
    pub fn new(config: GuardConfig, secret: [u8; 32], epoch: Instant) -> Self {
        AmplificationGuard {
            config,
            secret,
            epoch,
            verified: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Whether the limit is on.
    pub fn enabled(&self) -> bool {
        self.config.factor > 0
    }

    /// Number of verified addresses remembered now.
    pub fn verified_len(&self) -> usize {
        self.verified.len()
    }

    /// Whether `peer` has shown a fresh Echo recently.
    pub fn is_verified(&mut self, peer: &SocketAddr, now: Instant) -> bool {
        self.expire(now);
        self.verified.get(peer).is_some_and(|until| now < *until)
    }

    /// The largest answer `peer` may get for `received` bytes, or `None` when
    /// it may get any size (verified, or the limit is off).
    pub fn budget(&mut self, peer: &SocketAddr, received: usize, now: Instant) -> Option<usize> {
        if !self.enabled() || self.is_verified(peer, now) {
            return None;
        }
        Some(received.saturating_mul(self.config.factor))
    }

    /// A fresh Echo value for `peer`.
    pub fn make_echo(&self, peer: &SocketAddr, now: Instant) -> Vec<u8> {
        let t = self.clock(now);
        let mut value = t.to_be_bytes().to_vec();
        value.extend_from_slice(&self.mac(peer, t));
        value
    }

    /// Checks an Echo value received from `peer`; a fresh one marks `peer` verified.
    pub fn check_echo(&mut self, peer: &SocketAddr, value: &[u8], now: Instant) -> EchoCheck {
        let Some((t, mac)) = value.split_first_chunk::<4>() else {
            return EchoCheck::Invalid;
        };
        let t = u32::from_be_bytes(*t);
        if value.len() != ECHO_LEN || !constant_time_eq(mac, &self.mac(peer, t)) {
            return EchoCheck::Invalid;
        }
        let age = u64::from(self.clock(now).saturating_sub(t));
        // A value from the future cannot have been made by this clock.
        if t > self.clock(now) {
            return EchoCheck::Invalid;
        }
        if age > self.config.echo_lifetime.as_secs() {
            return EchoCheck::Stale;
        }
        self.mark_verified(*peer, now);
        EchoCheck::Fresh
    }

    fn mark_verified(&mut self, peer: SocketAddr, now: Instant) {
        self.expire(now);
        if !self.verified.contains_key(&peer) {
            while self.verified.len() >= self.config.verified_capacity.max(1) {
                let Some((oldest, _)) = self.order.pop_front() else {
                    break;
                };
                self.verified.remove(&oldest);
            }
        } else {
            self.order.retain(|(p, _)| *p != peer);
        }
        let until = now + self.config.verified_lifetime;
        self.verified.insert(peer, until);
        self.order.push_back((peer, until));
    }

    fn expire(&mut self, now: Instant) {
        while let Some((peer, until)) = self.order.front().copied() {
            if now < until {
                break;
            }
            self.order.pop_front();
            if self.verified.get(&peer) == Some(&until) {
                self.verified.remove(&peer);
            }
        }
    }

    /// Seconds since the epoch; wraps after 136 years of uptime.
    fn clock(&self, now: Instant) -> u32 {
        let secs = now.saturating_duration_since(self.epoch).as_secs();
        u32::try_from(secs).unwrap_or(u32::MAX)
    }

    fn mac(&self, peer: &SocketAddr, t: u32) -> [u8; 8] {
        let mut message = Vec::with_capacity(4 + 16 + 2);
        message.extend_from_slice(&t.to_be_bytes());
        match peer {
            SocketAddr::V4(a) => message.extend_from_slice(&a.ip().to_ipv6_mapped().octets()),
            SocketAddr::V6(a) => message.extend_from_slice(&a.ip().octets()),
        }
        message.extend_from_slice(&peer.port().to_be_bytes());
        let full = hmac_sha256(&self.secret, &message);
        let mut out = [0u8; 8];
        out.copy_from_slice(&full[..8]);
        out
    }
}

/// HMAC-SHA-256 (RFC 2104) with a 32-byte key.
fn hmac_sha256(key: &[u8; 32], message: &[u8]) -> [u8; 32] {
    let mut ipad = [0x36u8; 64];
    let mut opad = [0x5cu8; 64];
    for (i, k) in key.iter().enumerate() {
        ipad[i] ^= k;
        opad[i] ^= k;
    }
    let inner = Sha256::new()
        .chain_update(ipad)
        .chain_update(message)
        .finalize();
    let outer = Sha256::new()
        .chain_update(opad)
        .chain_update(inner)
        .finalize();
    let mut out = [0u8; 32];
    out.copy_from_slice(&outer);
    out
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A stable entity tag for a response body: the first 8 bytes of its SHA-256,
/// so a Block2 transfer served again (not from the cache) keeps its ETag.
pub(crate) fn etag_of(code: u8, content_format: Option<u16>, payload: &[u8]) -> Vec<u8> {
    let digest = Sha256::new()
        .chain_update([code])
        .chain_update(content_format.unwrap_or(u16::MAX).to_be_bytes())
        .chain_update(payload)
        .finalize();
    digest[..8].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> (AmplificationGuard, Instant) {
        let t0 = Instant::now();
        let config = GuardConfig {
            factor: 3,
            echo_lifetime: Duration::from_secs(60),
            verified_lifetime: Duration::from_secs(300),
            verified_capacity: 2,
        };
        (AmplificationGuard::new(config, [7; 32], t0), t0)
    }

    fn addr(last: u8, port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, last], port))
    }

    #[test]
    fn hmac_matches_rfc_4231_style_vector() {
        // HMAC-SHA-256 with key 0x0b*20 zero-padded to 32 bytes equals the
        // RFC 4231 test case 1 value (HMAC pads short keys with zeros).
        let mut key = [0u8; 32];
        key[..20].copy_from_slice(&[0x0b; 20]);
        let mac = hmac_sha256(&key, b"Hi There");
        assert_eq!(
            mac[..8],
            [0xb0, 0x34, 0x4c, 0x61, 0xd8, 0xdb, 0x38, 0x53],
            "RFC 4231 test case 1"
        );
    }

    #[test]
    fn unverified_budget_then_fresh_echo_verifies() {
        let (mut g, t0) = guard();
        let a = addr(1, 5000);
        assert_eq!(g.budget(&a, 20, t0), Some(60));
        let echo = g.make_echo(&a, t0);
        assert_eq!(echo.len(), ECHO_LEN);
        assert_eq!(
            g.check_echo(&a, &echo, t0 + Duration::from_secs(5)),
            EchoCheck::Fresh
        );
        assert_eq!(g.budget(&a, 20, t0 + Duration::from_secs(6)), None);
        // Verification ends after verified_lifetime.
        assert_eq!(g.budget(&a, 20, t0 + Duration::from_secs(306)), Some(60));
    }

    #[test]
    fn echo_of_another_address_stale_or_altered_is_refused() {
        let (mut g, t0) = guard();
        let a = addr(1, 5000);
        let echo = g.make_echo(&a, t0);
        assert_eq!(g.check_echo(&addr(2, 5000), &echo, t0), EchoCheck::Invalid);
        assert_eq!(g.check_echo(&addr(1, 5001), &echo, t0), EchoCheck::Invalid);
        let mut altered = echo.clone();
        altered[11] ^= 1;
        assert_eq!(g.check_echo(&a, &altered, t0), EchoCheck::Invalid);
        assert_eq!(g.check_echo(&a, &echo[..11], t0), EchoCheck::Invalid);
        assert_eq!(g.check_echo(&a, &[], t0), EchoCheck::Invalid);
        assert_eq!(
            g.check_echo(&a, &echo, t0 + Duration::from_secs(61)),
            EchoCheck::Stale
        );
        assert!(!g.is_verified(&a, t0 + Duration::from_secs(61)));
        // Another guard (other secret) does not accept it.
        let mut other = AmplificationGuard::new(g.config, [8; 32], t0);
        assert_eq!(other.check_echo(&a, &echo, t0), EchoCheck::Invalid);
    }

    #[test]
    fn verified_table_is_bounded() {
        let (mut g, t0) = guard();
        for i in 1..=5u8 {
            let a = addr(i, 1);
            let echo = g.make_echo(&a, t0);
            assert_eq!(g.check_echo(&a, &echo, t0), EchoCheck::Fresh);
        }
        assert_eq!(g.verified_len(), 2);
        assert!(g.is_verified(&addr(5, 1), t0));
        assert!(!g.is_verified(&addr(1, 1), t0));
    }

    #[test]
    fn etag_depends_on_content_only() {
        assert_eq!(etag_of(69, Some(40), b"x"), etag_of(69, Some(40), b"x"));
        assert_ne!(etag_of(69, Some(40), b"x"), etag_of(69, Some(40), b"y"));
    }
}
