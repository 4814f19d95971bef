//! The certbound topic policy ([`CertboundAcl`]).

use std::fmt;
use std::sync::Arc;

use certbound_pki::{
    BROKER_SERVICE_NAME, DEVICE_URI_PREFIX, IdentityKind, SERVICE_URI_PREFIX, identity_kind,
};
use certbound_proto::topics::{claim_may_use, device_may_use};

use crate::identity::{Authorizer, Identity, PeerCert, TokenGrant};
use crate::topic::SHARE_PREFIX;

/// Topic prefix the broker identity may use (`cb/`).
const BROKER_TOPIC_PREFIX: &str = "cb/";
/// The share group of the broker instances (`$share/certbound/...`); no
/// other identity may join it.
pub const BROKER_SHARE_GROUP: &str = "certbound";

/// Revocation hook: called at every connect with the identity the
/// certificate proves and the certificate's facts (serial, thumbprint,
/// notAfter); returns `true` when the connection must be refused (a revoked
/// device or a revoked certificate). Called on the connect path: keep it an
/// in-memory lookup.
pub type RevocationCheck = Arc<dyn Fn(&Identity, &PeerCert) -> bool + Send + Sync>;

/// Verifies an access token for a session (see [`Authorizer::verify_token`]):
/// called with the identity, the client certificate (DER) and the token.
pub type TokenCheck =
    Arc<dyn Fn(&Identity, &[u8], &[u8]) -> Result<TokenGrant, String> + Send + Sync>;

/// The certbound MQTT policy.
///
/// Identities come from the certificate's SAN URI only, never from its
/// subject CN:
/// * exactly one SAN URI `urn:certbound:device:<id>` (and no service URI):
///   [`Identity::Device`]; exactly one `urn:certbound:service:<name>` (and no
///   device URI): [`Identity::Service`]; exactly one
///   `urn:certbound:claim:<id>` (and nothing else): [`Identity::Claim`].
///   Anything else is refused at connect time. A device whose id (or CN)
///   equals the broker's service name is still a device.
///
/// Rights (docs/mqtt.md has the table):
/// * **broker** (the service named with [`CertboundAcl::with_broker`]):
///   publishes anywhere under `cb/` (answers on `cb/v1/<id>/token/res`,
///   `cert/res`, claim answers) and subscribes to any filter under `cb/`,
///   plainly or as `$share/<group>/cb/...` (including `$share/certbound/`).
/// * **other services**: read telemetry only: subscribe to
///   `cb/v1/<id or +>/telemetry`, plainly or as `$share/<group>/...` with a
///   group other than `certbound`; they publish nothing.
/// * **devices**: publish and subscribe only inside `cb/v1/<id>/`
///   ([`device_may_use`]): a filter with a wildcard at the device level
///   (`cb/v1/+/telemetry`), `#`, `$SYS/#` or a shared subscription is refused.
/// * **claim holders**: publish only on `cb/claims/claim-<id>/req`, subscribe
///   only to `cb/claims/claim-<id>/res/<device or +>`.
/// * Everything else is refused.
///
/// With [`CertboundAcl::with_revocation_check`], identities or certificates
/// the check reports as revoked are refused at connect time; use
/// [`MqttServer::disconnect`](crate::MqttServer::disconnect) and
/// [`MqttServer::disconnect_certificate`](crate::MqttServer::disconnect_certificate)
/// to drop the connections that were already up when they were revoked.
#[derive(Default, Clone)]
pub struct CertboundAcl {
    is_revoked: Option<RevocationCheck>,
    broker: Option<String>,
    tokens: Option<TokenCheck>,
}

impl fmt::Debug for CertboundAcl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertboundAcl")
            .field("revocation_check", &self.is_revoked.is_some())
            .field("broker", &self.broker)
            .field("tokens", &self.tokens.is_some())
            .finish()
    }
}

impl CertboundAcl {
    /// The policy without a revocation check and without a broker: no
    /// identity may answer on devices' topics until
    /// [`CertboundAcl::with_broker`] names one.
    pub fn new() -> Self {
        Self::default()
    }

