//! The operator console under `/ui` (docs/console.md): the sign-in pages,
//! sessions, and the front end embedded from `ui-dist/`. Every `/ui`
//! response carries the console's security headers; nothing of the app is
//! served without a session (HTML routes redirect to `/ui/login`, assets
//! answer 401).

pub(crate) mod assets;
pub(crate) mod pages;
pub(crate) mod session;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use certbound_proto::form::{FormLimits, parse_form};
use certbound_verify::http::RemoteAddr;
use serde::Deserialize;
use serde_json::json;

use super::HttpsState;
use super::admin::AdminError;
use crate::clock::unix_now;
use crate::registry::ADMIN_API;
use crate::store::AuditEvent;
use session::{ADMIN_SCOPES, SessionRefusal};

/// The console's Content-Security-Policy.
pub const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Largest body of a console form, bytes.
const FORM_LIMITS: FormLimits = FormLimits {
    max_bytes: 4096,
    max_params: 8,
};

/// The `/ui` routes (empty when `[ui] enabled = false`).
pub fn routes(enabled: bool) -> Router<HttpsState> {
    if !enabled {
        return Router::new();
    }
    Router::new()
        .route("/ui", get(|| async { redirect("/ui/") }))
        .route("/ui/login", get(login_page).post(login))
        .route("/ui/login.css", get(login_css))
        .route("/ui/login/link", get(link_page).post(link_login))
        .route("/ui/logout", post(logout))
        .route("/ui/session", get(show_session))
        .route("/ui/", get(app_root))
        .route("/ui/{*path}", get(app_path))
        .layer(axum::extract::DefaultBodyLimit::max(FORM_LIMITS.max_bytes))
        .layer(axum::middleware::map_response(security_headers))
}

async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // `same-origin`, not `no-referrer`: under `no-referrer` browsers send
    // `Origin: null` with same-origin POSTs (forms and fetch), which the
    // Origin check refuses. No referrer ever leaves for another origin.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

fn redirect(to: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(
            header::LOCATION,
            HeaderValue::from_str(to).unwrap_or(HeaderValue::from_static("/ui/login")),
        )],
    )
        .into_response()
}

fn html(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

#[derive(Deserialize)]
struct ErrorQuery {
    error: Option<String>,
}

async fn login_page(Query(q): Query<ErrorQuery>) -> Response {
    html(pages::login(q.error.as_deref()))
}

async fn login_css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        pages::LOGIN_CSS,
    )
        .into_response()
}

/// Writes a `ui.login` / `ui.logout` audit event now.
async fn audit(
    s: &HttpsState,
    actor: &str,
    action: &str,
    subject: &str,
    outcome: &str,
    detail: String,
) {
    let event = AuditEvent {
        ts_ms: unix_now().saturating_mul(1000),
        actor: actor.to_string(),
        action: action.to_string(),
        subject: subject.to_string(),
        outcome: outcome.to_string(),
        detail,
    };
    if let Err(e) = s.store.append_audit(&[event]).await {
        tracing::warn!(error = %e, "could not audit a console sign-in");
    }
}

fn peer_ip(remote: Option<&Extension<RemoteAddr>>) -> String {
    remote.map_or_else(
        || "unknown".into(),
        |Extension(RemoteAddr(a))| a.ip().to_string(),
    )
}

fn form_of(headers: &HeaderMap, body: &Bytes) -> Option<certbound_proto::form::Form> {
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let is_form = ctype.split(';').next().is_some_and(|t| {
        t.trim()
            .eq_ignore_ascii_case("application/x-www-form-urlencoded")
    });
    if !is_form {
        return None;
    }
    parse_form(body, &FORM_LIMITS).ok()
}

/// A new session for `actor` with `scopes`: its cookie and 303 to `/ui/`.
async fn signed_in(s: &HttpsState, actor: &str, scopes: &str) -> Response {
    let ui = &s.config.ui;
    match session::start(&s.store, actor, scopes, unix_now(), ui.session_max_secs).await {
        Ok((cookie, _)) => {
            let mut r = redirect("/ui/");
            r.headers_mut().insert(
                header::SET_COOKIE,
                session::set_cookie(&cookie, ui.session_max_secs),
            );
            r
        }
        Err(e) => {
            tracing::error!(error = %e, "could not record a console session");
            redirect("/ui/login?error=unavailable")
        }
    }
}

