//! First-boot provisioning by claim (like AWS fleet provisioning): a device
//! holding a batch claim certificate (`certbound claim create`) sends a CSR
//! for its own key and gets its own certificate and registration.
//!
//! Over CoAP (`POST /.well-known/est/sen`) the request is the signed device
//! request made with the CLAIM key (x5chain = the claim certificate), `iss`
//! = the device id asked for, carrying the CSR; over HTTPS EST
//! (`/.well-known/est/simpleenroll`) the claim certificate is the TLS client
//! certificate and the device id is the CSR's CN.
//!
//! Order: claim certificate path -> (signed request: signature, freshness,
//! replay) -> claim registered, unexpired, not revoked, uses left -> device id
//! valid, allowed by the claim, not taken -> CSR -> issue -> register the
//! device and spend one use in one transaction -> audit.

use std::sync::Arc;

use certbound_pki::{validate_device_id, verify_csr};
use certbound_proto::EcPublicKey;
use certbound_proto::ace::AceErrorCode;
use certbound_proto::crypto::AwsLcVerifier;
use certbound_proto::enroll::{CertResponse, csr_of};
use certbound_proto::request::{CertRef, UnverifiedRequest};

use crate::audit::AuditLog;
use crate::device_auth::DeviceAuth;
use crate::pki_state::SharedPki;
use crate::refusal::{AuditedRefusal, Refusal, from_proto, internal, refuse, unauthenticated};
use crate::store::{AuditEvent, CertRecord, Store, glob_match};

/// A CSR to enroll: as received, or already verified by the caller (EST
/// reads the device id from its subject first; the signature is checked once).
enum Csr<'a> {
    Der(&'a [u8]),
    Verified(certbound_pki::VerifiedCsr),
}

/// Issues first certificates to devices presenting a provisioning claim.
#[derive(Debug)]
pub struct ClaimService {
    cert_days: u32,
    store: Store,
    pki: SharedPki,
    auth: Arc<DeviceAuth>,
    audit: AuditLog,
}

impl ClaimService {
    pub(crate) fn new(
        cert_days: u32,
        store: Store,
        pki: SharedPki,
        auth: Arc<DeviceAuth>,
        audit: AuditLog,
    ) -> Self {
        Self {
            cert_days,
            store,
            pki,
            auth,
            audit,
        }
    }

    /// CoAP `/sen`: a request signed with the claim key.
    pub async fn handle(
        &self,
        bytes: &[u8],
        transport: &str,
        now: u64,
    ) -> Result<CertResponse, Refusal> {
        let result = self.decide_signed(bytes, None, now).await;
        self.record(&result, transport, now).await;
        result.map(|(_, _, r)| r).map_err(|r| r.answer)
    }

    /// MQTT `cb/claims/<claim_cn>/req`: as [`ClaimService::handle`], and the
    /// request must be signed with the claim the topic names. Returns the
    /// device id to answer for (the request's `iss`, used only to address
    /// the answer) and the outcome.
    pub async fn handle_mqtt(
        &self,
        bytes: &[u8],
        claim_cn: &str,
        now: u64,
    ) -> (Option<String>, Result<CertResponse, Refusal>) {
        let addressee = UnverifiedRequest::parse(bytes, self.auth.limits)
            .ok()
            .and_then(|r| {
                certbound_proto::request::TokenRequest::from_cbor(
                    r.unverified_payload(),
                    self.auth.limits,
                )
                .ok()
            })
            .map(|r| r.iss)
            .filter(|iss| validate_device_id(iss).is_ok());
        let result = self.decide_signed(bytes, Some(claim_cn), now).await;
        self.record(&result, "mqtt", now).await;
        (addressee, result.map(|(_, _, r)| r).map_err(|r| r.answer))
    }

    /// EST `simpleenroll`: the claim certificate came with the TLS handshake.
    pub async fn handle_est(
        &self,
        peer_chain: &[Vec<u8>],
        csr: &[u8],
        now: u64,
    ) -> Result<CertResponse, Refusal> {
        let result = self.decide_est(peer_chain, csr, now).await;
        self.record(&result, "https-est", now).await;
        result.map(|(_, _, r)| r).map_err(|r| r.answer)
    }

