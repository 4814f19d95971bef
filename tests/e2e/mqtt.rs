//! Tokens over MQTT with mutual TLS: through the embedded server and through a
//! real Mosquitto that the test starts with a TLS config; two brokers sharing
//! one Mosquitto; a client we did not write (mosquitto_pub/sub).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use certbound_agent::mqtt::{MqttConnectSettings, MqttDevice};
use certbound_agent::{
    DeviceIdentity, TokenRequestParams, build_token_request, decode_token_response,
};
use certbound_broker::server::{RunningBroker, ServeOptions, start};
use certbound_e2e::mosquitto::{Mosquitto, skip_or_fail};
use certbound_registry::config::DataDir;
use certbound_registry::registry::{self, Registry};
use certbound_verify::{KeySet, TokenVerifier, VerifierConfig};

const ISSUER: &str = "https://auth.example.com";
const API: &str = "https://telemetry.example.com";

struct Setup {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    devices: PathBuf,
}

async fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cb");
    let devices = tmp.path().join("devices");
    registry::init(&dir, ISSUER).await.unwrap();
    // Several tests send many requests for one device; rate limits are tested below.
    certbound_e2e::edit_config(&dir, &[("device_per_sec = 1.0", "device_per_sec = 0")]).unwrap();
    let reg = Registry::open(&dir).await.unwrap();
    reg.create_api(API, "telemetry:write firmware:read", 3600)
        .await
        .unwrap();
    reg.create_group("sensors", &[(API.into(), "telemetry:write".into())])
        .await
        .unwrap();
    for id in ["sensor-1", "sensor-2"] {
        reg.provision_device(id, &["sensors".into()], &devices, None)
            .await
            .unwrap();
    }
    reg.close().await;
    Setup {
        _tmp: tmp,
        dir,
        devices,
    }
}

impl Setup {
    fn use_external(&self, addr: std::net::SocketAddr) {
        let path = self.dir.join("certbound.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let text = text.replace(
            "mode = \"embedded\"",
            &format!("mode = \"external\"\nurl = \"mqtts://{addr}\""),
        );
        std::fs::write(path, text).unwrap();
    }

    async fn broker(&self) -> RunningBroker {
        start(
            &self.dir,
            ServeOptions {
                coap_listen: Some("127.0.0.1:0".parse().unwrap()),
                mqtt_listen: Some("127.0.0.1:0".parse().unwrap()),
                https_listen: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
            },
        )
        .await
        .unwrap()
    }

    fn identity(&self, id: &str) -> DeviceIdentity {
        DeviceIdentity::load(&self.key(id), &self.cert(id)).unwrap()
    }

    fn key(&self, id: &str) -> PathBuf {
        self.devices.join(format!("{id}.key.pem"))
    }

    fn cert(&self, id: &str) -> PathBuf {
        self.devices.join(format!("{id}.cert.pem"))
    }

    fn settings(&self, id: &str, addr: std::net::SocketAddr) -> MqttConnectSettings {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap();
        MqttConnectSettings {
            host: addr.ip().to_string(),
            port: addr.port(),
            ca_pem: read(&DataDir::new(&self.dir).pki().chain()),
            cert_pem: read(&self.cert(id)),
            key_pem: read(&self.key(id)),
            timeout: Duration::from_secs(10),
        }
    }

    fn verifier(&self) -> TokenVerifier {
        let mut keys = KeySet::new();
        for (kid, key) in
            certbound_registry::keys::public_keys(&DataDir::new(&self.dir).keys()).unwrap()
        {
            keys.insert(kid, key).unwrap();
        }
        let mut config = VerifierConfig::new(API);
        config.issuer = Some(ISSUER.into());
        TokenVerifier::new(keys, config)
    }

    async fn audit_count(&self, action: &str) -> usize {
        let reg = Registry::open(&self.dir).await.unwrap();
        let events = reg.store.recent_audit(None, 100_000).await.unwrap();
        reg.close().await;
        events.iter().filter(|e| e.action == action).count()
    }
}

