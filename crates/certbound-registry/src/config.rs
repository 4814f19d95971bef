//! `DIR/certbound.toml`: the broker configuration, with documented defaults
//! and one clear error per bad field.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::RegistryError;

/// Name of the configuration file inside the data directory.
pub const CONFIG_FILE: &str = "certbound.toml";

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[broker]`
    pub broker: BrokerSection,
    /// `[coap]`
    #[serde(default)]
    pub coap: CoapSection,
    /// `[mqtt]`
    #[serde(default)]
    pub mqtt: MqttSection,
    /// `[pki]`
    #[serde(default)]
    pub pki: PkiSection,
    /// `[limits]`
    #[serde(default)]
    pub limits: LimitsSection,
    /// `[https]`
    #[serde(default)]
    pub https: HttpsSection,
    /// `[status]`
    #[serde(default)]
    pub status: StatusSection,
    /// `[rate_limits]`
    #[serde(default)]
    pub rate_limits: RateLimitsSection,
    /// `[audit]`
    #[serde(default)]
    pub audit: AuditSection,
    /// `[keys]`
    #[serde(default)]
    pub keys: KeysSection,
    /// `[store]`
    #[serde(default)]
    pub store: StoreSection,
    /// `[oauth]`
    #[serde(default)]
    pub oauth: OAuthSection,
    /// `[ui]`
    #[serde(default)]
    pub ui: UiSection,
}

/// `[store]`: where the registry lives.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// `postgres://user@host:port/db` for a cluster of instances; default
    /// (absent): SQLite, `certbound.db` in the data directory. A password
    /// may come from `PGPASSWORD` instead of the URL.
    #[serde(default)]
    pub url: Option<String>,
}

impl std::fmt::Debug for StoreSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreSection")
            .field("url", &self.url.as_deref().map(crate::store::redact_url))
            .finish()
    }
}

/// `[broker]`: identity and clock.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerSection {
    /// The issuer id (`iss` of every token; devices name it in `aud`).
    pub issuer_id: String,
    /// Allowed clock skew between broker and devices, seconds. Default 60.
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
}

/// `[coap]`: the CoAP token endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoapSection {
    /// Serve CoAP. Default true.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// UDP address. Default 127.0.0.1:5683.
    #[serde(default = "default_coap_listen")]
    pub listen: String,
    /// Requests remembered (with their answers) to answer CoAP retransmissions
    /// without processing them twice. Size it for the peak request rate times
    /// 45 s (CoAP's MAX_TRANSMIT_SPAN). Default 262 144 (about 5 800 requests/s).
    #[serde(default = "default_coap_dedup_entries")]
    pub dedup_entries: usize,
    /// Bytes those remembered requests may take at most (128 bytes plus the
    /// answer each); the oldest are forgotten first. Default 64 MiB.
    #[serde(default = "default_coap_dedup_bytes")]
    pub dedup_bytes: usize,
    /// Amplification limit (RFC 7252 §11.3): an answer to a source address
    /// that has not echoed an Echo option (RFC 9175) is at most this many
    /// times the request; larger answers become 4.01 with an Echo. 0 = off.
    /// Default 3.
    #[serde(default = "default_coap_amplification_factor")]
    pub amplification_factor: usize,
    /// Seconds an Echo value stays acceptable. Default 60.
    #[serde(default = "default_coap_echo_lifetime")]
    pub echo_lifetime_secs: u64,
    /// Seconds an address counts as verified after a fresh Echo. Default 300.
    #[serde(default = "default_coap_verified_lifetime")]
    pub verified_lifetime_secs: u64,
    /// Verified addresses remembered at most. Default 65 536.
    #[serde(default = "default_coap_verified_addresses")]
    pub verified_addresses: usize,
    /// CoAP requests processed at once at most; more get 5.03 Service
    /// Unavailable with Max-Age 2 (NON requests are dropped). Default 512.
    #[serde(default = "default_coap_max_in_flight")]
    pub max_in_flight: usize,
}

fn default_coap_dedup_entries() -> usize {
    262_144
}

fn default_coap_dedup_bytes() -> usize {
    64 * 1024 * 1024
}

fn default_coap_amplification_factor() -> usize {
    3
}

fn default_coap_echo_lifetime() -> u64 {
    60
}

