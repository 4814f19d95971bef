//! Certificates from CSRs on the library path a server would use, in this
//! process: `certbound-pki` verifies each CSR (signature, key, identity)
//! and signs its certificate, and `certbound-store` records the
//! certificates durably in batches (one transaction per batch, SQLite WAL
//! with `synchronous=FULL`, each device row with its certificate and audit
//! event). Same CSRs as the EST row, a data directory of its own.

use std::time::Instant;

use anyhow::Context as _;
use certbound_agent::keygen::NewKey;
use certbound_registry::config::DataDir;
use certbound_registry::store::{CertRecord, Store};

use super::fixture::Bench;
use super::stats::Measured;
use crate::procstat::{process_cpu_ns, tick_ns};

/// Certificates recorded per transaction.
pub const BATCH: usize = 256;

/// Issues and records a certificate for every key of `keys` (device id:
/// `subjects[i]`); returns how many, and what this process used (as the
/// server's CPU: the library is the server here).
pub async fn run(
    keys: &[NewKey],
    subjects: &[String],
    days: u32,
) -> anyhow::Result<(u64, Measured)> {
    let bench = Bench::new(None).await?;
    let data = DataDir::new(&bench.dir);
    let ca = certbound_pki::IssuingCa::load(&data.pki()).context("loading the issuing CA")?;
    let store = Store::open(&data.database()).await?;
    let now = super::unix_now();
    let csrs: Vec<Vec<u8>> = keys.iter().map(|k| k.csr_der().to_vec()).collect();
    let tick = tick_ns();
    let cpu0 = process_cpu_ns(std::process::id(), tick)?;
    let t = Instant::now();
    let mut ok = 0u64;
    let mut phases = [std::time::Duration::ZERO; 3];
    for (part, names) in csrs.chunks(BATCH).zip(subjects.chunks(BATCH)) {
        let mut records = Vec::with_capacity(part.len());
        for (csr, device) in part.iter().zip(names) {
            let t0 = Instant::now();
            let verified = certbound_pki::verify_csr(csr)?;
            verified.check_identity(device)?;
            let t1 = Instant::now();
            let cert = ca.issue_for_csr(&verified, device, days, now)?;
            records.push(CertRecord::issued(device, &cert));
            phases[0] += t1 - t0;
            phases[1] += t1.elapsed();
        }
        let t2 = Instant::now();
        store
            .create_devices_bulk(&records, &[], "bench", now)
            .await?;
        phases[2] += t2.elapsed();
        ok += records.len() as u64;
    }
    let wall = t.elapsed();
    let per = |d: std::time::Duration| d.as_secs_f64() * 1e6 / ok.max(1) as f64;
    eprintln!(
        "library path, wall time per certificate: verify the CSR {:.1} µs, sign the certificate {:.1} µs, record {:.1} µs",
        per(phases[0]),
        per(phases[1]),
        per(phases[2])
    );
    let cpu_ns = process_cpu_ns(std::process::id(), tick)?.saturating_sub(cpu0) as f64;
    store.close().await;
    Ok((
        ok,
        Measured {
            secs: wall.as_secs_f64(),
            server_ns: cpu_ns,
            own_ns: 0.0,
        },
    ))
}
