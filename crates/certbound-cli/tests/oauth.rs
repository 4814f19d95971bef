//! Backend services with the real binaries: `certbound client create`
//! (secret and `--tls-subject`), `certbound serve` on HTTPS, and Python as
//! the OAuth client (urllib/ssl), PyJWT verifying the JWT against
//! /.well-known/jwks.json, `cryptography` checking `x5t#S256` against the
//! TLS client certificate, python-cwt reading the status list after a
//! revocation. Plus the client and key-rotation commands.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

const REPORTS: &str = "https://reports.example.com";

fn json(args: &[&str]) -> serde_json::Value {
    let out = ok(args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

#[test]
fn oauth_clients_interoperate_with_python() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    ok(&["init", "--dir", d, "--issuer-id", ISSUER]);
    ok(&[
        "api",
        "create",
        "--dir",
        d,
        "--id",
        REPORTS,
        "--scopes",
        "reports:read",
        "--format",
        "jwt",
        "--ttl",
        "600",
    ]);
    let grant = format!("{REPORTS}=reports:read");
    let secret_client = json(&[
        "client",
        "create",
        "--dir",
        d,
        "--name",
        "reporting",
        "--grant",
        &grant,
        "--json",
    ]);
    let client_id = secret_client["client_id"].as_str().unwrap().to_string();
    let secret = secret_client["client_secret"].as_str().unwrap().to_string();
    assert!(secret.len() >= 40, "a high-entropy secret: {secret}");
    // The secret is shown once: never listed, never stored in clear.
    let list = ok(&["client", "list", "--dir", d, "--json"]);
    assert!(
        list.contains("reporting") && !list.contains(&secret),
        "{list}"
    );
    let db = std::fs::read(dir.path().join("certbound.db")).unwrap_or_default();
    assert!(
        !db.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "the secret is stored only as a hash"
    );

    let out = dir.path().join("services");
    ok(&[
        "service",
        "provision",
        "--dir",
        d,
        "--name",
        "billing",
        "--out",
        out.to_str().unwrap(),
    ]);
    let tls_client = json(&[
        "client",
        "create",
        "--dir",
        d,
        "--name",
        "billing",
        "--grant",
        &grant,
        "--tls-subject",
        "CN=billing",
        "--json",
    ]);
    assert!(tls_client["client_secret"].is_null());

    let serve = Serve::start(dir.path());
    assert!(
        serve.https.starts_with("https://127.0.0.1:"),
        "{}",
        serve.https
    );
    let Some(py) = python_with(&["jwt", "cwt", "cryptography"]) else {
        return skip_or_fail(
            "Python with PyJWT, cwt and cryptography (tests/interop/requirements.txt)",
        );
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/oauth_client.py");
    let ca = dir.path().join("pki/ca-chain.pem");
    let result = Command::new(py)
        .arg(script)
        .args([
            &serve.https,
            ca.to_str().unwrap(),
            ISSUER,
            REPORTS,
            &client_id,
            &secret,
            out.join("billing.cert.pem").to_str().unwrap(),
            out.join("billing.key.pem").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        result.status.success(),
        "the Python OAuth client failed:\n{}\n{}",
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    );
    let line = String::from_utf8_lossy(&result.stdout);
    println!("python: {line}");
    let report: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(report["tampered_refused"], true);
    assert_eq!(report["revoked_status"], 1);
    assert_eq!(report["mtls_client_id"], tls_client["client_id"]);

    // `token inspect` reads JWTs too.
    let jwks = dir.path().join("jwks.json");
    ok(&[
        "keys",
        "export",
        "--dir",
        d,
        "--out",
        jwks.to_str().unwrap(),
    ]);
    let jwt = report["bound_jwt"].as_str().unwrap();
    let inspected = ok(&[
        "token",
        "inspect",
        "--jwks",
        jwks.to_str().unwrap(),
        "--aud",
        REPORTS,
        "--iss",
        ISSUER,
        jwt,
    ]);
    assert!(
        inspected.contains("VALID") && !inspected.contains("INVALID"),
        "{inspected}"
    );
    assert!(inspected.contains("x5t#S256"), "{inspected}");
    let wrong = certbound(&[
        "token",
        "inspect",
        "--jwks",
        jwks.to_str().unwrap(),
        "--aud",
        "https://other.example.com",
        jwt,
    ]);
    assert_eq!(wrong.status.code(), Some(2), "wrong audience: exit 2");

    // rotate-secret: the old secret stops working (checked over HTTPS by curl-less Python above);
    // here: the CLI prints a new one, and delete removes the client from the list.
    let rotated = json(&["client", "rotate-secret", "--dir", d, "reporting", "--json"]);
    assert_ne!(rotated["client_secret"].as_str().unwrap(), secret);
    ok(&["client", "delete", "--dir", d, "reporting"]);
    let list = ok(&["client", "list", "--dir", d]);
    assert!(
        !list.contains("reporting") && list.contains("billing"),
        "{list}"
    );
    let missing = certbound(&["client", "delete", "--dir", d, "reporting"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("does not exist"));
}

#[test]
fn keys_rotate_and_list() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    ok(&["init", "--dir", d, "--issuer-id", ISSUER]);
    let before = json(&["keys", "list", "--dir", d, "--json"]);
    assert_eq!(before.as_array().unwrap().len(), 1);
    let rotation = json(&["keys", "rotate", "--dir", d, "--grace", "600", "--json"]);
    let after = json(&["keys", "list", "--dir", d, "--json"]);
    assert_eq!(after.as_array().unwrap().len(), 2);
    assert!(
        after
            .to_string()
            .contains(rotation["new_kid"].as_str().unwrap())
    );
    // Both keys are published during the overlap.
    let jwks = json(&["keys", "export", "--dir", d]);
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    let text = ok(&["keys", "rotate", "--dir", d, "--grace", "0"]);
    assert!(
        text.contains("signs from") && text.contains("retire"),
        "{text}"
    );
}

#[test]
fn init_server_names_go_into_the_server_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("cb");
    let d = d.to_str().unwrap();
    let out = ok(&[
        "init",
        "--dir",
        d,
        "--issuer-id",
        ISSUER,
        "--server-name",
        "auth.example.test",
        "--server-name",
        "10.1.2.3",
    ]);
    assert!(out.contains("auth.example.test, 10.1.2.3"), "{out}");
    let bad = certbound(&[
        "init",
        "--dir",
        dir.path().join("bad").to_str().unwrap(),
        "--issuer-id",
        ISSUER,
        "--server-name",
        "not a name",
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("neither a DNS name nor an IP address"));
    if Command::new("openssl").arg("version").output().is_err() {
        return skip_or_fail("openssl");
    }
    let text = Command::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
        .arg(dir.path().join("cb/pki/server.cert.pem"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("DNS:auth.example.test") && text.contains("IP Address:10.1.2.3"),
        "{text}"
    );
    assert!(
        !text.contains("localhost"),
        "only the names asked for: {text}"
    );
}
