//! Certificate renewal decisions (pure: time and randomness are passed in).
//!
//! * [`RenewalSchedule`]: a certificate valid from `not_before` to
//!   `not_after` is renewed at
//!   [`schedule::renew_after`](certbound_proto::schedule::renew_after) of its
//!   lifetime (about 2/3, ±5 % jitter, so a fleet provisioned at once does not
//!   renew in lockstep); a failed attempt is retried after a
//!   [`Backoff`] with full jitter; a certificate that expired (e.g. while the
//!   device was offline) may still be renewed within the grace window, after
//!   which only re-provisioning helps.
//! * [`Phase`]: the staged-credential state machine of one renewal:
//!
//! ```text
//!            request                issued + staged           connected with the new cert
//! Current ──────────> Requesting ─────────────────> Staged ──────────────────────────> Trial
//!    ^                    │                            │                                 │
//!    │      failed        │        failed (discard)    │     token obtained (promote)    │
//!    └────────────────────┴────────────────────────────┴─────────────────────────────────┘
//! ```
//!
//! The new pair is written as `.next` files when it arrives (Staged), used
//! for an MQTT connection and a token request (Trial), and becomes the
//! current pair only after both succeeded (promote); any failure discards it
//! and the old pair stays in use (see [`crate::credentials`]).

use certbound_proto::schedule::{Backoff, needs_renewal, renew_after};

/// The validity of a certificate, Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertTimes {
    /// notBefore.
    pub not_before: u64,
    /// notAfter.
    pub not_after: u64,
}

impl CertTimes {
    /// `not_after - not_before` (at least 1).
    pub fn lifetime(&self) -> u64 {
        self.not_after.saturating_sub(self.not_before).max(1)
    }
}

/// How renewal retries and how long an expired certificate may still renew.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenewalPolicy {
    /// Waits between failed attempts (milliseconds).
    pub backoff: Backoff,
    /// Seconds after notAfter during which renewal is still attempted (the
    /// broker's `[pki] renewal_grace_days`).
    pub expired_grace_secs: u64,
}

/// What to do about the certificate now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Nothing before this agent time (Unix milliseconds).
    Wait {
        /// When to look again.
        until_ms: u64,
    },
    /// Renew now; the certificate is still valid (any transport).
    Renew,
    /// Renew now; the certificate has expired but is within the grace window
    /// (only CoAP can carry the request: TLS refuses an expired certificate).
    RenewExpired,
    /// Expired beyond the grace window: the device must be re-provisioned.
    Reprovision,
}

/// When the current certificate is renewed.
#[derive(Debug, Clone)]
pub struct RenewalSchedule {
    policy: RenewalPolicy,
    cert: CertTimes,
    /// Seconds after notBefore.
    renew_after: u64,
    failures: u32,
    retry_at_ms: u64,
}

impl RenewalSchedule {
    /// The schedule of a certificate; `unit` is a random sample in `[0, 1)`
    /// for the jitter of the renewal point.
    pub fn new(policy: RenewalPolicy, cert: CertTimes, unit: f64) -> Self {
        Self {
            policy,
            cert,
            renew_after: renew_after(cert.lifetime(), unit),
            failures: 0,
            retry_at_ms: 0,
        }
    }

    /// The certificate this schedule is for.
    pub fn cert(&self) -> CertTimes {
        self.cert
    }

    /// The renewal point, Unix seconds.
    pub fn renew_at(&self) -> u64 {
        self.cert.not_before.saturating_add(self.renew_after)
    }

