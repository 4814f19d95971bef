//! Proof of possession: the checks that tie a verified token to its presenter,
//! either over mTLS (the peer certificate's key is the token's `cnf`) or per
//! message (a telemetry body signed with the `cnf` key).

use certbound_proto::EcPublicKey;
use certbound_proto::ProtoError;
use certbound_proto::cbor::Limits;
use certbound_proto::crypto::AwsLcVerifier;
use certbound_proto::telemetry::{TelemetryPayload, UnverifiedTelemetry};
use sha2::{Digest as _, Sha256};
use x509_parser::oid_registry::{OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY};

use crate::error::VerifyError;
use crate::verifier::VerifiedToken;

impl VerifiedToken {
    /// mTLS binding: the token must be bound to the presented certificate.
    ///
    /// * A CWT (`cnf` COSE_Key): the certificate's public key must equal the
    ///   `cnf` key; the certificate must hold an uncompressed P-256 key
    ///   (id-ecPublicKey with prime256v1).
    /// * A JWT (`cnf.x5t#S256`, RFC 8705 §3): SHA-256 of `cert_der` must
    ///   equal the thumbprint (compared in constant time).
    ///
    /// `cert_der` is the end-entity certificate the TLS stack received from
    /// the peer (DER). Chain and validity checks are the TLS layer's job;
    /// this only ties the token to the certificate.
    ///
    /// # Errors
    /// [`VerifyError::MissingConfirmation`] for a bearer token,
    /// [`VerifyError::BadCertificate`] when a CWT's certificate cannot be
    /// parsed or has another key type, [`VerifyError::BindingMismatch`] when
    /// the key or thumbprint differs.
    pub fn check_certificate_binding(&self, cert_der: &[u8]) -> Result<(), VerifyError> {
        if self.claims.cnf.is_none() && self.x5t_s256.is_none() {
            return Err(VerifyError::MissingConfirmation);
        }
        if let Some(x5t) = &self.x5t_s256 {
            let presented: [u8; 32] = Sha256::digest(cert_der).into();
            if !constant_time_eq(&presented, x5t) {
                return Err(VerifyError::BindingMismatch);
            }
        }
        if let Some(cnf) = &self.claims.cnf {
            let presented = certificate_key(cert_der)?;
            if &presented != cnf {
                return Err(VerifyError::BindingMismatch);
            }
        }
        Ok(())
    }

    /// Message-level binding: verifies a telemetry envelope's body with the
    /// token's `cnf` key and checks that the body names this token's `cti`.
    ///
    /// Verify the envelope's token first (with [`crate::TokenVerifier::verify`]
    /// on `envelope.token`), then call this on the result. Sequence-number
    /// replay checks stay with the caller (they need per-device state).
    ///
    /// # Errors
    /// [`VerifyError::MissingConfirmation`] for a bearer token,
    /// [`VerifyError::BadProofOfPossession`] when the body is not signed by the
    /// `cnf` key, [`VerifyError::TelemetryTokenMismatch`] when it names another
    /// token (or this token has no `cti`), [`VerifyError::Malformed`] for an
    /// undecodable body.
    pub fn check_telemetry_pop(
        &self,
        envelope: &UnverifiedTelemetry,
        limits: Limits,
    ) -> Result<TelemetryPayload, VerifyError> {
        let cnf = self
            .confirmation_key()
            .ok_or(VerifyError::MissingConfirmation)?;
        let verifier = AwsLcVerifier::new(cnf).map_err(VerifyError::Malformed)?;
        let payload = envelope
            .verify_body(&verifier, limits)
            .map_err(|e| match e {
                ProtoError::BadSignature => VerifyError::BadProofOfPossession,
                other => VerifyError::Malformed(other),
            })?;
        match &self.claims.cti {
            Some(cti) if *cti == payload.token_cti => Ok(payload),
            _ => Err(VerifyError::TelemetryTokenMismatch),
        }
    }
}

/// The P-256 public key of a DER certificate.
pub(crate) fn certificate_key(cert_der: &[u8]) -> Result<EcPublicKey, VerifyError> {
    let bad = |reason: String| VerifyError::BadCertificate(reason);
    let (rest, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| bad(format!("not a DER X.509 certificate: {e}")))?;
    if !rest.is_empty() {
        return Err(bad(format!(
            "{} trailing bytes after the certificate",
            rest.len()
        )));
    }
    let spki = cert.public_key();
    if spki.algorithm.algorithm != OID_KEY_TYPE_EC_PUBLIC_KEY {
        return Err(bad(format!(
            "public key algorithm is {}, not id-ecPublicKey",
            spki.algorithm.algorithm
        )));
    }
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok());
    if curve.as_ref() != Some(&OID_EC_P256) {
        return Err(bad(
            "public key is not on the P-256 curve (prime256v1)".into()
        ));
    }
    EcPublicKey::from_sec1(&spki.subject_public_key.data)
        .map_err(|_| bad("public key is not an uncompressed P-256 point".into()))
}

/// Equality of two 32-byte values without an early exit.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a
        .iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}
