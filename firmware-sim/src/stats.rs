//! Counters, latency histograms and the run report.
//!
//! Every device task and the backend update one shared [`Stats`] (atomics and
//! short-held locks); the live view and the final [`Report`] read snapshots.
//! A rejection is *expected* when the scenario explains it (the device was
//! revoked on purpose, or its injected clock skew is beyond the broker's
//! leeway); everything else is *unexpected* and fails the run.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::Serialize;

/// Sub-buckets per power of two: about 9 % resolution.
const SUB_BUCKETS: u32 = 8;
/// Largest bucketed latency: 2^27 µs (134 s); anything longer lands in the last bucket.
const MAX_LOG2: u32 = 27;

/// A log-linear latency histogram in microseconds (HdrHistogram-like, fixed memory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Histogram {
    buckets: Vec<u64>,
    count: u64,
    max_us: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: vec![0; ((MAX_LOG2 + 1) * SUB_BUCKETS) as usize],
            count: 0,
            max_us: 0,
        }
    }
}

impl Histogram {
    fn index(us: u64) -> usize {
        let us = us.max(1);
        let log2 = 63 - us.leading_zeros();
        if log2 >= MAX_LOG2 {
            return ((MAX_LOG2 + 1) * SUB_BUCKETS - 1) as usize;
        }
        // Position within [2^log2, 2^(log2+1)) in SUB_BUCKETS steps.
        let base = 1u64 << log2;
        let sub = ((us - base) * u64::from(SUB_BUCKETS)) >> log2;
        (log2 * SUB_BUCKETS) as usize + sub as usize
    }

    /// Upper bound (µs) of bucket `i`.
    fn upper(i: usize) -> u64 {
        let log2 = i as u32 / SUB_BUCKETS;
        let sub = u64::from(i as u32 % SUB_BUCKETS);
        let base = 1u64 << log2;
        base + ((sub + 1) << log2) / u64::from(SUB_BUCKETS)
    }

    /// Records one observation.
    pub fn record(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.buckets[Self::index(us)] += 1;
        self.count += 1;
        self.max_us = self.max_us.max(us);
    }

    /// Observations recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The `p`-th percentile (0..=100) as a bucket upper bound, never above
    /// the maximum seen; zero when empty.
    pub fn percentile(&self, p: f64) -> Duration {
        if self.count == 0 {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * self.count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                if i + 1 == self.buckets.len() {
                    // The overflow bucket has no upper bound of its own.
                    return Duration::from_micros(self.max_us);
                }
                return Duration::from_micros(Self::upper(i).min(self.max_us));
            }
        }
        Duration::from_micros(self.max_us)
    }

    /// The largest observation.
    pub fn max(&self) -> Duration {
        Duration::from_micros(self.max_us)
    }
}

/// Percentiles of one operation, in milliseconds (report form).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Observations.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Maximum.
    pub max_ms: f64,
}

impl From<&Histogram> for Latency {
    fn from(h: &Histogram) -> Self {
        let ms = |d: Duration| (d.as_secs_f64() * 1e4).round() / 10.0;
        Self {
            count: h.count(),
            p50_ms: ms(h.percentile(50.0)),
            p90_ms: ms(h.percentile(90.0)),
            p99_ms: ms(h.percentile(99.0)),
            max_ms: ms(h.max()),
        }
    }
}

/// The operations whose latency is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Op {
    /// Token request to answer.
    Token,
    /// Certificate renewal request to answer (incl. key generation).
    Renewal,
    /// Telemetry send to acknowledgement (MQTT PUBACK from the server; CoAP/HTTPS
    /// answer from the backend after it verified the message).
    Telemetry,
    /// MQTT connection (TCP + TLS with the device certificate + subscribe).
    Connect,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Token => "token",
            Op::Renewal => "renewal",
            Op::Telemetry => "telemetry",
            Op::Connect => "connect",
        }
    }
}

/// Whether the scenario explains a rejection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// Explained (revoked on purpose, injected skew beyond leeway).
    Yes,
    /// Not explained: fails the run.
    No,
}

/// Shared counters of a run.
#[derive(Debug, Default)]
pub struct Stats {
    /// Devices whose task started.
    pub devices_started: AtomicU64,
    /// Devices connected now (MQTT sessions up, or CoAP/HTTPS devices holding a token).
    pub connected: AtomicU64,
    /// First tokens obtained.
    pub tokens_issued: AtomicU64,
    /// Tokens obtained to replace an earlier one.
    pub tokens_renewed: AtomicU64,
    /// Certificates renewed (new key each time).
    pub certs_renewed: AtomicU64,
    /// Telemetry messages sent (handed to the transport).
    pub telemetry_sent: AtomicU64,
    /// Telemetry messages the backend verified and accepted.
    pub telemetry_accepted: AtomicU64,
    /// Transport failures retried (timeouts, connection resets, broker unavailable).
    pub retries: AtomicU64,
    /// Messages a device could not send because it held no usable token.
    pub not_sent_no_token: AtomicU64,
    /// Times a device moved to the next broker instance because its own did
    /// not answer (several instances only; expected, not a rejection).
    pub failovers: AtomicU64,
    rejections: Mutex<Rejections>,
    latency: Mutex<BTreeMap<Op, Histogram>>,
    events: Mutex<Vec<String>>,
}

