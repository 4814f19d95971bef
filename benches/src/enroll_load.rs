//! `certbound-enroll-load`: certificate issuance from CSRs against a real
//! `certbound serve`, with the server's CPU per certificate from `/proc`.
//!
//! * `est`: EST (RFC 7030) `simpleenroll` with a provisioning claim's
//!   certificate, or `simplereenroll` with each device's own certificate,
//!   over mutual TLS; `--requests` pre-generated CSRs with `--concurrency`
//!   keep-alive connections, one request in flight each. With `--cfssl-url`
//!   and `--cfssl-pid` the same CSRs then go to a running `cfssl serve`
//!   (`/api/v1/cfssl/sign`) for a baseline row in the same table
//!   (`benches/est-vs-cfssl.sh` does both).
//! * `renew-wave`: `--devices` devices (bulk-provisioned first) all renew at
//!   once, over CoAP `sren` or EST, with at most `--concurrency` in flight:
//!   time to drain, p50/p99 latency, refusals, server CPU per renewal.
//!
//! The server runs on a fresh data directory (SQLite) whose `certbound.toml`
//! differs from `certbound init`'s in the lines of
//! `enroll::fixture::CONFIG_CHANGES` (rate limits off, admission caps up,
//! MQTT off); every run prints them. The server's CPU is read from
//! `/proc/<pid>/stat` (all threads, user + system) over the measured window
//! only.
//!
//! ```sh
//! cargo build --release -p certbound-cli -p certbound-bench
//! target/release/certbound-enroll-load est --mode enroll --requests 20000 --concurrency 32
//! target/release/certbound-enroll-load est --mode reenroll --requests 20000 --concurrency 32
//! target/release/certbound-enroll-load renew-wave --devices 10000 --transport coap
//! bash benches/est-vs-cfssl.sh
//! ```

#![forbid(unsafe_code)]

mod enroll;
// Shared with certbound-load and certbound-mqtt-sessions (the ES256 baseline is theirs).
#[allow(dead_code)]
mod procstat;

use clap::{Parser, Subcommand};

use enroll::{est, fixture, wave};

#[derive(Parser)]
#[command(
    name = "certbound-enroll-load",
    about = "Load generator: certificates from CSRs (EST enroll/re-enroll, renewal waves) against a real `certbound serve`, with the server's CPU per certificate from /proc",
    long_about = "Load generator: certificates from CSRs against a real `certbound serve`, with the \
server's CPU per certificate from /proc/<pid>/stat over the measured window only.\n\n\
`est` measures EST simpleenroll (claim certificate) or simplereenroll (device certificates) \
with keep-alive mTLS connections, and optionally a running `cfssl serve` with the same CSRs \
(--cfssl-url, --cfssl-pid) for a baseline row and the certbound/cfssl CPU ratio. \
`renew-wave` provisions a fleet, then renews every device at once over CoAP or EST.\n\n\
The bench's data directory turns the rate limits off and raises the CoAP and HTTPS \
admission caps (printed after every run). Build with \
`cargo build --release -p certbound-cli -p certbound-bench`: the `certbound` binary next to \
this one is started unless --server names another."
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// EST simpleenroll / simplereenroll over HTTPS mTLS: N pre-generated CSRs,
    /// C connections with one request in flight each; optionally the same CSRs to cfssl.
    Est(est::EstArgs),
    /// A renewal wave: all devices renew at once (CoAP sren or EST), bounded concurrency.
    RenewWave(wave::WaveArgs),
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = match args.command {
        Command::Est(a) => rt.block_on(est::run(a)),
        Command::RenewWave(a) => rt.block_on(wave::run(a)),
    };
    println!();
    println!("Bench configuration (`certbound.toml` lines changed from `certbound init`):");
    for (from, to, why) in fixture::CONFIG_CHANGES {
        println!("- `{from}` → `{to}`: {why}");
    }
    result
}
