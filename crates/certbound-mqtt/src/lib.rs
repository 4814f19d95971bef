//! An embedded MQTT 5 and 3.1.1 server for certbound: mutual TLS, identities
//! from client certificates, a per-identity topic ACL, and access tokens in
//! the session (RFC 9431).
//!
//! rumqttd cannot restrict each device to its own topics, so certbound runs
//! this small server instead (DESIGN.md, "Transports").
//!
//! * Both protocol versions on one port: the CONNECT protocol level decides;
//!   one session state machine speaks both (the codec in `wire` maps MQTT 5
//!   reason codes to 3.1.1 return codes and drops properties for 3.1.1).
//! * Every client must present a certificate that chains to the configured
//!   CA roots (rustls `WebPkiClientVerifier`, aws-lc-rs); the [`Authorizer`]
//!   turns the verified leaf into an [`Identity`] or refuses it (CONNACK
//!   0x87, 3.1.1: 0x05).
//! * Every PUBLISH and every SUBSCRIBE filter is checked by the authorizer.
//!   A refused PUBLISH gets PUBACK/PUBREC 0x87 (MQTT 5; QoS 0: DISCONNECT
//!   0x87) or closes the connection (3.1.1 has no negative PUBACK); a refused
//!   filter gets 0x87 (3.1.1: 0x80) in the SUBACK. [`CertboundAcl`] is the
//!   certbound policy: devices stay inside `cb/v1/<id>/`, only the broker
//!   identity may answer on devices' topics and join `$share/certbound`,
//!   other services read telemetry.
//! * MQTT 5 Authentication Method `ace` (RFC 9431): the authorizer's
//!   [`Authorizer::verify_token`] checks an access token bound to the client
//!   certificate's key; its topic rights ([`TokenGrant`]) are added to the
//!   ACL's; AUTH 0x19 re-authenticates in-session; a session whose token
//!   expires is ended (DISCONNECT 0x87); [`MqttServer::disconnect_token`]
//!   ends the sessions of a revoked token.
//! * QoS 0, 1 and 2; sessions that outlive their connection (Session Expiry,
//!   3.1.1 Clean Session 0), with bounded queues; retained messages; will
//!   messages with Will Delay; message expiry; topic aliases both ways;
//!   Receive Maximum and Maximum Packet Size both ways; subscription options
//!   and identifiers; assigned client ids; Server Keep Alive.
//! * Topic names and filters must be UTF-8 without NUL or control
//!   characters, topic names without wildcards: anything else closes the
//!   connection with a log line saying so.
//! * Caps: connections per identity (devices and claim holders, services:
//!   [`MqttServerConfig::max_connections_per_device`],
//!   [`MqttServerConfig::max_connections_per_service`]; over the cap CONNACK
//!   0x97, 3.1.1: 0x05), subscriptions per session
//!   ([`MqttServerConfig::max_subscriptions_per_session`]; over it SUBACK
//!   0x97), stored sessions per identity, retained messages, QoS 1/2 messages
//!   in flight and output waiting per connection.
//! * A session ends when its client certificate expires (notAfter).
//! * Topic filters with `+` and `#` (§4.7; `$` topics are not matched by a
//!   leading wildcard) and shared subscriptions `$share/{group}/{filter}`
//!   (each message to one member of the group, round-robin).
//! * A second CONNECT with the same client id *and the same identity* takes
//!   over: the older connection is closed (§3.1.4; MQTT 5: DISCONNECT 0x8E).
//!   Client ids are scoped per identity so that no client can push out
//!   another identity's connection.
//! * Each client has a bounded outgoing queue; a client that cannot keep up is
//!   disconnected, publishers are never slowed down.
//! * `TCP_NODELAY` is set on every accepted socket.
//! * [`client_tls::client_tls_config`] builds the matching rustls client
//!   configuration, and [`client`] is certbound's MQTT 3.1.1/5 client (on
//!   the same codec, tokio-rustls with aws-lc-rs) used by the broker, the
//!   agent, `certbound ingest` and the tests.
//!
//! Not supported: user name and password (ignored: the identity is the
//! certificate); authentication methods other than `ace` (CONNACK 0x8C); the
//! will of a session the server itself ends (takeover, [`MqttServer::disconnect`],
//! queue overflow, shutdown); stored sessions across a server restart.
//!
//! The protocol logic is sans-IO (`wire`, `router`, `session` and `hub`
//! modules, time passed in); only the `server` module touches sockets and
//! the clock.
//!
//! # Example
//!
//! ```no_run
//! use std::sync::Arc;
//! use certbound_mqtt::{CertboundAcl, Identity, MqttServer, MqttServerConfig, PeerCert};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = MqttServerConfig::new(
//!     "127.0.0.1:8883".parse()?,
//!     std::fs::read_to_string("server.chain.pem")?,
//!     std::fs::read_to_string("server.key.pem")?,
//!     std::fs::read_to_string("data/pki/ca-chain.pem")?,
//! );
//! let revoked = Arc::new(|who: &Identity, _cert: &PeerCert| {
//!     *who == Identity::Device("stolen-1".into())
//! });
//! let acl = CertboundAcl::new()
//!     .with_broker("certbound-broker")
//!     .with_revocation_check(revoked);
//! let server = MqttServer::bind(config, Arc::new(acl)).await?;
//! println!("listening on {}", server.local_addr());
//!
//! // Later, when a device is revoked:
//! server.disconnect(&Identity::Device("sensor-7".into()));
//! println!("{:?}", server.stats());
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod acl;
mod config;
mod error;
mod hub;
mod identity;
mod message;
mod router;
mod server;
mod session;
mod stats;
mod tls;
mod topic;
mod wire;

pub mod client;
pub mod client_tls;
#[doc(hidden)]
pub mod fuzzing;

pub use acl::{BROKER_SHARE_GROUP, CertboundAcl, RevocationCheck, TokenCheck};
pub use config::{
    DEFAULT_MAX_CONNECTIONS_PER_DEVICE, DEFAULT_MAX_CONNECTIONS_PER_SERVICE,
    DEFAULT_MAX_SUBSCRIPTIONS_PER_SESSION, MqttServerConfig,
};
pub use error::MqttError;
pub use identity::{Authorizer, Identity, PeerCert, TokenGrant};
pub use server::{MqttServer, MqttServerHandle};
pub use stats::MqttStats;
