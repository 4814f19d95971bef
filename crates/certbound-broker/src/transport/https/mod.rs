//! The HTTPS transport (axum over rustls; client certificates optional and,
//! when shown, verified against the certbound CA during the handshake):
//! OAuth 2.0 for backend services, ACE over HTTPS for devices, discovery,
//! status lists and the admin API. Routes are thin: decisions live in
//! [`crate::oauth`], [`crate::token_service`] and [`crate::registry`].

mod admin;
mod discovery;
mod est;
mod oauth_routes;
mod reply;

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use crate::config::Config;
use crate::keys::SharedKeys;
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
}

/// The router with every route.
pub fn router(state: HttpsState) -> Router {
    Router::new()
        .route("/oauth/token", post(oauth_routes::token))
        .route("/oauth/introspect", post(oauth_routes::introspect))
        .route("/oauth/revoke", post(oauth_routes::revoke))
        .route("/ace/token", post(oauth_routes::ace_token))
        .route(
            "/.well-known/oauth-authorization-server",
            get(discovery::metadata),
        )
        .route("/.well-known/jwks.json", get(discovery::jwks))
        .route("/.well-known/cose-keys", get(discovery::cose_keys))
        .route("/status-lists/{id}", get(discovery::status_list))
        .route("/healthz", get(discovery::healthz))
        .route("/metrics", get(metrics))
        .route("/.well-known/est/cacerts", get(est::cacerts))
        .route("/crl", get(est::crl))
        .route("/crl/{serial}", get(est::crl_of_ca))
        .route("/crls", get(est::crls))
        .route("/.well-known/est/simpleenroll", post(est::simpleenroll))
        .route("/.well-known/est/simplereenroll", post(est::simplereenroll))
        .nest("/admin/v1", admin::routes())
        .fallback(reply::not_found)
        .with_state(state)
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
