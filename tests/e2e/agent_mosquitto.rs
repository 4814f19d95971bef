//! The whole MQTT path through a real Mosquitto with mutual TLS: the
//! `certbound-agent` daemon gets its token from a broker in external mode and
//! publishes telemetry; a backend subscribed with a service identity verifies
//! every message offline (token, proof of possession, sequence numbers).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use certbound_agent::{AgentConfig, SystemClock};
use certbound_broker::server::{ServeOptions, start};
use certbound_e2e::mosquitto::{Mosquitto, skip_or_fail};
use certbound_mqtt::client::{ClientOptions, Event, MqttClient, QoS};
use certbound_registry::config::DataDir;
use certbound_registry::registry::{self, Registry};
use certbound_verify::{KeySet, TelemetryConfig, TelemetryVerifier, TokenVerifier, VerifierConfig};

const ISSUER: &str = "https://auth.example.com";
const API: &str = "https://telemetry.example.com";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_telemetry_through_mosquitto_is_verified_by_the_backend() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cb");
    let devices: PathBuf = tmp.path().join("devices");
    registry::init(&dir, ISSUER).await.unwrap();
    let reg = Registry::open(&dir).await.unwrap();
    reg.create_api(API, "telemetry:write", 3600).await.unwrap();
    reg.create_group("sensors", &[(API.into(), "telemetry:write".into())])
        .await
        .unwrap();
    reg.provision_device("sensor-1", &["sensors".into()], &devices, None)
        .await
        .unwrap();
    reg.provision_service("ingest", &devices, 30).await.unwrap();
    reg.close().await;
    let Some(mosquitto) = Mosquitto::start(&dir) else {
        return skip_or_fail("mosquitto (Debian package mosquitto)");
    };
    let config_path = dir.join("certbound.toml");
    let text = std::fs::read_to_string(&config_path).unwrap().replace(
        "mode = \"embedded\"",
        &format!("mode = \"external\"\nurl = \"mqtts://{}\"", mosquitto.addr),
    );
    std::fs::write(&config_path, text).unwrap();
    let broker = start(
        &dir,
        ServeOptions {
            coap_listen: Some("127.0.0.1:0".parse().unwrap()),
            mqtt_listen: None,
            https_listen: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
        },
    )
    .await
    .unwrap();

    // The backend: service identity "ingest", subscribed to every device's telemetry.
    let chain = DataDir::new(&dir).pki().chain();
    let read = |p: PathBuf| std::fs::read_to_string(p).unwrap();
    let tls = certbound_mqtt::client_tls::client_tls_config(
        &read(chain.clone()),
        &read(devices.join("ingest.cert.pem")),
        &read(devices.join("ingest.key.pem")),
    )
    .unwrap();
    let options = ClientOptions::new("ingest", "127.0.0.1", mosquitto.addr.port())
        .tls(tls)
        .subscribe("cb/v1/+/telemetry", QoS::AtLeastOnce);
    let (client, mut events) = MqttClient::connect(options).await.unwrap();

    // The device agent, reading telemetry from a local UDP port.
    let agent_toml = tmp.path().join("agent.toml");
    std::fs::write(
        &agent_toml,
        format!(
            "[device]\nkey = \"{d}/sensor-1.key.pem\"\ncert = \"{d}/sensor-1.cert.pem\"\nca = \"{chain}\"\n\n\
             [broker]\nissuer_id = \"{ISSUER}\"\n\n[mqtt]\nurl = \"mqtts://{mq}\"\n\n\
             [[token]]\naudience = \"{API}\"\nscope = \"telemetry:write\"\n\n\
             [telemetry]\nsource = \"udp:127.0.0.1:0\"\n\n[spool]\ndir = \"spool\"\n",
            d = devices.display(),
            chain = chain.display(),
            mq = mosquitto.addr,
        ),
    )
    .unwrap();
    let config = AgentConfig::load(&agent_toml).unwrap();
    let agent = certbound_agent::start(&config, Arc::new(SystemClock))
        .await
        .unwrap();
    let source = agent.source_addr().unwrap();
    let firmware = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    const N: usize = 10;
    for i in 0..N {
        firmware
            .send_to(format!("temperature={i}").as_bytes(), source)
            .await
            .unwrap();
        let mut buf = [0u8; 128];
        let (n, _) = tokio::time::timeout(Duration::from_secs(10), firmware.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(
            buf[..n].starts_with(b"ok "),
            "{}",
            String::from_utf8_lossy(&buf[..n])
        );
    }

    let mut keys = KeySet::new();
    for (kid, key) in certbound_registry::keys::public_keys(&DataDir::new(&dir).keys()).unwrap() {
        keys.insert(kid, key).unwrap();
    }
    let mut vc = VerifierConfig::new(API);
    vc.issuer = Some(ISSUER.into());
    let verifier = TelemetryVerifier::new(TokenVerifier::new(keys, vc), TelemetryConfig::default());
    let mut seen = Vec::new();
    while seen.len() < N {
        let event = tokio::time::timeout(Duration::from_secs(15), events.recv())
            .await
            .expect("telemetry arrives")
            .expect("the subscriber stays connected");
        if let Event::Message(p) = event {
            let device = certbound_proto::topics::parse(&p.topic).map(|(d, _)| d);
            let msg = verifier
                .verify(&p.payload, device, certbound_registry::clock::unix_now())
                .unwrap();
            assert_eq!(msg.device_id, "sensor-1");
            seen.push(String::from_utf8(msg.data).unwrap());
        }
    }
    let expected: Vec<String> = (0..N).map(|i| format!("temperature={i}")).collect();
    assert_eq!(seen, expected, "every reading, once, in order");
    assert_eq!(verifier.stats().accepted, N as u64);
    agent.shutdown().await.unwrap();
    client.disconnect().await;
    broker.shutdown().await;
}
