//! The deployment files in `deploy/`: the systemd unit passes
//! `systemd-analyze verify`, and the command line it runs starts the broker,
//! which stops cleanly on the SIGTERM systemd sends.

mod common;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{BIN, ISSUER, QuickStart, Serve, ok, skip_or_fail};

fn unit_text() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/certbound.service");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The unit with `ExecStart` pointing at the binary under test.
fn unit_for_test() -> String {
    unit_text().replace("/usr/local/bin/certbound", BIN)
}

fn exec_start_args() -> Vec<String> {
    let text = unit_text();
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("the unit has an ExecStart line");
    let mut words = line.split_whitespace().map(str::to_string);
    assert_eq!(words.next().as_deref(), Some("/usr/local/bin/certbound"));
    words.collect()
}

fn systemd_analyze() -> bool {
    let found = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        skip_or_fail("systemd-analyze (package systemd)");
    }
    found
}

fn verify(unit: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("certbound.service");
    std::fs::write(&file, unit).unwrap();
    Command::new("systemd-analyze")
        .arg("verify")
        .arg(&file)
        .output()
        .expect("run systemd-analyze")
}

#[test]
fn systemd_unit_passes_systemd_analyze_verify() {
    if !systemd_analyze() {
        return;
    }
    let out = verify(&unit_for_test());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("certbound.service:"),
        "systemd-analyze verify: {stderr}"
    );
    // The check has teeth: a misspelt directive fails it.
    let broken = unit_for_test().replace("NoNewPrivileges=yes", "NoNewPrivileges=perhaps");
    let line = 1 + broken
        .lines()
        .position(|l| l.starts_with("NoNewPrivileges="))
        .unwrap();
    let out = verify(&broken);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("certbound.service:{line}:")) && stderr.contains("perhaps"),
        "a broken unit passed: {stderr}"
    );
}

#[test]
fn the_units_command_line_serves_and_stops_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cb");
    ok(&[
        "init",
        "--dir",
        dir.to_str().unwrap(),
        "--issuer-id",
        ISSUER,
    ]);
    // As systemd runs it: CERTBOUND_DIR from Environment=, ExecStart's
    // arguments (listeners on free ports for the test).
    let mut child = Command::new(BIN)
        .args(exec_start_args())
        .args([
            "--coap-listen",
            "127.0.0.1:0",
            "--mqtt-listen",
            "127.0.0.1:0",
            "--https-listen",
            "127.0.0.1:0",
        ])
        .env("CERTBOUND_DIR", &dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn certbound");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let first = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("serve announces its addresses");
    assert!(first.starts_with("certbound serving:"), "{first}");
    let stderr = child.stderr.take().unwrap();
    let logs = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    let status = common::terminate(&mut child);
    let logs = logs.join().unwrap();
    assert!(status.success(), "exit {status:?} after SIGTERM: {logs:?}");
    // --log-format json: every log line is one JSON object.
    assert!(!logs.is_empty(), "no logs with -v");
    for line in &logs {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "not JSON: {line}"
        );
    }
}

/// SIGTERM flushes what the broker queued: a refusal's audit event, written
/// in batches, is in the store once the process has exited, however soon
/// after the request the signal came.
#[test]
fn sigterm_flushes_queued_audit_events() {
    let qs = QuickStart::new();
    let serve = Serve::start(&qs.dir);
    // firmware:read is not granted to the group: refused, and audited.
    let out = qs.request(&serve, "sensor-1", "firmware:read");
    assert!(!out.status.success(), "an ungranted scope was granted");
    let status = serve.terminate();
    assert!(status.success(), "exit {status:?} after SIGTERM");
    let audit = ok(&[
        "audit",
        "tail",
        "--dir",
        qs.d(),
        "--json",
        "--device",
        "sensor-1",
    ]);
    assert!(
        audit.contains("token.refused") && audit.contains("invalid_scope"),
        "the refusal was not flushed before exit: {audit}"
    );
}
