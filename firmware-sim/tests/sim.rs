//! End-to-end runs of the simulator against real brokers: real UDP (CoAP),
//! MQTT over mTLS (the embedded server), HTTPS, SQLite.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use certbound_broker::server::{ServeOptions, start};
use certbound_broker::store::{DeviceStatus, Store};
use certbound_registry::config::DataDir;
use certbound_registry::registry::{self, Registry};
use firmware_sim::{Faults, RevokePlan, SimOptions, TransportMix, run};

fn quiet(_: &firmware_sim::Frame) {}

/// Every mechanism at once, on the embedded broker: three transports, 5 % UDP
/// loss, a broker restart, a renewal wave (60-second certificates), token
/// renewals (10-second tokens), a scripted revocation and a service JWT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_renewals_and_revocation_end_to_end() {
    let mut o = SimOptions::new(24);
    o.transports = TransportMix::parse("mixed").unwrap();
    // The renewal wave falls 14-26 s in; 40 s leaves room for a renewal that
    // needs one retry (lost datagram, the restart) on a loaded CI machine
    // (a 30 s run once ended with 22 of 23 renewed). A second wave would
    // start after 54 s.
    o.duration = Duration::from_secs(40);
    o.telemetry_every = Duration::from_secs(1);
    o.cert_lifetime = Some(Duration::from_secs(60));
    o.token_lifetime = Duration::from_secs(10);
    o.faults = Faults::parse("loss=5%,broker-restart-at=8s").unwrap();
    o.revoke = Some(RevokePlan {
        count: 1,
        at: Duration::from_secs(12),
    });
    o.service_jwt_at = Some(Duration::from_secs(4));
    let outcome = run(&o, &quiet).await.expect("the simulation runs");
    let r = &outcome.report;
    let t = &r.totals;
    let summary = r.summary();
    assert!(r.ok, "{summary}");
    assert_eq!(t.unexpected_total(), 0, "{summary}");
    assert_eq!(r.transports.get("coap"), Some(&8), "{summary}");
    assert_eq!(r.transports.get("mqtt"), Some(&8), "{summary}");
    assert_eq!(r.transports.get("https"), Some(&8), "{summary}");
    // The wave: every device but the revoked one renews once (14-26 s in).
    assert!(t.certs_renewed >= 23, "{summary}");
    assert!(t.tokens_renewed >= 23, "{summary}");
    assert_eq!(t.tokens_issued, 24, "{summary}");
    // The revoked device is a CoAP one; the backend refuses its telemetry
    // through the status list, and the broker its renewal.
    assert_eq!(outcome.revoked.len(), 1);
    assert!(outcome.revoked[0].starts_with("sim-"));
    // The revocation is enforced: its telemetry refused by the backend
    // (status list) or, when its token ran out around the revocation, its
    // next token or renewal refused by the broker (both expected). Which of
    // the two comes first depends on where its token's lifetime stands.
    let enforced: u64 = t
        .rejected_expected
        .iter()
        .filter(|(k, _)| {
            *k == "telemetry:revoked" || k.starts_with("token:") || k.starts_with("renewal:")
        })
        .map(|(_, n)| *n)
        .sum();
    assert!(enforced > 0, "{summary}");
    // Almost everything sent was accepted despite loss and the restart.
    assert!(
        t.telemetry_accepted as f64 >= 0.9 * t.telemetry_sent as f64,
        "{summary}"
    );
    assert!(
        t.events.iter().any(|e| e.contains("broker back after")),
        "{summary}"
    );
    assert!(
        t.events.iter().any(|e| e.contains("got a JWT")),
        "{summary}"
    );
    for op in ["token", "renewal", "telemetry", "connect"] {
        assert!(
            t.latency.get(op).is_some_and(|l| l.count > 0),
            "{op}: {summary}"
        );
    }
    let json = serde_json::to_value(r).unwrap();
    assert_eq!(json["ok"], true);
    assert_eq!(json["devices"], 24);
    assert!(
        json["totals"]["latency"]["telemetry"]["p99_ms"]
            .as_f64()
            .is_some()
    );
}

