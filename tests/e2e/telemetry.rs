//! Telemetry through the embedded MQTT server to a verifying backend, and the
//! attacks a backend must refuse: another device's token (no proof of
//! possession), replays, tampering, expired tokens, wrong audience or scope.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use certbound_agent::mqtt::{MqttConnectSettings, MqttDevice};
use certbound_agent::{DeviceIdentity, TokenRequestParams};
use certbound_broker::server::{RunningBroker, ServeOptions, start};
use certbound_mqtt::client::{ClientOptions, Event, MqttClient, QoS};
use certbound_proto::telemetry::{TelemetryPayload, seal};
use certbound_proto::topics::TopicKind;
use certbound_registry::config::DataDir;
use certbound_registry::registry::{self, Registry};
use certbound_verify::{KeySet, TelemetryConfig, TelemetryVerifier, TokenVerifier, VerifierConfig};
use tokio::sync::mpsc;

const ISSUER: &str = "https://auth.example.com";
const API: &str = "https://telemetry.example.com";
const OTHER_API: &str = "https://firmware.example.com";

struct World {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    devices: PathBuf,
    broker: RunningBroker,
}

async fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cb");
    let devices = tmp.path().join("devices");
    registry::init(&dir, ISSUER).await.unwrap();
    let reg = Registry::open(&dir).await.unwrap();
    reg.create_api(API, "telemetry:write telemetry:read", 3600)
        .await
        .unwrap();
    reg.create_api(OTHER_API, "firmware:read", 3600)
        .await
        .unwrap();
    reg.create_group(
        "sensors",
        &[
            (API.into(), "telemetry:write telemetry:read".into()),
            (OTHER_API.into(), "firmware:read".into()),
        ],
    )
    .await
    .unwrap();
    for id in ["sensor-a", "sensor-b"] {
        reg.provision_device(id, &["sensors".into()], &devices, None)
            .await
            .unwrap();
    }
    reg.provision_service("ingest", &devices, 30).await.unwrap();
    reg.close().await;
    let broker = start(
        &dir,
        ServeOptions {
            coap_listen: Some("127.0.0.1:0".parse().unwrap()),
            mqtt_listen: Some("127.0.0.1:0".parse().unwrap()),
            https_listen: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
        },
    )
    .await
    .unwrap();
    World {
        _tmp: tmp,
        dir,
        devices,
        broker,
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap()
}

impl World {
    fn settings(&self, name: &str) -> MqttConnectSettings {
        let addr = self.broker.mqtt_addr().unwrap();
        MqttConnectSettings {
            host: addr.ip().to_string(),
            port: addr.port(),
            ca_pem: read(&DataDir::new(&self.dir).pki().chain()),
            cert_pem: read(&self.devices.join(format!("{name}.cert.pem"))),
            key_pem: read(&self.devices.join(format!("{name}.key.pem"))),
            timeout: Duration::from_secs(10),
        }
    }

    async fn device(&self, id: &str) -> (DeviceIdentity, MqttDevice) {
        let identity = DeviceIdentity::load(
            &self.devices.join(format!("{id}.key.pem")),
            &self.devices.join(format!("{id}.cert.pem")),
        )
        .unwrap();
        let device = MqttDevice::connect(&identity, &self.settings(id))
            .await
            .unwrap();
        (identity, device)
    }

    fn verifier(&self) -> TelemetryVerifier {
        let mut keys = KeySet::new();
        for (kid, key) in
            certbound_registry::keys::public_keys(&DataDir::new(&self.dir).keys()).unwrap()
        {
            keys.insert(kid, key).unwrap();
        }
        let mut config = VerifierConfig::new(API);
        config.issuer = Some(ISSUER.into());
        TelemetryVerifier::new(
            TokenVerifier::new(keys, config),
            TelemetryConfig {
                required_scopes: vec!["telemetry:write".into()],
                ..TelemetryConfig::default()
            },
        )
    }

    /// A service subscriber on `cb/v1/+/telemetry`; yields (topic, payload).
    async fn ingest(&self) -> mpsc::Receiver<(String, Vec<u8>)> {
        let s = self.settings("ingest");
        let tls = certbound_mqtt::client_tls::client_tls_config(&s.ca_pem, &s.cert_pem, &s.key_pem)
            .unwrap();
        let options = ClientOptions::new("ingest", s.host, s.port)
            .tls(tls)
            .subscribe("cb/v1/+/telemetry", QoS::AtLeastOnce);
        let (client, mut events) =
            tokio::time::timeout(Duration::from_secs(10), MqttClient::connect(options))
                .await
                .unwrap()
                .unwrap();
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            let _client = client;
            while let Some(event) = events.recv().await {
                if let Event::Message(p) = event
                    && tx
                        .send((p.topic.clone(), p.payload.to_vec()))
                        .await
                        .is_err()
                {
                    return;
                }
            }
        });
        rx
    }
}

fn now() -> u64 {
    certbound_registry::clock::unix_now()
}

fn payload(seq: u64, data: &str, cti: &[u8]) -> TelemetryPayload {
    TelemetryPayload {
        seq,
        timestamp_ms: now() * 1000,
        data: data.as_bytes().to_vec(),
        token_cti: cti.to_vec(),
    }
}

fn cti_of(token: &[u8]) -> Vec<u8> {
    certbound_proto::token::UnverifiedToken::parse(token, Default::default())
        .unwrap()
        .unverified_claims(Default::default())
        .unwrap()
        .cti
        .unwrap()
}

