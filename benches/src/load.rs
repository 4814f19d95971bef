//! `certbound-load`: a load generator for device token issuance against a
//! real `certbound serve` process, reporting the server's CPU per token from
//! `/proc` next to the raw crypto cost measured in the same run.
//!
//! It makes a data directory with one API, one group and `--devices`
//! provisioned devices (rate limits off), starts `certbound serve` on free
//! ports, pre-signs `--requests` token requests (x5t form, a unique `cti`
//! each, spread over the devices, as a fleet sends them) and sends them with
//! `--concurrency` requests in flight. The server's CPU comes from
//! `/proc/<pid>/stat` (all its threads, user + system) over the measured
//! window only; the crypto baseline is one ES256 verification plus one ES256
//! signature with aws-lc-rs, timed in this process before the run.
//!
//! ```sh
//! cargo build --release -p certbound-cli -p certbound-bench
//! target/release/certbound-load coap --devices 100 --requests 20000 --concurrency 32
//! ```

#[path = "setup.rs"]
#[allow(dead_code)]
mod setup;

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _,
    UnparsedPublicKey,
};
use certbound_coap::Client;
use certbound_coap::{ResponseType, content_format};
use clap::{Parser, Subcommand};

use setup::{Fixture, RequestFactory, unix_now};

#[derive(Parser)]
#[command(
    name = "certbound-load",
    about = "Load generator: device token issuance against a real `certbound serve`, with the server's CPU per token from /proc"
)]
struct Args {
    #[command(subcommand)]
    transport: Transport,
}

#[derive(Subcommand)]
enum Transport {
    /// Token requests over CoAP (UDP, `POST /token`, COSE_Sign1 requests).
    Coap(LoadArgs),
}

#[derive(clap::Args)]
struct LoadArgs {
    /// Devices provisioned and sending (requests are spread over them).
    #[arg(long, default_value_t = 100)]
    devices: usize,
    /// Token requests in the measured run.
    #[arg(long, default_value_t = 20_000)]
    requests: u64,
    /// Requests in flight at once (one client socket each).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// The `certbound` binary to start (default: next to this one).
    #[arg(long)]
    server: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    match args.transport {
        Transport::Coap(a) => rt.block_on(coap(a)),
    }
}

/// A `certbound serve` child process, killed when dropped.
struct Server {
    child: Child,
    coap: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_udp() -> anyhow::Result<SocketAddr> {
    Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?)
}

fn free_tcp() -> anyhow::Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

fn server_binary(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
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

fn start_server(binary: &PathBuf, fx: &Fixture) -> anyhow::Result<Server> {
    let coap = free_udp()?;
    let child = Command::new(binary)
        .arg("serve")
        .arg("--dir")
        .arg(&fx.dir)
        .arg("--coap-listen")
        .arg(coap.to_string())
        .arg("--mqtt-listen")
        .arg(free_tcp()?.to_string())
        .arg("--https-listen")
        .arg(free_tcp()?.to_string())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    Ok(Server { child, coap })
}

/// CPU time (user + system, all threads) of process `pid`, nanoseconds.
fn process_cpu_ns(pid: u32, tick_ns: u64) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
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

/// Nanoseconds per clock tick of `/proc/<pid>/stat` (`getconf CLK_TCK`).
fn tick_ns() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<u64>().ok())
        .filter(|&hz| hz > 0)
        .map_or(10_000_000, |hz| 1_000_000_000 / hz)
}

/// Median of 5 timed batches of `op`, nanoseconds per call.
fn time_op(mut op: impl FnMut()) -> f64 {
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
fn crypto_baseline() -> anyhow::Result<(f64, f64)> {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let message = [0x5au8; 256];
    let signature = key
        .sign(&rng, &message)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let public = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, key.public_key().as_ref());
    let sign = time_op(|| {
        std::hint::black_box(key.sign(&rng, std::hint::black_box(&message)).is_ok());
    });
    let verify = time_op(|| {
        std::hint::black_box(
            public
                .verify(std::hint::black_box(&message), signature.as_ref())
                .is_ok(),
        );
    });
    Ok((verify, sign))
}