fn params() -> TokenRequestParams {
    TokenRequestParams::new(ISSUER, API).with_scope("telemetry:write")
}

async fn get_token_and_verify(s: &Setup, addr: std::net::SocketAddr, id: &str) {
    let identity = s.identity(id);
    let device = MqttDevice::connect(&identity, &s.settings(id, addr))
        .await
        .unwrap();
    let token = device.request_token(&identity, &params()).await.unwrap();
    let verified = s
        .verifier()
        .verify(&token.access_token, &["telemetry:write"], now())
        .unwrap();
    assert_eq!(verified.device_id(), Some(id));
    verified
        .check_certificate_binding(&identity.chain()[0])
        .unwrap();
    device.disconnect().await;
}

fn now() -> u64 {
    certbound_registry::clock::unix_now()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_over_the_embedded_mqtt_server() {
    let s = setup().await;
    let broker = s.broker().await;
    let addr = broker.mqtt_addr().unwrap();
    get_token_and_verify(&s, addr, "sensor-1").await;
    get_token_and_verify(&s, addr, "sensor-2").await;

    // sensor-2 publishes its own signed request on sensor-1's topic: the
    // server's ACL refuses it, so the broker never even sees it.
    let identity = s.identity("sensor-2");
    let attacker = MqttDevice::connect(&identity, &s.settings("sensor-2", addr))
        .await
        .unwrap();
    let req = build_token_request(&identity, &params(), now(), [9; 16]).unwrap();
    let _ = attacker.publish_raw("cb/v1/sensor-1/token/req", req).await;
    attacker.disconnect().await;
    // sensor-1 still gets exactly its own answer.
    get_token_and_verify(&s, addr, "sensor-1").await;
    broker.shutdown().await;
    assert_eq!(s.audit_count("token.issued").await, 3);
    assert_eq!(
        s.audit_count("token.refused").await,
        0,
        "the cross-topic request reached the broker"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_through_a_real_mosquitto_with_mutual_tls() {
    let s = setup().await;
    let Some(mosquitto) = Mosquitto::start(&s.dir) else {
        return skip_or_fail("mosquitto (Debian package mosquitto)");
    };
    s.use_external(mosquitto.addr);
    let broker = s.broker().await;
    assert_eq!(
        broker.mqtt_addr(),
        None,
        "external mode runs no embedded server"
    );
    get_token_and_verify(&s, mosquitto.addr, "sensor-1").await;

    // Mosquitto's ACL (pattern readwrite cb/v1/%u/#) drops sensor-2's publish
    // on sensor-1's topic.
    let identity = s.identity("sensor-2");
    let attacker = MqttDevice::connect(&identity, &s.settings("sensor-2", mosquitto.addr))
        .await
        .unwrap();
    let req = build_token_request(&identity, &params(), now(), [7; 16]).unwrap();
    let _ = attacker.publish_raw("cb/v1/sensor-1/token/req", req).await;
    get_token_and_verify(&s, mosquitto.addr, "sensor-2").await;
    attacker.disconnect().await;
    broker.shutdown().await;
    assert_eq!(s.audit_count("token.issued").await, 2);
    assert_eq!(
        s.audit_count("token.refused").await,
        0,
        "Mosquitto let a cross-topic request through"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_brokers_on_one_mosquitto_answer_each_request_once() {
    let s = setup().await;
    let Some(mosquitto) = Mosquitto::start(&s.dir) else {
        return skip_or_fail("mosquitto (Debian package mosquitto)");
    };
    s.use_external(mosquitto.addr);
    let first = s.broker().await;
    let second = s.broker().await;
    let identity = s.identity("sensor-1");
    let device = MqttDevice::connect(&identity, &s.settings("sensor-1", mosquitto.addr))
        .await
        .unwrap();
    const N: usize = 20;
    for _ in 0..N {
        let token = device.request_token(&identity, &params()).await.unwrap();
        s.verifier()
            .verify(&token.access_token, &["telemetry:write"], now())
            .unwrap();
    }
    device.disconnect().await;
    first.shutdown().await;
    second.shutdown().await;
    // Every request was handled by exactly one of the two brokers.
    assert_eq!(s.audit_count("token.issued").await, N);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_pub_and_sub_get_a_token_from_the_embedded_server() {
    let has = |b: &str| {
        Command::new(b)
            .arg("--help")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    };
    if !has("mosquitto_pub") || !has("mosquitto_sub") {
        return skip_or_fail("mosquitto_pub/mosquitto_sub (Debian package mosquitto-clients)");
    }
    let s = setup().await;
    let broker = s.broker().await;
    let addr = broker.mqtt_addr().unwrap();
    let identity = s.identity("sensor-1");
    let request = s.dir.join("request.cbor");
    std::fs::write(
        &request,
        build_token_request(&identity, &params(), now(), [5; 16]).unwrap(),
    )
    .unwrap();
    let chain = DataDir::new(&s.dir).pki().chain();
    let tls_args = |cmd: &mut Command| {
        cmd.args([
            "-h",
            "127.0.0.1",
            "-p",
            &addr.port().to_string(),
            "-q",
            "1",
            "-V",
            "mqttv311",
        ])
        .arg("--cafile")
        .arg(&chain)
        .arg("--cert")
        .arg(s.cert("sensor-1"))
        .arg("--key")
        .arg(s.key("sensor-1"));
    };
    // mosquitto_sub block-buffers stdout into a pipe: stdbuf makes it line-buffered
    // so its SUBACK line arrives when it happens.
    let mut sub = Command::new("stdbuf");
    sub.args(["-oL", "mosquitto_sub"]);
    tls_args(&mut sub);
    sub.args([
        "-i",
        "sensor-1-sub",
        "-t",
        "cb/v1/sensor-1/token/res",
        "-C",
        "1",
        "-d",
        "-F",
        "HEX:%x",
        "-W",
        "20",
    ]);
    let mut sub = sub
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = sub.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // Wait until the subscription is acknowledged, then publish.
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("mosquitto_sub subscribes");
        if line.contains("SUBACK") {
            break;
        }
    }
    let mut publish = Command::new("mosquitto_pub");
    tls_args(&mut publish);
    let status = publish
        .args(["-i", "sensor-1-pub", "-t", "cb/v1/sensor-1/token/req", "-f"])
        .arg(&request)
        .status()
        .unwrap();
    assert!(status.success(), "mosquitto_pub failed");
    let hex_payload = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("mosquitto_sub prints the answer");
        if let Some(h) = line.strip_prefix("HEX:") {
            break h.trim().to_string();
        }
    };
    let _ = sub.wait();
    let payload = hex::decode(hex_payload).unwrap();
    let token =
        decode_token_response(certbound_coap::ResponseType::Created, Some(19), &payload).unwrap();
    let verified = s
        .verifier()
        .verify(&token.access_token, &["telemetry:write"], now())
        .unwrap();
    assert_eq!(verified.device_id(), Some("sensor-1"));
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_device_drops_its_mqtt_session_and_refuses_reconnects() {
    let s = setup().await;
    let broker = s.broker().await;
    let addr = broker.mqtt_addr().unwrap();
    let server = broker.mqtt_server().unwrap();
    let identity = s.identity("sensor-1");
    let device = MqttDevice::connect(&identity, &s.settings("sensor-1", addr))
        .await
        .unwrap();
    let connected = server.stats().connected_clients;

    // Revoke through a separate registry connection, as the CLI does.
    let reg = Registry::open(&s.dir).await.unwrap();
    reg.set_device_status(
        "sensor-1",
        certbound_broker::store::DeviceStatus::Revoked,
        "test",
    )
    .await
    .unwrap();
    reg.close().await;
    let revoked_at = std::time::Instant::now();
    while server.stats().connected_clients >= connected {
        assert!(
            revoked_at.elapsed() < Duration::from_secs(5),
            "the revoked device's session stayed up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "revoked device disconnected after {:?}",
        revoked_at.elapsed()
    );
    device.disconnect().await;
    let again = MqttDevice::connect(&identity, &s.settings("sensor-1", addr)).await;
    assert!(again.is_err(), "a revoked device reconnected");
    // Other devices are unaffected.
    get_token_and_verify(&s, addr, "sensor-2").await;
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt5_devices_get_answers_on_their_response_topic_with_correlation_data() {
    use certbound_mqtt::client::{ClientOptions, Event, Message, MqttClient, Protocol, QoS};

    let s = setup().await;
    let Some(mosquitto) = Mosquitto::start(&s.dir) else {
        return skip_or_fail("mosquitto (Debian package mosquitto)");
    };
    s.use_external(mosquitto.addr);
    let path = s.dir.join("certbound.toml");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("protocol = \"3.1.1\"", "protocol = \"5\"");
    std::fs::write(&path, text).unwrap();
    let broker = s.broker().await;

    // A 3.1.1 device still gets its answer on the fixed topic.
    get_token_and_verify(&s, mosquitto.addr, "sensor-2").await;

    // An MQTT 5 device (certbound's client) with a response topic and correlation data.
    let settings = s.settings("sensor-1", mosquitto.addr);
    let tls = certbound_mqtt::client_tls::client_tls_config(
        &settings.ca_pem,
        &settings.cert_pem,
        &settings.key_pem,
    )
    .unwrap();
    // "token/res/#" also matches "token/res" itself (MQTT 3.1.1 §4.7.1.2),
    // so one subscription sees both kinds of answer exactly once.
    let options = ClientOptions::new("sensor-1", settings.host.clone(), settings.port)
        .tls(tls)
        .protocol(Protocol::V5)
        .subscribe("cb/v1/sensor-1/token/res/#", QoS::AtLeastOnce);
    let (client, mut events) = MqttClient::connect(options).await.unwrap();
    let reply_topic = "cb/v1/sensor-1/token/res/job-7";
    let identity = s.identity("sensor-1");
    // Send a request with a good response topic, and one naming another
    // device's topic.
    for (nonce, (topic, corr)) in [
        (reply_topic, "corr-1"),
        ("cb/v1/sensor-2/token/res", "corr-2"),
    ]
    .into_iter()
    .enumerate()
    {
        let body = build_token_request(&identity, &params(), now(), [nonce as u8 + 1; 16]).unwrap();
        let request = Message::new("cb/v1/sensor-1/token/req", body, QoS::AtLeastOnce)
            .with_response_topic(topic)
            .with_correlation_data(corr.as_bytes().to_vec());
        client.publish(request).await.unwrap().wait().await.unwrap();
    }
    let mut answers = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while answers.len() < 2 {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("answers arrive")
            .expect("the device stays connected");
        if let Event::Message(p) = event {
            let corr = p
                .correlation_data
                .map(|c| String::from_utf8_lossy(&c).to_string());
            answers.push((p.topic.clone(), corr, p.payload.to_vec()));
        }
    }
    answers.sort();
    // The hostile response topic was ignored: that answer went to the fixed topic.
    assert_eq!(answers[0].0, "cb/v1/sensor-1/token/res");
    assert_eq!(answers[0].1.as_deref(), Some("corr-2"));
    assert_eq!(answers[1].0, reply_topic);
    assert_eq!(answers[1].1.as_deref(), Some("corr-1"));
    for (_, _, payload) in &answers {
        let token = decode_token_response(certbound_coap::ResponseType::Created, Some(19), payload)
            .unwrap();
        s.verifier()
            .verify(&token.access_token, &["telemetry:write"], now())
            .unwrap();
    }
    client.disconnect().await;
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_over_its_rate_gets_an_mqtt_error_response() {
    let s = setup().await;
    certbound_e2e::edit_config(
        &s.dir,
        &[
            ("device_per_sec = 0", "device_per_sec = 0.01"),
            ("device_burst = 10", "device_burst = 2"),
        ],
    )
    .unwrap();
    let broker = s.broker().await;
    let addr = broker.mqtt_addr().unwrap();
    let identity = s.identity("sensor-1");
    let device = MqttDevice::connect(&identity, &s.settings("sensor-1", addr))
        .await
        .unwrap();
    for _ in 0..2 {
        device.request_token(&identity, &params()).await.unwrap();
    }
    match device.request_token(&identity, &params()).await {
        // The typed retry hint (ACE error label -65538), not English text.
        Err(certbound_agent::AgentError::RetryLater {
            retry_after_secs,
            reason,
        }) => {
            assert!(retry_after_secs >= 1, "{retry_after_secs}");
            assert!(reason.contains("rate limited"), "{reason}");
        }
        other => panic!("expected a rate-limit error response, got {other:?}"),
    }
    // Another device is not affected.
    get_token_and_verify(&s, addr, "sensor-2").await;
    device.disconnect().await;
    broker.shutdown().await;
}

/// Issue 11 (Medium 5): the broker's MQTT transport handles at most
/// `[mqtt] max_handlers` requests at once; a flood beyond that is answered
/// "temporarily unavailable" at once instead of piling up tasks, and the
/// broker keeps serving afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_flood_over_the_handler_cap_is_answered_temporarily_unavailable() {
    use certbound_mqtt::client::{ClientOptions, Event, Message, MqttClient, QoS};

    let s = setup().await;
    certbound_e2e::edit_config(&s.dir, &[("max_handlers = 256", "max_handlers = 1")]).unwrap();
    let broker = s.broker().await;
    let addr = broker.mqtt_addr().unwrap();
    let settings = s.settings("sensor-1", addr);
    let tls = certbound_mqtt::client_tls::client_tls_config(
        &settings.ca_pem,
        &settings.cert_pem,
        &settings.key_pem,
    )
    .unwrap();
    let options = ClientOptions::new("sensor-1", settings.host.clone(), settings.port)
        .tls(tls)
        .subscribe("cb/v1/sensor-1/token/res", QoS::AtLeastOnce);
    let (device, mut answers) = MqttClient::connect(options).await.unwrap();
    let identity = s.identity("sensor-1");
    const N: usize = 200;
    let mut deliveries = Vec::new();
    for i in 0..N {
        let mut nonce = [0u8; 16];
        nonce[..8].copy_from_slice(&(i as u64).to_be_bytes());
        let body = build_token_request(&identity, &params(), now(), nonce).unwrap();
        let request = Message::new("cb/v1/sensor-1/token/req", body, QoS::AtLeastOnce);
        deliveries.push(device.publish(request).await.unwrap());
    }
    for d in deliveries {
        d.wait().await.unwrap();
    }
    // Every request gets an answer: a token, or "temporarily unavailable".
    let (mut tokens, mut unavailable) = (0, 0);
    while tokens + unavailable < N {
        let event = tokio::time::timeout(Duration::from_secs(60), answers.recv())
            .await
            .expect("every request is answered")
            .expect("connected");
        let Event::Message(m) = event else { continue };
        match decode_token_response(certbound_coap::ResponseType::Created, Some(19), &m.payload) {
            Ok(_) => tokens += 1,
            Err(certbound_agent::AgentError::RetryLater { reason, .. })
                if reason.contains("temporarily unavailable") =>
            {
                unavailable += 1
            }
            Err(e) => panic!("unexpected answer: {e}"),
        }
    }
    assert!(unavailable >= 1, "no request was shed ({tokens} tokens)");
    assert!(tokens >= 1, "nothing was served");
    device.disconnect().await;
    // The broker still serves a legitimate request afterwards.
    get_token_and_verify(&s, addr, "sensor-2").await;
    broker.shutdown().await;
}
