//! Admin API routes of API keys: `GET/POST /admin/v1/api-keys`, `DELETE
//! /admin/v1/api-keys/{name}` (revoke). The key is in the POST answer only;
//! no other answer carries it or its hash.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::routing::{delete, get};
use serde::Deserialize;
use serde_json::json;

use super::HttpsState;
use super::admin::{AdminError, AdminResult, GrantBody, Peer, caller, created, ok};
use crate::clock::unix_now;

/// The API-key routes (nested under `/admin/v1`).
pub fn routes() -> Router<HttpsState> {
    Router::new()
        .route("/api-keys", get(list).post(create))
        .route("/api-keys/{name}", delete(revoke))
}

#[derive(Deserialize)]
struct ListQuery {
    /// Include revoked keys.
    #[serde(default)]
    all: bool,
}

async fn list(
    State(s): State<HttpsState>,
    m: Method,
    h: HeaderMap,
    p: Peer,
    Query(q): Query<ListQuery>,
) -> AdminResult {
    let reg = caller(&s, &m, &h, p.as_ref().map(|e| &e.0)).await?;
    let now = unix_now();
    let keys: Vec<_> = reg
        .list_api_keys(q.all)
        .await?
        .into_iter()
        .map(|k| {
            json!({
                "name": k.name,
                "state": k.state_at(now),
                "grants": k.grants,
                "created_at": k.created_at,
                "expires_at": k.expires_at,
                "last_used_at": k.last_used_at,
                "revoked_at": k.revoked_at,
            })
        })
        .collect();
    ok(keys)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    name: String,
    grants: Vec<GrantBody>,
    /// Expiry, Unix seconds.
    expires_at: Option<u64>,
    /// Expiry, seconds from now (instead of `expires_at`).
    expires_in_secs: Option<u64>,
}

async fn create(
    State(s): State<HttpsState>,
    m: Method,
    h: HeaderMap,
    p: Peer,
    axum::Json(body): axum::Json<NewKey>,
) -> AdminResult {
    let reg = caller(&s, &m, &h, p.as_ref().map(|e| &e.0)).await?;
    let expires_at = match (body.expires_at, body.expires_in_secs) {
        (Some(_), Some(_)) => {
            return Err(AdminError(
                StatusCode::BAD_REQUEST,
                "invalid",
                "give expires_at or expires_in_secs, not both".into(),
            ));
        }
        (Some(at), None) => Some(at),
        (None, Some(secs)) => Some(unix_now().saturating_add(secs)),
        (None, None) => None,
    };
    let grants: Vec<(String, String)> =
        body.grants.into_iter().map(|g| (g.api, g.scopes)).collect();
    created(reg.create_api_key(&body.name, &grants, expires_at).await?)
}

async fn revoke(
    State(s): State<HttpsState>,
    m: Method,
    h: HeaderMap,
    p: Peer,
    Path(name): Path<String>,
) -> AdminResult {
    let reg = caller(&s, &m, &h, p.as_ref().map(|e| &e.0)).await?;
    let key = reg.revoke_api_key(&name).await?;
    if let Some(lists) = &s.status {
        lists.invalidate();
    }
    ok(json!({ "name": key.name, "revoked": true }))
}
