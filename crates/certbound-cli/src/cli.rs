//! Command-line definitions (clap derive).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod algs;
mod apikey;
mod attrs;
mod device;
mod grants;
mod lifecycle;
mod migrate;
mod oauth;
mod prune;
mod roles;
mod target;
mod token;
pub use algs::{ApiSetAlgArgs, SigningAlg};
pub use apikey::ApiKeyCommand;
pub use attrs::{
    ApiClaimsArgs, ApiSetClaimsArgs, AttrCommand, AttrHolderArgs, AttrSetArgs, AttrShowArgs,
    AttrUnsetArgs,
};
pub use device::{BulkArgs, DeviceCommand};
pub use grants::{ApiSetTtlArgs, GroupDeleteArgs, GroupGrantArgs, GroupRevokeGrantArgs};
pub use lifecycle::{CaCommand, ClaimCommand, TrustCommand};
pub use migrate::MigrateArgs;
pub use oauth::{ClientCommand, KeyFormat, KeysCommand, RegistrationTokenCommand, TokenFormat};
pub use prune::PruneArgs;
pub use roles::{RoleCommand, RoleHolderArgs};
pub use target::{
    ApiKeyName, ClaimId, ClientRef, DeviceId, GroupName, Kid, RegistrationTokenId, RoleName,
    ServiceRef, TrustName,
};
pub use token::{InspectProfile, TokenCommand};

