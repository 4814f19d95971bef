//! Message deduplication (RFC 7252 §4.5): remembers `(peer, message id)` for
//! EXCHANGE_LIFETIME so a retransmitted request gets the same response again
//! instead of running the handler twice. Bounded twice: in entries and in
//! bytes (each entry counts [`ENTRY_OVERHEAD`] plus its cached answer); the
//! oldest entries are evicted first when either bound is reached. Pure: time
//! is passed in.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Result of looking up an incoming message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// First time seen: it is now recorded as in progress, process it.
    New,
    /// A duplicate of a message still being processed: drop it.
    InProgress,
    /// A duplicate of an answered message: send these bytes again.
    Replay(Vec<u8>),
}

/// Bytes counted per remembered message besides its answer: the key, the map
/// and queue slots and the allocation headers (an upper estimate).
pub(crate) const ENTRY_OVERHEAD: usize = 128;

struct Entry {
    response: Option<Vec<u8>>,
    generation: u64,
}

impl Entry {
    fn cost(&self) -> usize {
        ENTRY_OVERHEAD + self.response.as_ref().map_or(0, Vec::len)
    }
}

/// Bounded, expiring duplicate-detection cache.
pub(crate) struct DedupCache<K> {
    entries: HashMap<K, Entry>,
    order: VecDeque<(K, Instant, u64)>,
    lifetime: Duration,
    capacity: usize,
    max_bytes: usize,
    bytes: usize,
    next_generation: u64,
}

impl<K: Eq + Hash + Clone> DedupCache<K> {
    /// A cache remembering at most `capacity` messages taking at most
    /// `max_bytes` together, for `lifetime` each.
    pub fn new(lifetime: Duration, capacity: usize, max_bytes: usize) -> Self {
        DedupCache {
            entries: HashMap::new(),
            order: VecDeque::new(),
            lifetime,
            capacity: capacity.max(1),
            max_bytes: max_bytes.max(ENTRY_OVERHEAD),
            bytes: 0,
            next_generation: 0,
        }
    }

    /// Number of remembered messages.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Bytes counted for the remembered messages (see [`ENTRY_OVERHEAD`]).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Looks up `key` received at `now`, recording it as in progress when new.
    pub fn check(&mut self, key: K, now: Instant) -> Lookup {
        self.expire(now);
        if let Some(entry) = self.entries.get(&key) {
            return match &entry.response {
                Some(bytes) => Lookup::Replay(bytes.clone()),
                None => Lookup::InProgress,
            };
        }
        while self.entries.len() >= self.capacity
            || self.bytes.saturating_add(ENTRY_OVERHEAD) > self.max_bytes
        {
            if !self.pop_oldest() {
                break;
            }
        }
        let generation = self.next_generation;
        self.next_generation += 1;
        self.entries.insert(
            key.clone(),
            Entry {
                response: None,
                generation,
            },
        );
        self.bytes += ENTRY_OVERHEAD;
        self.order.push_back((key, now, generation));
        Lookup::New
    }

    /// Records the response sent for `key` (ignored when it was evicted
    /// meanwhile), evicting the oldest other entries while over the byte
    /// bound. An answer that alone exceeds the bound is not kept.
    pub fn complete(&mut self, key: &K, response: Vec<u8>) {
        if ENTRY_OVERHEAD.saturating_add(response.len()) > self.max_bytes {
            self.forget(key);
            return;
        }
        let Some(entry) = self.entries.get_mut(key) else {
            return;
        };
        let before = entry.cost();
        entry.response = Some(response);
        let after = entry.cost();
        let generation = entry.generation;
        self.bytes = self.bytes - before + after;
        while self.bytes > self.max_bytes {
            let oldest_is_key = self
                .order
                .front()
                .is_some_and(|(k, _, g)| k == key && *g == generation);
            if oldest_is_key {
                // Keep the newest answer; rotate it behind the others.
                if let Some(front) = self.order.pop_front() {
                    self.order.push_back(front);
                }
                if self.entries.len() == 1 {
                    break;
                }
            }
            if !self.pop_oldest() {
                break;
            }
        }
    }

    /// Forgets `key`, so a retransmission is processed afresh.
    pub fn forget(&mut self, key: &K) {
        if let Some(entry) = self.entries.remove(key) {
            self.bytes -= entry.cost();
        }
    }

    fn expire(&mut self, now: Instant) {
        while let Some((_, seen, _)) = self.order.front() {
            if now.saturating_duration_since(*seen) < self.lifetime {
                break;
            }
            self.pop_oldest();
        }
        // Keep the order queue from growing without bound through forget().
        if self.order.len() > self.entries.len().saturating_mul(2).max(64) {
            let entries = &self.entries;
            self.order
                .retain(|(k, _, g)| entries.get(k).is_some_and(|e| e.generation == *g));
        }
    }

