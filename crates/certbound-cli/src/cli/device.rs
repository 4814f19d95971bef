//! `certbound device ...`: provision, list, sign-csr, show, revoke, suspend, resume.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{DeviceId, DirArg};

/// `certbound device ...`
#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Create a key and certificate for a new device and register it.
    /// Writes <OUT>/<ID>.key.pem (mode 0600) and <OUT>/<ID>.cert.pem (leaf, issuing CA).
    ///
    /// Bulk: `--count N --prefix P` provisions devices P1..PN (from --start) into
    /// shard folders <OUT>/0000/, <OUT>/0001/, ... (floor(n / 1000), 4 digits) with
    /// <OUT>/manifest.csv and manifest.jsonl; interrupted runs resume when the same
    /// command is run again.
    ///
    /// Example:
    ///   certbound device provision --count 10000 --prefix sensor- --group sensors --out ./batch
    #[command(verbatim_doc_comment)]
    Provision {
        #[command(flatten)]
        dir: DirArg,
        /// Device id (1-128 of A-Z a-z 0-9 . _ : -); becomes the certificate CN.
        #[arg(long, required_unless_present = "count", conflicts_with = "count")]
        id: Option<String>,
        /// Bulk provisioning options.
        #[command(flatten)]
        bulk: BulkArgs,
        /// Group to put the device in; repeat for several.
        #[arg(long = "group")]
        groups: Vec<String>,
        /// Where to write the key and certificate.
        #[arg(long, default_value = "./devices")]
        out: PathBuf,
        /// Certificate lifetime in days (default: pki.device_cert_days, 90).
        #[arg(long)]
        days: Option<u32>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List devices.
    List {
        #[command(flatten)]
        dir: DirArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Register a device whose key never leaves it: sign its PKCS#10 CSR (made by
    /// openssl, a secure element, ...). Subject, SAN, EKU and lifetime come from
    /// certbound's profile, never from the CSR; only its key is used.
    ///
    /// Example:
    ///   openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout k.pem -subj /CN=x -out sensor.csr
    ///   certbound device sign-csr --csr sensor.csr --id sensor-7 --group sensors --out sensor-7.cert.pem
    #[command(verbatim_doc_comment)]
    SignCsr {
        #[command(flatten)]
        dir: DirArg,
        /// The CSR, PEM or DER.
        #[arg(long)]
        csr: PathBuf,
        /// Device id to register (becomes the certificate CN and SAN).
        #[arg(long)]
        id: String,
        /// Group to put the device in; repeat for several.
        #[arg(long = "group")]
        groups: Vec<String>,
        /// Where to write the certificate chain (device certificate, then issuing CA), PEM.
        #[arg(long)]
        out: PathBuf,
        /// Certificate lifetime in days (default: pki.device_cert_days).
        #[arg(long)]
        days: Option<u32>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one device and its certificates.
    Show {
        #[command(flatten)]
        dir: DirArg,
        #[command(flatten)]
        id: DeviceId,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a device for good: its certificates go into the CRL, every token it holds is marked
    /// revoked (INVALID) in the status lists, and new requests are refused at once. Revocation is
    /// final: a revoked device can never be suspended or resumed (provision a new id instead).
    Revoke {
        #[command(flatten)]
        dir: DirArg,
        #[command(flatten)]
        id: DeviceId,
        /// Why (recorded in the audit log).
        #[arg(long, default_value = "unspecified")]
        reason: String,
    },
    /// Suspend a device: refused, and its unexpired tokens shown SUSPENDED in the status lists,
    /// until `device resume` (then they are valid again). A revoked device cannot be suspended.
    Suspend {
        #[command(flatten)]
        dir: DirArg,
        #[command(flatten)]
        id: DeviceId,
        /// Why (recorded in the audit log).
        #[arg(long, default_value = "unspecified")]
        reason: String,
    },
    /// Resume a suspended device (its unexpired tokens become valid again). Refused for a
    /// revoked device: revocation is final.
    Resume {
        #[command(flatten)]
        dir: DirArg,
        #[command(flatten)]
        id: DeviceId,
    },
}

/// Bulk options of `certbound device provision`.
#[derive(Debug, Clone, Args)]
pub struct BulkArgs {
    /// Provision this many devices, <PREFIX><N> for N = --start.. (instead of --id).
    #[arg(long, requires = "prefix", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Id prefix of bulk devices, e.g. "sensor-" for sensor-1, sensor-2, ...
    #[arg(long, requires = "count")]
    pub prefix: Option<String>,
    /// First device number (default: 1).
    #[arg(long, requires = "count")]
    pub start: Option<u64>,
    /// Devices registered per database transaction (default: 500).
    #[arg(long, requires = "count")]
    pub batch_size: Option<usize>,
    /// Worker threads making keys and certificates and writing their files (default:
    /// 8 per CPU, 16 to 64; workers mostly wait for fsync, so more than CPUs pays).
    #[arg(long, requires = "count")]
    pub jobs: Option<usize>,
    /// No progress bar (it is also off when stderr is not a terminal).
    #[arg(long, short = 'q', requires = "count")]
    pub quiet: bool,
}