/// certbound: certificate-bound access tokens for IoT fleets and backend services.
///
/// Operators create a CA, register APIs and groups, and provision devices; the
/// broker (`certbound serve`) hands devices compact CWT tokens bound to their
/// certificate key; backends verify them offline.
///
/// Quick start:
///   certbound init --dir ./cb --issuer-id https://auth.example.com
///   certbound api create --dir ./cb --id https://telemetry.example.com --scopes "telemetry:write"
///   certbound group create --dir ./cb --name sensors --grant "https://telemetry.example.com=telemetry:write"
///   certbound device provision --dir ./cb --id sensor-1 --group sensors --out ./devices
///   certbound serve --dir ./cb
///
/// Or see everything at once: `certbound demo`.
#[derive(Debug, Parser)]
#[command(name = "certbound", version, verbatim_doc_comment)]
pub struct Cli {
    /// More log output (-v info, -vv debug, -vvv trace). Logs go to stderr.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log output format.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The data directory option shared by every command.
#[derive(Debug, Clone, Args)]
pub struct DirArg {
    /// Data directory (CA, keys, config, database).
    #[arg(long, env = "CERTBOUND_DIR", default_value = "./certbound-data")]
    pub dir: PathBuf,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a data directory: root and issuing CA, token signing key, config, database.
    Init {
        #[command(flatten)]
        dir: DirArg,
        /// The broker's issuer id: `iss` of every token (a URI, e.g. https://auth.example.com).
        /// Not with --join (the service's, from the store).
        #[arg(long, required_unless_present = "join", conflicts_with = "join")]
        issuer_id: Option<String>,
        /// Host name or IP address the server certificate (HTTPS, embedded MQTT) is valid
        /// for; repeat for several. Default: localhost and 127.0.0.1.
        #[arg(long = "server-name")]
        server_names: Vec<String>,
        /// Write the root CA private key to this file (mode 0600) instead of
        /// DIR/pki/root-ca.key.pem, and move it offline: serving and provisioning never
        /// need it, only `ca rotate-issuing --root-key`.
        #[arg(long, value_name = "PATH")]
        root_key_out: Option<PathBuf>,
        /// Encrypt the private keys at rest (AES-256-GCM) with the key in this file
        /// (base64 of 32 random bytes, e.g. `openssl rand -base64 32`); it is named in
        /// `[keys] encryption_key_file`. The environment variable
        /// CERTBOUND_KEY_ENCRYPTION_KEY works too (then nothing is written to the config).
        #[arg(long, value_name = "PATH")]
        encryption_key_file: Option<PathBuf>,
        /// The registry database, written to `[store] url`: a PostgreSQL URL
        /// (postgres://user@host:port/db) for several instances acting as one
        /// service. Default: SQLite, DIR/certbound.db.
        #[arg(long = "store", value_name = "URL")]
        store_url: Option<String>,
        /// Add an instance to the service whose store --store names, with keys of its
        /// own (no private key is copied): a token signing key, published at once, and
        /// an issuing CA request, DIR/pki/issuing-ca.csr.pem. Then, where the root key
        /// is: `certbound ca sign-instance`; here: `certbound ca install`.
        #[arg(long, requires = "store_url", conflicts_with = "root_key_out")]
        join: bool,
        /// With --join: this instance's name, in its issuing CA's name. Default: the
        /// data directory's name.
        #[arg(long, requires = "join")]
        name: Option<String>,
        /// With --join: seconds before this instance's signing key signs (it is
        /// published at once, so verifiers caching key sets learn it first).
        #[arg(long, requires = "join", default_value_t = 60, value_name = "SECS")]
        key_grace: u64,
    },
    /// Run the broker until Ctrl-C: CoAP token endpoint, and the embedded MQTT server
    /// (or a connection to an external one, per certbound.toml).
    Serve {
        #[command(flatten)]
        dir: DirArg,
        /// UDP address for CoAP, overriding `coap.listen` in certbound.toml.
        #[arg(long)]
        coap_listen: Option<SocketAddr>,
        /// TCP address of the embedded MQTT server, overriding `mqtt.listen`.
        #[arg(long)]
        mqtt_listen: Option<SocketAddr>,
        /// TCP address of the HTTPS server (OAuth, discovery, status lists, admin API),
        /// overriding `https.listen`.
        #[arg(long)]
        https_listen: Option<SocketAddr>,
    },
    /// Manage backend-service clients (OAuth 2.0 client credentials).
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage API keys (a header credential for jobs that cannot do OAuth): create,
    /// list, revoke. A key is exchanged at /oauth/token for a short-lived token.
    #[command(subcommand)]
    Apikey(ApiKeyCommand),
    /// Manage APIs (the resource servers tokens are for): create, list, set-ttl, set-alg,
    /// set-claims, claims.
    #[command(subcommand)]
    Api(ApiCommand),
    /// Attributes of devices, groups and clients (for custom claims and
    /// {attr.NAME} scopes): set, unset, show.
    #[command(subcommand)]
    Attr(AttrCommand),
    /// Manage groups (sets of grants given to devices): create, list, grant, revoke-grant, delete.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Manage roles (named sets of permissions across APIs, given to clients and groups):
    /// create, list, grant, revoke-grant, assign, unassign, delete.
    #[command(subcommand)]
    Role(RoleCommand),
    /// Manage devices: provision, list, show, suspend, resume, revoke.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Provision identities for backend services (e.g. a telemetry ingester).
    #[command(subcommand)]
    Service(ServiceCommand),
    /// Run a telemetry backend: subscribe to every device's telemetry over MQTT,
    /// verify each message offline (token, audience, scope, proof of possession,
    /// sequence numbers) and print the accepted ones as JSON lines.
    Ingest(IngestArgs),
    /// Request (as a device) or inspect tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Token signing keys: rotate, list, export the public keys; encrypt private keys at rest.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Show the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Certificate authority operations: show, rotate the issuing CA, export.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Provisioning claims: batch credentials for production lines (first-boot enrollment).
    #[command(subcommand)]
    Claim(ClaimCommand),
    /// Write the certificate revocation lists (CRLs): by default one PEM CRL per issuing CA
    /// that is still valid (the current one first; after `ca rotate-issuing` the previous CA's
    /// certificates stay valid, and a revoked one is listed in the CRL signed by its own issuer),
    /// concatenated, as `openssl verify -crl_check -CRLfile` reads them. A running broker serves
    /// the same at GET /crls (and GET /crl, GET /crl/<serial> per CA, DER).
    Crl {
        #[command(flatten)]
        dir: DirArg,
        /// Output file (default: stdout).
        #[arg(long)]
        out: Option<PathBuf>,
        /// DER instead of PEM (one CRL: the current issuing CA's, or the one --ca names).
        #[arg(long)]
        der: bool,
        /// Only the CRL of the issuing CA with this serial (hex, as `certbound ca show` prints it).
        #[arg(long, value_name = "SERIAL")]
        ca: Option<String>,
    },
    /// Print the policy (APIs, groups, clients, API keys and their grants) as TOML:
    /// `certbound export > policy.toml`. Devices, certificates, secrets and keys are not policy. See docs/policy.md.
    Export {
        #[command(flatten)]
        dir: DirArg,
    },
    /// Show what `apply` would change to make the store match a policy file.
    /// Exit status: 0 nothing to do, 2 changes pending, 1 error.
    Plan {
        #[command(flatten)]
        dir: DirArg,
        /// The policy file (TOML; `${ENV_VAR}` is substituted, `$${` is a literal `${`).
        file: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make the store match a policy file, atomically (all changes or none). Clients
    /// absent from the file are deleted and API keys absent from it revoked; new
    /// clients' secrets and new API keys are printed once.
    Apply {
        #[command(flatten)]
        dir: DirArg,
        /// The policy file (TOML; `${ENV_VAR}` is substituted, `$${` is a literal `${`).
        file: PathBuf,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        /// Also remove groups that devices belong to and APIs with unexpired tokens.
        #[arg(long)]
        prune: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run everything in one process on embedded defaults in a temporary directory:
    /// a broker (CoAP, embedded MQTT, HTTPS), a fleet of simulated devices over MQTT
    /// and CoAP sending signed telemetry to a backend that verifies every message,
    /// a certificate renewal wave, one revocation, and a backend service's JWT.
    Demo {
        /// Number of simulated devices (half MQTT, half CoAP).
        #[arg(long, default_value_t = 200)]
        devices: usize,
        /// How long the fleet runs (at least 30s, so the renewal wave happens).
        #[arg(long, default_value = "30s", value_parser = firmware_sim::options::parse_duration)]
        duration: std::time::Duration,
        /// Keep the data directory here instead of a temporary one.
        #[arg(long)]
        keep: Option<PathBuf>,
    },
    Prune(PruneArgs),
    Migrate(MigrateArgs),
    /// Readiness checks on a data directory: CA and device certificate expiry, token
    /// lifetimes, broad scopes, signing key age, key file permissions, revoked devices,
    /// clock skew. Exit code 0 = nothing above info, 1 = warnings, 2 = errors.
    Doctor {
        #[command(flatten)]
        dir: DirArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Report certificates expiring within this many days.
        #[arg(long, default_value_t = 30)]
        expiry_days: u64,
    },
    /// Print a one-time sign-in link to the operator console (/ui), valid for --ttl.
    UiLogin(crate::commands::ui_login::UiLoginArgs),
}

/// `certbound api ...`
#[derive(Debug, Subcommand)]
pub enum ApiCommand {
    /// Register an API.
    Create {
        #[command(flatten)]
        dir: DirArg,
        /// API identifier, used as the token audience (e.g. https://telemetry.example.com).
        #[arg(long)]
        id: String,
        /// The API's permissions, space separated (e.g. "telemetry:write firmware:read").
        #[arg(long)]
        scopes: String,
        /// Token lifetime in seconds (5..86400; 3600 or less recommended).
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
        /// Token format for backend-service clients: cwt (compact CBOR) or jwt (RFC 9068).
        /// Devices always get CWTs.
        #[arg(long, value_enum, default_value_t = TokenFormat::Cwt)]
        format: TokenFormat,
        /// JWS algorithm of the API's JWTs: ES256 (default), or for --format jwt
        /// RS256, PS256 or EdDSA for consumers that cannot verify ES256 (CWTs are
        /// always ES256). The key is created if none exists and published in the JWKS.
        #[arg(long, value_enum, ignore_case = true)]
        alg: Option<SigningAlg>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List APIs.
    List {
        #[command(flatten)]
        dir: DirArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    SetTtl(ApiSetTtlArgs),
    SetAlg(ApiSetAlgArgs),
    SetClaims(ApiSetClaimsArgs),
    Claims(ApiClaimsArgs),
}

/// `certbound group ...`
#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Create a group with grants.
    Create {
        #[command(flatten)]
        dir: DirArg,
        /// Group name.
        #[arg(long)]
        name: String,
        /// A grant "API=scope1 scope2"; repeat for several APIs. Scopes may use {device}.
        #[arg(long = "grant", required = true)]
        grants: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List groups and their grants.
    List {
        #[command(flatten)]
        dir: DirArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    Grant(GroupGrantArgs),
    RevokeGrant(GroupRevokeGrantArgs),
    Delete(GroupDeleteArgs),
}

/// `certbound service ...`
#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Create a key and a service certificate (SAN urn:certbound:service:<NAME>),
    /// recorded so that it can be listed and revoked.
    /// Writes <OUT>/<NAME>.key.pem (0600) and <OUT>/<NAME>.cert.pem.
    Provision {
        #[command(flatten)]
        dir: DirArg,
        /// Service name (same rules as device ids).
        #[arg(long)]
        name: String,
        /// Where to write the key and certificate.
        #[arg(long, default_value = "./services")]
        out: PathBuf,
        /// Certificate lifetime in days.
        #[arg(long, default_value_t = 90)]
        days: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the service certificates certbound issued (revoked ones too).
    List {
        #[command(flatten)]
        dir: DirArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a service's certificates (by service name: all of them; or one by
    /// serial). A running broker refuses them at HTTPS within a second (TLS
    /// handshake and /oauth/*).
    Revoke {
        #[command(flatten)]
        dir: DirArg,
        #[command(flatten)]
        service: ServiceRef,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `certbound ingest`
#[derive(Debug, Args)]
pub struct IngestArgs {
    #[command(flatten)]
    pub dir: DirArg,
    /// MQTT server (host:port); default: the embedded server's `mqtt.listen`, or `mqtt.url`.
    #[arg(long)]
    pub mqtt: Option<String>,
    /// The service's certificate chain (from `certbound service provision`).
    #[arg(long)]
    pub service_cert: PathBuf,
    /// The service's private key.
    #[arg(long)]
    pub service_key: PathBuf,
    /// The API identifier this backend is (tokens must name it in aud).
    #[arg(long)]
    pub audience: String,
    /// Scope every message's token must carry.
    #[arg(long, default_value = "telemetry:write")]
    pub scope: String,
    /// Verification keys as a JWKS file; default: the data directory's signing keys.
    #[arg(long)]
    pub jwks: Option<PathBuf>,
    /// Join this shared-subscription group so several ingesters split the load.
    #[arg(long)]
    pub share_group: Option<String>,
    /// Stop after this many accepted messages.
    #[arg(long)]
    pub max_messages: Option<u64>,
    /// The broker's HTTPS base URL, where revocation status lists are fetched
    /// (`<url>/status/`); default: `https.public_url`, or `https://` + `https.listen`.
    #[arg(long)]
    pub broker_url: Option<String>,
    /// SQLite file keeping every device's replay window across restarts;
    /// default: `<dir>/ingest/replay-<share group or "default">.sqlite3`.
    #[arg(long)]
    pub state: Option<PathBuf>,
}

/// `certbound audit ...`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Show the latest audit events. Every field is bounded (256 bytes, detail 1 KiB, longer ones
    /// end in `…[truncated, N bytes]`) and control characters are shown escaped (`\n`, `\u{1b}`),
    /// so no field can forge lines or send terminal escapes. Refusals of unauthenticated requests
    /// are aggregated: the first per peer and reason in each `[audit] aggregate_secs` window,
    /// then one row with `repeated=N`.
    Tail {
        #[command(flatten)]
        dir: DirArg,
        /// Only events about this device.
        #[arg(long)]
        device: Option<String>,
        /// How many events.
        #[arg(long, short = 'n', default_value_t = 20)]
        lines: u32,
        /// Print JSON lines.
        #[arg(long)]
        json: bool,
        /// Keep printing new events as they are appended, until Ctrl-C.
        #[arg(long, short = 'f')]
        follow: bool,
    },
}
