//! `est`: certificates from CSRs over EST (RFC 7030) against a real
//! `certbound serve`, `--concurrency` keep-alive mTLS connections with one
//! request in flight each, with the server's CPU per certificate from
//! `/proc`; optionally the same CSRs to a running `cfssl serve` in the same
//! run (see [`super::cfssl`]).

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use certbound_agent::DeviceIdentity;
use certbound_agent::keygen::NewKey;
use hyper::body::Bytes;

use super::cfssl::{self, CfsslArgs};
use super::fixture::{self, Bench, Server};
use super::http::{Answer, Conn, Target, excerpt};
use super::library;
use super::stats::{self, Row, Tally, Window};
use super::{Common, b64, generate_keys, holds_key, unb64};
use crate::procstat::{per_thread_line, server_binary, thread_cpu_ns, tick_ns};

/// Which EST operation.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EstMode {
    /// `simpleenroll`: first enrollment, the TLS client certificate is a
    /// provisioning claim's; every request enrolls a new device `est-<n>`.
    Enroll,
    /// `simplereenroll`: renewal, the TLS client certificate is the device's
    /// own; every request is a new key for one of `--devices`.
    Reenroll,
}

/// Options of `est`.
#[derive(clap::Args)]
pub struct EstArgs {
    /// `enroll` (simpleenroll with a claim certificate, a new device per
    /// request) or `reenroll` (simplereenroll with each device's certificate).
    #[arg(long, value_enum, default_value = "enroll")]
    pub mode: EstMode,
    /// Certificates requested in the measured window.
    #[arg(long, default_value_t = 20_000)]
    pub requests: usize,
    /// Connections, each with one request in flight.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// `reenroll`: devices provisioned (one TLS identity each). Default: one
    /// per connection. With more devices than connections, a connection is
    /// opened per request (the device changes every time).
    #[arg(long)]
    pub devices: Option<usize>,
    /// Open a new TLS connection (a full handshake) for every request
    /// instead of keeping connections alive.
    #[arg(long)]
    pub handshake_per_request: bool,
    /// Unmeasured requests per connection before the window.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    #[command(flatten)]
    pub cfssl: CfsslArgs,
    #[command(flatten)]
    pub common: Common,
}

/// One request: which target (TLS identity) sends it, and its body.
pub struct Job {
    /// Index into [`Plan::targets`].
    pub target: usize,
    /// Index of the request (of its key) in the run.
    pub index: usize,
    /// The body.
    pub body: Bytes,
}

/// How requests are sent.
pub struct Plan {
    /// Server address and TLS identity per target.
    pub targets: Vec<Target>,
    /// Request path.
    pub path: &'static str,
    /// Content type of the bodies.
    pub content_type: &'static str,
    /// A new connection per request.
    pub fresh_connection: bool,
    /// Whether an answer is a success.
    pub success: fn(&Answer) -> bool,
}

/// Sends every lane's jobs, one lane per task and one request in flight
/// per lane; returns the tally and the successful answers by request index.
pub async fn drive(plan: Arc<Plan>, lanes: Vec<Vec<Job>>) -> (Tally, Vec<(usize, Bytes)>) {
    let tasks: Vec<_> = lanes
        .into_iter()
        .map(|jobs| {
            let plan = Arc::clone(&plan);
            tokio::spawn(async move { lane(&plan, jobs).await })
        })
        .collect();
    super::stats::join_lanes(tasks).await
}

async fn lane(plan: &Plan, jobs: Vec<Job>) -> (Tally, Vec<(usize, Bytes)>) {
    let mut tally = Tally::default();
    let mut answers = Vec::with_capacity(jobs.len());
    let mut conn: Option<(usize, Conn)> = None;
    for job in jobs {
        let started = Instant::now();
        let reuse = !plan.fresh_connection && conn.as_ref().is_some_and(|(t, _)| *t == job.target);
        if !reuse {
            conn = None;
            match Conn::open(&plan.targets[job.target]).await {
                Ok(c) => conn = Some((job.target, c)),
                Err(e) => {
                    tally.refused(|| format!("{e:#}"));
                    continue;
                }
            }
        }
        let Some((_, c)) = conn.as_mut() else {
            continue;
        };
        match c.post(plan.path, plan.content_type, job.body).await {
            Ok(a) if (plan.success)(&a) => {
                tally.ok(started.elapsed());
                answers.push((job.index, a.body));
            }
            Ok(a) => tally.refused(|| {
                format!(
                    "HTTP {} (Retry-After {:?}): {}",
                    a.status,
                    a.retry_after,
                    excerpt(&a.body)
                )
            }),
            Err(e) => {
                tally.refused(|| format!("{e:#}"));
                conn = None;
            }
        }
    }
    (tally, answers)
}

