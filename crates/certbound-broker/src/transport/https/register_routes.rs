//! `POST /oauth/register` (RFC 7591) and `GET`/`PUT`/`DELETE`
//! `/oauth/register/{client_id}` (RFC 7592): thin shells over
//! [`crate::registry::registration`]. The initial access token (or the
//! registration access token) is checked before the body is even parsed;
//! the body is capped at [`REGISTER_MAX_BODY`]; every event is audited
//! (refusals of unauthenticated requests aggregated like every other).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::HttpsState;
use super::reply::no_store;
use crate::clock::unix_now;
use crate::registry::Registry;
use crate::registry::registration::{RegistrationAnswer, RegistrationError};
use crate::store::AuditEvent;

/// Largest body of a registration request: a JWK Set of up to
/// [`certbound_registry::client_jwks::MAX_JWKS_BYTES`] plus the metadata.
pub const REGISTER_MAX_BODY: usize = certbound_registry::client_jwks::MAX_JWKS_BYTES + 8 * 1024;

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 256)
}

fn registry(state: &HttpsState, actor: String) -> Registry {
    Registry::with_store(
        &state.dir,
        (*state.config).clone(),
        state.store.clone(),
        actor,
    )
}

fn error_body(status: StatusCode, error: &str, description: &str) -> Response {
    let mut r = (
        status,
        no_store(),
        axum::Json(json!({ "error": error, "error_description": description })),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        let challenge = format!("Bearer error=\"{error}\"");
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
    }
    r
}

/// The answer to a refusal, and its audit event.
async fn refused(
    state: &HttpsState,
    action: &str,
    subject: &str,
    e: &RegistrationError,
) -> Response {
    let (status, code, text) = match e {
        RegistrationError::InvalidToken(m) => {
            (StatusCode::UNAUTHORIZED, "invalid_token", m.as_str())
        }
        RegistrationError::InvalidMetadata(m) => (
            StatusCode::BAD_REQUEST,
            "invalid_client_metadata",
            m.as_str(),
        ),
        RegistrationError::InvalidRequest(m) => {
            (StatusCode::BAD_REQUEST, "invalid_request", m.as_str())
        }
        RegistrationError::Unavailable(m) => {
            tracing::error!(error = %m, "client registration failed in the store");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "the authorization server could not reach its store; retry shortly",
            )
        }
    };
    state
        .oauth
        .audit_log()
        .record(AuditEvent {
            ts_ms: unix_now().saturating_mul(1000),
            actor: format!("registration:{subject}"),
            action: action.into(),
            subject: subject.into(),
            outcome: code.into(),
            detail: format!("transport=https {text}"),
        })
        .await;
    // An invalid token is answered without saying which check failed.
    let shown = if code == "invalid_token" {
        "the bearer token is missing, unknown, revoked, expired or used up"
    } else {
        text
    };
    error_body(status, code, shown)
}

fn answer(state: &HttpsState, status: StatusCode, a: RegistrationAnswer) -> Response {
    let mut body = a.body;
    body.insert(
        "registration_client_uri".into(),
        Value::from(format!("{}/oauth/register/{}", state.base_url, a.client_id)),
    );
    (status, no_store(), axum::Json(Value::Object(body))).into_response()
}

fn parse_body(body: &Result<Bytes, BytesRejection>) -> Result<Value, RegistrationError> {
    let bytes = body.as_ref().map_err(|_| {
        RegistrationError::InvalidRequest(format!(
            "the body could not be read or is larger than {REGISTER_MAX_BODY} bytes"
        ))
    })?;
    serde_json::from_slice(bytes)
        .map_err(|e| RegistrationError::InvalidRequest(format!("the body is not JSON: {e}")))
}

const UNAUTHENTICATED: &str = "(unauthenticated)";

/// `POST /oauth/register`.
pub async fn register(
    State(state): State<HttpsState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    const ACTION: &str = "client.registration_refused";
    let now = unix_now();
    let Some(bearer) = bearer(&headers) else {
        let e = RegistrationError::InvalidToken(
            "no Authorization: Bearer <initial access token>".into(),
        );
        return refused(&state, ACTION, UNAUTHENTICATED, &e).await;
    };
    let reg = registry(&state, "registration".into());
    let token = match reg.initial_token(bearer, now).await {
        Ok(t) => t,
        Err(e) => return refused(&state, ACTION, UNAUTHENTICATED, &e).await,
    };
    let reg = registry(&state, format!("registration:{}", token.id));
    let result = match parse_body(&body) {
        Ok(json) => reg.register(&token, &json, now).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(a) => answer(&state, StatusCode::CREATED, a),
        Err(e) => refused(&state, ACTION, &token.id, &e).await,
    }
}

/// `GET /oauth/register/{client_id}` (RFC 7592 §2.1).
pub async fn read(
    State(state): State<HttpsState>,
    Path(client_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(bearer) = bearer(&headers) else {
        let e = RegistrationError::InvalidToken("no registration access token".into());
        return refused(&state, "client.registration_read", UNAUTHENTICATED, &e).await;
    };
    let reg = registry(&state, format!("registration:{client_id}"));
    match reg.read_registration(&client_id, bearer).await {
        Ok(a) => answer(&state, StatusCode::OK, a),
        Err(e) => refused(&state, "client.registration_read", UNAUTHENTICATED, &e).await,
    }
}

/// `PUT /oauth/register/{client_id}` (RFC 7592 §2.2).
pub async fn update(
    State(state): State<HttpsState>,
    Path(client_id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    const ACTION: &str = "client.registration_update_refused";
    let Some(bearer) = bearer(&headers) else {
        let e = RegistrationError::InvalidToken("no registration access token".into());
        return refused(&state, ACTION, UNAUTHENTICATED, &e).await;
    };
    let reg = registry(&state, format!("registration:{client_id}"));
    // The token first (no body parsing for a wrong one).
    if let Err(e) = reg.read_registration(&client_id, bearer).await {
        return refused(&state, ACTION, UNAUTHENTICATED, &e).await;
    }
    let result = match parse_body(&body) {
        Ok(json) => {
            reg.update_registration(&client_id, bearer, &json, unix_now())
                .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(a) => answer(&state, StatusCode::OK, a),
        Err(e) => refused(&state, ACTION, &client_id, &e).await,
    }
}

/// `DELETE /oauth/register/{client_id}` (RFC 7592 §2.3): 204.
pub async fn delete(
    State(state): State<HttpsState>,
    Path(client_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    const ACTION: &str = "client.registration_delete_refused";
    let Some(bearer) = bearer(&headers) else {
        let e = RegistrationError::InvalidToken("no registration access token".into());
        return refused(&state, ACTION, UNAUTHENTICATED, &e).await;
    };
    let reg = registry(&state, format!("registration:{client_id}"));
    match reg
        .delete_registration(&client_id, bearer, unix_now())
        .await
    {
        Ok(()) => (StatusCode::NO_CONTENT, no_store()).into_response(),
        Err(e) => refused(&state, ACTION, UNAUTHENTICATED, &e).await,
    }
}
