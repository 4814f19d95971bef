//! An example HTTPS API protected by certbound access tokens.
//!
//! * `GET /telemetry` (scope `telemetry:read`): the latest stored readings.
//! * `POST /telemetry` (scope `telemetry:write`, JSON body): stores a reading.
//! * `GET /healthz`: unprotected.
//!
//! Both telemetry routes sit behind [`certbound_verify::http::VerifyLayer`]:
//! the `Authorization: Bearer` token (RFC 9068 JWT or base64url CWT) must be
//! signed by a key of the broker's JWKS (`--jwks-url`), name this API in
//! `aud`, come from `--issuer`, not be expired, carry the route's scope, not
//! be revoked (the broker's status list, fetched only from `--status-base`
//! and cached for its ttl — never one broker call per request), and, being
//! certificate-bound, arrive over mutual TLS with the very certificate it
//! was issued to. Client certificates are optional at the TLS level and
//! verified against `--ca` (the certbound CA chain); requests without one
//! are refused by the layer for bound tokens.
//!
//! [`app`] builds the router from a layer, [`start`] runs it in the current
//! tokio runtime (tests), [`serve`] runs it until a shutdown signal (the
//! binary).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::{DefaultBodyLimit, State};
use axum::handler::Handler as _;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use certbound_verify::http::{
    AuthStats, ClientAuth, HttpsFetcher, RemoteKeys, RemoteKeysConfig, StatusCheck, TlsServer,
    VerifyConfig, VerifyLayer, client_tls_config, server_tls_config,
};
use certbound_verify::status::StatusCacheConfig;
use certbound_verify::{VerifiedToken, VerifierConfig};
use serde::Serialize;

/// Scope of `GET /telemetry`.
pub const SCOPE_READ: &str = "telemetry:read";
/// Scope of `POST /telemetry`.
pub const SCOPE_WRITE: &str = "telemetry:write";
/// Readings kept in memory (oldest dropped first).
pub const MAX_READINGS: usize = 1000;
/// Readings returned by `GET /telemetry`.
const LIST_LIMIT: usize = 100;
/// Largest accepted `POST /telemetry` body, bytes.
const MAX_BODY: usize = 64 * 1024;
/// Timeout of every fetch from the broker (JWKS, status lists).
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest JWKS or status list accepted from the broker, bytes.
const MAX_FETCH: usize = 1024 * 1024;

/// Everything the API needs, as PEM text and URLs (the binary reads the
/// PEM files named by its flags).
#[derive(Debug, Clone)]
pub struct Options {
    /// Address to listen on (port 0 picks a free one).
    pub listen: SocketAddr,
    /// This API's server certificate chain (PEM, leaf first).
    pub cert_pem: String,
    /// Its private key (PEM, PKCS#8 or SEC1).
    pub key_pem: String,
    /// The certbound CA chain (PEM): client certificates must chain to it,
    /// and the broker's HTTPS certificate is verified with it.
    pub ca_pem: String,
    /// Required `iss` (the broker's issuer id).
    pub issuer: String,
    /// This API's identifier: tokens must name it in `aud`.
    pub audience: String,
    /// The broker's JWKS URL (`https://<broker>/.well-known/jwks.json`).
    pub jwks_url: String,
    /// The only URL prefix status lists are fetched from
    /// (`https://<broker>/status/`).
    pub status_base: String,
}

/// The verification layer for `options`: keys from the JWKS URL, status
/// lists from the status base, both fetched with the CA chain as trust anchor.
///
/// # Errors
/// Invalid CA PEM or URLs.
pub fn verify_layer(options: &Options) -> anyhow::Result<VerifyLayer> {
    let tls = client_tls_config(&options.ca_pem, None).context("the --ca chain")?;
    let fetcher = HttpsFetcher::new(tls, FETCH_TIMEOUT, MAX_FETCH);
    let keys = RemoteKeys::new(
        options.jwks_url.clone(),
        fetcher.clone(),
        RemoteKeysConfig::default(),
    )
    .context("--jwks-url")?;
    let mut verifier = VerifierConfig::new(options.audience.clone());
    verifier.issuer = Some(options.issuer.clone());
    let status = StatusCheck::Fetch {
        cache: StatusCacheConfig::new(options.status_base.clone()),
        fetcher,
    };
    VerifyLayer::new(VerifyConfig::new(verifier, Arc::new(keys), status)).context("--status-base")
}

