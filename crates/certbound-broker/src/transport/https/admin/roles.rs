//! `/admin/v1/roles...`: roles (named sets of permissions across APIs)
//! and who holds them, as `certbound role ...` manages them.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::{AdminError, AdminResult, GrantBody, HttpsState, Peer, caller, created, ok};
use crate::registry::{RoleTarget, parse_grant};

/// The role routes (nested under `/admin/v1`).
pub(super) fn routes() -> Router<HttpsState> {
    Router::new()
        .route("/roles", get(list).post(create))
        .route("/roles/{name}", get(show).delete(delete))
        .route("/roles/{name}/grant", post(grant))
        .route("/roles/{name}/revoke-grant", post(revoke_grant))
        .route("/roles/{name}/assign", post(assign))
        .route("/roles/{name}/unassign", post(unassign))
}

macro_rules! admin {
    ($state:expr, $method:expr, $headers:expr, $peer:expr) => {
        caller(&$state, &$method, &$headers, $peer.as_ref().map(|e| &e.0)).await?
    };
}

async fn list(State(s): State<HttpsState>, m: Method, h: HeaderMap, p: Peer) -> AdminResult {
    let reg = admin!(s, m, h, p);
    ok(reg.list_roles().await?)
}

async fn show(
    State(s): State<HttpsState>,
    m: Method,
    h: HeaderMap,
    p: Peer,
    Path(name): Path<String>,
) -> AdminResult {
    let reg = admin!(s, m, h, p);
    ok(reg.role(&name).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRole {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    grants: Vec<GrantBody>,
}

async fn create(
    State(s): State<HttpsState>,
    m: Method,
    h: HeaderMap,
    p: Peer,
    Json(body): Json<NewRole>,
) -> AdminResult {
    let reg = admin!(s, m, h, p);
    let mut grants = Vec::with_capacity(body.grants.len());
    for g in body.grants {
        // The same checks as `--grant "API=scopes"` (identifier, scope syntax).
        grants.push(parse_grant(&format!("{}={}", g.api, g.scopes))?);
    }
    created(
        reg.create_role(&body.name, &body.description, &grants)
            .await?,
    )
}

#[derive(Deserialize, Default)]
struct Force {
    #[serde(default)]
    force: bool,
}

async fn delete(
    State(s): State<HttpsState>,
    m: Method,
    h: HeaderMap,
    p: Peer,
    Path(name): Path<String>,
    Query(q): Query<Force>,
) -> AdminResult {
    let reg = admin!(s, m, h, p);
    ok(reg.delete_role(&name, q.force).await?)
}

async fn grant(
    State(s): State<HttpsState>,
    m: Method,
    h: HeaderMap,
    p: Peer,
    Path(name): Path<String>,
    Json(body): Json<GrantBody>,
) -> AdminResult {
    let reg = admin!(s, m, h, p);
    ok(reg.set_role_grant(&name, &body.api, &body.scopes).await?)
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
    Path(name): Path<String>,
    Json(body): Json<ApiBody>,
) -> AdminResult {
    let reg = admin!(s, m, h, p);
    ok(reg.remove_role_grant(&name, &body.api).await?)
}

/// Exactly one of `client` (client_id or name), `group` and `apikey` (name).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HolderBody {
    client: Option<String>,
    group: Option<String>,
    apikey: Option<String>,
}

impl HolderBody {
    fn target(self) -> Result<RoleTarget, AdminError> {
        match (self.client, self.group, self.apikey) {
            (Some(c), None, None) => Ok(RoleTarget::Client(c)),
            (None, Some(g), None) => Ok(RoleTarget::Group(g)),
            (None, None, Some(k)) => Ok(RoleTarget::ApiKey(k)),
            _ => Err(AdminError(
                axum::http::StatusCode::BAD_REQUEST,
                "invalid",
                "name exactly one holder: {\"client\": <client_id or name>}, {\"group\": <name>} \
                 or {\"apikey\": <name>}"
                    .into(),
            )),
        }
    }
}

async fn assign(
    State(s): State<HttpsState>,
    m: Method,
    h: HeaderMap,
    p: Peer,
    Path(name): Path<String>,
    Json(body): Json<HolderBody>,
) -> AdminResult {
    let reg = admin!(s, m, h, p);
    ok(reg.assign_role(&name, &body.target()?).await?)
}

async fn unassign(
    State(s): State<HttpsState>,
    m: Method,
    h: HeaderMap,
    p: Peer,
    Path(name): Path<String>,
    Json(body): Json<HolderBody>,
) -> AdminResult {
    let reg = admin!(s, m, h, p);
    ok(reg.unassign_role(&name, &body.target()?).await?)
}