    async fn record(
        &self,
        result: &Result<(String, String, CertResponse), AuditedRefusal>,
        transport: &str,
        now: u64,
    ) {
        let (subject, actor, action, outcome, detail) = match result {
            Ok((device, claim, _)) => (
                device.clone(),
                format!("claim:{claim}"),
                "device.claimed",
                "ok".to_string(),
                format!("transport={transport} claim={claim}"),
            ),
            Err(r) => (
                r.device.clone().unwrap_or_else(|| "(unknown)".into()),
                "claim".to_string(),
                "device.claim_refused",
                r.answer.audit_outcome().to_string(),
                format!("transport={transport} {}", r.audit_reason()),
            ),
        };
        self.audit
            .record(AuditEvent {
                ts_ms: now.saturating_mul(1000),
                actor,
                action: action.into(),
                subject,
                outcome,
                detail,
            })
            .await;
    }

    async fn decide_signed(
        &self,
        bytes: &[u8],
        channel_claim: Option<&str>,
        now: u64,
    ) -> Result<(String, String, CertResponse), AuditedRefusal> {
        let limits = self.auth.limits;
        let request = UnverifiedRequest::parse(bytes, limits)
            .map_err(|e| from_proto(&e, "malformed request"))?;
        let CertRef::X5Chain(chain) = &request.cert else {
            return Err(refuse(
                AceErrorCode::InvalidRequest,
                "a claim request names its claim certificate in x5chain (33)",
            ));
        };
        let Some((leaf, extra)) = chain.split_first() else {
            return Err(refuse(AceErrorCode::InvalidRequest, "empty x5chain"));
        };
        let pki = self.pki.get();
        let claim = pki
            .trust
            .verify_claim_cert(leaf, extra, now, self.auth.leeway)
            .map_err(|e| unauthenticated(format!("claim certificate rejected: {e}")))?;
        if let Some(channel) = channel_claim
            && channel != format!("claim-{}", claim.claim_id)
        {
            return Err(refuse(
                AceErrorCode::InvalidClient,
                format!(
                    "a request of claim {} arrived on the topic of {channel}",
                    claim.claim_id
                ),
            ));
        }
        let key = EcPublicKey::from_sec1(&claim.public_key_sec1)
            .map_err(|e| from_proto(&e, "claim key"))?;
        let verifier = AwsLcVerifier::new(&key).map_err(|e| from_proto(&e, "claim key"))?;
        let req = request
            .verify(&verifier, limits)
            .map_err(|e| unauthenticated(format!("request signature: {e}")))?;
        req.validate(&self.auth.issuer_id, now, self.auth.leeway)
            .map_err(|e| {
                refuse(
                    AceErrorCode::InvalidClient,
                    format!("request assertion: {e}"),
                )
            })?;
        self.auth.admit_claim_nonce(
            &format!("claim:{}", claim.claim_id),
            &req.cti,
            req.exp,
            now,
        )?;
        let csr = csr_of(&req).map_err(|e| refuse(AceErrorCode::InvalidRequest, e.to_string()))?;
        self.enroll(
            &claim.claim_id,
            &claim.public_key_sec1,
            &req.iss,
            Csr::Der(csr),
            now,
        )
        .await
    }

    async fn decide_est(
        &self,
        peer_chain: &[Vec<u8>],
        csr: &[u8],
        now: u64,
    ) -> Result<(String, String, CertResponse), AuditedRefusal> {
        let Some((leaf, extra)) = peer_chain.split_first() else {
            return Err(refuse(
                AceErrorCode::InvalidClient,
                "EST enrollment needs the claim certificate as the TLS client certificate",
            ));
        };
        let pki = self.pki.get();
        let claim = pki
            .trust
            .verify_claim_cert(leaf, extra, now, self.auth.leeway)
            .map_err(|e| {
                refuse(
                    AceErrorCode::InvalidClient,
                    format!("claim certificate rejected: {e}"),
                )
            })?;
        // Verified once: its subject names the device, and `enroll` uses it.
        let verified = verify_csr(csr)
            .map_err(|e| refuse(AceErrorCode::InvalidRequest, format!("CSR refused: {e}")))?;
        let requested = verified
            .subject
            .split(',')
            .find_map(|rdn| rdn.trim().strip_prefix("CN=").map(str::to_string))
            .ok_or_else(|| {
                refuse(
                    AceErrorCode::InvalidRequest,
                    "the CSR's subject CN names the device id; it has none",
                )
            })?;
        self.enroll(
            &claim.claim_id,
            &claim.public_key_sec1,
            &requested,
            Csr::Verified(verified),
            now,
        )
        .await
    }

