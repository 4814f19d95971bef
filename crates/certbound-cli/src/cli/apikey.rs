//! `certbound apikey ...`: API keys for jobs that can only send a header.

use clap::Subcommand;

use super::DirArg;

/// `certbound apikey ...`
#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create an API key and print it — shown this once (only its SHA-256 is stored).
    /// The holder exchanges it at POST /oauth/token (header `X-API-Key: cbk_...`,
    /// grant_type=client_credentials, audience=<API>) for a short-lived token, or a
    /// backend checks it at POST /oauth/introspect (token=cbk_...).
    ///
    /// Example:
    ///   certbound apikey create --name nightly-export \
    ///     --grant "https://telemetry.example.com=telemetry:read" --expires 90d
    #[command(verbatim_doc_comment)]
    Create {
        #[command(flatten)]
        dir: DirArg,
        /// Key name (unique among active keys; A-Z a-z 0-9 . _ -). Tokens it is
        /// exchanged for have sub and client_id `cb_apikey:<name>`.
        #[arg(long)]
        name: String,
        /// What it may ask for: "<API identifier>=<scope> <scope>" (repeatable, at
        /// least one; never the admin API).
        #[arg(long = "grant", required = true)]
        grants: Vec<String>,
        /// Lifetime: 90s, 30m, 12h or 90d. Default: no expiry (the doctor warns).
        #[arg(long, value_name = "DURATION")]
        expires: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List API keys: name, grants, created, expires, last used, state. Never the key
    /// nor its hash.
    List {
        #[command(flatten)]
        dir: DirArg,
        /// Include revoked keys.
        #[arg(long)]
        all: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke an API key: its next use is refused on every instance, and the tokens
    /// it was exchanged for turn inactive. Final.
    Revoke {
        #[command(flatten)]
        dir: DirArg,
        #[command(flatten)]
        name: super::ApiKeyName,
    },
}