    /// Names the service (`urn:certbound:service:<name>`) that is the broker:
    /// the only identity that may publish to devices' topics and join
    /// `$share/certbound`.
    pub fn with_broker(mut self, service_name: impl Into<String>) -> Self {
        self.broker = Some(service_name.into());
        self
    }

    /// Adds a revocation check, called at every connect with the identity the
    /// certificate proves and the certificate's facts; `true` refuses the
    /// connection.
    pub fn with_revocation_check(mut self, f: RevocationCheck) -> Self {
        self.is_revoked = Some(f);
        self
    }

    /// Accepts access tokens (MQTT 5 Authentication Method `ace`) checked
    /// by `f`; without it every token is refused.
    #[must_use]
    pub fn with_token_check(mut self, f: TokenCheck) -> Self {
        self.tokens = Some(f);
        self
    }

    /// Whether `who` is the broker.
    fn is_broker(&self, who: &Identity) -> bool {
        matches!((who, &self.broker), (Identity::Service(name), Some(broker)) if name == broker)
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

/// Splits `$share/<group>/<filter>` into the group and the filter; `None`
/// as group for a plain filter, `Err` for a malformed share.
fn split_share(filter: &str) -> Result<(Option<&str>, &str), ()> {
    match filter.strip_prefix(SHARE_PREFIX) {
        Some(rest) => match rest.split_once('/') {
            Some((group, inner)) if !group.is_empty() && !group.contains(['+', '#']) => {
                Ok((Some(group), inner))
            }
            _ => Err(()),
        },
        None => Ok((None, filter)),
    }
}

/// The broker: `cb/...` or `$share/<group>/cb/...`.
fn broker_filter_ok(filter: &str) -> bool {
    split_share(filter).is_ok_and(|(_, inner)| inner.starts_with(BROKER_TOPIC_PREFIX))
}

/// Another service: filters that can only match telemetry topics,
/// `cb/v1/<id or +>/telemetry`, plainly or shared in a group other than the
/// broker's.
fn service_filter_ok(filter: &str) -> bool {
    let Ok((group, inner)) = split_share(filter) else {
        return false;
    };
    if group == Some(BROKER_SHARE_GROUP) {
        return false;
    }
    let levels: Vec<&str> = inner.split('/').collect();
    match levels.as_slice() {
        ["cb", "v1", device, "telemetry"] => {
            *device == "+" || (!device.is_empty() && !device.contains(['+', '#']))
        }
        _ => false,
    }
}

impl Authorizer for CertboundAcl {
    async fn authenticate(&self, peer_cert_der: &[u8]) -> Result<Identity, String> {
        let identity = Self::identity_of(peer_cert_der)?;
        if let Some(revoked) = &self.is_revoked {
            let cert = PeerCert::from_der(peer_cert_der)?;
            if revoked(&identity, &cert) {
                return Err(format!(
                    "{identity} or its certificate (serial {}) is revoked",
                    cert.serial_hex
                ));
            }
        }
        Ok(identity)
    }

    fn may_publish(&self, who: &Identity, topic: &str) -> bool {
        match who {
            Identity::Device(id) => device_may_use(id, topic),
            Identity::Service(_) if self.is_broker(who) => topic.starts_with(BROKER_TOPIC_PREFIX),
            Identity::Service(_) => false,
            Identity::Claim(cn) => claim_may_use(cn, topic, true),
        }
    }

    fn may_subscribe(&self, who: &Identity, filter: &str) -> bool {
        match who {
            Identity::Device(id) => device_may_use(id, filter),
            Identity::Service(_) if self.is_broker(who) => broker_filter_ok(filter),
            Identity::Service(_) => service_filter_ok(filter),
            Identity::Claim(cn) => claim_may_use(cn, filter, false),
        }
    }

    fn verify_token(
        &self,
        who: &Identity,
        peer_cert_der: &[u8],
        token: &[u8],
    ) -> Result<TokenGrant, String> {
        match &self.tokens {
            Some(check) => check(who, peer_cert_der, token),
            None => Err("this server does not accept access tokens".to_owned()),
        }
    }
}

#[cfg(test)]
mod tests;
