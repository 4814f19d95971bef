//! A bounded, fair replay cache for request nonces (`cti`), with time passed in.
//!
//! Fairness: besides the total capacity, each issuer (device) may hold at most
//! `issuer_quota` live nonces. Without it, one device whose key was extracted
//! could fill the whole cache with fresh nonces and every other device would be
//! refused until they expire (the cache fails closed, it never forgets a live
//! nonce). Callers check [`ReplayCache::seen`], then their per-device rate
//! limit, and only then [`ReplayCache::admit`] the nonce, so that requests the
//! rate limit refuses never take space.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};

use crate::error::ClaimError;

/// What [`ReplayCache::admit`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The nonce was new and is now remembered until it expires.
    Fresh,
    /// The nonce was seen before and has not expired: a replay.
    Replayed,
    /// The issuer already holds its quota of live nonces; retry after this
    /// many seconds (when its oldest nonce may have expired).
    IssuerOverQuota {
        /// Seconds until the earliest live nonce of the cache expires (at least 1).
        retry_after: u64,
    },
    /// The cache is full (fail closed); retry after this many seconds.
    Full {
        /// Seconds until the earliest live nonce of the cache expires (at least 1).
        retry_after: u64,
    },
}

/// Remembers `(issuer, cti)` pairs until their request expires.
///
/// Bounded: when full even after dropping expired entries, new requests are
/// refused (fail closed) rather than forgetting nonces that are still valid;
/// each issuer holds at most its quota of the capacity.
#[derive(Debug)]
pub struct ReplayCache {
    seen: HashSet<(String, Vec<u8>)>,
    /// Expiry order, earliest first.
    expiry: BinaryHeap<Reverse<(u64, String, Vec<u8>)>>,
    per_issuer: HashMap<String, usize>,
    capacity: usize,
    issuer_quota: usize,
}

impl ReplayCache {
    /// A cache holding at most `capacity` live nonces, with no per-issuer
    /// quota below that (see [`ReplayCache::with_issuer_quota`]).
    pub fn new(capacity: usize) -> Self {
        Self {
            seen: HashSet::new(),
            expiry: BinaryHeap::new(),
            per_issuer: HashMap::new(),
            capacity,
            issuer_quota: capacity,
        }
    }

    /// Limits every issuer to `quota` live nonces (at least 1, at most the capacity).
    pub fn with_issuer_quota(mut self, quota: usize) -> Self {
        self.issuer_quota = quota.clamp(1, self.capacity.max(1));
        self
    }

    /// The per-issuer quota.
    pub fn issuer_quota(&self) -> usize {
        self.issuer_quota
    }

    /// Whether `(issuer, cti)` is a live nonce (a replay), after dropping
    /// what expired at `now`. Does not remember anything.
    pub fn seen(&mut self, issuer: &str, cti: &[u8], now: u64) -> bool {
        self.prune(now);
        self.seen.contains(&(issuer.to_string(), cti.to_vec()))
    }

    /// Remembers the nonce until `expires` (the request's exp plus the
    /// leeway), unless it is a replay, its issuer is over quota, or the
    /// cache is full.
    pub fn admit(&mut self, issuer: &str, cti: &[u8], expires: u64, now: u64) -> Admission {
        self.admit_within(issuer, cti, expires, now, self.issuer_quota)
    }

    /// [`ReplayCache::admit`] with an explicit quota for this issuer (for
    /// issuers of another kind than devices, e.g. provisioning claims shared
    /// by a batch of devices).
    pub fn admit_within(
        &mut self,
        issuer: &str,
        cti: &[u8],
        expires: u64,
        now: u64,
        quota: usize,
    ) -> Admission {
        self.prune(now);
        let key = (issuer.to_string(), cti.to_vec());
        if self.seen.contains(&key) {
            return Admission::Replayed;
        }
        let retry_after = self
            .expiry
            .peek()
            .map_or(1, |Reverse((exp, _, _))| exp.saturating_sub(now).max(1));
        if self.per_issuer.get(issuer).copied().unwrap_or(0) >= quota.max(1) {
            return Admission::IssuerOverQuota { retry_after };
        }
        if self.seen.len() >= self.capacity {
            return Admission::Full { retry_after };
        }
        *self.per_issuer.entry(issuer.to_string()).or_default() += 1;
        self.expiry
            .push(Reverse((expires, issuer.to_string(), cti.to_vec())));
        self.seen.insert(key);
        Admission::Fresh
    }

    /// Records the nonce, or refuses it when it was seen before (and has not
    /// expired), or when the cache (or the issuer's quota) is full.
    /// `expires` is the request's exp plus the leeway.
    pub fn check_and_insert(
        &mut self,
        issuer: &str,
        cti: &[u8],
        expires: u64,
        now: u64,
    ) -> Result<(), ClaimError> {
        match self.admit(issuer, cti, expires, now) {
            Admission::Fresh => Ok(()),
            Admission::Replayed => Err(ClaimError::Replayed(hex_short(cti))),
            Admission::IssuerOverQuota { .. } => Err(ClaimError::Replayed(
                "(this issuer has too many requests in flight: try again shortly)".into(),
            )),
            Admission::Full { .. } => Err(ClaimError::Replayed(
                "(replay cache full: try again shortly)".into(),
            )),
        }
    }

    /// The total capacity.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Number of live entries.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Live entries of `issuer`.
    pub fn issuer_len(&self, issuer: &str) -> usize {
        self.per_issuer.get(issuer).copied().unwrap_or(0)
    }

    fn prune(&mut self, now: u64) {
        while let Some(Reverse((exp, _, _))) = self.expiry.peek() {
            if *exp > now {
                break;
            }
            if let Some(Reverse((_, iss, cti))) = self.expiry.pop() {
                if let Some(n) = self.per_issuer.get_mut(&iss) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        self.per_issuer.remove(&iss);
                    }
                }
                self.seen.remove(&(iss, cti));
            }
        }
    }
}

fn hex_short(bytes: &[u8]) -> String {
    bytes.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
