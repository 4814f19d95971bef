//! Telemetry sequence numbers (pure): strictly increasing per device, never
//! reused across restarts.
//!
//! The spool persists a *limit* `L` meaning "every number below `L` may have
//! been handed out". Numbers are handed out from blocks: before the first
//! number of a block is used, `next + SEQ_BLOCK` is persisted. A restart
//! continues at the persisted limit (or after the highest spooled message,
//! whichever is larger), so at most one block is skipped per restart and no
//! number is ever used twice.
//!
//! A spool with no persisted limit starts at the current Unix time in
//! microseconds, so that a device whose spool was wiped (re-flashed, new SD
//! card) still continues above the numbers it used before, which backends
//! require ("seq increasing per device").

/// How many numbers one persisted reservation covers.
pub const SEQ_BLOCK: u64 = 1000;

/// Hands out sequence numbers from persisted reservations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeqAllocator {
    next: u64,
    reserved_until: u64,
}

impl SeqAllocator {
    /// Starts after everything that may have been used: the persisted limit
    /// (or `fresh_start` when none was ever persisted) and the highest
    /// sequence number still in the spool. Nothing is reserved yet.
    pub fn new(
        persisted_limit: Option<u64>,
        highest_spooled: Option<u64>,
        fresh_start: u64,
    ) -> Self {
        let next = persisted_limit
            .unwrap_or(fresh_start)
            .max(highest_spooled.map_or(0, |h| h.saturating_add(1)))
            .max(1);
        Self {
            next,
            reserved_until: next,
        }
    }

    /// The first fresh start for a spool with no persisted limit: Unix time
    /// in microseconds.
    pub fn fresh_start(now_ms: u64) -> u64 {
        now_ms.saturating_mul(1000).max(1)
    }

    /// `Some(limit)` when the next number is not covered by a reservation:
    /// persist `limit` durably, then call [`SeqAllocator::reserved`].
    pub fn needs_reservation(&self) -> Option<u64> {
        (self.next >= self.reserved_until).then(|| self.next.saturating_add(SEQ_BLOCK))
    }

    /// Records that `limit` is durably persisted.
    pub fn reserved(&mut self, limit: u64) {
        self.reserved_until = self.reserved_until.max(limit);
    }

    /// The next number, when a reservation covers it (`None`: reserve first).
    pub fn take(&mut self) -> Option<u64> {
        if self.next >= self.reserved_until {
            return None;
        }
        let seq = self.next;
        self.next += 1;
        Some(seq)
    }

    /// The number the next [`SeqAllocator::take`] would return.
    pub fn peek(&self) -> u64 {
        self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take_reserving(a: &mut SeqAllocator, persisted: &mut Option<u64>) -> u64 {
        if let Some(limit) = a.needs_reservation() {
            *persisted = Some(limit);
            a.reserved(limit);
        }
        a.take().expect("reserved")
    }

    #[test]
    fn hands_out_increasing_numbers_reserving_blocks() {
        let mut persisted = None;
        let mut a = SeqAllocator::new(persisted, None, 5);
        assert_eq!(a.take(), None, "nothing reserved yet");
        assert_eq!(a.needs_reservation(), Some(5 + SEQ_BLOCK));
        let seqs: Vec<u64> = (0..2500)
            .map(|_| take_reserving(&mut a, &mut persisted))
            .collect();
        assert_eq!(seqs.first(), Some(&5));
        assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1));
        // Three reservations were needed; the last covers the last number.
        assert_eq!(persisted, Some(5 + 3 * SEQ_BLOCK));
        assert!(seqs.iter().all(|s| *s < 5 + 3 * SEQ_BLOCK));
    }

    #[test]
    fn a_restart_never_reuses_a_number() {
        let mut persisted = None;
        let mut a = SeqAllocator::new(persisted, None, 100);
        let used: Vec<u64> = (0..10)
            .map(|_| take_reserving(&mut a, &mut persisted))
            .collect();
        // Crash: only `persisted` survives (and maybe spooled messages).
        let mut b = SeqAllocator::new(persisted, used.last().copied(), 7);
        let next = take_reserving(&mut b, &mut persisted);
        assert!(next > *used.iter().max().unwrap_or(&0));
        assert_eq!(next, 100 + SEQ_BLOCK);
    }

    #[test]
    fn spooled_messages_above_the_limit_win() {
        // A limit older than the spool (e.g. restored from a backup).
        let a = SeqAllocator::new(Some(10), Some(500), 0);
        assert_eq!(a.peek(), 501);
        let fresh = SeqAllocator::new(None, None, 0);
        assert_eq!(fresh.peek(), 1, "never zero");
    }

    #[test]
    fn fresh_start_follows_the_clock() {
        assert_eq!(
            SeqAllocator::fresh_start(1_700_000_000_000),
            1_700_000_000_000_000
        );
        assert_eq!(SeqAllocator::fresh_start(0), 1);
        assert_eq!(SeqAllocator::fresh_start(u64::MAX), u64::MAX);
    }

    #[test]
    fn saturates_instead_of_wrapping() {
        let mut a = SeqAllocator::new(Some(u64::MAX - 1), None, 0);
        assert_eq!(a.needs_reservation(), Some(u64::MAX));
        a.reserved(u64::MAX);
        assert_eq!(a.take(), Some(u64::MAX - 1));
        assert_eq!(a.take(), None);
        assert_eq!(a.needs_reservation(), Some(u64::MAX));
    }
}
