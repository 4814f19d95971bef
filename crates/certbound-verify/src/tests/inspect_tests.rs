use certbound_proto::cose::{self, ProtectedParams};
use ciborium::Value;

use super::*;
use crate::{CheckResult, inspect};

fn check<'a>(i: &'a crate::Inspection, name: &str) -> &'a CheckResult {
    &i.checks.iter().find(|(n, _)| n == name).unwrap().1
}

#[test]
fn inspect_valid_token() {
    let device = device();
    let mut c = claims(&device);
    c.other.push((
        Value::from(65000),
        Value::Map(vec![(Value::from(1), Value::from(42))]),
    ));
    let cwt = mint(&c, &broker());
    let keys = keys_of(&[&broker()]);
    let i = inspect(&cwt, Some(&keys), Some(AUD), Some(ISS), NOW, 60);
    assert!(i.valid, "{i}");
    assert_eq!(i.error, None);
    assert_eq!(i.size, cwt.len());
    assert_eq!(i.kid.as_deref(), Some(broker().public_key().kid().as_str()));
    assert_eq!(i.typ.as_deref(), Some("at+cwt"));
    assert_eq!(i.signature, CheckResult::Ok);
    assert!(i.checks.iter().all(|(_, r)| *r == CheckResult::Ok), "{i:?}");

    let claims = i.claims.as_ref().unwrap();
    assert_eq!(claims["exp"], EXP);
    assert_eq!(claims["exp_iso"], "2023-11-14T23:13:20Z");
    assert_eq!(claims["iat_iso"], "2023-11-14T22:13:20Z");
    assert_eq!(claims["aud"], AUD);
    assert_eq!(claims["cti"], "01".repeat(16));
    assert_eq!(claims["cnf"]["kid"], device.public_key().kid());
    assert_eq!(claims["cnf"]["kty"], "EC");
    assert_eq!(claims["65000"]["1"], 42);

    let text = i.to_string();
    for needle in [
        "sensor-1",
        "2023-11-14T23:13:20Z",
        "✓ signature",
        "✓ aud",
        "telemetry:write",
        "65000",
    ] {
        assert!(text.contains(needle), "{needle:?} not in\n{text}");
    }
    assert!(
        text.ends_with("VALID") && !text.contains("INVALID"),
        "{text}"
    );
    // Machine output.
    let json = serde_json::to_value(&i).unwrap();
    assert_eq!(json["valid"], true);
    assert_eq!(json["signature"], "Ok");
}

#[test]
fn inspect_expired_token() {
    let cwt = mint(&claims(&device()), &broker());
    let keys = keys_of(&[&broker()]);
    let i = inspect(&cwt, Some(&keys), Some(AUD), None, EXP + 180, 60);
    assert!(!i.valid);
    let reason = "expired 3 minutes ago (exp 2023-11-14T23:13:20Z)";
    assert_eq!(i.error.as_deref(), Some(reason));
    assert_eq!(check(&i, "exp"), &CheckResult::Failed(reason.into()));
    assert!(matches!(check(&i, "iss"), CheckResult::Skipped(_)));
    let text = i.to_string();
    assert!(text.contains("expired"), "{text}");
    assert!(text.contains("✗ exp: expired 3 minutes ago"), "{text}");
    assert!(text.ends_with(&format!("INVALID: {reason}")), "{text}");
}

#[test]
fn inspect_without_keys_does_not_claim_validity() {
    let cwt = mint(&claims(&device()), &broker());
    let i = inspect(&cwt, None, None, None, NOW, 60);
    assert!(!i.valid);
    let reason = "no verification key given: signature not checked";
    assert_eq!(i.signature, CheckResult::Skipped(reason.into()));
    assert_eq!(i.error.as_deref(), Some(reason));
    assert!(i.claims.is_some());
    assert!(i.to_string().contains("- signature: skipped"), "{i}");
}

