use certbound_proto::claims::Claims;
use certbound_proto::crypto::{P256Signer, P256Verifier, Signer};
use certbound_proto::token::mint;

use super::*;

const NOW: u64 = 1_700_000_000;
const AUD: &str = "https://telemetry.example.com";

fn broker() -> P256Signer {
    P256Signer::from_scalar(&[7u8; 32]).unwrap()
}

fn device() -> P256Signer {
    P256Signer::from_scalar(&[9u8; 32]).unwrap()
}

fn claims() -> Claims {
    Claims {
        iss: Some("https://auth.example.com".into()),
        sub: Some("sensor-1".into()),
        aud: vec![AUD.into()],
        exp: Some(NOW + 3600),
        iat: Some(NOW),
        cti: Some(vec![1; 16]),
        scope: Some("telemetry:write".into()),
        cnf: Some(device().public_key().clone()),
        ..Claims::default()
    }
}

fn token(c: &Claims) -> Vec<u8> {
    mint(c, &broker().public_key().kid(), &broker()).unwrap()
}

fn check(t: &[u8], key: Option<&dyn Verifier>, now: u64) -> Result<TokenFacts, AgentError> {
    let device = device();
    check_token(
        t,
        &TokenExpectations {
            device_id: "sensor-1",
            device_key: device.public_key(),
            audience: AUD,
            broker_key: key,
        },
        now,
    )
}

#[test]
fn retry_hints_are_capped() {
    assert_eq!(cap_hint_secs(7), 7);
    assert_eq!(cap_hint_secs(1_000_000), MAX_RETRY_HINT_SECS);
}

#[test]
fn a_retry_never_waits_past_the_deadline() {
    let now_ms = NOW * 1000;
    // Far from the deadline: the (capped) hint.
    assert_eq!(retry_wait_ms(10, now_ms, now_ms + 3_600_000), 10_000);
    assert_eq!(
        retry_wait_ms(1_000_000, now_ms, now_ms + 3_600_000),
        MAX_RETRY_HINT_SECS * 1000
    );
    // Close to it: at most until the deadline; past it: no wait.
    assert_eq!(retry_wait_ms(300, now_ms, now_ms + 20_000), 20_000);
    assert_eq!(retry_wait_ms(300, now_ms, now_ms - 1), 0);
}

#[test]
fn the_cert_deadline_leaves_a_tenth_of_the_lifetime() {
    // 60 s certificate: 6 s before notAfter.
    assert_eq!(cert_renewal_deadline_ms(NOW, NOW + 60), (NOW + 54) * 1000);
    // A year: at most 300 s before notAfter.
    let year = 365 * 86_400;
    assert_eq!(
        cert_renewal_deadline_ms(NOW, NOW + year),
        (NOW + year - 300) * 1000
    );
    // Degenerate: at least 1 s.
    assert_eq!(cert_renewal_deadline_ms(NOW, NOW), (NOW - 1) * 1000);
}

#[test]
fn the_schedule_comes_from_the_token_exp() {
    // Its own lifetime (exp - iat), whatever the device clock says...
    let facts = check(&token(&claims()), None, NOW + 10).unwrap();
    assert_eq!(facts.exp, NOW + 3600);
    assert_eq!(facts.lifetime, 3600);
    // ...but never past exp (+ the clock leeway) on the device's clock.
    let facts = check(&token(&claims()), None, NOW + 100).unwrap();
    assert_eq!(facts.lifetime, 3600 + TOKEN_CLOCK_LEEWAY_SECS - 100);
    assert_eq!(facts.cti, vec![1; 16]);
    assert!(!facts.signature_verified);
    // A device clock behind the broker's does not stretch the lifetime, and
    // one ahead within the leeway still gets the token.
    let facts = check(&token(&claims()), None, NOW - 500).unwrap();
    assert_eq!(facts.lifetime, 3600);
    let facts = check(&token(&claims()), None, NOW + 3630).unwrap();
    assert_eq!(facts.lifetime, 30);
    // Without iat: from exp.
    let mut c = claims();
    c.iat = None;
    assert_eq!(check(&token(&c), None, NOW).unwrap().lifetime, 3600);
}

#[test]
fn a_token_for_another_key_audience_or_device_is_refused() {
    let other = P256Signer::from_scalar(&[11u8; 32]).unwrap();
    let mut c = claims();
    c.cnf = Some(other.public_key().clone());
    let err = check(&token(&c), None, NOW).unwrap_err().to_string();
    assert!(err.contains("another key"), "{err}");
    c.cnf = None;
    let err = check(&token(&c), None, NOW).unwrap_err().to_string();
    assert!(err.contains("no confirmation key"), "{err}");

    let mut c = claims();
    c.aud = vec!["https://other.example.com".into()];
    let err = check(&token(&c), None, NOW).unwrap_err().to_string();
    assert!(err.contains("audience"), "{err}");

    let mut c = claims();
    c.sub = Some("sensor-2".into());
    let err = check(&token(&c), None, NOW).unwrap_err().to_string();
    assert!(err.contains("sensor-2"), "{err}");

    let mut c = claims();
    c.exp = Some(NOW - TOKEN_CLOCK_LEEWAY_SECS);
    c.iat = Some(NOW - 3600);
    let err = check(&token(&c), None, NOW).unwrap_err().to_string();
    assert!(err.contains("expired"), "{err}");
    c.exp = None;
    assert!(check(&token(&c), None, NOW).is_err());

    let mut c = claims();
    c.cti = None;
    assert!(check(&token(&c), None, NOW).is_err());
    assert!(check(b"\xa0", None, NOW).is_err());
}

#[test]
fn the_signature_is_checked_when_the_broker_key_is_known() {
    let broker_key = P256Verifier::new(broker().public_key()).unwrap();
    let facts = check(&token(&claims()), Some(&broker_key), NOW).unwrap();
    assert!(facts.signature_verified);
    let forger = P256Signer::from_scalar(&[13u8; 32]).unwrap();
    let forged = mint(&claims(), &broker().public_key().kid(), &forger).unwrap();
    assert!(matches!(
        check(&forged, Some(&broker_key), NOW),
        Err(AgentError::Proto(_))
    ));
    // Without the key the agent cannot tell (the backend will).
    check(&forged, None, NOW).unwrap();
}
