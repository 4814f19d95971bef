//! What the agent believes of an answer (pure: time is passed in).
//!
//! Answers over CoAP are not authenticated (no DTLS, no OSCORE yet), and an
//! MQTT answer is only as trustworthy as the server's topic ACL: anyone on
//! the path can forge a "retry after" or an `expires_in`. So:
//!
//! * **Retry hints** (CoAP Max-Age on 4.29 / 5.03, HTTP `Retry-After`, the
//!   `retry_after` (-65538) of an ACE error body on any transport) are capped
//!   at [`MAX_RETRY_HINT_SECS`] when parsed ([`cap_hint_secs`]), and when a retry is scheduled never past the
//!   renewal deadline ([`retry_wait_ms`], [`cert_renewal_deadline_ms`]): a
//!   forged hint can delay a renewal by minutes, never past the
//!   certificate's expiry.
//! * **Token renewal** is scheduled from the token's own `exp` (and `iat`),
//!   not from the answer's `expires_in` ([`check_token`]): the token is
//!   bound to this device's key (`cnf`), names the requested audience and
//!   this device, and is unexpired — otherwise it is refused. When the broker's
//!   signing key is at hand, its signature is verified too.

use certbound_proto::EcPublicKey;
use certbound_proto::cbor::Limits;
use certbound_proto::crypto::Verifier;
use certbound_proto::token::UnverifiedToken;

use crate::error::AgentError;

/// Clock skew between the device and the broker tolerated on a token's
/// `exp`, seconds (the broker's default leeway).
pub const TOKEN_CLOCK_LEEWAY_SECS: u64 = 60;

/// The longest wait a retry hint can impose, seconds (5 minutes).
pub const MAX_RETRY_HINT_SECS: u64 = 300;

/// A retry hint as a transport stated it, capped at [`MAX_RETRY_HINT_SECS`].
pub fn cap_hint_secs(hint_secs: u64) -> u64 {
    hint_secs.min(MAX_RETRY_HINT_SECS)
}

/// How long to wait (ms) before retrying at `now_ms` when the answer said
/// `hint_secs`: at most [`MAX_RETRY_HINT_SECS`], and never past `deadline_ms`
/// (the last moment a retry can still succeed in time).
pub fn retry_wait_ms(hint_secs: u64, now_ms: u64, deadline_ms: u64) -> u64 {
    cap_hint_secs(hint_secs)
        .saturating_mul(1000)
        .min(deadline_ms.saturating_sub(now_ms))
}

/// The last moment (Unix ms) a certificate valid from `not_before` to
/// `not_after` should still be retried before it expires: `not_after` minus
/// a tenth of its lifetime (between 1 s and [`MAX_RETRY_HINT_SECS`]), so a
/// retry after a hint still lands while TLS accepts the certificate.
pub fn cert_renewal_deadline_ms(not_before: u64, not_after: u64) -> u64 {
    let lifetime = not_after.saturating_sub(not_before);
    let margin = (lifetime / 10).clamp(1, MAX_RETRY_HINT_SECS);
    not_after.saturating_sub(margin).saturating_mul(1000)
}

/// What the agent learned from a token's own claims ([`check_token`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenFacts {
    /// `cti`: named in every telemetry payload sealed with it.
    pub cti: Vec<u8>,
    /// `exp`, Unix seconds.
    pub exp: u64,
    /// Seconds the token may be used from `now` on: its own lifetime
    /// `exp - iat` (both the broker's clock, so a skewed device clock does not
    /// change it), and never past `exp` plus [`TOKEN_CLOCK_LEEWAY_SECS`] on
    /// the device's clock.
    pub lifetime: u64,
    /// True when the broker's signature was verified.
    pub signature_verified: bool,
}

/// What the agent expects of a token it asked for.
#[derive(Clone, Copy)]
pub struct TokenExpectations<'a> {
    /// This device's id (the token's `sub`, when present).
    pub device_id: &'a str,
    /// This device's public key (the token's `cnf`).
    pub device_key: &'a EcPublicKey,
    /// The requested audience (must be in `aud`).
    pub audience: &'a str,
    /// The broker's signing key, when the agent knows it.
    pub broker_key: Option<&'a dyn Verifier>,
}

impl std::fmt::Debug for TokenExpectations<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenExpectations")
            .field("device_id", &self.device_id)
            .field("device_key", &self.device_key)
            .field("audience", &self.audience)
            .field("broker_key", &self.broker_key.map(|k| k.public_key()))
            .finish()
    }
}

fn refuse(why: String) -> AgentError {
    AgentError::UnexpectedResponse(format!("the access token is refused: {why}"))
}

/// Checks a token received at `now` (Unix seconds) against what was asked
/// for, and reads its schedule from its own claims (see the module docs).
///
/// # Errors
/// [`AgentError::Proto`] for a token that does not parse (or whose signature
/// does not verify with `broker_key`); [`AgentError::UnexpectedResponse`]
/// when its `cnf` is not this device's key, its `aud` lacks the audience,
/// its `sub` names another device, it has no `cti` or `exp`, or it
/// expired more than [`TOKEN_CLOCK_LEEWAY_SECS`] ago on the device's clock.
pub fn check_token(
    token: &[u8],
    expect: &TokenExpectations<'_>,
    now: u64,
) -> Result<TokenFacts, AgentError> {
    let limits = Limits::default();
    let parsed = UnverifiedToken::parse(token, limits)?;
    let claims = match expect.broker_key {
        Some(key) => parsed.verify(key, limits)?,
        None => parsed.unverified_claims(limits)?,
    };
    match &claims.cnf {
        Some(key) if key == expect.device_key => {}
        Some(_) => {
            return Err(refuse(
                "it is bound (cnf) to another key than this device's".into(),
            ));
        }
        None => return Err(refuse("it carries no confirmation key (cnf)".into())),
    }
    if !claims.aud.iter().any(|a| a == expect.audience) {
        return Err(refuse(format!(
            "its audience {:?} does not name the requested {:?}",
            claims.aud, expect.audience
        )));
    }
    if let Some(sub) = &claims.sub
        && sub != expect.device_id
    {
        return Err(refuse(format!(
            "it was issued to {sub:?}, not to this device"
        )));
    }
    let cti = claims
        .cti
        .clone()
        .ok_or_else(|| refuse("it carries no cti claim".into()))?;
    let exp = claims
        .exp
        .ok_or_else(|| refuse("it carries no exp claim".into()))?;
    // The device clock may be off by the leeway the broker allows; the
    // lifetime itself comes from the broker's own iat and exp.
    let usable_until = exp.saturating_add(TOKEN_CLOCK_LEEWAY_SECS);
    if now >= usable_until {
        return Err(refuse(format!("it expired at {exp} (now {now})")));
    }
    let remaining = usable_until - now;
    let lifetime = match claims.iat {
        Some(iat) if iat < exp => (exp - iat).min(remaining),
        _ => exp.saturating_sub(now).clamp(1, remaining),
    };
    Ok(TokenFacts {
        cti,
        exp,
        lifetime,
        signature_verified: expect.broker_key.is_some(),
    })
}

#[cfg(test)]
mod tests;
