//! The agent's notion of "now", injectable so that tests (and simulators) can
//! move time forward without waiting: token renewal and expiry decisions and
//! telemetry timestamps all read this clock.
//!
//! Signed token requests are the exception: they carry the system time,
//! because the broker checks them against its own clock.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time.
pub trait Clock: Send + Sync + 'static {
    /// Unix time in milliseconds.
    fn now_ms(&self) -> u64;

    /// Unix time in seconds.
    fn now_secs(&self) -> u64 {
        self.now_ms() / 1000
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        system_ms()
    }
}

fn system_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The system clock shifted by an adjustable offset (for tests and
/// simulations: "advance time by 40 s" without sleeping).
#[derive(Debug, Default)]
pub struct OffsetClock {
    offset_ms: AtomicI64,
}

impl OffsetClock {
    /// A clock equal to the system clock until it is advanced.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves this clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }

    /// The current offset from the system clock.
    pub fn offset(&self) -> Duration {
        Duration::from_millis(self.offset_ms.load(Ordering::SeqCst).max(0).unsigned_abs())
    }
}

impl Clock for OffsetClock {
    fn now_ms(&self) -> u64 {
        let offset = self.offset_ms.load(Ordering::SeqCst);
        system_ms().saturating_add_signed(offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_clock_moves_forward_only_when_told() {
        let clock = OffsetClock::new();
        let before = clock.now_ms();
        clock.advance(Duration::from_secs(40));
        let after = clock.now_ms();
        assert!(after >= before + 40_000, "{before} -> {after}");
        assert!(after < before + 50_000);
        assert_eq!(clock.offset(), Duration::from_secs(40));
        assert_eq!(clock.now_secs(), clock.now_ms() / 1000);
    }
}
