//! Certificate re-enrollment ("zero-touch renewal"): a device proves its
//! current certificate key (the signed device request, or mTLS for EST over
//! HTTPS) and possession of a NEW key (the CSR's own signature), and gets a
//! certificate for the new key from the current issuing CA — with
//! certbound's profile (id, SAN, EKU, lifetime); nothing is taken from the
//! CSR but its key.
//!
//! Order: authentication ([`crate::device_auth`], accepting a certificate
//! that expired at most `expired_grace` ago) -> CSR present -> device active
//! -> CSR signature and key type -> a key different from the current one,
//! from every provisioning claim's key and from every revoked certificate's
//! key -> issue -> register the certificate -> audit.

use std::sync::Arc;

use certbound_pki::verify_csr;
use certbound_proto::ace::AceErrorCode;
use certbound_proto::enroll::{CertResponse, csr_of};

use crate::audit::AuditLog;
use crate::device_auth::DeviceAuth;
use crate::limits::RateLimits;
use crate::pki_state::SharedPki;
use crate::refusal::{AuditedRefusal, Refusal, internal, refuse};
use crate::store::{AuditEvent, CertRecord, DeviceStatus, Store};

/// Settings of the enrollment service.
#[derive(Debug, Clone)]
pub struct EnrollConfig {
    /// Lifetime of issued device certificates, days.
    pub cert_days: u32,
    /// Lifetime in seconds, overriding `cert_days` when set.
    pub cert_secs: Option<u64>,
    /// How long after expiry a device may still renew (signed-request
    /// transports; TLS refuses expired certificates), seconds.
    pub expired_grace: u64,
}

/// Issues new device certificates for new keys.
#[derive(Debug)]
pub struct EnrollService {
    config: EnrollConfig,
    store: Store,
    pki: SharedPki,
    auth: Arc<DeviceAuth>,
    limits: Arc<RateLimits>,
    audit: AuditLog,
    metrics: Arc<crate::metrics::Metrics>,
}

/// What was issued.
struct Issued {
    device_id: String,
    response: CertResponse,
    old_serial: String,
    new_serial: String,
    not_after: u64,
}

impl EnrollService {
    /// Builds the service (sharing the token endpoint's replay cache and
    /// rate limits through `auth` and `limits`).
    pub(crate) fn new(
        config: EnrollConfig,
        store: Store,
        pki: SharedPki,
        auth: Arc<DeviceAuth>,
        limits: Arc<RateLimits>,
        audit: AuditLog,
    ) -> Self {
        Self {
            config,
            store,
            pki,
            auth,
            limits,
            audit,
            metrics: Arc::default(),
        }
    }

    /// Counts renewals in `metrics` (default: a private, unserved set).
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The current issuing CA's CRL (DER) at `now`: `GET /crl` on HTTPS and CoAP.
    pub async fn crl(&self, now: u64) -> Result<Vec<u8>, crate::error::BrokerError> {
        let set = self.pki.crls(&self.store, now).await?;
        Ok(set.current().map(|c| c.crl.der.clone()).unwrap_or_default())
    }

    /// The CRL (DER) of the issuing CA with serial `serial` (hex), current or
    /// previous, at `now`; `None` for a CA that issues nothing still valid:
    /// `GET /crl/{serial}` on HTTPS and CoAP.
    pub async fn crl_of(
        &self,
        serial: &str,
        now: u64,
    ) -> Result<Option<Vec<u8>>, crate::error::BrokerError> {
        let set = self.pki.crls(&self.store, now).await?;
        Ok(set.by_serial(serial).map(|c| c.crl.der.clone()))
    }

    /// Handles a signed re-enrollment request received over `transport`
    /// (`channel_device`: the device the MQTT topic names).
    pub async fn handle(
        &self,
        request: &[u8],
        transport: &str,
        channel_device: Option<&str>,
        now: u64,
    ) -> Result<CertResponse, Refusal> {
        let result = self.decide(request, channel_device, now).await;
        self.record(&result, transport, now).await;
        result.map(|i| i.response).map_err(|r| r.answer)
    }

