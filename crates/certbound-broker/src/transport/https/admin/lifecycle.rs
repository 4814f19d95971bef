//! `/admin/v1/ca...`, `/claims...`, `/services...`, `/devices/sign-csr`
//! and `/keys/{kid}/retire`: the PKI side of what `certbound ca`, `claim`,
//! `service`, `device sign-csr` and `keys retire` manage. Private keys made
//! here (claims, services) are in the answer only; the server keeps none.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::{AdminResult, HttpsState, Peer, caller, created, ok};
use crate::error::BrokerError;

/// The routes (nested under `/admin/v1`).
pub(super) fn routes() -> Router<HttpsState> {
    Router::new()
        .route("/ca", get(show_ca))
        .route("/ca/rotate-issuing", post(rotate_issuing))
        .route("/ca/trusted", get(list_trusted).post(trust))
        .route("/ca/trusted/{name}", delete(untrust))
        .route("/claims", get(list_claims).post(create_claim))
        .route("/claims/{id}/revoke", post(revoke_claim))
        .route("/services", get(list_services).post(provision_service))
        .route("/services/{name}/revoke", post(revoke_service))
        .route("/devices/sign-csr", post(sign_csr))
        .route("/keys/{kid}/retire", post(retire_key))
}

macro_rules! admin {
    ($state:expr, $method:expr, $headers:expr, $peer:expr) => {
        caller(&$state, &$method, &$headers, $peer.as_ref().map(|e| &e.0)).await?
    };
}

/// Reads a file the registry wrote into a scratch directory.
fn read(path: &std::path::Path) -> Result<String, BrokerError> {
    std::fs::read_to_string(path).map_err(BrokerError::io(path))
}

fn scratch() -> Result<tempfile::TempDir, BrokerError> {
    tempfile::tempdir().map_err(|e| BrokerError::io(std::env::temp_dir())(e))
}

async fn show_ca(State(s): State<HttpsState>, m: Method, h: HeaderMap, p: Peer) -> AdminResult {
    let reg = admin!(s, m, h, p);
    let cas: Vec<_> = reg
        .issuing_cas()?
        .into_iter()
        .map(|c| {
            json!({
                "serial": c.serial_hex, "subject": c.subject, "not_before": c.not_before,
                "not_after": c.not_after, "current": c.current,
            })
        })
        .collect();
    ok(cas)
}

/// Needs the root key online (`pki/root-ca.key.pem`); with the root key
/// offline this is refused (400) and stays a CLI operation where the key is.
async fn rotate_issuing(
    State(s): State<HttpsState>,
    m: Method,
    h: HeaderMap,
    p: Peer,
) -> AdminResult {
    let reg = admin!(s, m, h, p);
    let rotated = reg.rotate_issuing_ca().await?;
    ok(json!({
        "old_serial": rotated.old_serial,
        "new_serial": rotated.new_serial,
        "new_not_after": rotated.new_not_after,
    }))
}

async fn list_trusted(
    State(s): State<HttpsState>,
    m: Method,
    h: HeaderMap,
    p: Peer,
) -> AdminResult {
    let reg = admin!(s, m, h, p);
    ok(reg.trusted_cas().await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TrustBody {
    name: String,
    ca_pem: String,
    jit_group: Option<String>,
}

async fn trust(
    State(s): State<HttpsState>,
    m: Method,
    h: HeaderMap,
    p: Peer,
    Json(body): Json<TrustBody>,
) -> AdminResult {
    let reg = admin!(s, m, h, p);
    created(
        reg.trust_external_ca(&body.name, &body.ca_pem, body.jit_group.as_deref())
            .await?,
    )
}

async fn untrust(
    State(s): State<HttpsState>,
    m: Method,
    h: HeaderMap,
    p: Peer,
    Path(name): Path<String>,
) -> AdminResult {
    let reg = admin!(s, m, h, p);
    reg.untrust_external_ca(&name).await?;
    ok(json!({ "name": name, "trusted": false }))
}

async fn list_claims(State(s): State<HttpsState>, m: Method, h: HeaderMap, p: Peer) -> AdminResult {
    let reg = admin!(s, m, h, p);
    ok(reg.store.list_claims().await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewClaim {
    group: String,
    uses: u64,
    ttl_secs: u64,
    id_pattern: Option<String>,
    allowlist: Option<Vec<String>>,
}

async fn create_claim(
    State(s): State<HttpsState>,
    m: Method,
    h: HeaderMap,
    p: Peer,
    Json(body): Json<NewClaim>,
) -> AdminResult {
    let reg = admin!(s, m, h, p);
    let dir = scratch()?;
    let made = reg
        .create_claim(
            &body.group,
            body.uses,
            body.ttl_secs,
            body.id_pattern.as_deref(),
            body.allowlist,
            dir.path(),
        )
        .await?;
    created(json!({
        "claim": made.claim,
        "cert_pem": read(&made.cert_file)?,
        "key_pem": read(&made.key_file)?,
    }))
}

async fn revoke_claim(
    State(s): State<HttpsState>,
    m: Method,
    h: HeaderMap,
    p: Peer,
    Path(id): Path<String>,
) -> AdminResult {
    let reg = admin!(s, m, h, p);
    reg.revoke_claim(&id).await?;
    ok(json!({ "id": id, "revoked": true }))
}

async fn list_services(
    State(s): State<HttpsState>,
    m: Method,
    h: HeaderMap,
    p: Peer,
) -> AdminResult {
    let reg = admin!(s, m, h, p);
    ok(reg.list_service_certs().await?)
}

fn default_service_days() -> u32 {
    90
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewService {
    name: String,
    #[serde(default = "default_service_days")]
    cert_days: u32,
}

async fn provision_service(
    State(s): State<HttpsState>,
    m: Method,
    h: HeaderMap,
    p: Peer,
    Json(body): Json<NewService>,
) -> AdminResult {
    let reg = admin!(s, m, h, p);
    let dir = scratch()?;
    let made = reg
        .provision_service(&body.name, dir.path(), body.cert_days)
        .await?;
    created(json!({
        "name": made.id,
        "serial": made.serial,
        "thumbprint": made.thumbprint,
        "not_after": made.not_after,
        "cert_pem": read(&made.cert_file)?,
        "key_pem": read(&made.key_file)?,
    }))
}

async fn revoke_service(
    State(s): State<HttpsState>,
    m: Method,
    h: HeaderMap,
    p: Peer,
    Path(name): Path<String>,
) -> AdminResult {
    let reg = admin!(s, m, h, p);
    ok(reg.revoke_service(&name).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CsrBody {
    id: String,
    /// The PKCS#10 request, PEM.
    csr_pem: String,
    #[serde(default)]
    groups: Vec<String>,
    cert_days: Option<u32>,
}

async fn sign_csr(
    State(s): State<HttpsState>,
    m: Method,
    h: HeaderMap,
    p: Peer,
    Json(body): Json<CsrBody>,
) -> AdminResult {
    let reg = admin!(s, m, h, p);
    created(
        reg.sign_csr(
            body.csr_pem.as_bytes(),
            &body.id,
            &body.groups,
            body.cert_days,
        )
        .await?,
    )
}

async fn retire_key(
    State(s): State<HttpsState>,
    m: Method,
    h: HeaderMap,
    p: Peer,
    Path(kid): Path<String>,
) -> AdminResult {
    let reg = admin!(s, m, h, p);
    let retire_after = reg.retire_other_key(&kid).await?;
    ok(json!({ "kid": kid, "retire_after": retire_after }))
}
