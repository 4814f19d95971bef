//! Keys at rest with the real binary: `init --root-key-out`, `ca rotate-issuing
//! --root-key`, `keys encrypt` with `CERTBOUND_KEY_ENCRYPTION_KEY`, and
//! `certbound serve` refusing encrypted keys without (or with the wrong) key
//! encryption key, with nothing secret on its stderr (`-vvv`).

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{API, BIN, ISSUER, QuickStart, certbound, ok};

const ENV: &str = "CERTBOUND_KEY_ENCRYPTION_KEY";
const KEK: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const WRONG_KEK: &str = "HxwdHhscGRgXFhUUExIREA8ODQwLCgkIBwYFBAMCAQA=";

fn with_env(args: &[&str], kek: Option<&str>) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_remove(ENV);
    if let Some(k) = kek {
        cmd.env(ENV, k);
    }
    cmd.output().expect("run certbound")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

fn serve_args(dir: &str) -> Vec<&str> {
    vec![
        "-vvv",
        "serve",
        "--dir",
        dir,
        "--coap-listen",
        "127.0.0.1:0",
        "--mqtt-listen",
        "127.0.0.1:0",
        "--https-listen",
        "127.0.0.1:0",
    ]
}

#[test]
fn root_key_kept_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cb").display().to_string();
    let root_key = tmp.path().join("offline/root.key.pem");
    std::fs::create_dir(tmp.path().join("offline")).unwrap();
    let root = root_key.display().to_string();
    let out = ok(&[
        "init",
        "--dir",
        &dir,
        "--issuer-id",
        ISSUER,
        "--root-key-out",
        &root,
    ]);
    assert!(out.contains("move it offline"), "{out}");
    assert!(root_key.exists());
    assert!(
        !std::path::Path::new(&dir)
            .join("pki/root-ca.key.pem")
            .exists()
    );

    let out = certbound(&["ca", "rotate-issuing", "--dir", &dir]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("root CA key is not available"), "{err}");
    assert!(err.contains("--root-key PATH"), "{err}");

    let out = ok(&["ca", "rotate-issuing", "--dir", &dir, "--root-key", &root]);
    assert!(out.contains("New issuing CA"), "{out}");
    let v: serde_json::Value =
        serde_json::from_str(&ok(&["doctor", "--dir", &dir, "--json"])).unwrap();
    assert_eq!(v["exit_code"], 0, "{v:#}");

    // The default keeps the root key online: doctor warns.
    let online = tmp.path().join("online").display().to_string();
    ok(&["init", "--dir", &online, "--issuer-id", ISSUER]);
    let out = certbound(&["doctor", "--dir", &online, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let findings = v["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{v:#}");
    assert_eq!(findings[0]["check"], "root-key-online");
    assert_eq!(findings[0]["severity"], "warning");
}

#[test]
fn encrypted_keys_and_serve() {
    let qs = QuickStart::new();
    let d = qs.d().to_string();

    // No key encryption key: a clear refusal, nothing changed.
    let out = with_env(&["keys", "encrypt", "--dir", &d], None);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no key encryption key is configured"),
        "{}",
        stderr(&out)
    );

    let out = with_env(&["keys", "encrypt", "--dir", &d, "--json"], Some(KEK));
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let files: Vec<String> = v["encrypted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect();
    assert!(
        files.iter().any(|f| f.ends_with("pki/issuing-ca.key.pem")),
        "{files:?}"
    );
    assert!(
        files.iter().any(|f| f.ends_with("pki/root-ca.key.pem")),
        "{files:?}"
    );
    assert!(files.iter().any(|f| f.contains("/keys/")), "{files:?}");
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        assert!(
            text.starts_with("-----BEGIN CERTBOUND ENCRYPTED PRIVATE KEY-----"),
            "{f}"
        );
    }
    let out = with_env(&["keys", "encrypt", "--dir", &d], Some(KEK));
    assert!(String::from_utf8_lossy(&out.stdout).contains("encrypted already"));

    // serve without the key, or with another key: refuses to start, naming the file.
    let out = with_env(&serve_args(&d), None);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("is an encrypted private key"), "{err}");
    assert!(err.contains(ENV), "{err}");
    let out = with_env(&serve_args(&d), Some(WRONG_KEK));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("could not be decrypted"), "{err}");
    assert!(err.contains(&d), "{err}");
    let out = with_env(&serve_args(&d), Some("c2hvcnQ="));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not 32"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("c2hvcnQ="), "{}", stderr(&out));

    // With the key: serves; device provisioning and tokens work; stderr holds no secret.
    let out = with_env(
        &[
            "device",
            "provision",
            "--dir",
            &d,
            "--id",
            "sensor-2",
            "--group",
            "sensors",
            "--out",
            qs.devices.to_str().unwrap(),
        ],
        Some(KEK),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let mut child = Command::new(BIN)
        .args(serve_args(&d))
        .env(ENV, KEK)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s);
        s
    });
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("serve starts");
    let addr = line
        .strip_prefix("certbound serving: coap=udp://")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    for device in ["sensor-1", "sensor-2"] {
        let out = certbound(&[
            "token",
            "request",
            "--dir",
            &d,
            "--broker",
            &addr,
            "--device-key",
            &qs.file(&format!("{device}.key.pem")),
            "--device-cert",
            &qs.file(&format!("{device}.cert.pem")),
            "--aud",
            API,
            "--scope",
            "telemetry:write",
        ]);
        assert!(out.status.success(), "{device}: {}", stderr(&out));
    }
    let _ = child.kill();
    let _ = child.wait();
    let log = err_reader.join().unwrap();
    assert!(log.contains("certbound broker started"), "{log}");
    assert!(!log.contains(KEK), "the key encryption key is in the log");
    assert!(!log.contains("PRIVATE KEY"), "a private key is in the log");
    let device_key = std::fs::read_to_string(qs.file("sensor-1.key.pem")).unwrap();
    for l in device_key.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!log.contains(l), "the device key is in the log");
    }
}
