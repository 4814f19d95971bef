//! The broker's one refusal: what the caller is told ([`Refusal`], from
//! `certbound_proto::refusal`, mapped to the wire once per transport) and what
//! the audit log keeps ([`AuditedRefusal`]: the device, the certificate and
//! the real reason when the answer says less).

use certbound_proto::ProtoError;
use certbound_proto::ace::AceErrorCode;
pub use certbound_proto::refusal::Refusal;

/// The audit log's detail for a refusal over `transport`.
pub fn audit_detail(refusal: &Refusal, transport: &str) -> String {
    format!("transport={transport} {}", audit_reason(refusal))
}

/// Why, for the audit log: the denial's description, `unavailable` or
/// `retry_after=N`.
pub fn audit_reason(refusal: &Refusal) -> String {
    match refusal {
        Refusal::Denied(e) => e.description.clone().unwrap_or_default(),
        Refusal::Unavailable { .. } => "unavailable".into(),
        Refusal::RateLimited { retry_after } => format!("retry_after={retry_after}"),
    }
}

/// A refusal and, when known, the device it concerns (for the audit log).
pub(crate) struct AuditedRefusal {
    /// What the caller is told.
    pub(crate) answer: Refusal,
    pub(crate) device: Option<String>,
    /// Hex SHA-256 thumbprint of the certificate the request named, when
    /// it got that far (for the audit log).
    pub(crate) x5t: Option<String>,
    /// Why, for the audit log only, when the answer says less than that
    /// (unauthenticated refusals all read [`NOT_AUTHENTICATED`]).
    pub(crate) reason: Option<String>,
}

/// The one answer to every device request refused before its signature
/// verified (unknown certificate, invalid certificate, bad signature): the
/// same text whatever the reason, so that nobody can probe which devices or
/// certificates exist. The audit log keeps the real reason.
pub const NOT_AUTHENTICATED: &str = "the request could not be authenticated: its certificate is \
    unknown here or not valid, or its signature does not verify with the certificate key";

pub(crate) fn refuse(code: AceErrorCode, description: impl Into<String>) -> AuditedRefusal {
    AuditedRefusal {
        answer: Refusal::denied(code, description),
        device: None,
        x5t: None,
        reason: None,
    }
}

/// A refusal before the caller proved possession of a certificate key:
/// [`NOT_AUTHENTICATED`] on the wire, `reason` in the audit log.
pub(crate) fn unauthenticated(reason: impl Into<String>) -> AuditedRefusal {
    let mut r = refuse(AceErrorCode::InvalidClient, NOT_AUTHENTICATED);
    r.reason = Some(reason.into());
    r
}

pub(crate) fn from_proto(e: &ProtoError, context: &str) -> AuditedRefusal {
    refuse(e.ace_code(), format!("{context}: {e}"))
}

pub(crate) fn internal(e: &dyn std::fmt::Display) -> AuditedRefusal {
    tracing::error!(error = %e, "store failure while handling a device request");
    let mut r = AuditedRefusal::unavailable();
    r.reason = Some("store failure".into());
    r
}

impl AuditedRefusal {
    /// "Service unavailable, retry" with no audit details yet.
    pub(crate) fn unavailable() -> Self {
        AuditedRefusal {
            answer: Refusal::unavailable(),
            device: None,
            x5t: None,
            reason: None,
        }
    }

    pub(crate) fn for_device(mut self, device: &str) -> Self {
        self.device = Some(device.to_string());
        self
    }

    pub(crate) fn with_x5t(mut self, thumbprint: &str) -> Self {
        self.x5t = Some(thumbprint.to_string());
        self
    }

    /// The audit log's reason: the detailed one when the answer was generic.
    pub(crate) fn audit_reason(&self) -> String {
        self.reason
            .clone()
            .unwrap_or_else(|| audit_reason(&self.answer))
    }
}
