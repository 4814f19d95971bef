//! Fleet-scale bulk provisioning: `certbound device provision --count N --prefix P`.
//!
//! Device ids are `{prefix}{n}` for `n` in `start..start + count` (no zero
//! padding). For each, a fresh P-256 key and a device certificate are made,
//! written into a shard folder of the output folder, and the device is
//! registered.
//!
//! # Output folder
//! ```text
//! OUT/manifest.csv      id,serial,thumbprint,not_after,key_file,cert_file
//! OUT/manifest.jsonl    the same rows as JSON objects, one per line
//! OUT/0000/P1.key.pem   n = 1..999      (mode 0600)
//! OUT/0000/P1.cert.pem                  (leaf + issuing CA)
//! OUT/0001/P1000.key.pem  n = 1000..1999, and so on:
//!                       shard = floor(n / 1000), zero-padded to 4 digits
//! ```
//! The shard depends only on `n`, so a device's files are found from its id
//! alone, and re-runs with another `--start` keep the layout. Paths in the
//! manifest are relative to `OUT`, so the folder can be moved as a whole.
//!
//! # Speed
//! Worker threads make the keys (aws-lc) and certificates and write the files
//! (each file: temp name, fsync, rename). The fsyncs, not the crypto, are the
//! bulk of a worker's time, so there are more workers than CPUs (see
//! [`default_workers`]). The async side registers the devices in batches,
//! each batch in ONE `BEGIN IMMEDIATE` transaction with one statement per
//! table (rows as a JSON array expanded by SQLite), while the workers already
//! make the next batch (at most two batches ahead).
//!
//! # Crash safety and resuming
//! Per batch, in this order: every file is fsync'd and renamed; the shard
//! folders are fsync'd; the batch is registered (one transaction, with one
//! `device.provisioned` audit event per device); its manifest rows are
//! appended and fsync'd. So at any crash point:
//! * a device is either registered with all its files durable, or not
//!   registered at all (its files, if any, are rewritten on the next run);
//! * the manifest lists only registered devices; rows missing after a crash
//!   between commit and append are restored on the next run (the device's
//!   certificate file in the folder matches its registered certificate).
//!
//! Running the same command again skips every device that is registered and
//! listed (or restorable) in this folder's manifest; an id registered in any
//! other way is an error naming it, before any work, so no id is ever issued
//! twice. An advisory lock on `OUT/.certbound-bulk.lock` keeps two runs from
//! writing the same folder. Devices made by an earlier run keep the groups
//! and lifetime they were made with.
//!
//! A folder may hold several ranges (other prefixes or `--start`s); the
//! manifest then lists them all.
//!
//! [`BulkControl::stop`] asks the run to stop: the batch being assembled is
//! completed and registered, files made for later batches are removed, and
//! the report says `interrupted`.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use certbound_pki::{IssuingCa, validate_device_id};
use serde::Serialize;
use tokio::sync::mpsc;

use super::Registry;
use crate::clock::unix_now;
use crate::error::RegistryError;
use crate::store::{AuditEvent, CertRecord};

mod files;
mod manifest;
mod plan;
mod worker;

use files::sync_dir;
pub use manifest::ManifestRow;
use worker::{Made, Shared, WorkerMsg, WorkerStats, remove_made};

/// Devices per shard folder.
pub const SHARD_SIZE: u64 = 1000;
/// The CSV manifest in the output folder.
pub const MANIFEST_CSV: &str = "manifest.csv";
/// The JSON-lines manifest in the output folder.
pub const MANIFEST_JSONL: &str = "manifest.jsonl";
/// First line of the CSV manifest.
pub const MANIFEST_HEADER: &str = "id,serial,thumbprint,not_after,key_file,cert_file";
/// Devices registered per transaction unless told otherwise.
pub const DEFAULT_BATCH_SIZE: usize = 500;
/// Largest accepted batch size.
pub const MAX_BATCH_SIZE: usize = 10_000;

/// Most worker threads.
pub const MAX_WORKERS: usize = 256;

