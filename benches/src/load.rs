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
//! target/release/certbound-load mqtt --devices 100 --requests 20000
//! ```

// Shared with certbound-enroll-load and certbound-mqtt-sessions.
#[allow(dead_code)]
mod procstat;
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
use certbound_agent::decode_token_response;
use certbound_agent::mqtt::{MqttConnectSettings, MqttDevice};
use certbound_coap::Client;
use certbound_coap::{ResponseType, content_format};
use certbound_registry::config::DataDir;
use clap::{Parser, Subcommand};

use procstat::{per_thread_line, process_cpu_ns, server_binary, thread_cpu_ns, tick_ns};
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
    /// Token requests over the embedded MQTT server: every device holds its
    /// own mTLS session and has one request in flight (`--concurrency` is
    /// not used: the devices are the concurrency).
    Mqtt(LoadArgs),
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
    /// The server's log filter (`RUST_LOG`); its log goes to this process's stderr.
    #[arg(long, default_value = "warn")]
    server_log: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    match args.transport {
        Transport::Coap(a) => rt.block_on(run(a, Kind::Coap)),
        Transport::Mqtt(a) => rt.block_on(run(a, Kind::Mqtt)),
    }
}

/// A `certbound serve` child process, killed when dropped.
struct Server {
    child: Child,
    coap: SocketAddr,
    mqtt: SocketAddr,
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

fn start_server(binary: &PathBuf, fx: &Fixture, log: &str) -> anyhow::Result<Server> {
    let coap = free_udp()?;
    let mqtt = free_tcp()?;
    let child = Command::new(binary)
        .arg("serve")
        .arg("--dir")
        .arg(&fx.dir)
        .arg("--coap-listen")
        .arg(coap.to_string())
        .arg("--mqtt-listen")
        .arg(mqtt.to_string())
        .arg("--https-listen")
        .arg(free_tcp()?.to_string())
        .env("RUST_LOG", log)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    Ok(Server { child, coap, mqtt })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Coap,
    Mqtt,
}

/// Where requests go: CoAP client sockets, or devices' MQTT sessions.
enum Senders {
    Coap(Vec<Arc<Client>>),
    /// One connection per device, in the fixture's device order.
    Mqtt(Vec<Arc<MqttDevice>>),
}

impl Senders {
    fn lanes(&self) -> usize {
        match self {
            Senders::Coap(c) => c.len(),
            Senders::Mqtt(d) => d.len(),
        }
    }

