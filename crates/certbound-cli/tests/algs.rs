//! Signing algorithms per API with the real binaries: `api create --alg`,
//! `api set-alg`, `keys list` / `keys rotate` per algorithm, policy as code's
//! `alg`, and PyJWT (with `cryptography`) verifying RS256, PS256 and EdDSA
//! JWTs from a running `certbound serve` against /.well-known/jwks.json
//! (tests/interop/jwt_algs.py).

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

const RS: &str = "https://rs.example.com";
const PS: &str = "https://ps.example.com";
const ED: &str = "https://ed.example.com";

fn json(args: &[&str]) -> serde_json::Value {
    let out = ok(args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

fn api(d: &str, id: &str, alg: &str) -> serde_json::Value {
    json(&[
        "api", "create", "--dir", d, "--id", id, "--scopes", "read", "--format", "jwt", "--alg",
        alg, "--json",
    ])
}

fn algs_of(keys: &serde_json::Value) -> Vec<String> {
    let mut algs: Vec<String> = keys
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["alg"].as_str().unwrap().to_string())
        .collect();
    algs.sort();
    algs
}

#[test]
fn a_cwt_api_cannot_ask_for_another_algorithm() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    ok(&["init", "--dir", d, "--issuer-id", ISSUER]);
    for alg in ["RS256", "PS256", "EdDSA"] {
        let out = certbound(&[
            "api", "create", "--dir", d, "--id", RS, "--scopes", "read", "--alg", alg,
        ]);
        assert!(!out.status.success(), "{alg} with format cwt was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("only for JWTs") && err.contains("--format jwt"),
            "{alg}: {err}"
        );
    }
    // Unknown algorithms (none, HMAC) are not even parsed.
    for alg in ["none", "HS256", "RS512"] {
        let out = certbound(&[
            "api", "create", "--dir", d, "--id", RS, "--scopes", "read", "--format", "jwt",
            "--alg", alg,
        ]);
        assert!(!out.status.success(), "{alg} accepted");
    }
    // No API was made, no key of another algorithm either.
    assert!(
        !json(&["api", "list", "--dir", d, "--json"])
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == RS)
    );
    assert_eq!(
        algs_of(&json(&["keys", "list", "--dir", d, "--json"])),
        ["ES256"]
    );
    // set-alg on a CWT API is refused the same way; ES256 is fine.
    ok(&["api", "create", "--dir", d, "--id", API, "--scopes", "read"]);
    let out = certbound(&["api", "set-alg", "--dir", d, "--api", API, "--alg", "rs256"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("CWTs are always ES256"));
    ok(&["api", "set-alg", "--dir", d, "--api", API, "--alg", "ES256"]);
}