/// One stored reading.
#[derive(Debug, Clone, Serialize)]
pub struct Reading {
    /// Unix seconds when it was stored.
    pub received_at: u64,
    /// The token's subject (`sub`).
    pub from: String,
    /// The token's `client_id` (JWTs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The posted JSON.
    pub data: serde_json::Value,
}

/// The in-memory store.
#[derive(Debug, Default)]
struct Store {
    readings: Mutex<VecDeque<Reading>>,
}

type Shared = Arc<Store>;

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn list_readings(State(store): State<Shared>, token: VerifiedToken) -> impl IntoResponse {
    let readings = store
        .readings
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let latest: Vec<&Reading> = readings.iter().rev().take(LIST_LIMIT).collect();
    Json(serde_json::json!({
        "caller": token.subject(),
        "format": token.format.as_str(),
        "readings": latest,
    }))
}

async fn store_reading(
    State(store): State<Shared>,
    token: VerifiedToken,
    Json(data): Json<serde_json::Value>,
) -> impl IntoResponse {
    let reading = Reading {
        received_at: unix_now(),
        from: token.subject().unwrap_or_default().to_string(),
        client_id: token.client_id.clone(),
        data,
    };
    let stored = {
        let mut readings = store
            .readings
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if readings.len() >= MAX_READINGS {
            readings.pop_front();
        }
        readings.push_back(reading);
        readings.len()
    };
    (
        StatusCode::CREATED,
        Json(serde_json::json!({ "stored": stored, "from": token.subject() })),
    )
}

/// The API's routes: `GET /telemetry` behind `auth` with [`SCOPE_READ`],
/// `POST /telemetry` with [`SCOPE_WRITE`], `GET /healthz` open.
pub fn app(auth: &VerifyLayer) -> Router {
    let store: Shared = Arc::default();
    let read = list_readings.layer(auth.with_scopes([SCOPE_READ]));
    let write = store_reading.layer(auth.with_scopes([SCOPE_WRITE]));
    Router::new()
        .route("/telemetry", get(read).post(write))
        .route("/healthz", get(|| async { "ok\n" }))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(store)
}

/// A running API.
#[derive(Debug)]
pub struct RunningApi {
    server: TlsServer,
    layer: VerifyLayer,
}

impl RunningApi {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// `https://<address>`.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// The verification counters (accepted, refused, status list fetches).
    pub fn stats(&self) -> AuthStats {
        self.layer.authenticator().stats()
    }

    /// Stops the server (in-flight requests get a grace period).
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

/// Starts the API in the current tokio runtime.
///
/// # Errors
/// Unusable certificates, key, CA or URLs, or an address that cannot be bound.
pub fn start(options: &Options) -> anyhow::Result<RunningApi> {
    let layer = verify_layer(options)?;
    let tls = server_tls_config(
        &options.cert_pem,
        &options.key_pem,
        Some(&options.ca_pem),
        ClientAuth::Optional,
        true,
    )
    .context("the server certificate (--cert, --key) or --ca")?;
    let server = TlsServer::start(options.listen, tls, app(&layer))?;
    Ok(RunningApi { server, layer })
}

/// Runs the API until `shutdown` resolves, printing
/// `http-api listening on https://ADDR` on stdout once it accepts connections.
///
/// # Errors
/// As for [`start`].
pub async fn serve(
    options: &Options,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let running = start(options)?;
    println!("http-api listening on {}", running.base_url());
    shutdown.await;
    running.shutdown().await;
    Ok(())
}