fn default_coap_verified_lifetime() -> u64 {
    300
}

fn default_coap_verified_addresses() -> usize {
    65_536
}

fn default_coap_max_in_flight() -> usize {
    512
}

impl Default for CoapSection {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: default_coap_listen(),
            dedup_entries: default_coap_dedup_entries(),
            dedup_bytes: default_coap_dedup_bytes(),
            amplification_factor: default_coap_amplification_factor(),
            echo_lifetime_secs: default_coap_echo_lifetime(),
            verified_lifetime_secs: default_coap_verified_lifetime(),
            verified_addresses: default_coap_verified_addresses(),
            max_in_flight: default_coap_max_in_flight(),
        }
    }
}

/// How the broker takes part in MQTT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MqttMode {
    /// Run certbound's own MQTT server (mTLS, per-device topic ACL) and answer on it.
    Embedded,
    /// Connect as a client to an existing MQTT server (Mosquitto, EMQX, ...).
    External,
    /// No MQTT.
    Off,
}

/// `[mqtt]`: the MQTT transport.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttSection {
    /// embedded | external | off. Default embedded.
    #[serde(default = "default_mqtt_mode")]
    pub mode: MqttMode,
    /// Embedded server address. Default 127.0.0.1:8883.
    #[serde(default = "default_mqtt_listen")]
    pub listen: String,
    /// External server, `mqtts://host:port`.
    #[serde(default)]
    pub url: Option<String>,
    /// External server's CA bundle (PEM); default: certbound's own CA chain.
    #[serde(default)]
    pub server_ca: Option<String>,
    /// Join the shared subscription group `certbound` so several brokers split
    /// the requests. Default true.
    #[serde(default = "default_true")]
    pub shared_subscription: bool,
    /// MQTT version the broker speaks to the server: "5" (default) or
    /// "3.1.1". With 5, requests from v5 devices are answered on their
    /// response topic with their correlation data. The embedded server
    /// speaks both to devices whatever this says.
    #[serde(default = "default_mqtt_protocol")]
    pub protocol: String,
    /// Embedded server: the API identifier (`aud`) of the access tokens an
    /// MQTT 5 client may present with Authentication Method `ace` (RFC
    /// 9431) for topic rights from their scope (`pub:<filter>`,
    /// `sub:<filter>`). Register an API with this identifier to grant such
    /// rights. Default `urn:certbound:mqtt`.
    #[serde(default = "default_mqtt_audience")]
    pub audience: String,
    /// Requests the broker handles at once over MQTT; more are answered
    /// "temporarily unavailable" (claims: dropped) and counted in
    /// `certbound_requests_shed_total`. Default 256.
    #[serde(default = "default_mqtt_max_handlers")]
    pub max_handlers: usize,
    /// Embedded server: most connections one device (or claim) certificate
    /// identity may hold at once (a reconnect with the same client id takes
    /// the old one over and does not count). Default 4.
    #[serde(default = "default_mqtt_max_connections_per_device")]
    pub max_connections_per_device: usize,
    /// Embedded server: the same for a service identity (one connection per
    /// broker instance). Default 64.
    #[serde(default = "default_mqtt_max_connections_per_service")]
    pub max_connections_per_service: usize,
    /// Embedded server: most subscriptions one MQTT session may hold. Default 32.
    #[serde(default = "default_mqtt_max_subscriptions_per_session")]
    pub max_subscriptions_per_session: usize,
}

impl Default for MqttSection {
    fn default() -> Self {
        Self {
            mode: default_mqtt_mode(),
            listen: default_mqtt_listen(),
            url: None,
            server_ca: None,
            shared_subscription: true,
            protocol: default_mqtt_protocol(),
            audience: default_mqtt_audience(),
            max_handlers: default_mqtt_max_handlers(),
            max_connections_per_device: default_mqtt_max_connections_per_device(),
            max_connections_per_service: default_mqtt_max_connections_per_service(),
            max_subscriptions_per_session: default_mqtt_max_subscriptions_per_session(),
        }
    }
}

/// Requests the MQTT client mode handles at once by default
/// (`[mqtt] max_handlers`).
pub const DEFAULT_MQTT_MAX_HANDLERS: usize = 256;

fn default_mqtt_max_handlers() -> usize {
    DEFAULT_MQTT_MAX_HANDLERS
}

