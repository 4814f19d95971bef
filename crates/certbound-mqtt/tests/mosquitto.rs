//! Interoperability with the Mosquitto command-line clients
//! (`mosquitto_pub`, `mosquitto_sub`, package mosquitto-clients).
#![allow(missing_docs)]

mod common;

use std::io::BufRead as _;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use certbound_mqtt::MqttServer;
use common::{GUARD, Pki, connect};
use rumqttc::QoS;
use tokio::sync::mpsc;

/// True when the Mosquitto clients can run; otherwise says so loudly, or
/// fails when `CERTBOUND_REQUIRE_ALL=1`.
fn mosquitto_available() -> bool {
    let found = ["mosquitto_pub", "mosquitto_sub", "stdbuf"]
        .iter()
        .all(|tool| {
            Command::new(tool)
                .arg("--help")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok()
        });
    if !found {
        if std::env::var("CERTBOUND_REQUIRE_ALL").as_deref() == Ok("1") {
            panic!(
                "mosquitto-clients (or coreutils' stdbuf) not installed and CERTBOUND_REQUIRE_ALL=1"
            );
        }
        eprintln!("*** SKIPPED: mosquitto-clients not installed (or no stdbuf) ***");
    }
    found
}

/// `--cafile`, `--cert`, `--key` files of one device.
struct Files {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn device_files(pki: &Pki, id: &str) -> Files {
    let bundle = pki.device(id);
    let dir = pki.tmp.path();
    let files = Files {
        ca: dir.join("ca.pem"),
        cert: dir.join(format!("{id}.cert.pem")),
        key: dir.join(format!("{id}.key.pem")),
    };
    std::fs::write(&files.ca, &pki.chain_pem).expect("write ca");
    std::fs::write(&files.cert, &bundle.chain_pem).expect("write cert");
    std::fs::write(&files.key, &bundle.key_pkcs8_pem).expect("write key");
    files
}

/// `tool` with the connection options; `line_buffered` runs it through
/// `stdbuf -oL` so that its `-d` output arrives line by line.
fn command(
    tool: &str,
    line_buffered: bool,
    server: &MqttServer,
    files: &Files,
    client_id: &str,
) -> Command {
    let mut cmd = if line_buffered {
        let mut cmd = Command::new("stdbuf");
        cmd.args(["-oL", tool]);
        cmd
    } else {
        Command::new(tool)
    };
    cmd.args([
        "-h",
        "localhost",
        "-p",
        &server.local_addr().port().to_string(),
        "-V",
        "mqttv311",
    ])
    .arg("--cafile")
    .arg(&files.ca)
    .arg("--cert")
    .arg(&files.cert)
    .arg("--key")
    .arg(&files.key)
    .args(["-i", client_id]);
    cmd
}

/// Waits for `child` (killing it after [`GUARD`]) without blocking the runtime.
async fn finish(mut child: Child) -> (Output, bool) {
    tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + GUARD;
        let mut killed = false;
        while child.try_wait().ok().flatten().is_none() {
            if Instant::now() >= deadline {
                let _ = child.kill();
                killed = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        (child.wait_with_output().expect("collect output"), killed)
    })
    .await
    .expect("join")
}

async fn mosquitto_pub(
    server: &MqttServer,
    files: &Files,
    topic: &str,
    message: &str,
) -> (Output, bool) {
    let child = command("mosquitto_pub", false, server, files, "pub-sensor-1")
        .args(["-q", "1", "-t", topic, "-m", message])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mosquitto_pub");
    finish(child).await
}

#[tokio::test]
async fn mosquitto_pub_device_reaches_our_service_subscriber_and_nothing_else() {
    if !mosquitto_available() {
        return;
    }
    let pki = Pki::new();
    let server = pki.start().await;
    let files = device_files(&pki, "sensor-1");
    let mut service = connect(&server, &pki, "broker", &pki.service("certbound-broker")).await;
    service
        .subscribe("cb/v1/+/telemetry", QoS::AtLeastOnce)
        .await;

    let (out, killed) = mosquitto_pub(&server, &files, "cb/v1/sensor-1/telemetry", "hello").await;
    assert!(
        !killed && out.status.success(),
        "mosquitto_pub failed: {out:?}"
    );
    let got = service.next_publish().await;
    assert_eq!(
        (got.topic.as_str(), &got.payload[..]),
        ("cb/v1/sensor-1/telemetry", &b"hello"[..])
    );

    // Another device's topic: the server closes the connection, nothing is routed.
    let (out, _) = mosquitto_pub(&server, &files, "cb/v1/sensor-2/telemetry", "forged").await;
    eprintln!("mosquitto_pub to a foreign topic: {out:?}");
    assert!(server.stats().publish_refusals >= 1);

    let (out, killed) = mosquitto_pub(&server, &files, "cb/v1/sensor-1/telemetry", "marker").await;
    assert!(
        !killed && out.status.success(),
        "mosquitto_pub failed: {out:?}"
    );
    let next = service.next_publish().await;
    assert_eq!(
        &next.payload[..],
        b"marker",
        "the forged message must never arrive"
    );
    server.shutdown().await;
}

/// Runs mosquitto_sub with `-d` (line-buffered through `stdbuf`) and
/// forwards its stdout lines.
fn mosquitto_sub(
    server: &MqttServer,
    files: &Files,
    client_id: &str,
    filter: &str,
) -> (Child, mpsc::UnboundedReceiver<String>) {
    let mut child = command("mosquitto_sub", true, server, files, client_id)
        .args(["-d", "-q", "1", "-C", "1", "-W", "10", "-t", filter])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mosquitto_sub");
    let stdout = child.stdout.take().expect("stdout piped");
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    (child, rx)
}

async fn wait_for_line(lines: &mut mpsc::UnboundedReceiver<String>, needle: &str) -> Vec<String> {
    let mut seen = Vec::new();
    tokio::time::timeout(GUARD, async {
        while let Some(line) = lines.recv().await {
            let found = line.contains(needle);
            seen.push(line);
            if found {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no line with {needle:?} in {seen:?}"));
    seen
}

#[tokio::test]
async fn mosquitto_sub_device_gets_its_responses_only_and_is_refused_other_filters() {
    if !mosquitto_available() {
        return;
    }
    let pki = Pki::new();
    let server = pki.start().await;
    let files = device_files(&pki, "sensor-1");
    let service = connect(&server, &pki, "broker", &pki.service("certbound-broker")).await;

    let (child, mut lines) = mosquitto_sub(&server, &files, "sub-1", "cb/v1/sensor-1/token/res");
    wait_for_line(&mut lines, "SUBACK").await;
    service
        .publish(
            "cb/v1/sensor-2/token/res",
            QoS::AtLeastOnce,
            b"not yours".to_vec(),
        )
        .await;
    service
        .publish(
            "cb/v1/sensor-1/token/res",
            QoS::AtLeastOnce,
            b"token-for-1".to_vec(),
        )
        .await;
    let seen = wait_for_line(&mut lines, "token-for-1").await;
    assert!(!seen.iter().any(|l| l.contains("not yours")), "{seen:?}");
    let (out, killed) = finish(child).await;
    assert!(!killed && out.status.success(), "mosquitto_sub: {out:?}");

    // A filter reaching into every device's namespace is refused (SUBACK 0x80).
    let (child, mut lines) = mosquitto_sub(&server, &files, "sub-2", "cb/v1/+/telemetry");
    let seen = wait_for_line(&mut lines, "Subscribed").await;
    assert!(
        seen.last().is_some_and(|l| l.ends_with(": 128")),
        "SUBACK 0x80 expected: {seen:?}"
    );
    let (out, killed) = finish(child).await;
    assert!(
        !killed,
        "mosquitto_sub kept running after a refused subscription: {out:?}"
    );
    assert_eq!(server.stats().subscribe_refusals, 1);
    server.shutdown().await;
}
