//! Commands of backend-service clients and signing keys.

use std::path::PathBuf;

use clap::{Subcommand, ValueEnum};

use super::DirArg;

/// Token formats of an API.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TokenFormat {
    /// CBOR Web Token (RFC 8392), COSE_Sign1 ES256.
    Cwt,
    /// JWT access token (RFC 9068), ES256.
    Jwt,
}

impl TokenFormat {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenFormat::Cwt => "cwt",
            TokenFormat::Jwt => "jwt",
        }
    }
}

/// `certbound client ...`
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a backend service with exactly one authentication method. Prints its
    /// client_id and, for secret methods, a secret — shown this once (only a hash is
    /// stored).
    ///
    /// Example:
    ///   certbound client create --name reporting --grant "https://telemetry.example.com=telemetry:read"
    #[command(verbatim_doc_comment)]
    Create {
        #[command(flatten)]
        dir: DirArg,
        /// Client name (unique).
        #[arg(long)]
        name: String,
        /// What it may ask for: "<API identifier>=<scope> <scope>" (repeatable).
        #[arg(long = "grant")]
        grants: Vec<String>,
        /// Authenticate by TLS client certificate (RFC 8705 tls_client_auth) whose
        /// subject DN is this, e.g. "CN=reporting"; no secret is made. The
        /// certificate must chain to the certbound CA (a service certificate) or to
        /// a CA of [https] client_ca_file.
        #[arg(long, group = "method")]
        tls_subject: Option<String>,
        /// Authenticate by TLS client certificate (tls_client_auth) carrying this
        /// SAN: dns:<name>, uri:<uri>, ip:<address> or email:<address>.
        #[arg(long, group = "method")]
        tls_san: Option<String>,
        /// Authenticate with exactly this (typically self-signed) certificate
        /// (RFC 8705 self_signed_tls_client_auth): its SHA-256 thumbprint is pinned.
        #[arg(long, group = "method", value_name = "CERT_PEM")]
        self_signed_cert: Option<PathBuf>,
        /// The secret method: client_secret (Basic or form, the default),
        /// client_secret_basic or client_secret_post (that one only); or
        /// private_key_jwt with --jwks-file or --jwks-uri.
        #[arg(long, group = "method", value_name = "METHOD")]
        auth_method: Option<String>,
        /// Authenticate with a signed JWT assertion (RFC 7523 private_key_jwt)
        /// verified with the public keys of this JWK Set file ({"keys":[...]};
        /// EC P-256, RSA >= 2048 bits or Ed25519; private members are refused).
        #[arg(
            long,
            value_name = "FILE",
            conflicts_with_all = ["tls_subject", "tls_san", "self_signed_cert", "jwks_uri"]
        )]
        jwks_file: Option<PathBuf>,
        /// private_key_jwt with the JWK Set fetched from this https:// URL (it
        /// must be under [oauth] jwks_uri_allowed_prefixes of certbound.toml).
        #[arg(
            long,
            value_name = "URL",
            conflicts_with_all = ["tls_subject", "tls_san", "self_signed_cert"]
        )]
        jwks_uri: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Issue an initial access token for dynamic client registration
    /// (`POST /oauth/register`, RFC 7591). Printed once; only its hash is stored.
    /// Clients registered with it get at most its grants and one of its methods.
    ///
    /// Example:
    ///   certbound client registration-token --grant "https://api.example.com=read write" \
    ///       --methods private_key_jwt,tls_client_auth --uses 10 --expires 7d
    ///   certbound client registration-token --role telemetry-writer --methods private_key_jwt
    #[command(verbatim_doc_comment, args_conflicts_with_subcommands = true)]
    RegistrationToken {
        #[command(subcommand)]
        action: Option<RegistrationTokenCommand>,
        #[command(flatten)]
        dir: DirArg,
        /// The most a registered client may get: "<API identifier>=<scope> <scope>"
        /// (repeatable).
        #[arg(long = "grant")]
        grants: Vec<String>,
        /// A role whose grants (as of now) a registered client may get too
        /// (repeatable; see `certbound role list`).
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Methods a registered client may use, comma separated (private_key_jwt,
        /// tls_client_auth, self_signed_tls_client_auth, client_secret_basic,
        /// client_secret_post).
        #[arg(long, value_delimiter = ',', default_value = "private_key_jwt")]
        methods: Vec<String>,
        /// How many clients it may register.
        #[arg(long, default_value_t = 1)]
        uses: u64,
        /// Lifetime: seconds, or a number with s, m, h or d (e.g. 7d).
        #[arg(long, default_value = "1d")]
        expires: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List clients (never their secrets).
    List {
        #[command(flatten)]
        dir: DirArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Replace a client's secret; the old one stops working at once.
    RotateSecret {
        #[command(flatten)]
        dir: DirArg,
        #[command(flatten)]
        client: super::ClientRef,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete a client: no new tokens, and its tokens turn inactive (introspection
    /// at once, offline verifiers within the status-list TTL).
    Delete {
        #[command(flatten)]
        dir: DirArg,
        #[command(flatten)]
        client: super::ClientRef,
    },
}

/// `certbound client registration-token list|revoke`.
#[derive(Debug, Subcommand)]
pub enum RegistrationTokenCommand {
    /// List initial access tokens (never the tokens): grants, methods, uses left,
    /// expiry.
    List {
        #[command(flatten)]
        dir: DirArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke an initial access token at once (clients registered with it stay).
    Revoke {
        #[command(flatten)]
        dir: DirArg,
        #[command(flatten)]
        id: super::RegistrationTokenId,
    },
}

/// `certbound keys ...`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Add a new signing key: published at once, signing after --grace seconds; the
    /// old keys are retired (unpublished and deleted) once no token they signed can
    /// still be valid. A running `certbound serve` picks the change up by itself.
    Rotate {
        #[command(flatten)]
        dir: DirArg,
        /// Seconds between publishing the new key and signing with it. Keep it above
        /// the key-set cache lifetime (60 s) so verifiers know the key first.
        #[arg(long, default_value_t = 300)]
        grace: u64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Encrypt every plaintext private key at rest (issuing CA, root CA when online,
    /// token signing keys) with the configured key encryption key
    /// (CERTBOUND_KEY_ENCRYPTION_KEY or `[keys] encryption_key_file`). Each file is
    /// replaced atomically; running it again changes nothing.
    Encrypt {
        #[command(flatten)]
        dir: DirArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Retire another instance's signing key (an instance taken out of service
    /// without rotating first): it stops being published once no token it signed can
    /// still be valid. This instance's own keys are rotated instead (`keys rotate`).
    Retire {
        #[command(flatten)]
        dir: DirArg,
        #[command(flatten)]
        kid: super::Kid,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show the key ring: when each key was published, signs, and retires, and
    /// which keys this instance holds (the others are other instances' keys).
    List {
        #[command(flatten)]
        dir: DirArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the public token-verification keys.
    Export {
        #[command(flatten)]
        dir: DirArg,
        /// jwks (JSON Web Key Set) or cose (CBOR COSE_KeySet, written as raw bytes).
        #[arg(long, value_enum, default_value_t = KeyFormat::Jwks)]
        format: KeyFormat,
        /// Write to this file instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Key set formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KeyFormat {
    /// JSON Web Key Set (RFC 7517).
    Jwks,
    /// COSE_KeySet (RFC 9052 §7), CBOR.
    Cose,
}
