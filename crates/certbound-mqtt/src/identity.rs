//! Who is connected, and the policy hook that decides what they may do.

use std::fmt;
use std::future::Future;
use std::time::Duration;

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
    /// `$share/{group}/` prefix). A refusal answers 0x87 (3.1.1: 0x80) for
    /// that filter in the SUBACK; the connection stays up.
    fn may_subscribe(&self, who: &Identity, filter: &str) -> bool;

    /// Verifies an access token an MQTT 5 client sent with Authentication
    /// Method `ace` (in CONNECT, or in AUTH to re-authenticate): signature,
    /// expiry, audience, revocation, and that the token is bound to the key
    /// of the client certificate `peer_cert_der` (which the TLS handshake
    /// proved the client holds). `Err(reason)` refuses it (CONNACK 0x87,
    /// or DISCONNECT 0x87 on re-authentication). Runs on the connection's
    /// task: it must be cheap (offline verification) and must not block.
    ///
    /// The default refuses every token.
    fn verify_token(
        &self,
        who: &Identity,
        peer_cert_der: &[u8],
        token: &[u8],
    ) -> Result<TokenGrant, String> {
        let _ = (who, peer_cert_der, token);
        Err("this server does not accept access tokens".to_owned())
    }
}

/// What an accepted access token grants a session: the topic rights of its
/// scope, on top of what the certificate's identity may do, until it
/// expires.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenGrant {
    /// The token id (`cti`), for [`MqttServer::disconnect_token`](crate::MqttServer::disconnect_token).
    pub id: Vec<u8>,
    /// Time left until the token expires: the session ends then unless the
    /// client re-authenticates with a fresh token.
    pub lifetime: Duration,
    /// Topic filters the session may publish to (topic names matching them).
    pub publish: Vec<String>,
    /// Topic filters the session may subscribe to (filters they cover).
    pub subscribe: Vec<String>,
}

impl TokenGrant {
    /// A grant for the token `id`, valid for `lifetime`, with topic rights.
    pub fn new(
        id: Vec<u8>,
        lifetime: Duration,
        publish: Vec<String>,
        subscribe: Vec<String>,
    ) -> Self {
        TokenGrant {
            id,
            lifetime,
            publish,
            subscribe,
        }
    }
}
