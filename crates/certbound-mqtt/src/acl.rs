//! The certbound topic policy ([`CertboundAcl`]).

use std::fmt;
use std::sync::Arc;

use certbound_pki::{CLAIM_URI_PREFIX, DEVICE_URI_PREFIX, SERVICE_URI_PREFIX, validate_device_id};
use certbound_proto::topics::{claim_may_use, device_may_use};
use x509_parser::extensions::GeneralName;

use crate::identity::{Authorizer, Identity};
use crate::topic::SHARE_PREFIX;

/// Topic prefix services may use (`cb/`).
const SERVICE_TOPIC_PREFIX: &str = "cb/";

/// Revocation hook: returns `true` when the identity must be refused.
pub type RevocationCheck = Arc<dyn Fn(&Identity) -> bool + Send + Sync>;

/// The certbound MQTT policy.
///
/// * A certificate with exactly one SAN URI `urn:certbound:device:<id>` (and
///   no service URI) is [`Identity::Device`]; one with exactly one
///   `urn:certbound:service:<name>` (and no device URI) is
///   [`Identity::Service`]; one with exactly one `urn:certbound:claim:<id>`
///   (and nothing else) is [`Identity::Claim`]. Anything else is refused at
///   connect time.
/// * Claim holders may only publish on `cb/claims/claim-<id>/req` and
///   subscribe to `cb/claims/claim-<id>/res/<device or +>`.
/// * Devices may publish and subscribe only inside `cb/v1/<id>/`
///   ([`device_may_use`]): a filter with a wildcard at the device level
///   (`cb/v1/+/telemetry`), `#`, or a shared subscription is refused.
/// * Services may publish to any topic under `cb/` and subscribe to any
///   filter under `cb/`, plainly or as `$share/<group>/cb/...`.
/// * Everything else is refused.
///
/// With [`CertboundAcl::with_revocation_check`], identities the check
/// reports as revoked are refused at connect time; use
/// [`MqttServer::disconnect`](crate::MqttServer::disconnect) to drop the
/// connections that were already up when the identity was revoked.
#[derive(Default, Clone)]
pub struct CertboundAcl {
    is_revoked: Option<RevocationCheck>,
}

impl fmt::Debug for CertboundAcl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertboundAcl")
            .field("revocation_check", &self.is_revoked.is_some())
            .finish()
    }
}

impl CertboundAcl {
    /// The policy without a revocation check.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a revocation check, called at every connect with the identity the
    /// certificate proves; `true` refuses the connection.
    pub fn with_revocation_check(mut self, f: RevocationCheck) -> Self {
        self.is_revoked = Some(f);
        self
    }

    /// The identity a certificate proves, without the revocation check.
    ///
    /// # Errors
    /// A message saying why the certificate carries no usable identity.
    pub fn identity_of(peer_cert_der: &[u8]) -> Result<Identity, String> {
        let (_, cert) = x509_parser::parse_x509_certificate(peer_cert_der)
            .map_err(|e| format!("client certificate does not parse: {e}"))?;
        let san = cert
            .subject_alternative_name()
            .map_err(|e| format!("client certificate has a malformed SAN extension: {e}"))?;
        let mut devices = Vec::new();
        let mut services = Vec::new();
        let mut claims = Vec::new();
        for name in san.iter().flat_map(|s| s.value.general_names.iter()) {
            if let GeneralName::URI(uri) = name {
                if let Some(id) = uri.strip_prefix(DEVICE_URI_PREFIX) {
                    devices.push(id);
                } else if let Some(service) = uri.strip_prefix(SERVICE_URI_PREFIX) {
                    services.push(service);
                } else if let Some(claim) = uri.strip_prefix(CLAIM_URI_PREFIX) {
                    claims.push(claim);
                }
            }
        }
        if let [claim] = claims.as_slice() {
            if !devices.is_empty() || !services.is_empty() {
                return Err("client certificate names more than one certbound identity".to_owned());
            }
            validate_device_id(claim).map_err(|e| format!("invalid claim id {claim:?}: {e}"))?;
            return Ok(Identity::Claim(format!("claim-{claim}")));
        }
        if claims.len() > 1 {
            return Err("client certificate names more than one claim".to_owned());
        }
        let (kind, value, make): (&str, &str, fn(String) -> Identity) =
            match (devices.as_slice(), services.as_slice()) {
                ([id], []) => ("device id", id, Identity::Device),
                ([], [name]) => ("service name", name, Identity::Service),
                ([], []) => {
                    return Err(format!(
                        "client certificate has no {DEVICE_URI_PREFIX}<id> or \
                         {SERVICE_URI_PREFIX}<name> SAN URI"
                    ));
                }
                _ => {
                    return Err(
                        "client certificate names more than one certbound identity".to_owned()
                    );
                }
            };
        validate_device_id(value).map_err(|e| format!("invalid {kind} {value:?}: {e}"))?;
        Ok(make(value.to_owned()))
    }
}

/// True for `cb/...` or `$share/<group>/cb/...`.
fn service_filter_ok(filter: &str) -> bool {
    let inner = match filter.strip_prefix(SHARE_PREFIX) {
        Some(rest) => match rest.split_once('/') {
            Some((group, inner)) if !group.is_empty() && !group.contains(['+', '#']) => inner,
            _ => return false,
        },
        None => filter,
    };
    inner.starts_with(SERVICE_TOPIC_PREFIX)
}

impl Authorizer for CertboundAcl {
    async fn authenticate(&self, peer_cert_der: &[u8]) -> Result<Identity, String> {
        let identity = Self::identity_of(peer_cert_der)?;
        if self
            .is_revoked
            .as_ref()
            .is_some_and(|revoked| revoked(&identity))
        {
            return Err(format!("{identity} is revoked"));
        }
        Ok(identity)
    }

    fn may_publish(&self, who: &Identity, topic: &str) -> bool {
        match who {
            Identity::Device(id) => device_may_use(id, topic),
            Identity::Service(_) => topic.starts_with(SERVICE_TOPIC_PREFIX),
            Identity::Claim(cn) => claim_may_use(cn, topic, true),
        }
    }

    fn may_subscribe(&self, who: &Identity, filter: &str) -> bool {
        match who {
            Identity::Device(id) => device_may_use(id, filter),
            Identity::Service(_) => service_filter_ok(filter),
            Identity::Claim(cn) => claim_may_use(cn, filter, false),
        }
    }
}

#[cfg(test)]
mod tests;
