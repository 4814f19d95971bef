//! Certificate renewal ("zero-touch", always with a NEW key) over each
//! transport: build the signed re-enrollment request (pure), send it, check
//! what comes back.
//!
//! The request is the signed device request of the token flavour with the
//! PKCS#10 CSR of the new key instead of a grant: the CSR's signature proves
//! the new key, the COSE signature the current one.
//!
//! | transport | function | request | answer |
//! |---|---|---|---|
//! | MQTT | [`renew_over_mqtt`] | `cb/v1/{device}/cert/req` | `cert/res`: CertResponse CBOR or ACE error |
//! | CoAP | [`renew_over_coap`] | `POST /.well-known/est/sren`, CF 18 (block-wise when large) | 2.04, CF 60 CertResponse; 4.xx ACE error (CF 19); 4.29 / 5.03 with Max-Age |
//! | HTTPS EST | [`renew_over_est`] (feature `est`) | `POST /.well-known/est/simplereenroll`, mTLS with the current certificate, base64 PKCS#10 | 200 base64 PKCS#7 certs-only |
//!
//! Requests name the current certificate by its thumbprint (`x5t`). Over
//! CoAP, a device that was offline past expiry can still renew within the
//! broker's grace window (`[pki] renewal_grace_days`); TLS (MQTT, EST)
//! refuses an expired certificate, so only CoAP can do that.
//!
//! The answer is checked before it is returned: the new certificate must
//! hold the new key and name the same device. Nothing is written here; the
//! daemon stages the pair and promotes it only after it worked (see
//! [`crate::credentials`]).

use certbound_coap::{Client, ResponseType, content_format};
use certbound_proto::Signer as _;
use certbound_proto::ace::{AceError, AceResponse};
use certbound_proto::cbor::Limits;
use certbound_proto::enroll::EnrollAnswer;
use certbound_proto::request::{CertRef, TokenRequest, sign_request};
use rand::RngCore as _;
use zeroize::Zeroizing;

use crate::answers::cap_hint_secs;
use crate::error::AgentError;
use crate::identity::DeviceIdentity;
use crate::keygen::NewKey;
use crate::mqtt::MqttDevice;
use crate::token::{REQUEST_LIFETIME_SECS, unix_now};

#[cfg(feature = "est")]
mod est;
mod pkcs7;

#[cfg(feature = "est")]
pub use est::renew_over_est;
pub use pkcs7::pkcs7_certificates;

/// CBOR limits for a certificate answer (a chain of a few certificates).
const ANSWER_LIMITS: Limits = Limits {
    max_size: 32 * 1024,
    max_depth: 16,
};

/// Wait suggested when a busy broker names none (seconds).
const DEFAULT_RETRY_SECS: u64 = 60;

/// A renewed identity: the new key and chain, and the identity loaded from them.
pub struct RenewedIdentity {
    /// The new private key, PKCS#8 PEM.
    pub key_pem: Zeroizing<String>,
    /// The new certificate followed by the CA(s) that issued it, PEM.
    pub chain_pem: String,
    /// The identity loaded from both (its signer is the new key).
    pub identity: DeviceIdentity,
}

impl std::fmt::Debug for RenewedIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenewedIdentity")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

/// Builds a signed re-enrollment request (pure: time and nonce are passed
/// in): `iss` = device, `aud` = `broker_id`, no grant, the CSR of the new
/// key, signed with the current key; the current certificate is named by
/// `cert` (its thumbprint, or the chain when the broker may not accept the
/// thumbprint, e.g. after expiry).
pub fn build_reenroll_request(
    identity: &DeviceIdentity,
    broker_id: &str,
    csr_der: &[u8],
    cert: &CertRef,
    now: u64,
    nonce: [u8; 16],
) -> Result<Vec<u8>, AgentError> {
    let request = TokenRequest {
        iss: identity.device_id().to_string(),
        aud: broker_id.to_string(),
        exp: now + REQUEST_LIFETIME_SECS,
        iat: now,
        cti: nonce.to_vec(),
        grant_type: None,
        audience: None,
        scope: None,
        csr: Some(csr_der.to_vec()),
    };
    Ok(sign_request(&request, cert, identity.signer())?)
}

/// Checks an issued chain against the new key and the current identity, and
/// loads it: the first certificate of `chain` (or, in any order, the one
/// with the new key) is the new one, the rest its issuers.
pub fn accept_chain(
    new_key: &NewKey,
    chain: Vec<Vec<u8>>,
    current: &DeviceIdentity,
) -> Result<RenewedIdentity, AgentError> {
    let mut chain = chain;
    let wanted = new_key.signer().public_key().to_sec1();
    let leaf = chain
        .iter()
        .position(|c| certbound_pki::public_key_sec1(c).is_ok_and(|k| k == wanted))
        .ok_or_else(|| {
            AgentError::UnexpectedResponse(
                "the renewed certificate does not hold the new key".into(),
            )
        })?;
    let leaf = chain.remove(leaf);
    chain.insert(0, leaf);
    let chain_pem: String = chain.iter().map(|der| cert_pem(der)).collect();
    let identity = DeviceIdentity::from_pem(new_key.key_pem(), &chain_pem).map_err(|e| {
        AgentError::UnexpectedResponse(format!("the renewed certificate is unusable: {e}"))
    })?;
    if identity.device_id() != current.device_id() {
        return Err(AgentError::UnexpectedResponse(format!(
            "the renewed certificate is for device {:?}, not {:?}",
            identity.device_id(),
            current.device_id()
        )));
    }
    Ok(RenewedIdentity {
        key_pem: Zeroizing::new(new_key.key_pem().to_string()),
        chain_pem,
        identity,
    })
}