fn default_mqtt_mode() -> MqttMode {
    MqttMode::Embedded
}
fn default_mqtt_protocol() -> String {
    "5".into()
}
fn default_mqtt_audience() -> String {
    "urn:certbound:mqtt".into()
}
fn default_mqtt_max_connections_per_device() -> usize {
    certbound_mqtt::DEFAULT_MAX_CONNECTIONS_PER_DEVICE
}
fn default_mqtt_max_connections_per_service() -> usize {
    certbound_mqtt::DEFAULT_MAX_CONNECTIONS_PER_SERVICE
}
fn default_mqtt_max_subscriptions_per_session() -> usize {
    certbound_mqtt::DEFAULT_MAX_SUBSCRIPTIONS_PER_SESSION
}
fn default_mqtt_listen() -> String {
    "127.0.0.1:8883".into()
}

/// `[pki]`: certificate profile.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PkiSection {
    /// Lifetime of device certificates, days. Default 90.
    #[serde(default = "default_device_days")]
    pub device_cert_days: u32,
    /// How many days after its certificate expired a device may still renew
    /// it (over CoAP, where no TLS handshake refuses the expired
    /// certificate). Default 7; 0 = never.
    #[serde(default = "default_renewal_grace")]
    pub renewal_grace_days: u32,
    /// Lifetime of renewed device certificates in seconds, overriding
    /// `device_cert_days` (very short-lived fleets, renewal tests). At least 60.
    #[serde(default)]
    pub device_cert_secs: Option<u64>,
}

fn default_renewal_grace() -> u32 {
    7
}

impl Default for PkiSection {
    fn default() -> Self {
        Self {
            device_cert_days: default_device_days(),
            renewal_grace_days: default_renewal_grace(),
            device_cert_secs: None,
        }
    }
}

/// `[limits]`: input bounds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    /// Largest accepted request, bytes. Default 8192.
    #[serde(default = "default_max_request")]
    pub max_request_bytes: usize,
    /// Most request nonces remembered for replay detection. Default 1 000 000.
    #[serde(default = "default_replay_capacity")]
    pub replay_cache_entries: usize,
}

impl Default for LimitsSection {
    fn default() -> Self {
        Self {
            max_request_bytes: default_max_request(),
            replay_cache_entries: default_replay_capacity(),
        }
    }
}

fn default_leeway() -> u64 {
    60
}
pub(crate) fn default_true() -> bool {
    true
}
fn default_coap_listen() -> String {
    "127.0.0.1:5683".into()
}
fn default_device_days() -> u32 {
    90
}
fn default_max_request() -> usize {
    8192
}
fn default_replay_capacity() -> usize {
    1_000_000
}

mod audit;
mod https;
mod keys;
mod oauth;
mod template;
mod ui;
pub use audit::AuditSection;
pub use https::{HttpsSection, RateLimitsSection, StatusSection};
pub use keys::{KEY_ENCRYPTION_KEY_ENV, KeysSection};
pub use oauth::OAuthSection;
pub use template::template;
pub use ui::UiSection;

