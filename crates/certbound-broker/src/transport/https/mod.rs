//! The HTTPS transport (axum over rustls; client certificates optional and,
//! when shown, verified against the certbound CA during the handshake):
//! OAuth 2.0 for backend services, ACE over HTTPS for devices, discovery,
//! status lists and the admin API. Routes are thin: decisions live in
//! [`crate::oauth`], [`crate::token_service`] and [`crate::registry`].

mod admin;
mod admin_api_keys;
mod admin_registration;
mod discovery;
mod est;
mod oauth_routes;
mod register_routes;
mod reply;
pub mod ui;

use std::path::PathBuf;
use std::sync::Arc;

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use certbound_verify::http::{ServeLimits, serve_tls_with};

use crate::config::{Config, DataDir};
use crate::error::BrokerError;
use crate::keys::SharedKeys;
use crate::oauth::ClientTrust;
use crate::oauth::OAuthService;
use crate::status::StatusLists;
use crate::store::Store;

/// What every route can reach.
#[derive(Debug, Clone)]
pub struct HttpsState {
    /// OAuth decisions.
    pub oauth: OAuthService,
    /// Device tokens (ACE over HTTPS) and re-enrollment (EST).
    pub devices: Arc<crate::transport::DeviceEndpoints>,
    /// Status lists, when enabled.
    pub status: Option<Arc<StatusLists>>,
    /// The key ring.
    pub keys: SharedKeys,
    /// The CA material (EST cacerts).
    pub pki: crate::pki_state::SharedPki,
    /// The store.
    pub store: Store,
    /// The data directory (admin operations open the CA from it).
    pub dir: PathBuf,
    /// The configuration.
    pub config: Arc<Config>,
    /// `https://host:port` this server is reached at.
    pub base_url: String,
    /// The metrics `GET /metrics` serves; `None`: the route is off
    /// (`[https] metrics = false`).
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
    /// The console's per-process state (login rate limits, open streams).
    pub ui: Arc<ui::session::UiState>,
}

/// Largest body of `POST /.well-known/est/simple(re)enroll`: a base64 CSR of
/// at most [`certbound_pki::MAX_CSR_LEN`] bytes, with line breaks.
pub const EST_MAX_BODY: usize = 16 * 1024;

/// Largest body of an admin API request (bulk provisioning sends lists).
pub const ADMIN_MAX_BODY: usize = 1024 * 1024;

/// The router with every route. Each group of routes has its own body limit
/// (axum's 2 MB default applies nowhere): `/oauth/*`
/// [`oauth_routes::OAUTH_MAX_BODY`], `/ace/token` `[limits]
/// max_request_bytes`, EST [`EST_MAX_BODY`], the admin API [`ADMIN_MAX_BODY`];
/// GET routes take no body.
pub fn router(state: HttpsState) -> Router {
    let ace_max = state.config.limits.max_request_bytes;
    let oauth = Router::new()
        .route("/oauth/token", post(oauth_routes::token))
        .route("/oauth/introspect", post(oauth_routes::introspect))
        .route("/oauth/revoke", post(oauth_routes::revoke))
        .layer(DefaultBodyLimit::max(oauth_routes::OAUTH_MAX_BODY));
    let register = Router::new()
        .route("/oauth/register", post(register_routes::register))
        .route(
            "/oauth/register/{client_id}",
            get(register_routes::read)
                .put(register_routes::update)
                .delete(register_routes::delete),
        )
        .layer(DefaultBodyLimit::max(register_routes::REGISTER_MAX_BODY));
    let ace = Router::new()
        .route("/ace/token", post(oauth_routes::ace_token))
        .layer(DefaultBodyLimit::max(ace_max));
    let est = Router::new()
        .route("/.well-known/est/simpleenroll", post(est::simpleenroll))
        .route("/.well-known/est/simplereenroll", post(est::simplereenroll))
        .layer(DefaultBodyLimit::max(EST_MAX_BODY));
    Router::new()
        .merge(oauth)
        .merge(register)
        .merge(ace)
        .merge(est)
        .route(
            "/.well-known/oauth-authorization-server",
            get(discovery::metadata),
        )
        .route("/.well-known/jwks.json", get(discovery::jwks))
        .route("/.well-known/cose-keys", get(discovery::cose_keys))
        .route("/status/{id}", get(discovery::status_list))
        // The path of tokens issued before 0.1 shortened it (6 bytes a token).
        .route("/status-lists/{id}", get(discovery::status_list))
        .route("/healthz", get(discovery::healthz))
        .route("/metrics", get(metrics))
        .route("/.well-known/est/cacerts", get(est::cacerts))
        .route("/crl", get(est::crl))
        .route("/crl/{serial}", get(est::crl_of_ca))
        .route("/crls", get(est::crls))
        .merge(ui::routes(state.config.ui.enabled))
        .nest(
            "/admin/v1",
            admin::routes()
                .route_layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    admin::guard,
                ))
                .layer(DefaultBodyLimit::max(ADMIN_MAX_BODY)),
        )
        .fallback(reply::not_found)
        .with_state(state)
}

