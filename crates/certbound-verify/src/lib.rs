//! # certbound-verify
//!
//! Offline verification of certbound access tokens for backend APIs: no
//! network, no clock (time is passed in as Unix seconds), no async runtime.
//!
//! * [`KeySet`]: the broker's signing keys by `kid`, from its JWKS
//!   (`/.well-known/jwks.json`) or COSE_KeySet (`/.well-known/cose-keys`).
//! * [`TokenVerifier::verify`] (CWT), [`TokenVerifier::verify_jwt`] (RFC 9068
//!   JWT) and [`TokenVerifier::verify_text`] (either, as sent in a `Bearer`
//!   header): strict parsing, ES256 signature (JWTs of an API that asks for
//!   it: RS256, PS256 or EdDSA, the algorithm decided by the key, never by
//!   the header), `exp`/`nbf`/`iat` with leeway,
//!   issuer (required: configure it, or opt out explicitly with
//!   [`VerifierConfig::any_issuer`]), audience (string or array), scopes, and `cnf` required
//!   (certificate-bound tokens only, unless bearer tokens are allowed).
//! * [`status::StatusCache`]: revocation by Token Status List, sans-IO, with
//!   an allow-list of list URLs (no fetching of URLs chosen by a token).
//! * [`VerifiedToken::check_certificate_binding`] (mTLS: the CWT's `cnf` key
//!   or the JWT's `x5t#S256` against the peer certificate) and
//!   [`VerifiedToken::check_telemetry_pop`] (signed telemetry): the token is
//!   accepted only from the holder of its `cnf` key.
//! * [`TelemetryVerifier`]: the whole telemetry check (token, proof of
//!   possession, topic, anti-replay window per device) with a token cache.
//!   A backend that also checks revocation uses
//!   [`TelemetryVerifier::check_unrecorded`] (everything but the window), the
//!   status check (`http::Authenticator::check_telemetry` does both), then
//!   [`TelemetryVerifier::commit`]; [`ReplayWindow`] is plain data, for
//!   backends that persist windows across restarts
//!   ([`TelemetryVerifier::window_after`], [`TelemetryVerifier::restore_window`]).
//! * [`status::StatusCache`] refuses a list older than the one it holds
//!   ([`VerifyError::StatusRollback`]).
//! * [`inspect`]: decode without trusting and report every check, for humans.
//! * [`VerifyError::reason_code`]: stable short codes for reject metrics.
//!
//! ## Cargo features
//!
//! * `http` (off by default): the `http` module, the HTTPS plumbing shared by
//!   the auth broker and backend APIs — rustls (aws-lc-rs) server and client
//!   configurations with optional mutual TLS, an axum server over TLS that
//!   hands handlers the client certificate chain (`PeerCertificates`) for
//!   certificate-bound tokens, and a bounded HTTPS client (`HttpsFetcher`)
//!   for key sets and OAuth form posts; `RemoteKeys` (a JWKS URL, cached and
//!   refreshed with bounds) and the axum middleware `http::layer` that
//!   verifies `Authorization: Bearer` tokens, their revocation status and
//!   certificate binding. It needs tokio; without it this crate pulls in no
//!   async runtime.
//!
//! ## Example
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use certbound_proto::crypto::{P256Signer, Signer};
//! use certbound_proto::token;
//! use certbound_verify::{Claims, KeySet, TokenVerifier, VerifierConfig};
//!
//! // The broker's key (in production: load its JWKS with KeySet::from_jwks).
//! let broker = P256Signer::from_scalar(&[7u8; 32])?;
//! let device = P256Signer::from_scalar(&[9u8; 32])?;
//! let kid = broker.public_key().kid();
//! let mut keys = KeySet::new();
//! keys.insert(kid.clone(), broker.public_key().clone())?;
//!
//! // A token as the broker mints it.
//! let claims = Claims {
//!     iss: Some("https://auth.example.com".into()),
//!     sub: Some("sensor-1".into()),
//!     aud: vec!["https://telemetry.example.com".into()],
//!     exp: Some(1_700_003_600),
//!     iat: Some(1_700_000_000),
//!     cti: Some(vec![1; 16]),
//!     scope: Some("telemetry:write".into()),
//!     cnf: Some(device.public_key().clone()),
//!     ..Claims::default()
//! };
//! let cwt = token::mint(&claims, &kid, &broker)?;
//!
//! let mut config = VerifierConfig::new("https://telemetry.example.com");
//! config.issuer = Some("https://auth.example.com".into());
//! let verifier = TokenVerifier::new(keys, config);
//!
//! let now = 1_700_000_100;
//! let verified = verifier.verify(&cwt, &["telemetry:write"], now)?;
//! assert_eq!(verified.device_id(), Some("sensor-1"));
//! assert_eq!(verified.confirmation_key(), Some(device.public_key()));
//!
//! // An hour later the token has expired.
//! let err = verifier.verify(&cwt, &["telemetry:write"], now + 3600).err();
//! assert_eq!(err.map(|e| e.reason_code()), Some("expired"));
//!
//! // A human-readable report of every check.
//! let report = certbound_verify::inspect(&cwt, Some(verifier.keys()), None, None, now, 60);
//! assert!(report.valid);
//! println!("{report}");
//! # Ok(())
//! # }
//! ```
//!
//! ## Verifying telemetry
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use certbound_proto::crypto::{P256Signer, Signer};
//! use certbound_proto::telemetry::{self, TelemetryPayload};
//! use certbound_proto::token;
//! use certbound_verify::{
//!     Claims, KeySet, TelemetryConfig, TelemetryVerifier, TokenVerifier, VerifierConfig,
//! };
//!
//! let broker = P256Signer::from_scalar(&[7u8; 32])?;
//! let device = P256Signer::from_scalar(&[9u8; 32])?;
//! let kid = broker.public_key().kid();
//! let mut keys = KeySet::new();
//! keys.insert(kid.clone(), broker.public_key().clone())?;
//! let config = VerifierConfig::new("https://telemetry.example.com")
//!     .with_issuer("https://auth.example.com");
//! let tokens = TokenVerifier::new(keys, config);
//! let verifier = TelemetryVerifier::new(tokens, TelemetryConfig::default());
//!
//! // The device attaches its token and signs each message with its own key.
//! let claims = Claims {
//!     iss: Some("https://auth.example.com".into()),
//!     sub: Some("sensor-1".into()),
//!     aud: vec!["https://telemetry.example.com".into()],
//!     exp: Some(1_700_003_600),
//!     cti: Some(vec![1; 16]),
//!     scope: Some("telemetry:write".into()),
//!     cnf: Some(device.public_key().clone()),
//!     ..Claims::default()
//! };
//! let cwt = token::mint(&claims, &kid, &broker)?;
//! let payload = TelemetryPayload {
//!     seq: 1,
//!     timestamp_ms: 1_700_000_100_000,
//!     data: b"{\"t\":21.5}".to_vec(),
//!     token_cti: vec![1; 16],
//! };
//! let message = telemetry::seal(&cwt, &payload, &device)?;
//!
//! let now = 1_700_000_100;
//! let accepted = verifier.verify(&message, Some("sensor-1"), now)?;
//! assert_eq!((accepted.device_id.as_str(), accepted.seq), ("sensor-1", 1));
//!
//! // The same message again is a replay.
//! let err = verifier.verify(&message, Some("sensor-1"), now).err();
//! assert_eq!(err.map(|e| e.reason_code()), Some("replay"));
//! assert_eq!(verifier.stats().token_cache_hits, 1);
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod binding;
mod custom;
mod error;
#[cfg(feature = "http")]
pub mod http;
mod inspect;
mod keyset;
pub mod status;
mod telemetry;
mod text;
pub mod url_allow;
mod verifier;

pub use certbound_proto::cbor::Limits;
pub use certbound_proto::telemetry::{TelemetryPayload, UnverifiedTelemetry};
pub use certbound_proto::{EcPublicKey, claims::Claims};
pub use custom::{ClaimKey, ClaimType, ClaimValue};
pub use error::VerifyError;
pub use inspect::{
    CheckResult, Inspection, Profile, escape_control, inspect, inspect_as, inspect_jwt,
    inspect_jwt_as,
};
pub use keyset::KeySet;
pub use telemetry::{
    AcceptedTelemetry, CheckedTelemetry, ReplayWindow, TelemetryConfig, TelemetryStats,
    TelemetryVerifier,
};
pub use text::decode_token_text;
pub use verifier::{DEFAULT_LEEWAY, TokenFormat, TokenVerifier, VerifiedToken, VerifierConfig};

#[cfg(test)]
mod tests;
