//! The certbound topic policy ([`CertboundAcl`]).

use std::fmt;
use std::sync::Arc;

use certbound_pki::{
    BROKER_SERVICE_NAME, DEVICE_URI_PREFIX, IdentityKind, SERVICE_URI_PREFIX, identity_kind,
};
use certbound_proto::topics::{claim_may_use, device_may_use};

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
        // One rule for every transport: certbound_pki::identity_kind.
        match identity_kind(peer_cert_der).map_err(|e| format!("client certificate: {e}"))? {
            IdentityKind::Device(id) => Ok(Identity::Device(id)),
            IdentityKind::Service(name) => Ok(Identity::Service(name)),
            IdentityKind::Broker => Ok(Identity::Service(BROKER_SERVICE_NAME.to_owned())),
            IdentityKind::Claim(id) => Ok(Identity::Claim(format!("claim-{id}"))),
            IdentityKind::Foreign => Err(format!(
                "client certificate has no {DEVICE_URI_PREFIX}<id> or \
                 {SERVICE_URI_PREFIX}<name> SAN URI"
            )),
        }
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
