//! Confirmable-message retransmission (RFC 7252 §4.2, §4.8) as a pure state
//! machine: the caller passes the current time and a random number in.

use std::time::{Duration, Instant};

/// The RFC 7252 transmission parameters that drive retransmission.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct TransmissionParams {
    /// ACK_TIMEOUT: base wait before the first retransmission.
    pub ack_timeout: Duration,
    /// ACK_RANDOM_FACTOR: the initial timeout is drawn from
    /// `[ack_timeout, ack_timeout * factor]`; values below 1 count as 1.
    pub ack_random_factor: f64,
    /// MAX_RETRANSMIT: how many times a message is sent again before giving up.
    pub max_retransmit: u32,
}

impl TransmissionParams {
    fn factor(&self) -> f64 {
        if self.ack_random_factor.is_finite() && self.ack_random_factor > 1.0 {
            self.ack_random_factor
        } else {
            1.0
        }
    }

    /// The initial timeout for `random` drawn uniformly from `[0, 1)`.
    pub fn initial_timeout(&self, random: f64) -> Duration {
        let random = if random.is_finite() {
            random.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self.ack_timeout
            .mul_f64(1.0 + (self.factor() - 1.0) * random)
    }

    /// MAX_TRANSMIT_WAIT: the longest time from the first transmission of a
    /// confirmable message to giving up on it.
    pub fn max_transmit_wait(&self) -> Duration {
        let doublings =
            2f64.powi(i32::try_from(self.max_retransmit.min(30)).unwrap_or(30) + 1) - 1.0;
        self.ack_timeout.mul_f64(doublings * self.factor())
    }
}

/// What to do when the retransmission timer is polled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RetransmitAction {
    /// Not yet: wake up again at this instant.
    Wait(Instant),
    /// Send the message again now; the next deadline has been armed.
    Resend,
    /// MAX_RETRANSMIT reached and the last timeout expired: give up.
    GiveUp,
}

/// Retransmission state of one confirmable message.
#[derive(Debug, Clone)]
pub(crate) struct Retransmission {
    first_sent: Instant,
    deadline: Instant,
    timeout: Duration,
    retransmissions: u32,
    max_retransmit: u32,
}

impl Retransmission {
    /// Arms the timer for a message first sent at `now`; `random` is uniform in `[0, 1)`.
    pub fn new(params: &TransmissionParams, random: f64, now: Instant) -> Self {
        let timeout = params.initial_timeout(random);
        Retransmission {
            first_sent: now,
            deadline: now + timeout,
            timeout,
            retransmissions: 0,
            max_retransmit: params.max_retransmit,
        }
    }

    /// When the timer fires next.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// How many times the message has been sent so far.
    pub fn transmissions(&self) -> u32 {
        self.retransmissions.saturating_add(1)
    }

    /// Time since the first transmission.
    pub fn elapsed(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.first_sent)
    }

    /// Advances the timer to `now`.
    pub fn on_timeout(&mut self, now: Instant) -> RetransmitAction {
        if now < self.deadline {
            return RetransmitAction::Wait(self.deadline);
        }
        if self.retransmissions >= self.max_retransmit {
            return RetransmitAction::GiveUp;
        }
        self.retransmissions += 1;
        self.timeout = self.timeout.saturating_mul(2);
        self.deadline = now + self.timeout;
        RetransmitAction::Resend
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> TransmissionParams {
        TransmissionParams {
            ack_timeout: Duration::from_secs(2),
            ack_random_factor: 1.5,
            max_retransmit: 4,
        }
    }

    /// Runs the timer on a virtual clock and records when each (re)send happens.
    fn schedule(random: f64) -> (Vec<Duration>, Duration) {
        let t0 = Instant::now();
        let mut r = Retransmission::new(&params(), random, t0);
        let mut sends = vec![Duration::ZERO];
        let mut now = t0;
        loop {
            // Polling early never fires.
            let early = r.on_timeout(now);
            assert_eq!(early, RetransmitAction::Wait(r.deadline()));
            now = r.deadline();
            match r.on_timeout(now) {
                RetransmitAction::Resend => sends.push(now - t0),
                RetransmitAction::GiveUp => return (sends, now - t0),
                RetransmitAction::Wait(_) => unreachable!(),
            }
        }
    }

    #[test]
    fn exponential_backoff_lower_bound() {
        let (sends, gave_up) = schedule(0.0);
        let secs: Vec<u64> = sends.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, vec![0, 2, 6, 14, 30]);
        assert_eq!(gave_up, Duration::from_secs(62));
    }

    #[test]
    fn exponential_backoff_upper_bound() {
        let (sends, gave_up) = schedule(1.0);
        let secs: Vec<u64> = sends.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, vec![0, 3, 9, 21, 45]);
        // MAX_TRANSMIT_WAIT of RFC 7252 §4.8.2 is 93 s.
        assert_eq!(gave_up, Duration::from_secs(93));
        assert_eq!(params().max_transmit_wait(), Duration::from_secs(93));
    }

    #[test]
    fn initial_timeout_range_and_sanitising() {
        let p = params();
        assert_eq!(p.initial_timeout(0.5), Duration::from_millis(2500));
        assert_eq!(p.initial_timeout(f64::NAN), Duration::from_secs(2));
        assert_eq!(p.initial_timeout(7.0), Duration::from_secs(3));
        let flat = TransmissionParams {
            ack_random_factor: 0.3,
            ..p
        };
        assert_eq!(flat.initial_timeout(0.9), Duration::from_secs(2));
    }

    #[test]
    fn no_retransmit_gives_up_after_first_timeout() {
        let t0 = Instant::now();
        let p = TransmissionParams {
            max_retransmit: 0,
            ..params()
        };
        let mut r = Retransmission::new(&p, 0.0, t0);
        assert_eq!(r.transmissions(), 1);
        assert_eq!(
            r.on_timeout(t0 + Duration::from_secs(2)),
            RetransmitAction::GiveUp
        );
        assert_eq!(
            r.elapsed(t0 + Duration::from_secs(2)),
            Duration::from_secs(2)
        );
    }
}
