//! `certbound device provision --count N --prefix P`: bulk provisioning with a
//! progress bar, Ctrl-C handling and a final summary line.

use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use certbound_registry::registry::bulk::DEFAULT_BATCH_SIZE;
use certbound_registry::registry::{BulkControl, BulkOptions, BulkProgress, BulkReport, Registry};

use crate::cli::BulkArgs;
use crate::output::print_json;

/// Exit status of an interrupted run (the shell convention for SIGINT).
const EXIT_INTERRUPTED: u8 = 130;

/// Redraws at most this often.
const REDRAW: Duration = Duration::from_millis(100);

/// The progress bar on stderr: `[#####.....] 4500/10000  45%  3012/s  ETA 2s`.
struct Bar {
    last: Mutex<Option<Instant>>,
}

impl Bar {
    fn draw(&self, p: &BulkProgress) {
        let now = Instant::now();
        {
            let Ok(mut last) = self.last.lock() else {
                return;
            };
            let finished = p.registered >= p.total;
            if last.is_some_and(|t| now.duration_since(t) < REDRAW) && !finished {
                return;
            }
            *last = Some(now);
        }
        eprint!("\r{}", render(p));
        let _ = std::io::stderr().flush();
    }
}

/// One progress line (without `\r`).
fn render(p: &BulkProgress) -> String {
    const WIDTH: u64 = 30;
    let total = p.total.max(1);
    let done = p.written.min(total);
    let filled = usize::try_from(done * WIDTH / total).unwrap_or(0);
    let bar = format!(
        "{}{}",
        "#".repeat(filled),
        ".".repeat(usize::try_from(WIDTH).unwrap_or(30) - filled)
    );
    let secs = p.elapsed.as_secs_f64();
    let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
    let eta = if rate > 0.0 {
        format_secs((total - done) as f64 / rate)
    } else {
        "?".into()
    };
    format!(
        "[{bar}] {done}/{} {:>3}% {rate:>7.0}/s  ETA {eta:<6}",
        p.total,
        done * 100 / total
    )
}

fn format_secs(s: f64) -> String {
    if s < 60.0 {
        format!("{s:.0}s")
    } else {
        format!("{}m{:02}s", (s / 60.0).floor(), (s % 60.0).floor())
    }
}

/// Runs a bulk provisioning.
pub async fn run(
    dir: &Path,
    args: BulkArgs,
    groups: Vec<String>,
    out: PathBuf,
    days: Option<u32>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let (Some(count), Some(prefix)) = (args.count, args.prefix) else {
        anyhow::bail!("bulk provisioning needs --count and --prefix (or use --id for one device)");
    };
    let opts = BulkOptions {
        prefix,
        start: args.start.unwrap_or(1),
        count,
        groups,
        out_dir: out,
        lifetime_days: days,
        lifetime_secs: None,
        batch_size: args.batch_size.unwrap_or(DEFAULT_BATCH_SIZE),
        workers: args.jobs.unwrap_or(0),
    };
    let show_bar = !args.quiet && std::io::stderr().is_terminal();
    let bar = Bar {
        last: Mutex::new(None),
    };
    let draw = |p: &BulkProgress| bar.draw(p);

    let stop = Arc::new(AtomicBool::new(false));
    let signals = {
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stop.store(true, Ordering::SeqCst);
                eprintln!(
                    "\nCtrl-C: finishing the current batch (Ctrl-C again aborts at once; the run stays resumable)"
                );
                if tokio::signal::ctrl_c().await.is_ok() {
                    eprintln!("aborted; run the same command again to resume");
                    std::process::exit(i32::from(EXIT_INTERRUPTED));
                }
            }
        })
    };

    let reg = Registry::open(dir).await?;
    let control = BulkControl {
        stop: Some(&stop),
        progress: show_bar.then_some(&draw as &(dyn Fn(&BulkProgress) + Sync)),
    };
    let result = reg.provision_bulk(&opts, &control).await;
    reg.close().await;
    signals.abort();
    if show_bar {
        eprintln!();
    }
    let report = result.context("bulk provisioning")?;
    if json {
        print_json(&report)?;
    } else {
        print_summary(&report);
    }
    if report.interrupted {
        eprintln!(
            "interrupted after {} devices; run the same command again to resume",
            report.provisioned
        );
        return Ok(ExitCode::from(EXIT_INTERRUPTED));
    }
    Ok(ExitCode::SUCCESS)
}

fn print_summary(r: &BulkReport) {
    let verb = if r.interrupted {
        "Interrupted: provisioned"
    } else {
        "Provisioned"
    };
    println!(
        "{verb} {} devices ({}..{}) in {:.2} s: {:.0} devices/s with {} workers",
        r.provisioned, r.first_id, r.last_id, r.elapsed_secs, r.rate_per_sec, r.workers
    );
    if r.already_provisioned > 0 || r.stale_files_replaced > 0 || r.manifest_rows_restored > 0 {
        println!(
            "  resumed: {} already provisioned into this folder were skipped; {} ids' files from an \
             interrupted run were replaced; {} manifest rows restored",
            r.already_provisioned, r.stale_files_replaced, r.manifest_rows_restored
        );
    }
    println!(
        "  manifest: {} (+ {}); files in {}/NNNN/ (NNNN = device number / 1000)",
        r.manifest_csv.display(),
        r.manifest_jsonl
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
        r.out_dir.display()
    );
    let p = &r.phases;
    let per = |secs: f64| {
        if r.provisioned == 0 {
            0.0
        } else {
            secs * 1e6 / r.provisioned as f64
        }
    };
    println!(
        "  time per device: keygen {:.0} us, certificate {:.0} us, files+fsync {:.0} us (thread time over {} workers); \
         folder fsync {:.0} us, database {:.0} us, manifest {:.0} us (registering task); prepare {:.2} s",
        per(p.keygen_secs),
        per(p.sign_secs),
        per(p.files_secs),
        r.workers,
        per(p.dir_sync_secs),
        per(p.db_secs),
        per(p.manifest_secs),
        p.prepare_secs,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_line() {
        let line = render(&BulkProgress {
            total: 10_000,
            written: 4_500,
            registered: 4_000,
            elapsed: Duration::from_secs(3),
        });
        assert!(
            line.starts_with("[#############................."),
            "{line}"
        );
        assert!(line.contains("4500/10000  45%"), "{line}");
        assert!(line.contains("1500/s"), "{line}");
        assert!(line.contains("ETA 4s"), "{line}");
    }
}
