//! Discovery (RFC 8414 metadata, JWKS, COSE key set), status lists, health.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use certbound_verify::KeySet;
use serde_json::json;

use super::HttpsState;
use super::reply::cached;
use crate::clock::unix_now;

/// How long verifiers may cache the key sets, seconds. Keep `keys rotate
/// --grace` above it so every verifier knows a new key before it signs.
pub const KEYS_MAX_AGE: u64 = 60;

/// `GET /.well-known/oauth-authorization-server`.
pub async fn metadata(State(state): State<HttpsState>) -> Response {
    let base = &state.base_url;
    let methods = [
        "client_secret_basic",
        "client_secret_post",
        "tls_client_auth",
        "private_key_jwt",
    ];
    let body = json!({
        "issuer": state.oauth.issuer(),
        "token_endpoint": format!("{base}/oauth/token"),
        "introspection_endpoint": format!("{base}/oauth/introspect"),
        "revocation_endpoint": format!("{base}/oauth/revoke"),
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "grant_types_supported": ["client_credentials"],
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": methods,
        "introspection_endpoint_auth_methods_supported": methods,
        "revocation_endpoint_auth_methods_supported": methods,
        // The algorithms of private_key_jwt client assertions.
        "token_endpoint_auth_signing_alg_values_supported":
            certbound_registry::client_jwks::SIGNING_ALGS,
        "registration_endpoint": format!("{base}/oauth/register"),
        "tls_client_certificate_bound_access_tokens": true,
        "mtls_endpoint_aliases": {
            "token_endpoint": format!("{base}/oauth/token"),
            "introspection_endpoint": format!("{base}/oauth/introspect"),
            "revocation_endpoint": format!("{base}/oauth/revoke"),
        },
        "ace_token_endpoint": format!("{base}/ace/token"),
        "cose_keys_uri": format!("{base}/.well-known/cose-keys"),
        "status_list_base_uri": format!("{base}/status/"),
        "admin_api": format!("{base}/admin/v1"),
        "admin_openapi": format!("{base}/admin/v1/openapi.json"),
    });
    cached(
        "application/json",
        KEYS_MAX_AGE,
        serde_json::to_vec(&body).unwrap_or_default(),
    )
}

/// Every published key: ES256, and the RS256, PS256 and EdDSA keys of the
/// APIs that ask for them (the COSE key set keeps the ES256 ones only).
fn key_set(state: &HttpsState) -> KeySet {
    let mut set = KeySet::new();
    for (kid, key) in state.keys.ring().published_jws(unix_now()) {
        if let Err(e) = set.insert_jws(kid.clone(), key) {
            tracing::error!(%kid, error = %e, "signing key left out of the key set");
        }
    }
    set
}

/// `GET /.well-known/jwks.json`: every published signing key.
pub async fn jwks(State(state): State<HttpsState>) -> Response {
    cached(
        "application/json",
        KEYS_MAX_AGE,
        key_set(&state).to_jwks().into_bytes(),
    )
}

/// `GET /.well-known/cose-keys`: the same keys as a COSE_KeySet.
pub async fn cose_keys(State(state): State<HttpsState>) -> Response {
    cached(
        "application/cose-key-set",
        KEYS_MAX_AGE,
        key_set(&state).to_cose_key_set(),
    )
}

/// `GET /status/{id}`: the signed list (`application/statuslist+cwt`).
pub async fn status_list(State(state): State<HttpsState>, Path(id): Path<String>) -> Response {
    let Some(lists) = &state.status else {
        return (
            StatusCode::NOT_FOUND,
            "status lists are disabled ([status] enabled = false)",
        )
            .into_response();
    };
    let Ok(id) = id.parse::<u64>() else {
        return (StatusCode::NOT_FOUND, "no such status list").into_response();
    };
    match lists.signed(id, unix_now()).await {
        Ok(Some(bytes)) => cached(
            "application/statuslist+cwt",
            lists.ttl(),
            bytes.as_ref().clone(),
        ),
        Ok(None) => (StatusCode::NOT_FOUND, "no such status list").into_response(),
        Err(e) => {
            tracing::error!(error = %e, list = id, "status list could not be built");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "status list unavailable; retry",
            )
                .into_response()
        }
    }
}

/// `GET /healthz`.
pub async fn healthz(State(state): State<HttpsState>) -> Response {
    match state.store.list_apis().await {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => {
            // The reason goes to the log, never to the (unauthenticated) caller.
            tracing::error!(error = %e, "healthz: the store is unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable\n").into_response()
        }
    }
}
