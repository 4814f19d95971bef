//! The `[https]`, `[status]` and `[rate_limits]` sections.

use serde::Deserialize;

use super::default_true;

/// `[https]`: OAuth, ACE-over-HTTPS, discovery, status lists, admin API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpsSection {
    /// Serve HTTPS. Default true.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// TCP address. Default 127.0.0.1:8443.
    #[serde(default = "default_https_listen")]
    pub listen: String,
    /// The URL clients and verifiers reach this server at (status-list URIs
    /// and discovery use it). Default: `https://` + the bound address.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Accept TLS 1.3 only. Default true; false also allows TLS 1.2.
    #[serde(default = "default_true")]
    pub tls13_only: bool,
    /// Serve Prometheus metrics at `GET /metrics` (unauthenticated).
    /// Default true.
    #[serde(default = "default_true")]
    pub metrics: bool,
    /// PEM file (relative to the data directory, or absolute) of the
    /// operator's own CA certificates whose certificates may authenticate
    /// OAuth clients (`tls_client_auth`); never devices. Default: none (the
    /// certbound CA only).
    #[serde(default)]
    pub client_ca_file: Option<String>,
    /// Most connections open at once; more are closed at accept. Default 1024.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Seconds a client may take to send a request's headers, and may idle
    /// between keep-alive requests. Default 30.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_secs: u64,
    /// Seconds a client may take to send a request body. Default 10.
    #[serde(default = "default_body_timeout")]
    pub body_timeout_secs: u64,
}

fn default_max_connections() -> usize {
    1024
}
fn default_idle_timeout() -> u64 {
    30
}
fn default_body_timeout() -> u64 {
    10
}

impl Default for HttpsSection {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: default_https_listen(),
            public_url: None,
            tls13_only: true,
            metrics: true,
            client_ca_file: None,
            max_connections: default_max_connections(),
            idle_timeout_secs: default_idle_timeout(),
            body_timeout_secs: default_body_timeout(),
        }
    }
}

fn default_https_listen() -> String {
    "127.0.0.1:8443".into()
}

/// `[status]`: token status lists.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusSection {
    /// Give every token a status-list entry (needs HTTPS). Default true.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// How long verifiers may cache a list, seconds: a revocation reaches
    /// offline verifiers within this time. Default 60.
    #[serde(default = "default_status_ttl")]
    pub ttl_secs: u64,
    /// Entries per list. Default 65536 (16 KiB uncompressed at 2 bits).
    #[serde(default = "default_list_size")]
    pub list_size: u64,
}

impl Default for StatusSection {
    fn default() -> Self {
        Self {
            enabled: true,
            ttl_secs: default_status_ttl(),
            list_size: default_list_size(),
        }
    }
}

fn default_status_ttl() -> u64 {
    60
}
fn default_list_size() -> u64 {
    65_536
}

/// `[rate_limits]`: token requests per identity (token bucket); 0 = off.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitsSection {
    /// Sustained token requests per second per device. Default 1.
    #[serde(default = "default_device_rate")]
    pub device_per_sec: f64,
    /// Burst per device. Default 10.
    #[serde(default = "default_device_burst")]
    pub device_burst: u32,
    /// Sustained token requests per second per client. Default 10.
    #[serde(default = "default_client_rate")]
    pub client_per_sec: f64,
    /// Burst per client. Default 50.
    #[serde(default = "default_client_burst")]
    pub client_burst: u32,
}

impl Default for RateLimitsSection {
    fn default() -> Self {
        Self {
            device_per_sec: default_device_rate(),
            device_burst: default_device_burst(),
            client_per_sec: default_client_rate(),
            client_burst: default_client_burst(),
        }
    }
}

fn default_device_rate() -> f64 {
    1.0
}
fn default_device_burst() -> u32 {
    10
}
fn default_client_rate() -> f64 {
    10.0
}
fn default_client_burst() -> u32 {
    50
}
