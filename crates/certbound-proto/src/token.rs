//! Certbound access tokens: CWTs (RFC 8392) in a tagged COSE_Sign1 with
//! protected header `{1: -7, 4: kid, 16: "at+cwt"}`.
//!
//! `typ` is `at+cwt`, the CWT twin of RFC 9068's `at+jwt`, with the
//! `application/` prefix omitted as JOSE recommends (RFC 7515 §4.1.9): the
//! 12 bytes saved keep the quick-start token under 300 bytes.

use crate::cbor::Limits;
use crate::claims::Claims;
use crate::cose::{self, ProtectedParams, UnverifiedSign1};
use crate::crypto::{Signer, Verifier};
use crate::error::ProtoError;

/// `typ` of a certbound access token (RFC 9596; the CWT analogue of `at+jwt`).
pub const TYP_ACCESS_TOKEN: &str = "at+cwt";

/// Signs `claims` into an access token. `kid` goes in the protected header.
pub fn mint(claims: &Claims, kid: &str, signer: &dyn Signer) -> Result<Vec<u8>, ProtoError> {
    let params = ProtectedParams {
        kid: Some(kid.as_bytes().to_vec()),
        typ: Some(TYP_ACCESS_TOKEN),
        extra: Vec::new(),
    };
    cose::sign1(params, claims.to_cbor(), signer)
}

/// A parsed token whose signature is not verified yet.
#[derive(Debug, Clone)]
pub struct UnverifiedToken {
    sign1: UnverifiedSign1,
}

impl UnverifiedToken {
    /// Parses a token (tag 18, optionally inside tag 61) and checks its headers
    /// and `typ`.
    pub fn parse(bytes: &[u8], limits: Limits) -> Result<Self, ProtoError> {
        let sign1 = UnverifiedSign1::parse(bytes, limits, true)?;
        sign1.expect_typ(TYP_ACCESS_TOKEN, false)?;
        Ok(Self { sign1 })
    }

    /// The `kid` lookup hint.
    pub fn kid(&self) -> &[u8] {
        self.sign1.kid()
    }

    /// Decodes the claims WITHOUT checking the signature (for display only).
    pub fn unverified_claims(&self, limits: Limits) -> Result<Claims, ProtoError> {
        Claims::from_cbor(self.sign1.unverified_payload(), limits)
    }

    /// Verifies the signature and returns the claims (not yet validated: call
    /// [`Claims::validate`]).
    pub fn verify(&self, verifier: &dyn Verifier, limits: Limits) -> Result<Claims, ProtoError> {
        let payload = self.sign1.verify(verifier)?;
        Claims::from_cbor(payload, limits)
    }
}
