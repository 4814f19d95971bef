//! Who is connected, and the policy hook that decides what they may do.

use std::fmt;
use std::future::Future;

/// The identity a client certificate proves.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Identity {
    /// A device (`urn:certbound:device:<id>`), holding the device id.
    Device(String),
    /// A backend service such as the broker (`urn:certbound:service:<name>`),
    /// holding the service name.
    Service(String),
    /// The holder of a provisioning claim (`urn:certbound:claim:<id>`),
    /// holding the claim certificate's CN `claim-<id>`: it may only ask for
    /// first enrollment on `cb/claims/claim-<id>/...`.
    Claim(String),
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Device(id) => write!(f, "device:{id}"),
            Identity::Service(name) => write!(f, "service:{name}"),
            Identity::Claim(cn) => write!(f, "claim:{cn}"),
        }
    }
}

/// Authentication and topic authorisation for the MQTT server.
///
/// The server has already verified the client certificate chain against the
/// configured CA roots (and its validity period) before calling
/// [`Authorizer::authenticate`]; the authorizer maps the certificate to an
/// [`Identity`] and may refuse it (revocation, unknown kind of certificate).
/// `may_publish` and `may_subscribe` run on every PUBLISH and for every
/// filter of every SUBSCRIBE, so they must be cheap and must not block.
pub trait Authorizer: Send + Sync + 'static {
    /// Called once per connection with the verified peer leaf certificate
    /// (DER). `Err(reason)` refuses the client: it gets CONNACK 0x05 (not
    /// authorized) and the connection is closed; `reason` is logged.
    fn authenticate(
        &self,
        peer_cert_der: &[u8],
    ) -> impl Future<Output = Result<Identity, String>> + Send;

    /// Whether `who` may publish to the topic name `topic`. A refusal closes
    /// the connection (MQTT 3.1.1 has no negative PUBACK).
    fn may_publish(&self, who: &Identity, topic: &str) -> bool;

    /// Whether `who` may subscribe to `filter` (as sent, including any
    /// `$share/{group}/` prefix). A refusal answers 0x80 for that filter in
    /// the SUBACK; the connection stays up.
    fn may_subscribe(&self, who: &Identity, filter: &str) -> bool;
}
