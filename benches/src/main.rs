//! # certbound-bench
//!
//! Benchmarks of the certbound hot paths, printed as markdown tables:
//! raw ES256 baselines (aws-lc-rs and p256, measured in the same run), strict
//! CBOR, token mint and verify, device requests, the token service in process,
//! CoAP round trips over UDP loopback, and peak memory.
//!
//! ```text
//! cargo run --release -p certbound-bench                  # full run (~1 min)
//! cargo run --release -p certbound-bench -- --quick       # smoke run
//! cargo run --release -p certbound-bench -- --filter coap # rows whose name contains "coap"
//! ```
//!
//! See BENCHMARKS.md for results and how to read them.

mod harness;
mod issuance;
mod oauth;
mod setup;
mod telemetry;
mod token_size;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use certbound_broker::server::{ServeOptions, start};
use certbound_broker::store::Store;
use certbound_coap::{Client, ResponseType, content_format};
use certbound_proto::cbor::{self, Limits};
use certbound_proto::crypto::{AwsLcVerifier, Signer};
use certbound_proto::request::UnverifiedRequest;
use certbound_proto::{EcPublicKey, token};
use certbound_registry::config::DataDir;

use crate::harness::{Config, Run, Stats, group, measure, measure_fn, percentile};
use crate::setup::{API, Fixture, RequestFactory, unix_now};

/// Concurrent CoAP clients in the concurrent round-trip row.
const CONCURRENT: usize = 16;

struct Options {
    quick: bool,
    filter: Option<String>,
}

