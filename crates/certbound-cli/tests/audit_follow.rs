//! `certbound audit tail --follow` with the real binary: it keeps printing
//! events appended by another command, filtered by `--device`.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;

/// A spawned `audit tail --follow`, killed on drop.
struct Follow {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Follow {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(BIN)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn certbound audit tail --follow");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Self { child, lines }
    }

    /// The next line that satisfies `want`, within `timeout`; the lines
    /// skipped on the way are returned too.
    fn wait_for(
        &self,
        timeout: Duration,
        want: impl Fn(&str) -> bool,
    ) -> (Option<String>, Vec<String>) {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) if want(&line) => return (Some(line), seen),
                Ok(line) => seen.push(line),
                Err(_) => break,
            }
        }
        (None, seen)
    }
}

impl Drop for Follow {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn follow_prints_new_events_for_the_device() {
    let qs = QuickStart::new();
    ok(&[
        "device",
        "provision",
        "--dir",
        qs.d(),
        "--id",
        "sensor-2",
        "--group",
        "sensors",
        "--out",
        qs.devices.to_str().unwrap(),
    ]);
    let follow = Follow::start(&[
        "audit",
        "tail",
        "--dir",
        qs.d(),
        "--device",
        "sensor-1",
        "--json",
        "--follow",
    ]);
    let event = |line: &str| -> serde_json::Value {
        serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON: {line:?}: {e}"))
    };
    // The existing events come first: sensor-1's provisioning.
    let (first, _) = follow.wait_for(Duration::from_secs(20), |l| {
        event(l)["action"] == "device.provisioned"
    });
    let first = first.expect("the existing provisioning event");
    assert_eq!(event(&first)["subject"], "sensor-1");

    // Another process changes sensor-2 (filtered out) and then sensor-1.
    ok(&[
        "device",
        "suspend",
        "--dir",
        qs.d(),
        "sensor-2",
        "--reason",
        "test",
    ]);
    ok(&[
        "device",
        "suspend",
        "--dir",
        qs.d(),
        "sensor-1",
        "--reason",
        "lost",
    ]);
    let (suspended, skipped) = follow.wait_for(Duration::from_secs(20), |l| {
        event(l)["action"] == "device.suspended"
    });
    let suspended = suspended.unwrap_or_else(|| panic!("no suspension printed; saw {skipped:?}"));
    assert_eq!(event(&suspended)["subject"], "sensor-1");
    assert!(
        skipped.iter().all(|l| event(l)["subject"] == "sensor-1"),
        "--device filters the followed events: {skipped:?}"
    );

    // And it keeps following.
    ok(&["device", "resume", "--dir", qs.d(), "sensor-1"]);
    let (resumed, skipped) = follow.wait_for(Duration::from_secs(20), |l| {
        event(l)["action"] == "device.resumed"
    });
    assert!(resumed.is_some(), "no resumption printed; saw {skipped:?}");
}

#[test]
fn follow_in_text_form_prints_appended_lines() {
    let qs = QuickStart::new();
    let follow = Follow::start(&["audit", "tail", "--dir", qs.d(), "-n", "1", "--follow"]);
    let (_, _) = follow.wait_for(Duration::from_secs(20), |l| {
        l.contains("device.provisioned")
    });
    ok(&["device", "suspend", "--dir", qs.d(), "sensor-1"]);
    let (line, skipped) =
        follow.wait_for(Duration::from_secs(20), |l| l.contains("device.suspended"));
    let line = line.unwrap_or_else(|| panic!("no suspension printed; saw {skipped:?}"));
    assert!(line.contains("sensor-1"), "{line}");
}
