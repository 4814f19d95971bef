//! The agent configuration file (TOML); [`EXAMPLE`] is a fully commented
//! example (`certbound-agent --print-config`) showing every default.

use std::fmt;
use std::path::{Path, PathBuf};

use certbound_proto::schedule::Backoff;
use serde::Deserialize;

use crate::source::Source;
use crate::tokens::TokenSpec;

/// A fully commented example configuration.
pub const EXAMPLE: &str = include_str!("config/example.toml");

/// Why a configuration file cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Not valid TOML, an unknown key, or a value of the wrong type or form.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (with line and column).
        message: String,
    },
    /// Values that parse but do not fit together; one line per problem.
    #[error("{}:\n  {}", path.display(), problems.join("\n  "))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Each problem, naming its key.
        problems: Vec<String>,
    },
}

/// The whole configuration (see [`EXAMPLE`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// `[device]`: the identity.
    pub device: DeviceConfig,
    /// `[broker]`: the token broker.
    pub broker: BrokerConfig,
    /// `[mqtt]`: the MQTT server.
    #[serde(default)]
    pub mqtt: MqttConfig,
    /// `[[token]]`: the tokens to hold (one or more).
    #[serde(rename = "token")]
    pub tokens: Vec<TokenConfig>,
    /// `[telemetry]`: input and the token to attach.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// `[spool]`: the persisted queue.
    #[serde(default)]
    pub spool: SpoolConfig,
    /// `[retry]`: backoff and renewal margin.
    #[serde(default)]
    pub retry: RetryConfig,
    /// `[renewal]`: certificate renewal.
    #[serde(default)]
    pub renewal: RenewalConfig,
}

/// `[device]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    /// Private key, PKCS#8 PEM.
    pub key: PathBuf,
    /// Certificate chain, PEM, leaf first.
    pub cert: PathBuf,
    /// CA chain (PEM) for the MQTT server's certificate.
    pub ca: PathBuf,
}

/// `[broker]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerConfig {
    /// The broker's issuer id.
    pub issuer_id: String,
}

/// An `mqtts://host[:port]` URL.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct MqttUrl {
    /// Host name or IP (also the TLS server name).
    pub host: String,
    /// Port (default 8883).
    pub port: u16,
}

impl TryFrom<String> for MqttUrl {
    type Error = String;

    fn try_from(url: String) -> Result<Self, String> {
        let rest = url.strip_prefix("mqtts://").ok_or_else(|| {
            format!("{url:?} must start with mqtts:// (the agent only talks MQTT over TLS)")
        })?;
        let rest = rest.trim_end_matches('/');
        let bad_port = || format!("{url:?} has an invalid port");
        let parse_port = |p: &str| p.parse::<u16>().ok().filter(|p| *p != 0);
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{url:?}: unclosed [ in the host"))?;
            let port = match after {
                "" => 8883,
                p => p
                    .strip_prefix(':')
                    .and_then(parse_port)
                    .ok_or_else(bad_port)?,
            };
            (host, port)
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h, parse_port(p).ok_or_else(bad_port)?),
                None => (rest, 8883),
            }
        };
        if host.is_empty() || host.contains(['/', '@', '?', '#', '[', ']']) {
            return Err(format!("{url:?}: expected mqtts://<host>[:<port>]"));
        }
        Ok(Self {
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for MqttUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "mqtts://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "mqtts://{}:{}", self.host, self.port)
        }
    }
}

/// `[mqtt]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    /// The server (default `mqtts://127.0.0.1:8883`).
    pub url: MqttUrl,
    /// Connection, subscription and answer timeout (default 10 s).
    pub timeout_secs: u64,
    /// Keep-alive interval (default 30 s).
    pub keep_alive_secs: u64,
    /// Telemetry publishes awaiting PUBACK at once (default 16).
    pub max_inflight: usize,
    /// `"5"` (default) or `"3.1.1"`.
    pub protocol: MqttProtocol,
    /// The `[[token]]` audience whose token authenticates the MQTT session
    /// itself (RFC 9431, MQTT 5 only; the broker's `[mqtt] audience`): the
    /// agent connects with it and renews it in-session with AUTH instead of
    /// reconnecting. Default: none (the certificate alone).
    pub session_audience: Option<String>,
}

