//! Every error of the admin API is JSON (`{"error", "message"}`, schema
//! `Error` of openapi.json), including the ones axum's extractors answer
//! with plain text: malformed JSON (400), a body of the wrong content type
//! (415), a body that does not fit the request schema (422), a query
//! string that does not parse (400), an oversized body (413) and a method
//! the route does not have (405).

use axum::Json;
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The most of a plain-text error body kept as the message.
const MAX_MESSAGE: usize = 4096;

/// Rewrites a non-JSON error answer into the `Error` shape, keeping its
/// status and headers (e.g. `Allow` of a 405).
pub(super) async fn to_json(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, MAX_MESSAGE).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => String::new(),
    };
    let code = match status {
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => "invalid_request",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        _ => "error",
    };
    let message = match (status, text.trim()) {
        (StatusCode::METHOD_NOT_ALLOWED, _) => {
            "this route does not have that method (see the Allow header)".to_string()
        }
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, t) => {
            format!("{t}; send the body as Content-Type: application/json")
        }
        (_, "") => status
            .canonical_reason()
            .unwrap_or("request refused")
            .to_string(),
        (_, t) => t.to_string(),
    };
    let json = Json(json!({ "error": code, "message": message })).into_response();
    let (json_parts, json_body) = json.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        json_parts
            .headers
            .get(header::CONTENT_TYPE)
            .cloned()
            .unwrap_or(HeaderValue::from_static("application/json")),
    );
    Response::from_parts(parts, Body::new(json_body))
}

/// An unknown path under `/admin/v1`: the `Error` shape too.
pub(super) async fn no_such_route(uri: axum::http::Uri) -> Response {
    super::AdminError(
        StatusCode::NOT_FOUND,
        "not_found",
        format!(
            "no admin route {}; see /admin/v1/openapi.json (an API identifier in a path is \
             percent-encoded: https%3A%2F%2F...)",
            uri.path()
        ),
    )
    .into_response()
}
