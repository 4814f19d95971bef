//! `certbound ingest` end to end with real processes: `certbound serve`
//! (embedded MQTT with mTLS, HTTPS status lists), devices publishing sealed
//! telemetry with `mosquitto_pub` (a client we did not write), and the
//! ingester verifying it — replays, revoked devices, and replays after the
//! ingester restarted.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use certbound_proto::crypto::P256Signer;
use certbound_proto::telemetry::{TelemetryPayload, seal};
use common::*;

fn has(b: &str) -> bool {
    Command::new(b)
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// A service identity for the ingester.
fn provision_service(qs: &QuickStart) -> PathBuf {
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
    services
}

/// Starts `certbound ingest` stopping after `max` messages; returns it once
/// subscribed, with its stderr lines.
fn start_ingest(
    qs: &QuickStart,
    serve: &Serve,
    services: &std::path::Path,
    max: u64,
) -> (Child, mpsc::Receiver<String>) {
    let mut ingest = Command::new(BIN)
        .args(["ingest", "--dir", qs.d(), "--mqtt", &serve.mqtt, "--audience", API])
        .args(["--broker-url", &serve.https, "--max-messages", &max.to_string()])
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
            .recv_timeout(Duration::from_secs(30))
            .expect("ingest subscribes");
        if line == "ingest: subscribed" {
            break;
        }
    }
    (ingest, rx)
}

/// A device's token (over CoAP) and a sealer of its telemetry into files.
struct Sender<'a> {
    qs: &'a QuickStart,
    device: String,
    token: Vec<u8>,
    cti: Vec<u8>,
    key: P256Signer,
}

impl<'a> Sender<'a> {
    fn new(qs: &'a QuickStart, serve: &Serve, device: &str) -> Self {
        let token = qs.request(serve, device, "telemetry:write");
        assert!(token.status.success(), "{token:?}");
        let token = hex::decode(String::from_utf8(token.stdout).unwrap().trim()).unwrap();
        let cti = certbound_proto::token::UnverifiedToken::parse(&token, Default::default())
            .unwrap()
            .unverified_claims(Default::default())
            .unwrap()
            .cti
            .unwrap();
        let key = P256Signer::from_pkcs8_pem(
            &std::fs::read_to_string(qs.file(&format!("{device}.key.pem"))).unwrap(),
        )
        .unwrap();
        Sender {
            qs,
            device: device.into(),
            token,
            cti,
            key,
        }
    }

    fn envelope(&self, seq: u64, text: &str) -> PathBuf {
        let p = TelemetryPayload {
            seq,
            timestamp_ms: 1_700_000_000_000 + seq,
            data: text.as_bytes().to_vec(),
            token_cti: self.cti.clone(),
        };
        let path = self
            .qs
            .tmp
            .path()
            .join(format!("env-{}-{seq}.cbor", self.device));
        std::fs::write(&path, seal(&self.token, &p, &self.key).unwrap()).unwrap();
        path
    }

    /// Publishes `file` on the device's telemetry topic with mosquitto_pub.
    fn publish(&self, serve: &Serve, file: &PathBuf) {
        let (host, port) = serve.mqtt.rsplit_once(':').unwrap();
        let chain = self.qs.dir.join("pki/ca-chain.pem");
        let status = Command::new("mosquitto_pub")
            .args(["-h", host, "-p", port, "-q", "1", "-i", &self.device])
            .args(["-t", &format!("cb/v1/{}/telemetry", self.device), "-f"])
            .arg(file)
            .arg("--cafile")
            .arg(&chain)
            .arg("--cert")
            .arg(self.qs.file(&format!("{}.cert.pem", self.device)))
            .arg("--key")
            .arg(self.qs.file(&format!("{}.key.pem", self.device)))
            .status()
            .unwrap();
        assert!(status.success(), "mosquitto_pub failed");
    }
}

/// Waits for the ingester to exit; returns its JSON lines and stderr lines.
fn finish(ingest: Child, rx: &mpsc::Receiver<String>) -> (Vec<serde_json::Value>, Vec<String>) {
    let output = ingest.wait_with_output().unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (lines, rx.try_iter().collect())
}

