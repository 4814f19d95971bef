//! The cfssl baseline: the same CSRs, the same connections and requests in
//! flight, sent to a running `cfssl serve` (`POST /api/v1/cfssl/sign`,
//! `{"certificate_request": PEM}`), its CPU read from `/proc/<pid>/stat`
//! over the window. `benches/est-vs-cfssl.sh` starts it with a generated CA.
//! Without `-db-config` cfssl records nothing: it parses the CSR, checks
//! its signature, signs and answers JSON; with it, it inserts each
//! certificate into its database before answering.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use certbound_agent::keygen::NewKey;
use hyper::body::Bytes;

use super::est::{Job, Plan, drive, split};
use super::fixture;
use super::http::{Answer, Target};
use super::stats::{self, Row, Tally, Window};
use super::{csr_pem, holds_key};

/// cfssl options of `est`.
#[derive(clap::Args, Clone)]
pub struct CfsslArgs {
    /// A running `cfssl serve`, `http://IP:PORT` or `https://IP:PORT`: the same
    /// CSRs go to its `/api/v1/cfssl/sign` after the certbound run, for a
    /// baseline row in the same table. Repeat for several (e.g. one without
    /// and one with `-db-config`), each with its own --cfssl-pid.
    #[arg(long)]
    pub cfssl_url: Vec<String>,
    /// The cfssl process id (its CPU comes from /proc/PID/stat), once per --cfssl-url.
    #[arg(long)]
    pub cfssl_pid: Vec<u32>,
    /// What each cfssl records, for the table (once per --cfssl-url; default:
    /// "no (no -db-config)").
    #[arg(long)]
    pub cfssl_records: Vec<String>,
    /// For an https:// cfssl: the CA certificate (PEM) its TLS certificate chains to.
    #[arg(long)]
    pub cfssl_tls_ca: Option<PathBuf>,
    /// For a cfssl started with `-mutual-tls-ca`: the client certificate (PEM).
    #[arg(long, requires = "cfssl_client_key")]
    pub cfssl_client_cert: Option<PathBuf>,
    /// ... and its key (PEM).
    #[arg(long, requires = "cfssl_client_cert")]
    pub cfssl_client_key: Option<PathBuf>,
}

/// A cfssl server to measure.
pub struct Baseline {
    target: Target,
    pid: u32,
    mutual: bool,
    records: String,
}

