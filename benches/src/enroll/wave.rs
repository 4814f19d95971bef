//! `renew-wave`: every device of a fleet renews its certificate at once
//! against one `certbound serve` (SQLite data directory), with at most
//! `--concurrency` renewals in flight; reports the time to drain, latency
//! percentiles, refusals and the server's CPU per renewal.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::Context as _;
use certbound_agent::DeviceIdentity;
use certbound_agent::keygen::NewKey;
use certbound_agent::reenroll::{accept_chain, build_reenroll_request, decode_coap_answer};
use certbound_coap::{Client, content_format};
use certbound_proto::request::CertRef;
use hyper::body::Bytes;
use rand::RngCore as _;

use super::fixture::{self, Bench, ISSUER, Server};
use super::http::{Conn, Target, excerpt};
use super::stats::{Tally, Window};
use super::{Common, b64, generate_keys, unb64};
use crate::procstat::server_binary;

/// How devices renew.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WaveTransport {
    /// CoAP `POST /.well-known/est/sren`: the signed re-enrollment request
    /// (current key, `x5t`) carrying the new key's CSR; one UDP socket per lane.
    Coap,
    /// EST `simplereenroll`: a new mutual-TLS connection per device, with
    /// its own current certificate.
    Est,
}

/// Options of `renew-wave`.
#[derive(clap::Args)]
pub struct WaveArgs {
    /// Devices that renew, all provisioned before the server starts.
    #[arg(long, default_value_t = 10_000)]
    pub devices: usize,
    /// `coap` (sren, signed request) or `est` (simplereenroll over mTLS).
    #[arg(long, value_enum, default_value = "coap")]
    pub transport: WaveTransport,
    /// Renewals in flight at most: each lane takes the next device as soon
    /// as its current one is answered.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// Extra devices renewed before the wave, not measured.
    #[arg(long, default_value_t = 64)]
    pub warmup: usize,
    /// Renew with the agent's `renew_over_coap` / `renew_over_est` as they
    /// are: the new key and its CSR are made inside the window, on the cores
    /// the server uses. Default: new keys and CSRs are made before the wave
    /// (CoAP requests are signed, with the agent's builder, just before they
    /// are sent: they expire 120 s after they are made); answers are checked
    /// after the wave.
    #[arg(long)]
    pub agent: bool,
    #[command(flatten)]
    pub common: Common,
}

/// What a lane sends to.
enum Lanes {
    Coap(Vec<Client>),
    Est(Vec<Target>),
}

/// A device's prepared renewal.
struct Prepared {
    key: NewKey,
    /// EST: the base64 CSR (CoAP: empty, the request is signed when sent).
    body: Bytes,
}

/// Everything a lane needs.
struct Wave {
    devices: Vec<DeviceIdentity>,
    prepared: Vec<Prepared>,
    lanes: Lanes,
    agent: bool,
    https_url: String,
    ca_pem: String,
}

/// A successful answer, checked after the window.
enum Issued {
    Chain(Vec<Vec<u8>>),
    Pkcs7(Bytes),
    Checked,
}