/// Polls the broker's status list (HTTPS) until `token`'s entry is revoked.
fn wait_revoked(qs: &QuickStart, serve: &Serve, token: &[u8]) {
    use certbound_verify::http::{Authenticator, HttpsFetcher, StatusCheck, VerifyConfig};
    let status = certbound_proto::token::UnverifiedToken::parse(token, Default::default())
        .unwrap()
        .unverified_claims(Default::default())
        .unwrap()
        .status
        .expect("device tokens are revocable");
    let ca = std::fs::read_to_string(qs.dir.join("pki/ca-chain.pem")).unwrap();
    let tls = certbound_verify::http::client_tls_config(&ca, None).unwrap();
    let mut cache =
        certbound_verify::status::StatusCacheConfig::new(format!("{}/status-lists/", serve.https));
    cache.min_ttl = 0;
    cache.default_ttl = 0;
    cache.max_ttl = 0;
    cache.retry_after_failure = 0;
    let mut keys = certbound_verify::KeySet::new();
    let dir = certbound_broker::config::DataDir::new(&qs.dir);
    for (kid, key) in certbound_broker::keys::public_keys(&dir.keys()).unwrap() {
        keys.insert(kid, key).unwrap();
    }
    let auth = Authenticator::new(VerifyConfig::new(
        certbound_verify::VerifierConfig::new(API).with_issuer("unused"),
        keys,
        StatusCheck::Fetch {
            cache,
            fetcher: HttpsFetcher::new(tls, Duration::from_secs(10), 1 << 20),
        },
    ))
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for _ in 0..300 {
        if rt.block_on(auth.check_status_ref(&status)) == Err(certbound_verify::VerifyError::Revoked) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the revocation never reached the status list");
}

#[test]
fn ingest_verifies_telemetry_published_by_mosquitto_pub() {
    if !has("mosquitto_pub") {
        return skip_or_fail("mosquitto_pub (Debian package mosquitto-clients)");
    }
    let qs = QuickStart::new();
    let services = provision_service(&qs);
    let serve = Serve::start(&qs.dir);
    let (ingest, rx) = start_ingest(&qs, &serve, &services, 2);

    // The device gets a token over CoAP and seals two readings with its key.
    let sensor = Sender::new(&qs, &serve, "sensor-1");
    let first = sensor.envelope(1, "temperature=21.5");
    let second = sensor.envelope(2, "temperature=21.7");
    // The second publish of `first` is a replay and must be refused.
    for file in [&first, &first, &second] {
        sensor.publish(&serve, file);
    }
    let (lines, log) = finish(ingest, &rx);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["device"], "sensor-1");
    assert_eq!(lines[0]["seq"], 1);
    assert_eq!(lines[0]["data"]["text"], "temperature=21.5");
    assert_eq!(lines[1]["seq"], 2);
    assert!(
        log.iter().any(|l| l.contains("rejected 1 (replay)")),
        "{log:?}"
    );
}

/// Issue 11: a revoked device's telemetry is refused (status lists), and
/// after a restart of the ingester an already accepted seq is still a replay
/// (persisted windows).
#[test]
fn ingest_refuses_revoked_devices_and_replays_after_a_restart() {
    if !has("mosquitto_pub") {
        return skip_or_fail("mosquitto_pub (Debian package mosquitto-clients)");
    }
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
    let services = provision_service(&qs);
    let serve = Serve::start(&qs.dir);
    let sensor = Sender::new(&qs, &serve, "sensor-1");
    let doomed = Sender::new(&qs, &serve, "sensor-2");

    // First run: seq 1 accepted.
    let (ingest, rx) = start_ingest(&qs, &serve, &services, 1);
    sensor.publish(&serve, &sensor.envelope(1, "before restart"));
    let (lines, _) = finish(ingest, &rx);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["seq"], 1);

    // sensor-2 is revoked (its token was issued before); wait until the
    // broker's status list says so.
    ok(&["device", "revoke", "--dir", qs.d(), "sensor-2"]);
    wait_revoked(&qs, &serve, &doomed.token);

    // Second run: the replayed seq 1 and the revoked device are refused;
    // the new seq 2 is accepted.
    let (ingest, rx) = start_ingest(&qs, &serve, &services, 1);
    sensor.publish(&serve, &sensor.envelope(1, "before restart"));
    doomed.publish(&serve, &doomed.envelope(1, "from a revoked device"));
    sensor.publish(&serve, &sensor.envelope(2, "after restart"));
    let (lines, log) = finish(ingest, &rx);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["device"], "sensor-1");
    assert_eq!(lines[0]["seq"], 2, "{lines:?} {log:?}");
    assert!(
        log.iter().any(|l| l.contains("replay window(s) restored")),
        "{log:?}"
    );
    assert!(
        log.iter().any(|l| l.contains("rejected 1 (replay)")),
        "{log:?}"
    );
    assert!(
        log.iter().any(|l| l.contains("rejected 1 (revoked)")),
        "{log:?}"
    );
}