    async fn enroll(
        &self,
        claim_id: &str,
        claim_key_sec1: &[u8],
        device: &str,
        csr: Csr<'_>,
        now: u64,
    ) -> Result<(String, String, CertResponse), AuditedRefusal> {
        let claim = self
            .store
            .get_claim(claim_id)
            .await
            .map_err(|e| internal(&e))?
            .ok_or_else(|| {
                refuse(
                    AceErrorCode::InvalidClient,
                    format!("claim {claim_id} is not registered"),
                )
            })?;
        let why = if claim.revoked {
            Some("was revoked")
        } else if now >= claim.expires_at {
            Some("has expired")
        } else if claim.uses_left == 0 {
            Some("has no uses left")
        } else {
            None
        };
        if let Some(why) = why {
            return Err(refuse(
                AceErrorCode::UnauthorizedClient,
                format!("claim {claim_id} {why}"),
            )
            .for_device(device));
        }
        validate_device_id(device)
            .map_err(|e| refuse(AceErrorCode::InvalidRequest, format!("device id: {e}")))?;
        let allowed = claim
            .id_pattern
            .as_deref()
            .is_none_or(|p| glob_match(p, device))
            && claim
                .allowlist
                .as_ref()
                .is_none_or(|l| l.iter().any(|x| x == device));
        if !allowed {
            return Err(refuse(
                AceErrorCode::UnauthorizedClient,
                format!("device id {device:?} is not allowed by claim {claim_id}"),
            )
            .for_device(device));
        }
        let verified = match csr {
            Csr::Verified(v) => v,
            Csr::Der(der) => verify_csr(der).map_err(|e| {
                refuse(AceErrorCode::InvalidRequest, format!("CSR refused: {e}")).for_device(device)
            })?,
        };
        verified.check_identity(device).map_err(|e| {
            refuse(AceErrorCode::InvalidRequest, format!("CSR refused: {e}")).for_device(device)
        })?;
        if verified.public_key_sec1 == claim_key_sec1 {
            return Err(refuse(
                AceErrorCode::InvalidRequest,
                "CSR refused: it is for the claim key, which the whole batch shares; \
                 the device needs its own new key pair",
            )
            .for_device(device));
        }
        crate::enroll_service::refuse_claim_key(&self.store, &verified.public_key_sec1)
            .await
            .map_err(|r| r.for_device(device))?;
        crate::enroll_service::refuse_revoked_key(&self.store, &verified.public_key_sec1)
            .await
            .map_err(|r| r.for_device(device))?;
        let pki = self.pki.get();
        let cert = pki
            .ca
            .issue_for_csr(&verified, device, self.cert_days, now)
            .map_err(|e| {
                tracing::error!(error = %e, "issuing a claimed certificate failed");
                AuditedRefusal {
                    answer: Refusal::unavailable(),
                    device: Some(device.to_string()),
                    x5t: None,
                    reason: None,
                }
            })?;
        let record = CertRecord::issued(device, &cert);
        match self
            .store
            .enroll_with_claim(claim_id, claim_key_sec1, device, &claim.group, &record, now)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                return Err(refuse(
                    AceErrorCode::UnauthorizedClient,
                    format!("claim {claim_id} has no uses left"),
                )
                .for_device(device));
            }
            Err(crate::store::StoreError::Conflict { .. }) => {
                return Err(refuse(
                    AceErrorCode::UnauthorizedClient,
                    format!("device {device} is already registered"),
                )
                .for_device(device));
            }
            Err(e) => return Err(internal(&e)),
        }
        Ok((
            device.to_string(),
            claim_id.to_string(),
            CertResponse {
                chain: vec![cert.der, pki.issuing_der.clone()],
            },
        ))
    }
}