#[derive(Debug, Default)]
struct Rejections {
    expected: BTreeMap<String, u64>,
    unexpected: BTreeMap<String, u64>,
    unexpected_samples: Vec<String>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Adds one to a counter.
pub fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Stats {
    /// Records a rejection (`what`: e.g. `telemetry:revoked`, `token:invalid_client`);
    /// `detail` is kept (first 20) for unexpected ones, to explain a failed run.
    pub fn reject(&self, what: &str, expected: Expected, detail: impl FnOnce() -> String) {
        let mut r = lock(&self.rejections);
        match expected {
            Expected::Yes => *r.expected.entry(what.to_string()).or_insert(0) += 1,
            Expected::No => {
                *r.unexpected.entry(what.to_string()).or_insert(0) += 1;
                if r.unexpected_samples.len() < 20 {
                    let d = detail();
                    tracing::warn!(what, detail = %d, "unexpected rejection");
                    r.unexpected_samples.push(d);
                }
            }
        }
    }

    /// Records a latency.
    pub fn observe(&self, op: Op, d: Duration) {
        lock(&self.latency).entry(op).or_default().record(d);
    }

    /// Records a scenario event (shown in the live view and the report).
    pub fn event(&self, at: Duration, text: impl Into<String>) {
        let text = format!("t={:>5.1}s {}", at.as_secs_f64(), text.into());
        tracing::info!("{text}");
        lock(&self.events).push(text);
    }

    /// A consistent-enough copy of everything.
    pub fn snapshot(&self) -> Snapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let r = lock(&self.rejections);
        Snapshot {
            devices_started: get(&self.devices_started),
            connected: get(&self.connected),
            tokens_issued: get(&self.tokens_issued),
            tokens_renewed: get(&self.tokens_renewed),
            certs_renewed: get(&self.certs_renewed),
            telemetry_sent: get(&self.telemetry_sent),
            telemetry_accepted: get(&self.telemetry_accepted),
            retries: get(&self.retries),
            not_sent_no_token: get(&self.not_sent_no_token),
            failovers: get(&self.failovers),
            rejected_expected: r.expected.clone(),
            rejected_unexpected: r.unexpected.clone(),
            unexpected_samples: r.unexpected_samples.clone(),
            latency: lock(&self.latency)
                .iter()
                .map(|(op, h)| (op.name().to_string(), Latency::from(h)))
                .collect(),
            events: lock(&self.events).clone(),
        }
    }
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Snapshot {
    /// Devices whose task started.
    pub devices_started: u64,
    /// Devices connected (MQTT) or holding a token (CoAP/HTTPS).
    pub connected: u64,
    /// First tokens.
    pub tokens_issued: u64,
    /// Replacement tokens.
    pub tokens_renewed: u64,
    /// Certificates renewed.
    pub certs_renewed: u64,
    /// Telemetry sent.
    pub telemetry_sent: u64,
    /// Telemetry accepted by the backend.
    pub telemetry_accepted: u64,
    /// Transport retries.
    pub retries: u64,
    /// Messages not sent for want of a usable token.
    pub not_sent_no_token: u64,
    /// Moves to the next broker instance (several instances only).
    pub failovers: u64,
    /// Rejections the scenario explains, by `stage:reason`.
    pub rejected_expected: BTreeMap<String, u64>,
    /// Rejections nothing explains, by `stage:reason`.
    pub rejected_unexpected: BTreeMap<String, u64>,
    /// Details of the first unexpected rejections.
    pub unexpected_samples: Vec<String>,
    /// Latency by operation.
    pub latency: BTreeMap<String, Latency>,
    /// Scenario events.
    pub events: Vec<String>,
}

impl Snapshot {
    /// Sum of the unexpected rejections.
    pub fn unexpected_total(&self) -> u64 {
        self.rejected_unexpected.values().sum()
    }

    /// Sum of the expected rejections.
    pub fn expected_total(&self) -> u64 {
        self.rejected_expected.values().sum()
    }
}

/// The machine-readable result of a run (`--json report.json`).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Simulator version.
    pub version: &'static str,
    /// Devices in the fleet.
    pub devices: usize,
    /// Devices per transport.
    pub transports: BTreeMap<String, usize>,
    /// The faults injected (`none` or the `--faults` form).
    pub faults: String,
    /// Requested run time, seconds.
    pub duration_secs: f64,
    /// Telemetry period, seconds.
    pub telemetry_every_secs: f64,
    /// Provisioning (or loading) the fleet, seconds.
    pub provision_secs: f64,
    /// Wall time of the fleet run, seconds.
    pub run_secs: f64,
    /// Accepted telemetry per second over the run.
    pub accepted_per_sec: f64,
    /// Peak resident memory of the process, MiB (Linux `VmHWM`), when known.
    pub peak_rss_mib: Option<f64>,
    /// CPU time used by the process (user + system), seconds, when known.
    pub cpu_secs: Option<f64>,
    /// Cores on the machine.
    pub cores: usize,
    /// Counters at the end.
    pub totals: Snapshot,
    /// True when the run was stopped early (Ctrl-C).
    pub interrupted: bool,
    /// True when the run completed, telemetry was accepted and nothing
    /// unexpected was rejected.
    pub ok: bool,
}

