//! `/oauth/token`, `/oauth/introspect`, `/oauth/revoke`, `/ace/token`.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use certbound_proto::ace::AceErrorCode;
use certbound_verify::http::{PeerCertificates, RemoteAddr};

use super::HttpsState;
use super::reply::{no_store, oauth_error};
use crate::clock::unix_now;
use crate::oauth::{OAuthError, Presented, TokenForm};
use crate::registry::ADMIN_API;
use crate::token_service::Refused;

/// Parses an `application/x-www-form-urlencoded` body; every parameter at
/// most once (RFC 6749 §3.2).
fn parse_form(headers: &HeaderMap, body: &[u8]) -> Result<Vec<(String, String)>, OAuthError> {
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ctype.split(';').next().is_some_and(|t| {
        t.trim()
            .eq_ignore_ascii_case("application/x-www-form-urlencoded")
    }) {
        return Err(OAuthError::invalid_request(format!(
            "Content-Type {ctype:?} is not accepted: send application/x-www-form-urlencoded"
        )));
    }
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|e| OAuthError::invalid_request(format!("malformed form body: {e}")))?;
    for (i, (k, _)) in pairs.iter().enumerate() {
        if pairs[..i].iter().any(|(other, _)| other == k) {
            return Err(OAuthError::invalid_request(format!(
                "parameter {k:?} appears more than once"
            )));
        }
    }
    Ok(pairs)
}

fn field(form: &[(String, String)], name: &str) -> Option<String> {
    form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

/// `Authorization: Basic` → (client_id, secret), both form-url-decoded
/// (RFC 6749 §2.3.1).
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| OAuthError::invalid_client("Authorization header is not ASCII"))?;
    let Some(encoded) = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
    else {
        return Err(OAuthError::invalid_client(
            "only the Basic scheme is accepted in Authorization at this endpoint",
        ));
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| OAuthError::invalid_client("Basic credentials are not valid base64"))?;
    let text = String::from_utf8(decoded)
        .map_err(|_| OAuthError::invalid_client("Basic credentials are not UTF-8"))?;
    let (id, secret) = text
        .split_once(':')
        .ok_or_else(|| OAuthError::invalid_client("Basic credentials lack the ':' separator"))?;
    let unescape = |s: &str| -> Result<String, OAuthError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&format!("v={s}"))
            .map_err(|_| OAuthError::invalid_client("Basic credentials are badly escaped"))?;
        Ok(pairs.into_iter().next().map(|(_, v)| v).unwrap_or_default())
    };
    Ok(Some((unescape(id)?, unescape(secret)?)))
}

fn presented(
    headers: &HeaderMap,
    form: &[(String, String)],
    peer: Option<&PeerCertificates>,
) -> Result<Presented, OAuthError> {
    Ok(Presented {
        basic: basic_credentials(headers)?,
        form_client_id: field(form, "client_id"),
        form_client_secret: field(form, "client_secret"),
        peer_cert: peer.and_then(|p| p.0.first().cloned()),
    })
}

/// `POST /oauth/token`.
pub async fn token(
    State(state): State<HttpsState>,
    peer: Option<Extension<PeerCertificates>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let form = parse_form(&headers, &body)?;
        let creds = presented(&headers, &form, peer.as_ref().map(|e| &e.0))?;
        let request = TokenForm {
            grant_type: field(&form, "grant_type"),
            audience: field(&form, "audience"),
            resource: field(&form, "resource"),
            scope: field(&form, "scope"),
        };
        state
            .oauth
            .client_credentials(&creds, &request, unix_now())
            .await
    }
    .await;
    match result {
        Ok(grant) => (StatusCode::OK, no_store(), axum::Json(grant)).into_response(),
        Err(e) => oauth_error(&e),
    }
}

/// A parsed form body, parameters in order.
type Form = Vec<(String, String)>;

/// The form, the client's credentials and the `token` parameter of an
/// introspection or revocation request.
fn token_form(
    headers: &HeaderMap,
    body: &[u8],
    peer: Option<&Extension<PeerCertificates>>,
) -> Result<(Form, Presented, String), OAuthError> {
    let form = parse_form(headers, body)?;
    let creds = presented(headers, &form, peer.map(|e| &e.0))?;
    let token =
        field(&form, "token").ok_or_else(|| OAuthError::invalid_request("token is missing"))?;
    Ok((form, creds, token))
}

/// `POST /oauth/introspect` (RFC 7662).
pub async fn introspect(
    State(state): State<HttpsState>,
    peer: Option<Extension<PeerCertificates>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let (_, creds, token) = token_form(&headers, &body, peer.as_ref())?;
        state.oauth.introspect(&creds, &token, unix_now()).await
    }
    .await;
    match result {
        Ok(json) => (StatusCode::OK, no_store(), axum::Json(json)).into_response(),
        Err(e) => oauth_error(&e),
    }
}

/// `POST /oauth/revoke` (RFC 7009): 200 even for unknown tokens.
pub async fn revoke(
    State(state): State<HttpsState>,
    peer: Option<Extension<PeerCertificates>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let (form, creds, token) = token_form(&headers, &body, peer.as_ref())?;
        match field(&form, "token_type_hint").as_deref() {
            None | Some("access_token") => {}
            Some("refresh_token") => {}
            Some(other) => {
                return Err(OAuthError {
                    status: 400,
                    error: "unsupported_token_type",
                    description: format!(
                        "token_type_hint {other:?} is not supported: certbound issues access tokens only"
                    ),
                    retry_after: None,
                    basic_challenge: false,
                });
            }
        }
        state
            .oauth
            .revoke(&creds, &token, ADMIN_API, unix_now())
            .await
    }
    .await;
    match result {
        Ok(()) => {
            if let Some(status) = &state.status {
                status.invalidate();
            }
            (StatusCode::OK, no_store()).into_response()
        }
        Err(e) => oauth_error(&e),
    }
}

/// `POST /ace/token`: the signed device request of the CoAP endpoint, over
/// HTTPS; answers the same CBOR (`application/ace+cbor`).
pub async fn ace_token(
    State(state): State<HttpsState>,
    remote: Option<Extension<RemoteAddr>>,
    body: Bytes,
) -> Response {
    const ACE_CBOR: &str = "application/ace+cbor";
    let peer = remote.map(|Extension(RemoteAddr(addr))| addr.ip());
    match state
        .devices
        .tokens
        .handle(&body, "https", None, peer, unix_now())
        .await
    {
        Ok(token) => (
            StatusCode::CREATED,
            [(header::CONTENT_TYPE, ACE_CBOR)],
            token.to_cbor(),
        )
            .into_response(),
        Err(Refused::Ace(error)) => {
            let status = match error.code {
                AceErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
                AceErrorCode::UnauthorizedClient => StatusCode::FORBIDDEN,
                _ => StatusCode::BAD_REQUEST,
            };
            (status, [(header::CONTENT_TYPE, ACE_CBOR)], error.to_cbor()).into_response()
        }
        Err(Refused::Unavailable) => {
            let mut r = StatusCode::SERVICE_UNAVAILABLE.into_response();
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            r
        }
        Err(Refused::RateLimited { retry_after }) => {
            let mut r = StatusCode::TOO_MANY_REQUESTS.into_response();
            if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
    }
}
