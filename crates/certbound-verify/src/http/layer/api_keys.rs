//! API keys (`X-API-Key: cbk_...`) checked through the broker's
//! introspection endpoint (RFC 7662), with a short, bounded cache.
//!
//! Opt-in ([`VerifyConfig::with_api_keys`](super::VerifyConfig::with_api_keys)):
//! a request with `X-API-Key` and no `Authorization` header is answered by
//! `POST <endpoint>` (`token=<key>`, HTTP Basic with the backend's own client
//! credentials). An active answer whose `aud` names this API becomes a
//! [`VerifiedToken`] (format [`TokenFormat::ApiKey`], `sub` and `scope` from
//! the answer), and the route's scopes are required as for a token. Answers
//! are cached by the SHA-256 of the key (never the key): active ones for
//! [`ApiKeyIntrospection::positive_ttl`] (never past the key's `exp`),
//! inactive ones for [`ApiKeyIntrospection::negative_ttl`]; at most
//! [`ApiKeyIntrospection::max_entries`] of them (the cache is emptied when
//! full). A revoked key is therefore refused here at most `positive_ttl`
//! after its revocation.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use base64::Engine as _;
use certbound_proto::claims::Claims;
use sha2::{Digest as _, Sha256};

use super::auth_error::AuthError;
use super::{lock, unix_now};
use crate::VerifyError;
use crate::http::fetch::HttpsFetcher;
use crate::verifier::{TokenFormat, VerifiedToken};

/// The header an API key is sent in.
pub const API_KEY_HEADER: &str = "x-api-key";

/// Longest `X-API-Key` value read (a certbound key is 47 characters).
const MAX_KEY_LEN: usize = 256;

/// Where and how API keys are checked: the broker's introspection endpoint
/// and this backend's own client credentials (a client with a grant for
/// this API: the broker answers only for keys granted an API the caller is
/// granted too).
#[derive(Clone)]
pub struct ApiKeyIntrospection {
    /// `https://<broker>/oauth/introspect`.
    pub endpoint: String,
    /// This backend's `client_id`.
    pub client_id: String,
    /// This backend's client secret (never logged).
    pub client_secret: String,
    /// The HTTPS client (trusting the broker's CA).
    pub fetcher: HttpsFetcher,
    /// How long an active answer is reused (default 30 s).
    pub positive_ttl: Duration,
    /// How long an inactive answer is reused (default 5 s).
    pub negative_ttl: Duration,
    /// Most answers cached (default 10 000).
    pub max_entries: usize,
}

impl std::fmt::Debug for ApiKeyIntrospection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyIntrospection")
            .field("endpoint", &self.endpoint)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("positive_ttl", &self.positive_ttl)
            .field("negative_ttl", &self.negative_ttl)
            .field("max_entries", &self.max_entries)
            .finish_non_exhaustive()
    }
}

impl ApiKeyIntrospection {
    /// Introspection at `endpoint` with the backend's client credentials,
    /// default cache bounds.
    pub fn new(
        endpoint: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
        fetcher: HttpsFetcher,
    ) -> Self {
        Self {
            endpoint: endpoint.into(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            fetcher,
            positive_ttl: Duration::from_secs(30),
            negative_ttl: Duration::from_secs(5),
            max_entries: 10_000,
        }
    }
}

/// A cached answer: the claims of an active key, or `None` (inactive).
#[derive(Debug, Clone)]
struct Entry {
    claims: Option<Claims>,
    until: Instant,
}

/// The checker an [`Authenticator`](super::Authenticator) holds.
#[derive(Debug)]
pub(super) struct ApiKeyChecker {
    config: ApiKeyIntrospection,
    cache: Mutex<HashMap<[u8; 32], Entry>>,
}

/// The `X-API-Key` of a request, when sent (once, visible ASCII, bounded).
pub(super) fn api_key_header(headers: &HeaderMap) -> Result<Option<&str>, AuthError> {
    let mut values = headers.get_all(API_KEY_HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthError::invalid_request("more than one X-API-Key header"));
    }
    let text = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= MAX_KEY_LEN)
        .ok_or_else(|| {
            AuthError::invalid_request(
                "the X-API-Key header is empty, too long or not visible ASCII",
            )
        })?;
    if headers.contains_key(header::AUTHORIZATION) {
        return Err(AuthError::invalid_request(
            "send either Authorization: Bearer or X-API-Key, not both",
        ));
    }
    Ok(Some(text))
}