/// Worker threads when [`BulkOptions::workers`] is 0: 8 per CPU, at least 16,
/// at most 64. A worker spends most of its time waiting for the two fsyncs of
/// its device's files (~0.3 ms each on an SSD-backed ext4, ~80 µs of CPU for
/// key and certificate), and concurrent fsyncs share journal commits, so
/// throughput grows with workers well beyond the CPU count until the disk's
/// flush rate is reached.
pub fn default_workers() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    (8 * cpus).clamp(16, 64)
}

/// The shard folder name of device number `n`: `floor(n / 1000)`, zero-padded
/// to four digits (`0000` for 0..999, `0001` for 1000..1999, `0123` for 123 000..).
pub fn shard_name(n: u64) -> String {
    format!("{:04}", n / SHARD_SIZE)
}

/// What to provision.
#[derive(Debug, Clone)]
pub struct BulkOptions {
    /// Id prefix: ids are `{prefix}{n}`.
    pub prefix: String,
    /// First `n` (the CLI's default is 1).
    pub start: u64,
    /// How many devices.
    pub count: u64,
    /// Groups every device joins (must exist).
    pub groups: Vec<String>,
    /// The output folder.
    pub out_dir: PathBuf,
    /// Certificate lifetime in days (default: `pki.device_cert_days`).
    pub lifetime_days: Option<u32>,
    /// Certificate lifetime in seconds (at least 60), overriding
    /// `lifetime_days`: short-lived fleets, simulations and tests.
    pub lifetime_secs: Option<u64>,
    /// Devices per transaction (1..=10 000).
    pub batch_size: usize,
    /// Worker threads (each makes keys and certificates and writes their
    /// files); 0: [`default_workers`].
    pub workers: usize,
}

impl BulkOptions {
    /// `count` devices `{prefix}1..` into `out_dir`, no groups, default batch size and workers.
    pub fn new(prefix: &str, count: u64, out_dir: &Path) -> Self {
        Self {
            prefix: prefix.into(),
            start: 1,
            count,
            groups: Vec::new(),
            out_dir: out_dir.into(),
            lifetime_days: None,
            lifetime_secs: None,
            batch_size: DEFAULT_BATCH_SIZE,
            workers: 0,
        }
    }
}

/// Progress of a run, passed to [`BulkControl::progress`].
#[derive(Debug, Clone, Copy, Serialize)]
pub struct BulkProgress {
    /// Devices this run issues (the ids not provisioned by an earlier run).
    pub total: u64,
    /// Keys and certificates made and written so far.
    pub written: u64,
    /// Devices registered so far (committed batches).
    pub registered: u64,
    /// Since the run started.
    pub elapsed: Duration,
}

/// How the caller steers a run.
#[derive(Default, Clone, Copy)]
pub struct BulkControl<'a> {
    /// When set (e.g. by Ctrl-C), the run completes the batch in progress and stops.
    pub stop: Option<&'a AtomicBool>,
    /// Called from the registering task after each device written and each
    /// batch registered; keep it cheap (throttle any drawing).
    pub progress: Option<&'a (dyn Fn(&BulkProgress) + Sync)>,
}

impl std::fmt::Debug for BulkControl<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BulkControl")
            .field("stop", &self.stop)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

/// Where the time went. Worker phases are thread time summed over all workers
/// (with more workers than CPUs, this includes waiting for a CPU); the others
/// are wall time of the registering task, which overlaps the workers.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct BulkPhases {
    /// Checking the registry, the manifest and old files before the run.
    pub prepare_secs: f64,
    /// P-256 key generation (aws-lc), summed over workers.
    pub keygen_secs: f64,
    /// Building and signing the certificates, PEM encoding, summed over workers.
    pub sign_secs: f64,
    /// Writing and fsyncing key and certificate files, summed over workers.
    pub files_secs: f64,
    /// fsync of the shard folders before each commit.
    pub dir_sync_secs: f64,
    /// Registration transactions.
    pub db_secs: f64,
    /// Manifest appends with fsync.
    pub manifest_secs: f64,
    /// The registering task waiting for workers.
    pub waiting_secs: f64,
}