impl Config {
    /// Reads and validates `DIR/certbound.toml`, and reads the key
    /// encryption key when one is configured (`[keys]`, or the environment
    /// variable `CERTBOUND_KEY_ENCRYPTION_KEY`).
    pub fn load(data_dir: &Path) -> Result<Self, RegistryError> {
        let file = data_dir.join(CONFIG_FILE);
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RegistryError::NotInitialised(data_dir.to_path_buf()));
            }
            Err(e) => return Err(RegistryError::io(&file)(e)),
        };
        let mut config = Self::parse(&text, &file)?;
        config.keys.resolve(data_dir, &file)?;
        Ok(config)
    }

    /// Parses and validates configuration text (`file` is used in messages).
    pub fn parse(text: &str, file: &Path) -> Result<Self, RegistryError> {
        let config: Config = toml::from_str(text).map_err(|e| RegistryError::ConfigSyntax {
            file: file.to_path_buf(),
            reason: e.to_string().trim().to_string(),
        })?;
        config.validate(file)?;
        Ok(config)
    }

    fn validate(&self, file: &Path) -> Result<(), RegistryError> {
        let bad = |field: &str, reason: String| RegistryError::Config {
            file: file.to_path_buf(),
            field: field.into(),
            reason,
        };
        if let Some(url) = &self.store.url
            && let Err(e) = crate::store::Backend::of_url(url)
        {
            return Err(bad("store.url", e.to_string()));
        }
        if self.broker.issuer_id.trim().is_empty() {
            return Err(bad(
                "broker.issuer_id",
                "must not be empty (e.g. \"https://auth.example.com\")".into(),
            ));
        }
        if let Err((field, reason)) = self.ui.check() {
            return Err(bad(field, reason));
        }
        if self.broker.leeway_secs > 600 {
            return Err(bad(
                "broker.leeway_secs",
                format!(
                    "is {} s; more than 600 s of clock skew defeats short token lifetimes",
                    self.broker.leeway_secs
                ),
            ));
        }
        if self.coap.listen.parse::<SocketAddr>().is_err() {
            return Err(bad(
                "coap.listen",
                format!(
                    "{:?} is not an IP:port address (e.g. \"127.0.0.1:5683\")",
                    self.coap.listen
                ),
            ));
        }
        if self.mqtt.listen.parse::<SocketAddr>().is_err() {
            return Err(bad(
                "mqtt.listen",
                format!(
                    "{:?} is not an IP:port address (e.g. \"127.0.0.1:8883\")",
                    self.mqtt.listen
                ),
            ));
        }
        if self.mqtt.mode == MqttMode::External {
            match self.mqtt.url.as_deref().map(parse_mqtt_url) {
                Some(Ok(_)) => {}
                Some(Err(reason)) => return Err(bad("mqtt.url", reason)),
                None => {
                    return Err(bad(
                        "mqtt.url",
                        "is required when mode = \"external\" (e.g. \"mqtts://127.0.0.1:8883\")"
                            .into(),
                    ));
                }
            }
        }
        if self.mqtt.max_handlers == 0 {
            return Err(bad(
                "mqtt.max_handlers",
                "is 0, which would refuse every request; use at least 1 (default 256)".into(),
            ));
        }
        match self.mqtt.protocol.as_str() {
            "3.1.1" | "5" => {}
            other => {
                return Err(bad(
                    "mqtt.protocol",
                    format!("{other:?} is not supported: use \"3.1.1\" or \"5\""),
                ));
            }
        }
        if self.https.listen.parse::<SocketAddr>().is_err() {
            return Err(bad(
                "https.listen",
                format!(
                    "{:?} is not an IP:port address (e.g. \"127.0.0.1:8443\")",
                    self.https.listen
                ),
            ));
        }
        if let Some(url) = &self.https.public_url
            && !url.starts_with("https://")
        {
            return Err(bad(
                "https.public_url",
                format!("{url:?} must start with https://"),
            ));
        }
        if !(1..=86_400).contains(&self.status.ttl_secs) {
            return Err(bad("status.ttl_secs", "must be between 1 and 86400".into()));
        }
        if !(1024..=16_777_216).contains(&self.status.list_size) {
            return Err(bad(
                "status.list_size",
                "must be between 1024 and 16777216".into(),
            ));
        }
        for (field, rate) in [
            (
                "rate_limits.device_per_sec",
                self.rate_limits.device_per_sec,
            ),
            (
                "rate_limits.client_per_sec",
                self.rate_limits.client_per_sec,
            ),
        ] {
            if !rate.is_finite() || rate < 0.0 {
                return Err(bad(field, "must be 0 (off) or a positive number".into()));
            }
        }
        if self.pki.device_cert_secs.is_some_and(|s| s < 60) {
            return Err(bad(
                "pki.device_cert_secs",
                "must be at least 60 seconds".into(),
            ));
        }
        if !(1..=3650).contains(&self.pki.device_cert_days) {
            return Err(bad(
                "pki.device_cert_days",
                "must be between 1 and 3650".into(),
            ));
        }
        if self.https.max_connections == 0 {
            return Err(bad("https.max_connections", "must be at least 1".into()));
        }
        if self.https.idle_timeout_secs == 0 || self.https.body_timeout_secs == 0 {
            return Err(bad(
                "https.idle_timeout_secs / https.body_timeout_secs",
                "must be at least 1 second".into(),
            ));
        }
        if !(512..=1_048_576).contains(&self.limits.max_request_bytes) {
            return Err(bad(
                "limits.max_request_bytes",
                "must be between 512 and 1048576".into(),
            ));
        }
        if self.audit.retention_days > 36_500 {
            return Err(bad(
                "audit.retention_days",
                "must be at most 36500 (0 keeps events forever)".into(),
            ));
        }
        if !(1..=86_400).contains(&self.audit.prune_every_secs) {
            return Err(bad(
                "audit.prune_every_secs",
                "must be between 1 and 86400".into(),
            ));
        }
        if let Err(reason) = self.oauth.jwks_uri_allow_list() {
            return Err(bad("oauth.jwks_uri_allowed_prefixes", reason));
        }
        if !(10..=3600).contains(&self.oauth.max_assertion_lifetime_secs) {
            return Err(bad(
                "oauth.max_assertion_lifetime_secs",
                "must be between 10 and 3600".into(),
            ));
        }
        if self.limits.replay_cache_entries < 1000 {
            return Err(bad(
                "limits.replay_cache_entries",
                "must be at least 1000".into(),
            ));
        }
        Ok(())
    }

    /// The embedded MQTT listen address (validated at load).
    /// The HTTPS address (validated at load).
    pub fn https_listen(&self) -> SocketAddr {
        self.https
            .listen
            .parse()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 8443)))
    }

    /// The embedded MQTT address (validated at load).
    pub fn mqtt_listen(&self) -> SocketAddr {
        self.mqtt
            .listen
            .parse()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 8883)))
    }

    /// The CoAP listen address (validated at load).
    pub fn coap_listen(&self) -> SocketAddr {
        self.coap
            .listen
            .parse()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 5683)))
    }
}

