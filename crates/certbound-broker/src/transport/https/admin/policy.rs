//! `/admin/v1/policy...`: policy as code over the API, as `certbound
//! export`, `plan` and `apply` do it (docs/policy.md). The body is the
//! policy TOML. Unlike the CLI, `${VAR}` is not substituted from the
//! server's environment (a caller must not read it): a document using
//! `${...}` is refused (`$${` is a literal `${`).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use certbound_registry::policy::{self, ApplyOptions, Plan, PolicyDoc};
use certbound_registry::registry::Registry;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AdminError, AdminResult, HttpsState, Peer, caller, ok};

/// The routes (nested under `/admin/v1`).
pub(super) fn routes() -> Router<HttpsState> {
    Router::new()
        .route("/policy", get(export))
        .route("/policy/plan", post(plan))
        .route("/policy/apply", post(apply))
}

macro_rules! admin {
    ($state:expr, $method:expr, $headers:expr, $peer:expr) => {
        caller(&$state, &$method, &$headers, $peer.as_ref().map(|e| &e.0)).await?
    };
}

async fn export(State(s): State<HttpsState>, m: Method, h: HeaderMap, p: Peer) -> AdminResult {
    let reg = admin!(s, m, h, p);
    let text = policy::export(&reg.store).await?.to_toml()?;
    Ok((
        [(header::CONTENT_TYPE, "application/toml; charset=utf-8")],
        text,
    )
        .into_response())
}

/// Parses the body: UTF-8 TOML, no environment substitution.
fn document(body: &Bytes) -> Result<PolicyDoc, AdminError> {
    let text = std::str::from_utf8(body).map_err(|_| {
        AdminError(
            StatusCode::BAD_REQUEST,
            "invalid",
            "the policy document must be UTF-8 TOML".into(),
        )
    })?;
    Ok(PolicyDoc::parse(text, |_| None)?)
}

/// The answer of plan and apply: one entry per change, and the text
/// `certbound plan` prints.
fn changes(plan: &Plan) -> Value {
    let changes: Vec<Value> = plan
        .changes
        .iter()
        .map(|c| {
            let op = match c.op {
                policy::Op::Add => "create",
                policy::Op::Change => "update",
                policy::Op::Remove => "delete",
            };
            json!({ "op": op, "kind": c.kind, "name": c.name, "detail": c.details.join("; ") })
        })
        .collect();
    json!({ "changes": changes, "needs_prune": plan.needs_prune, "diff": plan.render() })
}

async fn plan(
    State(s): State<HttpsState>,
    m: Method,
    h: HeaderMap,
    p: Peer,
    body: Bytes,
) -> AdminResult {
    // Planning writes nothing, but it is the first step of a change: like
    // every POST it needs admin:write.
    let reg = admin!(s, m, h, p);
    let doc = document(&body)?;
    ok(changes(&policy::plan(&reg.store, &doc).await?))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ApplyQuery {
    /// Also remove groups devices belong to and APIs with unexpired tokens.
    #[serde(default)]
    prune: bool,
}

async fn apply(
    State(s): State<HttpsState>,
    m: Method,
    h: HeaderMap,
    p: Peer,
    Query(q): Query<ApplyQuery>,
    body: Bytes,
) -> AdminResult {
    let reg: Registry = admin!(s, m, h, p);
    let doc = document(&body)?;
    let applied = policy::apply(
        &reg.store,
        &doc,
        &reg.actor,
        ApplyOptions {
            prune: q.prune,
            dry_run: false,
        },
    )
    .await?;
    reg.ensure_api_signing_keys().await?;
    super::reload_keys(&s, &reg).await;
    if let Some(lists) = &s.status {
        lists.invalidate();
    }
    let mut answer = changes(&applied.plan);
    answer["created_clients"] = json!(applied.created_clients);
    answer["created_api_keys"] = json!(applied.created_api_keys);
    ok(answer)
}