    /// EST `simplereenroll` (RFC 7030 §4.2.2): the device authenticated by
    /// mTLS with `peer_chain` (verified by the TLS layer against the CA);
    /// `csr` is the PKCS#10 DER. Returns the new certificate and its issuer.
    pub async fn handle_est(
        &self,
        peer_chain: &[Vec<u8>],
        csr: &[u8],
        now: u64,
    ) -> Result<CertResponse, Refusal> {
        let result = self.decide_est(peer_chain, csr, now).await;
        self.record(&result, "https-est", now).await;
        result.map(|i| i.response).map_err(|r| r.answer)
    }

    async fn record(&self, result: &Result<Issued, AuditedRefusal>, transport: &str, now: u64) {
        let (subject, action, outcome, detail) = match result {
            Ok(i) => (
                i.device_id.clone(),
                "cert.renewed",
                "ok".to_string(),
                format!(
                    "transport={transport} old_serial={} new_serial={} not_after={}",
                    i.old_serial, i.new_serial, i.not_after
                ),
            ),
            Err(r) => (
                r.device
                    .clone()
                    .unwrap_or_else(|| "(unauthenticated)".into()),
                "cert.renewal_refused",
                r.answer.audit_outcome().to_string(),
                format!("transport={transport} {}", r.audit_reason()),
            ),
        };
        self.metrics.cert_renewal(transport, &outcome);
        self.audit
            .record(AuditEvent {
                ts_ms: now.saturating_mul(1000),
                actor: format!("device:{subject}"),
                action: action.into(),
                subject,
                outcome,
                detail,
            })
            .await;
    }

    async fn decide(
        &self,
        bytes: &[u8],
        channel_device: Option<&str>,
        now: u64,
    ) -> Result<Issued, AuditedRefusal> {
        let pki = self.pki.get();
        let a = self
            .auth
            .authenticate(
                &self.store,
                &pki,
                bytes,
                channel_device,
                now,
                self.config.expired_grace,
            )
            .await?;
        let device = a.device_id.clone();
        let csr = csr_of(&a.request)
            .map_err(|e| refuse(AceErrorCode::InvalidRequest, e.to_string()).for_device(&device))?;
        if a.request.grant_type.is_some() || a.request.audience.is_some() {
            return Err(refuse(
                AceErrorCode::InvalidRequest,
                "a re-enrollment request carries a CSR and no grant_type or audience",
            )
            .for_device(&device));
        }
        self.issue(
            &device,
            a.view.device_status,
            &a.view.serial,
            &a.cert_key.to_sec1(),
            csr,
            now,
        )
        .await
    }

    async fn decide_est(
        &self,
        peer_chain: &[Vec<u8>],
        csr: &[u8],
        now: u64,
    ) -> Result<Issued, AuditedRefusal> {
        let pki = self.pki.get();
        let Some((leaf, extra)) = peer_chain.split_first() else {
            return Err(refuse(
                AceErrorCode::InvalidClient,
                "EST re-enrollment needs the current device certificate as the TLS client certificate",
            ));
        };
        let cert = pki
            .trust
            .verify_device_cert(leaf, extra, now, self.auth.leeway)
            .map_err(|e| {
                refuse(
                    AceErrorCode::InvalidClient,
                    format!("client certificate rejected: {e}"),
                )
            })?;
        let device = cert.device_id.clone();
        let thumbprint = hex::encode(cert.thumbprint);
        let view = self
            .auth
            .view(&self.store, &thumbprint, "")
            .await?
            .ok_or_else(|| {
                refuse(
                    AceErrorCode::InvalidClient,
                    "certificate is not registered with this broker",
                )
                .for_device(&device)
            })?;
        if !view.cert_active || view.device_id != device {
            return Err(refuse(
                AceErrorCode::InvalidClient,
                format!("certificate {} is revoked", view.serial),
            )
            .for_device(&device));
        }
        if let Err(retry_after) = self.limits.check_device(&device, now) {
            return Err(AuditedRefusal {
                answer: Refusal::RateLimited { retry_after },
                device: Some(device),
                x5t: None,
                reason: None,
            });
        }
        self.issue(
            &device,
            view.device_status,
            &view.serial,
            &cert.public_key_sec1,
            csr,
            now,
        )
        .await
    }