/// Splits `mqtts://host:port` into `(host, port)` (port defaults to 8883).
pub fn parse_mqtt_url(url: &str) -> Result<(String, u16), String> {
    let rest = url.strip_prefix("mqtts://").ok_or_else(|| {
        format!("{url:?} must start with mqtts:// (certbound only talks MQTT over TLS)")
    })?;
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .map_err(|_| format!("{url:?} has an invalid port"))?,
        ),
        None => (rest, 8883),
    };
    if host.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    Ok((host.trim_matches(['[', ']']).to_string(), port))
}

/// Paths inside a data directory, and the key that encrypts its private
/// keys at rest (if any).
#[derive(Debug, Clone)]
pub struct DataDir {
    /// The directory.
    pub root: PathBuf,
    kek: Option<std::sync::Arc<certbound_pki::KeyEncryptionKey>>,
}

impl DataDir {
    /// Wraps a path (no key encryption key: plaintext keys only).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            kek: None,
        }
    }
    /// Wraps a path, with the key encryption key of `config` (`[keys]`).
    pub fn with_config(root: impl Into<PathBuf>, config: &Config) -> Self {
        Self {
            root: root.into(),
            kek: config.keys.encryption_key(),
        }
    }
    /// With this key encryption key.
    pub fn with_key_encryption(
        mut self,
        kek: Option<std::sync::Arc<certbound_pki::KeyEncryptionKey>>,
    ) -> Self {
        self.kek = kek;
        self
    }
    /// The key encryption key, if any.
    pub fn key_encryption(&self) -> Option<&certbound_pki::KeyEncryptionKey> {
        self.kek.as_deref()
    }
    /// `certbound.toml`
    pub fn config(&self) -> PathBuf {
        self.root.join(CONFIG_FILE)
    }
    /// `certbound.db`
    pub fn database(&self) -> PathBuf {
        self.root.join("certbound.db")
    }
    /// `keys/`: token signing keys.
    pub fn keys(&self) -> PathBuf {
        self.root.join("keys")
    }
    /// The embedded MQTT/HTTPS server certificate chain (`pki/server.cert.pem`).
    pub fn server_cert(&self) -> PathBuf {
        self.root.join("pki/server.cert.pem")
    }
    /// Its key (`pki/server.key.pem`, 0600).
    pub fn server_key(&self) -> PathBuf {
        self.root.join("pki/server.key.pem")
    }
    /// The broker's own client identity for MQTT (`pki/broker.cert.pem`).
    pub fn broker_cert(&self) -> PathBuf {
        self.root.join("pki/broker.cert.pem")
    }
    /// Its key (`pki/broker.key.pem`, 0600).
    pub fn broker_key(&self) -> PathBuf {
        self.root.join("pki/broker.key.pem")
    }
    /// The PKI paths (`pki/`), with the key encryption key.
    pub fn pki(&self) -> certbound_pki::PkiPaths {
        certbound_pki::PkiPaths::new(&self.root).with_key_encryption(self.kek.clone())
    }
    /// The token signing keys (`keys/`), with the key encryption key.
    pub fn key_dir(&self) -> crate::keys::KeyDir<'_> {
        crate::keys::KeyDir {
            path: self.keys(),
            kek: self.key_encryption(),
        }
    }
}