impl Report {
    /// The human summary table.
    pub fn summary(&self) -> String {
        let t = &self.totals;
        let mut out = String::new();
        let mut line = |k: &str, v: String| out.push_str(&format!("  {k:<34} {v}\n"));
        let per: Vec<_> = self
            .transports
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect();
        line("devices", format!("{} ({})", self.devices, per.join(", ")));
        line("faults", self.faults.clone());
        line(
            "provisioning / run",
            format!("{:.1} s / {:.1} s", self.provision_secs, self.run_secs),
        );
        line(
            "tokens issued / renewed",
            format!("{} / {}", t.tokens_issued, t.tokens_renewed),
        );
        line("certificates renewed", t.certs_renewed.to_string());
        line(
            "telemetry sent / accepted",
            format!(
                "{} / {} ({:.0} msg/s)",
                t.telemetry_sent, t.telemetry_accepted, self.accepted_per_sec
            ),
        );
        line("transport retries", t.retries.to_string());
        if t.failovers > 0 {
            line("failovers to another instance", t.failovers.to_string());
        }
        line(
            "not sent (no usable token)",
            t.not_sent_no_token.to_string(),
        );
        line(
            "rejected, expected",
            format!("{} {}", t.expected_total(), reasons(&t.rejected_expected)),
        );
        line(
            "rejected, UNEXPECTED",
            format!(
                "{} {}",
                t.unexpected_total(),
                reasons(&t.rejected_unexpected)
            ),
        );
        if let (Some(rss), Some(cpu)) = (self.peak_rss_mib, self.cpu_secs) {
            line(
                "peak memory / CPU time",
                format!("{rss:.0} MiB / {cpu:.1} s on {} cores", self.cores),
            );
        }
        out.push_str(&format!(
            "\n  {:<10} {:>8} {:>9} {:>9} {:>9} {:>9}\n",
            "latency", "count", "p50 ms", "p90 ms", "p99 ms", "max ms"
        ));
        for (op, l) in &t.latency {
            out.push_str(&format!(
                "  {:<10} {:>8} {:>9.1} {:>9.1} {:>9.1} {:>9.1}\n",
                op, l.count, l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms
            ));
        }
        if !t.events.is_empty() {
            out.push_str("\n  events:\n");
            for e in &t.events {
                out.push_str(&format!("    {e}\n"));
            }
        }
        for s in &t.unexpected_samples {
            out.push_str(&format!("  unexpected: {s}\n"));
        }
        out
    }
}

fn reasons(map: &BTreeMap<String, u64>) -> String {
    if map.is_empty() {
        return String::new();
    }
    let parts: Vec<_> = map.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("({})", parts.join(", "))
}

/// Peak resident set size (MiB) and CPU seconds of this process, from /proc (Linux).
pub fn process_usage() -> (Option<f64>, Option<f64>) {
    let rss = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
                .map(|kb| kb / 1024.0)
        });
    // /proc/self/stat fields 14 and 15: utime and stime in clock ticks (100 Hz on Linux).
    let cpu = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) / 100.0)
        });
    (rss, cpu)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_percentiles_are_within_a_bucket() {
        let mut h = Histogram::default();
        for ms in 1..=1000u64 {
            h.record(Duration::from_millis(ms));
        }
        assert_eq!(h.count(), 1000);
        let p50 = h.percentile(50.0).as_secs_f64() * 1000.0;
        let p99 = h.percentile(99.0).as_secs_f64() * 1000.0;
        assert!((500.0..=500.0 * 1.13).contains(&p50), "{p50}");
        assert!((990.0..=1000.0).contains(&p99), "{p99}");
        assert_eq!(h.max(), Duration::from_millis(1000));
        assert_eq!(Histogram::default().percentile(50.0), Duration::ZERO);
    }

    #[test]
    fn histogram_extremes() {
        let mut h = Histogram::default();
        h.record(Duration::ZERO);
        h.record(Duration::from_secs(1000));
        assert_eq!(h.percentile(100.0), Duration::from_secs(1000));
        assert!(h.percentile(1.0) <= Duration::from_micros(2));
    }

    #[test]
    fn rejections_are_split_by_expectation() {
        let s = Stats::default();
        s.reject("telemetry:revoked", Expected::Yes, String::new);
        s.reject("telemetry:revoked", Expected::Yes, String::new);
        s.reject("token:invalid_client", Expected::No, || "sim-3: bad".into());
        let snap = s.snapshot();
        assert_eq!(snap.expected_total(), 2);
        assert_eq!(snap.unexpected_total(), 1);
        assert_eq!(snap.unexpected_samples, vec!["sim-3: bad".to_string()]);
    }
}
