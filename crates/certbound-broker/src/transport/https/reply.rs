//! Response helpers: RFC 6749 §5.2 errors, JSON with no-store, CBOR.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::oauth::OAuthError;
use crate::refusal::Refusal;

/// An OAuth error as the RFC says: JSON, no-store, Basic challenge on 401
/// when Basic was used, Retry-After on 429/503.
pub fn oauth_error(e: &OAuthError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    let body = serde_json::json!({ "error": e.error, "error_description": e.description });
    let mut response = (status, no_store(), axum::Json(body)).into_response();
    let headers = response.headers_mut();
    if e.status == 401 && e.basic_challenge {
        headers.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"certbound\""),
        );
    }
    if let Some(secs) = e.retry_after
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        headers.insert(header::RETRY_AFTER, v);
    }
    response
}

/// The one mapping of a device-request refusal to HTTP: its status (401 /
/// 403 / 400, 429, 503), `Retry-After` on a transient refusal, and `body`
/// with its content type (the ACE error CBOR on `/ace/token`, text on EST).
pub fn refusal(r: &Refusal, content_type: &'static str, body: Vec<u8>) -> Response {
    let status = StatusCode::from_u16(r.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Some(secs) = r.retry_after()
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        headers.insert(header::RETRY_AFTER, v);
    }
    response
}

/// `Cache-Control: no-store` + `Pragma: no-cache` (token responses).
pub fn no_store() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h
}

/// A JSON body with `Cache-Control: max-age=<secs>`.
pub fn cached(content_type: &'static str, max_age: u64, body: Vec<u8>) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("max-age={max_age}")) {
        headers.insert(header::CACHE_CONTROL, v);
    }
    response
}

/// 404 for unknown routes, in JSON.
pub async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(serde_json::json!({
            "error": "not_found",
            "error_description": "no such endpoint; see /.well-known/oauth-authorization-server and /admin/v1/openapi.json"
        })),
    )
        .into_response()
}