/// `[mqtt] protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum MqttProtocol {
    /// MQTT 5.
    #[default]
    #[serde(rename = "5")]
    V5,
    /// MQTT 3.1.1.
    #[serde(rename = "3.1.1")]
    V311,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            url: MqttUrl {
                host: "127.0.0.1".into(),
                port: 8883,
            },
            timeout_secs: 10,
            keep_alive_secs: 30,
            max_inflight: 16,
            protocol: MqttProtocol::V5,
            session_audience: None,
        }
    }
}

/// `[[token]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// The API identifier.
    pub audience: String,
    /// Requested scopes (space separated); absent: the grant's defaults.
    #[serde(default)]
    pub scope: Option<String>,
}

/// `[telemetry]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// The `[[token]]` audience attached to telemetry (default: the only one).
    pub audience: Option<String>,
    /// The input (default `stdin`).
    pub source: Source,
    /// Largest message in bytes (default 4096).
    pub max_message_bytes: usize,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            audience: None,
            source: Source::Stdin,
            max_message_bytes: 4096,
        }
    }
}

/// `[spool]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpoolConfig {
    /// Directory (default `/var/lib/certbound-agent/spool`).
    pub dir: PathBuf,
    /// Bound (default 10000).
    pub max_messages: usize,
    /// How long to keep sending after a shutdown request (default 5 s).
    pub flush_on_exit_secs: u64,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("/var/lib/certbound-agent/spool"),
            max_messages: 10_000,
            flush_on_exit_secs: 5,
        }
    }
}

/// `[retry]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// First backoff ceiling (default 500 ms).
    pub base_ms: u64,
    /// Largest backoff ceiling (default 60 s).
    pub max_ms: u64,
    /// Renewal margin before a send (default 30 s).
    pub renew_margin_secs: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            base_ms: 500,
            max_ms: 60_000,
            renew_margin_secs: 30,
        }
    }
}

/// How the certificate is renewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RenewalTransport {
    /// `cert/req` on the live MQTT connection (default).
    Mqtt,
    /// `POST /.well-known/est/sren` at `renewal.coap_url`.
    Coap,
}

/// A `coap://host[:port]` URL.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct CoapUrl {
    /// Host name or IP.
    pub host: String,
    /// UDP port (default 5683).
    pub port: u16,
}

impl TryFrom<String> for CoapUrl {
    type Error = String;

    fn try_from(url: String) -> Result<Self, String> {
        let rest = url
            .strip_prefix("coap://")
            .ok_or_else(|| format!("{url:?} must start with coap://"))?
            .trim_end_matches('/');
        let bad = || format!("{url:?}: expected coap://<host>[:<port>]");
        let port_of = |p: &str| p.parse::<u16>().ok().filter(|p| *p != 0);
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(bad)?;
            match after {
                "" => (host, 5683),
                p => (host, p.strip_prefix(':').and_then(port_of).ok_or_else(bad)?),
            }
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h, port_of(p).ok_or_else(bad)?),
                None => (rest, 5683),
            }
        };
        if host.is_empty() || host.contains(['/', '@', '?', '#', '[', ']']) {
            return Err(bad());
        }
        Ok(Self {
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for CoapUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "coap://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "coap://{}:{}", self.host, self.port)
        }
    }
}