    fn pop_oldest(&mut self) -> bool {
        let Some((key, _, generation)) = self.order.pop_front() else {
            return false;
        };
        if self
            .entries
            .get(&key)
            .is_some_and(|e| e.generation == generation)
            && let Some(entry) = self.entries.remove(&key)
        {
            self.bytes -= entry.cost();
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_in_progress_then_replayed() {
        let t0 = Instant::now();
        let mut c = DedupCache::new(Duration::from_secs(247), 8, usize::MAX);
        assert_eq!(c.check(("peer", 1), t0), Lookup::New);
        assert_eq!(c.check(("peer", 1), t0), Lookup::InProgress);
        c.complete(&("peer", 1), vec![9, 9]);
        assert_eq!(c.check(("peer", 1), t0), Lookup::Replay(vec![9, 9]));
        // Same message id from another peer is a different message.
        assert_eq!(c.check(("other", 1), t0), Lookup::New);
    }

    #[test]
    fn entries_expire_after_lifetime() {
        let t0 = Instant::now();
        let mut c = DedupCache::new(Duration::from_secs(10), 8, usize::MAX);
        assert_eq!(c.check(1u16, t0), Lookup::New);
        c.complete(&1, vec![1]);
        assert_eq!(
            c.check(1, t0 + Duration::from_secs(9)),
            Lookup::Replay(vec![1])
        );
        assert_eq!(c.check(1, t0 + Duration::from_secs(10)), Lookup::New);
    }

    #[test]
    fn capacity_evicts_oldest_first() {
        let t0 = Instant::now();
        let mut c = DedupCache::new(Duration::from_secs(247), 3, usize::MAX);
        for id in 0..3u16 {
            assert_eq!(
                c.check(id, t0 + Duration::from_millis(u64::from(id))),
                Lookup::New
            );
            c.complete(&id, vec![id as u8]);
        }
        assert_eq!(c.check(3, t0 + Duration::from_millis(3)), Lookup::New);
        assert_eq!(c.len(), 3);
        // 0 was the oldest and is gone; 1 and 2 are still answered from cache.
        assert_eq!(c.check(1, t0), Lookup::Replay(vec![1]));
        assert_eq!(c.check(2, t0), Lookup::Replay(vec![2]));
        assert_eq!(c.check(0, t0 + Duration::from_millis(4)), Lookup::New);
        assert!(c.len() <= 3);
    }

    #[test]
    fn forget_allows_reprocessing_and_keeps_queue_small() {
        let t0 = Instant::now();
        let mut c = DedupCache::new(Duration::from_secs(247), 4, usize::MAX);
        for _ in 0..1000 {
            assert_eq!(c.check(7u16, t0), Lookup::New);
            c.forget(&7);
        }
        assert_eq!(c.len(), 0);
        assert!(c.order.len() <= 64 + 1);
        // A forgotten-then-reused key is not evicted by its stale queue entry.
        assert_eq!(c.check(7, t0), Lookup::New);
        c.complete(&7, vec![7]);
        for id in 100..103u16 {
            assert_eq!(c.check(id, t0), Lookup::New);
        }
        assert_eq!(c.check(7, t0), Lookup::Replay(vec![7]));
    }

    #[test]
    fn byte_bound_evicts_oldest_answers() {
        let t0 = Instant::now();
        let max = 10 * (ENTRY_OVERHEAD + 1000);
        let mut c = DedupCache::new(Duration::from_secs(247), 1_000_000, max);
        for id in 0..1000u16 {
            assert_eq!(c.check(id, t0), Lookup::New);
            c.complete(&id, vec![0; 1000]);
            assert!(c.bytes() <= max, "{} bytes after {id}", c.bytes());
        }
        assert_eq!(c.len(), 10);
        // The newest answers are kept, the oldest evicted.
        assert_eq!(c.check(999, t0), Lookup::Replay(vec![0; 1000]));
        assert_eq!(c.check(0, t0), Lookup::New);
        // An answer bigger than the whole bound is not kept at all.
        assert_eq!(c.check(5000, t0), Lookup::New);
        c.complete(&5000, vec![0; max]);
        assert_eq!(c.check(5000, t0), Lookup::New);
        assert!(c.bytes() <= max);
        // Forgetting and expiry give the bytes back.
        let mut c = DedupCache::new(Duration::from_secs(10), 100, max);
        assert_eq!(c.check(1u16, t0), Lookup::New);
        c.complete(&1, vec![0; 100]);
        assert_eq!(c.bytes(), ENTRY_OVERHEAD + 100);
        assert_eq!(c.check(2, t0 + Duration::from_secs(11)), Lookup::New);
        assert_eq!(c.bytes(), ENTRY_OVERHEAD);
        c.forget(&2);
        assert_eq!(c.bytes(), 0);
    }
}