/// Devices whose clocks are ahead of the broker's by more than its leeway are
/// refused (expected: the injected fault explains it); the rest run normally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_skew_beyond_leeway_is_refused_and_explained() {
    let mut o = SimOptions::new(20);
    o.transports = TransportMix::parse("coap").unwrap();
    o.duration = Duration::from_secs(6);
    o.telemetry_every = Duration::from_secs(1);
    o.faults = Faults::parse("skew=600s").unwrap();
    let outcome = run(&o, &quiet).await.expect("the simulation runs");
    let t = &outcome.report.totals;
    let summary = outcome.report.summary();
    assert!(outcome.report.ok, "{summary}");
    assert!(
        t.rejected_expected
            .get("token:invalid_client")
            .copied()
            .unwrap_or(0)
            + t.rejected_expected
                .get("token:invalid_request")
                .copied()
                .unwrap_or(0)
            > 0,
        "{summary}"
    );
    assert!(t.not_sent_no_token > 0, "{summary}");
    assert!(t.telemetry_accepted > 0, "{summary}");
}

fn set_listen(dir: &Path, section: &str, addr: std::net::SocketAddr) {
    let path = dir.join("certbound.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut out = String::new();
    let mut current = String::new();
    for line in text.lines() {
        if line.starts_with('[') {
            current = line.to_string();
        }
        if current == format!("[{section}]") && line.starts_with("listen = ") {
            out.push_str(&format!("listen = \"{addr}\"\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    std::fs::write(&path, out).unwrap();
}

/// The binary against a broker that runs elsewhere (here: started by the test
/// on its own), with an operator revoking a device behind the simulator's
/// back: that device's refused telemetry is unexpected, so the run fails
/// with exit code 1 and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_broker_and_an_unexpected_revocation_fail_the_run() {
    let dir = tempfile::tempdir().unwrap();
    registry::init(dir.path(), "https://auth.remote.test")
        .await
        .unwrap();
    let config = dir.path().join("certbound.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replacen("ttl_secs = 60", "ttl_secs = 1", 1)).unwrap();
    let any = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let broker = start(
        dir.path(),
        ServeOptions {
            coap_listen: Some(any),
            mqtt_listen: Some(any),
            https_listen: Some(any),
        },
    )
    .await
    .unwrap();
    // The simulator finds the broker through its configuration.
    set_listen(dir.path(), "coap", broker.coap_addr().unwrap());
    set_listen(dir.path(), "mqtt", broker.mqtt_addr().unwrap());
    set_listen(dir.path(), "https", broker.https_addr().unwrap());

    let sim = tokio::process::Command::new(env!("CARGO_BIN_EXE_firmware-sim"))
        .args(["--devices", "6", "--transport", "coap", "--duration", "10s"])
        .args([
            "--telemetry-every",
            "500ms",
            "--quiet",
            "--prefix",
            "remote-",
        ])
        .arg("--broker")
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the device got its first token, then revoke it as an operator would.
    let registry = Registry::open(dir.path()).await.unwrap();
    let store = Store::open(&DataDir::new(dir.path()).database())
        .await
        .unwrap();
    let victim = "remote-3";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let events = store.recent_audit(Some(victim), 50).await.unwrap();
        if events.iter().any(|e| e.action == "token.issued") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{victim} got no token"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    registry
        .set_device_status(victim, DeviceStatus::Revoked, "operator, not the scenario")
        .await
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(90), sim.wait_with_output())
        .await
        .expect("the simulator ends")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("FAILED"), "{stdout}");
    let unexpected = stdout
        .lines()
        .find(|l| l.contains("rejected, UNEXPECTED"))
        .unwrap_or_default();
    assert!(unexpected.contains("telemetry:revoked"), "{stdout}");
    assert!(
        stdout.contains(&format!("telemetry from {victim} refused")),
        "{stdout}"
    );
    registry.close().await;
    broker.shutdown().await;
}

#[test]
fn bad_options_exit_2_with_a_message() {
    for (args, needle) in [
        (vec!["--transport", "zigbee"], "unknown transport"),
        (vec!["--faults", "loss=200%"], "out of range"),
        (vec!["--faults", "jitter=1s"], "unknown fault"),
        (vec!["--duration", "soon"], "invalid duration"),
        (vec!["--revoke", "3"], "COUNT@TIME"),
        (vec!["--devices", "0"], "between 1 and 200000"),
        (vec!["--devices", "2", "--revoke", "2@1s"], "unrevoked"),
        (
            vec!["--broker", "/nonexistent/certbound"],
            "not a certbound data directory",
        ),
        (vec!["--instance", "coap=127.0.0.1:5683"], "--broker"),
        (
            vec!["--broker", "/tmp", "--instance", "coap=localhost"],
            "invalid CoAP address",
        ),
        (
            vec!["--broker", "/tmp", "--instance", "udp=127.0.0.1:1"],
            "unknown instance part",
        ),
        (
            vec![
                "--broker",
                "/a",
                "--broker",
                "/b",
                "--instance",
                "coap=127.0.0.1:5683",
            ],
            "one --instance per --broker DIR",
        ),
        (
            vec!["--broker", "/tmp", "--failover-after", "1ms"],
            "--failover-after",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_firmware-sim"))
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let help = Command::new(env!("CARGO_BIN_EXE_firmware-sim"))
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--devices",
        "--transport",
        "--faults",
        "--json",
        "--broker",
        "--revoke",
        "--instance",
        "--failover-after",
        "--ledger",
    ] {
        assert!(text.contains(flag), "{text}");
    }
}

/// Ctrl-C stops the devices, prints the summary of the run so far and exits 130.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_early_with_a_summary() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut sim = tokio::process::Command::new(env!("CARGO_BIN_EXE_firmware-sim"))
        .args([
            "--devices",
            "4",
            "--transport",
            "coap",
            "--duration",
            "120s",
        ])
        .args(["--telemetry-every", "500ms"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = sim.id().unwrap();
    let mut lines = BufReader::new(sim.stderr.take().unwrap()).lines();
    // The first live line once the fleet runs (printed at once when not a terminal).
    let running = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.starts_with("t=") {
                return true;
            }
        }
        false
    })
    .await
    .expect("the fleet starts");
    assert!(running);
    let kill = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let out = tokio::time::timeout(Duration::from_secs(30), sim.wait_with_output())
        .await
        .expect("it stops soon after Ctrl-C")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(130), "{stdout}");
    assert!(stdout.contains("INTERRUPTED"), "{stdout}");
    assert!(stdout.contains("interrupted (Ctrl-C)"), "{stdout}");
    assert!(stdout.contains("firmware-sim summary"), "{stdout}");
}

/// A kept data directory is reused: a second, smaller run takes the first
/// devices of the first run (no new provisioning) and issues the backend a
/// fresh service certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_directory_is_reused() {
    let keep = tempfile::tempdir().unwrap();
    let mut o = SimOptions::new(8);
    o.transports = TransportMix::parse("mqtt,coap").unwrap();
    o.duration = Duration::from_secs(3);
    o.telemetry_every = Duration::from_millis(500);
    o.broker = firmware_sim::BrokerTarget::Embedded {
        keep: Some(keep.path().to_path_buf()),
    };
    let first = run(&o, &quiet).await.expect("first run");
    assert!(first.report.ok, "{}", first.report.summary());
    assert_eq!(first.data_dir, keep.path());
    o.devices = 3;
    let second = run(&o, &quiet).await.expect("second run");
    assert!(second.report.ok, "{}", second.report.summary());
    assert_eq!(second.report.devices, 3);
    assert_eq!(second.report.totals.tokens_issued, 3);
    let manifest =
        std::fs::read_to_string(keep.path().join("sim-devices/sim/manifest.jsonl")).unwrap();
    assert_eq!(manifest.lines().count(), 8, "nothing provisioned again");
}

/// Devices kept with short-lived certificates that would expire during the
/// next run are refused with a message saying what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_devices_with_expiring_certificates_are_refused_clearly() {
    let keep = tempfile::tempdir().unwrap();
    let mut o = SimOptions::new(2);
    o.transports = TransportMix::parse("coap").unwrap();
    o.duration = Duration::from_secs(2);
    o.cert_lifetime = Some(Duration::from_secs(60));
    o.broker = firmware_sim::BrokerTarget::Embedded {
        keep: Some(keep.path().to_path_buf()),
    };
    let first = run(&o, &quiet).await.expect("first run");
    assert!(first.report.ok, "{}", first.report.summary());
    o.duration = Duration::from_secs(120);
    let err = run(&o, &quiet)
        .await
        .expect_err("certificates expire during the run");
    let text = err.to_string();
    assert!(text.contains("before this run ends"), "{text}");
    assert!(text.contains("new --keep"), "{text}");
}