    /// Sends one request on lane `lane`; `Ok(())` when a token came back.
    async fn send(&self, lane: usize, body: Vec<u8>) -> Result<(), String> {
        match self {
            Senders::Coap(clients) => {
                match clients[lane]
                    .post("token", content_format::COSE_SIGN1, body)
                    .await
                {
                    Ok(r) if r.code == ResponseType::Created => Ok(()),
                    Ok(r) => Err(format!(
                        "{:?}: {}",
                        r.code,
                        String::from_utf8_lossy(&r.payload)
                    )),
                    Err(e) => Err(e.to_string()),
                }
            }
            Senders::Mqtt(devices) => {
                let answer = devices[lane]
                    .exchange_token_request(body)
                    .await
                    .map_err(|e| e.to_string())?;
                decode_token_response(
                    ResponseType::Created,
                    Some(content_format::ACE_CBOR),
                    &answer,
                )
                .map(|_| ())
                .map_err(|e| e.to_string())
            }
        }
    }
}

/// Sends `requests[lane]` on each lane, one task per lane; returns the
/// successes, the refusals and the first refusal's reason.
async fn send_all(
    senders: &Arc<Senders>,
    requests: Vec<Vec<Vec<u8>>>,
) -> (u64, u64, Option<String>) {
    let ok = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let first_refusal = Arc::new(std::sync::Mutex::new(None::<String>));
    let tasks: Vec<_> = requests
        .into_iter()
        .enumerate()
        .map(|(lane, share)| {
            let (senders, ok, refused, first) = (
                Arc::clone(senders),
                ok.clone(),
                refused.clone(),
                first_refusal.clone(),
            );
            tokio::spawn(async move {
                for body in share {
                    match senders.send(lane, body).await {
                        Ok(()) => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(why) => {
                            refused.fetch_add(1, Ordering::Relaxed);
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

/// `count` pre-signed requests per lane: CoAP lanes take the devices in
/// turn; an MQTT lane is its device.
fn presign(
    kind: Kind,
    fx: &Fixture,
    factory: &mut RequestFactory,
    lanes: usize,
    total: u64,
    now: u64,
) -> anyhow::Result<Vec<Vec<Vec<u8>>>> {
    let mut out = vec![Vec::new(); lanes];
    for i in 0..total as usize {
        let lane = i % lanes;
        let device = match kind {
            Kind::Coap => &fx.devices[i % fx.devices.len()],
            Kind::Mqtt => &fx.devices[lane],
        };
        out[lane].push(factory.build(device, now)?);
    }
    Ok(out)
}

async fn connect(
    kind: Kind,
    server: &Server,
    fx: &Fixture,
    concurrency: usize,
) -> anyhow::Result<Senders> {
    match kind {
        Kind::Coap => {
            let mut clients = Vec::new();
            for _ in 0..concurrency {
                clients.push(Arc::new(
                    Client::connect(server.coap, Default::default()).await?,
                ));
            }
            Ok(Senders::Coap(clients))
        }
        Kind::Mqtt => {
            let ca_pem = std::fs::read_to_string(DataDir::new(&fx.dir).pki().chain())?;
            let mut devices = Vec::new();
            for (i, d) in fx.devices.iter().enumerate() {
                let settings = MqttConnectSettings {
                    host: server.mqtt.ip().to_string(),
                    port: server.mqtt.port(),
                    ca_pem: ca_pem.clone(),
                    cert_pem: d.cert_pem().to_string(),
                    key_pem: d.key_pem().to_string(),
                    timeout: Duration::from_secs(30),
                };
                let device = MqttDevice::connect(d, &settings).await.with_context(|| {
                    format!(
                        "device {} of {} connecting over MQTT",
                        i + 1,
                        fx.devices.len()
                    )
                })?;
                devices.push(Arc::new(device));
            }
            Ok(Senders::Mqtt(devices))
        }
    }
}

async fn run(args: LoadArgs, kind: Kind) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.devices > 0 && args.concurrency > 0,
        "--devices and --concurrency must be at least 1"
    );
    let binary = server_binary(args.server)?;
    eprintln!("crypto baseline (aws-lc-rs ES256, this process)...");
    let (t_verify, t_sign) = procstat::es256_verify_sign_ns()?;
    eprintln!("provisioning {} devices...", args.devices);
    let fx = Fixture::new(args.devices).await?;
    let server = start_server(&binary, &fx, &args.server_log)?;
    let pid = server.child.id();
    // Ready when it answers over CoAP.
    let probe = Client::connect(server.coap, Default::default()).await?;
    let mut factory = RequestFactory::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let body = factory.build(&fx.devices[0], unix_now())?;
        match probe.post("token", content_format::COSE_SIGN1, body).await {
            Ok(r) if r.code == ResponseType::Created => break,
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
            Ok(r) => bail!("the server answers {:?}", r.code),
            Err(e) => bail!("the server does not answer over CoAP: {e}"),
        }
    }
    eprintln!("connecting...");
    let senders = Arc::new(connect(kind, &server, &fx, args.concurrency).await?);
    let lanes = senders.lanes();
    // Every device's certificate validated once, as in a fleet that has
    // been running.
    let warm = presign(
        kind,
        &fx,
        &mut factory,
        lanes,
        fx.devices.len().max(lanes) as u64,
        unix_now(),
    )?;
    let (_, refused, why) = send_all(&senders, warm).await;
    anyhow::ensure!(refused == 0, "warm-up refused: {why:?}");

    eprintln!("pre-signing {} requests...", args.requests);
    let requests = presign(kind, &fx, &mut factory, lanes, args.requests, unix_now())?;
    let tick = tick_ns();
    eprintln!("sending, {lanes} in flight...");
    let threads0 = thread_cpu_ns(pid, tick)?;
    let cpu0 = process_cpu_ns(pid, tick)?;
    let own0 = process_cpu_ns(std::process::id(), tick)?;
    let t = Instant::now();
    let (ok, refused, why) = send_all(&senders, requests).await;
    let elapsed = t.elapsed().as_secs_f64();
    let server_cpu = process_cpu_ns(pid, tick)?.saturating_sub(cpu0) as f64;
    let threads = thread_cpu_ns(pid, tick)?;
    let own_cpu = process_cpu_ns(std::process::id(), tick)?.saturating_sub(own0) as f64;
    drop(senders);
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
        "| {} | {} | {lanes} | {ok} | {refused} | {elapsed:.2} | {rate:.0} | {:.0} µs | {:.2} | {:.0} µs | {:.1} + {:.1} = {:.1} µs | {:.2}x | {:.2} |",
        match kind {
            Kind::Coap => "CoAP",
            Kind::Mqtt => "MQTT (mTLS session per device)",
        },
        args.devices,
        cpu_per_token / 1e3,
        server_cpu / 1e9 / elapsed,
        own_cpu / ok.max(1) as f64 / 1e3,
        t_verify / 1e3,
        t_sign / 1e3,
        crypto / 1e3,
        cpu_per_token / crypto,
        rate / limit,
    );
    println!(
        "\nserver CPU per token by thread: {}",
        per_thread_line(&threads0, &threads, ok)
    );
    if refused > 0 {
        eprintln!(
            "{refused} requests refused; the first: {}",
            why.unwrap_or_default()
        );
    }
    Ok(())
}
