//! `/admin/v1/apis/{id}/ttl` and `/admin/v1/groups/{id}...`: changes to
//! existing APIs and groups, and devices' group memberships, as `certbound api set-ttl`, `group grant`,
//! `group revoke-grant` and `group delete` make them. They go through the
//! registry (audited, and on the change feed: running brokers apply them
//! from their next token request on).

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::routing::{delete, post, put};
use axum::{Json, Router};
use certbound_registry::RegistryError;
use serde::Deserialize;

use super::{AdminError, AdminResult, GrantBody, HttpsState, Peer, caller, ok};

/// The routes (nested under `/admin/v1`).
pub(super) fn routes() -> Router<HttpsState> {
    Router::new()
        .route("/apis/{id}/ttl", put(set_ttl))
        .route("/groups/{id}", delete(delete_group))
        .route("/groups/{id}/grant", post(grant))
        .route("/groups/{id}/revoke-grant", post(revoke_grant))
        .route(
            "/devices/{id}/groups/{group}",
            put(join_group).delete(leave_group),
        )
}

macro_rules! admin {
    ($state:expr, $method:expr, $headers:expr, $peer:expr) => {
        caller(&$state, &$method, &$headers, $peer.as_ref().map(|e| &e.0)).await?
    };
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TtlBody {
    ttl_secs: u64,
}

async fn set_ttl(
    State(s): State<HttpsState>,
    m: Method,
    h: HeaderMap,
    p: Peer,
    Path(id): Path<String>,
    Json(body): Json<TtlBody>,
) -> AdminResult {
    let reg = admin!(s, m, h, p);
    ok(reg.set_api_ttl(&id, body.ttl_secs).await?)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Force {
    #[serde(default)]
    force: bool,
}

async fn delete_group(
    State(s): State<HttpsState>,
    m: Method,
    h: HeaderMap,
    p: Peer,
    Path(id): Path<String>,
    Query(q): Query<Force>,
) -> AdminResult {
    let reg = admin!(s, m, h, p);
    match reg.delete_group(&id, q.force).await {
        Ok(deleted) => ok(deleted),
        // Refused with members: say how over the API.
        Err(RegistryError::Invalid(m)) => Err(AdminError(
            StatusCode::BAD_REQUEST,
            "invalid",
            m.replace("pass --force", "pass force=true"),
        )),
        Err(e) => Err(e.into()),
    }
}

async fn grant(
    State(s): State<HttpsState>,
    m: Method,
    h: HeaderMap,
    p: Peer,
    Path(id): Path<String>,
    Json(body): Json<GrantBody>,
) -> AdminResult {
    let reg = admin!(s, m, h, p);
    ok(reg.set_grant(&id, &body.api, &body.scopes).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiBody {
    api: String,
}

async fn revoke_grant(
    State(s): State<HttpsState>,
    m: Method,
    h: HeaderMap,
    p: Peer,
    Path(id): Path<String>,
    Json(body): Json<ApiBody>,
) -> AdminResult {
    let reg = admin!(s, m, h, p);
    ok(reg.remove_grant(&id, &body.api).await?)
}

async fn join_group(
    State(s): State<HttpsState>,
    m: Method,
    h: HeaderMap,
    p: Peer,
    Path((id, group)): Path<(String, String)>,
) -> AdminResult {
    let reg = admin!(s, m, h, p);
    ok(reg.set_device_group(&id, &group, true).await?)
}

async fn leave_group(
    State(s): State<HttpsState>,
    m: Method,
    h: HeaderMap,
    p: Peer,
    Path((id, group)): Path<(String, String)>,
) -> AdminResult {
    let reg = admin!(s, m, h, p);
    ok(reg.set_device_group(&id, &group, false).await?)
}
