//! `certbound api set-ttl`, `group grant|revoke-grant|delete` with the real
//! binary: doctor's token-ttl and scopes fixes are these commands, and running
//! them exactly as doctor prints them clears the findings.

mod common;

#[cfg(unix)]
use std::path::Path;
#[cfg(unix)]
use std::process::Command;

use common::{API, BIN, ISSUER, certbound, ok};

/// A data directory (its path has a space, so fixes must quote it) with an
/// API issuing day-long tokens, a group granting `admin`, and a device.
fn setup(tmp: &tempfile::TempDir) -> String {
    let dir = tmp.path().join("c b").display().to_string();
    let devices = tmp.path().join("devices").display().to_string();
    // The root key kept offline, so a clean directory has no doctor finding.
    let root_key = tmp.path().join("root.key.pem").display().to_string();
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
        "telemetry:write admin",
        "--ttl",
        "86400",
    ]);
    ok(&[
        "group",
        "create",
        "--dir",
        &dir,
        "--name",
        "sensors",
        "--grant",
        &format!("{API}=telemetry:write admin"),
    ]);
    ok(&[
        "device",
        "provision",
        "--dir",
        &dir,
        "--id",
        "sensor-1",
        "--group",
        "sensors",
        "--out",
        &devices,
    ]);
    dir
}

