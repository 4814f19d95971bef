//! Revocation is final and the audit log is safe to read, with the real
//! binary (issue 11): `device suspend`/`resume` of a revoked device are
//! refused, `audit tail` never prints a control character from a field, and
//! `certbound crl` covers every issuing CA after a rotation (checked with
//! openssl). Attack-matrix cases `attack_*` (see docs/security.md).

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn have(tool: &str) -> bool {
    Command::new(tool).arg("-version").output().is_ok()
}

fn fails_with(args: &[&str], needle: &str) {
    let out = certbound(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "certbound {args:?} must fail");
    assert!(err.contains(needle), "certbound {args:?}: {err}");
}

/// `device suspend` then `device resume` of a revoked device (the old way back to active): both refused, the device stays revoked.
#[test]
fn attack_resume_revoked_device_cli() {
    let qs = QuickStart::new();
    let d = qs.d();
    ok(&[
        "device",
        "provision",
        "--dir",
        d,
        "--id",
        "sensor-2",
        "--group",
        "sensors",
        "--out",
        &qs.file(""),
    ]);
    ok(&[
        "device", "revoke", "--dir", d, "sensor-1", "--reason", "stolen",
    ]);
    fails_with(
        &["device", "suspend", "--dir", d, "sensor-1"],
        "revoked, which is final",
    );
    fails_with(
        &["device", "resume", "--dir", d, "sensor-1"],
        "revoked, which is final",
    );
    let shown: serde_json::Value =
        serde_json::from_str(&ok(&["device", "show", "--dir", d, "sensor-1", "--json"])).unwrap();
    assert_eq!(shown["device"]["status"], "revoked", "{shown}");
    // Suspend and resume still work for other devices, and the broker serves them.
    ok(&["device", "suspend", "--dir", d, "sensor-2"]);
    ok(&["device", "resume", "--dir", d, "sensor-2"]);
    let serve = Serve::start(&qs.dir);
    let good = qs.request(&serve, "sensor-2", "telemetry:write");
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    let bad = qs.request(&serve, "sensor-1", "telemetry:write");
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("invalid_client") && err.contains("revoked"),
        "{err}"
    );
}

/// Terminal escapes and newlines in audit fields (written raw by an old version or by hand, or through a --reason) reach `audit tail` only escaped.
#[test]
fn attack_audit_tail_escapes_terminal_controls() {
    if !have("sqlite3") {
        return skip_or_fail("sqlite3");
    }
    let qs = QuickStart::new();
    let d = qs.d();
    let db = qs.dir.join("certbound.db");
    let out = Command::new("sqlite3")
        .arg(&db)
        .arg(
            "INSERT INTO audit_events (ts, actor, action, subject, outcome, detail) VALUES \
             (2000000000000, 'device:x', 'token.refused', 'evil' || char(27) || '[2J' || char(10) || \
             '1999-01-01T00:00:01Z  cli  device.revoked  ceo  ok', 'ok', char(155) || '31m' || char(8238));",
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ok(&[
        "device",
        "revoke",
        "--dir",
        d,
        "sensor-1",
        "--reason",
        "lost\n\u{1b}]0;pwned\u{7}",
    ]);
    for json in [false, true] {
        let mut args = vec!["audit", "tail", "--dir", d, "-n", "50"];
        if json {
            args.push("--json");
        }
        let text = ok(&args);
        assert!(
            !text
                .chars()
                .any(|c| (c.is_control() && c != '\n') || c == '\u{202e}'),
            "a control character reached the terminal: {text:?}"
        );
        assert!(text.contains("[2J"), "{text}");
        let forged = text
            .lines()
            .filter(|l| l.starts_with("1999-01-01T00:00:01Z"))
            .count();
        assert_eq!(forged, 0, "a field forged a line: {text}");
        assert!(text.contains("pwned"), "{text}");
        let lines = text.lines().filter(|l| l.contains("evil")).count();
        assert_eq!(lines, 1, "{text}");
    }
    // Ordinary events are shown as before.
    let text = ok(&["audit", "tail", "--dir", d, "-n", "5"]);
    assert!(
        text.contains("device.revoked") && text.contains("sensor-1"),
        "{text}"
    );
}

/// `certbound crl` after `ca rotate-issuing`: one CRL per issuing CA, each signed by its own CA; openssl refuses the revoked certificate of the old CA.
#[test]
fn crl_covers_every_issuing_ca_after_rotation() {
    if !have("openssl") {
        return skip_or_fail("openssl");
    }
    let qs = QuickStart::new();
    let d = qs.d();
    let cas: serde_json::Value =
        serde_json::from_str(&ok(&["ca", "show", "--dir", d, "--json"])).unwrap();
    let old = cas[0]["serial"].as_str().unwrap().to_string();
    ok(&["ca", "rotate-issuing", "--dir", d]);
    ok(&[
        "device",
        "provision",
        "--dir",
        d,
        "--id",
        "sensor-2",
        "--group",
        "sensors",
        "--out",
        &qs.file(""),
    ]);
    ok(&[
        "device",
        "revoke",
        "--dir",
        d,
        "sensor-1",
        "--reason",
        "key compromise",
    ]);
    let all = qs.tmp.path().join("all.pem");
    ok(&["crl", "--dir", d, "--out", p(&all)]);
    let text = std::fs::read_to_string(&all).unwrap();
    assert_eq!(text.matches("BEGIN X509 CRL").count(), 2, "{text}");
    let chain = qs.dir.join("pki").join("ca-chain.pem");
    let verify = |cert: &str| {
        let out = Command::new("openssl")
            .args([
                "verify",
                "-crl_check",
                "-CAfile",
                p(&chain),
                "-CRLfile",
                p(&all),
                cert,
            ])
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (ok_old, log) = verify(&qs.file("sensor-1.cert.pem"));
    assert!(!ok_old && log.contains("revoked"), "{log}");
    let (ok_new, log) = verify(&qs.file("sensor-2.cert.pem"));
    assert!(ok_new, "{log}");
    // The old CA's own CRL, DER, verifies against the old CA alone.
    let der = qs.tmp.path().join("old.crl");
    ok(&["crl", "--dir", d, "--der", "--ca", &old, "--out", p(&der)]);
    let old_ca = qs.dir.join("pki").join(format!("issuing-ca.{old}.pem"));
    let out = Command::new("openssl")
        .args([
            "crl",
            "-inform",
            "DER",
            "-in",
            p(&der),
            "-noout",
            "-text",
            "-CAfile",
            p(&old_ca),
        ])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && text.contains("verify OK"), "{text}");
    assert!(text.contains("Serial Number"), "{text}");
    fails_with(
        &["crl", "--dir", d, "--ca", "abcdef"],
        "no issuing CA with serial",
    );
}
