//! `certbound-agent`: the certbound device agent daemon.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use certbound_agent::config::EXAMPLE;
use certbound_agent::{AgentConfig, SystemClock};
use clap::{Parser, ValueEnum};

/// certbound-agent: certificate-bound telemetry from a device or gateway.
///
/// Connects to the MQTT server with the device certificate (mutual TLS),
/// obtains a token for every configured [[token]] audience from the certbound
/// broker, renews each at about 2/3 of its lifetime (with jitter), and
/// publishes every message from the telemetry source on
/// cb/v1/{device}/telemetry (QoS 1) as a signed envelope carrying the token.
///
/// Messages are first written to a persisted, bounded spool; they leave it
/// only after the MQTT server acknowledged them, so neither a server restart
/// nor an agent restart loses a message the agent accepted. While offline the
/// spool grows (up to spool.max_messages, then input is refused) and is sent
/// in order on reconnect, with a fresh token when the old one expired.
///
/// The device certificate is renewed at about 2/3 of its lifetime (with
/// jitter) with a NEW key, over the MQTT connection or CoAP ([renewal]): the
/// new key and certificate are written next to the current ones (.next),
/// used for a connection and fresh tokens, and only then replace them; a
/// failure keeps the current pair and retries with backoff. Interrupted
/// renewals are repaired at start.
///
/// Sources: stdin (one message per line; EOF stops the agent), a loopback UDP
/// port or a Unix datagram socket (one message per datagram, answered with
/// "ok <seq>" or "err <reason>").
///
/// Stop with SIGTERM or Ctrl-C: input stops and the spool is sent for up to
/// spool.flush_on_exit_secs; a second signal stops at once.
///
/// Start with:
///   certbound-agent --print-config > agent.toml    # then edit it
///   certbound-agent --config agent.toml -v
#[derive(Debug, Parser)]
#[command(name = "certbound-agent", version, verbatim_doc_comment)]
struct Cli {
    /// The configuration file (TOML; see --print-config).
    #[arg(
        short,
        long,
        env = "CERTBOUND_AGENT_CONFIG",
        required_unless_present = "print_config"
    )]
    config: Option<PathBuf>,
    /// Print a fully commented example configuration and exit.
    #[arg(long)]
    print_config: bool,
    /// Check the configuration file and exit.
    #[arg(long, requires = "config")]
    check: bool,
    /// More log output (default info; -v debug, -vv trace; RUST_LOG overrides).
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Log format (logs go to stderr).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// Log output format.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

fn init_logging(verbose: u8, format: LogFormat) {
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if cli.print_config {
        print!("{EXAMPLE}");
        return std::process::ExitCode::SUCCESS;
    }
    init_logging(cli.verbose, cli.log_format);
    let outcome = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")
        .and_then(|rt| {
            let result = rt.block_on(run(&cli));
            // A blocking stdin read would otherwise hold the process open.
            rt.shutdown_background();
            result
        });
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("certbound-agent: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: &Cli) -> anyhow::Result<()> {
    let path = cli
        .config
        .as_deref()
        .context("--config is required (see --print-config)")?;
    let config = AgentConfig::load(path)?;
    if cli.check {
        println!("{}: OK", path.display());
        return Ok(());
    }
    let agent = certbound_agent::start(&config, Arc::new(SystemClock)).await?;
    let mut status = agent.status();
    let stopped = async {
        let _ = status.wait_for(|s| s.stopping).await;
    };
    tokio::select! {
        () = shutdown_signal() => {
            tracing::info!("shutdown requested");
            agent.stop();
        }
        // stdin EOF stops the agent by itself.
        () = stopped => {}
    }
    tokio::select! {
        r = agent.wait() => r?,
        () = shutdown_signal() => {
            tracing::warn!("second signal: stopping now; unsent telemetry stays spooled");
        }
    }
    Ok(())
}

/// SIGTERM or Ctrl-C (SIGINT).
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