    async fn issue(
        &self,
        device: &str,
        status: DeviceStatus,
        old_serial: &str,
        current_key_sec1: &[u8],
        csr: &[u8],
        now: u64,
    ) -> Result<Issued, AuditedRefusal> {
        if status != DeviceStatus::Active {
            return Err(refuse(
                AceErrorCode::UnauthorizedClient,
                format!("device {device} is {}", status.as_str()),
            )
            .for_device(device));
        }
        let verified = verify_csr(csr).map_err(|e| {
            refuse(AceErrorCode::InvalidRequest, format!("CSR refused: {e}")).for_device(device)
        })?;
        verified.check_identity(device).map_err(|e| {
            refuse(AceErrorCode::InvalidRequest, format!("CSR refused: {e}")).for_device(device)
        })?;
        if verified.public_key_sec1 == current_key_sec1 {
            return Err(refuse(
                AceErrorCode::InvalidRequest,
                "the CSR is for the current key: renewal needs a NEW key pair",
            )
            .for_device(device));
        }
        refuse_claim_key(&self.store, &verified.public_key_sec1)
            .await
            .map_err(|r| r.for_device(device))?;
        refuse_revoked_key(&self.store, &verified.public_key_sec1)
            .await
            .map_err(|r| r.for_device(device))?;
        let pki = self.pki.get();
        let issued = match self.config.cert_secs {
            Some(secs) => pki
                .ca
                .issue_device_cert_secs(device, &verified.spki_der, secs, now),
            None => pki
                .ca
                .issue_for_csr(&verified, device, self.config.cert_days, now),
        };
        let cert = issued.map_err(|e| {
            tracing::error!(error = %e, %device, "issuing a renewed certificate failed");
            AuditedRefusal {
                answer: Refusal::unavailable(),
                device: Some(device.to_string()),
                x5t: None,
                reason: None,
            }
        })?;
        let record = CertRecord::issued(device, &cert);
        self.store
            .add_certificate(&record, now)
            .await
            .map_err(|e| internal(&e).for_device(device))?;
        Ok(Issued {
            device_id: device.to_string(),
            response: CertResponse {
                chain: vec![cert.der, pki.issuing_der.clone()],
            },
            old_serial: old_serial.to_string(),
            new_serial: record.serial,
            not_after: record.not_after,
        })
    }
}

/// What a device is told when its CSR is for a provisioning claim's key.
pub const CLAIM_KEY_REFUSED: &str =
    "CSR refused: its key is a provisioning claim's key; generate a new key pair";

/// Refuses a CSR key that is the key of a provisioning claim (any claim,
/// expired and revoked ones too): every device of a batch holds its claim's
/// key, so a device certificate for it could be used by all of them. The
/// audit log names the claim.
pub(crate) async fn refuse_claim_key(store: &Store, key_sec1: &[u8]) -> Result<(), AuditedRefusal> {
    let claim = store
        .claim_with_key(key_sec1)
        .await
        .map_err(|e| internal(&e))?;
    match claim {
        Some(claim) => {
            let mut r = refuse(AceErrorCode::InvalidRequest, CLAIM_KEY_REFUSED);
            r.reason = Some(format!(
                "CSR refused: its key is the key of provisioning claim {claim}"
            ));
            Err(r)
        }
        None => Ok(()),
    }
}

/// Refuses a CSR key that belongs to a revoked certificate (of any device):
/// a key that was revoked, e.g. because it leaked, must never be certified
/// again, whoever asks.
pub(crate) async fn refuse_revoked_key(
    store: &Store,
    key_sec1: &[u8],
) -> Result<(), AuditedRefusal> {
    let revoked = store
        .revoked_serial_with_key(key_sec1)
        .await
        .map_err(|e| internal(&e))?;
    if let Some(serial) = revoked {
        return Err(AuditedRefusal {
            answer: Refusal::Denied(certbound_proto::ace::AceError::new(
                AceErrorCode::InvalidRequest,
                "CSR refused: its key belongs to a revoked certificate; generate a new key pair",
            )),
            device: None,
            x5t: None,
            reason: Some(format!(
                "CSR refused: its key belongs to revoked certificate {serial}"
            )),
        });
    }
    Ok(())
}
