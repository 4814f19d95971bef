//! `certbound device provision --count N --prefix P` with the real binary:
//! the summary line, `--json`, argument rules, Ctrl-C (SIGINT) and resuming,
//! and a bulk-provisioned device getting a token.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn manifest_ids(out: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(out.join("manifest.csv")).unwrap_or_default();
    text.lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().to_string())
        .collect()
}

#[test]
fn bulk_provisioning_prints_its_rate_resumes_and_refuses_taken_ids() {
    let qs = QuickStart::new();
    let batch = qs.tmp.path().join("batch");
    let b = batch.to_str().unwrap();
    let args = [
        "device",
        "provision",
        "--dir",
        qs.d(),
        "--count",
        "25",
        "--prefix",
        "sensor-",
        "--start",
        "2",
        "--group",
        "sensors",
        "--out",
        b,
        "--batch-size",
        "10",
    ];
    let text = ok(&args);
    let first = text.lines().next().unwrap();
    assert!(
        first.starts_with("Provisioned 25 devices (sensor-2..sensor-26) in ")
            && first.contains(" devices/s with "),
        "{text}"
    );
    assert!(text.contains("time per device: keygen"), "{text}");
    assert!(batch.join("0000/sensor-26.key.pem").exists());
    assert_eq!(manifest_ids(&batch).len(), 25);

    // The same command again: nothing to do; --json.
    let mut json_args = args.to_vec();
    json_args.push("--json");
    let report: serde_json::Value = serde_json::from_str(&ok(&json_args)).unwrap();
    assert_eq!(report["provisioned"], 0);
    assert_eq!(report["already_provisioned"], 25);
    assert_eq!(report["interrupted"], false);
    assert!(report["rate_per_sec"].is_number() && report["elapsed_secs"].is_number());
    assert_eq!(
        report["manifest_csv"],
        batch.join("manifest.csv").to_str().unwrap()
    );

    // sensor-1 was provisioned on its own by the quick start: refused, naming it.
    let out = certbound(&[
        "device",
        "provision",
        "--dir",
        qs.d(),
        "--count",
        "3",
        "--prefix",
        "sensor-",
        "--out",
        b,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("sensor-1") && stderr.contains("nothing was issued"),
        "{stderr}"
    );
    assert_eq!(manifest_ids(&batch).len(), 25);

    // A bulk device's key and certificate work for a token request.
    let serve = Serve::start(&qs.dir);
    let out = certbound(&[
        "token",
        "request",
        "--dir",
        qs.d(),
        "--broker",
        &serve.addr,
        "--device-key",
        batch.join("0000/sensor-7.key.pem").to_str().unwrap(),
        "--device-cert",
        batch.join("0000/sensor-7.cert.pem").to_str().unwrap(),
        "--aud",
        API,
        "--scope",
        "telemetry:write",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn count_needs_prefix_and_excludes_id() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    for (args, needle) in [
        (vec!["--count", "5"], "--prefix"),
        (
            vec!["--count", "5", "--prefix", "a-", "--id", "x"],
            "cannot be used with",
        ),
        (vec!["--prefix", "a-"], "--count"),
        (vec!["--count", "0", "--prefix", "a-"], "0"),
        (vec![], "--id"),
    ] {
        let mut full = vec!["device", "provision", "--dir", d];
        full.extend(args.iter().copied());
        let out = certbound(&full);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

#[test]
fn sigint_finishes_the_batch_and_the_same_command_resumes() {
    let qs = QuickStart::new();
    let batch = qs.tmp.path().join("batch");
    let args = [
        "device",
        "provision",
        "--dir",
        qs.d(),
        "--count",
        "6000",
        "--prefix",
        "s-",
        "--group",
        "sensors",
        "--out",
        batch.to_str().unwrap(),
        "--batch-size",
        "100",
    ];
    let child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the first committed batch, then Ctrl-C.
    let deadline = Instant::now() + Duration::from_secs(60);
    while manifest_ids(&batch).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let first = manifest_ids(&batch);
    if out.status.success() {
        // The whole run finished before the signal arrived; nothing to resume.
        eprintln!("note: the run finished before SIGINT arrived");
        assert_eq!(first.len(), 6000);
        return;
    }
    assert_eq!(out.status.code(), Some(130), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!(
            "interrupted after {} devices; run the same command again to resume",
            first.len()
        )),
        "{stderr}"
    );
    assert!(stdout.starts_with("Interrupted: provisioned "), "{stdout}");
    assert!(
        first.len().is_multiple_of(100) && first.len() < 6000,
        "{}",
        first.len()
    );

    let text = ok(&args);
    assert!(
        text.contains(&format!(
            "resumed: {} already provisioned into this folder were skipped",
            first.len()
        )),
        "{text}"
    );
    let all = manifest_ids(&batch);
    assert_eq!(all.len(), 6000);
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), 6000);
    let listed: serde_json::Value =
        serde_json::from_str(&ok(&["device", "list", "--dir", qs.d(), "--json"])).unwrap();
    let registered = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["id"].as_str().unwrap().starts_with("s-"))
        .count();
    assert_eq!(registered, 6000);
}