/// Splits `count` requests starting at `first` over `lanes` lanes: request
/// `k` of lane `l` is request `first + l + k * lanes`.
pub fn split(
    first: usize,
    count: usize,
    lanes: usize,
    job: impl Fn(usize, usize) -> Job,
) -> Vec<Vec<Job>> {
    let mut out: Vec<Vec<Job>> = (0..lanes).map(|_| Vec::new()).collect();
    for i in 0..count {
        let lane = i % lanes;
        out[lane].push(job(lane, first + i));
    }
    out
}

/// What the run needs per mode: targets made once the server is up.
enum Identities {
    Claim { cert: String, key: String },
    Devices(Vec<DeviceIdentity>),
}

pub async fn run(args: EstArgs) -> anyhow::Result<()> {
    let c = args.concurrency;
    anyhow::ensure!(
        c > 0 && args.requests > 0,
        "--concurrency and --requests must be at least 1"
    );
    let binary = server_binary(args.common.server.clone())?;
    let baseline = cfssl::Baseline::from_args(&args.cfssl)?;
    eprintln!("crypto floor (aws-lc ECDSA P-256, this process)...");
    let (verify_ns, sign_ns) = stats::crypto_floor()?;
    let bench = Bench::new(args.common.keep.clone()).await?;
    let ca_pem = bench.ca_pem()?;
    let warm = args.warmup * c;
    let total = warm + args.requests;
    let (identities, subjects, device_of) = match args.mode {
        EstMode::Enroll => {
            let (cert, key) = bench.claim(total as u64 + 16, "est-*").await?;
            let subjects: Vec<String> = (0..total).map(|i| format!("est-{i}")).collect();
            (Identities::Claim { cert, key }, subjects, vec![0; total])
        }
        EstMode::Reenroll => {
            let d = args.devices.unwrap_or(c).max(1);
            eprintln!("provisioning {d} devices...");
            let (devices, _) = bench.provision("dev-", d as u64).await?;
            // Request i renews device i % d: with d = c, connection l
            // always carries device l.
            let device_of: Vec<usize> = (0..total).map(|i| i % d).collect();
            let subjects = device_of
                .iter()
                .map(|&i| devices[i].device_id().to_string())
                .collect();
            (Identities::Devices(devices), subjects, device_of)
        }
    };
    eprintln!("generating {total} keys and CSRs...");
    let keys = generate_keys(&subjects)?;
    bench.apply_sql(args.common.sql.as_ref())?;
    let server = Server::start(&binary, &bench.dir, &ca_pem, &args.common.server_log).await?;
    let targets = match &identities {
        Identities::Claim { cert, key } => vec![Target {
            addr: server.https,
            tls: Some(fixture::tls(&ca_pem, Some((cert, key)))?),
        }],
        Identities::Devices(devices) => fixture::device_targets(devices, server.https, &ca_pem)?,
    };
    let (path, endpoint) = match args.mode {
        EstMode::Enroll => ("/.well-known/est/simpleenroll", "EST simpleenroll"),
        EstMode::Reenroll => ("/.well-known/est/simplereenroll", "EST simplereenroll"),
    };
    let plan = Arc::new(Plan {
        targets,
        path,
        content_type: "application/pkcs10",
        fresh_connection: args.handshake_per_request,
        success: |a| a.status == 200,
    });
    let job = |_lane: usize, i: usize| Job {
        target: device_of[i],
        index: i,
        body: Bytes::from(b64(keys[i].csr_der())),
    };
    eprintln!("warm-up: {warm} requests...");
    let (w, _) = drive(Arc::clone(&plan), split(0, warm, c, job)).await;
    anyhow::ensure!(w.refused == 0, "warm-up refused: {:?}", w.first_refusal);

    let lanes = split(warm, args.requests, c, job);
    eprintln!("sending {} requests, {c} in flight...", args.requests);
    let threads0 = thread_cpu_ns(server.pid(), tick_ns())?;
    let window = Window::open(server.pid())?;
    let perf = fixture::perf(
        server.pid(),
        args.common.perf.as_ref(),
        args.common.perf_secs,
    )?;
    let (mut tally, answers) = drive(Arc::clone(&plan), lanes).await;
    let measured = window.close()?;
    let threads = thread_cpu_ns(server.pid(), tick_ns())?;
    if let Some(mut p) = perf {
        let _ = p.wait();
    }
    drop(server);
    check_answers(&mut tally, &answers, &keys, &identities, &device_of);

    let connection = if args.handshake_per_request {
        "TLS 1.3 handshake per request"
    } else {
        "keep-alive"
    };
    stats::issuance_header();
    let refused = tally.refused;
    let certs_ok = tally.ok;
    let certbound_us = stats::issuance_row(Row {
        server: "certbound serve",
        endpoint: format!("{endpoint} (mTLS, {connection})"),
        in_flight: c,
        records: "yes: certificate row committed before the answer (SQLite WAL, synchronous=FULL); audit event queued",
        tally,
        measured,
    });
    let mut cfssl_us = Vec::new();
    for b in &baseline {
        cfssl_us.push((
            b.records().to_string(),
            b.run(&keys, warm, c, args.handshake_per_request).await?,
        ));
    }
    let library_us = if args.mode == EstMode::Enroll {
        eprintln!("the library path on the same CSRs...");
        let (ok, m) = library::run(&keys[warm..], &subjects[warm..], 30).await?;
        let us = m.server_us_per(ok);
        println!(
            "| certbound-pki + certbound-store in this process (the library path a server would use) | verify CSR, check its identity, sign, record in batches of {} | 1 | {ok} | 0 | {:.2} | {:.0} | | | {us:.0} µs | {:.2} | | yes: device, certificate and audit rows, {} per transaction (SQLite WAL, synchronous=FULL) |",
            library::BATCH,
            m.secs,
            ok as f64 / m.secs.max(1e-9),
            m.cores(),
            library::BATCH,
        );
        Some(us)
    } else {
        None
    };
    println!(
        "\ncertbound server CPU per certificate by thread: {}\n",
        per_thread_line(&threads0, &threads, certs_ok)
    );
    let floor = (verify_ns + sign_ns) / 1e3;
    println!();
    println!(
        "Crypto floor per certificate (aws-lc in this process: ECDSA P-256 verify of the CSR + sign of the certificate): {:.1} + {:.1} = {floor:.1} µs; certbound server CPU / floor: {:.2}x",
        verify_ns / 1e3,
        sign_ns / 1e3,
        certbound_us / floor
    );
    for (records, us) in cfssl_us {
        println!(
            "cfssl (records: {records}) server CPU / floor: {:.2}x. **certbound / cfssl server CPU per certificate: {:.2}x**",
            us / floor,
            certbound_us / us.max(1e-9)
        );
        if let Some(lib) = library_us {
            println!(
                "cfssl (records: {records}): **certbound library path / cfssl server CPU per certificate: {:.2}x**",
                lib / us.max(1e-9)
            );
        }
    }
    println!(
        "certbound commits every certificate (enrollments: with the device row and the claim use, in one transaction) to SQLite before answering and queues its audit event for the batched audit writer; cfssl without -db-config records nothing."
    );
    anyhow::ensure!(refused == 0, "{refused} certbound requests refused");
    Ok(())
}

/// Checks every answer after the window: a PKCS#7 whose certificate holds
/// the request's new key (and, for renewals, names the same device); a
/// broken answer moves from `ok` to `refused`.
fn check_answers(
    tally: &mut Tally,
    answers: &[(usize, Bytes)],
    keys: &[NewKey],
    identities: &Identities,
    device_of: &[usize],
) {
    for (i, body) in answers {
        let result = (|| -> anyhow::Result<()> {
            let der = unb64(body).context("the answer is not base64")?;
            let chain = certbound_pki::pkcs7_certificates(&der)?;
            let key = keys.get(*i).context("no such request")?;
            match identities {
                Identities::Claim { .. } => {
                    anyhow::ensure!(
                        chain.iter().any(|c| holds_key(c, key)),
                        "no certificate holds the CSR's key"
                    );
                }
                Identities::Devices(devices) => {
                    let device = devices.get(device_of[*i]).context("no such device")?;
                    certbound_agent::reenroll::accept_chain(key, chain, device)?;
                }
            }
            Ok(())
        })();
        if let Err(e) = result {
            tally.ok = tally.ok.saturating_sub(1);
            tally.refused(|| format!("answer {i}: {e:#}"));
        }
    }
}
