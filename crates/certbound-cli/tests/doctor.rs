//! `certbound doctor`: table and JSON output, exit codes 0 / 1 / 2.

mod common;

use common::{API, ISSUER, certbound, ok};

fn init(tmp: &tempfile::TempDir) -> String {
    let dir = tmp.path().join("cb").display().to_string();
    let root_key = tmp
        .path()
        .join("offline-root.key.pem")
        .display()
        .to_string();
    ok(&[
        "init",
        "--dir",
        &dir,
        "--issuer-id",
        ISSUER,
        "--root-key-out",
        &root_key,
    ]);
    ok(&[
        "api",
        "create",
        "--dir",
        &dir,
        "--id",
        API,
        "--scopes",
        "telemetry:write",
    ]);
    dir
}

#[test]
fn clean_directory_exits_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = init(&tmp);
    let out = ok(&["doctor", "--dir", &dir]);
    assert!(out.contains("checks passed"), "{out}");
    let out = ok(&["doctor", "--dir", &dir, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["exit_code"], 0);
    assert_eq!(v["findings"].as_array().unwrap().len(), 0);
}

#[test]
fn warnings_exit_one_with_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = init(&tmp);
    let out = certbound(&["doctor", "--dir", &dir, "--expiry-days", "100000"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("warning"), "{text}");
    assert!(text.contains("ca-expiry"), "{text}");
    assert!(
        text.contains("fix: certbound ca rotate-issuing --dir"),
        "{text}"
    );

    let out = certbound(&["doctor", "--dir", &dir, "--expiry-days", "100000", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["exit_code"], 1);
    let findings = v["findings"].as_array().unwrap();
    assert!(findings.iter().all(|f| f["severity"] == "warning"));
    assert!(findings.iter().all(|f| f["check"] == "ca-expiry"));
    assert!(findings.iter().all(|f| f["fix"].as_str().is_some()));
}

#[cfg(unix)]
#[test]
fn errors_exit_two() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = init(&tmp);
    let key = std::path::Path::new(&dir).join("pki/issuing-ca.key.pem");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let out = certbound(&["doctor", "--dir", &dir, "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let findings = v["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{v:#}");
    assert_eq!(findings[0]["check"], "file-permissions");
    assert_eq!(findings[0]["severity"], "error");
    assert_eq!(
        findings[0]["fix"].as_str().unwrap(),
        format!("chmod 600 {}", key.display())
    );
}

#[test]
fn unreadable_directory_exits_two() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("missing").display().to_string();
    let out = certbound(&["doctor", "--dir", &dir]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open data directory"));
}
