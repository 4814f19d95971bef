//! Counting what came back, latency percentiles, the crypto floor and the
//! markdown rows.

use crate::procstat::time_op;
use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _,
    ParsedPublicKey,
};

use crate::procstat::CpuWindow;

/// What one lane (or all of them, merged) saw.
#[derive(Default)]
pub struct Tally {
    /// Answers that carried a certificate.
    pub ok: u64,
    /// Everything else: refusals, errors, broken answers.
    pub refused: u64,
    /// The first refusal's reason.
    pub first_refusal: Option<String>,
    /// Latency of every successful request, microseconds.
    pub latencies_us: Vec<u32>,
}

/// Awaits every lane and merges their tallies and answers; a lane that
/// panicked counts as one refusal.
pub async fn join_lanes<T>(
    tasks: Vec<tokio::task::JoinHandle<(Tally, Vec<T>)>>,
) -> (Tally, Vec<T>) {
    let mut tally = Tally::default();
    let mut answers = Vec::new();
    for t in tasks {
        match t.await {
            Ok((t, a)) => {
                tally.merge(t);
                answers.extend(a);
            }
            Err(e) => tally.refused(|| format!("a lane failed: {e}")),
        }
    }
    (tally, answers)
}

impl Tally {
    /// A success that took `took`.
    pub fn ok(&mut self, took: Duration) {
        self.ok += 1;
        self.latencies_us
            .push(u32::try_from(took.as_micros()).unwrap_or(u32::MAX));
    }

    /// A refusal or failure.
    pub fn refused(&mut self, why: impl FnOnce() -> String) {
        self.refused += 1;
        if self.first_refusal.is_none() {
            self.first_refusal = Some(why());
        }
    }

    /// Adds `other` into this one.
    pub fn merge(&mut self, other: Tally) {
        self.ok += other.ok;
        self.refused += other.refused;
        if self.first_refusal.is_none() {
            self.first_refusal = other.first_refusal;
        }
        self.latencies_us.extend(other.latencies_us);
    }

    /// The `p`-th percentile of the latencies (0..=100), milliseconds.
    pub fn percentile_ms(&mut self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        self.latencies_us.sort_unstable();
        let last = self.latencies_us.len() - 1;
        let i = ((p / 100.0) * last as f64).round() as usize;
        f64::from(self.latencies_us[i.min(last)]) / 1e3
    }
}

/// A measured window: wall time, and the CPU of the server and of this
/// process over it.
pub struct Window {
    started: Instant,
    cpu: CpuWindow,
}

/// The measured window's figures.
pub struct Measured {
    /// Wall seconds.
    pub secs: f64,
    /// Server CPU, nanoseconds.
    pub server_ns: f64,
    /// This process's CPU (the load generator), nanoseconds.
    pub own_ns: f64,
}

impl Window {
    /// Opens the window for the server `pid` (and this process).
    pub fn open(pid: u32) -> anyhow::Result<Self> {
        let cpu = CpuWindow::start(&[pid, std::process::id()])?;
        Ok(Self {
            started: Instant::now(),
            cpu,
        })
    }

    /// Closes it.
    pub fn close(self) -> anyhow::Result<Measured> {
        let secs = self.started.elapsed().as_secs_f64();
        let used = self.cpu.used()?;
        Ok(Measured {
            secs,
            server_ns: used.first().copied().unwrap_or(0.0),
            own_ns: used.get(1).copied().unwrap_or(0.0),
        })
    }
}

impl Measured {
    /// Server CPU per successful operation, microseconds.
    pub fn server_us_per(&self, ok: u64) -> f64 {
        self.server_ns / ok.max(1) as f64 / 1e3
    }

    /// Load generator CPU per successful operation, microseconds.
    pub fn own_us_per(&self, ok: u64) -> f64 {
        self.own_ns / ok.max(1) as f64 / 1e3
    }

    /// Server cores busy on average.
    pub fn cores(&self) -> f64 {
        self.server_ns / 1e9 / self.secs.max(1e-9)
    }
}

/// The crypto any CA does per certificate from a CSR: one ECDSA P-256
/// verification (the CSR's self-signature, key parsed from the CSR) and one
/// ECDSA P-256 signature (the certificate), with aws-lc-rs in this process:
/// (verify ns, sign ns).
pub fn crypto_floor() -> anyhow::Result<(f64, f64)> {
    let rng = SystemRandom::new();
    let e = |e: aws_lc_rs::error::Unspecified| anyhow::anyhow!("aws-lc: {e}");
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).map_err(e)?;
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref())
        .map_err(|k| anyhow::anyhow!("aws-lc: {k}"))?;
    let message = [0x5au8; 300];
    let signature = key.sign(&rng, &message).map_err(e)?;
    let public = key.public_key().as_ref().to_vec();
    let sign = time_op(|| {
        std::hint::black_box(key.sign(&rng, std::hint::black_box(&message)).is_ok());
    });
    // The key is parsed for every CSR: it arrives in it.
    let verify = time_op(|| {
        let ok = ParsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, std::hint::black_box(&public))
            .is_ok_and(|k| k.verify_sig(&message, signature.as_ref()).is_ok());
        std::hint::black_box(ok);
    });
    Ok((verify, sign))
}

/// One row of the issuance table.
pub struct Row<'a> {
    /// Who answered: "certbound serve" or "cfssl serve".
    pub server: &'a str,
    /// The endpoint and how it was reached.
    pub endpoint: String,
    /// Requests in flight.
    pub in_flight: usize,
    /// Whether the server durably recorded each certificate.
    pub records: &'a str,
    /// The counts and latencies.
    pub tally: Tally,
    /// The window.
    pub measured: Measured,
}

/// The header of the issuance table.
pub fn issuance_header() {
    println!(
        "| server | endpoint | in flight | certs | refused | s | certs/s | p50 ms | p99 ms | server CPU per cert | server cores busy | load generator CPU per cert | records each cert |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
}

/// Prints `row` and returns its server CPU per certificate (µs).
pub fn issuance_row(mut row: Row<'_>) -> f64 {
    let ok = row.tally.ok;
    let m = &row.measured;
    let (p50, p99) = (row.tally.percentile_ms(50.0), row.tally.percentile_ms(99.0));
    println!(
        "| {} | {} | {} | {ok} | {} | {:.2} | {:.0} | {p50:.1} | {p99:.1} | {:.0} µs | {:.2} | {:.0} µs | {} |",
        row.server,
        row.endpoint,
        row.in_flight,
        row.tally.refused,
        m.secs,
        ok as f64 / m.secs.max(1e-9),
        m.server_us_per(ok),
        m.cores(),
        m.own_us_per(ok),
        row.records,
    );
    if let Some(why) = row.tally.first_refusal.take() {
        eprintln!(
            "{}: {} refused; the first: {why}",
            row.server, row.tally.refused
        );
    }
    m.server_us_per(ok)
}