/// The (check, fix) of doctor's token-ttl and scopes findings.
fn grant_findings(dir: &str) -> Vec<(String, String)> {
    let out = certbound(&["doctor", "--dir", dir, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == "token-ttl" || f["check"] == "scopes")
        .map(|f| {
            (
                f["check"].as_str().unwrap().to_string(),
                f["fix"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[cfg(unix)]
/// Runs a fix as an operator pastes it: through `sh`, `certbound` on PATH.
fn run_fix(bin_dir: &Path, fix: &str) {
    assert!(fix.starts_with("certbound "), "not a command: {fix}");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("sh")
        .arg("-c")
        .arg(fix)
        .env("PATH", path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{fix} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[cfg(unix)]
fn bin_dir(tmp: &tempfile::TempDir) -> std::path::PathBuf {
    let bin = tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(BIN, bin.join("certbound")).unwrap();
    bin
}

#[cfg(unix)]
#[test]
fn doctor_fixes_run_as_printed_clear_the_findings() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = setup(&tmp);
    let bin = bin_dir(&tmp);
    // An empty group with a member: created with a grant, which is removed.
    ok(&[
        "group",
        "create",
        "--dir",
        &dir,
        "--name",
        "spare",
        "--grant",
        &format!("{API}=telemetry:write"),
    ]);
    ok(&[
        "group",
        "revoke-grant",
        "--dir",
        &dir,
        "--name",
        "spare",
        "--api",
        API,
    ]);
    ok(&[
        "device",
        "provision",
        "--dir",
        &dir,
        "--id",
        "sensor-2",
        "--group",
        "sensors",
        "--group",
        "spare",
        "--out",
        &tmp.path().join("devices").display().to_string(),
    ]);

    let findings = grant_findings(&dir);
    let fixes: Vec<&str> = findings.iter().map(|(_, f)| f.as_str()).collect();
    assert_eq!(findings.len(), 3, "{findings:#?}");
    let quoted = format!("'{dir}'");
    assert!(fixes.contains(
        &format!("certbound api set-ttl --dir {quoted} --api {API} --ttl 3600").as_str()
    ));
    assert!(fixes.contains(
        &format!(
            "certbound group grant --dir {quoted} --name sensors --api {API} --scopes telemetry:write"
        )
        .as_str()
    ));
    assert!(
        fixes.contains(
            &format!("certbound group delete --dir {quoted} --name spare --force").as_str()
        )
    );
    for fix in &fixes {
        run_fix(&bin, fix);
    }
    assert_eq!(grant_findings(&dir), vec![]);
    let out = ok(&["doctor", "--dir", &dir, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["exit_code"], 0, "{v:#}");

    let apis: serde_json::Value =
        serde_json::from_str(&ok(&["api", "list", "--dir", &dir, "--json"])).unwrap();
    let api = apis
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == API)
        .unwrap();
    assert_eq!(api["ttl_secs"], 3600);
    let groups = ok(&["group", "list", "--dir", &dir]);
    assert!(!groups.contains("spare"), "{groups}");
    assert!(
        groups.contains(&format!("{API} -> telemetry:write\n")),
        "{groups}"
    );
    let device = ok(&["device", "show", "--dir", &dir, "sensor-2"]);
    assert!(!device.contains("spare"), "{device}");
}

#[cfg(unix)]
#[test]
fn a_grant_of_only_broad_scopes_is_revoked_then_the_empty_group_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = setup(&tmp);
    let bin = bin_dir(&tmp);
    ok(&[
        "group",
        "create",
        "--dir",
        &dir,
        "--name",
        "admins",
        "--grant",
        &format!("{API}=admin"),
    ]);
    let fixes: Vec<String> = grant_findings(&dir)
        .into_iter()
        .filter(|(_, f)| f.contains("admins"))
        .map(|(_, f)| f)
        .collect();
    assert_eq!(
        fixes,
        vec![format!(
            "certbound group revoke-grant --dir '{dir}' --name admins --api {API}"
        )]
    );
    run_fix(&bin, &fixes[0]);
    // Now it grants nothing: doctor says to delete it (no members, no --force).
    let fixes: Vec<String> = grant_findings(&dir)
        .into_iter()
        .filter(|(_, f)| f.contains("admins"))
        .map(|(_, f)| f)
        .collect();
    assert_eq!(
        fixes,
        vec![format!(
            "certbound group delete --dir '{dir}' --name admins"
        )]
    );
    run_fix(&bin, &fixes[0]);
    assert!(
        grant_findings(&dir)
            .iter()
            .all(|(_, f)| !f.contains("admins"))
    );
}

fn fails(args: &[&str], expected: &str) {
    let out = certbound(args);
    assert_eq!(out.status.code(), Some(1), "{args:?} should fail");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(expected),
        "{args:?}: {err:?} lacks {expected:?}"
    );
}

#[test]
fn errors_are_clear_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = setup(&tmp);
    let d = dir.as_str();
    let no_api = "API \"https://nope\" does not exist; `certbound api list` shows them";
    fails(
        &[
            "api",
            "set-ttl",
            "--dir",
            d,
            "--api",
            "https://nope",
            "--ttl",
            "60",
        ],
        no_api,
    );
    for ttl in ["0", "4", "86401"] {
        fails(
            &["api", "set-ttl", "--dir", d, "--api", API, "--ttl", ttl],
            "use 5 to 86400 seconds",
        );
    }
    fails(
        &[
            "group",
            "grant",
            "--dir",
            d,
            "--name",
            "sensors",
            "--api",
            "https://nope",
            "--scopes",
            "x",
        ],
        "API \"https://nope\" does not exist; `certbound api list` shows them",
    );
    fails(
        &[
            "group",
            "grant",
            "--dir",
            d,
            "--name",
            "sensors",
            "--api",
            API,
            "--scopes",
            "firmware:read",
        ],
        "not defined by API",
    );
    fails(
        &[
            "group", "grant", "--dir", d, "--name", "nope", "--api", API, "--scopes", "admin",
        ],
        "group \"nope\" does not exist; `certbound group list` shows them",
    );
    fails(
        &[
            "group",
            "revoke-grant",
            "--dir",
            d,
            "--name",
            "sensors",
            "--api",
            "https://nope",
        ],
        "does not exist",
    );
    fails(
        &["group", "delete", "--dir", d, "--name", "sensors"],
        "group sensors still has 1 member device(s): sensor-1; pass --force",
    );
    fails(
        &["group", "delete", "--dir", d, "--name", "nope", "--force"],
        "group \"nope\" does not exist",
    );
    // Nothing changed.
    let apis = ok(&["api", "list", "--dir", d]);
    assert!(apis.contains("ttl=86400s"), "{apis}");
    let groups = ok(&["group", "list", "--dir", d]);
    assert!(
        groups.contains(&format!("sensors\n  {API} -> telemetry:write admin")),
        "{groups}"
    );
}

#[test]
fn json_output_and_audit() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = setup(&tmp);
    let d = dir.as_str();
    let v: serde_json::Value = serde_json::from_str(&ok(&[
        "api", "set-ttl", "--dir", d, "--api", API, "--ttl", "600", "--json",
    ]))
    .unwrap();
    assert_eq!(v["ttl_secs"], 600);
    assert_eq!(v["previous_ttl_secs"], 86400);
    // --scope is accepted too.
    let v: serde_json::Value = serde_json::from_str(&ok(&[
        "group",
        "grant",
        "--dir",
        d,
        "--name",
        "sensors",
        "--api",
        API,
        "--scope",
        "telemetry:write",
        "--json",
    ]))
    .unwrap();
    assert_eq!(v["scopes"], serde_json::json!(["telemetry:write"]));
    assert_eq!(
        v["previous"],
        serde_json::json!(["telemetry:write", "admin"])
    );
    let v: serde_json::Value = serde_json::from_str(&ok(&[
        "group", "delete", "--dir", d, "--name", "sensors", "--force", "--json",
    ]))
    .unwrap();
    assert_eq!(v["removed_members"], serde_json::json!(["sensor-1"]));
    let audit = ok(&["audit", "tail", "--dir", d]);
    for action in ["api.ttl_changed", "group.grant_set", "group.deleted"] {
        assert!(audit.contains(action), "{action} in {audit}");
    }
}