impl Baseline {
    /// One per `--cfssl-url`.
    pub fn from_args(a: &CfsslArgs) -> anyhow::Result<Vec<Self>> {
        anyhow::ensure!(
            a.cfssl_url.len() == a.cfssl_pid.len(),
            "give one --cfssl-pid per --cfssl-url"
        );
        anyhow::ensure!(
            a.cfssl_records.len() <= a.cfssl_url.len(),
            "more --cfssl-records than --cfssl-url"
        );
        a.cfssl_url
            .iter()
            .zip(&a.cfssl_pid)
            .enumerate()
            .map(|(i, (url, &pid))| {
                let records = a
                    .cfssl_records
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| "no (no -db-config)".into());
                Self::one(a, url, pid, records)
            })
            .collect()
    }

    fn one(a: &CfsslArgs, url: &str, pid: u32, records: String) -> anyhow::Result<Self> {
        let (tls, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            bail!("--cfssl-url {url:?}: give it as http://IP:PORT or https://IP:PORT");
        };
        let addr: SocketAddr = rest
            .trim_end_matches('/')
            .parse()
            .with_context(|| format!("--cfssl-url {url:?}: the host must be IP:PORT"))?;
        let read = |p: &PathBuf| {
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
        };
        let tls = if tls {
            let ca = read(
                a.cfssl_tls_ca
                    .as_ref()
                    .context("an https cfssl needs --cfssl-tls-ca")?,
            )?;
            let identity = match (&a.cfssl_client_cert, &a.cfssl_client_key) {
                (Some(c), Some(k)) => Some((read(c)?, read(k)?)),
                _ => None,
            };
            Some(fixture::tls(
                &ca,
                identity.as_ref().map(|(c, k)| (c.as_str(), k.as_str())),
            )?)
        } else {
            None
        };
        std::fs::metadata(format!("/proc/{pid}/stat"))
            .with_context(|| format!("--cfssl-pid {pid}: no such process"))?;
        Ok(Self {
            mutual: tls.is_some() && a.cfssl_client_cert.is_some(),
            target: Target { addr, tls },
            pid,
            records,
        })
    }

    /// What it records (for the table).
    pub fn records(&self) -> &str {
        &self.records
    }

    /// Sends a sign request for each of `keys` (the first `warm` unmeasured)
    /// and prints its row; returns the server CPU per certificate (µs).
    pub async fn run(
        &self,
        keys: &[NewKey],
        warm: usize,
        concurrency: usize,
        fresh_connection: bool,
    ) -> anyhow::Result<f64> {
        let plan = Arc::new(Plan {
            targets: vec![self.target.clone()],
            path: "/api/v1/cfssl/sign",
            content_type: "application/json",
            fresh_connection,
            success: cfssl_success,
        });
        let bodies: Vec<Bytes> = keys.iter().map(|k| sign_request(k.csr_der())).collect();
        let job = |_lane: usize, i: usize| Job {
            target: 0,
            index: i,
            body: bodies[i].clone(),
        };
        let (w, _) = drive(Arc::clone(&plan), split(0, warm, concurrency, job)).await;
        anyhow::ensure!(
            w.refused == 0,
            "cfssl warm-up refused: {:?}",
            w.first_refusal
        );
        let measured_count = keys.len() - warm;
        let lanes = split(warm, measured_count, concurrency, job);
        eprintln!("cfssl: sending {measured_count} requests, {concurrency} in flight...");
        let window = Window::open(self.pid)?;
        let (mut tally, answers) = drive(plan, lanes).await;
        let measured = window.close()?;
        check_answers(&mut tally, &answers, keys);
        let transport = match (&self.target.tls, self.mutual) {
            (None, _) => "plain HTTP",
            (Some(_), true) => "mTLS",
            (Some(_), false) => "TLS",
        };
        let connection = if fresh_connection {
            "connection per request"
        } else {
            "keep-alive"
        };
        Ok(stats::issuance_row(Row {
            server: "cfssl serve",
            endpoint: format!("/api/v1/cfssl/sign ({transport}, {connection})"),
            in_flight: concurrency,
            records: &self.records,
            tally,
            measured,
        }))
    }
}

/// `{"certificate_request": "<PEM>"}`.
fn sign_request(csr_der: &[u8]) -> Bytes {
    let pem = csr_pem(csr_der).replace('\n', "\\n");
    Bytes::from(format!("{{\"certificate_request\":\"{pem}\"}}"))
}

fn cfssl_success(a: &Answer) -> bool {
    a.status == 200 && contains(&a.body, b"\"success\":true")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The certificate of a cfssl answer (`"certificate":"<PEM, \n escaped>"`).
fn certificate(body: &[u8]) -> anyhow::Result<Vec<u8>> {
    let text = std::str::from_utf8(body)?;
    let (_, rest) = text
        .split_once("\"certificate\":\"")
        .context("no \"certificate\" in the answer")?;
    let (pem, _) = rest.split_once('"').context("unterminated certificate")?;
    let pem = pem.replace("\\n", "\n");
    certbound_pki::parse_pem_certs(&pem)?
        .into_iter()
        .next()
        .context("no certificate in the PEM")
}

fn check_answers(tally: &mut Tally, answers: &[(usize, Bytes)], keys: &[NewKey]) {
    for (i, body) in answers {
        let ok = certificate(body)
            .map(|der| keys.get(*i).is_some_and(|k| holds_key(&der, k)))
            .unwrap_or(false);
        if !ok {
            tally.ok = tally.ok.saturating_sub(1);
            tally.refused(|| format!("cfssl answer {i}: no certificate for the CSR's key"));
        }
    }
}
