//! certbound's MQTT client (`certbound_mqtt::client`) against the embedded
//! server, a real Mosquitto (mutual TLS, MQTT 3.1.1 and 5), and a client we
//! did not write (paho-mqtt) against the embedded server.
#![allow(missing_docs)]

mod common;

use std::io::{BufRead as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use certbound_mqtt::client::{
    ClientOptions, Event, Message, MqttClient, MqttEvents, Protocol, QoS,
};
use certbound_mqtt::{Identity, MqttError, MqttServer};
use certbound_pki::DeviceBundle;
use certbound_proto::schedule::Backoff;
use common::{GUARD, Pki, now};

const TELEMETRY: &str = "cb/v1/sensor-1/telemetry";

fn options(pki_chain: &str, bundle: &DeviceBundle, id: &str, port: u16) -> ClientOptions {
    let tls = certbound_mqtt::client_tls::client_tls_config(
        pki_chain,
        &bundle.chain_pem,
        &bundle.key_pkcs8_pem,
    )
    .expect("client TLS");
    ClientOptions::new(id, "localhost", port).tls(tls)
}

async fn next_message(events: &mut MqttEvents) -> Message {
    tokio::time::timeout(GUARD, async {
        loop {
            match events.recv().await {
                Some(Event::Message(m)) => return m,
                Some(_) => {}
                None => panic!("the client stopped while waiting for a message"),
            }
        }
    })
    .await
    .expect("message in time")
}

async fn next_connected(events: &mut MqttEvents) -> u64 {
    tokio::time::timeout(GUARD, async {
        loop {
            match events.recv().await {
                Some(Event::Connected { session }) => return session,
                Some(_) => {}
                None => panic!("the client stopped while waiting for a reconnection"),
            }
        }
    })
    .await
    .expect("reconnected in time")
}

#[tokio::test]
async fn qos1_publishes_arrive_in_order_and_the_subscriber_reconnects_and_resubscribes() {
    let pki = Pki::new();
    let server = pki.start().await;
    let port = server.local_addr().port();
    let service = options(&pki.chain_pem, &pki.service("ingest"), "ingest", port)
        .subscribe("$share/ingest/cb/v1/+/telemetry", QoS::AtLeastOnce)
        .reconnect(Backoff {
            base_ms: 50,
            max_ms: 200,
            floor_ms: 20,
        });
    let (_service, mut inbox) = MqttClient::connect(service)
        .await
        .expect("service connects");
    assert_eq!(next_connected(&mut inbox).await, 1);
    let (device, _) = MqttClient::connect(options(
        &pki.chain_pem,
        &pki.device("sensor-1"),
        "sensor-1",
        port,
    ))
    .await
    .expect("device connects");

    // Many QoS 1 publishes in flight at once; every PUBACK resolves its own.
    let mut deliveries = Vec::new();
    for i in 0..150 {
        let m = Message::new(TELEMETRY, format!("{i}"), QoS::AtLeastOnce);
        deliveries.push(device.publish(m).await.expect("queued"));
    }
    for d in deliveries {
        tokio::time::timeout(GUARD, d.wait())
            .await
            .expect("PUBACK in time")
            .expect("acknowledged");
    }
    for i in 0..150 {
        let m = next_message(&mut inbox).await;
        assert_eq!(
            (m.topic.as_str(), &m.payload[..]),
            (TELEMETRY, format!("{i}").as_bytes())
        );
    }

    // The server drops the service: it reconnects, subscribes again, and
    // receives what is published afterwards.
    server.disconnect(&Identity::Service("ingest".into()));
    assert_eq!(next_connected(&mut inbox).await, 2);
    device
        .publish(Message::new(TELEMETRY, "after", QoS::AtLeastOnce))
        .await
        .expect("queued")
        .wait()
        .await
        .expect("acknowledged");
    assert_eq!(&next_message(&mut inbox).await.payload[..], b"after");
    device.disconnect().await;
    assert!(device.is_closed());
    server.shutdown().await;
}

#[tokio::test]
async fn a_refused_subscription_fails_the_connect_naming_the_filter() {
    let pki = Pki::new();
    let server = pki.start().await;
    let opts = options(
        &pki.chain_pem,
        &pki.device("sensor-1"),
        "sensor-1",
        server.local_addr().port(),
    )
    .subscribe("cb/v1/sensor-1/token/res", QoS::AtLeastOnce)
    .subscribe("cb/v1/sensor-2/#", QoS::AtLeastOnce);
    match MqttClient::connect(opts).await {
        Err(MqttError::SubscribeRefused(what)) => {
            assert!(what.contains("cb/v1/sensor-2/#"), "{what}");
            assert!(!what.contains("token/res"), "{what}");
        }
        other => panic!("expected a subscription refusal, got {other:?}"),
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_publish_the_server_refuses_fails_its_delivery_when_the_connection_closes() {
    let pki = Pki::new();
    let server = pki.start().await;
    let (device, mut events) = MqttClient::connect(options(
        &pki.chain_pem,
        &pki.device("sensor-1"),
        "sensor-1",
        server.local_addr().port(),
    ))
    .await
    .expect("device connects");
    // MQTT 3.1.1 has no negative PUBACK: the server closes the connection.
    let delivery = device
        .publish(Message::new(
            "cb/v1/sensor-2/telemetry",
            "forged",
            QoS::AtLeastOnce,
        ))
        .await
        .expect("queued");
    let outcome = tokio::time::timeout(GUARD, delivery.wait())
        .await
        .expect("an outcome in time");
    assert!(
        matches!(outcome, Err(MqttError::ConnectionLost(_))),
        "{outcome:?}"
    );
    // No reconnect configured: the events end after the disconnection.
    let mut saw_disconnect = false;
    while let Some(e) = tokio::time::timeout(GUARD, events.recv())
        .await
        .expect("events end")
    {
        saw_disconnect |= matches!(e, Event::Disconnected { .. });
    }
    assert!(saw_disconnect);
    assert!(matches!(
        device
            .publish(Message::new(TELEMETRY, "x", QoS::AtMostOnce))
            .await,
        Err(MqttError::Closed)
    ));
    server.shutdown().await;
}

// ---------------------------------------------------------------- Mosquitto

fn require(what: &str) {
    if std::env::var("CERTBOUND_REQUIRE_ALL").as_deref() == Ok("1") {
        panic!("{what} not available and CERTBOUND_REQUIRE_ALL=1");
    }
    eprintln!("*** SKIPPED: {what} not available ***");
}

/// Mosquitto with a TLS listener requiring client certificates of `pki`
/// (no ACL: every authenticated client may use every topic).
struct Mosquitto {
    child: Child,
    port: u16,
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn mosquitto(pki: &Pki) -> Option<Mosquitto> {
    let binary = ["mosquitto", "/usr/sbin/mosquitto"].into_iter().find(|b| {
        Command::new(b)
            .arg("-h")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    })?;
    let dir = pki.tmp.path();
    let server = pki
        .ca
        .issue_server(&["localhost".into(), "127.0.0.1".into()], 30, now())
        .expect("server cert");
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write");
        p
    };
    let ca = write("mq-ca.pem", &pki.chain_pem);
    let cert = write("mq-server.pem", &server.chain_pem);
    let key = write("mq-server.key", &server.key_pkcs8_pem);
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let conf = dir.join("mosquitto.conf");
    let mut f = std::fs::File::create(&conf).expect("conf");
    write!(
        f,
        "per_listener_settings false\nuser root\nlistener {port} 127.0.0.1\n\
         cafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\n\
         use_identity_as_username true\nset_tcp_nodelay true\npersistence false\n\
         log_dest stderr\nlog_type error\n",
        ca.display(),
        cert.display(),
        key.display()
    )
    .expect("conf");
    let child = Command::new(binary)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .ok()?;
    let mut m = Mosquitto { child, port };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + GUARD;
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline && m.child.try_wait().ok().flatten().is_none(),
            "mosquitto did not start on {addr}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(m)
}

#[tokio::test]
async fn mosquitto_tls_311_and_5_with_response_topic_correlation_data_and_shared_subscriptions() {
    let pki = Pki::new();
    let Some(mq) = mosquitto(&pki) else {
        return require("mosquitto (Debian package mosquitto)");
    };
    for protocol in [Protocol::V311, Protocol::V5] {
        // Two members of a shared group split the requests, each delivered once.
        let member = |n: u32| {
            options(
                &pki.chain_pem,
                &pki.service("broker"),
                &format!("broker-{n}"),
                mq.port,
            )
            .protocol(protocol)
            .subscribe("$share/certbound/cb/v1/+/token/req", QoS::AtLeastOnce)
        };
        let (_a, mut a) = MqttClient::connect(member(1)).await.expect("member 1");
        let (_b, mut b) = MqttClient::connect(member(2)).await.expect("member 2");
        let device_opts = options(&pki.chain_pem, &pki.device("sensor-1"), "sensor-1", mq.port)
            .protocol(protocol)
            .subscribe("cb/v1/sensor-1/token/res/#", QoS::AtLeastOnce);
        let (device, mut answers) = MqttClient::connect(device_opts).await.expect("device");
        for i in 0..10u8 {
            let m = Message::new("cb/v1/sensor-1/token/req", vec![i], QoS::AtLeastOnce)
                .with_response_topic("cb/v1/sensor-1/token/res/job")
                .with_correlation_data(vec![i; 4]);
            device
                .publish(m)
                .await
                .expect("queued")
                .wait()
                .await
                .expect("PUBACK");
        }
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + GUARD;
        while seen.len() < 10 {
            let m = tokio::select! {
                m = next_message(&mut a) => m,
                m = next_message(&mut b) => m,
                () = tokio::time::sleep_until(deadline) => panic!("{protocol:?}: got {seen:?}"),
            };
            if protocol == Protocol::V5 {
                assert_eq!(
                    m.response_topic.as_deref(),
                    Some("cb/v1/sensor-1/token/res/job")
                );
                assert_eq!(m.correlation_data.as_deref(), Some(&[m.payload[0]; 4][..]));
            } else {
                assert_eq!(m.response_topic, None, "3.1.1 has no properties");
            }
            seen.push(m.payload[0]);
        }
        seen.sort_unstable();
        assert_eq!(
            seen,
            (0..10).collect::<Vec<u8>>(),
            "{protocol:?}: each once"
        );
        // An answer with correlation data comes back to the device.
        let reply = Message::new("cb/v1/sensor-1/token/res/job", "answer", QoS::AtLeastOnce)
            .with_correlation_data(&b"corr"[..]);
        _a.publish(reply)
            .await
            .expect("queued")
            .wait()
            .await
            .expect("PUBACK");
        let got = next_message(&mut answers).await;
        assert_eq!(&got.payload[..], b"answer");
        let expected: Option<&[u8]> = (protocol == Protocol::V5).then_some(b"corr");
        assert_eq!(got.correlation_data.as_deref(), expected);
        device.disconnect().await;
    }
}

#[tokio::test]
async fn mosquitto_refuses_a_certificate_of_a_foreign_ca_with_a_clean_error() {
    let pki = Pki::new();
    let Some(mq) = mosquitto(&pki) else {
        return require("mosquitto (Debian package mosquitto)");
    };
    let foreign = Pki::new().device("sensor-1");
    let tls = certbound_mqtt::client_tls::client_tls_config(
        &pki.chain_pem,
        &foreign.chain_pem,
        &foreign.key_pkcs8_pem,
    )
    .expect("tls");
    let opts = ClientOptions::new("sensor-1", "localhost", mq.port).tls(tls);
    let err = MqttClient::connect(opts).await.expect_err("refused");
    assert!(
        matches!(err, MqttError::Connect(_) | MqttError::ConnectionLost(_)),
        "{err:?}"
    );
    // A good client still gets in.
    let (ok, _) = MqttClient::connect(options(
        &pki.chain_pem,
        &pki.device("sensor-2"),
        "sensor-2",
        mq.port,
    ))
    .await
    .expect("a valid device connects");
    ok.disconnect().await;
}

// ---------------------------------------------------------------- paho-mqtt

fn python_with_paho() -> Option<std::path::PathBuf> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    [
        std::env::var_os("CERTBOUND_PYTHON").map(std::path::PathBuf::from),
        Some(workspace.join(".venv/bin/python")),
        Some("python3".into()),
    ]
    .into_iter()
    .flatten()
    .find(|p| {
        Command::new(p)
            .args(["-c", "import paho.mqtt.client"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

#[tokio::test]
async fn a_paho_mqtt_device_talks_to_the_embedded_server() {
    let Some(python) = python_with_paho() else {
        return require("python with paho-mqtt (tests/interop/requirements.txt)");
    };
    let pki = Pki::new();
    let server: MqttServer = pki.start().await;
    let port = server.local_addr().port();
    let service = options(
        &pki.chain_pem,
        &pki.service("certbound-broker"),
        "broker",
        port,
    )
    .subscribe("cb/v1/+/telemetry", QoS::AtLeastOnce);
    let (service, mut inbox) = MqttClient::connect(service).await.expect("service");
    let bundle = pki.device("paho-1");
    let dir = pki.tmp.path();
    for (name, text) in [
        ("paho-ca.pem", pki.chain_pem.as_str()),
        ("paho-1.pem", bundle.chain_pem.as_str()),
        ("paho-1.key", bundle.key_pkcs8_pem.as_str()),
    ] {
        std::fs::write(dir.join(name), text).expect("write");
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/paho_device.py");
    let mut child = Command::new(python)
        .arg(script)
        .args(["localhost", &port.to_string()])
        .args([
            dir.join("paho-ca.pem"),
            dir.join("paho-1.pem"),
            dir.join("paho-1.key"),
        ])
        .arg("paho-1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run python");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<serde_json::Value>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let v = serde_json::from_str(&line).unwrap_or(serde_json::json!({ "raw": line }));
            if tx.send(v).is_err() {
                return;
            }
        }
    });
    let mut next = async || {
        tokio::time::timeout(GUARD, lines.recv())
            .await
            .expect("paho reports in time")
            .expect("paho still running")
    };
    assert_eq!(next().await["event"], "connected");
    let own = next().await;
    assert_eq!(own["codes"], serde_json::json!([1]), "{own}");
    let foreign = next().await;
    assert_eq!(foreign["codes"], serde_json::json!([128]), "{foreign}");
    assert_eq!(next().await["event"], "published", "PUBACK reached paho");
    let m = next_message(&mut inbox).await;
    assert_eq!(
        (m.topic.as_str(), &m.payload[..]),
        ("cb/v1/paho-1/telemetry", &b"hello from paho"[..])
    );
    service
        .publish(Message::new(
            "cb/v1/paho-1/token/res",
            "hello paho",
            QoS::AtLeastOnce,
        ))
        .await
        .expect("queued")
        .wait()
        .await
        .expect("PUBACK");
    let got = next().await;
    assert_eq!(got["event"], "message", "{got}");
    assert_eq!(got["payload"], "hello paho");
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(status.success());
    server.shutdown().await;
}

#[tokio::test]
async fn keep_alive_pings_hold_an_idle_connection_open() {
    // The server closes a connection silent for 1.5 x keep-alive; the
    // client's PINGREQs must keep this idle one open.
    let pki = Pki::new();
    let server = pki.start().await;
    let opts = options(
        &pki.chain_pem,
        &pki.device("sensor-1"),
        "sensor-1",
        server.local_addr().port(),
    )
    .keep_alive(Duration::from_secs(1));
    let (device, mut events) = MqttClient::connect(opts).await.expect("connects");
    assert_eq!(next_connected(&mut events).await, 1);
    // Idle for several keep-alive intervals: what is under test is time passing.
    let idle = tokio::time::timeout(Duration::from_secs(4), events.recv()).await;
    assert!(idle.is_err(), "the idle connection ended: {idle:?}");
    device
        .publish(Message::new(TELEMETRY, "still here", QoS::AtLeastOnce))
        .await
        .expect("queued")
        .wait()
        .await
        .expect("acknowledged on the same connection");
    assert!(device.is_connected());
    server.shutdown().await;
}

#[tokio::test]
async fn an_mqtt5_session_taken_over_or_dropped_by_the_server_is_told_why() {
    let pki = Pki::new();
    let server: MqttServer = pki.start().await;
    let port = server.local_addr().port();
    let bundle = pki.device("sensor-1");
    let opts = || options(&pki.chain_pem, &bundle, "same-id", port).protocol(Protocol::V5);
    let (_old, mut old_events) = MqttClient::connect(opts()).await.expect("first");
    let (_new, mut new_events) = MqttClient::connect(opts()).await.expect("second");
    let reason = disconnected(&mut old_events).await;
    assert!(reason.contains("SessionTakenOver (0x8e)"), "{reason}");
    // Revocation-style drop: 0x98 Administrative action.
    assert_eq!(server.disconnect(&Identity::Device("sensor-1".into())), 1);
    let reason = disconnected(&mut new_events).await;
    assert!(reason.contains("AdministrativeAction (0x98)"), "{reason}");
    server.shutdown().await;
}

async fn disconnected(events: &mut MqttEvents) -> String {
    tokio::time::timeout(GUARD, async {
        loop {
            match events.recv().await {
                Some(Event::Disconnected { reason }) => return reason,
                Some(_) => {}
                None => return "events ended".to_owned(),
            }
        }
    })
    .await
    .expect("told in time")
}
