//! The admin API `/admin/v1/...`: everything the CLI manages, for callers
//! holding a certbound JWT for the admin API (`urn:certbound:admin`) with
//! `admin:read` (GET) or `admin:write` (changes). Described by
//! `/admin/v1/openapi.json` (checked against these routes by a test).

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use certbound_verify::http::PeerCertificates;
use serde::Deserialize;
use serde_json::{Value, json};

use super::HttpsState;
use crate::clock::unix_now;
use crate::error::BrokerError;
use crate::store::DeviceStatus;
use certbound_registry::RegistryError;

/// The OpenAPI 3.1 description of this API.
pub const OPENAPI: &str = include_str!("openapi.json");

/// The admin routes (nested under `/admin/v1`).
pub fn routes() -> Router<HttpsState> {
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/apis", get(list_apis).post(create_api))
        .route("/apis/{id}/alg", put(set_api_alg))
        .route("/groups", get(list_groups).post(create_group))
        .route("/devices", get(list_devices).post(provision_device))
        .route("/devices/{id}", get(show_device))
        .route("/devices/{id}/{action}", post(device_action))
        .route("/clients", get(list_clients).post(create_client))
        .route("/clients/{id}", axum::routing::delete(delete_client))
        .route("/clients/{id}/rotate-secret", post(rotate_secret))
        .route(
            "/registration-tokens",
            get(super::admin_registration::list_tokens)
                .post(super::admin_registration::create_token),
        )
        .route(
            "/registration-tokens/{id}",
            axum::routing::delete(super::admin_registration::revoke_token),
        )
        .route("/revocations", post(revoke_token))
        .route("/keys", get(list_keys))
        .route("/keys/rotate", post(rotate_keys))
        .route("/audit", get(audit))
        .merge(roles::routes())
        .merge(super::admin_api_keys::routes())
        .merge(attrs::routes())
        .merge(grants::routes())
        .merge(lifecycle::routes())
        .merge(policy::routes())
        .merge(console::routes())
        .fallback(json_errors::no_such_route)
        .layer(axum::middleware::map_response(json_errors::to_json))
}

mod attrs;
mod auth;
mod console;
mod grants;
mod json_errors;
mod lifecycle;
mod policy;
mod roles;

pub(crate) use auth::{authenticate, caller, guard};

/// An admin API error: `{"error", "message"}`.
#[derive(Debug)]
pub(crate) struct AdminError(
    pub(crate) StatusCode,
    pub(crate) &'static str,
    pub(crate) String,
);

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let mut r = (self.0, Json(json!({ "error": self.1, "message": self.2 }))).into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"certbound-admin\""),
            );
        }
        r
    }
}

impl From<crate::store::StoreError> for AdminError {
    fn from(e: crate::store::StoreError) -> Self {
        RegistryError::from(e).into()
    }
}

impl From<BrokerError> for AdminError {
    fn from(e: BrokerError) -> Self {
        match e {
            BrokerError::Registry(e) => e.into(),
            BrokerError::Invalid(_) | BrokerError::Pki(_) => {
                AdminError(StatusCode::BAD_REQUEST, "invalid", e.to_string())
            }
            e => internal(e.to_string()),
        }
    }
}

/// The one mapping of operator-side errors to admin API answers.
impl From<RegistryError> for AdminError {
    fn from(e: RegistryError) -> Self {
        let (status, code) = match &e {
            RegistryError::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            RegistryError::Conflict { .. } => (StatusCode::CONFLICT, "conflict"),
            RegistryError::Revoked { .. } => (StatusCode::CONFLICT, "revoked"),
            RegistryError::Invalid(_) | RegistryError::Pki(_) => {
                (StatusCode::BAD_REQUEST, "invalid")
            }
            _ => return internal(e.to_string()),
        };
        AdminError(status, code, e.to_string())
    }
}

/// A server failure: logged in full, answered without internals.
fn internal(message: String) -> AdminError {
    tracing::error!(error = %message, "admin API failure");
    AdminError(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "the server failed to complete the request; its log has the cause".into(),
    )
}