pub async fn run(args: WaveArgs) -> anyhow::Result<()> {
    let c = args.concurrency;
    anyhow::ensure!(
        c > 0 && args.devices > 0,
        "--concurrency and --devices must be at least 1"
    );
    let binary = server_binary(args.common.server.clone())?;
    let bench = Bench::new(args.common.keep.clone()).await?;
    let ca_pem = bench.ca_pem()?;
    let total = args.warmup + args.devices;
    eprintln!("provisioning {total} devices (registry bulk provisioning)...");
    let t = Instant::now();
    let (devices, report) = bench.provision("dev-", total as u64).await?;
    let provisioning = format!(
        "{total} devices provisioned in {:.1} s ({:.0}/s; `Registry::provision_bulk`, as `certbound device provision --count`: {} workers, {} per transaction, each key and certificate file fsync'd), loaded in {:.1} s",
        report.elapsed_secs,
        report.rate_per_sec,
        report.workers,
        report.batch_size,
        t.elapsed().as_secs_f64() - report.elapsed_secs
    );
    eprintln!("{provisioning}");
    let prepared = if args.agent {
        Vec::new()
    } else {
        eprintln!("generating {total} new keys and CSRs...");
        let ids: Vec<String> = devices.iter().map(|d| d.device_id().to_string()).collect();
        generate_keys(&ids)?
            .into_iter()
            .map(|key| Prepared {
                key,
                body: Bytes::new(),
            })
            .collect()
    };
    bench.apply_sql(args.common.sql.as_ref())?;
    let server = Server::start(&binary, &bench.dir, &ca_pem, &args.common.server_log).await?;
    let lanes = match args.transport {
        WaveTransport::Coap => {
            let mut clients = Vec::with_capacity(c);
            for _ in 0..c {
                clients.push(Client::connect(server.coap, Default::default()).await?);
            }
            Lanes::Coap(clients)
        }
        WaveTransport::Est if args.agent => Lanes::Est(Vec::new()),
        WaveTransport::Est => Lanes::Est(fixture::device_targets(&devices, server.https, &ca_pem)?),
    };
    // EST bodies now; CoAP requests are signed when they are sent (a signed
    // request expires 120 s after it is made, and a slow wave drains later).
    let prepared = prepared
        .into_iter()
        .map(|p| Prepared {
            body: match args.transport {
                WaveTransport::Est => Bytes::from(b64(p.key.csr_der())),
                WaveTransport::Coap => Bytes::new(),
            },
            key: p.key,
        })
        .collect();
    let wave = Arc::new(Wave {
        devices,
        prepared,
        lanes,
        agent: args.agent,
        https_url: format!("https://{}", server.https),
        ca_pem,
    });
    eprintln!("warm-up: {} devices...", args.warmup);
    let (w, _) = all_lanes(&wave, c.min(args.warmup.max(1)), 0, args.warmup).await;
    anyhow::ensure!(w.refused == 0, "warm-up refused: {:?}", w.first_refusal);
    eprintln!("renewal wave: {} devices, {c} in flight...", args.devices);
    let window = Window::open(server.pid())?;
    let perf = fixture::perf(
        server.pid(),
        args.common.perf.as_ref(),
        args.common.perf_secs,
    )?;
    let (mut tally, issued) = all_lanes(&wave, c, args.warmup, total).await;
    let measured = window.close()?;
    if let Some(mut p) = perf {
        let _ = p.wait();
    }
    drop(server);
    for (i, answer) in issued {
        if let Err(e) = check(&wave, i, answer) {
            tally.ok = tally.ok.saturating_sub(1);
            tally.refused(|| format!("device {i}: {e:#}"));
        }
    }

    let ok = tally.ok;
    let (p50, p99, max) = (
        tally.percentile_ms(50.0),
        tally.percentile_ms(99.0),
        tally.percentile_ms(100.0),
    );
    let how = match (args.transport, args.agent) {
        (WaveTransport::Coap, false) => "CoAP sren (keys and CSRs made before)",
        (WaveTransport::Coap, true) => "CoAP sren (agent renew_over_coap)",
        (WaveTransport::Est, false) => {
            "EST simplereenroll, mTLS connection per device (keys and CSRs made before)"
        }
        (WaveTransport::Est, true) => "EST (agent renew_over_est)",
    };
    println!(
        "| transport | devices | in flight | renewed | refused | drain s | renewals/s | p50 ms | p99 ms | max ms | server CPU per renewal | server cores busy | load generator CPU per renewal |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {how} | {} | {c} | {ok} | {} | {:.2} | {:.0} | {p50:.1} | {p99:.1} | {max:.1} | {:.0} µs | {:.2} | {:.0} µs |",
        args.devices,
        tally.refused,
        measured.secs,
        ok as f64 / measured.secs.max(1e-9),
        measured.server_us_per(ok),
        measured.cores(),
        measured.own_us_per(ok),
    );
    println!();
    println!("{provisioning}.");
    if let Some(why) = &tally.first_refusal {
        eprintln!("{} refused; the first: {why}", tally.refused);
    }
    anyhow::ensure!(tally.refused == 0, "{} renewals refused", tally.refused);
    Ok(())
}