fn parse_args() -> anyhow::Result<Options> {
    let mut quick = false;
    let mut filter = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => quick = true,
            "--filter" => filter = Some(args.next().context("--filter needs a value")?),
            // `cargo bench` style flag, harmless here.
            "--bench" => {}
            "-h" | "--help" => {
                println!(
                    "certbound-bench [--quick] [--filter SUBSTR]\n\n  \
                     --quick          short warm-up and samples (smoke run)\n  \
                     --filter SUBSTR  only rows whose name contains SUBSTR (case-insensitive;\n                   several: A|B)"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    Ok(Options { quick, filter })
}

/// A row of the main table.
struct Row {
    name: String,
    stats: Stats,
    note: String,
}

/// Rows are collected here and printed at the end.
struct Bench {
    config: Config,
    filter: Option<String>,
    rows: Vec<Row>,
}

impl Bench {
    fn wants(&self, name: &str) -> bool {
        let name = name.to_lowercase();
        self.filter.as_deref().is_none_or(|f| {
            f.split('|')
                .any(|alt| name.contains(&alt.trim().to_lowercase()))
        })
    }

    fn run(&mut self, name: &str, note: &str, f: impl FnMut(u64) -> Run) -> Option<Stats> {
        if !self.wants(name) {
            return None;
        }
        eprintln!("  running: {name}");
        let stats = measure(self.config, f);
        report(&stats);
        self.rows.push(Row {
            name: name.into(),
            stats,
            note: note.into(),
        });
        Some(stats)
    }

    fn run_fn<T>(&mut self, name: &str, note: &str, f: impl FnMut() -> T) -> Option<Stats> {
        if !self.wants(name) {
            return None;
        }
        eprintln!("  running: {name}");
        let stats = measure_fn(self.config, f);
        report(&stats);
        self.rows.push(Row {
            name: name.into(),
            stats,
            note: note.into(),
        });
        Some(stats)
    }

    fn print(&self) {
        println!("| benchmark | median ns/op | ops/s | min..max ns/op | notes |");
        println!("|---|---:|---:|---:|---|");
        for r in &self.rows {
            println!(
                "| {} | {} | {} | {} .. {} | {} |",
                r.name,
                group(r.stats.median_ns),
                group(r.stats.ops_per_sec()),
                group(r.stats.min_ns),
                group(r.stats.max_ns),
                r.note
            );
        }
    }
}

fn report(stats: &Stats) {
    eprintln!(
        "           {} ns/op, {} ops/sample",
        group(stats.median_ns),
        stats.ops_per_sample
    );
}

fn main() -> anyhow::Result<()> {
    let options = parse_args()?;
    let config = if options.quick {
        Config::quick()
    } else {
        Config::full()
    };
    let mut bench = Bench {
        config,
        filter: options.filter.clone(),
        rows: Vec::new(),
    };

    print_header(&options, config);

    // One current-thread runtime for set-up and the in-process service.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    eprintln!("setting up a broker data directory ({CONCURRENT} devices)...");
    let fixture = rt.block_on(Fixture::new(CONCURRENT))?;

    raw_primitives(&mut bench)?;
    let token_size = tokens(&mut bench, &fixture)?;
    requests(&mut bench, &fixture)?;
    oauth::tokens(&mut bench, &fixture)?;
    let service = service_in_process(&mut bench, &fixture, &rt)?;
    let issuance = issuance::compare(&mut bench, &fixture)?;
    let telemetry = if bench.wants("telemetry verification") {
        Some(telemetry::compare(&fixture)?)
    } else {
        None
    };
    oauth::endpoint(&mut bench, &fixture, &rt)?;
    drop(rt);

    println!("### Micro-benchmarks (single thread)\n");
    bench.print();
    println!();
    if let Some(size) = token_size {
        println!("Token size: {size} bytes (token::mint with the claims the service issues).");
    }
    if let Some(s) = service {
        s.print();
    }
    if let Some(i) = issuance {
        i.print();
    }
    if let Some(t) = telemetry {
        t.print();
    }
    let hwm_before = proc_status_kib("VmHWM");

    let coap_wanted = ["coap round trip, 1 client", "coap round trip, 16 tasks"]
        .iter()
        .any(|n| bench.wants(n));
    if coap_wanted {
        println!("\n### CoAP round trips over UDP loopback\n");
        coap(&bench, &fixture)?;
    }

    println!("\n### Memory\n");
    if let Some(kib) = hwm_before {
        println!(
            "- peak RSS (VmHWM) before the CoAP run: {:.1} MiB",
            kib / 1024.0
        );
    }
    match (proc_status_kib("VmHWM"), proc_status_kib("VmRSS")) {
        (Some(hwm), Some(rss)) => println!(
            "- peak RSS (VmHWM) after the CoAP run: {:.1} MiB (current VmRSS {:.1} MiB)",
            hwm / 1024.0,
            rss / 1024.0
        ),
        _ => println!("- /proc/self/status not readable"),
    }
    Ok(())
}

fn print_header(options: &Options, config: Config) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("## certbound-bench\n");
    println!(
        "CPU: {cpu}, {cores} logical CPUs. Harness: warm-up {} ms, samples of ~{} ms, {} samples{}{}.\n",
        config.warmup.as_millis(),
        config.sample.as_millis(),
        config.samples,
        if options.quick { " (--quick)" } else { "" },
        options
            .filter
            .as_deref()
            .map(|f| format!(", filter {f:?}"))
            .unwrap_or_default()
    );
}

/// Raw ES256 on a 256-byte message with both libraries, as the yardstick.
fn raw_primitives(bench: &mut Bench) -> anyhow::Result<()> {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
        ParsedPublicKey,
    };
    use p256::ecdsa::signature::{Signer as _, Verifier as _};

    let message = [0x5au8; 256];

    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|e| anyhow::anyhow!("aws-lc key generation: {e}"))?;
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
        .map_err(|e| anyhow::anyhow!("aws-lc key: {e}"))?;
    let parsed = ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, pair.public_key().as_ref())
        .map_err(|e| anyhow::anyhow!("aws-lc public key: {e}"))?;
    let aws_sig = pair
        .sign(&rng, &message)
        .map_err(|e| anyhow::anyhow!("aws-lc sign: {e}"))?;
    parsed
        .verify_sig(&message, aws_sig.as_ref())
        .map_err(|e| anyhow::anyhow!("aws-lc verify: {e}"))?;

    bench.run_fn("raw ES256 sign, aws-lc-rs (256 B)", "baseline", || {
        pair.sign(&rng, black_box(&message))
    });
    bench.run_fn(
        "raw ES256 verify, aws-lc-rs ParsedPublicKey (256 B)",
        "baseline",
        || parsed.verify_sig(black_box(&message), black_box(aws_sig.as_ref())),
    );

    let key = p256::ecdsa::SigningKey::from_slice(&[7u8; 32])
        .map_err(|e| anyhow::anyhow!("p256 key: {e}"))?;
    let verifying = *key.verifying_key();
    let p256_sig: p256::ecdsa::Signature = key.sign(&message);
    verifying
        .verify(&message, &p256_sig)
        .map_err(|e| anyhow::anyhow!("p256 verify: {e}"))?;
    bench.run_fn(
        "raw ES256 sign, p256 0.14 RFC 6979 (256 B)",
        "baseline",
        || -> p256::ecdsa::Signature { key.sign(black_box(&message)) },
    );
    bench.run_fn(
        "raw ES256 verify, p256 0.14 pre-parsed key (256 B)",
        "baseline",
        || verifying.verify(black_box(&message), black_box(&p256_sig)),
    );
    Ok(())
}