pub(super) type AdminResult = Result<Response, AdminError>;

macro_rules! admin {
    ($state:expr, $method:expr, $headers:expr, $peer:expr) => {
        caller(&$state, &$method, &$headers, $peer.as_ref().map(|e| &e.0)).await?
    };
}

pub(super) fn ok(value: impl serde::Serialize) -> AdminResult {
    Ok(Json(value).into_response())
}

pub(super) fn created(value: impl serde::Serialize) -> AdminResult {
    Ok((StatusCode::CREATED, Json(value)).into_response())
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

pub(super) type Peer = Option<Extension<PeerCertificates>>;

async fn list_apis(State(s): State<HttpsState>, m: Method, h: HeaderMap, p: Peer) -> AdminResult {
    let reg = admin!(s, m, h, p);
    ok(reg.apis_with_algs().await?)
}

#[derive(Deserialize)]
struct NewApi {
    id: String,
    scopes: String,
    #[serde(default = "default_ttl")]
    ttl_secs: u64,
    #[serde(default = "default_format")]
    format: String,
    /// `ES256` (default), or for a JWT API `RS256`, `PS256`, `EdDSA`.
    #[serde(default)]
    alg: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAlg {
    alg: String,
}
fn default_ttl() -> u64 {
    3600
}
fn default_format() -> String {
    "cwt".into()
}

async fn create_api(
    State(s): State<HttpsState>,
    m: Method,
    h: HeaderMap,
    p: Peer,
    Json(body): Json<NewApi>,
) -> AdminResult {
    let reg = admin!(s, m, h, p);
    let alg = body
        .alg
        .as_deref()
        .map(certbound_registry::registry::parse_alg)
        .transpose()?;
    let api = reg
        .create_api_with_alg(&body.id, &body.scopes, body.ttl_secs, &body.format, alg)
        .await?;
    reload_keys(&s, &reg).await;
    created(api)
}

/// Reloads this instance's key ring at once (a key an API just asked for
/// signs its first token without waiting for the next reload).
async fn reload_keys(s: &HttpsState, reg: &certbound_registry::Registry) {
    match crate::keys::KeyRing::load(&reg.store, &reg.data.key_dir()).await {
        Ok(ring) => s.keys.replace(ring),
        Err(e) => tracing::warn!(error = %e, "could not reload the key ring"),
    }
}

async fn set_api_alg(
    State(s): State<HttpsState>,
    m: Method,
    h: HeaderMap,
    p: Peer,
    Path(id): Path<String>,
    Json(body): Json<NewAlg>,
) -> AdminResult {
    let reg = admin!(s, m, h, p);
    let alg = certbound_registry::registry::parse_alg(&body.alg)?;
    let changed = reg.set_api_alg(&id, alg).await?;
    reload_keys(&s, &reg).await;
    ok(changed)
}

async fn list_groups(State(s): State<HttpsState>, m: Method, h: HeaderMap, p: Peer) -> AdminResult {
    let reg = admin!(s, m, h, p);
    let mut groups: Vec<Value> = Vec::new();
    for (name, grants) in reg.store.list_groups().await? {
        let roles = reg.group_roles(&name).await?;
        groups.push(json!({ "name": name, "grants": grants, "roles": roles }));
    }
    ok(groups)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GrantBody {
    pub(super) api: String,
    pub(super) scopes: String,
}

#[derive(Deserialize)]
struct NewGroup {
    name: String,
    #[serde(default)]
    grants: Vec<GrantBody>,
}

async fn create_group(
    State(s): State<HttpsState>,
    m: Method,
    h: HeaderMap,
    p: Peer,
    Json(body): Json<NewGroup>,
) -> AdminResult {
    let reg = admin!(s, m, h, p);
    let grants: Vec<(String, String)> =
        body.grants.into_iter().map(|g| (g.api, g.scopes)).collect();
    let grants = reg.create_group(&body.name, &grants).await?;
    created(json!({ "name": body.name, "grants": grants }))
}

async fn list_devices(
    State(s): State<HttpsState>,
    m: Method,
    h: HeaderMap,
    p: Peer,
    q: Result<Query<console::DevicesQuery>, axum::extract::rejection::QueryRejection>,
) -> AdminResult {
    let reg = admin!(s, m, h, p);
    let Query(q) =
        q.map_err(|e| AdminError(StatusCode::BAD_REQUEST, "invalid_request", e.body_text()))?;
    console::list_devices(&reg.store, q).await
}

async fn show_device(
    State(s): State<HttpsState>,
    m: Method,
    h: HeaderMap,
    p: Peer,
    Path(id): Path<String>,
) -> AdminResult {
    let reg = admin!(s, m, h, p);
    console::show_device(&reg, &id).await
}

#[derive(Deserialize)]
struct NewDevice {
    id: String,
    #[serde(default)]
    groups: Vec<String>,
    cert_days: Option<u32>,
}

/// Issues a key and certificate and returns them (PEM) in the answer: the
/// key exists only in this response and is never stored by the server.
async fn provision_device(
    State(s): State<HttpsState>,
    m: Method,
    h: HeaderMap,
    p: Peer,
    Json(body): Json<NewDevice>,
) -> AdminResult {
    let reg = admin!(s, m, h, p);
    let scratch = tempfile::tempdir().map_err(|e| BrokerError::io(std::env::temp_dir())(e))?;
    let provisioned = reg
        .provision_device(&body.id, &body.groups, scratch.path(), body.cert_days)
        .await?;
    let key_pem = std::fs::read_to_string(&provisioned.key_file)
        .map_err(BrokerError::io(&provisioned.key_file))?;
    let cert_pem = std::fs::read_to_string(&provisioned.cert_file)
        .map_err(BrokerError::io(&provisioned.cert_file))?;
    created(json!({
        "id": provisioned.id,
        "serial": provisioned.serial,
        "thumbprint": provisioned.thumbprint,
        "not_after": provisioned.not_after,
        "cert_pem": cert_pem,
        "key_pem": key_pem,
    }))
}

#[derive(Deserialize, Default)]
struct Reason {
    #[serde(default)]
    reason: Option<String>,
}

async fn device_action(
    State(s): State<HttpsState>,
    m: Method,
    h: HeaderMap,
    p: Peer,
    Path((id, action)): Path<(String, String)>,
    body: Option<Json<Reason>>,
) -> AdminResult {
    let reg = admin!(s, m, h, p);
    let status = match action.as_str() {
        "suspend" => DeviceStatus::Suspended,
        "resume" => DeviceStatus::Active,
        "revoke" => DeviceStatus::Revoked,
        other => {
            return Err(AdminError(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("unknown device action {other:?}: use suspend, resume or revoke"),
            ));
        }
    };
    let reason = body
        .and_then(|Json(r)| r.reason)
        .unwrap_or_else(|| "admin API".into());
    reg.set_device_status(&id, status, &reason).await?;
    if let Some(lists) = &s.status {
        lists.invalidate();
    }
    ok(json!({ "id": id, "status": status }))
}

async fn list_clients(
    State(s): State<HttpsState>,
    m: Method,
    h: HeaderMap,
    p: Peer,
) -> AdminResult {
    let reg = admin!(s, m, h, p);
    ok(reg.list_clients().await?)
}

#[derive(Deserialize)]
struct NewClientBody {
    name: String,
    #[serde(default)]
    grants: Vec<GrantBody>,
    tls_subject: Option<String>,
    /// `private_key_jwt` with this JWK Set (a JSON object).
    jwks: Option<Value>,
    /// `private_key_jwt` with the JWK Set at this URL.
    jwks_uri: Option<String>,
}

async fn create_client(
    State(s): State<HttpsState>,
    m: Method,
    h: HeaderMap,
    p: Peer,
    Json(body): Json<NewClientBody>,
) -> AdminResult {
    let reg = admin!(s, m, h, p);
    let grants: Vec<(String, String)> =
        body.grants.into_iter().map(|g| (g.api, g.scopes)).collect();
    use crate::registry::ClientCredential;
    let credential = match (body.tls_subject, body.jwks, body.jwks_uri) {
        (None, Some(jwks), None) => ClientCredential::Jwks(jwks.to_string()),
        (None, None, Some(uri)) => ClientCredential::JwksUri(uri),
        (Some(dn), None, None) => ClientCredential::TlsSubject(dn),
        (None, None, None) => {
            ClientCredential::Secret(crate::store::ClientAuthMethod::ClientSecret)
        }
        _ => {
            return Err(AdminError(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "give one of tls_subject, jwks and jwks_uri (or none: a secret)".into(),
            ));
        }
    };
    created(
        reg.create_client_with(&body.name, &grants, credential)
            .await?,
    )
}

async fn delete_client(
    State(s): State<HttpsState>,
    m: Method,
    h: HeaderMap,
    p: Peer,
    Path(id): Path<String>,
) -> AdminResult {
    let reg = admin!(s, m, h, p);
    let client = reg.delete_client(&id).await?;
    if let Some(lists) = &s.status {
        lists.invalidate();
    }
    ok(json!({ "client_id": client.id, "deleted": true }))
}

async fn rotate_secret(
    State(s): State<HttpsState>,
    m: Method,
    h: HeaderMap,
    p: Peer,
    Path(id): Path<String>,
) -> AdminResult {
    let reg = admin!(s, m, h, p);
    ok(reg.rotate_client_secret(&id).await?)
}

#[derive(Deserialize)]
struct RevokeBody {
    token: String,
}

async fn revoke_token(
    State(s): State<HttpsState>,
    m: Method,
    h: HeaderMap,
    p: Peer,
    Json(body): Json<RevokeBody>,
) -> AdminResult {
    let reg = admin!(s, m, h, p);
    let now = unix_now();
    let found = s.oauth.token_status(&body.token, now).await.map_err(|e| {
        AdminError(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.description,
        )
    })?;
    let Some((token, holder, _)) = found else {
        return Err(AdminError(
            StatusCode::BAD_REQUEST,
            "invalid",
            "not a token this server signed (or its key was retired)".into(),
        ));
    };
    reg.store.revoke_token(&token.record(holder), now).await?;
    reg.store
        .append_audit(&[crate::store::AuditEvent {
            ts_ms: now.saturating_mul(1000),
            actor: reg.actor.clone(),
            action: "token.revoked".into(),
            subject: token.sub.clone(),
            outcome: "ok".into(),
            detail: format!("jti={}", token.jti),
        }])
        .await?;
    if let Some(lists) = &s.status {
        lists.invalidate();
    }
    ok(json!({ "jti": token.jti, "sub": token.sub, "revoked": true }))
}

async fn list_keys(State(s): State<HttpsState>, m: Method, h: HeaderMap, p: Peer) -> AdminResult {
    let _reg = admin!(s, m, h, p);
    ok(s.keys.ring().schedules())
}

#[derive(Deserialize, Default)]
struct RotateBody {
    grace_secs: Option<u64>,
}

async fn rotate_keys(
    State(s): State<HttpsState>,
    m: Method,
    h: HeaderMap,
    p: Peer,
    body: Option<Json<RotateBody>>,
) -> AdminResult {
    let reg = admin!(s, m, h, p);
    let grace = body
        .and_then(|Json(b)| b.grace_secs)
        .unwrap_or(crate::keys::DEFAULT_ROTATION_GRACE);
    ok(reg.rotate_keys(grace).await?)
}

async fn audit(
    State(s): State<HttpsState>,
    m: Method,
    h: HeaderMap,
    p: Peer,
    q: Result<Query<console::AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> AdminResult {
    let reg = admin!(s, m, h, p);
    let Query(q) =
        q.map_err(|e| AdminError(StatusCode::BAD_REQUEST, "invalid_request", e.body_text()))?;
    console::audit(&reg.store, q).await
}