/// What every sign-in form passes first: a same-origin `Origin` when one
/// is sent (login CSRF) and the per-IP rate limit. `Ok(origin)`: the
/// audit detail naming the peer; `Err(answer)` when refused (audited as
/// `ui.login` about `subject`).
async fn login_gate(
    s: &HttpsState,
    headers: &HeaderMap,
    remote: Option<&Extension<RemoteAddr>>,
    subject: &str,
) -> Result<String, Response> {
    let ip = peer_ip(remote);
    let detail = format!("transport=https peer={ip}");
    let (outcome, detail, error) = if !session::origin_ok(headers) {
        ("refused", format!("{detail} cross-origin form"), "origin")
    } else if s.ui.check_login(&ip).is_err() {
        ("rate_limited", detail, "rate_limited")
    } else {
        return Ok(detail);
    };
    audit(s, "ui", "ui.login", subject, outcome, detail).await;
    Err(redirect(&format!("/ui/login?error={error}")))
}

/// `POST /ui/login`: client credentials (form) → a session with the
/// client's admin scopes.
async fn login(
    State(s): State<HttpsState>,
    headers: HeaderMap,
    remote: Option<Extension<RemoteAddr>>,
    body: Bytes,
) -> Response {
    let detail = match login_gate(&s, &headers, remote.as_ref(), "(unauthenticated)").await {
        Ok(detail) => detail,
        Err(refused) => return refused,
    };
    let form = form_of(&headers, &body);
    let field = |n: &str| form.as_ref().and_then(|f| f.get(n)).map(str::to_string);
    let (Some(id), Some(secret)) = (field("client_id"), field("client_secret")) else {
        return redirect("/ui/login?error=credentials");
    };
    let presented = crate::oauth::Presented {
        form_client_id: Some(id.clone()),
        form_client_secret: Some(secret),
        ..Default::default()
    };
    let client = match s.oauth.authenticate_at(&presented, unix_now()).await {
        Ok((client, _)) => client,
        Err(e) => {
            let outcome = if e.status >= 500 {
                "unavailable"
            } else {
                "refused"
            };
            audit(
                &s,
                "ui",
                "ui.login",
                &id,
                outcome,
                format!("{detail} {}", e.description),
            )
            .await;
            let code = if e.status >= 500 {
                "unavailable"
            } else {
                "credentials"
            };
            return redirect(&format!("/ui/login?error={code}"));
        }
    };
    let granted: Vec<&str> = client
        .effective_grants()
        .iter()
        .filter(|g| g.api_id == ADMIN_API)
        .flat_map(|g| g.scopes.iter())
        .filter_map(|sc| ADMIN_SCOPES.iter().find(|a| **a == sc.as_str()).copied())
        .collect();
    let scopes: Vec<&str> = ADMIN_SCOPES
        .iter()
        .copied()
        .filter(|a| granted.contains(a))
        .collect();
    if scopes.is_empty() {
        audit(
            &s,
            "ui",
            "ui.login",
            &client.id,
            "refused",
            format!("{detail} no admin scope granted for {ADMIN_API}"),
        )
        .await;
        return redirect("/ui/login?error=no_admin_scope");
    }
    let actor = format!("admin-client:{}", client.id);
    let scopes = scopes.join(" ");
    audit(
        &s,
        &actor,
        "ui.login",
        &client.id,
        "ok",
        format!("{detail} method=client_secret scopes={scopes}"),
    )
    .await;
    signed_in(&s, &actor, &scopes).await
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// `GET /ui/login/link?token=`: a confirmation page; never consumes it.
async fn link_page(State(s): State<HttpsState>, Query(q): Query<TokenQuery>) -> Response {
    let token = q.token.unwrap_or_default();
    let hash = certbound_registry::credentials::hash_secret(&token);
    let usable = !token.is_empty()
        && s.store
            .ui_login_token_usable(&hash, unix_now())
            .await
            .unwrap_or(false);
    html(pages::link(&token, usable))
}

/// `POST /ui/login/link`: consumes a one-time login token.
async fn link_login(
    State(s): State<HttpsState>,
    headers: HeaderMap,
    remote: Option<Extension<RemoteAddr>>,
    body: Bytes,
) -> Response {
    let detail = match login_gate(&s, &headers, remote.as_ref(), "(link)").await {
        Ok(detail) => detail,
        Err(refused) => return refused,
    };
    let token = form_of(&headers, &body)
        .and_then(|f| f.get("token").map(str::to_string))
        .unwrap_or_default();
    let hash = certbound_registry::credentials::hash_secret(&token);
    match s.store.consume_ui_login_token(&hash, unix_now()).await {
        Ok(Ok(label)) => {
            let actor = format!("ui-login:{label}");
            audit(
                &s,
                &actor,
                "ui.login",
                &label,
                "ok",
                format!("{detail} method=link"),
            )
            .await;
            signed_in(&s, &actor, &ADMIN_SCOPES.join(" ")).await
        }
        Ok(Err(why)) => {
            audit(
                &s,
                "ui",
                "ui.login",
                "(link)",
                "refused",
                format!("{detail} link {}", why.as_str()),
            )
            .await;
            redirect(&format!("/ui/login?error=link_{}", why.as_str()))
        }
        Err(e) => {
            tracing::error!(error = %e, "could not read a console login link");
            redirect("/ui/login?error=unavailable")
        }
    }
}

/// The live session of a request, or why not (401 JSON).
async fn current(
    s: &HttpsState,
    headers: &HeaderMap,
) -> Result<crate::store::UiSession, AdminError> {
    let unauthorized = |why: SessionRefusal| {
        AdminError(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            why.message().into(),
        )
    };
    let cookie = session::cookie_value(headers).ok_or(unauthorized(SessionRefusal::Unknown))?;
    session::lookup(&s.store, cookie, unix_now(), s.config.ui.session_idle_secs)
        .await?
        .map_err(unauthorized)
}

/// `POST /ui/logout`: ends the session (CSRF header or form field `csrf`).
async fn logout(State(s): State<HttpsState>, headers: HeaderMap, body: Bytes) -> Response {
    let session = match current(&s, &headers).await {
        Ok(session) => session,
        Err(e) => return e.into_response(),
    };
    let form_token = form_of(&headers, &body).and_then(|f| f.get("csrf").map(str::to_string));
    if let Err(e) = session::check_csrf(&Method::POST, &headers, &session, form_token.as_deref()) {
        return e.into_response();
    }
    if let Err(e) = s.store.delete_ui_session(&session.id_hash).await {
        return AdminError::from(e).into_response();
    }
    audit(
        &s,
        &session.actor,
        "ui.logout",
        &session.actor,
        "ok",
        "transport=https".into(),
    )
    .await;
    let mut r = redirect("/ui/login?error=signed_out");
    r.headers_mut()
        .insert(header::SET_COOKIE, session::clear_cookie());
    r
}

/// `GET /ui/session`: who is signed in, and the CSRF token.
async fn show_session(State(s): State<HttpsState>, headers: HeaderMap) -> Response {
    match current(&s, &headers).await {
        Ok(session) => Json(json!({
            "actor": session.actor,
            "scopes": session.scopes.split(' ').filter(|x| !x.is_empty()).collect::<Vec<_>>(),
            "csrf_token": session.csrf_token,
            "expires_at": session.expires_at,
        }))
        .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn app_root(State(s): State<HttpsState>, headers: HeaderMap) -> Response {
    app(&s, &headers, "").await
}

async fn app_path(
    State(s): State<HttpsState>,
    headers: HeaderMap,
    axum::extract::Path(path): axum::extract::Path<String>,
) -> Response {
    app(&s, &headers, &path).await
}

/// `GET /ui/` and `GET /ui/{*path}`: the app's files (session required).
async fn app(s: &HttpsState, headers: &HeaderMap, path: &str) -> Response {
    let asset = path.strip_prefix("assets/");
    let signed_in = current(s, headers).await;
    match (asset, signed_in) {
        (Some(_), Err(e)) => e.into_response(),
        (None, Err(_)) => redirect("/ui/login"),
        (Some(name), Ok(_)) => match assets::asset(name) {
            Some((ctype, bytes)) => (
                [
                    (header::CONTENT_TYPE, ctype),
                    (header::CACHE_CONTROL, "no-cache"),
                ],
                bytes,
            )
                .into_response(),
            None => AdminError(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no console asset {name:?}"),
            )
            .into_response(),
        },
        (None, Ok(_)) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            assets::INDEX_HTML,
        )
            .into_response(),
    }
}

/// How often an instance writes its heartbeat, seconds.
pub const HEARTBEAT_SECS: u64 = 20;

/// Writes this instance's heartbeat (id: its HTTPS base URL; detail: the
/// signing key id) every [`HEARTBEAT_SECS`], and prunes ended console
/// sessions and expired login links meanwhile. Runs until aborted.
pub async fn heartbeat(
    store: crate::store::Store,
    id: String,
    keys: crate::keys::SharedKeys,
    idle_secs: u64,
) {
    let started = unix_now();
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(HEARTBEAT_SECS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = unix_now();
        let kid = keys
            .ring()
            .signing_key(now)
            .map(|k| k.kid.clone())
            .unwrap_or_else(|| "none".into());
        let detail = format!("pid={} kid={kid}", std::process::id());
        if let Err(e) = store.heartbeat(&id, started, &detail, now).await {
            tracing::warn!(error = %e, "could not write this instance's heartbeat");
        }
        if let Err(e) = store.prune_ui_sessions(now, idle_secs).await {
            tracing::warn!(error = %e, "could not prune ended console sessions");
        }
    }
}
