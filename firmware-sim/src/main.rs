//! `firmware-sim`: run a simulated certbound fleet and report.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use firmware_sim::fleet::{Endpoints, RemoteFleet};
use firmware_sim::live::Printer;
use firmware_sim::options::{parse_duration, parse_instance};
use firmware_sim::{BrokerTarget, Faults, RevokePlan, SimOptions, TransportMix, run};

/// Simulate a fleet of certbound devices: N real agents in one process get
/// certificate-bound tokens, renew them and their certificates, and send signed
/// telemetry that a backend verifies offline. Exits 0 when nothing was rejected
/// that the scenario does not explain, 1 otherwise, 2 for bad options or setup,
/// 130 when stopped with Ctrl-C (the summary and report still cover the run).
#[derive(Debug, Parser)]
#[command(name = "firmware-sim", version, about, long_about = None)]
struct Args {
    /// Number of devices (each with its own P-256 key and certificate).
    #[arg(long, default_value_t = 100)]
    devices: usize,
    /// mqtt, coap, https, mixed (all three) or a comma list (mqtt,coap); devices
    /// take them in turn.
    #[arg(long, default_value = "mixed", value_parser = TransportMix::parse)]
    transport: TransportMix,
    /// How long the fleet runs once provisioned (e.g. 60s, 5m).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    duration: Duration,
    /// Telemetry period of each device.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    telemetry_every: Duration,
    /// Faults: loss=5% (UDP datagrams dropped each way, CoAP), skew=90s (device
    /// clocks off by up to this much either way), broker-restart-at=30s
    /// (embedded broker only).
    #[arg(long, default_value = "", value_parser = Faults::parse)]
    faults: Faults,
    /// Revoke COUNT devices at TIME into the run, e.g. 1@20s: their telemetry and
    /// requests must then be refused.
    #[arg(long, value_parser = RevokePlan::parse)]
    revoke: Option<RevokePlan>,
    /// Device certificate lifetime (at least 60s): devices renew at about 2/3 of
    /// it, with a new key. Default: the broker's (days; no renewal in a short run).
    #[arg(long, value_parser = parse_duration)]
    cert_lifetime: Option<Duration>,
    /// Lifetime of the telemetry API's tokens (devices renew at about 2/3).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    token_lifetime: Duration,
    /// Use the broker whose data directory this is (running elsewhere, e.g.
    /// `certbound serve --dir DIR`) instead of an embedded one. The simulator
    /// registers its API, group and devices there. Repeat it for several
    /// instances sharing one PostgreSQL store (one data directory each): CoAP
    /// and HTTPS devices spread over them and fail over to the next.
    #[arg(long, value_name = "DIR")]
    broker: Vec<PathBuf>,
    /// One broker instance by address, e.g.
    /// coap=127.0.0.1:5683,https=127.0.0.1:8443[,mqtt=127.0.0.1:8883]; repeat it
    /// for several instances (with one --broker DIR for the store, CA and
    /// issuer, or one per --broker DIR, in the same order). Replaces the
    /// addresses of the data directories' certbound.toml.
    #[arg(long, value_name = "ADDRS", requires = "broker", value_parser = parse_instance)]
    instance: Vec<Endpoints>,
    /// With several instances: a CoAP or HTTPS request unanswered after this
    /// long (or refused by the socket, or answered 5.03/503) sends the device
    /// to the next instance at its next attempt. Counted as a failover, not a
    /// rejection.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    failover_after: Duration,
    /// Append a JSON line here for every answer a broker acknowledged: each
    /// token (device, cti, instance) and each renewed certificate (serial,
    /// thumbprint). Written as they come: a crash loses no line already written.
    #[arg(long, value_name = "FILE")]
    ledger: Option<PathBuf>,
    /// Keep the embedded broker's data directory here (a second run reuses its devices).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["broker", "instance"])]
    keep: Option<PathBuf>,
    /// At this time into the run, a backend service gets a JWT by OAuth client
    /// credentials over HTTPS with its TLS certificate (RFC 8705), e.g. 10s.
    #[arg(long, value_parser = parse_duration)]
    service_jwt_at: Option<Duration>,
    /// Device id prefix.
    #[arg(long, default_value = "sim-")]
    prefix: String,
    /// Write the machine-readable report here.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// No live view (the summary is still printed).
    #[arg(long, short)]
    quiet: bool,
    /// Log filter, RUST_LOG style (e.g. info, debug, firmware_sim=debug).
    #[arg(long, default_value = "warn")]
    log: String,
    /// Log format on stderr: text or json.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if args.log_format == "json" {
        logs.json().init();
    } else {
        logs.init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("firmware-sim: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(main_async(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("firmware-sim: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn main_async(args: Args) -> anyhow::Result<ExitCode> {
    let mut options = SimOptions::new(args.devices);
    options.transports = args.transport;
    options.duration = args.duration;
    options.telemetry_every = args.telemetry_every;
    options.faults = args.faults;
    options.revoke = args.revoke;
    options.cert_lifetime = args.cert_lifetime;
    options.token_lifetime = args.token_lifetime;
    options.prefix = args.prefix;
    options.service_jwt_at = args.service_jwt_at;
    options.failover_after = args.failover_after;
    options.ledger = args.ledger;
    options.broker = if args.broker.is_empty() {
        BrokerTarget::Embedded { keep: args.keep }
    } else {
        BrokerTarget::Remote(RemoteFleet {
            data_dirs: args.broker,
            instances: args.instance,
        })
    };
    eprintln!(
        "firmware-sim: {} devices over {} for {:.0} s, telemetry every {:.1} s, faults: {}",
        options.devices,
        options.transports,
        options.duration.as_secs_f64(),
        options.telemetry_every.as_secs_f64(),
        options.faults
    );
    let printer = Printer::stderr(Duration::from_secs(5));
    let quiet = args.quiet;
    let view = |f: &firmware_sim::Frame| {
        if !quiet {
            printer.show(f);
        }
    };
    let outcome = run(&options, &view).await?;
    let report = &outcome.report;
    println!("\nfirmware-sim summary\n\n{}", report.summary());
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(report)?;
        std::fs::write(path, text + "\n")
            .with_context(|| format!("writing the report to {}", path.display()))?;
        println!("report written to {}", path.display());
    }
    if report.interrupted {
        println!("INTERRUPTED: the summary covers the run up to Ctrl-C.");
        return Ok(ExitCode::from(130));
    }
    if report.ok {
        println!("OK: no unexpected rejections.");
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "FAILED: {} unexpected rejection(s){}.",
            report.totals.unexpected_total(),
            if report.totals.telemetry_accepted == 0 {
                " and no telemetry accepted"
            } else {
                ""
            }
        );
        Ok(ExitCode::from(1))
    }
}