/// Sends `requests` over `clients`, one task per client; returns the
/// successes, the refusals and their first description.
async fn send_all(clients: &[Arc<Client>], requests: Vec<Vec<u8>>) -> (u64, u64, Option<String>) {
    let ok = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let first_refusal = Arc::new(std::sync::Mutex::new(None::<String>));
    let mut shares: Vec<Vec<Vec<u8>>> = vec![Vec::new(); clients.len()];
    for (i, r) in requests.into_iter().enumerate() {
        shares[i % clients.len()].push(r);
    }
    let tasks: Vec<_> = shares
        .into_iter()
        .zip(clients)
        .map(|(share, client)| {
            let (client, ok, refused, first) = (
                Arc::clone(client),
                ok.clone(),
                refused.clone(),
                first_refusal.clone(),
            );
            tokio::spawn(async move {
                for body in share {
                    let answer = client.post("token", content_format::COSE_SIGN1, body).await;
                    match answer {
                        Ok(r) if r.code == ResponseType::Created => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        other => {
                            refused.fetch_add(1, Ordering::Relaxed);
                            let why = match other {
                                Ok(r) => format!("{:?} ({} bytes)", r.code, r.payload.len()),
                                Err(e) => e.to_string(),
                            };
                            if let Ok(mut f) = first.lock() {
                                f.get_or_insert(why);
                            }
                        }
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    let first = first_refusal.lock().ok().and_then(|mut f| f.take());
    (
        ok.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
        first,
    )
}

async fn coap(args: LoadArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.devices > 0 && args.concurrency > 0,
        "--devices and --concurrency must be at least 1"
    );
    let binary = server_binary(args.server)?;
    eprintln!("crypto baseline (aws-lc-rs ES256, this process)...");
    let (t_verify, t_sign) = crypto_baseline()?;
    eprintln!("provisioning {} devices...", args.devices);
    let fx = Fixture::new(args.devices).await?;
    let server = start_server(&binary, &fx)?;
    let pid = server.child.id();
    let mut clients = Vec::new();
    for _ in 0..args.concurrency {
        clients.push(Arc::new(
            Client::connect(server.coap, Default::default()).await?,
        ));
    }
    let mut factory = RequestFactory::new();
    // Ready when it answers; every device's certificate then validated once,
    // as in a fleet that has been running.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let body = factory.build(&fx.devices[0], unix_now())?;
        match clients[0]
            .post("token", content_format::COSE_SIGN1, body)
            .await
        {
            Ok(r) if r.code == ResponseType::Created => break,
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
            Ok(r) => bail!("the server answers {:?}", r.code),
            Err(e) => bail!("the server does not answer over CoAP: {e}"),
        }
    }
    let now = unix_now();
    let warm: Vec<Vec<u8>> = fx
        .devices
        .iter()
        .map(|d| factory.build(d, now))
        .collect::<Result<_, _>>()?;
    let (_, refused, why) = send_all(&clients, warm).await;
    anyhow::ensure!(refused == 0, "warm-up refused: {why:?}");

    eprintln!("pre-signing {} requests...", args.requests);
    let now = unix_now();
    let requests: Vec<Vec<u8>> = (0..args.requests)
        .map(|i| factory.build(&fx.devices[(i as usize) % fx.devices.len()], now))
        .collect::<Result<_, _>>()?;
    let tick = tick_ns();
    eprintln!("sending, {} in flight...", args.concurrency);
    let cpu0 = process_cpu_ns(pid, tick)?;
    let own0 = process_cpu_ns(std::process::id(), tick)?;
    let t = Instant::now();
    let (ok, refused, why) = send_all(&clients, requests).await;
    let elapsed = t.elapsed().as_secs_f64();
    let server_cpu = process_cpu_ns(pid, tick)?.saturating_sub(cpu0) as f64;
    let own_cpu = process_cpu_ns(std::process::id(), tick)?.saturating_sub(own0) as f64;
    drop(server);

    let crypto = t_verify + t_sign;
    let rate = ok as f64 / elapsed;
    let cpu_per_token = server_cpu / ok.max(1) as f64;
    let limit = 2.0 / (crypto / 1e9);
    println!(
        "| transport | devices | in flight | tokens | refused | s | tokens/s | server CPU per token | server cores busy | load generator CPU per token | ES256 verify + sign (aws-lc, same run) | server CPU / crypto | tokens/s / 2-core crypto limit ({limit:.0}/s) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| CoAP | {} | {} | {ok} | {refused} | {elapsed:.2} | {rate:.0} | {:.0} µs | {:.2} | {:.0} µs | {:.1} + {:.1} = {:.1} µs | {:.2}x | {:.2} |",
        args.devices,
        args.concurrency,
        cpu_per_token / 1e3,
        server_cpu / 1e9 / elapsed,
        own_cpu / ok.max(1) as f64 / 1e3,
        t_verify / 1e3,
        t_sign / 1e3,
        crypto / 1e3,
        cpu_per_token / crypto,
        rate / limit,
    );
    if refused > 0 {
        eprintln!(
            "{refused} requests refused; the first: {}",
            why.unwrap_or_default()
        );
    }
    Ok(())
}
