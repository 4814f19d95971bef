//! `certbound token inspect --profile generic`: third-party CWTs and JWTs
//! checked by signature and claims alone (RFC 8392 A.3, PyJWT, python-cwt),
//! while the default profile stays strict.

mod common;

use std::path::Path;
use std::process::Command;

use common::{BIN, python_with, skip_or_fail};

/// RFC 8392 Appendix A.3: a signed CWT (no typ, no cnf), key of A.2.3.
const RFC8392_A3: &str = concat!(
    "d28443a10126a104524173796d6d657472696345434453413235365850a70175",
    "636f61703a2f2f61732e6578616d706c652e636f6d02656572696b7703781863",
    "6f61703a2f2f6c696768742e6578616d706c652e636f6d041a5612aeb0051a56",
    "10d9f0061a5610d9f007420b7158405427c1ff28d23fbad1f29c4c7c6a555e60",
    "1d6fa29f9179bc3d7438bacaca5acd08c8d4d4f96131680c429a01f85951ecee",
    "743a52b9b63632c57209120e1c9e30"
);

/// The public key of RFC 8392 A.2.3 as a JWKS (x, y base64url of the hex there).
const A23_JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","alg":"ES256","kid":"AsymmetricECDSA256","x":"FDMpzOeGjkFpJ1mc9lo0884v_aVafspp7YkZo5TULw8","y":"YPfxp4DYp4O_t6LdayeW6BKNu87509Fo25Uplxo257k"}]}"#;

/// iat of the A.3 token: it was valid then (it expired in 2015).
const A3_IAT: &str = "1443944944";

fn inspect(args: &[&str]) -> (i32, serde_json::Value, String) {
    let out = Command::new(BIN)
        .args(["token", "inspect"])
        .args(args)
        .output()
        .expect("run certbound");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let report = if args.contains(&"--json") {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    } else {
        serde_json::Value::Null
    };
    (
        out.status.code().unwrap_or(-1),
        report,
        format!("{text}{}", String::from_utf8_lossy(&out.stderr)),
    )
}

