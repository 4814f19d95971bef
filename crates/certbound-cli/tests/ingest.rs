//! `certbound ingest` end to end with real processes: `certbound serve`
//! (embedded MQTT with mTLS), a device publishing sealed telemetry with
//! `mosquitto_pub` (a client we did not write), and the ingester verifying it.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use certbound_proto::crypto::P256Signer;
use certbound_proto::telemetry::{TelemetryPayload, seal};
use common::*;

#[test]
fn ingest_verifies_telemetry_published_by_mosquitto_pub() {
    let has = |b: &str| {
        Command::new(b)
            .arg("--help")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    };
    if !has("mosquitto_pub") {
        return skip_or_fail("mosquitto_pub (Debian package mosquitto-clients)");
    }
    let qs = QuickStart::new();
    let services = qs.tmp.path().join("services");
    let out = ok(&[
        "service",
        "provision",
        "--dir",
        qs.d(),
        "--name",
        "ingest",
        "--out",
        services.to_str().unwrap(),
        "--json",
    ]);
    assert!(out.contains("\"id\": \"ingest\""), "{out}");
    let serve = Serve::start(&qs.dir);

    let mut ingest = Command::new(BIN)
        .args([
            "ingest",
            "--dir",
            qs.d(),
            "--mqtt",
            &serve.mqtt,
            "--audience",
            API,
            "--max-messages",
            "2",
        ])
        .arg("--service-cert")
        .arg(services.join("ingest.cert.pem"))
        .arg("--service-key")
        .arg(services.join("ingest.key.pem"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stderr = ingest.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("{line}");
            let _ = tx.send(line);
        }
    });
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("ingest subscribes");
        if line == "ingest: subscribed" {
            break;
        }
    }

    // The device gets a token over CoAP and seals two readings with its key.
    let token = qs.request(&serve, "sensor-1", "telemetry:write");
    assert!(token.status.success());
    let token = hex::decode(String::from_utf8(token.stdout).unwrap().trim()).unwrap();
    let cti = certbound_proto::token::UnverifiedToken::parse(&token, Default::default())
        .unwrap()
        .unverified_claims(Default::default())
        .unwrap()
        .cti
        .unwrap();
    let key =
        P256Signer::from_pkcs8_pem(&std::fs::read_to_string(qs.file("sensor-1.key.pem")).unwrap())
            .unwrap();
    let envelope = |seq: u64, text: &str| {
        let p = TelemetryPayload {
            seq,
            timestamp_ms: 1_700_000_000_000 + seq,
            data: text.as_bytes().to_vec(),
            token_cti: cti.clone(),
        };
        let path = qs.tmp.path().join(format!("env-{seq}.cbor"));
        std::fs::write(&path, seal(&token, &p, &key).unwrap()).unwrap();
        path
    };
    let first = envelope(1, "temperature=21.5");
    let second = envelope(2, "temperature=21.7");
    let (host, port) = serve.mqtt.rsplit_once(':').unwrap();
    let chain = qs.dir.join("pki/ca-chain.pem");
    // The second publish of `first` is a replay and must be refused.
    for file in [&first, &first, &second] {
        let status = Command::new("mosquitto_pub")
            .args([
                "-h",
                host,
                "-p",
                port,
                "-q",
                "1",
                "-i",
                "sensor-1",
                "-t",
                "cb/v1/sensor-1/telemetry",
                "-f",
            ])
            .arg(file)
            .arg("--cafile")
            .arg(&chain)
            .arg("--cert")
            .arg(qs.file("sensor-1.cert.pem"))
            .arg("--key")
            .arg(qs.file("sensor-1.key.pem"))
            .status()
            .unwrap();
        assert!(status.success(), "mosquitto_pub failed");
    }

    let output = ingest.wait_with_output().unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert_eq!(lines[0]["device"], "sensor-1");
    assert_eq!(lines[0]["seq"], 1);
    assert_eq!(lines[0]["data"]["text"], "temperature=21.5");
    assert_eq!(lines[1]["seq"], 2);
    let log: Vec<String> = rx.try_iter().collect();
    assert!(
        log.iter().any(|l| l.contains("rejected 1 (replay)")),
        "{log:?}"
    );
}
