//! # certbound-proto
//!
//! The sans-IO protocol core of certbound: the exact wire contracts of
//! DESIGN.md as pure functions. No sockets, no clock (time is passed in as
//! Unix seconds), no runtime.
//!
//! ```text
//!  device (agent)                       broker                       backend (verify)
//!  request::sign_request ──CoAP/MQTT──▶ request::UnverifiedRequest
//!                                        token::mint  ──────────────▶ token::UnverifiedToken
//!                                        jwt::sign_jwt ─────────────▶ jwt::UnverifiedJwt
//!                                        status_list::mint_status_list ▶ status_list::UnverifiedStatusList
//!  telemetry::seal ─────────────────────────────────────────────────▶ telemetry::UnverifiedTelemetry
//! ```
//!
//! * [`cbor`]: strictness checks run before any decoding or crypto (size,
//!   depth, shortest-form, no indefinite lengths, no duplicate keys, no
//!   trailing bytes).
//! * [`cose`]: COSE_Sign1 with ES256 only, alg pinned by the key, `crit` and
//!   `typ` enforced, protected bytes verified as received.
//! * [`crypto`]: the [`Signer`]/[`Verifier`] traits with a portable `p256`
//!   backend (feature `p256`) and a fast aws-lc-rs backend (feature `aws-lc`).
//! * [`claims`], [`token`], [`request`], [`ace`], [`telemetry`]: the messages.
//! * [`status_list`]: Token Status List (draft-ietf-oauth-status-list, CWT
//!   form): the `status` claim, the packed and zlib-compressed list, and the
//!   signed Status List Token (`typ` `application/statuslist+cwt`).
//! * [`jwt`]: RFC 9068 JWT access tokens (compact JWS, ES256, `at+jwt`) for
//!   backend services, parsed strictly before any crypto.
//! * [`jose`]: RS256, PS256 and EdDSA for the JWTs of APIs that ask for them:
//!   one algorithm per key, the key decides (no algorithm confusion).
//! * [`form`]: OAuth form bodies (`application/x-www-form-urlencoded`), strict
//!   and linear-time, with size and parameter-count bounds.
//! * [`refusal`]: the one refusal type (final, rate limited, unavailable)
//!   every transport maps to its wire form, with the retry hint.
//! * [`rate_limit`]: token buckets with time passed in, per key with bounded
//!   memory.
//!
//! ## Example: mint and verify a certificate-bound token
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use certbound_proto::{claims::{Claims, Expectations}, token, cbor::Limits};
//! use certbound_proto::crypto::{P256Signer, P256Verifier, Signer};
//!
//! let broker = P256Signer::from_scalar(&[7u8; 32])?;
//! let device = P256Signer::from_scalar(&[9u8; 32])?;
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
//! let kid = broker.public_key().kid();
//! let cwt = token::mint(&claims, &kid, &broker)?;
//! assert!(cwt.len() < 300);
//!
//! let parsed = token::UnverifiedToken::parse(&cwt, Limits::default())?;
//! let verifier = P256Verifier::new(broker.public_key())?;
//! let verified = parsed.verify(&verifier, Limits::default())?;
//! verified.validate(&Expectations {
//!     issuer: Some("https://auth.example.com"),
//!     audience: "https://telemetry.example.com",
//!     required_scopes: &["telemetry:write"],
//!     now: 1_700_000_100,
//!     leeway: 60,
//! })?;
//! assert_eq!(verified.cnf.as_ref(), Some(device.public_key()));
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod ace;
pub mod cbor;
pub mod claims;
pub mod cose;
pub mod crypto;
pub mod custom_claims;
pub mod enroll;
pub mod error;
pub mod form;
pub mod jose;
pub mod jwt;
pub mod key;
pub mod rate_limit;
pub mod refusal;
pub mod replay;
pub mod request;
pub mod schedule;
pub mod status_list;
pub mod telemetry;
pub mod token;
pub mod topics;

pub use crypto::{Signer, Verifier};
pub use error::{ClaimError, ProtoError};
pub use key::EcPublicKey;
