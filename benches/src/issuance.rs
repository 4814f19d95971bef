//! Token issuance with the registry snapshot against the per-request
//! registry query it replaced, in the same run: two `TokenService`s on the
//! same store, keys, CA and audit writer, differing only in where the
//! registry comes from. Requests run 32 at a time on a 2-worker runtime (as
//! a broker serves a fleet: concurrent requests share the audit commit), so
//! the registry's cost is not hidden behind one fsync per token.

use std::sync::Arc;
use std::time::Instant;

use certbound_broker::audit::{AuditLog, AuditOptions};
use certbound_broker::limits::{RateLimitConfig, RateLimits};
use certbound_broker::pki_state::SharedPki;
use certbound_broker::store::Store;
use certbound_broker::token_service::{TokenService, TokenServiceConfig};
use certbound_registry::config::{Config, DataDir};
use certbound_registry::keys::{KeyRing, SharedKeys};

use crate::harness::{Run, group};
use crate::setup::{Fixture, RequestFactory, unix_now};
use crate::{Bench, process_cpu_ns};

/// Requests in flight at once.
const IN_FLIGHT: usize = 32;

/// The two rows' names.
pub const WITH_QUERY: &str =
    "token issuance, 32 in flight, registry read per request (Store::token_view; session 4)";
/// See [`WITH_QUERY`].
pub const WITH_SNAPSHOT: &str =
    "token issuance, 32 in flight, registry snapshot (Snapshot::token_view; now)";

/// Process CPU per request of each row that ran.
pub struct Issuance {
    cpu: Vec<(&'static str, f64)>,
}

impl Issuance {
    pub fn print(&self) {
        for (name, cpu) in &self.cpu {
            println!(
                "Process CPU per request, {name}: {} ns (all threads).",
                group(*cpu)
            );
        }
    }
}

/// Runs both rows (those the filter keeps).
pub fn compare(bench: &mut Bench, fx: &Fixture) -> anyhow::Result<Option<Issuance>> {
    if !bench.wants(WITH_QUERY) && !bench.wants(WITH_SNAPSHOT) {
        return Ok(None);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let config = Config::load(&fx.dir)?;
    let data = DataDir::with_config(&fx.dir, &config);
    let (store, keys, audit, audit_task) = rt.block_on(async {
        let store = Store::connect(&config.store_url(&data)).await?;
        let keys = SharedKeys::new(KeyRing::load(&store, &data.key_dir()).await?);
        let (audit, task) = AuditLog::spawn_with(store.clone(), AuditOptions::default());
        anyhow::Ok((store, keys, audit, task))
    })?;
    let pki = SharedPki::load(data.pki())?;
    let limits = Arc::new(RateLimits::new(RateLimitConfig {
        device_per_sec: config.rate_limits.device_per_sec,
        device_burst: config.rate_limits.device_burst,
        client_per_sec: config.rate_limits.client_per_sec,
        client_burst: config.rate_limits.client_burst,
    }));
    let service = || {
        TokenService::new(
            TokenServiceConfig::from_config(&config),
            store.clone(),
            pki.clone(),
            keys.clone(),
            audit.clone(),
            None,
            limits.clone(),
        )
    };
    let snapshot = rt.block_on(store.load_snapshot())?;
    let services = [
        (WITH_QUERY, Arc::new(service())),
        (WITH_SNAPSHOT, Arc::new(service().with_snapshot(snapshot))),
    ];
    let mut factory = RequestFactory::new();
    let mut cpu = Vec::new();
    for (name, svc) in services {
        let mut used = (0u64, 0u64);
        bench.run(
            name,
            "2-worker runtime, same store, keys and audit writer; no status list",
            |n| {
                let now = unix_now();
                // Spread over the fixture's devices (one device's requests
                // would serialise on its replay-cache entry).
                let batch: Vec<Vec<u8>> = (0..n)
                    .map(|i| {
                        let device = &fx.devices[(i as usize) % fx.devices.len()];
                        factory.batch(device, now, 1).remove(0)
                    })
                    .collect();
                let cpu0 = process_cpu_ns();
                let t = Instant::now();
                rt.block_on(issue_all(&svc, batch, now));
                let elapsed = t.elapsed();
                if let Some((a, b)) = cpu0.zip(process_cpu_ns()) {
                    used.0 += b.saturating_sub(a);
                    used.1 += n;
                }
                Run { elapsed, ops: n }
            },
        );
        if used.1 > 0 {
            cpu.push((name, used.0 as f64 / used.1 as f64));
        }
    }
    // The services (and their audit senders) are gone with the loop.
    drop(audit);
    rt.block_on(async {
        let _ = audit_task.await;
        store.close().await;
    });
    Ok(Some(Issuance { cpu }))
}

async fn issue_all(svc: &Arc<TokenService>, batch: Vec<Vec<u8>>, now: u64) {
    let permits = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let mut tasks = tokio::task::JoinSet::new();
    for req in batch {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            panic!("the semaphore closed");
        };
        let svc = svc.clone();
        tasks.spawn(async move {
            let out = svc.handle(&req, "bench", None, None, now).await;
            drop(permit);
            if let Err(e) = out {
                panic!("the service refused a request: {e:?}");
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        if let Err(e) = r {
            panic!("an issuing task failed: {e}");
        }
    }
}