/// Token rows: strict CBOR, mint, verify. Returns the token size.
fn tokens(bench: &mut Bench, fx: &Fixture) -> anyhow::Result<Option<usize>> {
    let now = unix_now();
    let claims = fx.claims(0, now);
    let kid = fx.signing.kid.clone();
    let signer = &fx.signing.signer;
    let cwt = token::mint(&claims, &kid, signer)?;
    let limits = Limits::default();
    cbor::check_strict(&cwt, limits)?;
    let verifier = fx.token_verifier();
    verifier.verify(&cwt, &["telemetry:write"], now)?;
    let jwt = token_size::rfc9068_equivalent(&claims, setup::ISSUER, &kid, signer)?;
    println!(
        "Token size: CWT {} B, RFC 9068 JWT with the same claims and key {} B, ratio {:.2}\n",
        cwt.len(),
        jwt.len(),
        cwt.len() as f64 / jwt.len() as f64
    );

    bench.run_fn(
        "strict CBOR check of a token (cbor::check_strict)",
        &format!("{} B token", cwt.len()),
        || cbor::check_strict(black_box(&cwt), limits),
    );
    bench.run_fn(
        "token mint, aws-lc signer (token::mint)",
        &format!("claims encode + COSE_Sign1 + ES256; {} B", cwt.len()),
        || token::mint(black_box(&claims), &kid, signer),
    );
    bench.run_fn(
        "token verify, certbound-verify TokenVerifier",
        "strict parse + kid lookup + ES256 (aws-lc) + claims checks",
        || verifier.verify(black_box(&cwt), &["telemetry:write"], now),
    );
    Ok(Some(cwt.len()))
}

/// Device-request rows: device-side sign, broker-side parse and verify,
/// certificate validation and the whole crypto path of one token request.
fn requests(bench: &mut Bench, fx: &Fixture) -> anyhow::Result<()> {
    let now = unix_now();
    let mut factory = RequestFactory::new();
    let device = &fx.devices[0];
    let request = factory.build(device, now)?;
    let limits = Limits::default();
    let leaf = device.chain()[0].clone();
    let cert_key = device.signer().public_key().clone();

    let parse_verify = |bytes: &[u8], key: &EcPublicKey| -> anyhow::Result<()> {
        let parsed = UnverifiedRequest::parse(bytes, limits)?;
        let verifier = AwsLcVerifier::new(key)?;
        let req = parsed.verify(&verifier, limits)?;
        black_box(req);
        Ok(())
    };
    parse_verify(&request, &cert_key)?;

    bench.run_fn(
        "device request sign, p256 (agent build_token_request)",
        &format!(
            "device side: CBOR + COSE_Sign1 + p256 ES256; {} B (x5t form)",
            request.len()
        ),
        || factory.build(device, now),
    );
    bench.run_fn(
        "broker request parse + verify, aws-lc (UnverifiedRequest)",
        "strict parse + AwsLcVerifier::new(cert key) + ES256 verify + payload decode",
        || parse_verify(black_box(&request), &cert_key),
    );
    bench.run_fn(
        "device cert validation (TrustStore::verify_device_cert)",
        "x509 parse + chain to the store + leaf signature (aws-lc) + profile",
        || fx.trust.verify_device_cert(black_box(&leaf), &[], now, 60),
    );

    // What TokenService::decide does that is not I/O: validate the
    // certificate, verify the request with its key, mint the token.
    let claims = fx.claims(0, now);
    let crypto = |bytes: &[u8]| -> anyhow::Result<Vec<u8>> {
        let cert = fx.trust.verify_device_cert(&leaf, &[], now, 60)?;
        let key = EcPublicKey::from_sec1(&cert.public_key_sec1)?;
        parse_verify(bytes, &key)?;
        Ok(token::mint(&claims, &fx.signing.kid, &fx.signing.signer)?)
    };
    crypto(&request)?;
    bench.run_fn(
        "broker crypto path: cert validation + request verify + mint",
        "the service's CPU work without store, replay cache, audit or runtime",
        || crypto(black_box(&request)),
    );
    Ok(())
}

