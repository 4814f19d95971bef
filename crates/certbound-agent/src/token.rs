//! Obtaining access tokens: build the signed request (pure), send it over
//! CoAP, decode the ACE answer.

use certbound_coap::{Client, ResponseType, content_format};
use certbound_proto::ace::AceResponse;
use certbound_proto::cbor::Limits;
use certbound_proto::request::{CertRef, GRANT_CLIENT_CREDENTIALS, TokenRequest, sign_request};
use rand::RngCore;

use crate::answers::{TokenExpectations, TokenFacts, check_token};
use crate::clock::Clock as _;
use crate::error::AgentError;
use crate::identity::DeviceIdentity;
use certbound_proto::crypto::Signer as _;

/// Lifetime of a signed request (the broker accepts at most 300 s).
pub const REQUEST_LIFETIME_SECS: u64 = 120;

/// What to ask for.
#[derive(Debug, Clone)]
pub struct TokenRequestParams {
    /// The broker's issuer id (goes in `aud`).
    pub broker_id: String,
    /// The API the token is for (ACE `audience`).
    pub audience: String,
    /// Requested scopes (space separated); `None` asks for the grant's defaults.
    pub scope: Option<String>,
    /// Send the certificate chain (`x5chain`) instead of its thumbprint (`x5t`).
    pub send_chain: bool,
}

impl TokenRequestParams {
    /// Parameters with no scope and the compact `x5t` form.
    pub fn new(broker_id: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            broker_id: broker_id.into(),
            audience: audience.into(),
            scope: None,
            send_chain: false,
        }
    }

    /// Sets the requested scope.
    pub fn with_scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }
}

/// A token obtained from the broker.
#[derive(Debug, Clone)]
pub struct ObtainedToken {
    /// The CWT bytes.
    pub access_token: Vec<u8>,
    /// Lifetime in seconds: as the answer said it from
    /// [`decode_token_response`]; from the token's own `exp` once checked
    /// with [`accept_token`] (as [`request_token_coap`] returns it).
    pub expires_in: u64,
    /// Granted scope when it differs from the request.
    pub scope: Option<String>,
}

/// Builds a signed token request (pure: time and nonce are passed in).
pub fn build_token_request(
    identity: &DeviceIdentity,
    params: &TokenRequestParams,
    now: u64,
    nonce: [u8; 16],
) -> Result<Vec<u8>, AgentError> {
    let request = TokenRequest {
        iss: identity.device_id().to_string(),
        aud: params.broker_id.clone(),
        exp: now + REQUEST_LIFETIME_SECS,
        iat: now,
        cti: nonce.to_vec(),
        grant_type: Some(GRANT_CLIENT_CREDENTIALS),
        audience: Some(params.audience.clone()),
        scope: params.scope.clone(),
        csr: None,
    };
    let cert = if params.send_chain {
        CertRef::X5Chain(identity.chain().to_vec())
    } else {
        CertRef::X5t(identity.thumbprint())
    };
    Ok(sign_request(&request, &cert, identity.signer())?)
}

/// Wall-clock seconds, through the agent's one clock abstraction.
pub(crate) fn unix_now() -> u64 {
    crate::clock::SystemClock.now_secs()
}

/// Requests a token over CoAP (`POST /token`, content-format 18).
pub async fn request_token_coap(
    client: &Client,
    identity: &DeviceIdentity,
    params: &TokenRequestParams,
) -> Result<ObtainedToken, AgentError> {
    let mut nonce = [0u8; 16];
    rand::rng().fill_bytes(&mut nonce);
    let body = build_token_request(identity, params, unix_now(), nonce)?;
    let response = client
        .post("token", content_format::COSE_SIGN1, body)
        .await?;
    let obtained =
        decode_token_response(response.code, response.content_format, &response.payload)?;
    let (obtained, _) = accept_token(obtained, identity, &params.audience, unix_now())?;
    Ok(obtained)
}

/// Checks a token answer against what was asked for (see
/// [`crate::answers::check_token`]: bound to this device's key, for
/// `audience` and this device, unexpired at `now`) and replaces the answer's
/// `expires_in` by the lifetime the token's own `exp` gives it. A forged
/// `expires_in` therefore never postpones a renewal.
///
/// # Errors
/// As [`crate::answers::check_token`].
pub fn accept_token(
    mut obtained: ObtainedToken,
    identity: &DeviceIdentity,
    audience: &str,
    now: u64,
) -> Result<(ObtainedToken, TokenFacts), AgentError> {
    let facts = check_token(
        &obtained.access_token,
        &TokenExpectations {
            device_id: identity.device_id(),
            device_key: identity.signer().public_key(),
            audience,
            broker_key: None,
        },
        now,
    )?;
    if obtained.expires_in.abs_diff(facts.lifetime) > EXPIRES_IN_TOLERANCE {
        tracing::warn!(
            expires_in = obtained.expires_in,
            exp = facts.exp,
            lifetime = facts.lifetime,
            "the answer's expires_in disagrees with the token's exp; the token's exp is used"
        );
    }
    obtained.expires_in = facts.lifetime;
    Ok((obtained, facts))
}

/// How far (seconds) `expires_in` may differ from the token's own lifetime
/// before the disagreement is logged (clock skew, transit time).
const EXPIRES_IN_TOLERANCE: u64 = 120;

/// Interprets a token endpoint answer.
pub fn decode_token_response(
    code: ResponseType,
    content_format: Option<u16>,
    payload: &[u8],
) -> Result<ObtainedToken, AgentError> {
    if content_format == Some(content_format::ACE_CBOR) {
        match AceResponse::from_cbor(payload, Limits::default())? {
            AceResponse::Token(t) if code == ResponseType::Created => {
                return Ok(ObtainedToken {
                    access_token: t.access_token,
                    expires_in: t.expires_in,
                    scope: t.scope,
                });
            }
            // A transient refusal (rate limited, unavailable) carries its
            // retry hint in the body on every transport.
            AceResponse::Error(e) if e.retry_after.is_some() => {
                return Err(AgentError::RetryLater {
                    retry_after_secs: e.retry_after.map_or(0, crate::answers::cap_hint_secs),
                    reason: e.to_string(),
                });
            }
            AceResponse::Error(e) => return Err(AgentError::Refused(e)),
            AceResponse::Token(_) => {}
        }
    }
    Err(AgentError::UnexpectedResponse(format!(
        "{code:?} with content-format {content_format:?}: {}",
        String::from_utf8_lossy(payload)
    )))
}
