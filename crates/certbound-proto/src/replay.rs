//! A bounded replay cache for request nonces (`cti`), with time passed in.

use std::collections::{HashMap, VecDeque};

use crate::error::ClaimError;

/// Remembers `(issuer, cti)` pairs until their request expires.
///
/// Bounded: when full even after dropping expired entries, new requests are
/// refused (fail closed) rather than forgetting nonces that are still valid.
#[derive(Debug)]
pub struct ReplayCache {
    seen: HashMap<(String, Vec<u8>), u64>,
    order: VecDeque<(u64, String, Vec<u8>)>,
    capacity: usize,
}

impl ReplayCache {
    /// A cache holding at most `capacity` live nonces.
    pub fn new(capacity: usize) -> Self {
        Self {
            seen: HashMap::new(),
            order: VecDeque::new(),
            capacity,
        }
    }

    /// Records the nonce, or refuses it when it was seen before (and has not
    /// expired). `expires` is the request's exp plus the leeway.
    pub fn check_and_insert(
        &mut self,
        issuer: &str,
        cti: &[u8],
        expires: u64,
        now: u64,
    ) -> Result<(), ClaimError> {
        self.prune(now);
        let key = (issuer.to_string(), cti.to_vec());
        if self.seen.contains_key(&key) {
            return Err(ClaimError::Replayed(hex_short(cti)));
        }
        if self.seen.len() >= self.capacity {
            return Err(ClaimError::Replayed(
                "(replay cache full: try again shortly)".into(),
            ));
        }
        self.seen.insert(key, expires);
        self.order
            .push_back((expires, issuer.to_string(), cti.to_vec()));
        Ok(())
    }

    /// Number of live entries.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    fn prune(&mut self, now: u64) {
        // Entries are mostly in expiry order (requests live <= 5 min); scan the
        // front and drop what has expired.
        while let Some((exp, _, _)) = self.order.front() {
            if *exp > now {
                break;
            }
            if let Some((_, iss, cti)) = self.order.pop_front() {
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
