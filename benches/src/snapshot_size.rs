//! `certbound-snapshot-size N [N ...]`: start-up time and memory of the
//! in-memory registry (`certbound_store::snapshot`) with N registered
//! devices, each with one certificate (a real-sized 420-byte DER stand-in)
//! in one group with one grant. The rows are written straight into a fresh
//! SQLite store in one transaction (provisioning a million real devices
//! would measure the CA, not the snapshot); then `Store::load_snapshot` is
//! timed and the process's resident memory measured before and after.
//!
//! ```text
//! cargo run --release -p certbound-bench --bin certbound-snapshot-size -- 100000 1000000
//! ```

use std::time::Instant;

use anyhow::Context as _;
use certbound_broker::store::{Api, Grant, Store};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

async fn measure(n: u64) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(&dir.path().join("certbound.db")).await?;
    store
        .create_api(
            &Api {
                id: "https://telemetry.example.com".into(),
                format: "cwt".into(),
                ttl_secs: 3600,
                scopes: vec!["telemetry:write".into()],
            },
            1,
        )
        .await?;
    store
        .create_group(
            "sensors",
            &[Grant {
                api_id: "https://telemetry.example.com".into(),
                scopes: vec!["telemetry:write".into()],
            }],
            1,
        )
        .await?;
    let t = Instant::now();
    store
        .bulk_insert_synthetic_devices(n, "sensors", 420)
        .await?;
    let insert = t.elapsed();
    let before = rss_kib();
    let t = Instant::now();
    let snapshot = store.load_snapshot().await?;
    let load = t.elapsed();
    let after = rss_kib();
    let (devices, certs) = snapshot.counts();
    anyhow::ensure!(
        devices as u64 == n && certs as u64 == n,
        "loaded {devices}/{certs}"
    );
    println!(
        "| {n} | {:.1} s | {:.2} s | {} MiB | {} B |",
        insert.as_secs_f64(),
        load.as_secs_f64(),
        after.saturating_sub(before) / 1024,
        after.saturating_sub(before) * 1024 / n.max(1),
    );
    drop(snapshot);
    store.close().await;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let sizes: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| {
            a.parse()
                .with_context(|| format!("{a:?} is not a device count"))
        })
        .collect::<anyhow::Result<_>>()?;
    anyhow::ensure!(
        !sizes.is_empty(),
        "usage: certbound-snapshot-size N [N ...]"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    println!(
        "| devices | insert (one transaction) | snapshot load | resident memory added | per device |"
    );
    println!("|---:|---:|---:|---:|---:|");
    for n in sizes {
        rt.block_on(measure(n))?;
    }
    Ok(())
}
