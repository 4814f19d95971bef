//! `certbound export | plan | apply` with the real binary: round trip into a
//! fresh data directory, plan exit codes, `${ENV}` substitution, refusals.

mod common;

use std::process::Command;

use common::*;

fn run_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .env_remove("CERTBOUND_DIR")
        .output()
        .expect("run certbound");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

const POLICY: &str = r#"
[[api]]
id = "https://${CB_POLICY_HOST}"
scopes = ["telemetry:write", "telemetry:read"]
ttl_secs = 600

[[api]]
id = "https://firmware.example.com"
scopes = ["firmware:read"]
format = "jwt"

[[group]]
name = "sensors"
[[group.grant]]
api = "https://${CB_POLICY_HOST}"
scopes = ["telemetry:write"]

[[client]]
name = "reporting"
[[client.grant]]
api = "https://${CB_POLICY_HOST}"
scopes = ["telemetry:read"]

[[client]]
name = "updater"
tls_subject = "CN=updater"
[[client.grant]]
api = "https://firmware.example.com"
scopes = ["firmware:read"]
"#;

#[test]
fn export_plan_apply() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    ok(&["init", "--dir", a, "--issuer-id", ISSUER]);
    ok(&["init", "--dir", b, "--issuer-id", ISSUER]);
    let file = tmp.path().join("policy.toml");
    std::fs::write(&file, POLICY).unwrap();
    let f = file.to_str().unwrap();
    let env = [("CB_POLICY_HOST", "telemetry.example.com")];

    // An undefined variable: an error naming it, nothing changes.
    let empty = ok(&["export", "--dir", a]);
    let (code, _, err) = run_env(&["plan", "--dir", a, f], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("CB_POLICY_HOST"), "{err}");
    let (code, _, err) = run_env(&["apply", "--dir", a, f, "--yes"], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("CB_POLICY_HOST"), "{err}");
    assert_eq!(ok(&["export", "--dir", a]), empty);

    // Plan: changes pending (exit 2), nothing written.
    let (code, out, err) = run_env(&["plan", "--dir", a, f], &env);
    assert_eq!(code, 2, "{out}{err}");
    assert!(out.contains("+ api https://telemetry.example.com"), "{out}");
    assert!(out.contains("+ client updater"), "{out}");
    assert!(
        out.contains("Plan: 5 to add, 0 to change, 0 to remove."),
        "{out}"
    );
    assert_eq!(ok(&["export", "--dir", a]), empty);
    let (code, json, _) = run_env(&["plan", "--dir", a, f, "--json"], &env);
    assert_eq!(code, 2);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["changes"].as_array().unwrap().len(), 5);

    // Without --yes and without a terminal: refused, nothing written.
    let (code, _, err) = run_env(&["apply", "--dir", a, f], &env);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--yes"), "{err}");
    assert_eq!(ok(&["export", "--dir", a]), empty);

    // Apply: the secret client's secret is printed once.
    let (code, out, err) = run_env(&["apply", "--dir", a, f, "--yes"], &env);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Applied."), "{out}");
    assert!(out.contains("client_secret:"), "{out}");
    let (code, out, _) = run_env(&["plan", "--dir", a, f], &env);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("No changes"), "{out}");
    let listed = ok(&["client", "list", "--dir", a]);
    assert!(
        listed.contains("reporting") && listed.contains("updater"),
        "{listed}"
    );

    // Round trip: export a, apply to the fresh b, export b == export a.
    let exported = ok(&["export", "--dir", a]);
    assert!(!exported.contains("urn:certbound:admin"), "{exported}");
    let exported_file = tmp.path().join("exported.toml");
    std::fs::write(&exported_file, &exported).unwrap();
    let e = exported_file.to_str().unwrap();
    let (code, out, err) = run_env(&["apply", "--dir", b, e, "--yes"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(ok(&["export", "--dir", b]), exported);
    let (code, _, _) = run_env(&["plan", "--dir", a, e], &[]);
    assert_eq!(code, 0);

    // A change of each kind, then a failing apply that changes nothing.
    let changed = exported
        .replace("ttl_secs = 600", "ttl_secs = 300")
        .replace("name = \"reporting\"", "name = \"billing\"");
    std::fs::write(&exported_file, &changed).unwrap();
    let (code, out, _) = run_env(&["plan", "--dir", b, e], &[]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("~ api https://telemetry.example.com: ttl_secs 600 -> 300"),
        "{out}"
    );
    assert!(out.contains("+ client billing"), "{out}");
    assert!(out.contains("- client reporting"), "{out}");
    let broken = format!(
        "{changed}\n[[group]]\nname = \"extra\"\n[[group.grant]]\napi = \"https://unknown.example.com\"\nscopes = [\"x\"]\n"
    );
    std::fs::write(&exported_file, broken).unwrap();
    let (code, _, err) = run_env(&["apply", "--dir", b, e, "--yes"], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("https://unknown.example.com"), "{err}");
    assert_eq!(ok(&["export", "--dir", b]), exported);
}

/// A policy with a client of each kind of method (the thumbprint is any
/// base64url SHA-256: nothing connects here).
const METHODS: &str = r#"
[[api]]
id = "https://reports.example.com"
scopes = ["reports:read"]

[[client]]
name = "partner"
tls_san = "uri:https://operator.example/svc/partner"
[[client.grant]]
api = "https://reports.example.com"
scopes = ["reports:read"]

[[client]]
name = "edge"
thumbprint = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY"

[[client]]
name = "poster"
auth_method = "client_secret_post"
"#;

#[test]
fn client_methods_export_plan_apply() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let a = a.to_str().unwrap();
    ok(&["init", "--dir", a, "--issuer-id", ISSUER]);
    let file = tmp.path().join("policy.toml");
    let f = file.to_str().unwrap();
    std::fs::write(&file, METHODS).unwrap();

    let (code, out, err) = run_env(&["apply", "--dir", a, f, "--yes"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    for line in [
        "+ client partner: tls_san \"uri:https://operator.example/svc/partner\"",
        "+ client edge: thumbprint \"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY\"",
        "+ client poster: auth_method client_secret_post; secret (printed once by apply)",
        "auth_method:   self_signed_tls_client_auth",
        "tls_san:       uri:https://operator.example/svc/partner",
    ] {
        assert!(out.contains(line), "missing {line:?} in\n{out}");
    }
    assert_eq!(out.matches("client_secret: ").count(), 1, "{out}");
    let exported = ok(&["export", "--dir", a]);
    for line in [
        "auth_method = \"tls_client_auth\"\ntls_san = \"uri:https://operator.example/svc/partner\"",
        "auth_method = \"self_signed_tls_client_auth\"\nthumbprint = ",
        "auth_method = \"client_secret_post\"",
    ] {
        assert!(exported.contains(line), "missing {line:?} in\n{exported}");
    }
    let listed = ok(&["client", "list", "--dir", a]);
    assert!(listed.contains("self_signed_tls_client_auth"), "{listed}");

    // A method change is shown old -> new; plan exits 2.
    let changed = exported.replace(
        "auth_method = \"client_secret_post\"",
        "auth_method = \"client_secret_basic\"",
    );
    std::fs::write(&file, &changed).unwrap();
    let (code, out, _) = run_env(&["plan", "--dir", a, f], &[]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("~ client poster: auth_method client_secret_post -> client_secret_basic"),
        "{out}"
    );

    // An inconsistent document: exit 1, the message says what to write, nothing changes.
    let broken = exported.replace(
        "auth_method = \"client_secret_post\"",
        "auth_method = \"client_secret_post\"\ntls_san = \"dns:poster.example.com\"",
    );
    std::fs::write(&file, broken).unwrap();
    let (code, _, err) = run_env(&["apply", "--dir", a, f, "--yes"], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("client poster: tls_san is set, but auth_method \"client_secret_post\" authenticates with a secret: remove tls_san, or write auth_method = \"tls_client_auth\""),
        "{err}"
    );
    assert_eq!(ok(&["export", "--dir", a]), exported);
}
