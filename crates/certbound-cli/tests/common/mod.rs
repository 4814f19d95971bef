//! Helpers shared by the CLI integration tests: run the real `certbound`
//! binary, a quick-start data directory, a running `certbound serve`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_certbound");
pub const ISSUER: &str = "https://auth.example.com";
pub const API: &str = "https://telemetry.example.com";

pub fn certbound(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("run certbound")
}

pub fn ok(args: &[&str]) -> String {
    let out = certbound(args);
    assert!(
        out.status.success(),
        "certbound {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

pub fn skip_or_fail(what: &str) {
    if std::env::var("CERTBOUND_REQUIRE_ALL").as_deref() == Ok("1") {
        panic!("{what} is required (CERTBOUND_REQUIRE_ALL=1) but missing");
    }
    eprintln!(
        "\n*** SKIPPED: {what} is missing; run .ci/run or install it to run this check ***\n"
    );
}

/// The Python interpreter that can import every module of `modules`, if any.
pub fn python_with(modules: &[&str]) -> Option<PathBuf> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let candidates = [
        std::env::var_os("CERTBOUND_PYTHON").map(PathBuf::from),
        Some(workspace.join(".venv/bin/python")),
        Some(PathBuf::from("python3")),
    ];
    let import = format!("import {}", modules.join(", "));
    candidates.into_iter().flatten().find(|p| {
        Command::new(p)
            .args(["-c", &import])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// The Python interpreter with the interop packages, if any.
pub fn python() -> Option<PathBuf> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let candidates = [
        std::env::var_os("CERTBOUND_PYTHON").map(PathBuf::from),
        Some(workspace.join(".venv/bin/python")),
        Some(PathBuf::from("python3")),
    ];
    candidates.into_iter().flatten().find(|p| {
        Command::new(p)
            .args(["-c", "import cwt, cryptography"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// A running `certbound serve`, killed on drop.
pub struct Serve {
    child: Child,
    /// CoAP address.
    pub addr: String,
    /// Embedded MQTT address.
    pub mqtt: String,
    /// HTTPS base URL (`https://127.0.0.1:port`).
    pub https: String,
}

impl Serve {
    pub fn start(dir: &Path) -> Self {
        let mut child = Command::new(BIN)
            .args([
                "serve",
                "--dir",
                dir.to_str().unwrap(),
                "--coap-listen",
                "127.0.0.1:0",
                "--mqtt-listen",
                "127.0.0.1:0",
                "--https-listen",
                "127.0.0.1:0",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn certbound serve");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("serve announces its address");
        let addr = line
            .strip_prefix("certbound serving: coap=udp://")
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        let mqtt = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("mqtt=mqtts://"))
            .unwrap_or_default()
            .to_string();
        let https = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("https="))
            .unwrap_or_default()
            .to_string();
        Serve {
            child,
            addr,
            mqtt,
            https,
        }
    }
}

impl Serve {
    /// Sends SIGTERM (what systemd and `docker stop` send) and waits for the
    /// exit ([`terminate`]).
    pub fn terminate(mut self) -> std::process::ExitStatus {
        terminate(&mut self.child)
    }
}

/// Sends SIGTERM to `child` and waits up to 60 s for its exit.
pub fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no exit within 60 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Serve {
    /// Kills the process with SIGKILL (no shutdown, nothing flushed) and
    /// waits for it to be gone.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL certbound serve");
        self.child.wait().expect("reap certbound serve");
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct QuickStart {
    pub tmp: tempfile::TempDir,
    pub dir: PathBuf,
    pub devices: PathBuf,
}

impl QuickStart {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cb");
        let devices = tmp.path().join("devices");
        let d = dir.to_str().unwrap();
        ok(&["init", "--dir", d, "--issuer-id", ISSUER]);
        ok(&[
            "api",
            "create",
            "--dir",
            d,
            "--id",
            API,
            "--scopes",
            "telemetry:write firmware:read",
            "--ttl",
            "3600",
        ]);
        ok(&[
            "group",
            "create",
            "--dir",
            d,
            "--name",
            "sensors",
            "--grant",
            &format!("{API}=telemetry:write"),
        ]);
        ok(&[
            "device",
            "provision",
            "--dir",
            d,
            "--id",
            "sensor-1",
            "--group",
            "sensors",
            "--out",
            devices.to_str().unwrap(),
        ]);
        QuickStart { tmp, dir, devices }
    }

    pub fn d(&self) -> &str {
        self.dir.to_str().unwrap()
    }

    pub fn file(&self, name: &str) -> String {
        self.devices.join(name).to_str().unwrap().to_string()
    }

    pub fn request(&self, serve: &Serve, device: &str, scope: &str) -> Output {
        certbound(&[
            "token",
            "request",
            "--dir",
            self.d(),
            "--broker",
            &serve.addr,
            "--device-key",
            &self.file(&format!("{device}.key.pem")),
            "--device-cert",
            &self.file(&format!("{device}.cert.pem")),
            "--aud",
            API,
            "--scope",
            scope,
        ])
    }
}