/// In-process service result, printed under the table.
struct ServiceSummary {
    service: Stats,
    crypto: Option<f64>,
    issued_size: usize,
    cpu_ns_per_request: Option<f64>,
}

impl ServiceSummary {
    fn print(&self) {
        println!(
            "TokenService::handle in process: {} ns/request = {} requests/s (token issued: {} B).",
            group(self.service.median_ns),
            group(self.service.ops_per_sec()),
            self.issued_size
        );
        if let Some(cpu) = self.cpu_ns_per_request {
            println!(
                "Process CPU per request (all threads: runtime, SQLite workers, audit writer): {} ns.",
                group(cpu)
            );
        }
        if let Some(c) = self.crypto {
            let over = self.service.median_ns - c;
            println!(
                "Crypto-only path: {} ns = {} /s; so store + replay cache + audit + async \
                 cost {} ns/request ({:.0} % of handle).",
                group(c),
                group(1e9 / c),
                group(over),
                100.0 * over / self.service.median_ns
            );
        }
    }
}

/// `TokenService::handle` end to end in process, on a current-thread runtime.
fn service_in_process(
    bench: &mut Bench,
    fx: &Fixture,
    rt: &tokio::runtime::Runtime,
) -> anyhow::Result<Option<ServiceSummary>> {
    let name = "TokenService::handle in process (registry snapshot + SQLite audit)";
    let store_name = "registry lookup of one request (Store::token_view, one sqlx query)";
    let snapshot_name = "registry lookup of one request (Snapshot::token_view, in memory)";
    if !bench.wants(name) && !bench.wants(store_name) && !bench.wants(snapshot_name) {
        return Ok(None);
    }
    let broker = rt.block_on(start(
        &fx.dir,
        ServeOptions {
            coap_listen: Some("127.0.0.1:0".parse()?),
            mqtt_listen: Some("127.0.0.1:0".parse()?),
            https_listen: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
        },
    ))?;
    let service = Arc::clone(broker.service());
    let mut factory = RequestFactory::new();
    let device = &fx.devices[0];

    // One checked request first.
    let first = factory.build(device, unix_now())?;
    let issued = rt
        .block_on(service.handle(&first, "bench", None, None, unix_now()))
        .map_err(|e| anyhow::anyhow!("the service refused the request: {e:?}"))?;

    // The registry reads one request makes, on their own (a second pool on
    // the same database; the broker's pool is idle meanwhile).
    let store = rt.block_on(Store::open(&DataDir::new(&fx.dir).database()))?;
    let thumb = hex_lower(&device.thumbprint());
    let id = device.device_id().to_string();
    bench.run(
        store_name,
        "certificate, device status, API and grant in one query: what handle awaits",
        |n| {
            let t = Instant::now();
            rt.block_on(async {
                for _ in 0..n {
                    match store.token_view(&thumb, API).await {
                        Ok(Some(view)) if view.granted.is_some() => drop(black_box(view)),
                        Ok(_) => panic!("no registered certificate or grant found for {id}"),
                        Err(e) => panic!("store lookup failed: {e}"),
                    }
                }
            });
            Run {
                elapsed: t.elapsed(),
                ops: n,
            }
        },
    );
    // The same facts from the in-memory registry the broker now decides
    // tokens with (loaded from the same database, kept current by the change
    // feed): no database on the token path.
    let snapshot = rt.block_on(store.load_snapshot())?;
    bench.run(
        snapshot_name,
        "the same certificate, device status, API and grant from memory (Snapshot::token_view)",
        |n| {
            let t = Instant::now();
            for _ in 0..n {
                match snapshot.token_view(&thumb, API) {
                    Some(view) if view.granted.is_some() => drop(black_box(view)),
                    _ => {
                        panic!("no registered certificate or grant found for {id} in the snapshot")
                    }
                }
            }
            Run {
                elapsed: t.elapsed(),
                ops: n,
            }
        },
    );
    rt.block_on(store.close());

    // (CPU ns of every thread, requests) over the timed parts.
    let mut cpu = (0u64, 0u64);
    let stats = bench.run(
        name,
        "current-thread runtime; fresh signed request per op (built outside the timing)",
        |n| {
            let now = unix_now();
            let batch = factory.batch(device, now, n);
            let cpu0 = process_cpu_ns();
            let t = Instant::now();
            rt.block_on(async {
                for req in &batch {
                    if let Err(e) = service.handle(req, "bench", None, None, now).await {
                        panic!("the service refused a request: {e:?}");
                    }
                }
            });
            let elapsed = t.elapsed();
            if let Some((a, b)) = cpu0.zip(process_cpu_ns()) {
                cpu.0 += b.saturating_sub(a);
                cpu.1 += n;
            }
            Run { elapsed, ops: n }
        },
    );
    // The service holds the audit log's sender: release our reference, or
    // shutdown waits for the audit writer forever.
    drop(service);
    rt.block_on(broker.shutdown());
    let crypto = bench
        .rows
        .iter()
        .find(|r| r.name.starts_with("broker crypto path"))
        .map(|r| r.stats.median_ns);
    Ok(stats.map(|service| ServiceSummary {
        service,
        crypto,
        issued_size: issued.access_token.len(),
        cpu_ns_per_request: (cpu.1 > 0).then(|| cpu.0 as f64 / cpu.1 as f64),
    }))
}

