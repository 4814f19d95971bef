//! Interoperability with the Mosquitto command-line clients
//! (`mosquitto_pub`, `mosquitto_sub`, package mosquitto-clients).
#![allow(missing_docs)]

mod common;

use std::io::{BufRead as _, Write as _};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use certbound_mqtt::{CertboundAcl, Identity, MqttServer, PeerCert};
use common::{GUARD, Pki, connect, eventually};
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

/// The protocol version a Mosquitto client speaks (`-V`).
#[derive(Debug, Clone, Copy)]
enum Version {
    V311,
    V5,
}

impl Version {
    fn arg(self) -> &'static str {
        match self {
            Version::V311 => "mqttv311",
            Version::V5 => "mqttv5",
        }
    }
}

/// `tool` with the connection options; `line_buffered` runs it through
/// `stdbuf -oL` so that its `-d` output arrives line by line.
fn command(
    tool: &str,
    line_buffered: bool,
    server: &MqttServer,
    files: &Files,
    version: Version,
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
        version.arg(),
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

/// Runs `cmd` to the end (see [`finish`]), collecting stdout and stderr.
async fn run(mut cmd: Command) -> (Output, bool) {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run a mosquitto client");
    finish(child).await
}

async fn mosquitto_pub(
    server: &MqttServer,
    files: &Files,
    version: Version,
    topic: &str,
    message: &str,
) -> (Output, bool) {
    let mut cmd = command(
        "mosquitto_pub",
        false,
        server,
        files,
        version,
        "pub-sensor-1",
    );
    cmd.args(["-q", "1", "-t", topic, "-m", message]);
    run(cmd).await
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

    let (out, killed) = mosquitto_pub(
        &server,
        &files,
        Version::V311,
        "cb/v1/sensor-1/telemetry",
        "hello",
    )
    .await;
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
    let (out, _) = mosquitto_pub(
        &server,
        &files,
        Version::V311,
        "cb/v1/sensor-2/telemetry",
        "forged",
    )
    .await;
    eprintln!("mosquitto_pub to a foreign topic: {out:?}");
    assert!(server.stats().publish_refusals >= 1);

    let (out, killed) = mosquitto_pub(
        &server,
        &files,
        Version::V311,
        "cb/v1/sensor-1/telemetry",
        "marker",
    )
    .await;
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

/// Forwards the lines of `from` (a child's stdout or stderr) to `tx`.
fn forward_lines(from: impl std::io::Read + Send + 'static, tx: mpsc::UnboundedSender<String>) {
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(from).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
}

/// Runs mosquitto_sub with `-d` (line-buffered through `stdbuf`), one `-t`
/// per filter, and forwards its stdout lines.
fn mosquitto_sub(
    server: &MqttServer,
    files: &Files,
    version: Version,
    client_id: &str,
    filters: &[&str],
) -> (Child, mpsc::UnboundedReceiver<String>) {
    let mut cmd = command("mosquitto_sub", true, server, files, version, client_id);
    cmd.args(["-d", "-q", "1", "-C", "1", "-W", "10"]);
    for filter in filters {
        cmd.args(["-t", filter]);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mosquitto_sub");
    let (tx, rx) = mpsc::unbounded_channel();
    forward_lines(child.stdout.take().expect("stdout piped"), tx);
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

/// Waits until every one of `needles` has been a whole line, in any order
/// (stdout and stderr lines interleave); returns the lines read.
async fn wait_for_all(
    lines: &mut mpsc::UnboundedReceiver<String>,
    needles: &[&str],
) -> Vec<String> {
    let mut seen = Vec::new();
    let all_seen = |seen: &[String]| needles.iter().all(|n| seen.iter().any(|l| l == n));
    tokio::time::timeout(GUARD, async {
        while let Some(line) = lines.recv().await {
            seen.push(line);
            if all_seen(&seen) {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("not all of {needles:?} in {seen:?}"));
    assert!(
        all_seen(&seen),
        "output ended without all of {needles:?}: {seen:?}"
    );
    seen
}

/// The lines still to come, until the child's pipes close.
async fn rest_of(mut lines: mpsc::UnboundedReceiver<String>) -> Vec<String> {
    let mut rest = Vec::new();
    tokio::time::timeout(GUARD, async {
        while let Some(line) = lines.recv().await {
            rest.push(line);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("output did not end: {rest:?}"));
    rest
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn has_line(output: &[u8], expected: &str) -> bool {
    text(output).lines().any(|l| l == expected)
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

    let (child, mut lines) = mosquitto_sub(
        &server,
        &files,
        Version::V311,
        "sub-1",
        &["cb/v1/sensor-1/token/res"],
    );
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
    let (child, mut lines) = mosquitto_sub(
        &server,
        &files,
        Version::V311,
        "sub-2",
        &["cb/v1/+/telemetry"],
    );
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

/// MQTT 5 SUBACK reason codes as mosquitto_sub shows them: one SUBSCRIBE
/// with the device's own response topic (granted QoS 1) and another
/// device's namespace (0x87 Not authorized, printed as 135); the broker's
/// answer arrives, nothing from the refused filter does.
#[tokio::test]
async fn mosquitto_sub_v5_sees_suback_0x87_for_a_foreign_filter_and_gets_its_responses() {
    if !mosquitto_available() {
        return;
    }
    let pki = Pki::new();
    let server = pki.start().await;
    let files = device_files(&pki, "sensor-1");
    let service = connect(&server, &pki, "broker", &pki.service("certbound-broker")).await;

    let (child, mut lines) = mosquitto_sub(
        &server,
        &files,
        Version::V5,
        "sub-v5",
        &["cb/v1/sensor-1/token/res", "cb/v1/sensor-2/#"],
    );
    let seen = wait_for_line(&mut lines, "Subscribed").await;
    assert!(
        seen.iter()
            .any(|l| l == "Client sub-v5 received CONNACK (0)"),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|l| l == "Client sub-v5 received SUBACK"),
        "{seen:?}"
    );
    assert_eq!(
        seen.last().map(String::as_str),
        Some("Subscribed (mid: 1): 1, 135"),
        "SUBACK [QoS 1, 0x87] expected: {seen:?}"
    );

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
    assert!(
        seen.iter()
            .any(|l| l.starts_with("Client sub-v5 received PUBLISH (d0, q1")
                && l.contains("'cb/v1/sensor-1/token/res'")),
        "{seen:?}"
    );
    let (out, killed) = finish(child).await;
    assert!(!killed && out.status.success(), "mosquitto_sub: {out:?}");
    assert_eq!(server.stats().subscribe_refusals, 1);
    server.shutdown().await;
}

/// MQTT 5 has negative PUBACKs: a PUBLISH to another device's topic gets
/// PUBACK 0x87 and the connection stays up (a second message, sent after
/// the first refusal arrived, is answered on the same connection); 3.1.1
/// has none, so there the server closes the connection. Nothing is routed.
#[tokio::test]
async fn mosquitto_pub_v5_gets_puback_0x87_for_a_foreign_topic_and_keeps_its_connection() {
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

    // `-l`: one message per line of stdin, all on one connection.
    let mut cmd = command(
        "mosquitto_pub",
        true,
        &server,
        &files,
        Version::V5,
        "pub-v5",
    );
    cmd.args(["-d", "-q", "1", "-t", "cb/v1/sensor-2/telemetry", "-l"]);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mosquitto_pub");
    let (tx, mut lines) = mpsc::unbounded_channel();
    forward_lines(child.stdout.take().expect("stdout piped"), tx.clone());
    forward_lines(child.stderr.take().expect("stderr piped"), tx);
    let mut stdin = child.stdin.take().expect("stdin piped");

    writeln!(stdin, "forged-1")
        .and_then(|()| stdin.flush())
        .expect("write stdin");
    let mut seen = wait_for_all(
        &mut lines,
        &[
            "Client pub-v5 received PUBACK (Mid: 1, RC:135)",
            "Warning: Publish 1 failed: Not authorized.",
        ],
    )
    .await;
    writeln!(stdin, "forged-2")
        .and_then(|()| stdin.flush())
        .expect("write stdin");
    seen.extend(
        wait_for_all(
            &mut lines,
            &[
                "Client pub-v5 received PUBACK (Mid: 2, RC:135)",
                "Warning: Publish 2 failed: Not authorized.",
            ],
        )
        .await,
    );
    drop(stdin);
    let (out, killed) = finish(child).await;
    seen.extend(rest_of(lines).await);
    assert!(
        !killed && out.status.success(),
        "mosquitto_pub: {out:?} {seen:?}"
    );
    assert_eq!(
        seen.iter()
            .filter(|l| l.ends_with("sending CONNECT"))
            .count(),
        1,
        "one connection for both messages: {seen:?}"
    );
    assert!(
        seen.iter().any(|l| l == "Client pub-v5 sending DISCONNECT"),
        "{seen:?}"
    );
    assert_eq!(server.stats().publish_refusals, 2);

    // 3.1.1: no negative PUBACK; the server closes the connection.
    let (out, killed) = mosquitto_pub(
        &server,
        &files,
        Version::V311,
        "cb/v1/sensor-2/telemetry",
        "forged-311",
    )
    .await;
    assert!(!killed, "mosquitto_pub: {out:?}");
    assert_eq!(out.status.code(), Some(7), "MOSQ_ERR_CONN_LOST: {out:?}");
    assert!(
        has_line(&out.stderr, "Error: The connection was lost."),
        "{out:?}"
    );
    eventually("the 3.1.1 refusal to be counted", || {
        server.stats().publish_refusals == 3
    })
    .await;

    let (out, killed) = mosquitto_pub(
        &server,
        &files,
        Version::V5,
        "cb/v1/sensor-1/telemetry",
        "marker",
    )
    .await;
    assert!(
        !killed && out.status.success() && out.stderr.is_empty(),
        "mosquitto_pub: {out:?}"
    );
    let next = service.next_publish().await;
    assert_eq!(
        (next.topic.as_str(), &next.payload[..]),
        ("cb/v1/sensor-1/telemetry", &b"marker"[..]),
        "no forged message may arrive"
    );
    server.shutdown().await;
}

/// CONNACK 0x8C (Bad authentication method) for an Authentication Method
/// other than `ace`, as mosquitto reports it.
#[tokio::test]
async fn mosquitto_v5_sees_connack_0x8c_for_an_unsupported_authentication_method() {
    if !mosquitto_available() {
        return;
    }
    let pki = Pki::new();
    let server = pki.start().await;
    let files = device_files(&pki, "sensor-1");

    let mut cmd = command(
        "mosquitto_sub",
        false,
        &server,
        &files,
        Version::V5,
        "sub-foo",
    );
    cmd.args(["-d", "-D", "connect", "authentication-method", "foo"])
        .args(["-t", "cb/v1/sensor-1/token/res"]);
    let (out, killed) = run(cmd).await;
    assert!(!killed, "mosquitto_sub kept running: {out:?}");
    assert!(
        has_line(&out.stdout, "Client sub-foo received CONNACK (140)"),
        "{out:?}"
    );
    assert!(!text(&out.stdout).contains("SUBSCRIBE"), "{out:?}");
    assert!(
        has_line(&out.stderr, "Connection error: Bad authentication method"),
        "{out:?}"
    );
    assert_eq!(out.status.code(), Some(0x8C), "{out:?}");
    assert_eq!(server.stats().connected_clients, 0);
    server.shutdown().await;
}

/// A certificate whose identity the authorizer refuses (here: revoked) gets
/// CONNACK 0x87 (Not authorized) in MQTT 5 and 0x05 in 3.1.1; another
/// device still connects.
#[tokio::test]
async fn mosquitto_sees_connack_not_authorized_for_a_revoked_device_in_both_versions() {
    if !mosquitto_available() {
        return;
    }
    let pki = Pki::new();
    let acl = CertboundAcl::new()
        .with_broker("certbound-broker")
        .with_revocation_check(Arc::new(|who: &Identity, _: &PeerCert| {
            *who == Identity::Device("stolen".into())
        }));
    let server = pki.start_with(acl).await;
    let stolen = device_files(&pki, "stolen");

    let cases = [
        (
            Version::V5,
            "Client sub-stolen received CONNACK (135)",
            "Connection error: Not authorized",
            0x87,
        ),
        (
            Version::V311,
            "Client sub-stolen received CONNACK (5)",
            "Connection error: Connection Refused: not authorised.",
            0x05,
        ),
    ];
    for (version, connack, error, code) in cases {
        let mut cmd = command(
            "mosquitto_sub",
            false,
            &server,
            &stolen,
            version,
            "sub-stolen",
        );
        cmd.args(["-d", "-t", "cb/v1/stolen/token/res"]);
        let (out, killed) = run(cmd).await;
        assert!(!killed, "{version:?}: mosquitto_sub kept running: {out:?}");
        assert!(has_line(&out.stdout, connack), "{version:?}: {out:?}");
        assert!(
            !text(&out.stdout).contains("SUBSCRIBE"),
            "{version:?}: {out:?}"
        );
        assert!(has_line(&out.stderr, error), "{version:?}: {out:?}");
        assert_eq!(out.status.code(), Some(code), "{version:?}: {out:?}");
    }
    eventually("both refusals to be counted", || {
        server.stats().auth_failures == 2
    })
    .await;

    let fine = device_files(&pki, "sensor-1");
    let (out, killed) = mosquitto_pub(
        &server,
        &fine,
        Version::V5,
        "cb/v1/sensor-1/telemetry",
        "fine",
    )
    .await;
    assert!(
        !killed && out.status.success() && out.stderr.is_empty(),
        "another device must still connect: {out:?}"
    );
    assert_eq!(server.stats().auth_failures, 2);
    server.shutdown().await;
}
