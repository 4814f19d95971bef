//! The token manager (pure: time and randomness are passed in): which
//! configured audience needs a token request now, which token a message is
//! sealed with, and when to look again.
//!
//! * A token of `lifetime` seconds is renewed at
//!   [`schedule::renew_after`](certbound_proto::schedule::renew_after)
//!   (about 2/3 of the lifetime, with jitter).
//! * Before a send, a token that
//!   [`needs_renewal`](certbound_proto::schedule::needs_renewal) (past its
//!   renewal point, or expiring within the margin) is renewed first.
//! * A failed request is retried after
//!   [`Backoff`](certbound_proto::schedule::Backoff) with full jitter; while
//!   waiting, a still-valid older token keeps being used, an expired one
//!   never is.

use certbound_proto::cbor::Limits;
use certbound_proto::schedule::{Backoff, needs_renewal, renew_after};
use certbound_proto::token::UnverifiedToken;

use crate::error::AgentError;

/// Largest renewal margin, as a fraction of the lifetime (1/4): a short-lived
/// token is not renewed on every send just because the margin is long.
const MARGIN_DIVISOR: u64 = 4;

/// What to ask the broker for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSpec {
    /// The API identifier (`aud`).
    pub audience: String,
    /// Requested scopes; `None` asks for the grant's defaults.
    pub scope: Option<String>,
}

/// A token the agent holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldToken {
    /// The CWT.
    pub token: Vec<u8>,
    /// Its `cti` (goes into every telemetry payload sealed with it).
    pub cti: Vec<u8>,
    /// Agent clock when it arrived, Unix seconds.
    pub issued_at: u64,
    /// Seconds it may be used after `issued_at`: from the token's own `exp`
    /// ([`crate::accept_token`]), never from the answer's `expires_in`.
    pub lifetime: u64,
    /// Seconds after `issued_at` at which to renew it.
    pub renew_at: u64,
}

impl HeldToken {
    /// Unix seconds at which it expires.
    pub fn expires_at(&self) -> u64 {
        self.issued_at.saturating_add(self.lifetime)
    }

    /// True when it must be renewed before use at `now` (seconds).
    pub fn needs_renewal(&self, now: u64, margin: u64) -> bool {
        let margin = margin.min(self.lifetime / MARGIN_DIVISOR);
        needs_renewal(self.issued_at, self.lifetime, self.renew_at, now, margin)
    }

    /// True when it may still be presented at `now` (seconds): unexpired,
    /// with a small safety gap for the trip to the backend.
    pub fn usable(&self, now: u64) -> bool {
        let gap = (self.lifetime / 10).clamp(1, 5);
        now.saturating_add(gap) < self.expires_at()
    }
}

/// The `cti` of a token (its claims decoded without verification: the agent
/// only needs to name the token it attaches).
pub fn token_cti(token: &[u8]) -> Result<Vec<u8>, AgentError> {
    let claims = UnverifiedToken::parse(token, Limits::default())
        .and_then(|t| t.unverified_claims(Limits::default()))?;
    claims.cti.ok_or_else(|| {
        AgentError::UnexpectedResponse("the access token carries no cti claim".into())
    })
}

/// Which token a message can be sealed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForSend<'a> {
    /// Use this token.
    Ready(&'a HeldToken),
    /// Request a token first (the audience is due now).
    Renew,
    /// No usable token; a retry is scheduled at this agent time (ms).
    Wait {
        /// When the next request may be made, Unix milliseconds.
        until_ms: u64,
    },
    /// The audience is not configured.
    Unknown,
}

#[derive(Debug, Clone)]
struct Slot {
    spec: TokenSpec,
    held: Option<HeldToken>,
    failures: u32,
    retry_at_ms: u64,
}

/// Tokens for every configured audience.
#[derive(Debug, Clone)]
pub struct TokenManager {
    slots: Vec<Slot>,
    backoff: Backoff,
    margin: u64,
}

impl TokenManager {
    /// A manager for `specs`, retrying with `backoff`, renewing tokens that
    /// expire within `margin_secs` (at most a quarter of their lifetime).
    pub fn new(specs: Vec<TokenSpec>, backoff: Backoff, margin_secs: u64) -> Self {
        Self {
            slots: specs
                .into_iter()
                .map(|spec| Slot {
                    spec,
                    held: None,
                    failures: 0,
                    retry_at_ms: 0,
                })
                .collect(),
            backoff,
            margin: margin_secs,
        }
    }

