use certbound_pki::{CaOptions, DeviceBundle, IssuingCa, PkiPaths, init_ca};
use certbound_proto::telemetry::{self, TelemetryPayload, UnverifiedTelemetry};

use super::*;
use crate::{Limits, VerifyError};

/// A fresh CA in a temp dir and two device bundles issued by it.
fn two_devices() -> (tempfile::TempDir, IssuingCa, DeviceBundle, DeviceBundle) {
    let tmp = tempfile::tempdir().unwrap();
    let paths = PkiPaths::new(tmp.path());
    init_ca(&paths, &CaOptions::default(), NOW).unwrap();
    let ca = IssuingCa::load(&paths).unwrap();
    let a = ca.issue_device("sensor-1", 30, NOW).unwrap();
    let b = ca.issue_device("sensor-2", 30, NOW).unwrap();
    (tmp, ca, a, b)
}

#[test]
fn certificate_binding_ok_and_mismatch() {
    let (_tmp, ca, a, b) = two_devices();
    let device_a = P256Signer::from_pkcs8_pem(&a.key_pkcs8_pem).unwrap();
    let cwt = mint(&claims(&device_a), &broker());
    let v = verifier().verify(&cwt, &[], NOW).unwrap();

    v.check_certificate_binding(&a.cert.der).unwrap();
    let err = v.check_certificate_binding(&b.cert.der).unwrap_err();
    assert_eq!(err, VerifyError::BindingMismatch);
    assert_eq!(err.reason_code(), "binding");
    assert_eq!(
        v.check_certificate_binding(ca.cert_der()),
        Err(VerifyError::BindingMismatch)
    );
}

#[test]
fn unusable_certificates_are_bad_certificate() {
    let (_tmp, _ca, a, _b) = two_devices();
    let device_a = P256Signer::from_pkcs8_pem(&a.key_pkcs8_pem).unwrap();
    let v = verifier()
        .verify(&mint(&claims(&device_a), &broker()), &[], NOW)
        .unwrap();
    let mut trailing = a.cert.der.clone();
    trailing.push(0);
    for bad in [&b"not a certificate"[..], &a.cert.der[..40], &trailing[..]] {
        let err = v.check_certificate_binding(bad).unwrap_err();
        assert!(matches!(err, VerifyError::BadCertificate(_)), "{err:?}");
        assert_eq!(err.reason_code(), "bad_certificate");
    }
}

fn envelope(token: &[u8], cti: Vec<u8>, signer: &P256Signer) -> UnverifiedTelemetry {
    let payload = TelemetryPayload {
        seq: 7,
        timestamp_ms: NOW * 1000,
        data: b"{\"t\":21.5}".to_vec(),
        token_cti: cti,
    };
    let bytes = telemetry::seal(token, &payload, signer).unwrap();
    UnverifiedTelemetry::parse(&bytes, Limits::default()).unwrap()
}

#[test]
fn telemetry_pop_ok() {
    let device = device();
    let cwt = mint(&claims(&device), &broker());
    let env = envelope(&cwt, vec![1; 16], &device);
    let v = verifier()
        .verify(&env.token, &["telemetry:write"], NOW)
        .unwrap();
    let payload = v.check_telemetry_pop(&env, Limits::default()).unwrap();
    assert_eq!(payload.seq, 7);
    assert_eq!(payload.data, b"{\"t\":21.5}");
}

#[test]
fn telemetry_signed_by_other_key_is_refused() {
    let device = device();
    let thief = P256Signer::from_scalar(&[5u8; 32]).unwrap();
    let cwt = mint(&claims(&device), &broker());
    let env = envelope(&cwt, vec![1; 16], &thief);
    let v = verifier().verify(&env.token, &[], NOW).unwrap();
    let err = v.check_telemetry_pop(&env, Limits::default()).unwrap_err();
    assert_eq!(err, VerifyError::BadProofOfPossession);
    assert_eq!(err.reason_code(), "pop");
}

#[test]
fn telemetry_for_other_token_is_refused() {
    let device = device();
    let cwt = mint(&claims(&device), &broker());
    let env = envelope(&cwt, vec![2; 16], &device);
    let v = verifier().verify(&env.token, &[], NOW).unwrap();
    let err = v.check_telemetry_pop(&env, Limits::default()).unwrap_err();
    assert_eq!(err, VerifyError::TelemetryTokenMismatch);
    assert_eq!(err.reason_code(), "telemetry_cti");

    // A token without cti cannot be matched by any body.
    let mut c = claims(&device);
    c.cti = None;
    let cwt = mint(&c, &broker());
    let env = envelope(&cwt, Vec::new(), &device);
    let v = verifier().verify(&env.token, &[], NOW).unwrap();
    assert_eq!(
        v.check_telemetry_pop(&env, Limits::default()).unwrap_err(),
        VerifyError::TelemetryTokenMismatch
    );
}

#[test]
fn jwt_certificate_binding_is_the_sha256_of_the_der() {
    use base64::Engine as _;
    use sha2::{Digest as _, Sha256};

    let (_tmp, _ca, a, b) = two_devices();
    let mut c = super::jwt_tests::jwt_claims();
    c.cnf = Some(certbound_proto::jwt::JwtConfirmation {
        x5t_s256: base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(Sha256::digest(&a.cert.der)),
    });
    let v = verifier()
        .verify_jwt(&super::jwt_tests::sign(&c, &broker()), &[], NOW)
        .unwrap();
    v.check_certificate_binding(&a.cert.der).unwrap();
    let err = v.check_certificate_binding(&b.cert.der).unwrap_err();
    assert_eq!(err, VerifyError::BindingMismatch);
    assert_eq!(err.reason_code(), "binding");
    // One byte more or less is another certificate.
    let mut longer = a.cert.der.clone();
    longer.push(0);
    assert_eq!(
        v.check_certificate_binding(&longer),
        Err(VerifyError::BindingMismatch)
    );
    assert_eq!(
        v.check_certificate_binding(&a.cert.der[..a.cert.der.len() - 1]),
        Err(VerifyError::BindingMismatch)
    );
}

#[test]
fn cwt_from_text_binding_mismatch() {
    use base64::Engine as _;

    let (_tmp, _ca, a, b) = two_devices();
    let device_a = P256Signer::from_pkcs8_pem(&a.key_pkcs8_pem).unwrap();
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(mint(&claims(&device_a), &broker()));
    let v = verifier().verify_text(&text, &[], NOW).unwrap();
    v.check_certificate_binding(&a.cert.der).unwrap();
    assert_eq!(
        v.check_certificate_binding(&b.cert.der),
        Err(VerifyError::BindingMismatch)
    );
}
