use certbound_pki::{CaOptions, IssuingCa, PkiPaths, init_ca};
use certbound_proto::ace::AceErrorCode;
use certbound_proto::crypto::P256Verifier;
use certbound_proto::enroll::CertResponse;
use certbound_proto::refusal::Refusal;
use certbound_proto::request::UnverifiedRequest;
use p256::pkcs8::EncodePublicKey as _;

use super::*;

const NOW: u64 = 1_750_000_000;

fn ca() -> (tempfile::TempDir, IssuingCa) {
    let tmp = tempfile::tempdir().unwrap();
    let paths = PkiPaths::new(tmp.path());
    init_ca(&paths, &CaOptions::default(), NOW - 86_400).unwrap();
    let ca = IssuingCa::load(&paths).unwrap();
    (tmp, ca)
}

fn identity(ca: &IssuingCa, id: &str) -> DeviceIdentity {
    let b = ca.issue_device(id, 90, NOW).unwrap();
    DeviceIdentity::from_pem(&b.key_pkcs8_pem, &b.chain_pem).unwrap()
}

/// The chain the broker would answer for `key`: [leaf DER, issuing CA DER].
fn issued_for(ca: &IssuingCa, id: &str, key: &NewKey) -> Vec<Vec<u8>> {
    let spki = p256::PublicKey::from_sec1_bytes(&key.signer().public_key().to_sec1())
        .unwrap()
        .to_public_key_der()
        .unwrap();
    let cert = ca.issue_device_cert(id, spki.as_bytes(), 90, NOW).unwrap();
    vec![cert.der, ca.cert_der().to_vec()]
}

#[test]
fn the_request_carries_the_csr_and_is_signed_with_the_current_key() {
    let (_t, ca) = ca();
    let current = identity(&ca, "sensor-1");
    let new_key = NewKey::generate("sensor-1").unwrap();
    let bytes = build_reenroll_request(
        &current,
        "https://auth.example.com",
        new_key.csr_der(),
        &CertRef::X5t(current.thumbprint()),
        NOW,
        [9; 16],
    )
    .unwrap();
    let parsed = UnverifiedRequest::parse(&bytes, Limits::default()).unwrap();
    assert_eq!(parsed.cert, CertRef::X5t(current.thumbprint()));
    // Signed by the current key, not by the new one.
    let by_new = P256Verifier::new(new_key.signer().public_key()).unwrap();
    assert!(parsed.verify(&by_new, Limits::default()).is_err());
    let by_current = P256Verifier::new(current.signer().public_key()).unwrap();
    let req = parsed.verify(&by_current, Limits::default()).unwrap();
    assert_eq!(req.iss, "sensor-1");
    assert_eq!(req.aud, "https://auth.example.com");
    assert_eq!((req.iat, req.exp), (NOW, NOW + REQUEST_LIFETIME_SECS));
    assert!(req.exp - req.iat <= certbound_proto::request::MAX_REQUEST_LIFETIME);
    assert_eq!(req.cti, vec![9; 16]);
    assert_eq!(req.csr.as_deref(), Some(new_key.csr_der()));
    assert_eq!(
        (req.grant_type, &req.audience, &req.scope),
        (None, &None, &None)
    );
    req.validate("https://auth.example.com", NOW + 1, 0)
        .unwrap();
}

#[test]
fn an_issued_chain_is_accepted_only_for_the_new_key_and_the_same_device() {
    let (_t, ca) = ca();
    let current = identity(&ca, "sensor-1");
    let new_key = NewKey::generate("sensor-1").unwrap();
    let chain = issued_for(&ca, "sensor-1", &new_key);

    let renewed = accept_chain(&new_key, chain.clone(), &current).unwrap();
    assert_eq!(renewed.identity.device_id(), "sensor-1");
    assert_eq!(renewed.identity.chain(), chain.as_slice());
    assert_eq!(
        renewed.identity.signer().public_key(),
        new_key.signer().public_key()
    );
    assert_ne!(renewed.identity.thumbprint(), current.thumbprint());
    assert_eq!(&*renewed.key_pem, new_key.key_pem());
    // The PEM chain loads back to the same identity.
    let again = DeviceIdentity::from_pem(&renewed.key_pem, &renewed.chain_pem).unwrap();
    assert_eq!(again.thumbprint(), renewed.identity.thumbprint());
    assert_eq!(again.chain().len(), 2);

    // Any order (PKCS#7 sorts its certificates): the new key's certificate leads.
    let reversed: Vec<Vec<u8>> = chain.iter().rev().cloned().collect();
    let renewed = accept_chain(&new_key, reversed, &current).unwrap();
    assert_eq!(renewed.identity.chain(), chain.as_slice());

    // A certificate for another key.
    let other_key = NewKey::generate("sensor-1").unwrap();
    let wrong = issued_for(&ca, "sensor-1", &other_key);
    let e = accept_chain(&new_key, wrong, &current).unwrap_err();
    assert!(e.to_string().contains("new key"), "{e}");
    // A certificate for another device.
    let foreign = issued_for(&ca, "sensor-2", &new_key);
    let e = accept_chain(&new_key, foreign, &current).unwrap_err();
    assert!(e.to_string().contains("sensor-2"), "{e}");
    // Nothing.
    assert!(accept_chain(&new_key, Vec::new(), &current).is_err());
}

