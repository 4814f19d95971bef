//! Timing decisions of the device agent as pure functions (time and
//! randomness passed in): when to renew a credential, and how long to wait
//! before retrying a failed attempt.
//!
//! Renewal happens at about 2/3 of the lifetime, with jitter so that a fleet
//! provisioned at the same moment does not renew in lockstep; retries back
//! off exponentially with "full jitter" (AWS architecture blog), capped.

/// Jitter applied around the renewal point, as a fraction of the lifetime (±).
pub const RENEW_JITTER: f64 = 0.05;

/// Seconds after issuance at which a credential of `lifetime` seconds should
/// be renewed. `unit` is a random sample in `[0, 1)`; the result lies within
/// `lifetime * (2/3 ± 5%)`, at least 1 s and strictly before expiry when the
/// lifetime allows.
pub fn renew_after(lifetime: u64, unit: f64) -> u64 {
    let unit = if unit.is_finite() {
        unit.clamp(0.0, 1.0)
    } else {
        0.5
    };
    // Integer arithmetic on per-mille jitter keeps the result exact.
    let jitter_permille = ((2.0 * unit - 1.0) * RENEW_JITTER * 1000.0).round() as i64;
    let base = i128::from(lifetime) * 2 / 3;
    let jitter = i128::from(lifetime) * i128::from(jitter_permille) / 1000;
    let at = u64::try_from((base + jitter).max(0)).unwrap_or(u64::MAX);
    at.clamp(1, lifetime.saturating_sub(1).max(1))
}

/// Exponential backoff with full jitter: attempt `n` (0-based) waits a random
/// time in `[0, min(max, base * 2^n)]`, never less than `floor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// First ceiling, milliseconds.
    pub base_ms: u64,
    /// Largest ceiling, milliseconds.
    pub max_ms: u64,
    /// Smallest wait, milliseconds.
    pub floor_ms: u64,
}

impl Default for Backoff {
    /// 500 ms doubling up to 60 s, at least 100 ms.
    fn default() -> Self {
        Self {
            base_ms: 500,
            max_ms: 60_000,
            floor_ms: 100,
        }
    }
}

impl Backoff {
    /// The wait before retry number `attempt` (0 = first retry), given a
    /// random sample `unit` in `[0, 1)`.
    pub fn delay_ms(&self, attempt: u32, unit: f64) -> u64 {
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.5
        };
        let ceiling = self
            .base_ms
            .saturating_mul(1u64.checked_shl(attempt.min(63)).unwrap_or(u64::MAX))
            .min(self.max_ms);
        ((ceiling as f64 * unit) as u64)
            .max(self.floor_ms)
            .min(self.max_ms.max(self.floor_ms))
    }
}

/// True when a credential issued at `issued_at` with `lifetime` seconds must
/// be renewed before use at `now`: past its renewal point, or expiring within
/// `margin` seconds.
pub fn needs_renewal(issued_at: u64, lifetime: u64, renew_at: u64, now: u64, margin: u64) -> bool {
    let expires = issued_at.saturating_add(lifetime);
    now >= issued_at.saturating_add(renew_at) || now.saturating_add(margin) >= expires
}

#[cfg(test)]
mod tests;