async fn next(rx: &mut mpsc::Receiver<(String, Vec<u8>)>) -> (String, Vec<u8>) {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("telemetry arrives")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_accepts_genuine_telemetry_and_refuses_every_attack() {
    let w = world().await;
    let verifier = Arc::new(w.verifier());
    let mut rx = w.ingest().await;
    let (a_id, a) = w.device("sensor-a").await;
    let (b_id, b) = w.device("sensor-b").await;
    let params = TokenRequestParams::new(ISSUER, API).with_scope("telemetry:write");
    let a_token = a.request_token(&a_id, &params).await.unwrap().access_token;
    let b_token = b.request_token(&b_id, &params).await.unwrap().access_token;
    let a_cti = cti_of(&a_token);
    let b_cti = cti_of(&b_token);

    // Genuine messages: accepted, seq increasing.
    for seq in 1..=3 {
        let env = seal(
            &a_token,
            &payload(seq, &format!("t={seq}"), &a_cti),
            a_id.signer(),
        )
        .unwrap();
        a.publish(TopicKind::Telemetry, env).await.unwrap();
        let (topic, bytes) = next(&mut rx).await;
        assert_eq!(topic, "cb/v1/sensor-a/telemetry");
        let msg = verifier.verify(&bytes, Some("sensor-a"), now()).unwrap();
        assert_eq!((msg.device_id.as_str(), msg.seq), ("sensor-a", seq));
    }

    let reject = |bytes: &[u8], device: &str| {
        verifier
            .verify(bytes, Some(device), now())
            .unwrap_err()
            .reason_code()
    };

    // 1. A replays its own message: refused.
    let env = seal(&a_token, &payload(4, "t=4", &a_cti), a_id.signer()).unwrap();
    a.publish(TopicKind::Telemetry, env.clone()).await.unwrap();
    a.publish(TopicKind::Telemetry, env).await.unwrap();
    let (_, first) = next(&mut rx).await;
    let (_, again) = next(&mut rx).await;
    verifier.verify(&first, Some("sensor-a"), now()).unwrap();
    assert_eq!(reject(&again, "sensor-a"), "replay");

    // 2. A attaches B's token (stolen) and signs with its own key: no proof of possession.
    let env = seal(&b_token, &payload(100, "forged", &b_cti), a_id.signer()).unwrap();
    a.publish(TopicKind::Telemetry, env).await.unwrap();
    let (topic, bytes) = next(&mut rx).await;
    let reason = reject(&bytes, certbound_proto::topics::parse(&topic).unwrap().0);
    assert!(reason == "topic" || reason == "pop", "{reason}");
    // Even presented as if it came from B's topic, the body is not B's signature.
    assert_eq!(reject(&bytes, "sensor-b"), "pop");

    // 3. Tampered payload (one byte of the data changed after signing).
    let mut env = seal(
        &a_token,
        &payload(5, "temperature=21", &a_cti),
        a_id.signer(),
    )
    .unwrap();
    let pos = env
        .windows(14)
        .position(|w| w == b"temperature=21")
        .unwrap();
    env[pos + 12] = b'9';
    a.publish(TopicKind::Telemetry, env).await.unwrap();
    let (_, bytes) = next(&mut rx).await;
    assert_eq!(reject(&bytes, "sensor-a"), "pop");

    // 4. Expired token: the same envelope checked two hours later.
    let env = seal(&a_token, &payload(6, "late", &a_cti), a_id.signer()).unwrap();
    assert_eq!(
        verifier
            .verify(&env, Some("sensor-a"), now() + 7200)
            .unwrap_err()
            .reason_code(),
        "expired"
    );

    // 5. A token for another audience, and one without the scope.
    let fw = a
        .request_token(&a_id, &TokenRequestParams::new(ISSUER, OTHER_API))
        .await
        .unwrap()
        .access_token;
    let env = seal(&fw, &payload(7, "x", &cti_of(&fw)), a_id.signer()).unwrap();
    assert_eq!(reject(&env, "sensor-a"), "audience");
    let read_only = a
        .request_token(
            &a_id,
            &TokenRequestParams::new(ISSUER, API).with_scope("telemetry:read"),
        )
        .await
        .unwrap()
        .access_token;
    let env = seal(
        &read_only,
        &payload(8, "x", &cti_of(&read_only)),
        a_id.signer(),
    )
    .unwrap();
    assert_eq!(reject(&env, "sensor-a"), "scope");

    // 6. B publishing on A's topic is refused by the MQTT server itself: the
    //    ingester never receives it, and the next message it sees is A's.
    let env = seal(&b_token, &payload(50, "b-on-a", &b_cti), b_id.signer()).unwrap();
    let _ = b.publish_raw("cb/v1/sensor-a/telemetry", env).await;
    let env = seal(&a_token, &payload(9, "after", &a_cti), a_id.signer()).unwrap();
    a.publish(TopicKind::Telemetry, env).await.unwrap();
    let (topic, bytes) = next(&mut rx).await;
    assert_eq!(topic, "cb/v1/sensor-a/telemetry");
    assert_eq!(
        verifier
            .verify(&bytes, Some("sensor-a"), now())
            .unwrap()
            .seq,
        9
    );

    let stats = verifier.stats();
    assert_eq!(stats.accepted, 5);
    a.disconnect().await;
    w.broker.shutdown().await;
}
