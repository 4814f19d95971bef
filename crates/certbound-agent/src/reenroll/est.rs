//! Renewal over HTTPS EST (RFC 7030 §4.2.2 `simplereenroll`): mutual TLS
//! with the current certificate, a base64 PKCS#10 body, a base64 PKCS#7
//! certs-only answer.

use std::time::Duration;

use base64::Engine as _;
use certbound_proto::ace::{AceError, AceErrorCode};
use certbound_verify::http::{HttpsFetcher, client_tls_config};
use http::header::{self, HeaderName, HeaderValue};

use super::{DEFAULT_RETRY_SECS, RenewedIdentity, accept_chain, pkcs7_certificates};
use crate::error::AgentError;
use crate::identity::DeviceIdentity;
use crate::keygen::NewKey;

/// Deadline of the whole exchange.
const EST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest accepted answer.
const MAX_ANSWER: usize = 64 * 1024;

fn https(e: impl std::fmt::Display) -> AgentError {
    AgentError::Https(e.to_string())
}

/// `base_url` + `/.well-known/est/simplereenroll` (a base that already ends
/// in `/.well-known/est` is used as is).
fn est_url(base_url: &str) -> String {
    let base = base_url.trim_end_matches('/');
    if base.ends_with("/.well-known/est") {
        format!("{base}/simplereenroll")
    } else {
        format!("{base}/.well-known/est/simplereenroll")
    }
}

/// Renews over EST at `base_url` (e.g. `https://auth.example.com:8443`),
/// trusting the server certificates `ca_pem` trusts and authenticating with
/// the current certificate and key of `identity`.
pub async fn renew_over_est(
    base_url: &str,
    ca_pem: &str,
    identity: &DeviceIdentity,
) -> Result<RenewedIdentity, AgentError> {
    let tls = client_tls_config(ca_pem, Some((identity.cert_pem(), identity.key_pem())))
        .map_err(https)?;
    let fetcher = HttpsFetcher::new(tls, EST_TIMEOUT, MAX_ANSWER);
    let new_key = NewKey::generate(identity.device_id())?;
    let body = base64::engine::general_purpose::STANDARD.encode(new_key.csr_der());
    let headers = vec![
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/pkcs10"),
        ),
        (
            HeaderName::from_static("content-transfer-encoding"),
            HeaderValue::from_static("base64"),
        ),
        (
            header::ACCEPT,
            HeaderValue::from_static("application/pkcs7-mime"),
        ),
    ];
    let url = est_url(base_url);
    let r = fetcher
        .send(http::Method::POST, &url, headers, body.into_bytes())
        .await
        .map_err(https)?;
    let text = || {
        String::from_utf8_lossy(&r.body[..r.body.len().min(300)])
            .trim()
            .to_string()
    };
    match r.status {
        200 => {
            let content_type = r.header("content-type").unwrap_or_default();
            if !content_type
                .to_ascii_lowercase()
                .starts_with("application/pkcs7-mime")
            {
                return Err(AgentError::UnexpectedResponse(format!(
                    "EST answered with content type {content_type:?}, not application/pkcs7-mime"
                )));
            }
            let compact: Vec<u8> = r
                .body
                .iter()
                .copied()
                .filter(|b| !b.is_ascii_whitespace())
                .collect();
            let der = base64::engine::general_purpose::STANDARD
                .decode(&compact)
                .map_err(|e| {
                    AgentError::UnexpectedResponse(format!("the EST answer is not base64: {e}"))
                })?;
            accept_chain(&new_key, pkcs7_certificates(&der)?, identity)
        }
        429 | 503 => Err(AgentError::RetryLater {
            retry_after_secs: r
                .header("retry-after")
                .and_then(|v| v.trim().parse().ok())
                .map_or(DEFAULT_RETRY_SECS, crate::answers::cap_hint_secs),
            reason: format!("HTTP {}: {}", r.status, text()),
        }),
        400 | 401 | 403 => Err(AgentError::RenewalRefused(ace_error(r.status, &text()))),
        status => Err(AgentError::UnexpectedResponse(format!(
            "EST answered HTTP {status}: {}",
            text()
        ))),
    }
}

/// The broker words EST refusals as `<ace error name>: <description>`.
fn ace_error(status: u16, text: &str) -> AceError {
    let by_status = match status {
        401 => AceErrorCode::InvalidClient,
        403 => AceErrorCode::UnauthorizedClient,
        _ => AceErrorCode::InvalidRequest,
    };
    let (code, description) = match text.split_once(": ") {
        Some((name, rest)) => match (1..=8)
            .filter_map(AceErrorCode::from_code)
            .find(|c| c.name() == name)
        {
            Some(code) => (code, rest),
            None => (by_status, text),
        },
        None => (by_status, text),
    };
    AceError::new(code, description)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_error_texts() {
        assert_eq!(
            est_url("https://h:8443"),
            "https://h:8443/.well-known/est/simplereenroll"
        );
        assert_eq!(
            est_url("https://h:8443/"),
            "https://h:8443/.well-known/est/simplereenroll"
        );
        assert_eq!(
            est_url("https://h/.well-known/est/"),
            "https://h/.well-known/est/simplereenroll"
        );
        let e = ace_error(403, "unauthorized_client: device sensor-1 is revoked");
        assert_eq!(e.code, AceErrorCode::UnauthorizedClient);
        assert_eq!(e.description.as_deref(), Some("device sensor-1 is revoked"));
        let e = ace_error(401, "who are you");
        assert_eq!(e.code, AceErrorCode::InvalidClient);
        assert_eq!(e.description.as_deref(), Some("who are you"));
    }
}