impl Config {
    /// The store URL: `[store] url`, or the SQLite database of `data`.
    pub fn store_url(&self, data: &DataDir) -> String {
        match &self.store.url {
            Some(url) => url.clone(),
            None => crate::store::sqlite_url(&data.database()),
        }
    }

    /// The housekeeping policy of this configuration: token records are kept
    /// `leeway_secs` (at least the status lists' `EXPIRED_KEPT_SECS`) plus
    /// `[status] ttl_secs` past their `exp`; audit events `[audit]
    /// retention_days` (0: forever).
    pub fn prune_policy(&self) -> crate::store::PrunePolicy {
        let days = u64::from(self.audit.retention_days);
        crate::store::PrunePolicy {
            // Status lists keep a revoked token marked for EXPIRED_KEPT_SECS
            // after exp (verifier leeway); the row must outlive that, plus one
            // status TTL for lists already fetched.
            token_margin_secs: self
                .broker
                .leeway_secs
                .max(crate::store::EXPIRED_KEPT_SECS)
                .saturating_add(self.status.ttl_secs),
            audit_retention_secs: (days > 0).then(|| days.saturating_mul(86_400)),
            batch: crate::store::DEFAULT_BATCH,
            dry_run: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_parses_with_defaults() {
        let c = Config::parse(&template("https://auth.example.com"), Path::new("t.toml")).unwrap();
        assert_eq!(c.broker.leeway_secs, 60);
        assert_eq!(c.coap.dedup_entries, 262_144);
        assert_eq!(c.coap.dedup_bytes, 64 * 1024 * 1024);
        assert_eq!(c.coap.amplification_factor, 3);
        assert_eq!(c.coap.max_in_flight, 512);
        assert_eq!(c.coap_listen(), "127.0.0.1:5683".parse().unwrap());
        assert_eq!(c.pki.device_cert_days, 90);
        assert_eq!(c.audit.retention_days, 90);
        assert_eq!(c.audit.prune_every_secs, 300);
        // A minimal file gets the documented defaults.
        let c = Config::parse("[broker]\nissuer_id = \"x\"\n", Path::new("t.toml")).unwrap();
        assert!(c.coap.enabled);
        assert_eq!(c.limits.max_request_bytes, 8192);
        assert_eq!(c.audit.retention_days, 90);
        assert_eq!(c.audit.prune_every_secs, 300);
    }

    #[test]
    fn one_clear_error_per_bad_field() {
        let cases = [
            ("[broker]\nissuer_id = \"\"\n", "broker.issuer_id"),
            (
                "[broker]\nissuer_id = \"x\"\nleeway_secs = 9999\n",
                "broker.leeway_secs",
            ),
            (
                "[broker]\nissuer_id = \"x\"\n[coap]\nlisten = \"nope\"\n",
                "coap.listen",
            ),
            (
                "[broker]\nissuer_id = \"x\"\n[pki]\ndevice_cert_days = 0\n",
                "pki.device_cert_days",
            ),
            (
                "[broker]\nissuer_id = \"x\"\n[limits]\nmax_request_bytes = 1\n",
                "limits.max_request_bytes",
            ),
            (
                "[broker]\nissuer_id = \"x\"\n[audit]\nprune_every_secs = 0\n",
                "audit.prune_every_secs",
            ),
            (
                "[broker]\nissuer_id = \"x\"\n[audit]\nretention_days = 99999\n",
                "audit.retention_days",
            ),
        ];
        for (text, field) in cases {
            let err = Config::parse(text, Path::new("t.toml"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(field), "{err} should name {field}");
        }
        let err = Config::parse(
            "[broker]\nissuer_id = \"x\"\ntypo = 1\n",
            Path::new("t.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("typo"), "{err}");
    }
}