/// The outcome of [`Registry::provision_bulk`].
#[derive(Debug, Clone, Serialize)]
pub struct BulkReport {
    /// The output folder.
    pub out_dir: PathBuf,
    /// `OUT/manifest.csv`.
    pub manifest_csv: PathBuf,
    /// `OUT/manifest.jsonl`.
    pub manifest_jsonl: PathBuf,
    /// First id of the range.
    pub first_id: String,
    /// Last id of the range.
    pub last_id: String,
    /// Ids in the range (`count`).
    pub requested: u64,
    /// Devices issued and registered by this run.
    pub provisioned: u64,
    /// Devices skipped because an earlier run into this folder provisioned them.
    pub already_provisioned: u64,
    /// Manifest rows restored (a crash between a commit and its manifest append).
    pub manifest_rows_restored: u64,
    /// Ids whose files were left over from an interrupted run (never
    /// registered) and were replaced.
    pub stale_files_replaced: u64,
    /// The run stopped early on request; run it again to finish.
    pub interrupted: bool,
    /// Wall time of the whole run, seconds.
    pub elapsed_secs: f64,
    /// `provisioned / elapsed_secs`.
    pub rate_per_sec: f64,
    /// Worker threads used.
    pub workers: usize,
    /// Devices per transaction.
    pub batch_size: usize,
    /// Where the time went.
    pub phases: BulkPhases,
}

