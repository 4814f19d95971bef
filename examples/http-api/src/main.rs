//! `http-api`: an example HTTPS API protected by certbound access tokens
//! (see the crate README). Prints `http-api listening on https://ADDR` on
//! stdout once it accepts connections, logs to stderr (`RUST_LOG`), and
//! stops on Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use http_api::{Options, serve};

/// An example HTTPS API: GET /telemetry (scope telemetry:read) and POST
/// /telemetry (scope telemetry:write), each requiring a certbound access token
/// (JWT or CWT) bound to the client certificate it is presented with.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8444")]
    listen: SocketAddr,
    /// This API's TLS server certificate chain (PEM, leaf first).
    #[arg(long)]
    cert: PathBuf,
    /// Its private key (PEM).
    #[arg(long)]
    key: PathBuf,
    /// The certbound CA chain (PEM, e.g. <data dir>/pki/ca-chain.pem): client
    /// certificates must chain to it, and the broker's HTTPS server is trusted by it.
    #[arg(long)]
    ca: PathBuf,
    /// The broker's issuer id: the `iss` every token must carry.
    #[arg(long)]
    issuer: String,
    /// This API's identifier: tokens must name it in `aud`.
    #[arg(long)]
    audience: String,
    /// The broker's JWKS URL, e.g. https://127.0.0.1:8443/.well-known/jwks.json.
    #[arg(long)]
    jwks_url: String,
    /// The only URL prefix status lists may be fetched from, e.g.
    /// https://127.0.0.1:8443/status/ (tokens naming any other URL are refused).
    #[arg(long)]
    status_base: String,
}

fn read(path: &PathBuf, flag: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {flag} {}", path.display()))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let options = Options {
        listen: args.listen,
        cert_pem: read(&args.cert, "--cert")?,
        key_pem: read(&args.key, "--key")?,
        ca_pem: read(&args.ca, "--ca")?,
        issuer: args.issuer,
        audience: args.audience,
        jwks_url: args.jwks_url,
        status_base: args.status_base,
    };
    serve(&options, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("http-api: {e:#}");
            ExitCode::FAILURE
        }
    }
}