    /// Consecutive failed attempts.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// What to do at `now_ms` (agent clock).
    pub fn due(&self, now_ms: u64) -> Due {
        let now = now_ms / 1000;
        let grace_end = self
            .cert
            .not_after
            .saturating_add(self.policy.expired_grace_secs);
        if now > grace_end {
            return Due::Reprovision;
        }
        let stale = needs_renewal(
            self.cert.not_before,
            self.cert.lifetime(),
            self.renew_after,
            now,
            0,
        );
        if !stale {
            return Due::Wait {
                until_ms: self.renew_at().saturating_mul(1000),
            };
        }
        if now_ms < self.retry_at_ms {
            return Due::Wait {
                until_ms: self.retry_at_ms,
            };
        }
        if now >= self.cert.not_after {
            Due::RenewExpired
        } else {
            Due::Renew
        }
    }

    /// The next agent time (ms) at which [`RenewalSchedule::due`] may change
    /// (`None`: nothing will change any more, re-provisioning needed).
    pub fn next_due_ms(&self, now_ms: u64) -> Option<u64> {
        match self.due(now_ms) {
            Due::Wait { until_ms } => Some(until_ms),
            Due::Renew | Due::RenewExpired => Some(now_ms),
            Due::Reprovision => None,
        }
    }

    /// Records a failed attempt at `now_ms`; returns the wait (ms) before the
    /// next (`unit` as for [`Backoff::delay_ms`]).
    pub fn on_failure(&mut self, now_ms: u64, unit: f64) -> u64 {
        let delay = self.policy.backoff.delay_ms(self.failures, unit);
        self.failures = self.failures.saturating_add(1);
        self.retry_at_ms = now_ms.saturating_add(delay);
        delay
    }

    /// Waits at least until `at_ms` before the next attempt (the broker
    /// asked to retry later).
    pub fn postpone_to(&mut self, at_ms: u64) {
        self.retry_at_ms = self.retry_at_ms.max(at_ms);
    }

    /// Starts over for the renewed certificate.
    pub fn on_renewed(&mut self, cert: CertTimes, unit: f64) {
        *self = Self::new(self.policy, cert, unit);
    }
}

/// Where one renewal stands (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Phase {
    /// The current pair is in use; no renewal in progress.
    #[default]
    Current,
    /// A re-enrollment request is out; nothing written yet.
    Requesting,
    /// The new pair is on disk as `.next`, not used yet.
    Staged,
    /// Connected with the new certificate; its tokens are being requested.
    Trial,
}

/// What happened to the renewal in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The renewal is due and a request was sent.
    Requested,
    /// The broker issued a certificate and the new pair was written as `.next`.
    Staged,
    /// An MQTT connection with the new certificate is up.
    Connected,
    /// A token was obtained with the new key: the new pair works.
    TokenObtained,
    /// Something failed (refusal, timeout, lost connection, file error).
    Failed,
}

/// What the caller must do after a transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing beyond carrying on.
    None,
    /// Make the staged pair the current one (it was used successfully) and
    /// switch to it.
    Promote,
    /// Remove the staged pair and keep using the current one.
    Discard,
}

/// A transition that the state machine does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("renewal: {event:?} is not possible in phase {phase:?}")]
pub struct InvalidTransition {
    /// The phase.
    pub phase: Phase,
    /// The event.
    pub event: Event,
}

impl Phase {
    /// The phase after `event`, and what to do.
    pub fn on(self, event: Event) -> Result<(Phase, Action), InvalidTransition> {
        use {Action as A, Event as E, Phase as P};
        Ok(match (self, event) {
            (P::Current, E::Requested) => (P::Requesting, A::None),
            (P::Requesting, E::Staged) => (P::Staged, A::None),
            (P::Staged, E::Connected) => (P::Trial, A::None),
            (P::Trial, E::TokenObtained) => (P::Current, A::Promote),
            (P::Requesting, E::Failed) => (P::Current, A::None),
            (P::Staged | P::Trial, E::Failed) => (P::Current, A::Discard),
            (phase, event) => return Err(InvalidTransition { phase, event }),
        })
    }

    /// True while a new pair is on disk but not promoted.
    pub fn has_staged(self) -> bool {
        matches!(self, Phase::Staged | Phase::Trial)
    }
}

#[cfg(test)]
mod tests;
