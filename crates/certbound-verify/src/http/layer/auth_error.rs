//! [`AuthError`]: a refused request as RFC 6750 §3 answers it, and the
//! extraction of the bearer token.

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use certbound_proto::ClaimError;

use super::{MAX_DESCRIPTION, RETRY_AFTER_SECS};
use crate::VerifyError;

/// The token of `Authorization: Bearer <token>`.
pub(super) fn bearer_token(headers: &HeaderMap) -> Result<&str, AuthError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(AuthError::missing_token(
            "no access token: send it as Authorization: Bearer <token>",
        ));
    };
    if values.next().is_some() {
        return Err(AuthError::invalid_request(
            "more than one Authorization header",
        ));
    }
    let text = value
        .to_str()
        .map_err(|_| AuthError::invalid_request("the Authorization header is not visible ASCII"))?;
    let (scheme, rest) = text.split_once(' ').unwrap_or((text, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::missing_token(
            "the Authorization header does not use the Bearer scheme: send Authorization: Bearer <token>",
        ));
    }
    let token = rest.trim_matches(' ');
    let body = token.trim_end_matches('=');
    let b64token = !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        });
    if !b64token {
        return Err(AuthError::invalid_request(
            "the Bearer token is empty or has characters outside the RFC 6750 b64token syntax",
        ));
    }
    Ok(token)
}

/// A refused request, as sent to the client.
#[derive(Debug, Clone)]
pub struct AuthError {
    /// 400, 401, 403 or 503.
    pub status: StatusCode,
    /// The OAuth error code (`invalid_request`, `invalid_token`,
    /// `insufficient_scope`, `temporarily_unavailable`), `None` when the
    /// request carried no token (RFC 6750 §3.1: no error code then).
    pub error: Option<&'static str>,
    /// Why, for the client (also in `error_description`).
    pub description: String,
    /// The scopes the resource requires (for `insufficient_scope`).
    pub scope: Option<String>,
    /// `realm` of `WWW-Authenticate` (the audience).
    pub realm: String,
    /// The verification error, when there was one (for logs and metrics).
    pub cause: Option<Box<VerifyError>>,
}

impl AuthError {
    pub(super) fn missing_token(description: &str) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            error: None,
            description: description.into(),
            scope: None,
            realm: String::new(),
            cause: None,
        }
    }

    pub(super) fn invalid_request(description: &str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error: Some("invalid_request"),
            description: description.into(),
            scope: None,
            realm: String::new(),
            cause: None,
        }
    }

    pub(super) fn with_realm(mut self, realm: &str) -> Self {
        realm.clone_into(&mut self.realm);
        self
    }

    /// The answer to a failed verification.
    pub fn from_verify(e: VerifyError, realm: &str, scopes: &[&str]) -> Self {
        let (status, error, scope) = match &e {
            VerifyError::Claims(ClaimError::ScopeMissing { .. }) => (
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                Some(scopes.join(" ")),
            ),
            e if is_unavailable(e) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                None,
            ),
            _ => (StatusCode::UNAUTHORIZED, "invalid_token", None),
        };
        Self {
            status,
            error: Some(error),
            description: e.to_string(),
            scope,
            realm: realm.into(),
            cause: Some(Box::new(e)),
        }
    }

    /// The `reason_code` of the cause, or `missing_token` / `invalid_request`.
    pub fn reason_code(&self) -> &'static str {
        match (&self.cause, self.error) {
            (Some(e), _) => e.reason_code(),
            (None, None) => "missing_token",
            (None, Some(code)) => code,
        }
    }
}

/// Failures of the verifier's own dependencies (key or list fetching), not
/// of the token.
fn is_unavailable(e: &VerifyError) -> bool {
    matches!(
        e,
        VerifyError::StatusUnavailable { .. }
            | VerifyError::TlsHandshake { .. }
            | VerifyError::HttpRequest { .. }
            | VerifyError::HttpTimeout { .. }
            | VerifyError::HttpStatus { .. }
            | VerifyError::BodyTooLarge { .. }
            | VerifyError::InvalidUrl { .. }
            | VerifyError::InvalidKeySet(_)
    )
}

/// Text safe inside a quoted `WWW-Authenticate` parameter (RFC 6750 §3:
/// `%x20-21 / %x23-5B / %x5D-7E`), at most [`MAX_DESCRIPTION`] characters.
fn quoted_safe(text: &str) -> String {
    text.chars()
        .take(MAX_DESCRIPTION)
        .map(|c| match c {
            '"' => '\'',
            '\\' => '/',
            ' '..='~' => c,
            _ => '?',
        })
        .collect()
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.error.unwrap_or("unauthorized"),
            self.description
        )
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let description = quoted_safe(&self.description);
        let mut challenge = format!("Bearer realm=\"{}\"", quoted_safe(&self.realm));
        if let Some(error) = self
            .error
            .filter(|_| self.status != StatusCode::SERVICE_UNAVAILABLE)
        {
            challenge.push_str(&format!(
                ", error=\"{error}\", error_description=\"{description}\""
            ));
        }
        if let Some(scope) = &self.scope {
            challenge.push_str(&format!(", scope=\"{}\"", quoted_safe(scope)));
        }
        let body = serde_json::json!({
            "error": self.error.unwrap_or("invalid_token"),
            "error_description": description,
        });
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        } else if let Ok(value) = HeaderValue::from_str(&challenge) {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}