    /// The audiences (by index) for which a request should be made now.
    pub fn due(&self, now_ms: u64) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|&i| self.is_due(i, now_ms))
            .collect()
    }

    fn is_due(&self, i: usize, now_ms: u64) -> bool {
        let slot = &self.slots[i];
        let stale = slot
            .held
            .as_ref()
            .is_none_or(|t| t.needs_renewal(now_ms / 1000, self.margin));
        stale && now_ms >= slot.retry_at_ms
    }

    /// What to request for slot `i`.
    pub fn spec(&self, i: usize) -> Option<&TokenSpec> {
        self.slots.get(i).map(|s| &s.spec)
    }

    /// The slot index of `audience`.
    pub fn index_of(&self, audience: &str) -> Option<usize> {
        self.slots.iter().position(|s| s.spec.audience == audience)
    }

    /// The token for `audience`, if any (usable or not).
    pub fn held(&self, audience: &str) -> Option<&HeldToken> {
        self.slot(audience).and_then(|s| s.held.as_ref())
    }

    fn slot(&self, audience: &str) -> Option<&Slot> {
        self.slots.iter().find(|s| s.spec.audience == audience)
    }

    /// Records a token obtained for slot `i` at `now_ms`, usable for
    /// `lifetime` seconds (from its own `exp`: [`crate::accept_token`]);
    /// `unit` is a random sample in `[0, 1)` for the renewal jitter.
    /// Returns the token.
    pub fn on_success(
        &mut self,
        i: usize,
        token: Vec<u8>,
        cti: Vec<u8>,
        lifetime: u64,
        now_ms: u64,
        unit: f64,
    ) -> Option<&HeldToken> {
        let slot = self.slots.get_mut(i)?;
        slot.failures = 0;
        slot.retry_at_ms = 0;
        slot.held = Some(HeldToken {
            token,
            cti,
            issued_at: now_ms / 1000,
            lifetime,
            renew_at: renew_after(lifetime, unit),
        });
        slot.held.as_ref()
    }

    /// Records a failed request for slot `i`; returns the wait (ms) before
    /// the next attempt (`unit` as for [`Backoff::delay_ms`]).
    pub fn on_failure(&mut self, i: usize, now_ms: u64, unit: f64) -> u64 {
        let Some(slot) = self.slots.get_mut(i) else {
            return 0;
        };
        let delay = self.backoff.delay_ms(slot.failures, unit);
        slot.failures = slot.failures.saturating_add(1);
        slot.retry_at_ms = now_ms.saturating_add(delay);
        delay
    }

    /// Consecutive failures of slot `i`.
    pub fn failures(&self, i: usize) -> u32 {
        self.slots.get(i).map_or(0, |s| s.failures)
    }

    /// Which token a message for `audience` is sealed with at `now_ms`.
    pub fn for_send(&self, audience: &str, now_ms: u64) -> ForSend<'_> {
        let Some(i) = self.index_of(audience) else {
            return ForSend::Unknown;
        };
        let slot = &self.slots[i];
        let now = now_ms / 1000;
        match &slot.held {
            Some(t) if !t.needs_renewal(now, self.margin) => ForSend::Ready(t),
            _ if self.is_due(i, now_ms) => ForSend::Renew,
            // Renewal failed and is backing off: an unexpired token still works.
            Some(t) if t.usable(now) => ForSend::Ready(t),
            _ => ForSend::Wait {
                until_ms: slot.retry_at_ms,
            },
        }
    }

    /// The next agent time (ms) at which some audience becomes due, if any
    /// is not due already.
    pub fn next_due_ms(&self) -> Option<u64> {
        self.slots
            .iter()
            .map(|s| match &s.held {
                None => s.retry_at_ms,
                Some(t) => {
                    let margin = self.margin.min(t.lifetime / MARGIN_DIVISOR);
                    let renew = t
                        .issued_at
                        .saturating_add(t.renew_at)
                        .min(t.expires_at().saturating_sub(margin));
                    renew.saturating_mul(1000).max(s.retry_at_ms)
                }
            })
            .min()
    }
}

#[cfg(test)]
mod tests;
