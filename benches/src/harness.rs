//! A small timing harness: warm-up, calibration, fixed number of samples,
//! median and min..max of the per-sample means.

use std::hint::black_box;
use std::time::{Duration, Instant};

/// How long to warm up, how long one sample should take, how many samples.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    pub warmup: Duration,
    pub sample: Duration,
    pub samples: usize,
}

impl Config {
    pub fn full() -> Self {
        Self {
            warmup: Duration::from_millis(200),
            sample: Duration::from_millis(200),
            samples: 7,
        }
    }

    pub fn quick() -> Self {
        Self {
            warmup: Duration::from_millis(20),
            sample: Duration::from_millis(20),
            samples: 3,
        }
    }
}

/// One timed run: how long the timed part took and how many operations it did.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    pub elapsed: Duration,
    pub ops: u64,
}

/// The result of [`measure`].
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    /// Median of the per-sample mean ns/op.
    pub median_ns: f64,
    /// Smallest per-sample mean ns/op.
    pub min_ns: f64,
    /// Largest per-sample mean ns/op.
    pub max_ns: f64,
    /// Operations per sample (after calibration).
    pub ops_per_sample: u64,
    /// Operations done during the warm-up (callers recording per-operation
    /// data drop this many leading entries).
    pub warmup_ops: u64,
}

impl Stats {
    pub fn ops_per_sec(&self) -> f64 {
        1e9 / self.median_ns
    }
}

/// Measures `run`, which is asked to do about `n` operations, times only the
/// part that matters (set-up such as building requests stays outside) and
/// reports what it did.
///
/// Warm-up: `n` doubles from 1 until the warm-up time has passed; the last
/// warm-up run gives the cost estimate. Calibration: `n` is chosen so that a
/// sample takes about `config.sample`. Then `config.samples` samples.
pub fn measure(config: Config, mut run: impl FnMut(u64) -> Run) -> Stats {
    let started = Instant::now();
    let mut n = 1u64;
    let mut warmup_ops = 0u64;
    let per_op_ns = loop {
        let r = run(n);
        warmup_ops += r.ops;
        let per_op = r.elapsed.as_nanos() as f64 / r.ops.max(1) as f64;
        if started.elapsed() >= config.warmup {
            break per_op.max(1.0);
        }
        // Keep doubling while one run is short compared with the warm-up.
        if r.elapsed < config.warmup / 4 {
            n = n.saturating_mul(2);
        }
    };
    let ops = ((config.sample.as_nanos() as f64 / per_op_ns).round() as u64).max(1);
    let mut per_sample: Vec<f64> = (0..config.samples)
        .map(|_| {
            let r = run(ops);
            r.elapsed.as_nanos() as f64 / r.ops.max(1) as f64
        })
        .collect();
    per_sample.sort_by(f64::total_cmp);
    Stats {
        median_ns: median(&per_sample),
        min_ns: per_sample.first().copied().unwrap_or(f64::NAN),
        max_ns: per_sample.last().copied().unwrap_or(f64::NAN),
        ops_per_sample: ops,
        warmup_ops,
    }
}

/// [`measure`] for a plain closure: `n` back-to-back calls, result black-boxed.
pub fn measure_fn<T>(config: Config, mut f: impl FnMut() -> T) -> Stats {
    measure(config, |n| {
        let t = Instant::now();
        for _ in 0..n {
            black_box(f());
        }
        Run {
            elapsed: t.elapsed(),
            ops: n,
        }
    })
}

fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// The `p`-th percentile (0..=100) of sorted durations, nearest rank.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Thousands separators for whole numbers.
pub fn group(v: f64) -> String {
    let s = format!("{:.0}", v.round());
    let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}