#[test]
fn inspect_reports_unknown_kid_bad_signature_and_audience() {
    let cwt = mint(&claims(&device()), &broker());
    let other = keys_of(&[&device()]);
    let kid = broker().public_key().kid();
    let i = inspect(&cwt, Some(&other), None, None, NOW, 60);
    assert_eq!(
        i.error,
        Some(format!("signed by kid {kid} which is not in the key set"))
    );

    let mut forged = cwt.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let keys = keys_of(&[&broker()]);
    let i = inspect(&forged, Some(&keys), None, None, NOW, 60);
    assert!(matches!(i.signature, CheckResult::Failed(_)), "{i}");
    assert!(!i.valid);

    let i = inspect(
        &cwt,
        Some(&keys),
        Some("https://y"),
        Some("https://x"),
        NOW,
        60,
    );
    assert_eq!(
        check(&i, "aud"),
        &CheckResult::Failed(format!("audience is {AUD}, expected https://y"))
    );
    assert_eq!(
        check(&i, "iss"),
        &CheckResult::Failed(format!("issuer is {ISS}, expected https://x"))
    );
    assert!(!i.valid);
}

#[test]
fn inspect_reports_not_yet_valid_bearer_and_wrong_typ() {
    let mut c = claims(&device());
    c.nbf = Some(NOW + 7200);
    c.cnf = None;
    let keys = keys_of(&[&broker()]);
    let i = inspect(&mint(&c, &broker()), Some(&keys), None, None, NOW, 60);
    assert!(
        matches!(check(&i, "nbf"), CheckResult::Failed(m) if m.starts_with("not valid for another 2 hours")),
        "{i}"
    );
    assert!(
        matches!(check(&i, "cnf"), CheckResult::Failed(m) if m.contains("bearer")),
        "{i}"
    );

    let params = ProtectedParams {
        kid: Some(broker().public_key().kid().into_bytes()),
        typ: Some("application/certbound-request+cwt"),
        extra: Vec::new(),
    };
    let other = cose::sign1(params, claims(&device()).to_cbor(), &broker()).unwrap();
    let i = inspect(&other, Some(&keys), None, None, NOW, 60);
    assert!(!i.valid);
    assert_eq!(i.signature, CheckResult::Ok);
    assert!(
        i.error
            .as_deref()
            .unwrap()
            .contains("typ is application/certbound-request+cwt")
    );
}

#[test]
fn inspect_garbage() {
    let i = inspect(b"\x01\x02", None, None, None, NOW, 60);
    assert!(!i.valid);
    assert_eq!(i.size, 2);
    assert!(i.claims.is_none());
    assert!(i.error.as_deref().unwrap().contains("not a well-formed"));
    assert!(i.to_string().contains("INVALID: not a well-formed"));
}

#[test]
fn inspect_escapes_control_characters_in_every_field() {
    let device = device();
    let mut c = claims(&device);
    c.iss = Some("https://auth.example.com\u{1b}[2J\u{1b}]0;pwned\u{7}".into());
    c.sub = Some("sensor\r\nVALID".into());
    c.scope = Some("telemetry:write \u{9b}31m\u{202e}drow".into());
    c.aud = vec![format!("{AUD}\u{1b}[1A")];
    c.other.push((
        Value::Text("x\u{1b}[31m".into()),
        Value::Text("\u{1b}[0m\u{85}".into()),
    ));
    let cwt = mint(&c, &broker());
    let keys = keys_of(&[&broker()]);
    let i = inspect(&cwt, Some(&keys), Some(AUD), Some(ISS), NOW, 60);
    let text = i.to_string();
    for bad in ['\u{1b}', '\u{7}', '\r', '\u{9b}', '\u{202e}', '\u{85}'] {
        assert!(!text.contains(bad), "{bad:?} reached the output: {text:?}");
    }
    // Only the report's own line breaks remain; the fields' are escaped.
    assert!(text.contains("sensor\\u{d}\\u{a}VALID"), "{text}");
    assert!(text.contains("\\u{1b}[2J"), "{text}");
    assert!(text.contains("\\u{202e}drow"), "{text}");
    assert!(!text.lines().any(|l| l == "VALID"), "{text}");
    assert_eq!(crate::escape_control("plain text"), "plain text");
}