/// Sum of the CPU time of every thread of this process, in ns
/// (`/proc/self/task/*/schedstat`, first field).
fn process_cpu_ns() -> Option<u64> {
    let mut total = 0u64;
    for entry in std::fs::read_dir("/proc/self/task").ok()? {
        let path = entry.ok()?.path().join("schedstat");
        if let Ok(text) = std::fs::read_to_string(path) {
            total += text.split_whitespace().next()?.parse::<u64>().ok()?;
        }
    }
    Some(total)
}

/// Latencies and CPU use collected by one CoAP row.
#[derive(Default)]
struct Collected {
    latencies: Vec<Duration>,
    cpu_ns: u64,
    ops: u64,
}

fn check_response(resp: &certbound_coap::Response) {
    if resp.code != ResponseType::Created {
        panic!(
            "token request refused: {:?} {}",
            resp.code,
            String::from_utf8_lossy(&resp.payload)
        );
    }
}

/// CoAP round trips against a broker started with `server::start`.
fn coap(bench: &Bench, fx: &Fixture) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let broker = rt.block_on(start(
        &fx.dir,
        ServeOptions {
            coap_listen: Some("127.0.0.1:0".parse()?),
            mqtt_listen: Some("127.0.0.1:0".parse()?),
            https_listen: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
        },
    ))?;
    let addr = broker
        .coap_addr()
        .context("CoAP is disabled in the broker configuration")?;
    let clients: Vec<Arc<Client>> = rt.block_on(async {
        let mut v = Vec::new();
        for _ in 0..CONCURRENT {
            v.push(Arc::new(Client::connect(addr, Default::default()).await?));
        }
        Ok::<_, certbound_coap::CoapError>(v)
    })?;
    let mut factory = RequestFactory::new();
    let mut rows = Vec::new();

    let name = "CoAP round trip, 1 client sequential";
    if bench.wants(name) {
        eprintln!("  running: {name}");
        let mut col = Collected::default();
        let stats = measure(bench.config, |n| {
            let batch = factory.batch(&fx.devices[0], unix_now(), n);
            let client = Arc::clone(&clients[0]);
            let (elapsed, lat, cpu) = rt
                .block_on(rt.spawn(async move {
                    let cpu0 = process_cpu_ns();
                    let t = Instant::now();
                    let mut lat = Vec::with_capacity(batch.len());
                    for req in batch {
                        let t0 = Instant::now();
                        match client.post("token", content_format::COSE_SIGN1, req).await {
                            Ok(resp) => check_response(&resp),
                            Err(e) => panic!("CoAP request failed: {e}"),
                        }
                        lat.push(t0.elapsed());
                    }
                    let elapsed = t.elapsed();
                    let cpu = process_cpu_ns().zip(cpu0).map(|(b, a)| b - a);
                    (elapsed, lat, cpu)
                }))
                .unwrap_or_else(|e| panic!("client task failed: {e}"));
            col.latencies.extend(lat);
            if let Some(c) = cpu {
                col.cpu_ns += c;
                col.ops += n;
            }
            Run { elapsed, ops: n }
        });
        report(&stats);
        rows.push((name, stats, col));
    }

    let name = "CoAP round trip, 16 tasks concurrent (own client each)";
    if bench.wants(name) {
        eprintln!("  running: {name}");
        let mut col = Collected::default();
        let stats = measure(bench.config, |n| {
            let per_task = n.div_ceil(CONCURRENT as u64).max(1);
            let now = unix_now();
            let batches: Vec<Vec<Vec<u8>>> = fx
                .devices
                .iter()
                .take(CONCURRENT)
                .map(|d| factory.batch(d, now, per_task))
                .collect();
            let (elapsed, lat, cpu) = rt.block_on(async {
                let cpu0 = process_cpu_ns();
                let t = Instant::now();
                let tasks: Vec<_> = batches
                    .into_iter()
                    .zip(&clients)
                    .map(|(batch, client)| {
                        let client = Arc::clone(client);
                        tokio::spawn(async move {
                            let mut lat = Vec::with_capacity(batch.len());
                            for req in batch {
                                let t0 = Instant::now();
                                match client.post("token", content_format::COSE_SIGN1, req).await {
                                    Ok(resp) => check_response(&resp),
                                    Err(e) => panic!("CoAP request failed: {e}"),
                                }
                                lat.push(t0.elapsed());
                            }
                            lat
                        })
                    })
                    .collect();
                let mut lat = Vec::new();
                for task in tasks {
                    lat.extend(
                        task.await
                            .unwrap_or_else(|e| panic!("client task failed: {e}")),
                    );
                }
                let elapsed = t.elapsed();
                let cpu = process_cpu_ns().zip(cpu0).map(|(b, a)| b - a);
                (elapsed, lat, cpu)
            });
            let ops = per_task * CONCURRENT as u64;
            col.latencies.extend(lat);
            if let Some(c) = cpu {
                col.cpu_ns += c;
                col.ops += ops;
            }
            Run { elapsed, ops }
        });
        report(&stats);
        rows.push((name, stats, col));
    }

    drop(clients);
    rt.block_on(broker.shutdown());

    println!(
        "| benchmark | median requests/s | min..max requests/s | p50 latency | p99 latency | max latency | process CPU per request |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (name, stats, mut col) in rows {
        // Drop the warm-up requests' latencies.
        let skip = usize::try_from(stats.warmup_ops)
            .unwrap_or(usize::MAX)
            .min(col.latencies.len());
        let mut lat = col.latencies.split_off(skip);
        lat.sort();
        let cpu = if col.ops > 0 {
            format!("{:.0} µs", col.cpu_ns as f64 / col.ops as f64 / 1000.0)
        } else {
            "n/a".into()
        };
        println!(
            "| {name} | {} | {} .. {} | {:.0} µs | {:.0} µs | {:.0} µs | {cpu} |",
            group(stats.ops_per_sec()),
            group(1e9 / stats.max_ns),
            group(1e9 / stats.min_ns),
            micros(percentile(&lat, 50.0)),
            micros(percentile(&lat, 99.0)),
            micros(lat.last().copied().unwrap_or_default()),
        );
    }
    println!(
        "\nClient and broker share one tokio multi-thread runtime (2 workers) in this process, \
         so they compete for the same cores. Requests are signed before the timing starts; \
         CPU per request is every thread of the process (client + broker + SQLite) divided \
         by the requests."
    );
    Ok(())
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// A `kB` field of `/proc/self/status`, in KiB.
fn proc_status_kib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}
