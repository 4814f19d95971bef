//! `/admin/v1/registration-tokens`: initial access tokens for dynamic client
//! registration (`POST /oauth/register`), as `certbound client
//! registration-token` manages them.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method};
use serde::Deserialize;
use serde_json::json;

use super::HttpsState;
use super::admin::{AdminResult, GrantBody, Peer, caller, created, ok};
use crate::registry::registration::parse_methods;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewTokenBody {
    #[serde(default)]
    grants: Vec<GrantBody>,
    /// Roles whose grants (as of now) bound the registered clients too.
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    methods: Vec<String>,
    #[serde(default = "one")]
    uses: u64,
    #[serde(default = "day")]
    expires_in: u64,
}

fn one() -> u64 {
    1
}

fn day() -> u64 {
    86_400
}

pub(super) async fn list_tokens(
    State(s): State<HttpsState>,
    m: Method,
    h: HeaderMap,
    p: Peer,
) -> AdminResult {
    let reg = caller(&s, &m, &h, p.as_ref().map(|e| &e.0)).await?;
    ok(reg.list_registration_tokens().await?)
}

pub(super) async fn create_token(
    State(s): State<HttpsState>,
    m: Method,
    h: HeaderMap,
    p: Peer,
    Json(body): Json<NewTokenBody>,
) -> AdminResult {
    let reg = caller(&s, &m, &h, p.as_ref().map(|e| &e.0)).await?;
    let grants: Vec<(String, String)> =
        body.grants.into_iter().map(|g| (g.api, g.scopes)).collect();
    let methods = if body.methods.is_empty() {
        vec!["private_key_jwt".to_string()]
    } else {
        body.methods
    };
    let methods = parse_methods(&methods)?;
    if !(1..=366 * 86_400).contains(&body.expires_in) {
        return Err(super::admin::AdminError(
            axum::http::StatusCode::BAD_REQUEST,
            "invalid_request",
            "expires_in must be between 1 second and 366 days".into(),
        ));
    }
    created(
        reg.create_registration_token_with_roles(
            &grants,
            &body.roles,
            &methods,
            body.uses,
            body.expires_in,
        )
        .await?,
    )
}

pub(super) async fn revoke_token(
    State(s): State<HttpsState>,
    m: Method,
    h: HeaderMap,
    p: Peer,
    Path(id): Path<String>,
) -> AdminResult {
    let reg = caller(&s, &m, &h, p.as_ref().map(|e| &e.0)).await?;
    reg.revoke_registration_token(&id).await?;
    ok(json!({ "id": id, "revoked": true }))
}