/// Interprets a certificate answer from MQTT (`cert/res`).
pub fn decode_mqtt_answer(payload: &[u8]) -> Result<Vec<Vec<u8>>, AgentError> {
    match EnrollAnswer::from_cbor(payload, ANSWER_LIMITS)? {
        EnrollAnswer::Issued(r) => Ok(r.chain),
        EnrollAnswer::Refused(e) => Err(refusal(e)),
    }
}

/// Interprets a CoAP `sren` answer. A 4.29 / 5.03 Max-Age is a retry hint,
/// capped at [`crate::answers::MAX_RETRY_HINT_SECS`].
pub fn decode_coap_answer(
    code: ResponseType,
    content_format: Option<u16>,
    payload: &[u8],
    max_age: Option<u32>,
) -> Result<Vec<Vec<u8>>, AgentError> {
    match code {
        ResponseType::Changed | ResponseType::Created | ResponseType::Content
            if content_format == Some(content_format::CBOR) =>
        {
            match EnrollAnswer::from_cbor(payload, ANSWER_LIMITS)? {
                EnrollAnswer::Issued(r) => Ok(r.chain),
                EnrollAnswer::Refused(e) => Err(refusal(e)),
            }
        }
        // Max-Age is the hint (RFC 8516); the ACE body carries the same one.
        ResponseType::TooManyRequests | ResponseType::ServiceUnavailable => {
            let body = (content_format == Some(content_format::ACE_CBOR))
                .then(|| AceResponse::from_cbor(payload, Limits::default()).ok())
                .flatten();
            let (from_body, reason) = match body {
                Some(AceResponse::Error(e)) => (e.retry_after, e.to_string()),
                _ => (None, format!("CoAP {code:?}")),
            };
            let hint = max_age.map(u64::from).or(from_body);
            Err(AgentError::RetryLater {
                retry_after_secs: hint.map_or(DEFAULT_RETRY_SECS, cap_hint_secs),
                reason,
            })
        }
        _ if content_format == Some(content_format::ACE_CBOR) => {
            match AceResponse::from_cbor(payload, Limits::default())? {
                AceResponse::Error(e) => Err(refusal(e)),
                AceResponse::Token(_) => Err(unexpected(code, content_format, payload)),
            }
        }
        _ => Err(unexpected(code, content_format, payload)),
    }
}

fn unexpected(code: ResponseType, content_format: Option<u16>, payload: &[u8]) -> AgentError {
    AgentError::UnexpectedResponse(format!(
        "{code:?} with content-format {content_format:?}: {}",
        String::from_utf8_lossy(&payload[..payload.len().min(200)])
    ))
}

/// An ACE refusal: with `retry_after` (label -65538, see
/// `certbound_proto::refusal`) it is transient — rate limited or unavailable —
/// and its hint, capped, schedules the retry; without it, it is final.
fn refusal(e: AceError) -> AgentError {
    match e.retry_after {
        Some(secs) => AgentError::RetryLater {
            retry_after_secs: cap_hint_secs(secs),
            reason: e.to_string(),
        },
        None => AgentError::RenewalRefused(e),
    }
}

fn nonce() -> [u8; 16] {
    let mut n = [0u8; 16];
    rand::rng().fill_bytes(&mut n);
    n
}

/// Renews over an MQTT connection made with the current certificate
/// (`cert/req` -> `cert/res`).
pub async fn renew_over_mqtt(
    device: &MqttDevice,
    identity: &DeviceIdentity,
    broker_id: &str,
) -> Result<RenewedIdentity, AgentError> {
    let new_key = NewKey::generate(identity.device_id())?;
    let request = build_reenroll_request(
        identity,
        broker_id,
        new_key.csr_der(),
        &CertRef::X5t(identity.thumbprint()),
        unix_now(),
        nonce(),
    )?;
    let answer = device.request_cert(request).await?;
    accept_chain(&new_key, decode_mqtt_answer(&answer)?, identity)
}

/// Renews over CoAP (`POST /.well-known/est/sren`, content-format 18; the
/// client does block-wise transfer by itself when the request or the answer
/// exceeds its block size). Works within the broker's grace window after
/// the certificate expired.
pub async fn renew_over_coap(
    client: &Client,
    identity: &DeviceIdentity,
    broker_id: &str,
) -> Result<RenewedIdentity, AgentError> {
    let new_key = NewKey::generate(identity.device_id())?;
    let request = build_reenroll_request(
        identity,
        broker_id,
        new_key.csr_der(),
        &CertRef::X5t(identity.thumbprint()),
        unix_now(),
        nonce(),
    )?;
    let r = client
        .post(".well-known/est/sren", content_format::COSE_SIGN1, request)
        .await?;
    let chain = decode_coap_answer(r.code, r.content_format, &r.payload, r.max_age)?;
    accept_chain(&new_key, chain, identity)
}

/// PEM of one DER certificate (64-character lines).
pub(crate) fn cert_pem(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 60);
    out.push_str("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

#[cfg(test)]
mod tests;