impl Registry {
    /// Provisions `opts.count` devices `{prefix}{n}` into `opts.out_dir` (see
    /// the [module documentation](self) for the layout, the manifest and the
    /// crash-safety rules). Resumes an earlier, interrupted run into the same
    /// folder.
    ///
    /// Everything is checked before any key is made: every id is valid, the
    /// groups exist, the CA can issue, the folder is new, empty or a bulk
    /// folder, and no id in the range is registered other than by an earlier
    /// run into this folder.
    ///
    /// # Errors
    /// [`RegistryError::Invalid`] / [`RegistryError::NotFound`] /
    /// [`RegistryError::Conflict`] for the checks above (nothing is issued
    /// then); I/O and database errors during the run (batches registered
    /// before stay registered and listed; run again to resume).
    pub async fn provision_bulk(
        &self,
        opts: &BulkOptions,
        ctl: &BulkControl<'_>,
    ) -> Result<BulkReport, RegistryError> {
        let started = Instant::now();
        if opts.count == 0 {
            return Err(RegistryError::Invalid("--count must be at least 1".into()));
        }
        if !(1..=MAX_BATCH_SIZE).contains(&opts.batch_size) {
            return Err(RegistryError::Invalid(format!(
                "batch size {} is out of range: use 1 to {MAX_BATCH_SIZE}",
                opts.batch_size
            )));
        }
        let last_n = opts.start.checked_add(opts.count - 1).ok_or_else(|| {
            RegistryError::Invalid("--start + --count overflows a 64-bit number".into())
        })?;
        let mut ids = Vec::with_capacity(usize::try_from(opts.count).unwrap_or(0));
        for n in opts.start..=last_n {
            let id = format!("{}{n}", opts.prefix);
            validate_device_id(&id).map_err(|e| {
                RegistryError::Invalid(format!(
                    "prefix {:?} makes invalid device ids: {e}",
                    opts.prefix
                ))
            })?;
            ids.push((n, id));
        }
        for g in &opts.groups {
            if !self.store.group_exists(g).await? {
                return Err(RegistryError::NotFound {
                    kind: "group",
                    name: g.clone(),
                    hint: "; create it first with `certbound group create`".into(),
                });
            }
        }
        let days = opts
            .lifetime_days
            .unwrap_or(self.config.pki.device_cert_days);
        if opts.lifetime_secs.is_some_and(|s| s < 60) {
            return Err(RegistryError::Invalid(
                "certificate lifetime must be at least 60 seconds".into(),
            ));
        }
        if days == 0 {
            return Err(RegistryError::Invalid(
                "certificate lifetime must be at least one day".into(),
            ));
        }
        let ca = IssuingCa::load(&self.data.pki())?;
        if unix_now() >= ca.not_after() {
            return Err(RegistryError::Invalid(
                "the issuing CA has expired; it cannot issue device certificates".into(),
            ));
        }
        let workers = match opts.workers {
            0 => default_workers(),
            w => w.min(MAX_WORKERS),
        };
        let out = opts.out_dir.clone();
        let _lock = files::prepare_out_dir(&out)?;
        let plan = plan::plan(&self.store, &out, ids).await?;
        let mut phases = BulkPhases {
            prepare_secs: started.elapsed().as_secs_f64(),
            ..BulkPhases::default()
        };

        let first_id = format!("{}{}", opts.prefix, opts.start);
        let last_id = format!("{}{last_n}", opts.prefix);
        let range = format!("{first_id}..{last_id}");
        let mut appender = manifest::Appender::open(&out)?;
        let ca_pem = ca.cert_pem();
        let total = plan.todo.len();
        let shared = Arc::new(Shared {
            ca,
            ca_pem,
            out_dir: out.clone(),
            todo: plan.todo,
            days,
            lifetime_secs: opts.lifetime_secs,
            next: AtomicUsize::new(0),
            limit: AtomicUsize::new(total),
        });
        let (tx, mut rx) = mpsc::channel::<WorkerMsg>(2 * opts.batch_size);
        let mut handles = Vec::new();
        for i in 0..workers.min(total) {
            let (s, tx) = (Arc::clone(&shared), tx.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("cb-bulk-{i}"))
                .spawn(move || worker::worker(&s, &tx));
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    shared.limit.store(0, Ordering::SeqCst);
                    return Err(RegistryError::Invalid(format!(
                        "cannot start a worker thread: {e}"
                    )));
                }
            }
        }
        drop(tx);

        // The registering loop. No early return from here to the cleanup below.
        let batch = opts.batch_size;
        let stop_requested = || ctl.stop.is_some_and(|s| s.load(Ordering::SeqCst));
        let report_progress = |written: usize, registered: usize| {
            if let Some(p) = ctl.progress {
                p(&BulkProgress {
                    total: total as u64,
                    written: written as u64,
                    registered: registered as u64,
                    elapsed: started.elapsed(),
                });
            }
        };
        let mut pending: BTreeMap<usize, Made> = BTreeMap::new();
        let mut leftovers: Vec<Made> = Vec::new();
        let (mut start, mut end) = (0usize, batch.min(total));
        let mut have = 0usize;
        let mut written = 0usize;
        let mut stopping = false;
        let mut synced_shards: HashSet<String> = HashSet::new();
        let outcome: Result<bool, RegistryError> = loop {
            if start >= total {
                break Ok(false);
            }
            if !stopping && stop_requested() {
                // Complete the batch in progress, make nothing beyond it.
                stopping = true;
                shared.limit.fetch_min(end, Ordering::SeqCst);
            }
            if have == end - start {
                let items: Vec<Made> = (start..end).filter_map(|i| pending.remove(&i)).collect();
                let registered = self
                    .register_batch(&out, &items, opts, &mut synced_shards, &mut phases)
                    .await;
                if let Err((e, surely_not_registered)) = registered {
                    // Files of a batch that is surely not registered go; when
                    // the outcome of the commit is unknown, they stay (the
                    // next run keeps or rewrites them after checking).
                    if surely_not_registered {
                        leftovers.extend(items);
                    }
                    break Err(e);
                }
                start = end;
                // Registered: whatever happens now, its files stay (a missing
                // manifest row is restored by the next run).
                let t = Instant::now();
                let rows: Vec<ManifestRow> = items.into_iter().map(|m| m.row).collect();
                let appended = appender.append(&rows);
                phases.manifest_secs += t.elapsed().as_secs_f64();
                if let Err(e) = appended {
                    break Err(e);
                }
                end = (start + batch).min(total);
                have = pending.range(start..end).count();
                report_progress(written, start);
                if stopping {
                    break Ok(start < total);
                }
                continue;
            }
            let waited = Instant::now();
            let msg = rx.recv().await;
            phases.waiting_secs += waited.elapsed().as_secs_f64();
            match msg {
                None => {
                    break Err(RegistryError::Invalid(
                        "the provisioning workers stopped unexpectedly".into(),
                    ));
                }
                Some(Err((idx, e))) => {
                    let id = shared.todo.get(idx).map(|t| t.1.as_str()).unwrap_or("?");
                    break Err(RegistryError::Invalid(format!(
                        "provisioning {id} failed: {e}"
                    )));
                }
                Some(Ok(made)) => {
                    if (start..end).contains(&made.idx) {
                        have += 1;
                    }
                    written += 1;
                    pending.insert(made.idx, made);
                    report_progress(written, start);
                }
            }
        };
        let registered = start;

        // Cleanup: stop the workers, remove files of devices not registered.
        shared.limit.store(0, Ordering::SeqCst);
        rx.close();
        while let Some(msg) = rx.recv().await {
            if let Ok(made) = msg {
                leftovers.push(made);
            }
        }
        leftovers.extend(pending.into_values());
        for made in &leftovers {
            remove_made(&out, made);
        }
        let joined = tokio::task::spawn_blocking(move || {
            let mut total = WorkerStats::default();
            let mut panicked = false;
            for h in handles {
                match h.join() {
                    Ok(s) => {
                        total.keygen += s.keygen;
                        total.sign += s.sign;
                        total.files += s.files;
                    }
                    Err(_) => panicked = true,
                }
            }
            (total, panicked)
        })
        .await;
        let (stats, panicked) = joined.unwrap_or((WorkerStats::default(), true));
        phases.keygen_secs = stats.keygen.as_secs_f64();
        phases.sign_secs = stats.sign.as_secs_f64();
        phases.files_secs = stats.files.as_secs_f64();
        let elapsed = started.elapsed().as_secs_f64();

        let outcome = match outcome {
            Ok(_) if panicked => Err(RegistryError::Invalid(
                "a provisioning worker thread panicked".into(),
            )),
            other => other,
        };
        let detail = format!(
            "registered={registered} already={} requested={} groups={} out={} elapsed_ms={:.0}",
            plan.already,
            opts.count,
            opts.groups.join(","),
            out.display(),
            elapsed * 1000.0
        );
        let (status, detail) = match &outcome {
            Ok(false) => ("ok", detail),
            Ok(true) => ("interrupted", detail),
            Err(e) => ("failed", format!("{detail} error={e}")),
        };
        let audited = self
            .store
            .append_audit(&[AuditEvent {
                ts_ms: unix_now().saturating_mul(1000),
                actor: self.actor.clone(),
                action: "device.bulk_provisioned".into(),
                subject: range,
                outcome: status.into(),
                detail,
            }])
            .await;
        let interrupted = outcome?;
        audited?;
        Ok(BulkReport {
            manifest_csv: out.join(MANIFEST_CSV),
            manifest_jsonl: out.join(MANIFEST_JSONL),
            out_dir: out,
            first_id,
            last_id,
            requested: opts.count,
            provisioned: registered as u64,
            already_provisioned: plan.already,
            manifest_rows_restored: plan.restored,
            stale_files_replaced: plan.stale,
            interrupted,
            elapsed_secs: elapsed,
            rate_per_sec: if elapsed > 0.0 {
                registered as f64 / elapsed
            } else {
                0.0
            },
            workers: workers.min(total),
            batch_size: batch,
            phases,
        })
    }

    /// Makes one batch's files durable (shard folder fsync), then registers
    /// it. On error, also says whether the batch is surely not registered.
    async fn register_batch(
        &self,
        out: &Path,
        items: &[Made],
        opts: &BulkOptions,
        synced_shards: &mut HashSet<String>,
        phases: &mut BulkPhases,
    ) -> Result<(), (RegistryError, bool)> {
        let t = Instant::now();
        let mut shards: Vec<&str> = items.iter().map(|m| m.shard.as_str()).collect();
        shards.sort_unstable();
        shards.dedup();
        let mut new_shard = false;
        for shard in shards {
            sync_dir(&out.join(shard)).map_err(|e| (e, true))?;
            new_shard |= synced_shards.insert(shard.to_string());
        }
        if new_shard {
            // The shard folders' own entries in the output folder.
            sync_dir(out).map_err(|e| (e, true))?;
        }
        phases.dir_sync_secs += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let records: Vec<CertRecord> = items.iter().map(|m| m.record.clone()).collect();
        self.store
            .create_devices_bulk(&records, &opts.groups, &self.actor, unix_now())
            .await
            .map_err(|e| {
                let conflict = matches!(e, crate::store::StoreError::Conflict { .. });
                (e.into(), conflict)
            })?;
        phases.db_secs += t.elapsed().as_secs_f64();
        Ok(())
    }
}
