//! `certbound-mqtt-sessions`: what MQTT 5 sessions with access tokens (RFC
//! 9431) cost a real `certbound serve` process (embedded MQTT server).
//!
//! * `reauth`: server CPU for renewing a session's token in place (MQTT 5
//!   AUTH with a token, verified and bound to the client certificate)
//!   against a reconnect that does the same with a full mutual-TLS
//!   handshake (TCP, TLS 1.3 with client certificate, CONNECT with the
//!   token, SUBSCRIBE to the device's response topic, DISCONNECT), next to
//!   one raw ES256 verification and one TLS handshake's worth of crypto,
//!   timed in this process in the same run. CPU comes from
//!   `/proc/<pid>/stat` over each window only.
//! * `sessions`: server memory (VmRSS) held by `--devices` MQTT 5 sessions
//!   (each device its own certificate, subscribed to its response topic, as
//!   the agent is), reported per session and as sessions per GiB.
//!
//! ```sh
//! cargo build --release -p certbound-cli -p certbound-bench
//! target/release/certbound-mqtt-sessions reauth --devices 50 --rounds 40
//! target/release/certbound-mqtt-sessions sessions --devices 10000   # needs ulimit -n >= 10256
//! ```
//!
//! Tokens are minted here with the broker's own signing key, as the broker
//! would (audience `urn:certbound:mqtt`, bound to each device's key): the
//! server's cost of checking them is what is measured, not issuance.

#[allow(dead_code)]
mod procstat;
#[path = "setup.rs"]
#[allow(dead_code)]
mod setup;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use certbound_mqtt::client::{Authentication, ClientOptions, MqttClient, Protocol, QoS};
use certbound_registry::config::DataDir;
use certbound_registry::registry::Registry;
use clap::{Parser, Subcommand};

use procstat::{CpuWindow, server_binary};
use setup::{Fixture, unix_now};

const MQTT_API: &str = "urn:certbound:mqtt";
const MQTT_SCOPE: &str = "pub:bench/+/alerts";

