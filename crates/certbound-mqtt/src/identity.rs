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

/// Facts about the verified client certificate of a connection, for
/// revocation checks and the session's end at `notAfter`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerCert {
    /// Serial number, lowercase hex without leading zero bytes (as the
    /// broker's store keeps it).
    pub serial_hex: String,
    /// SHA-256 over the certificate DER (the store's `thumbprint`).
    pub thumbprint: [u8; 32],
    /// notAfter, Unix seconds: the server ends the session then.
    pub not_after: u64,
}

impl PeerCert {
    /// Reads the facts of a certificate (DER).
    ///
    /// # Errors
    /// A message saying why the certificate does not parse.
    pub fn from_der(der: &[u8]) -> Result<PeerCert, String> {
        let summary = certbound_pki::cert_summary(der)
            .map_err(|e| format!("client certificate does not parse: {e}"))?;
        Ok(PeerCert {
            serial_hex: summary.serial_hex,
            thumbprint: summary.thumbprint,
            not_after: summary.not_after,
        })
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