#[test]
fn coap_answers() {
    let ok = CertResponse {
        chain: vec![vec![0x30, 1], vec![0x30, 2]],
    };
    let chain = decode_coap_answer(
        ResponseType::Changed,
        Some(content_format::CBOR),
        &ok.to_cbor(),
        None,
    )
    .unwrap();
    assert_eq!(chain, ok.chain);

    let refused = AceError::new(AceErrorCode::InvalidClient, "certificate 01 is revoked");
    let e = decode_coap_answer(
        ResponseType::Unauthorized,
        Some(content_format::ACE_CBOR),
        &refused.to_cbor(),
        None,
    )
    .unwrap_err();
    assert!(
        matches!(&e, AgentError::RenewalRefused(a) if a == &refused),
        "{e}"
    );

    let e = decode_coap_answer(ResponseType::TooManyRequests, None, &[], Some(7)).unwrap_err();
    assert!(
        matches!(
            e,
            AgentError::RetryLater {
                retry_after_secs: 7,
                ..
            }
        ),
        "{e}"
    );
    let e = decode_coap_answer(
        ResponseType::TooManyRequests,
        Some(content_format::ACE_CBOR),
        &Refusal::rate_limited(9).to_cbor(),
        None,
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            AgentError::RetryLater {
                retry_after_secs: 9,
                ..
            }
        ),
        "{e}"
    );
    let e = decode_coap_answer(ResponseType::ServiceUnavailable, None, &[], None).unwrap_err();
    assert!(
        matches!(
            e,
            AgentError::RetryLater {
                retry_after_secs: 60,
                ..
            }
        ),
        "{e}"
    );

    // The wrong content-format, code or body.
    for (code, cf, body) in [
        (
            ResponseType::Changed,
            Some(content_format::ACE_CBOR),
            ok.to_cbor(),
        ),
        (ResponseType::Changed, None, ok.to_cbor()),
        (ResponseType::NotFound, None, Vec::new()),
        (
            ResponseType::Changed,
            Some(content_format::CBOR),
            vec![0xa0],
        ),
    ] {
        let e = decode_coap_answer(code, cf, &body, None).unwrap_err();
        assert!(
            matches!(e, AgentError::UnexpectedResponse(_) | AgentError::Proto(_)),
            "{code:?} {cf:?}: {e}"
        );
    }
}

#[test]
fn mqtt_answers() {
    let ok = CertResponse {
        chain: vec![vec![0x30, 1]],
    };
    assert_eq!(decode_mqtt_answer(&ok.to_cbor()).unwrap(), ok.chain);
    let refused = AceError::new(
        AceErrorCode::InvalidRequest,
        "the CSR holds the current key",
    );
    assert!(matches!(
        decode_mqtt_answer(&refused.to_cbor()),
        Err(AgentError::RenewalRefused(_))
    ));
    // A transient refusal carries retry_after (-65538); the hint is capped.
    let limited = Refusal::rate_limited(12).to_cbor();
    assert!(matches!(
        decode_mqtt_answer(&limited),
        Err(AgentError::RetryLater {
            retry_after_secs: 12,
            ..
        })
    ));
    let busy = Refusal::Unavailable {
        retry_after: 1_000_000,
    }
    .to_cbor();
    assert!(matches!(
        decode_mqtt_answer(&busy),
        Err(AgentError::RetryLater {
            retry_after_secs: crate::answers::MAX_RETRY_HINT_SECS,
            ..
        })
    ));
    // The English text alone no longer decides: without retry_after the
    // refusal is final, whatever it says.
    let worded = AceError::new(
        AceErrorCode::InvalidRequest,
        "rate limited: too many requests; retry after 12 s",
    );
    assert!(matches!(
        decode_mqtt_answer(&worded.to_cbor()),
        Err(AgentError::RenewalRefused(_))
    ));
    assert!(decode_mqtt_answer(&[0xff]).is_err());
}

#[test]
fn pem_of_a_certificate_loads_back() {
    let (_t, ca) = ca();
    let pem = cert_pem(ca.cert_der());
    assert!(pem.lines().all(|l| l.len() <= 64));
    assert_eq!(
        certbound_pki::parse_pem_certs(&pem).unwrap(),
        vec![ca.cert_der().to_vec()]
    );
}