#[test]
fn rfc8392_a3_is_valid_under_the_generic_profile_only() {
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("a23.jwks.json");
    // Fix the x/y encodings against the RFC's hex before trusting the file.
    let k: serde_json::Value = serde_json::from_str(A23_JWKS).unwrap();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    assert_eq!(
        hex::encode(b64.decode(k["keys"][0]["x"].as_str().unwrap()).unwrap()),
        "143329cce7868e416927599cf65a34f3ce2ffda55a7eca69ed8919a394d42f0f"
    );
    assert_eq!(
        hex::encode(b64.decode(k["keys"][0]["y"].as_str().unwrap()).unwrap()),
        "60f7f1a780d8a783bfb7a2dd6b2796e8128dbbcef9d3d168db9529971a36e7b9"
    );
    std::fs::write(&jwks, A23_JWKS).unwrap();
    let jwks = jwks.to_str().unwrap();

    // Default (certbound) profile: the signature verifies, but no typ and no
    // cnf make it INVALID (exit 2), as a certbound verifier would refuse it.
    let (code, report, text) = inspect(&[RFC8392_A3, "--jwks", jwks, "--now", A3_IAT, "--json"]);
    assert_eq!(code, 2, "{text}");
    assert_eq!(report["signature"], "Ok", "{text}");
    assert_eq!(report["valid"], false);

    // Generic: valid, claims shown, typ and cnf only noted.
    let (code, report, text) = inspect(&[
        RFC8392_A3,
        "--jwks",
        jwks,
        "--now",
        A3_IAT,
        "--profile",
        "generic",
        "--aud",
        "coap://light.example.com",
        "--iss",
        "coap://as.example.com",
        "--json",
    ]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(report["valid"], true, "{text}");
    assert_eq!(report["claims"]["sub"], "erikw");
    assert_eq!(report["claims"]["cti"], "0b71");
    let (_, _, human) = inspect(&[
        RFC8392_A3,
        "--jwks",
        jwks,
        "--now",
        A3_IAT,
        "--profile",
        "generic",
    ]);
    assert!(
        human.contains("VALID") && !human.contains("INVALID"),
        "{human}"
    );
    assert!(
        human.contains("not required by the generic profile"),
        "{human}"
    );

    // The generic profile still refuses what matters: a wrong audience, the
    // token as of today (expired 2015), and a tampered signature.
    let (code, report, _) = inspect(&[
        RFC8392_A3,
        "--jwks",
        jwks,
        "--now",
        A3_IAT,
        "--profile",
        "generic",
        "--aud",
        "coap://other.example.com",
        "--json",
    ]);
    assert_eq!((code, report["valid"].clone()), (2, false.into()));
    let (code, report, _) =
        inspect(&[RFC8392_A3, "--jwks", jwks, "--profile", "generic", "--json"]);
    assert_eq!(code, 2);
    assert!(
        report["error"].as_str().unwrap().starts_with("expired"),
        "{report}"
    );
    let mut forged = RFC8392_A3.to_string();
    forged.replace_range(forged.len() - 2.., "31");
    let (code, report, _) = inspect(&[
        &forged,
        "--jwks",
        jwks,
        "--now",
        A3_IAT,
        "--profile",
        "generic",
        "--json",
    ]);
    assert_eq!(code, 2);
    assert!(report["signature"]["Failed"].is_string(), "{report}");
    // Without a key nothing is VALID, whatever the profile.
    let (code, _, _) = inspect(&[RFC8392_A3, "--now", A3_IAT, "--profile", "generic"]);
    assert_eq!(code, 2);
    // An unknown profile is a clear usage error.
    let (code, _, text) = inspect(&[RFC8392_A3, "--profile", "lenient"]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("generic"), "{text}");
}

#[test]
fn pyjwt_and_python_cwt_tokens_under_both_profiles() {
    let Some(py) = python_with(&["jwt", "cwt", "cryptography"]) else {
        return skip_or_fail(
            "Python with PyJWT, cwt and cryptography (tests/interop/requirements.txt)",
        );
    };
    let dir = tempfile::tempdir().unwrap();
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/third_party_tokens.py");
    let run = Command::new(&py)
        .arg(&script)
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let jwks = dir.path().join("jwks.json");
    let jwks = jwks.to_str().unwrap();
    let jwt = std::fs::read_to_string(dir.path().join("jwt.txt")).unwrap();
    let cwt = std::fs::read_to_string(dir.path().join("cwt.hex")).unwrap();

    // A PyJWT token (typ JWT): the strict profile cannot even parse it as an
    // access token; the generic one verifies it and shows every claim.
    let (code, report, text) = inspect(&[&jwt, "--jwks", jwks, "--json"]);
    assert_eq!(code, 2, "{text}");
    assert_eq!(report["valid"], false);
    let (code, report, text) = inspect(&[
        &jwt,
        "--jwks",
        jwks,
        "--profile",
        "generic",
        "--aud",
        "https://api.example.org",
        "--iss",
        "https://idp.example.org",
        "--json",
    ]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(report["signature"], "Ok");
    assert_eq!(report["typ"], "JWT");
    assert_eq!(report["claims"]["sub"], "alice");
    assert_eq!(report["claims"]["role"], "reader");
    // Tampered payload: refused under the generic profile too.
    let parts: Vec<&str> = jwt.trim().split('.').collect();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut claims: serde_json::Value =
        serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    claims["sub"] = "mallory".into();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64.encode(serde_json::to_vec(&claims).unwrap()),
        parts[2]
    );
    let (code, report, _) = inspect(&[&forged, "--jwks", jwks, "--profile", "generic", "--json"]);
    assert_eq!(code, 2);
    assert!(report["signature"]["Failed"].is_string(), "{report}");
    // A python-cwt token: INVALID by default, VALID generically.
    let (code, report, text) = inspect(&[&cwt, "--jwks", jwks, "--json"]);
    assert_eq!((code, report["valid"].clone()), (2, false.into()), "{text}");
    let (code, report, text) = inspect(&[
        &cwt,
        "--jwks",
        jwks,
        "--profile",
        "generic",
        "--aud",
        "coap://light.example.org",
        "--json",
    ]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(report["claims"]["sub"], "bob");
}
