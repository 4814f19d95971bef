use base64::Engine as _;

use super::*;

const ISS: &str = "https://auth.example.com";
const TOKEN_URL: &str = "https://auth.example.com/oauth/token";
const NOW: u64 = 1_800_000_000;

fn b64(s: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

fn jwt(header: &str, claims: &str) -> String {
    format!("{}.{}.{}", b64(header), b64(claims), b64("sig"))
}

fn claims(extra: &str) -> String {
    let base = format!(
        r#""iss":"cb_x","sub":"cb_x","aud":"{TOKEN_URL}","exp":{},"jti":"j1""#,
        NOW + 60
    );
    if extra.is_empty() {
        format!("{{{base}}}")
    } else {
        // Later members override earlier ones in serde_json maps.
        format!("{{{base},{extra}}}")
    }
}

fn expect() -> Expect<'static> {
    Expect {
        audiences: [ISS, TOKEN_URL],
        form_client_id: None,
        now: NOW,
        leeway: 60,
        max_lifetime: 300,
    }
}

fn refused(text: &str, why: &str) {
    let e = check_assertion(text, &expect()).unwrap_err();
    assert!(e.contains(why), "{text}: {e}");
}

#[test]
fn a_well_formed_assertion_passes_the_cheap_checks() {
    let text = jwt(r#"{"alg":"ES256","kid":"k1"}"#, &claims(""));
    let a = check_assertion(&text, &expect()).unwrap();
    assert_eq!(a.client_id, "cb_x");
    assert_eq!(a.jti, "j1");
    assert_eq!(a.kid.as_deref(), Some("k1"));
    assert_eq!(a.signature, b"sig");
    assert_eq!(a.signing_input, text.rsplit_once('.').unwrap().0.as_bytes());
    // The issuer identifier in an aud array works as well.
    let text = jwt(
        r#"{"alg":"EdDSA"}"#,
        &claims(&format!(r#""aud":["x","{ISS}"]"#)),
    );
    assert!(check_assertion(&text, &expect()).is_ok());
}

#[test]
fn every_claim_rule_refuses_a_violation() {
    let es = r#"{"alg":"ES256"}"#;
    refused(
        &jwt(r#"{"alg":"none"}"#, &claims("")),
        "alg \"none\" is refused",
    );
    refused(
        &jwt(r#"{"alg":"HS256"}"#, &claims("")),
        "alg \"HS256\" is refused",
    );
    refused(&jwt(r#"{"alg":"ES256","crit":["x"]}"#, &claims("")), "crit");
    refused(&jwt(es, &claims(r#""sub":"cb_y""#)), "iss and sub differ");
    refused(
        &jwt(es, &claims(r#""aud":"https://other.example""#)),
        "aud does not name",
    );
    refused(
        &jwt(es, &claims(&format!(r#""exp":{}"#, NOW - 61))),
        "expired",
    );
    refused(
        &jwt(es, &claims(&format!(r#""exp":{}"#, NOW + 301))),
        "more than the 300 s",
    );
    refused(&jwt(es, &claims(&format!(r#""iat":{}"#, NOW + 61))), "iat");
    refused(&jwt(es, &claims(&format!(r#""nbf":{}"#, NOW + 61))), "nbf");
    refused(&jwt(es, &claims(r#""jti":"""#)), "jti must be");
    refused(
        &jwt(
            es,
            &format!(r#"{{"iss":"cb_x","sub":"cb_x","aud":"{ISS}","jti":"j"}}"#),
        ),
        "exp is missing",
    );
    refused(
        &jwt(
            es,
            &format!(
                r#"{{"iss":"cb_x","sub":"cb_x","aud":"{ISS}","exp":{}}}"#,
                NOW + 5
            ),
        ),
        "jti is missing",
    );
    refused("a.b", "not a compact JWS");
    refused(&"a".repeat(MAX_ASSERTION_BYTES + 1), "more than");
    let mut e = expect();
    e.form_client_id = Some("cb_other");
    let err = check_assertion(&jwt(es, &claims("")), &e).unwrap_err();
    assert!(err.contains("client_id of the form"), "{err}");
}

#[test]
fn the_claimed_issuer_is_short_and_unverified() {
    let text = jwt(r#"{"alg":"ES256"}"#, &claims(""));
    assert_eq!(unverified_issuer(&text).as_deref(), Some("cb_x"));
    let long = jwt(
        r#"{"alg":"ES256"}"#,
        &claims(&format!(r#""iss":"{}""#, "x".repeat(200))),
    );
    assert_eq!(unverified_issuer(&long), None);
}
