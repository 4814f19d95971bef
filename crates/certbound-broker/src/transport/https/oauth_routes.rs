//! `/oauth/token`, `/oauth/introspect`, `/oauth/revoke`, `/ace/token`.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use certbound_proto::form::{Form, FormError, FormLimits};
use certbound_verify::http::{PeerCertificates, RemoteAddr};

use super::HttpsState;
use super::reply::{no_store, oauth_error};
use crate::clock::unix_now;
use crate::oauth::{OAuthError, Presented, TokenForm};
use crate::registry::ADMIN_API;

/// Largest body of an `/oauth/*` request, bytes (every OAuth request fits
/// in far less; see docs/oauth.md).
pub const OAUTH_MAX_BODY: usize = 8 * 1024;

/// Most parameters of an `/oauth/*` form.
pub const OAUTH_MAX_PARAMS: usize = 32;

/// The form limits of `/oauth/*`.
const FORM_LIMITS: FormLimits = FormLimits {
    max_bytes: OAUTH_MAX_BODY,
    max_params: OAUTH_MAX_PARAMS,
};

/// The body of an `/oauth/*` request, or the OAuth error for a body that
/// was too large (413) or too slow (408).
pub type FormBody = Result<Bytes, BytesRejection>;

fn body_error(rejection: &BytesRejection) -> OAuthError {
    use std::error::Error as _;
    if let BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) = rejection {
        let mut e = OAuthError::invalid_request(format!(
            "the request body is larger than {OAUTH_MAX_BODY} bytes"
        ));
        e.status = 413;
        return e;
    }
    let timed_out = rejection
        .source()
        .is_some_and(certbound_verify::http::BodyTimeout::is_cause_of)
        || matches!(rejection, BytesRejection::FailedToBufferBody(FailedToBufferBody::UnknownBodyError(e)) if e.source().is_some_and(certbound_verify::http::BodyTimeout::is_cause_of));
    if timed_out {
        let mut e = OAuthError::invalid_request("the request body arrived too slowly");
        e.status = 408;
        return e;
    }
    OAuthError::invalid_request("the request body could not be read")
}

/// Parses an `application/x-www-form-urlencoded` body in linear time;
/// every parameter at most once (RFC 6749 §3.2), at most
/// [`OAUTH_MAX_PARAMS`] of them.
fn parse_form(headers: &HeaderMap, body: &FormBody) -> Result<Form, OAuthError> {
    let body = body.as_ref().map_err(body_error)?;
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ctype.split(';').next().is_some_and(|t| {
        t.trim()
            .eq_ignore_ascii_case("application/x-www-form-urlencoded")
    }) {
        let shown: String = ctype.chars().take(64).collect();
        return Err(OAuthError::invalid_request(format!(
            "Content-Type {shown:?} is not accepted: send application/x-www-form-urlencoded"
        )));
    }
    certbound_proto::form::parse_form(body, &FORM_LIMITS).map_err(|e| {
        let mut err = OAuthError::invalid_request(format!("malformed form body: {e}"));
        if matches!(e, FormError::TooLarge { .. }) {
            err.status = 413;
        }
        err
    })
}

fn field(form: &Form, name: &str) -> Option<String> {
    form.get(name).map(str::to_owned)
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
        certbound_proto::form::decode_component(s.as_bytes(), 0)
            .map_err(|_| OAuthError::invalid_client("Basic credentials are badly escaped"))
    };
    Ok(Some((unescape(id)?, unescape(secret)?)))
}

/// The header an API key is sent in.
pub const API_KEY_HEADER: &str = "x-api-key";

/// `X-API-Key`, when sent once (twice is a malformed request).
fn api_key(headers: &HeaderMap) -> Result<Option<String>, OAuthError> {
    let mut values = headers.get_all(API_KEY_HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(OAuthError::invalid_request(
            "X-API-Key is sent more than once: send one key",
        ));
    }
    let text = value
        .to_str()
        .map_err(|_| OAuthError::invalid_client(crate::oauth::AUTH_FAILED))?;
    Ok(Some(text.trim().to_string()))
}

fn presented(
    headers: &HeaderMap,
    form: &Form,
    peer: Option<&PeerCertificates>,
) -> Result<Presented, OAuthError> {
    Ok(Presented {
        api_key: api_key(headers)?,
        basic: basic_credentials(headers)?,
        form_client_id: field(form, "client_id"),
        form_client_secret: field(form, "client_secret"),
        client_assertion_type: field(form, "client_assertion_type"),
        client_assertion: field(form, "client_assertion"),
        peer_chain: peer.map(|p| p.0.as_ref().clone()).unwrap_or_default(),
    })
}

/// `POST /oauth/token`.
pub async fn token(
    State(state): State<HttpsState>,
    peer: Option<Extension<PeerCertificates>>,
    headers: HeaderMap,
    body: FormBody,
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

/// The form, the client's credentials and the `token` parameter of an
/// introspection or revocation request.
fn token_form(
    headers: &HeaderMap,
    body: &FormBody,
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
    body: FormBody,
) -> Response {
    let result = async {
        let (_, creds, token) = token_form(&headers, &body, peer.as_ref())?;
        state
            .oauth
            .introspect(&creds, &token, ADMIN_API, unix_now())
            .await
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
    body: FormBody,
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
                    detail: None,
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
        Err(r) => super::reply::refusal(&r, ACE_CBOR, r.to_cbor()),
    }
}