impl ApiKeyChecker {
    pub(super) fn new(config: ApiKeyIntrospection) -> Self {
        Self {
            config,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The key's claims for `audience`, from the cache or the broker.
    pub(super) async fn check(
        &self,
        key: &str,
        audience: &str,
    ) -> Result<VerifiedToken, VerifyError> {
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let now = Instant::now();
        let cached = lock(&self.cache)
            .get(&digest)
            .filter(|e| now < e.until)
            .map(|e| e.claims.clone());
        let claims = match cached {
            Some(claims) => claims,
            None => {
                let claims = self.introspect(key, audience).await?;
                let ttl = if claims.is_some() {
                    self.config.positive_ttl
                } else {
                    self.config.negative_ttl
                };
                let mut cache = lock(&self.cache);
                if cache.len() >= self.config.max_entries {
                    cache.clear();
                }
                cache.insert(
                    digest,
                    Entry {
                        claims: claims.clone(),
                        until: now + ttl,
                    },
                );
                claims
            }
        };
        let claims = claims
            .filter(|c| c.exp.is_none_or(|exp| unix_now() < exp))
            .ok_or(VerifyError::ApiKeyInactive)?;
        Ok(VerifiedToken {
            client_id: claims.sub.clone(),
            claims,
            kid: String::new(),
            format: TokenFormat::ApiKey,
            x5t_s256: None,
        })
    }

    /// Asks the broker: `Some(claims)` for a key active for `audience`.
    async fn introspect(&self, key: &str, audience: &str) -> Result<Option<Claims>, VerifyError> {
        let c = &self.config;
        let enc = |s: &str| form_encode(s);
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            enc(&c.client_id),
            enc(&c.client_secret)
        ));
        let headers = vec![
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            ),
            (
                header::AUTHORIZATION,
                HeaderValue::from_str(&format!("Basic {basic}")).map_err(|_| {
                    VerifyError::InvalidTokenText(
                        "the client credentials are not header-safe".into(),
                    )
                })?,
            ),
            (header::ACCEPT, HeaderValue::from_static("application/json")),
        ];
        let headers: Vec<(HeaderName, HeaderValue)> = headers;
        let body = format!("token={}&token_type_hint=api_key", enc(key)).into_bytes();
        let raw = c
            .fetcher
            .send(Method::POST, &c.endpoint, headers, body)
            .await?;
        if raw.status != 200 {
            return Err(VerifyError::HttpStatus {
                url: c.endpoint.clone(),
                status: raw.status,
                body: String::from_utf8_lossy(&raw.body)
                    .chars()
                    .take(256)
                    .collect(),
            });
        }
        let answer: serde_json::Value =
            serde_json::from_slice(&raw.body).map_err(|e| VerifyError::HttpRequest {
                url: c.endpoint.clone(),
                reason: format!("the introspection answer is not JSON: {e}"),
            })?;
        Ok(claims_of(&answer, audience))
    }
}

/// `token` when it carries every scope of `scopes`.
pub(super) fn require_scopes(
    token: VerifiedToken,
    scopes: &[&str],
) -> Result<VerifiedToken, VerifyError> {
    if let Some(missing) = scopes.iter().find(|s| !token.has_scope(s)) {
        return Err(VerifyError::Claims(
            certbound_proto::ClaimError::ScopeMissing {
                missing: (*missing).to_string(),
                granted: token.claims.scope.unwrap_or_default(),
            },
        ));
    }
    Ok(token)
}

/// The claims of an RFC 7662 answer when it is active for `audience`.
fn claims_of(answer: &serde_json::Value, audience: &str) -> Option<Claims> {
    if answer["active"] != serde_json::Value::Bool(true) {
        return None;
    }
    let aud: Vec<String> = match &answer["aud"] {
        serde_json::Value::String(s) => vec![s.clone()],
        serde_json::Value::Array(a) => a
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect(),
        _ => Vec::new(),
    };
    if !aud.iter().any(|a| a == audience) {
        return None;
    }
    Some(Claims {
        iss: answer["iss"].as_str().map(String::from),
        sub: Some(answer["sub"].as_str()?.to_string()),
        aud,
        exp: answer["exp"].as_u64(),
        iat: answer["iat"].as_u64(),
        scope: Some(answer["scope"].as_str().unwrap_or_default().to_string()),
        ..Claims::default()
    })
}

/// `application/x-www-form-urlencoded` escaping of one value.
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_become_claims_only_for_this_audience() {
        let a = serde_json::json!({
            "active": true, "sub": "cb_apikey:n", "aud": "https://a", "scope": "x y", "exp": 10
        });
        let c = claims_of(&a, "https://a").unwrap();
        assert_eq!(c.sub.as_deref(), Some("cb_apikey:n"));
        assert_eq!(c.scope.as_deref(), Some("x y"));
        assert!(claims_of(&a, "https://b").is_none());
        assert!(claims_of(&serde_json::json!({"active": false}), "https://a").is_none());
    }

    #[test]
    fn form_values_are_escaped() {
        assert_eq!(form_encode("a b&c=d"), "a+b%26c%3Dd");
        assert_eq!(form_encode("cbk_AZ-_9"), "cbk_AZ-_9");
    }
}
