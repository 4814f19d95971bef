//! COSE_Sign1 (RFC 9052 §4.2) with ES256, on coset + ciborium, with the
//! verification rules of DESIGN.md: alg only in the protected bucket and pinned
//! to ES256/ESP256, unknown `crit` labels refused, no label in both buckets,
//! `typ` checked, the protected bytes verified exactly as received, a payload
//! required (no detached content), and strict CBOR before any of it.

use ciborium::Value;
use coset::{
    CborSerializable, CoseSign1, CoseSign1Builder, Header, HeaderBuilder, Label,
    RegisteredLabelWithPrivate, TaggedCborSerializable, iana,
};

use crate::cbor::{self, Limits};
use crate::crypto::{Signer, Verifier};
use crate::error::ProtoError;
use crate::key::{ALG_ES256, ALG_ESP256};

/// COSE header label `typ` (RFC 9596).
pub const HEADER_TYP: i64 = 16;
/// COSE header label `x5chain` (RFC 9360).
pub const HEADER_X5CHAIN: i64 = 33;
/// COSE header label `x5t` (RFC 9360).
pub const HEADER_X5T: i64 = 34;
/// CBOR tag of COSE_Sign1.
pub const TAG_COSE_SIGN1: u64 = 18;
/// CBOR tag of CWT (RFC 8392 §6), an optional outer wrapper of tokens.
pub const TAG_CWT: u64 = 61;

/// Header labels this implementation understands (and so may appear in `crit`).
const UNDERSTOOD: [i64; 6] = [1, 2, 4, HEADER_TYP, HEADER_X5CHAIN, HEADER_X5T];

/// Extra protected header parameters for [`sign1`].
#[derive(Debug, Clone, Default)]
pub struct ProtectedParams {
    /// `kid` (4), a lookup hint.
    pub kid: Option<Vec<u8>>,
    /// `typ` (16).
    pub typ: Option<&'static str>,
    /// Further `(label, value)` pairs, e.g. x5t or x5chain.
    pub extra: Vec<(i64, Value)>,
}

/// Builds a tagged COSE_Sign1 with `{1: -7, 4: kid, 16: typ, ..extra}` protected.
pub fn sign1(
    params: ProtectedParams,
    payload: Vec<u8>,
    signer: &dyn Signer,
) -> Result<Vec<u8>, ProtoError> {
    let mut builder = HeaderBuilder::new().algorithm(iana::Algorithm::ES256);
    if let Some(kid) = params.kid {
        builder = builder.key_id(kid);
    }
    if let Some(typ) = params.typ {
        builder = builder.value(HEADER_TYP, Value::Text(typ.to_string()));
    }
    for (label, value) in params.extra {
        builder = builder.value(label, value);
    }
    let sign1 = CoseSign1Builder::new()
        .protected(builder.build())
        .payload(payload)
        .try_create_signature(b"", |tbs| signer.sign(tbs).map(|s| s.to_vec()))?
        .build();
    sign1
        .to_tagged_vec()
        .map_err(|e| ProtoError::SigningFailed(format!("COSE encoding: {e}")))
}

/// A COSE_Sign1 that passed the structural checks but whose signature has not
/// been verified yet. Nothing in it may be trusted except as a lookup hint.
#[derive(Debug, Clone)]
pub struct UnverifiedSign1 {
    inner: CoseSign1,
    /// The `typ` header, if present.
    pub typ: Option<String>,
}

