//! The parts of `certbound-enroll-load`: the broker under test
//! ([`fixture`]), a keep-alive HTTPS client ([`http`]), EST issuance with
//! its cfssl baseline ([`est`], [`cfssl`]), the renewal wave ([`wave`]),
//! counting and tables ([`stats`]).

pub mod cfssl;
pub mod est;
pub mod fixture;
pub mod http;
pub mod library;
pub mod stats;
pub mod wave;

use std::path::PathBuf;

use base64::Engine as _;
use certbound_agent::keygen::NewKey;

/// Options every subcommand has.
#[derive(clap::Args, Clone)]
pub struct Common {
    /// The `certbound` binary to start (default: the one next to this binary).
    #[arg(long)]
    pub server: Option<PathBuf>,
    /// The server's log filter (`RUST_LOG`); its log goes to this process's stderr.
    #[arg(long, default_value = "warn")]
    pub server_log: String,
    /// Keep the broker data directory and the device files in this new (or
    /// empty) folder instead of a temporary one that is removed at the end.
    #[arg(long)]
    pub keep: Option<PathBuf>,
    /// Record the server with `perf record -F 499 -g` into this file from the
    /// start of the measured window (read it with `perf report -i FILE
    /// --stdio --no-children`).
    #[arg(long)]
    pub perf: Option<PathBuf>,
    /// Seconds `--perf` records.
    #[arg(long, default_value_t = 8)]
    pub perf_secs: u64,
    /// SQL run on the data directory's SQLite database (with the `sqlite3`
    /// command) after provisioning, before the server starts: what-if
    /// experiments such as an index, e.g. `CREATE INDEX certificates_revoked
    /// ON certificates(not_after) WHERE status = 'revoked';`.
    #[arg(long)]
    pub sql: Option<PathBuf>,
}

/// A new P-256 key and its CSR (CN and SAN URI of `subject`) for each
/// subject, made by the agent's key generation on every core.
pub fn generate_keys(subjects: &[String]) -> anyhow::Result<Vec<NewKey>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = subjects.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = subjects
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|id| NewKey::generate(id).map_err(anyhow::Error::from))
                        .collect::<anyhow::Result<Vec<_>>>()
                })
            })
            .collect();
        let mut keys = Vec::with_capacity(subjects.len());
        for h in handles {
            let part = h
                .join()
                .map_err(|_| anyhow::anyhow!("a key generation thread panicked"))??;
            keys.extend(part);
        }
        Ok(keys)
    })
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Standard base64 (RFC 7030 bodies).
pub fn b64(der: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(der)
}

/// Decodes standard base64, whitespace allowed.
pub fn unb64(text: &[u8]) -> anyhow::Result<Vec<u8>> {
    let compact: Vec<u8> = text
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    Ok(base64::engine::general_purpose::STANDARD.decode(compact)?)
}

/// PEM of a DER CSR.
pub fn csr_pem(der: &[u8]) -> String {
    let body = b64(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE REQUEST-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE REQUEST-----\n");
    pem
}

/// Whether the certificate `der` holds the public key of `key`.
pub fn holds_key(der: &[u8], key: &NewKey) -> bool {
    use certbound_proto::Signer as _;
    certbound_pki::public_key_sec1(der).is_ok_and(|k| k == key.signer().public_key().to_sec1())
}