/// Runs `lanes` lanes until devices `start..end` are renewed.
async fn all_lanes(
    wave: &Arc<Wave>,
    lanes: usize,
    start: usize,
    end: usize,
) -> (Tally, Vec<(usize, Issued)>) {
    let next = Arc::new(AtomicUsize::new(start));
    let tasks: Vec<_> = (0..lanes)
        .map(|l| {
            let (wave, next) = (Arc::clone(wave), Arc::clone(&next));
            tokio::spawn(async move { lane(&wave, l, &next, end).await })
        })
        .collect();
    super::stats::join_lanes(tasks).await
}

async fn lane(
    wave: &Wave,
    l: usize,
    next: &AtomicUsize,
    end: usize,
) -> (Tally, Vec<(usize, Issued)>) {
    let mut tally = Tally::default();
    let mut issued = Vec::new();
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= end {
            break;
        }
        let started = Instant::now();
        match renew(wave, l, i).await {
            Ok(answer) => {
                tally.ok(started.elapsed());
                issued.push((i, answer));
            }
            Err(e) => tally.refused(|| format!("device {i}: {e:#}")),
        }
    }
    (tally, issued)
}

/// Renews device `i` on lane `l`.
async fn renew(wave: &Wave, l: usize, i: usize) -> anyhow::Result<Issued> {
    let device = &wave.devices[i];
    match &wave.lanes {
        Lanes::Coap(clients) => {
            let client = &clients[l % clients.len()];
            if wave.agent {
                certbound_agent::renew_over_coap(client, device, ISSUER).await?;
                return Ok(Issued::Checked);
            }
            let p = wave.prepared.get(i).context("no prepared key")?;
            let mut nonce = [0u8; 16];
            rand::rng().fill_bytes(&mut nonce);
            let cert = CertRef::X5t(device.thumbprint());
            let now = super::unix_now();
            let request =
                build_reenroll_request(device, ISSUER, p.key.csr_der(), &cert, now, nonce)?;
            let r = client
                .post(".well-known/est/sren", content_format::COSE_SIGN1, request)
                .await?;
            Ok(Issued::Chain(decode_coap_answer(
                r.code,
                r.content_format,
                &r.payload,
                r.max_age,
            )?))
        }
        Lanes::Est(_) if wave.agent => {
            certbound_agent::renew_over_est(&wave.https_url, &wave.ca_pem, device).await?;
            Ok(Issued::Checked)
        }
        Lanes::Est(targets) => {
            let target = targets.get(i).context("no target for the device")?;
            let mut conn = Conn::open(target).await?;
            let a = conn
                .post(
                    "/.well-known/est/simplereenroll",
                    "application/pkcs10",
                    wave.prepared[i].body.clone(),
                )
                .await?;
            anyhow::ensure!(
                a.status == 200,
                "HTTP {} (Retry-After {:?}): {}",
                a.status,
                a.retry_after,
                excerpt(&a.body)
            );
            Ok(Issued::Pkcs7(a.body))
        }
    }
}

/// Checks an answer: the new certificate holds the new key and names the device.
fn check(wave: &Wave, i: usize, answer: Issued) -> anyhow::Result<()> {
    let chain = match answer {
        Issued::Checked => return Ok(()),
        Issued::Chain(chain) => chain,
        Issued::Pkcs7(body) => certbound_pki::pkcs7_certificates(&unb64(&body)?)?,
    };
    let p = wave.prepared.get(i).context("no prepared key")?;
    let device = wave.devices.get(i).context("no device")?;
    accept_chain(&p.key, chain, device)?;
    Ok(())
}