/// The HTTPS server's TLS configuration: the server certificate, TLS 1.3
/// only unless configured otherwise, ALPN `http/1.1`, and client
/// certificates decided by `trust` (a chain to a trusted CA, or a pinned
/// self-signed certificate; revoked service certificates refused).
pub fn tls_config(
    cert_chain_pem: &str,
    key_pem: &str,
    trust: &Arc<ClientTrust>,
    tls13_only: bool,
) -> Result<Arc<rustls::ServerConfig>, BrokerError> {
    use certbound_verify::http::tls::{ALPN_HTTP1, parse_certificates, parse_private_key};
    let bad =
        |e: certbound_verify::VerifyError| BrokerError::Invalid(format!("HTTPS TLS setup: {e}"));
    let chain = parse_certificates(cert_chain_pem, "server certificate chain").map_err(bad)?;
    let key = parse_private_key(key_pem, "server key").map_err(bad)?;
    let versions: &[&rustls::SupportedProtocolVersion] = if tls13_only {
        &[&rustls::version::TLS13]
    } else {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    };
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_protocol_versions(versions)
    .map_err(|e| BrokerError::Invalid(format!("HTTPS TLS setup: {e}")))?
    .with_client_cert_verifier(trust.tls_verifier()?)
    .with_single_cert(chain, key)
    .map_err(|e| {
        BrokerError::Invalid(format!(
            "HTTPS TLS setup: the server certificate and key do not belong together: {e}"
        ))
    })?;
    config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    // No session resumption: a resumed session skips the client-certificate
    // verifier, so a service certificate revoked since the first handshake
    // would still get through the TLS layer. Every connection gets a full
    // handshake (keep-alive still amortises it).
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// The client-certificate trust of the HTTPS server: the certbound CA chain
/// plus the operator's CAs of `[https] client_ca_file`, with the pinned and
/// revoked sets loaded from the store.
pub async fn client_trust(
    data: &DataDir,
    config: &Config,
    store: &Store,
) -> Result<Arc<ClientTrust>, BrokerError> {
    let read =
        |path: &std::path::Path| std::fs::read_to_string(path).map_err(BrokerError::io(path));
    let mut cas = vec![("certbound CA chain", read(&data.pki().chain())?)];
    if let Some(file) = &config.https.client_ca_file {
        let path = data.root.join(file);
        cas.push(("[https] client_ca_file", read(&path)?));
    }
    let trust = Arc::new(ClientTrust::new(&cas)?);
    trust.refresh(store, crate::clock::unix_now()).await?;
    Ok(trust)
}

/// The fetcher of `private_key_jwt` clients' JWK Set URLs: `None` when
/// `[oauth] jwks_uri_allowed_prefixes` is empty (nothing may be fetched).
/// Servers must present a certificate of the certbound CA or of a CA in
/// `[oauth] jwks_ca_file`.
pub fn jwks_fetcher(
    data: &DataDir,
    config: &Config,
) -> Result<Option<Arc<crate::oauth::JwksFetcher>>, BrokerError> {
    let allow = config
        .oauth
        .jwks_uri_allow_list()
        .map_err(|e| BrokerError::Invalid(format!("[oauth] jwks_uri_allowed_prefixes: {e}")))?;
    if allow.prefixes().is_empty() {
        return Ok(None);
    }
    let read =
        |path: &std::path::Path| std::fs::read_to_string(path).map_err(BrokerError::io(path));
    let mut cas = read(&data.pki().chain())?;
    if let Some(file) = &config.oauth.jwks_ca_file {
        cas.push('\n');
        cas.push_str(&read(&data.root.join(file))?);
    }
    let tls = certbound_verify::http::client_tls_config(&cas, None)
        .map_err(|e| BrokerError::Invalid(format!("[oauth] JWK Set fetching: {e}")))?;
    Ok(Some(Arc::new(crate::oauth::JwksFetcher::new(
        tls,
        crate::oauth::JwksFetcherConfig::new(allow),
    ))))
}

/// The connection limits of `[https]`.
pub fn serve_limits(config: &Config) -> ServeLimits {
    let h = &config.https;
    ServeLimits {
        max_connections: h.max_connections,
        idle_timeout: Duration::from_secs(h.idle_timeout_secs),
        body_timeout: Duration::from_secs(h.body_timeout_secs),
        ..ServeLimits::default()
    }
}

/// Serves `app` on `listener` with `limits` until `shutdown`, keeping
/// `trust`'s pinned and revoked sets current meanwhile.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    limits: ServeLimits,
    trust: Arc<ClientTrust>,
    store: Store,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let refresher = tokio::spawn(trust.keep_current(store));
    if let Err(e) = serve_tls_with(listener, tls, app, limits, shutdown).await {
        tracing::error!(error = %e, "HTTPS server stopped");
    }
    refresher.abort();
}

/// `GET /metrics`: the Prometheus text exposition (no authentication:
/// firewall it, or switch it off with `[https] metrics = false`).
async fn metrics(
    axum::extract::State(state): axum::extract::State<HttpsState>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let Some(metrics) = &state.metrics else {
        return reply::not_found().await;
    };
    let keys = state.keys.ring().published(crate::clock::unix_now()).len();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            crate::metrics::CONTENT_TYPE,
        )],
        metrics.render(keys),
    )
        .into_response()
}
