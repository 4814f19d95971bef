//! Token-bucket rate limiting with time passed in (milliseconds of a
//! monotonic clock), and a per-key limiter with bounded memory.
//!
//! A [`TokenBucket`] holds up to `capacity` tokens, starts full (a burst of
//! `capacity` is allowed at once) and regains `refill_per_sec` tokens per
//! second. Each request takes one token; a refused request learns how many
//! whole seconds to wait ([`RetryAfter`], for an HTTP `Retry-After` header or
//! a CoAP `Max-Age`).
//!
//! Time that goes backwards (a clock reset, or calls racing with stale
//! timestamps) is treated as no time passing: it never panics and never adds
//! tokens, and the bucket keeps the latest time it has seen.

use std::collections::HashMap;

/// The longest wait a [`RetryAfter`] ever reports (one day); a bucket that can
/// never refill (rate 0, or capacity 0) reports this.
pub const MAX_RETRY_AFTER_SECS: u64 = 86_400;

/// Tolerance for floating-point drift when checking for a whole token.
const EPSILON: f64 = 1e-9;

/// A refused request: wait this long before trying again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("rate limit exceeded: retry after {secs} s")]
pub struct RetryAfter {
    /// Whole seconds until one token is available, at least 1 (rounded up;
    /// at most [`MAX_RETRY_AFTER_SECS`]).
    pub secs: u64,
}

/// One token bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBucket {
    capacity: f64,
    refill_per_sec: f64,
    tokens: f64,
    last_ms: u64,
}

impl TokenBucket {
    /// A full bucket of `capacity` tokens regaining `refill_per_sec` tokens per
    /// second. A rate that is negative, NaN or infinite is treated as 0 (the
    /// bucket never refills).
    pub fn new(capacity: u32, refill_per_sec: f64, now_ms: u64) -> Self {
        let refill_per_sec = if refill_per_sec.is_finite() && refill_per_sec > 0.0 {
            refill_per_sec
        } else {
            0.0
        };
        Self {
            capacity: f64::from(capacity),
            refill_per_sec,
            tokens: f64::from(capacity),
            last_ms: now_ms,
        }
    }

    /// Adds the tokens earned since the last call; time going backwards earns
    /// nothing and does not move `last_ms` back.
    fn refill(&mut self, now_ms: u64) {
        self.tokens = self.tokens_at(now_ms);
        self.last_ms = self.last_ms.max(now_ms);
    }

    /// The tokens the bucket would hold at `now_ms` (never more than capacity).
    fn tokens_at(&self, now_ms: u64) -> f64 {
        let elapsed_ms = now_ms.saturating_sub(self.last_ms) as f64;
        (self.tokens + elapsed_ms * self.refill_per_sec / 1000.0).min(self.capacity)
    }

    /// Takes one token, or says how long to wait for one.
    pub fn try_take(&mut self, now_ms: u64) -> Result<(), RetryAfter> {
        self.refill(now_ms);
        if self.tokens + EPSILON >= 1.0 {
            self.tokens = (self.tokens - 1.0).max(0.0);
            return Ok(());
        }
        if self.capacity < 1.0 || self.refill_per_sec <= 0.0 {
            return Err(RetryAfter {
                secs: MAX_RETRY_AFTER_SECS,
            });
        }
        let wait = ((1.0 - self.tokens) / self.refill_per_sec).ceil();
        let secs = if wait >= MAX_RETRY_AFTER_SECS as f64 {
            MAX_RETRY_AFTER_SECS
        } else {
            (wait as u64).max(1)
        };
        Err(RetryAfter { secs })
    }

    /// True when the bucket has refilled completely by `now_ms` (forgetting it
    /// then loses nothing: a new bucket would start full too).
    pub fn is_full(&self, now_ms: u64) -> bool {
        self.tokens_at(now_ms) + EPSILON >= self.capacity
    }

    /// The latest time this bucket has seen, milliseconds.
    pub fn last_ms(&self) -> u64 {
        self.last_ms
    }
}

/// Per-key token buckets (a key is e.g. a device id, client id or peer
/// address) with memory bounded to `max_keys` buckets.
///
/// Eviction policy, applied when a new key arrives and `max_keys` buckets
/// exist:
/// 1. every bucket that has refilled completely is dropped (it holds no
///    information: a new bucket for that key starts full anyway);
/// 2. if that frees less than an eighth of `max_keys`, the least recently
///    used buckets (oldest `last_ms`) are dropped until an eighth is free.
///
/// Freeing a batch at a time keeps the cost amortised O(1) per new key
/// (each sweep is O(`max_keys`) and happens at most once per
/// `max_keys / 8` new keys). The price of step 2 is that a key evicted while
/// not full gets a full bucket when it comes back; only many distinct keys
/// in a short time can cause that, and they are limited by their own
/// buckets. `max_keys` 0 is treated as 1.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    buckets: HashMap<String, TokenBucket>,
    capacity: u32,
    refill: f64,
    max_keys: usize,
}

impl RateLimiter {
    /// A limiter giving each key a bucket of `capacity` tokens regaining
    /// `refill_per_sec` per second, remembering at most `max_keys` keys.
    pub fn new(capacity: u32, refill_per_sec: f64, max_keys: usize) -> Self {
        Self {
            buckets: HashMap::new(),
            capacity,
            refill: refill_per_sec,
            max_keys: max_keys.max(1),
        }
    }

    /// Takes one token from `key`'s bucket (creating it, full, when new).
    pub fn check(&mut self, key: &str, now_ms: u64) -> Result<(), RetryAfter> {
        if let Some(bucket) = self.buckets.get_mut(key) {
            return bucket.try_take(now_ms);
        }
        if self.buckets.len() >= self.max_keys {
            self.evict(now_ms);
        }
        let mut bucket = TokenBucket::new(self.capacity, self.refill, now_ms);
        let result = bucket.try_take(now_ms);
        self.buckets.insert(key.to_string(), bucket);
        result
    }

    /// Number of keys currently remembered.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// True when no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    fn evict(&mut self, now_ms: u64) {
        let batch = (self.max_keys / 8).max(1);
        let target = self.max_keys.saturating_sub(batch);
        self.buckets.retain(|_, b| !b.is_full(now_ms));
        if self.buckets.len() <= target {
            return;
        }
        // Drop the least recently used until `target` remain.
        let excess = self.buckets.len() - target;
        let mut ages: Vec<u64> = self.buckets.values().map(TokenBucket::last_ms).collect();
        let (_, cutoff, _) = ages.select_nth_unstable(excess - 1);
        let cutoff = *cutoff;
        // Buckets strictly older than the cutoff go first, then ties at the
        // cutoff until exactly `excess` are gone.
        let mut ties = excess - ages.iter().filter(|t| **t < cutoff).count();
        self.buckets.retain(|_, b| {
            if b.last_ms < cutoff {
                false
            } else if b.last_ms == cutoff && ties > 0 {
                ties -= 1;
                false
            } else {
                true
            }
        });
    }
}

#[cfg(test)]
mod tests;
