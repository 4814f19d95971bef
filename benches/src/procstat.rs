//! What both load generators (`certbound-load`, `certbound-enroll-load`)
//! share: the server binary to start, the CPU time of a process from
//! `/proc/<pid>/stat` (and of its threads, summed by thread name, from
//! `/proc/<pid>/task/*/stat`), and the median time of one call (the crypto
//! floor).

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, bail};

/// CPU time (user + system, all threads) of process `pid`, nanoseconds.
pub fn process_cpu_ns(pid: u32, tick_ns: u64) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat (has the process ended?)"))?;
    // The command name may hold spaces: fields count from after its ')'.
    let rest = text
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("unexpected /proc/<pid>/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat; 12 and 13 after ')'.
    let utime: u64 = fields.get(11).context("no utime")?.parse()?;
    let stime: u64 = fields.get(12).context("no stime")?.parse()?;
    Ok((utime + stime) * tick_ns)
}

/// CPU time (user + system) of each thread of process `pid`, summed by
/// thread name (`tokio-rt-worker`, `sqlx-sqlite-wor`, ...), nanoseconds.
/// A thread that ends between two readings drops out of the second.
pub fn thread_cpu_ns(
    pid: u32,
    tick_ns: u64,
) -> anyhow::Result<std::collections::BTreeMap<String, u64>> {
    let mut by_name = std::collections::BTreeMap::new();
    let dir = format!("/proc/{pid}/task");
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {dir}"))? {
        let Ok(entry) = entry else { continue };
        let Ok(text) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let (Some((head, rest)), Some(open)) = (text.rsplit_once(')'), text.find('(')) else {
            continue;
        };
        let name = head.get(open + 1..).unwrap_or("?").to_string();
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = fields
            .get(11)
            .and_then(|u| u.parse::<u64>().ok())
            .unwrap_or(0)
            + fields
                .get(12)
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0);
        *by_name.entry(name).or_insert(0) += ticks * tick_ns;
    }
    Ok(by_name)
}

/// `name X µs, ...` per operation: the CPU each thread name used between
/// two [`thread_cpu_ns`] readings, divided by `ops`, largest first.
pub fn per_thread_line(
    before: &std::collections::BTreeMap<String, u64>,
    after: &std::collections::BTreeMap<String, u64>,
    ops: u64,
) -> String {
    let mut used: Vec<(&String, u64)> = after
        .iter()
        .map(|(name, &t)| {
            (
                name,
                t.saturating_sub(before.get(name).copied().unwrap_or(0)),
            )
        })
        .filter(|&(_, t)| t > 0)
        .collect();
    used.sort_by_key(|&(_, t)| std::cmp::Reverse(t));
    used.iter()
        .map(|(name, t)| format!("{name} {:.0} µs", *t as f64 / ops.max(1) as f64 / 1e3))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Nanoseconds per clock tick of `/proc/<pid>/stat` (`getconf CLK_TCK`).
pub fn tick_ns() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<u64>().ok())
        .filter(|&hz| hz > 0)
        .map_or(10_000_000, |hz| 1_000_000_000 / hz)
}

/// The CPU a set of processes used over a measured window.
pub struct CpuWindow {
    tick: u64,
    start: Vec<(u32, u64)>,
}

impl CpuWindow {
    /// Starts the window now for `pids`.
    pub fn start(pids: &[u32]) -> anyhow::Result<Self> {
        let tick = tick_ns();
        let start = pids
            .iter()
            .map(|&pid| Ok((pid, process_cpu_ns(pid, tick)?)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self { tick, start })
    }

    /// CPU nanoseconds each process used since [`CpuWindow::start`], in the
    /// order given there.
    pub fn used(&self) -> anyhow::Result<Vec<f64>> {
        self.start
            .iter()
            .map(|&(pid, t0)| Ok(process_cpu_ns(pid, self.tick)?.saturating_sub(t0) as f64))
            .collect()
    }
}

/// The `certbound` binary: `given`, or the one next to this binary.
pub fn server_binary(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let path = match given {
        Some(p) => p,
        None => std::env::current_exe()?
            .parent()
            .context("the load generator's own path has no directory")?
            .join("certbound"),
    };
    if !path.exists() {
        bail!(
            "{} not found: build it first (`cargo build --release -p certbound-cli`) or pass --server",
            path.display()
        );
    }
    Ok(path)
}

/// Median of 5 timed batches of `op`, nanoseconds per call.
pub fn time_op(mut op: impl FnMut()) -> f64 {
    const N: u32 = 2_000;
    for _ in 0..N / 4 {
        op();
    }
    let mut samples: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..N {
                op();
            }
            t.elapsed().as_nanos() as f64 / f64::from(N)
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[2]
}

/// One ES256 verification and one ES256 signature with aws-lc-rs, ns each.
pub fn es256_verify_sign_ns() -> anyhow::Result<(f64, f64)> {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _,
        ParsedPublicKey,
    };
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let message = [0x5au8; 256];
    let signature = key
        .sign(&rng, &message)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // Parsed once, as the broker's verifier holds a device key.
    let public = ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, key.public_key().as_ref())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let sign = time_op(|| {
        std::hint::black_box(key.sign(&rng, std::hint::black_box(&message)).is_ok());
    });
    let verify = time_op(|| {
        std::hint::black_box(
            public
                .verify_sig(std::hint::black_box(&message), signature.as_ref())
                .is_ok(),
        );
    });
    Ok((verify, sign))
}
