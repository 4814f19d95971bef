//! Per-device and per-client token request rate limits (token buckets).
//! Refusals are answered with HTTP 429 + Retry-After, CoAP 4.29 + Max-Age,
//! or an MQTT error response, and audited as `token.refused` /
//! `rate_limited`.

use std::sync::Mutex;
use std::time::Instant;

use certbound_proto::rate_limit::RateLimiter;

/// Settings: `per_sec` = 0 switches a limit off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimitConfig {
    /// Sustained token requests per second per device.
    pub device_per_sec: f64,
    /// Burst per device.
    pub device_burst: u32,
    /// Sustained token requests per second per client.
    pub client_per_sec: f64,
    /// Burst per client.
    pub client_burst: u32,
}

/// Most identities tracked at once per limiter (memory bound).
const MAX_TRACKED: usize = 100_000;

/// The broker's rate limiters.
#[derive(Debug)]
pub struct RateLimits {
    start: Instant,
    config: Option<RateLimitConfig>,
    devices: Option<Mutex<RateLimiter>>,
    clients: Option<Mutex<RateLimiter>>,
}

impl RateLimits {
    /// Builds the limiters.
    pub fn new(config: RateLimitConfig) -> Self {
        let make = |per_sec: f64, burst: u32| {
            (per_sec > 0.0)
                .then(|| Mutex::new(RateLimiter::new(burst.max(1), per_sec, MAX_TRACKED)))
        };
        Self {
            start: Instant::now(),
            config: Some(config),
            devices: make(config.device_per_sec, config.device_burst),
            clients: make(config.client_per_sec, config.client_burst),
        }
    }

    /// No limits.
    pub fn unlimited() -> Self {
        Self {
            start: Instant::now(),
            config: None,
            devices: None,
            clients: None,
        }
    }

    fn check(&self, limiter: &Option<Mutex<RateLimiter>>, key: &str) -> Result<(), u64> {
        let Some(limiter) = limiter else {
            return Ok(());
        };
        let now_ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut guard = match limiter.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        guard.check(key, now_ms).map_err(|r| r.secs)
    }

    /// The most requests one device can get past its rate limit within
    /// `window_secs` (burst plus sustained rate, rounded up): its fair share
    /// of the replay cache, where a nonce lives at most that long. `None`
    /// when the device limit is off.
    pub fn device_requests_within(&self, window_secs: u64) -> Option<usize> {
        let c = self.config.filter(|c| c.device_per_sec > 0.0)?;
        let sustained = (c.device_per_sec * window_secs as f64).ceil();
        let sustained = if sustained.is_finite() && sustained < 1e12 {
            sustained as usize
        } else {
            usize::MAX
        };
        Some(
            usize::try_from(c.device_burst.max(1))
                .unwrap_or(usize::MAX)
                .saturating_add(sustained)
                .saturating_add(1),
        )
    }

    /// Takes one request from `device`'s bucket; `Err(retry_after_secs)` when empty.
    pub fn check_device(&self, device: &str, _now: u64) -> Result<(), u64> {
        self.check(&self.devices, device)
    }

    /// Takes one request from `client`'s bucket; `Err(retry_after_secs)` when empty.
    pub fn check_client(&self, client: &str, _now: u64) -> Result<(), u64> {
        self.check(&self.clients, client)
    }
}