#[derive(Parser)]
#[command(about = "MQTT 5 session costs of a certbound serve process")]
struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand)]
enum What {
    /// Server CPU per in-session token renewal (AUTH) vs per reconnect.
    Reauth {
        /// Devices, each with its own certificate and session.
        #[arg(long, default_value_t = 50)]
        devices: usize,
        /// Renewals (and reconnects) per device.
        #[arg(long, default_value_t = 40)]
        rounds: usize,
        /// The `certbound` binary (default: next to this one).
        #[arg(long)]
        server: Option<PathBuf>,
    },
    /// Server memory per MQTT 5 session.
    Sessions {
        /// Sessions to hold.
        #[arg(long, default_value_t = 10_000)]
        devices: usize,
        /// Connections opened at once while connecting.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// The `certbound` binary (default: next to this one).
        #[arg(long)]
        server: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    match args.what {
        What::Reauth {
            devices,
            rounds,
            server,
        } => rt.block_on(reauth(devices, rounds, server)),
        What::Sessions {
            devices,
            concurrency,
            server,
        } => rt.block_on(sessions(devices, concurrency, server)),
    }
}

/// A `certbound serve` child process, killed when dropped.
struct Server {
    child: Child,
    mqtt: std::net::SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_tcp() -> anyhow::Result<std::net::SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

async fn start_server(binary: &PathBuf, fx: &Fixture) -> anyhow::Result<Server> {
    let mqtt = free_tcp()?;
    let child = Command::new(binary)
        .arg("serve")
        .arg("--dir")
        .arg(&fx.dir)
        .arg("--coap-listen")
        .arg(
            std::net::UdpSocket::bind("127.0.0.1:0")?
                .local_addr()?
                .to_string(),
        )
        .arg("--mqtt-listen")
        .arg(mqtt.to_string())
        .arg("--https-listen")
        .arg(free_tcp()?.to_string())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let server = Server { child, mqtt };
    let deadline = Instant::now() + Duration::from_secs(60);
    while tokio::net::TcpStream::connect(mqtt).await.is_err() {
        if Instant::now() > deadline {
            bail!("the server did not listen on {mqtt} within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(server)
}

/// The fixture plus an MQTT API whose scope grants topics to every device.
async fn fixture(devices: usize) -> anyhow::Result<Fixture> {
    let fx = Fixture::new(devices).await?;
    let reg = Registry::open(&fx.dir).await?;
    reg.create_api(MQTT_API, MQTT_SCOPE, 3600).await?;
    reg.set_grant("sensors", MQTT_API, MQTT_SCOPE).await?;
    reg.close().await;
    Ok(fx)
}

/// A token for the MQTT server's audience, as the broker issues it.
fn mqtt_token(fx: &Fixture, index: usize, now: u64) -> anyhow::Result<Vec<u8>> {
    let mut claims = fx.claims(index, now);
    claims.aud = vec![MQTT_API.into()];
    claims.scope = Some(MQTT_SCOPE.into());
    claims.status = None;
    let mut cti = [0u8; 16];
    cti[..8].copy_from_slice(&(index as u64).to_be_bytes());
    claims.cti = Some(cti.to_vec());
    Ok(certbound_proto::token::mint(
        &claims,
        &fx.signing.kid,
        &fx.signing.signer,
    )?)
}

fn options(
    fx: &Fixture,
    server: &Server,
    index: usize,
    token: Option<&[u8]>,
) -> anyhow::Result<ClientOptions> {
    let device = &fx.devices[index];
    let ca_pem = std::fs::read_to_string(DataDir::new(&fx.dir).pki().chain())?;
    let tls = certbound_mqtt::client_tls::client_tls_config(
        &ca_pem,
        device.cert_pem(),
        device.key_pem(),
    )?;
    let id = device.device_id().to_string();
    let options = ClientOptions::new(id.clone(), server.mqtt.ip().to_string(), server.mqtt.port())
        .tls(tls)
        .protocol(Protocol::V5)
        .keep_alive(Duration::from_secs(300))
        .connect_timeout(Duration::from_secs(60))
        .subscribe(format!("cb/v1/{id}/token/res"), QoS::AtLeastOnce);
    Ok(match token {
        Some(t) => options.authenticate(Authentication::ace(t.to_vec())),
        None => options,
    })
}

async fn reauth(devices: usize, rounds: usize, server: Option<PathBuf>) -> anyhow::Result<()> {
    anyhow::ensure!(
        devices > 0 && rounds > 0,
        "--devices and --rounds must be at least 1"
    );
    let binary = server_binary(server)?;
    let (verify_ns, _) = procstat::es256_verify_sign_ns()?;
    eprintln!("setting up {devices} devices ...");
    let fx = Arc::new(fixture(devices).await?);
    let server = Arc::new(start_server(&binary, &fx).await?);
    let pid = server.child.id();
    let now = unix_now();
    let tokens: Vec<Vec<u8>> = (0..devices)
        .map(|i| mqtt_token(&fx, i, now))
        .collect::<Result<_, _>>()?;
    let mut clients = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        let (client, events) = MqttClient::connect(options(&fx, &server, i, Some(token))?).await?;
        clients.push((client, events));
    }
    // Warm-up: one renewal each.
    for ((client, _), token) in clients.iter().zip(&tokens) {
        client.reauthenticate(token.clone()).await?;
    }
    // Every device renews with its own token again: AUTH 0x19 -> AUTH 0x00.
    let reauths = devices * rounds;
    let window = CpuWindow::start(&[pid])?;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (client, _)) in clients.iter().enumerate() {
        let (client, token) = (client.clone(), tokens[i].clone());
        tasks.spawn(async move {
            for _ in 0..rounds {
                client.reauthenticate(token.clone()).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let auth_wall = started.elapsed();
    let auth_cpu = window.used()?[0];
    for (client, _) in &clients {
        client.disconnect().await;
    }
    drop(clients);
    // The same devices reconnect instead: TCP + mTLS + CONNECT with the
    // token + SUBSCRIBE + DISCONNECT, `rounds` times each.
    let window = CpuWindow::start(&[pid])?;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, token) in tokens.iter().enumerate() {
        let (fx, server, token) = (Arc::clone(&fx), Arc::clone(&server), token.clone());
        tasks.spawn(async move {
            for _ in 0..rounds {
                let (client, _events) =
                    MqttClient::connect(options(&fx, &server, i, Some(&token))?).await?;
                client.disconnect().await;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let reconnect_wall = started.elapsed();
    let reconnect_cpu = window.used()?[0];
    let per_auth = auth_cpu / reauths as f64;
    let per_reconnect = reconnect_cpu / reauths as f64;
    println!("MQTT 5 session token renewal, {devices} devices x {rounds} rounds ({reauths} each):");
    println!(
        "  raw ES256 verify (aws-lc-rs, this process): {:.1} µs",
        verify_ns / 1000.0
    );
    println!(
        "  AUTH re-authentication: server CPU {:.1} µs/renewal ({:.2}x one ES256 verify), {:.0} renewals/s wall",
        per_auth / 1000.0,
        per_auth / verify_ns,
        reauths as f64 / auth_wall.as_secs_f64()
    );
    println!(
        "  reconnect (TCP + mTLS 1.3 + CONNECT with token + SUBSCRIBE + DISCONNECT): server CPU {:.1} µs/reconnect, {:.0} reconnects/s wall",
        per_reconnect / 1000.0,
        reauths as f64 / reconnect_wall.as_secs_f64()
    );
    println!(
        "  a reconnect costs the server {:.1}x an in-session renewal",
        per_reconnect / per_auth
    );
    Ok(())
}

/// VmRSS of `pid`, bytes.
fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .context("no VmRSS")?
        .parse()?;
    Ok(kib * 1024)
}

fn open_files_limit() -> anyhow::Result<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits")?;
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .context("no open-files limit")?
        .parse()
        .context("open-files limit")
}

async fn sessions(
    devices: usize,
    concurrency: usize,
    server: Option<PathBuf>,
) -> anyhow::Result<()> {
    let limit = open_files_limit()?;
    if limit < devices as u64 + 256 {
        bail!(
            "the open-files limit is {limit}, too low for {devices} sessions (this process \
             and the server each hold one socket per session): raise it with `ulimit -n`"
        );
    }
    let binary = server_binary(server)?;
    eprintln!("setting up {devices} devices (one certificate each) ...");
    let fx = Arc::new(fixture(devices).await?);
    let server = Arc::new(start_server(&binary, &fx).await?);
    let pid = server.child.id();
    // One session first, so that lazily built state is in the baseline.
    let (first, _first_events) = MqttClient::connect(options(&fx, &server, 0, None)?).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_bytes(pid)?;
    let started = Instant::now();
    let gate = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 1..devices {
        let (fx, server, gate) = (Arc::clone(&fx), Arc::clone(&server), Arc::clone(&gate));
        tasks.spawn(async move {
            let permit = gate.acquire_owned().await?;
            let session = MqttClient::connect(options(&fx, &server, i, None)?).await?;
            drop(permit);
            anyhow::Ok(session)
        });
    }
    let mut held = Vec::with_capacity(devices);
    while let Some(done) = tasks.join_next().await {
        held.push(done??);
    }
    let connect_wall = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_bytes(pid)?;
    let sessions = held.len();
    let per = (after.saturating_sub(before)) as f64 / sessions as f64;
    println!("MQTT 5 sessions held by the embedded server ({sessions} more after one):");
    println!(
        "  server VmRSS {:.1} MiB -> {:.1} MiB: {:.1} KiB per session (TLS 1.3 with client certificate, subscribed)",
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
        per / 1024.0
    );
    println!(
        "  about {:.0} sessions per GiB; connected in {:.1} s",
        1073741824.0 / per,
        connect_wall.as_secs_f64()
    );
    drop(held);
    drop(first);
    Ok(())
}
