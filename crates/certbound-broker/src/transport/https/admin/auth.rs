//! Who calls the admin API: a certbound JWT for `urn:certbound:admin`
//! (`Authorization: Bearer`), or a console session cookie with its CSRF
//! token (docs/console.md); and the scope each method needs.

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use certbound_verify::http::PeerCertificates;

use super::{AdminError, HttpsState};
use crate::clock::unix_now;
use crate::registry::{ADMIN_API, Registry};
use crate::store::TokenHolder;

/// Authenticates the caller: a valid, unrevoked certbound token for the
/// admin API with the scope the method needs, bound (when it has `cnf`) to
/// the TLS client certificate of this connection; or, without an
/// `Authorization` header, a console session cookie with that scope and the
/// CSRF token (docs/console.md).
pub(crate) async fn caller(
    state: &HttpsState,
    method: &Method,
    headers: &HeaderMap,
    peer: Option<&PeerCertificates>,
) -> Result<Registry, AdminError> {
    Ok(authenticate(state, method, headers, peer).await?.0)
}

/// Authenticates every admin route before its handler (and before its body
/// is read): a route added without calling [`caller`] is still refused to
/// callers without the scope its method needs. `/openapi.json` is public.
pub(crate) async fn guard(
    State(s): State<HttpsState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    // Exactly the document: `/groups/openapi.json` is a group route.
    if matches!(req.uri().path(), "/openapi.json" | "/admin/v1/openapi.json") {
        return next.run(req).await;
    }
    let peer = req.extensions().get::<PeerCertificates>().cloned();
    match authenticate(&s, req.method(), req.headers(), peer.as_ref()).await {
        Ok(_) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

/// The scope `method` needs.
fn needed_scope(method: &Method) -> &'static str {
    if method == Method::GET || method == Method::HEAD {
        "admin:read"
    } else {
        "admin:write"
    }
}

fn insufficient(needed: &str) -> AdminError {
    AdminError(
        StatusCode::FORBIDDEN,
        "insufficient_scope",
        format!("this operation needs the scope {needed}"),
    )
}

/// [`caller`], with the console session when the caller used one.
pub(crate) async fn authenticate(
    state: &HttpsState,
    method: &Method,
    headers: &HeaderMap,
    peer: Option<&PeerCertificates>,
) -> Result<(Registry, Option<crate::store::UiSession>), AdminError> {
    let unauthorized = |m: String| AdminError(StatusCode::UNAUTHORIZED, "invalid_token", m);
    let registry = |actor: String| {
        Registry::with_store(
            &state.dir,
            (*state.config).clone(),
            state.store.clone(),
            actor,
        )
    };
    let needed = needed_scope(method);
    let bearer = headers.get(header::AUTHORIZATION);
    if bearer.is_none()
        && state.config.ui.enabled
        && let Some(cookie) = crate::transport::https::ui::session::cookie_value(headers)
    {
        let now = unix_now();
        let session = crate::transport::https::ui::session::lookup(
            &state.store,
            cookie,
            now,
            state.config.ui.session_idle_secs,
        )
        .await?
        .map_err(|why| unauthorized(why.message().into()))?;
        crate::transport::https::ui::session::check_csrf(method, headers, &session, None)?;
        if !session.scopes.split(' ').any(|s| s == needed) {
            return Err(insufficient(needed));
        }
        // A client's session lasts only while the client may still do it:
        // deleted or disabled, or the grant withdrawn, ends it at once.
        if let Some(client_id) = session.actor.strip_prefix("admin-client:") {
            let client = state
                .oauth
                .find_client(crate::store::snapshot::clients::ClientKey::Id(client_id))
                .await?;
            let admin_scopes: Option<Vec<String>> = client.filter(|c| c.is_active()).map(|c| {
                c.effective_grants()
                    .into_iter()
                    .filter(|g| g.api_id == ADMIN_API)
                    .flat_map(|g| g.scopes)
                    .collect()
            });
            match admin_scopes {
                Some(scopes) if scopes.iter().any(|s| s == needed) => {}
                Some(scopes) if !scopes.is_empty() => return Err(insufficient(needed)),
                _ => {
                    state.store.delete_ui_session(&session.id_hash).await?;
                    return Err(unauthorized(format!(
                        "the client {client_id} of this console session was deleted or disabled, or lost its admin grant: sign in again"
                    )));
                }
            }
        }
        return Ok((registry(session.actor.clone()), Some(session)));
    }
    let text = bearer
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .ok_or_else(|| {
            unauthorized(
                "send Authorization: Bearer <token>; get one from /oauth/token with audience urn:certbound:admin (or sign in to the console at /ui/login)".into(),
            )
        })?;
    let now = unix_now();
    let (token, holder, active) = state
        .oauth
        .token_status(text.trim(), now)
        .await
        .map_err(|e| {
            AdminError(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                e.description,
            )
        })?
        .ok_or_else(|| {
            unauthorized("the token is not one this server signed (or its key was retired)".into())
        })?;
    if !active {
        return Err(unauthorized("the token is expired or revoked".into()));
    }
    if holder != TokenHolder::Client || !token.aud.iter().any(|a| a == ADMIN_API) {
        return Err(unauthorized(format!(
            "the token's audience is not {ADMIN_API}"
        )));
    }
    if let Some(x5t) = &token.x5t_s256 {
        let presented = peer.and_then(|p| p.0.first()).map(|der| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(certbound_pki::thumbprint_sha256(der))
        });
        if presented.as_deref() != Some(x5t.as_str()) {
            return Err(unauthorized(
                "the token is bound to a TLS client certificate this connection did not present"
                    .into(),
            ));
        }
    }
    if !token.scope.split(' ').any(|s| s == needed) {
        return Err(insufficient(needed));
    }
    let actor = format!("admin:{}", token.client_id.unwrap_or(token.sub));
    Ok((registry(actor), None))
}