#[test]
fn rs256_ps256_and_eddsa_jwts_verify_with_pyjwt() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    ok(&["init", "--dir", d, "--issuer-id", ISSUER]);
    assert_eq!(api(d, RS, "RS256")["alg"], "RS256");
    assert_eq!(api(d, PS, "ps256")["alg"], "PS256");
    // EdDSA by set-alg on an existing ES256 JWT API.
    assert_eq!(api(d, ED, "ES256")["alg"], "ES256");
    let changed = json(&[
        "api", "set-alg", "--dir", d, "--api", ED, "--alg", "EdDSA", "--json",
    ]);
    assert_eq!(changed["alg"], "EdDSA");
    let listed = json(&["api", "list", "--dir", d, "--json"]);
    let alg_of = |id: &str| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == id)
            .map(|a| a["alg"].clone())
    };
    assert_eq!(alg_of(RS), Some("RS256".into()));
    assert_eq!(alg_of(ED), Some("EdDSA".into()));

    // One key per algorithm, created when first asked for; RSA keys are
    // 0600 PKCS#8 files named by kid and algorithm.
    let keys = json(&["keys", "list", "--dir", d, "--json"]);
    assert_eq!(algs_of(&keys), ["ES256", "EdDSA", "PS256", "RS256"]);
    for k in keys.as_array().unwrap() {
        assert_eq!(k["held_here"], true);
        let alg = k["alg"].as_str().unwrap();
        if alg != "ES256" {
            let file = dir
                .path()
                .join("keys")
                .join(format!("{}.{alg}.key.pem", k["kid"].as_str().unwrap()));
            let text = std::fs::read_to_string(&file).unwrap();
            assert!(text.contains("BEGIN PRIVATE KEY"), "{}", file.display());
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(&file).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o600);
            }
        }
    }
    let text = ok(&["keys", "list", "--dir", d]);
    assert!(text.contains("RS256") && text.contains("EdDSA"), "{text}");
    // Asking again does not make another key.
    api(d, "https://rs2.example.com", "RS256");
    assert_eq!(
        json(&["keys", "list", "--dir", d, "--json"])
            .as_array()
            .unwrap()
            .len(),
        4
    );

    // Policy as code exports the algorithm and reads it back unchanged.
    let exported = ok(&["export", "--dir", d]);
    assert!(exported.contains("alg = \"RS256\""), "{exported}");
    assert!(exported.contains("alg = \"EdDSA\""), "{exported}");

    let grant = |id: &str| format!("{id}=read");
    let (g1, g2, g3) = (grant(RS), grant(PS), grant(ED));
    let client = json(&[
        "client", "create", "--dir", d, "--name", "consumer", "--grant", &g1, "--grant", &g2,
        "--grant", &g3, "--json",
    ]);
    let client_id = client["client_id"].as_str().unwrap().to_string();
    let secret = client["client_secret"].as_str().unwrap().to_string();

    // The exported JWKS (token inspect) holds every algorithm's key.
    let jwks_file = dir.path().join("jwks.json");
    ok(&[
        "keys",
        "export",
        "--dir",
        d,
        "--out",
        jwks_file.to_str().unwrap(),
    ]);
    let jwks: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&jwks_file).unwrap()).unwrap();
    let ktys: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kty"].as_str().unwrap())
        .collect();
    assert!(ktys.contains(&"RSA") && ktys.contains(&"OKP") && ktys.contains(&"EC"));

    let serve = Serve::start(dir.path());
    let Some(py) = python_with(&["jwt", "cryptography"]) else {
        return skip_or_fail("Python with PyJWT and cryptography (tests/interop/requirements.txt)");
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/jwt_algs.py");
    let ca = dir.path().join("pki/ca-chain.pem");
    let run = || {
        Command::new(&py)
            .arg(&script)
            .args([
                &serve.https,
                ca.to_str().unwrap(),
                ISSUER,
                &client_id,
                &secret,
            ])
            .args([
                format!("{RS}=RS256"),
                format!("{PS}=PS256"),
                format!("{ED}=EdDSA"),
            ])
            .output()
            .unwrap()
    };
    let result = run();
    assert!(
        result.status.success(),
        "PyJWT did not verify certbound's tokens:\n{}\n{}",
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    );
    let line = String::from_utf8_lossy(&result.stdout);
    println!("python: {line}");
    let report: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    for alg in ["RS256", "PS256", "EdDSA"] {
        assert!(report["verified"][alg].is_array(), "{alg}: {report}");
        assert!(
            report["tampered_refused"].to_string().contains(alg),
            "{alg}: {report}"
        );
        assert!(
            report["confusion_refused"].to_string().contains(alg),
            "{alg}: {report}"
        );
    }

    // Rotation: every algorithm in use gets a successor, published at once.
    let rotation = json(&["keys", "rotate", "--dir", d, "--grace", "0", "--json"]);
    let others = rotation["others"].as_array().unwrap();
    let mut rotated: Vec<&str> = others.iter().map(|o| o["alg"].as_str().unwrap()).collect();
    rotated.sort();
    assert_eq!(rotated, ["EdDSA", "PS256", "RS256"], "{rotation}");
    let keys = json(&["keys", "list", "--dir", d, "--json"]);
    assert_eq!(keys.as_array().unwrap().len(), 8);
    let retiring = keys
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| !k["retire_after"].is_null())
        .count();
    assert_eq!(retiring, 4, "each old key retires: {keys}");
    // The running server picks the new keys up and signs with them; PyJWT
    // still verifies (it refetches the JWKS for an unknown kid).
    let mut new_kids: Vec<String> = others
        .iter()
        .map(|o| o["new_kid"].as_str().unwrap().to_string())
        .collect();
    new_kids.sort();
    let mut attempts = 0;
    let report = loop {
        attempts += 1;
        assert!(
            attempts < 200,
            "the server never signed with the rotated keys"
        );
        let result = run();
        assert!(
            result.status.success(),
            "after rotation:\n{}\n{}",
            String::from_utf8_lossy(&result.stdout),
            String::from_utf8_lossy(&result.stderr)
        );
        let report: serde_json::Value =
            serde_json::from_str(String::from_utf8_lossy(&result.stdout).trim()).unwrap();
        let kids: Vec<String> = serde_json::from_value(report["kids"].clone()).unwrap();
        if kids == new_kids {
            break report;
        }
        // The ring is reloaded every 500 ms; poll until the new keys sign.
        std::thread::yield_now();
    };
    assert_eq!(report["tampered_refused"].as_array().unwrap().len(), 3);
    drop(serve);
}
