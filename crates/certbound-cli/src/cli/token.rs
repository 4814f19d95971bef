//! `certbound token ...`: request a token as a device, inspect any token.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Subcommand, ValueEnum};

use super::DirArg;

/// `certbound token ...`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Request a token as a device over CoAP (for debugging). Prints the token in hex.
    Request {
        #[command(flatten)]
        dir: DirArg,
        /// The device's private key (PKCS#8 PEM).
        #[arg(long)]
        device_key: PathBuf,
        /// The device's certificate chain (PEM, leaf first).
        #[arg(long)]
        device_cert: PathBuf,
        /// The API the token is for.
        #[arg(long)]
        aud: String,
        /// Scopes to ask for (space separated); default: everything granted.
        #[arg(long)]
        scope: Option<String>,
        /// Broker CoAP address (default: coap.listen of the data directory's config).
        #[arg(long)]
        broker: Option<SocketAddr>,
        /// Broker issuer id (default: from the data directory's config).
        #[arg(long)]
        issuer_id: Option<String>,
        /// Send the whole certificate chain (x5chain) instead of its thumbprint (x5t).
        #[arg(long)]
        chain: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Decode a token, show its claims, and check it.
    Inspect {
        /// The token: hex, base64url, or a path to a file holding it (raw or text).
        token: String,
        /// Verification keys as a JWKS file (e.g. from `certbound keys export --format jwks`).
        #[arg(long, conflicts_with = "key")]
        jwks: Option<PathBuf>,
        /// Verification keys as a COSE key set file, or one public key in PEM.
        #[arg(long)]
        key: Option<PathBuf>,
        /// Expected audience (checked when given).
        #[arg(long)]
        aud: Option<String>,
        /// Expected issuer (checked when given).
        #[arg(long)]
        iss: Option<String>,
        /// Check as of this Unix time instead of now.
        #[arg(long)]
        now: Option<u64>,
        /// Allowed clock skew in seconds.
        #[arg(long, default_value_t = 60)]
        leeway: u64,
        /// Which rules to hold the token to: certbound (a certbound access token: typ,
        /// exp and cnf required, as verifiers take it) or generic (any CWT or JWT, like
        /// jwt.io: signature, exp/nbf/iat when present, --aud/--iss when given; typ and
        /// cnf are shown, not required).
        #[arg(long, value_enum, default_value_t = InspectProfile::Certbound)]
        profile: InspectProfile,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `certbound token inspect --profile`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InspectProfile {
    /// A certbound access token (strict).
    Certbound,
    /// Any signed CWT (RFC 8392) or JWT (RFC 7519), by its signature and claims.
    Generic,
}