/// `[renewal]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RenewalConfig {
    /// Renew the certificate automatically (default true).
    pub enabled: bool,
    /// Over which transport (default `mqtt`).
    pub transport: RenewalTransport,
    /// The broker's CoAP endpoint: required for `transport = "coap"`; with
    /// `mqtt`, used for a certificate that has expired (TLS refuses it).
    pub coap_url: Option<CoapUrl>,
    /// First backoff ceiling after a failed renewal (default 30 s).
    pub retry_base_secs: u64,
    /// Largest backoff ceiling (default 3600 s).
    pub retry_max_secs: u64,
    /// Days after expiry during which renewal is still attempted (default 7,
    /// the broker's `[pki] renewal_grace_days`).
    pub expired_grace_days: u32,
}

impl Default for RenewalConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            transport: RenewalTransport::Mqtt,
            coap_url: None,
            retry_base_secs: 30,
            retry_max_secs: 3600,
            expired_grace_days: 7,
        }
    }
}

/// Largest accepted `telemetry.max_message_bytes` (the MQTT packet limit is
/// 64 KiB, and the envelope adds the token and a signature).
pub const MAX_MESSAGE_BYTES: usize = 60_000;

impl AgentConfig {
    /// Reads and validates a configuration file; relative paths are
    /// resolved against its directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates `text` as if read from `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let mut config: AgentConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let problems = config.problems();
        if !problems.is_empty() {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                problems,
            });
        }
        if config.telemetry.audience.is_none() {
            config.telemetry.audience = config.tokens.first().map(|t| t.audience.clone());
        }
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [
            &mut config.device.key,
            &mut config.device.cert,
            &mut config.device.ca,
            &mut config.spool.dir,
        ] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(config)
    }

    /// Every problem, one line each, naming the key.
    fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut need = |ok: bool, msg: String| {
            if !ok {
                out.push(msg);
            }
        };
        for (key, p) in [
            ("device.key", &self.device.key),
            ("device.cert", &self.device.cert),
            ("device.ca", &self.device.ca),
            ("spool.dir", &self.spool.dir),
        ] {
            need(
                !p.as_os_str().is_empty(),
                format!("{key}: must not be empty"),
            );
        }
        need(
            !self.broker.issuer_id.trim().is_empty(),
            "broker.issuer_id: must not be empty".into(),
        );
        need(
            (1..=300).contains(&self.mqtt.timeout_secs),
            format!(
                "mqtt.timeout_secs = {}: must be 1..=300",
                self.mqtt.timeout_secs
            ),
        );
        need(
            (5..=3600).contains(&self.mqtt.keep_alive_secs),
            format!(
                "mqtt.keep_alive_secs = {}: must be 5..=3600",
                self.mqtt.keep_alive_secs
            ),
        );
        need(
            (1..=100).contains(&self.mqtt.max_inflight),
            format!(
                "mqtt.max_inflight = {}: must be 1..=100",
                self.mqtt.max_inflight
            ),
        );
        need(
            !self.tokens.is_empty(),
            "[[token]]: at least one is needed (the telemetry token)".into(),
        );
        if let Some(audience) = &self.mqtt.session_audience {
            need(
                self.mqtt.protocol == MqttProtocol::V5,
                "mqtt.session_audience: access tokens in the MQTT session need \
                 mqtt.protocol = \"5\""
                    .into(),
            );
            need(
                self.tokens.iter().any(|t| &t.audience == audience),
                format!(
                    "mqtt.session_audience = {audience:?}: add a [[token]] with this audience \
                     (the broker's [mqtt] audience)"
                ),
            );
        }
        for (i, t) in self.tokens.iter().enumerate() {
            need(
                !t.audience.trim().is_empty(),
                format!("[[token]] #{}: audience must not be empty", i + 1),
            );
            need(
                t.scope.as_deref().is_none_or(|s| !s.trim().is_empty()),
                format!(
                    "[[token]] #{}: scope must not be empty (leave it out for the defaults)",
                    i + 1
                ),
            );
            need(
                !self.tokens[..i].iter().any(|o| o.audience == t.audience),
                format!(
                    "[[token]] #{}: audience {:?} is listed twice",
                    i + 1,
                    t.audience
                ),
            );
        }
        match &self.telemetry.audience {
            Some(a) => need(
                self.tokens.iter().any(|t| &t.audience == a),
                format!("telemetry.audience = {a:?}: no [[token]] has this audience"),
            ),
            None => need(
                self.tokens.len() <= 1,
                "telemetry.audience: required when there are several [[token]] sections".into(),
            ),
        }
        need(
            (1..=MAX_MESSAGE_BYTES).contains(&self.telemetry.max_message_bytes),
            format!(
                "telemetry.max_message_bytes = {}: must be 1..={MAX_MESSAGE_BYTES}",
                self.telemetry.max_message_bytes
            ),
        );
        need(
            (1..=10_000_000).contains(&self.spool.max_messages),
            format!(
                "spool.max_messages = {}: must be 1..=10000000",
                self.spool.max_messages
            ),
        );
        need(
            self.spool.flush_on_exit_secs <= 600,
            format!(
                "spool.flush_on_exit_secs = {}: must be at most 600",
                self.spool.flush_on_exit_secs
            ),
        );
        need(
            (10..=3_600_000).contains(&self.retry.base_ms),
            format!(
                "retry.base_ms = {}: must be 10..=3600000",
                self.retry.base_ms
            ),
        );
        need(
            self.retry.max_ms >= self.retry.base_ms && self.retry.max_ms <= 3_600_000,
            format!(
                "retry.max_ms = {}: must be at least retry.base_ms and at most 3600000",
                self.retry.max_ms
            ),
        );
        let r = &self.renewal;
        need(
            r.transport != RenewalTransport::Coap || r.coap_url.is_some(),
            "renewal.coap_url: required with renewal.transport = \"coap\"".into(),
        );
        need(
            (1..=86_400).contains(&r.retry_base_secs),
            format!(
                "renewal.retry_base_secs = {}: must be 1..=86400",
                r.retry_base_secs
            ),
        );
        need(
            r.retry_max_secs >= r.retry_base_secs && r.retry_max_secs <= 7 * 86_400,
            format!(
                "renewal.retry_max_secs = {}: must be at least renewal.retry_base_secs and at most 604800",
                r.retry_max_secs
            ),
        );
        need(
            r.expired_grace_days <= 3650,
            format!(
                "renewal.expired_grace_days = {}: must be at most 3650",
                r.expired_grace_days
            ),
        );
        out
    }

    /// The audience whose token is attached to telemetry.
    pub fn telemetry_audience(&self) -> &str {
        self.telemetry
            .audience
            .as_deref()
            .or_else(|| self.tokens.first().map(|t| t.audience.as_str()))
            .unwrap_or_default()
    }

    /// The tokens to hold.
    pub fn token_specs(&self) -> Vec<TokenSpec> {
        self.tokens
            .iter()
            .map(|t| TokenSpec {
                audience: t.audience.clone(),
                scope: t.scope.clone(),
            })
            .collect()
    }

    /// When and how often certificate renewal is attempted.
    pub fn renewal_policy(&self) -> crate::renewal::RenewalPolicy {
        let r = &self.renewal;
        crate::renewal::RenewalPolicy {
            backoff: Backoff {
                base_ms: r.retry_base_secs.saturating_mul(1000),
                max_ms: r.retry_max_secs.saturating_mul(1000),
                floor_ms: (r.retry_base_secs.saturating_mul(1000) / 5).max(100),
            },
            expired_grace_secs: u64::from(r.expired_grace_days) * 86_400,
        }
    }

    /// The backoff for reconnects and token requests.
    pub fn backoff(&self) -> Backoff {
        Backoff {
            base_ms: self.retry.base_ms,
            max_ms: self.retry.max_ms,
            floor_ms: (self.retry.base_ms / 5).max(10),
        }
    }
}

#[cfg(test)]
mod tests;
