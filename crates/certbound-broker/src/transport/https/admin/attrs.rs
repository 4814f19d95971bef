//! Admin API for custom claims: attributes of devices, groups and clients
//! (`GET`/`PATCH .../{id}/attributes`) and the custom claims of an API
//! (`GET`/`PUT /apis/{id}/claims`, the API id percent-encoded).

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use super::{AdminResult, Peer, caller, ok};
use crate::store::AttrHolder;
use crate::store::attributes::{ClaimDecl, ClaimValue};
use crate::transport::https::HttpsState;

/// The routes (merged into the admin router).
pub(super) fn routes() -> Router<HttpsState> {
    Router::new()
        .route(
            "/devices/{id}/attributes",
            get(show_device).patch(change_device),
        )
        .route(
            "/groups/{id}/attributes",
            get(show_group).patch(change_group),
        )
        .route(
            "/clients/{id}/attributes",
            get(show_client).patch(change_client),
        )
        .route(
            "/api-keys/{name}/attributes",
            get(show_api_key).patch(change_api_key),
        )
        .route("/apis/{id}/claims", get(show_claims).put(set_claims))
}

/// `PATCH` body: attributes to set (JSON text, integer or boolean values)
/// and names to remove.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AttrPatch {
    #[serde(default)]
    set: BTreeMap<String, ClaimValue>,
    #[serde(default)]
    unset: Vec<String>,
}

/// `PUT` body: the API's declarations (replacing the previous ones).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClaimsBody {
    #[serde(default)]
    claims: Vec<ClaimDecl>,
}

async fn show(
    s: HttpsState,
    m: Method,
    h: HeaderMap,
    p: Peer,
    kind: AttrHolder,
    id: String,
) -> AdminResult {
    let reg = caller(&s, &m, &h, p.as_ref().map(|e| &e.0)).await?;
    ok(reg.show_attributes(kind, &id).await?)
}

async fn change(
    s: HttpsState,
    m: Method,
    h: HeaderMap,
    p: Peer,
    kind: AttrHolder,
    id: String,
    body: AttrPatch,
) -> AdminResult {
    let reg = caller(&s, &m, &h, p.as_ref().map(|e| &e.0)).await?;
    let set: Vec<(String, ClaimValue)> = body.set.into_iter().collect();
    ok(reg.change_attributes(kind, &id, &set, &body.unset).await?)
}

async fn show_device(
    State(s): State<HttpsState>,
    m: Method,
    h: HeaderMap,
    p: Peer,
    Path(id): Path<String>,
) -> AdminResult {
    show(s, m, h, p, AttrHolder::Device, id).await
}

async fn show_group(
    State(s): State<HttpsState>,
    m: Method,
    h: HeaderMap,
    p: Peer,
    Path(id): Path<String>,
) -> AdminResult {
    show(s, m, h, p, AttrHolder::Group, id).await
}

async fn show_client(
    State(s): State<HttpsState>,
    m: Method,
    h: HeaderMap,
    p: Peer,
    Path(id): Path<String>,
) -> AdminResult {
    show(s, m, h, p, AttrHolder::Client, id).await
}

async fn change_device(
    State(s): State<HttpsState>,
    m: Method,
    h: HeaderMap,
    p: Peer,
    Path(id): Path<String>,
    Json(body): Json<AttrPatch>,
) -> AdminResult {
    change(s, m, h, p, AttrHolder::Device, id, body).await
}

async fn change_group(
    State(s): State<HttpsState>,
    m: Method,
    h: HeaderMap,
    p: Peer,
    Path(id): Path<String>,
    Json(body): Json<AttrPatch>,
) -> AdminResult {
    change(s, m, h, p, AttrHolder::Group, id, body).await
}

async fn change_client(
    State(s): State<HttpsState>,
    m: Method,
    h: HeaderMap,
    p: Peer,
    Path(id): Path<String>,
    Json(body): Json<AttrPatch>,
) -> AdminResult {
    change(s, m, h, p, AttrHolder::Client, id, body).await
}

async fn show_api_key(
    State(s): State<HttpsState>,
    m: Method,
    h: HeaderMap,
    p: Peer,
    Path(name): Path<String>,
) -> AdminResult {
    show(s, m, h, p, AttrHolder::ApiKey, name).await
}

async fn change_api_key(
    State(s): State<HttpsState>,
    m: Method,
    h: HeaderMap,
    p: Peer,
    Path(name): Path<String>,
    Json(body): Json<AttrPatch>,
) -> AdminResult {
    change(s, m, h, p, AttrHolder::ApiKey, name, body).await
}

async fn show_claims(
    State(s): State<HttpsState>,
    m: Method,
    h: HeaderMap,
    p: Peer,
    Path(id): Path<String>,
) -> AdminResult {
    let reg = caller(&s, &m, &h, p.as_ref().map(|e| &e.0)).await?;
    ok(serde_json::json!({ "api": id, "claims": reg.api_claims(&id).await? }))
}

async fn set_claims(
    State(s): State<HttpsState>,
    m: Method,
    h: HeaderMap,
    p: Peer,
    Path(id): Path<String>,
    Json(body): Json<ClaimsBody>,
) -> AdminResult {
    let reg = caller(&s, &m, &h, p.as_ref().map(|e| &e.0)).await?;
    ok(reg.set_api_claims(&id, &body.claims).await?)
}