impl UnverifiedSign1 {
    /// Parses and checks a COSE_Sign1. `allow_cwt_tag` accepts an outer tag 61
    /// (tokens); tag 18 itself is always required.
    pub fn parse(input: &[u8], limits: Limits, allow_cwt_tag: bool) -> Result<Self, ProtoError> {
        cbor::check_strict(input, limits)?;
        let inner_bytes = strip_cwt_tag(input, allow_cwt_tag)?;
        let inner = CoseSign1::from_tagged_slice(inner_bytes).map_err(|e| {
            ProtoError::structure(
                "COSE_Sign1",
                format!("not a tagged COSE_Sign1 (tag 18): {e}"),
            )
        })?;
        if let Some(raw) = inner
            .protected
            .original_data
            .as_ref()
            .filter(|r| !r.is_empty())
        {
            cbor::check_strict(raw, limits)?;
        }
        let protected = &inner.protected.header;
        let unprotected = &inner.unprotected;
        // alg: required, protected only, ES256/ESP256 only.
        if unprotected.alg.is_some() {
            return Err(ProtoError::BadHeader(
                "alg must be in the protected header only".into(),
            ));
        }
        match &protected.alg {
            Some(RegisteredLabelWithPrivate::Assigned(alg)) => {
                let alg = *alg as i64;
                if alg != ALG_ES256 && alg != ALG_ESP256 {
                    return Err(ProtoError::UnsupportedAlgorithm(alg));
                }
            }
            Some(RegisteredLabelWithPrivate::PrivateUse(alg)) => {
                return Err(ProtoError::UnsupportedAlgorithm(*alg));
            }
            Some(RegisteredLabelWithPrivate::Text(_)) => {
                return Err(ProtoError::BadHeader("alg must be an integer".into()));
            }
            None => return Err(ProtoError::BadHeader("alg is missing".into())),
        }
        // crit: protected only, every label understood.
        if !unprotected.crit.is_empty() {
            return Err(ProtoError::BadHeader(
                "crit must be in the protected header only".into(),
            ));
        }
        for label in &protected.crit {
            let known = match label {
                RegisteredLabelWithPrivate::Assigned(p) => UNDERSTOOD.contains(&(*p as i64)),
                RegisteredLabelWithPrivate::PrivateUse(v) => UNDERSTOOD.contains(v),
                RegisteredLabelWithPrivate::Text(_) => false,
            };
            if !known {
                return Err(ProtoError::BadHeader(format!(
                    "critical header {label:?} is not understood"
                )));
            }
        }
        if let Some(label) = labels_in_both(protected, unprotected) {
            return Err(ProtoError::BadHeader(format!(
                "header {label} appears in both the protected and unprotected buckets"
            )));
        }
        for label in [HEADER_TYP, HEADER_X5CHAIN, HEADER_X5T] {
            if header_value(unprotected, label).is_some() {
                return Err(ProtoError::BadHeader(format!(
                    "header {label} must be protected"
                )));
            }
        }
        let typ = match header_value(protected, HEADER_TYP) {
            None => None,
            Some(Value::Text(t)) => Some(t.clone()),
            Some(_) => return Err(ProtoError::BadHeader("typ must be a text string".into())),
        };
        if inner.payload.is_none() {
            return Err(ProtoError::structure(
                "COSE_Sign1",
                "payload is detached (nil); an attached payload is required",
            ));
        }
        if inner.signature.len() != 64 {
            return Err(ProtoError::BadSignature);
        }
        Ok(Self { inner, typ })
    }

    /// Requires `typ` to equal `expected` (or, when `optional`, to be absent).
    pub fn expect_typ(&self, expected: &'static str, optional: bool) -> Result<(), ProtoError> {
        match &self.typ {
            Some(t) if t == expected => Ok(()),
            None if optional => Ok(()),
            other => Err(ProtoError::WrongType {
                expected,
                found: other.clone().unwrap_or_else(|| "(none)".into()),
            }),
        }
    }

    /// The `kid` hint (protected, else unprotected).
    pub fn kid(&self) -> &[u8] {
        if self.inner.protected.header.key_id.is_empty() {
            &self.inner.unprotected.key_id
        } else {
            &self.inner.protected.header.key_id
        }
    }

    /// A protected header value by label.
    pub fn protected_value(&self, label: i64) -> Option<&Value> {
        header_value(&self.inner.protected.header, label)
    }

    /// The payload bytes, NOT yet authenticated.
    pub fn unverified_payload(&self) -> &[u8] {
        self.inner.payload.as_deref().unwrap_or_default()
    }

    /// Verifies the signature over the protected bytes exactly as received and
    /// returns the authenticated payload.
    pub fn verify(&self, verifier: &dyn Verifier) -> Result<&[u8], ProtoError> {
        self.inner
            .verify_signature(b"", |sig, tbs| verifier.verify(tbs, sig))?;
        Ok(self.unverified_payload())
    }
}

fn strip_cwt_tag(input: &[u8], allow: bool) -> Result<&[u8], ProtoError> {
    // Tag 61 is encoded d8 3d.
    match input {
        [0xd8, 0x3d, rest @ ..] if allow => Ok(rest),
        [0xd8, 0x3d, ..] => Err(ProtoError::structure(
            "COSE_Sign1",
            "a CWT tag (61) is not expected here",
        )),
        _ => Ok(input),
    }
}

fn header_value(header: &Header, label: i64) -> Option<&Value> {
    header
        .rest
        .iter()
        .find(|(l, _)| *l == Label::Int(label))
        .map(|(_, v)| v)
}

fn header_labels(h: &Header) -> Vec<Label> {
    let mut out = Vec::new();
    let mut add = |present: bool, n: i64| {
        if present {
            out.push(Label::Int(n));
        }
    };
    add(h.alg.is_some(), 1);
    add(!h.crit.is_empty(), 2);
    add(h.content_type.is_some(), 3);
    add(!h.key_id.is_empty(), 4);
    add(!h.iv.is_empty(), 5);
    add(!h.partial_iv.is_empty(), 6);
    add(!h.counter_signatures.is_empty(), 7);
    out.extend(h.rest.iter().map(|(l, _)| l.clone()));
    out
}

fn labels_in_both(protected: &Header, unprotected: &Header) -> Option<String> {
    let p = header_labels(protected);
    header_labels(unprotected)
        .into_iter()
        .find(|l| p.contains(l))
        .map(|l| format!("{l:?}"))
}

/// Encodes a value that is a protected header map to check our own encodings in tests.
#[doc(hidden)]
pub fn encode_header_for_tests(h: Header) -> Vec<u8> {
    h.to_vec().unwrap_or_default()
}

#[cfg(test)]
mod tests;
