//! Certificate-authority, partner-CA and claim commands.

use std::path::PathBuf;

use clap::Subcommand;

use super::DirArg;

/// `certbound ca ...`
#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// List the root and issuing CAs (current first) with their validity.
    Show {
        #[command(flatten)]
        dir: DirArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make a new issuing CA under the root. The old one stays trusted while it is
    /// valid, so devices renew onto the new one; a running broker picks it up.
    RotateIssuing {
        #[command(flatten)]
        dir: DirArg,
        /// The root CA private key, when it is kept offline (not in DIR/pki/root-ca.key.pem).
        #[arg(long, value_name = "PATH")]
        root_key: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Sign the issuing CA request of an instance joining this service (made by
    /// `certbound init --join`, DIR/pki/issuing-ca.csr.pem there) with the root, and
    /// publish the certificate in the store: every instance trusts what it issues.
    SignInstance {
        #[command(flatten)]
        dir: DirArg,
        /// The request (PEM).
        csr: PathBuf,
        /// Where to write the certificate and the root (PEM; default: stdout).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The root CA private key, when it is kept offline.
        #[arg(long, value_name = "PATH")]
        root_key: Option<PathBuf>,
    },
    /// Finish joining a service (after `init --join` and `ca sign-instance`): install
    /// this instance's issuing CA certificate and make its TLS server certificate.
    Install {
        #[command(flatten)]
        dir: DirArg,
        /// The certificate from `ca sign-instance` (PEM).
        cert: PathBuf,
        /// Host name or IP address of this instance's TLS server certificate; repeat for
        /// several. Default: localhost and 127.0.0.1.
        #[arg(long = "server-name")]
        server_names: Vec<String>,
    },
    /// Trust an external CA for device certificates (just-in-time registration).
    #[command(subcommand)]
    Trust(TrustCommand),
    /// Write the CA chain (current issuing CA, previous ones still valid, root), PEM.
    Export {
        #[command(flatten)]
        dir: DirArg,
        /// Output file (default: stdout).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// `certbound ca trust ...`
#[derive(Debug, Subcommand)]
pub enum TrustCommand {
    /// Trust a partner CA. With --jit-group, a device presenting a certificate from
    /// it (device id = its CN, sent in full as x5chain) is registered into that group
    /// on first use; without it such devices are refused. Kept in the store: every
    /// instance of the service trusts it within a second.
    Add {
        #[command(flatten)]
        dir: DirArg,
        /// The CA certificate, PEM.
        ca: PathBuf,
        /// A name for it (default: the file name without extension).
        #[arg(long)]
        name: Option<String>,
        /// Group its devices join on first use.
        #[arg(long)]
        jit_group: Option<String>,
    },
    /// List trusted external CAs.
    List {
        #[command(flatten)]
        dir: DirArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop trusting an external CA (on every instance, within a second).
    Remove {
        #[command(flatten)]
        dir: DirArg,
        #[command(flatten)]
        name: super::TrustName,
    },
}

/// `certbound claim ...`
#[derive(Debug, Subcommand)]
pub enum ClaimCommand {
    /// Make a claim certificate for a production line: devices holding it send a CSR
    /// for their own key (EST /.well-known/est/simpleenroll, CoAP /sen) and get their
    /// own certificate, until the uses or the lifetime run out. Every use is audited.
    ///
    /// Example:
    ///   certbound claim create --group sensors --uses 500 --ttl 7d --id-pattern "sensor-*" --out claim/
    #[command(verbatim_doc_comment)]
    Create {
        #[command(flatten)]
        dir: DirArg,
        /// Group the enrolled devices join.
        #[arg(long)]
        group: String,
        /// How many devices may enroll with it.
        #[arg(long)]
        uses: u64,
        /// Lifetime: seconds, or with a unit: 90s, 30m, 12h, 7d.
        #[arg(long, default_value = "7d")]
        ttl: String,
        /// Device ids must match this glob (`*` = any run of characters).
        #[arg(long)]
        id_pattern: Option<String>,
        /// File with the allowed device ids, one per line.
        #[arg(long)]
        allowlist: Option<PathBuf>,
        /// Where to write the claim key and certificate.
        #[arg(long, default_value = "./claim")]
        out: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List claims with their uses left.
    List {
        #[command(flatten)]
        dir: DirArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a claim: no further enrollments with it.
    Revoke {
        #[command(flatten)]
        dir: DirArg,
        #[command(flatten)]
        id: super::ClaimId,
    },
}
