//! `private_key_jwt` client authentication (RFC 7523 §2.2, §3; RFC 7521
//! §4.2): `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`
//! and `client_assertion=<JWT>` signed with a key of the client's
//! registered JWK Set.
//!
//! The checks run cheapest first, and nothing is written before the
//! signature verifies: size and shape, header (`alg` one of ES256, RS256,
//! PS256, EdDSA: never `none` or `HS*`; no `crit`), claims (`iss` = `sub`
//! = the client, and = `client_id` when the form has one; `aud` holds the
//! issuer identifier or the token endpoint URL; `exp` present, not passed
//! and at most `max_lifetime` ahead; `iat` and `nbf` not in the future;
//! `jti` present), the client (active, registered for `private_key_jwt`),
//! its keys (registered, or fetched from its allow-listed `jwks_uri`), the
//! signature with a key whose type fits `alg` — and only then the `jti` is
//! recorded, once: a replay is refused, and an attacker without the key
//! cannot burn a client's jti values. Every refusal answers the one
//! [`AUTH_FAILED`]; the reason goes to the audit log.

use base64::Engine as _;
use certbound_registry::client_jwks::ClientJwks;
use serde_json::Value;

use super::client_auth::{AUTH_FAILED, AuthMethod, Presented};
use super::{OAuthError, OAuthService, store_failure};
use crate::store::{Client, ClientAuthMethod};

/// RFC 7523 §2.2 `client_assertion_type`.
pub const ASSERTION_TYPE_JWT_BEARER: &str =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Largest client assertion accepted, bytes (an RSA-8192 signature is
/// 1366 characters; the header and claims of an assertion are small).
pub const MAX_ASSERTION_BYTES: usize = 4096;

/// Longest `jti` accepted, characters.
const MAX_JTI: usize = 256;

/// The checked claims of an assertion (signature not yet verified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Assertion<'a> {
    /// `alg` of the header.
    pub alg: String,
    /// `kid` of the header.
    pub kid: Option<String>,
    /// `iss` = `sub` = the client.
    pub client_id: String,
    /// `jti`.
    pub jti: String,
    /// `exp`.
    pub exp: u64,
    /// `header.payload`.
    pub signing_input: &'a [u8],
    /// The signature.
    pub signature: Vec<u8>,
}

/// What an assertion is checked against.
#[derive(Debug, Clone)]
pub(crate) struct Expect<'a> {
    /// Accepted `aud` values (the issuer identifier, the token endpoint URL).
    pub audiences: [&'a str; 2],
    /// `client_id` of the form, when present.
    pub form_client_id: Option<&'a str>,
    /// Now, Unix seconds.
    pub now: u64,
    /// Clock skew allowance, seconds.
    pub leeway: u64,
    /// Longest `exp - now`, seconds.
    pub max_lifetime: u64,
}

fn b64(part: &str, what: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| format!("the {what} is not base64url without padding"))
}

fn object(part: &str, what: &str) -> Result<serde_json::Map<String, Value>, String> {
    let bytes = b64(part, what)?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(format!("the {what} is not a JSON object")),
    }
}

fn number(claims: &serde_json::Map<String, Value>, name: &str) -> Result<Option<u64>, String> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .or_else(|| {
                v.as_f64()
                    .filter(|f| *f >= 0.0 && f.is_finite())
                    .map(|f| f as u64)
            })
            .map(Some)
            .ok_or_else(|| format!("{name} is not a NumericDate")),
    }
}

/// The unverified `iss` of an assertion (for the audit of a refusal only),
/// at most 128 characters.
pub(crate) fn unverified_issuer(text: &str) -> Option<String> {
    if text.len() > MAX_ASSERTION_BYTES {
        return None;
    }
    let payload = text.split('.').nth(1)?;
    let claims = object(payload, "claims").ok()?;
    claims
        .get("iss")
        .and_then(Value::as_str)
        .filter(|s| s.len() <= 128)
        .map(str::to_owned)
}

/// Parses and checks an assertion's header and claims (no signature, no
/// store): the cheap part, first. `Err` says what was wrong (audit only).
pub(crate) fn check_assertion<'a>(
    text: &'a str,
    expect: &Expect<'_>,
) -> Result<Assertion<'a>, String> {
    if text.len() > MAX_ASSERTION_BYTES {
        return Err(format!(
            "the assertion is {} bytes, more than {MAX_ASSERTION_BYTES}",
            text.len()
        ));
    }
    let mut parts = text.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("the assertion is not a compact JWS (header.payload.signature)".into());
    };
    let header = object(h, "header")?;
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or("the header has no alg")?;
    if !certbound_registry::client_jwks::SIGNING_ALGS.contains(&alg) {
        return Err(format!(
            "alg {:?} is refused: use ES256, RS256, PS256 or EdDSA",
            alg.chars().take(16).collect::<String>()
        ));
    }
    if header.contains_key("crit") {
        return Err("the header has crit: no JWS extension is understood".into());
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) if !k.is_empty() && k.len() <= 256 => Some(k.clone()),
        Some(_) => return Err("kid is not a string of 1 to 256 characters".into()),
    };
    let claims = object(p, "claims")?;
    let text_claim = |name: &str| claims.get(name).and_then(Value::as_str);
    let iss = text_claim("iss").ok_or("iss is missing")?;
    let sub = text_claim("sub").ok_or("sub is missing")?;
    if iss != sub {
        return Err("iss and sub differ: both must be the client_id (RFC 7523 §3)".into());
    }
    if let Some(form) = expect.form_client_id
        && form != iss
    {
        return Err("client_id of the form differs from the assertion's iss".into());
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => expect.audiences.contains(&a.as_str()),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .any(|a| expect.audiences.contains(&a)),
        _ => false,
    };
    if !aud_ok {
        return Err(format!(
            "aud does not name this server: use the issuer {:?} or the token endpoint {:?}",
            expect.audiences[0], expect.audiences[1]
        ));
    }
    let now = expect.now;
    let exp = number(&claims, "exp")?.ok_or("exp is missing")?;
    if exp.saturating_add(expect.leeway) <= now {
        return Err(format!("the assertion expired at {exp} (now {now})"));
    }
    if exp > now.saturating_add(expect.max_lifetime) {
        return Err(format!(
            "exp is {} s ahead, more than the {} s an assertion may live",
            exp - now,
            expect.max_lifetime
        ));
    }
    for name in ["iat", "nbf"] {
        if let Some(t) = number(&claims, name)?
            && t > now.saturating_add(expect.leeway)
        {
            return Err(format!("{name} {t} is in the future (now {now})"));
        }
    }
    let jti = text_claim("jti").ok_or("jti is missing (RFC 7523 §3: single use)")?;
    if jti.is_empty() || jti.chars().count() > MAX_JTI {
        return Err(format!("jti must be 1 to {MAX_JTI} characters"));
    }
    let signature = b64(s, "signature")?;
    Ok(Assertion {
        alg: alg.to_string(),
        kid,
        client_id: iss.to_string(),
        jti: jti.to_string(),
        exp,
        signing_input: &text.as_bytes()[..h.len() + 1 + p.len()],
        signature,
    })
}

impl OAuthService {
    /// Authenticates a client by its assertion (see the module docs).
    pub(super) async fn authenticate_assertion(
        &self,
        p: &Presented,
        now: u64,
    ) -> Result<(Client, AuthMethod), OAuthError> {
        let refuse = |why: String| {
            let mut e = OAuthError::invalid_client(AUTH_FAILED);
            e.detail = Some(format!("private_key_jwt: {why}"));
            e
        };
        match p.client_assertion_type.as_deref() {
            Some(ASSERTION_TYPE_JWT_BEARER) => {}
            Some(other) => {
                return Err(OAuthError::invalid_request(format!(
                    "client_assertion_type {:?} is not supported: use {ASSERTION_TYPE_JWT_BEARER}",
                    other.chars().take(80).collect::<String>()
                )));
            }
            None => {
                return Err(OAuthError::invalid_request(format!(
                    "client_assertion_type is missing: send {ASSERTION_TYPE_JWT_BEARER}"
                )));
            }
        }
        let text = p.client_assertion.as_deref().ok_or_else(|| {
            OAuthError::invalid_request("client_assertion is missing (RFC 7521 §4.2)")
        })?;
        let Some(config) = &self.assertions else {
            return Err(refuse(
                "client assertions are not enabled on this server".into(),
            ));
        };
        let expect = Expect {
            audiences: [
                self.config.issuer_id.as_str(),
                config.token_endpoint.as_str(),
            ],
            form_client_id: p.form_client_id.as_deref(),
            now,
            leeway: self.config.leeway,
            max_lifetime: config.max_lifetime,
        };
        let assertion = check_assertion(text, &expect).map_err(refuse)?;
        let client = self
            .find_client(crate::store::snapshot::clients::ClientKey::Id(
                &assertion.client_id,
            ))
            .await
            .map_err(|e| store_failure(&e))?
            .ok_or_else(|| refuse("no such client".into()))?;
        if !client.is_active() {
            return Err(refuse("the client was deleted".into()));
        }
        if client.auth_method != ClientAuthMethod::PrivateKeyJwt {
            return Err(refuse(format!(
                "the client is registered for {}, not private_key_jwt",
                client.auth_method.as_str()
            )));
        }
        let keys = self
            .client_keys(&client, assertion.kid.as_deref(), config)
            .await
            .map_err(refuse)?;
        let verified = keys
            .candidates(&assertion.alg, assertion.kid.as_deref())
            .any(|k| {
                k.verify(
                    &assertion.alg,
                    assertion.signing_input,
                    &assertion.signature,
                )
            });
        if !verified {
            return Err(refuse(format!(
                "the signature ({}, kid {:?}) does not verify with a registered key",
                assertion.alg, assertion.kid
            )));
        }
        // Single use, recorded only now that the client signed it.
        let first = self
            .store
            .use_assertion_jti(&client.id, &assertion.jti, assertion.exp)
            .await
            .map_err(|e| store_failure(&e))?;
        if !first {
            return Err(refuse(format!(
                "jti {:?} was used before: an assertion is accepted once",
                assertion.jti
            )));
        }
        Ok((client, AuthMethod::PrivateKeyJwt))
    }

    /// The client's keys: registered, or fetched from its `jwks_uri`.
    async fn client_keys(
        &self,
        client: &Client,
        kid: Option<&str>,
        config: &super::AssertionConfig,
    ) -> Result<std::sync::Arc<ClientJwks>, String> {
        if let Some(jwks) = &client.jwks {
            return ClientJwks::parse(jwks)
                .map(std::sync::Arc::new)
                .map_err(|e| format!("the registered {e}"));
        }
        let uri = client.jwks_uri.as_deref().ok_or("the client has no keys")?;
        let fetcher = config
            .fetcher
            .as_ref()
            .ok_or("JWK Set URLs are not fetched by this server")?;
        fetcher.keys(uri, kid).await
    }
}

#[cfg(test)]
mod tests;
