//! A broker with its embedded MQTT server on a fixed port (so it can be
//! restarted on the same port), a backend subscriber with a service identity,
//! a gate between the agent and the server, and helpers to check envelopes.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use certbound_agent::{AgentConfig, AgentStatus, Clock, RunningAgent, SystemClock};
use certbound_broker::server::{RunningBroker, ServeOptions, start};
use certbound_mqtt::client::{ClientOptions, Event, MqttClient, QoS};
use certbound_registry::config::DataDir;
use certbound_registry::registry::{self, Registry};
use certbound_verify::{
    KeySet, Limits, TelemetryPayload, TokenVerifier, UnverifiedTelemetry, VerifiedToken,
    VerifierConfig,
};
use tokio::sync::{mpsc, watch};

pub use super::gate::Gate;

pub const ISSUER: &str = "https://auth.example.com";
pub const API: &str = "https://telemetry.example.com";
pub const DEVICE: &str = "sensor-1";
/// Upper bound for anything the tests wait for.
pub const PATIENCE: Duration = Duration::from_secs(30);

pub fn now() -> u64 {
    certbound_registry::clock::unix_now()
}

/// Waits for `what` with [`PATIENCE`], failing the test with `why`.
pub async fn within<T>(why: &str, what: impl Future<Output = T>) -> T {
    match tokio::time::timeout(PATIENCE, what).await {
        Ok(v) => v,
        Err(_) => panic!("timed out: {why}"),
    }
}

/// A broker data directory with one API, one group and the device `sensor-1`.
pub struct World {
    pub tmp: tempfile::TempDir,
    pub dir: PathBuf,
    pub devices: PathBuf,
    /// The embedded MQTT server's port (the same across restarts).
    pub mqtt_port: u16,
    pub broker: Option<RunningBroker>,
    /// Between the agent and the MQTT server.
    pub gate: Gate,
}

impl World {
    /// `ttl`: token lifetime of the API in seconds (the registry accepts >= 30).
    pub async fn new(ttl: u64) -> World {
        Self::with_pki(ttl, &[]).await
    }

    /// [`World::new`], with `pki` settings (`key`, `value`) written into the
    /// broker's `[pki]` section before it starts (e.g. `device_cert_secs`).
    pub async fn with_pki(ttl: u64, pki: &[(&str, &str)]) -> World {
        // RUST_LOG=certbound_agent=debug shows the agent's decisions.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("cb");
        let devices = tmp.path().join("devices");
        registry::init(&dir, ISSUER).await.expect("init");
        let reg = Registry::open(&dir).await.expect("open registry");
        reg.create_api(API, "telemetry:write", ttl)
            .await
            .expect("api");
        reg.create_group("sensors", &[(API.into(), "telemetry:write".into())])
            .await
            .expect("group");
        reg.provision_device(DEVICE, &["sensors".into()], &devices, None)
            .await
            .expect("device");
        reg.close().await;
        set_pki(&dir, pki);
        // A free port, chosen once so that a restarted server uses it again.
        let mqtt_port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let gate = Gate::start(SocketAddr::from(([127, 0, 0, 1], mqtt_port))).await;
        let mut world = World {
            tmp,
            dir,
            devices,
            mqtt_port,
            broker: None,
            gate,
        };
        world.start_broker().await;
        world
    }

    /// The device's key and certificate files.
    pub fn device_files(&self) -> (PathBuf, PathBuf) {
        (
            self.devices.join(format!("{DEVICE}.key.pem")),
            self.devices.join(format!("{DEVICE}.cert.pem")),
        )
    }

    /// The CA chain (PEM) of the broker's PKI.
    pub fn ca_chain_pem(&self) -> String {
        std::fs::read_to_string(DataDir::new(&self.dir).pki().chain()).expect("CA chain")
    }

    /// Replaces the device's files with a NEW key and a certificate of
    /// `lifetime` seconds issued `issued_ago` seconds ago, registered with
    /// the broker. Returns `(key PEM, chain PEM)`.
    pub async fn short_lived_cert(&self, lifetime: u64, issued_ago: u64) -> (String, String) {
        use p256::pkcs8::{DecodePrivateKey as _, EncodePublicKey as _};
        let ca = certbound_pki::IssuingCa::load(&DataDir::new(&self.dir).pki()).expect("CA");
        let key = certbound_agent::keygen::NewKey::generate(DEVICE).expect("key");
        let spki = p256::SecretKey::from_pkcs8_pem(key.key_pem())
            .expect("the new key")
            .public_key()
            .to_public_key_der()
            .expect("spki");
        let issued_at = now() - issued_ago;
        let cert = ca
            .issue_device_cert_secs(DEVICE, spki.as_bytes(), lifetime, issued_at)
            .expect("short-lived certificate");
        let chain = format!("{}{}", cert.pem, ca.cert_pem());
        let (key_file, cert_file) = self.device_files();
        std::fs::write(&key_file, key.key_pem()).expect("write key");
        std::fs::write(&cert_file, &chain).expect("write cert");
        let store = certbound_broker::store::Store::open(&DataDir::new(&self.dir).database())
            .await
            .expect("store");
        store
            .add_certificate(
                &certbound_broker::store::CertRecord {
                    serial: cert.serial_hex.clone(),
                    device_id: DEVICE.into(),
                    thumbprint: hex(&cert.thumbprint),
                    not_before: cert.not_before,
                    not_after: cert.not_after,
                    status: "active".into(),
                    der: cert.der.clone(),
                },
                now(),
            )
            .await
            .expect("register the certificate");
        store.close().await;
        (key.key_pem().to_string(), chain)
    }

    /// The device's certificates as the broker's registry lists them.
    pub async fn registry_certs(&self) -> Vec<certbound_broker::store::CertRecord> {
        let reg = Registry::open(&self.dir).await.expect("open registry");
        let (_, certs) = reg.show_device(DEVICE).await.expect("device");
        reg.close().await;
        certs
    }

    pub async fn start_broker(&mut self) {
        assert!(self.broker.is_none(), "broker already running");
        let broker = start(
            &self.dir,
            ServeOptions {
                coap_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
                mqtt_listen: Some(SocketAddr::from(([127, 0, 0, 1], self.mqtt_port))),
                https_listen: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
            },
        )
        .await
        .expect("broker starts on its port");
        assert_eq!(broker.mqtt_addr().map(|a| a.port()), Some(self.mqtt_port));
        self.broker = Some(broker);
    }

    /// Copies of messages the running MQTT server queued to subscribers.
    pub fn delivered(&self) -> u64 {
        self.broker
            .as_ref()
            .and_then(|b| b.mqtt_server())
            .map_or(0, |s| s.stats().messages_delivered)
    }

    pub async fn stop_broker(&mut self) {
        if let Some(broker) = self.broker.take() {
            broker.shutdown().await;
        }
    }

    /// Writes an agent configuration file (connecting through the gate) and
    /// loads it the way the binary does. `extra` continues the `[telemetry]`
    /// table and may add more tables; a `[spool]` in the temporary directory
    /// is added unless `extra` has one.
    pub fn agent_config(&self, name: &str, source: &str, extra: &str) -> (PathBuf, AgentConfig) {
        let path = self.tmp.path().join(format!("{name}.toml"));
        let text = format!(
            r#"
[device]
key = "{devices}/{DEVICE}.key.pem"
cert = "{devices}/{DEVICE}.cert.pem"
ca = "{chain}"

[broker]
issuer_id = "{ISSUER}"

[mqtt]
url = "mqtts://127.0.0.1:{port}"
timeout_secs = 5

[[token]]
audience = "{API}"
scope = "telemetry:write"

[retry]
base_ms = 50
max_ms = 400

[telemetry]
source = "{source}"
{extra}
"#,
            devices = self.devices.display(),
            chain = DataDir::new(&self.dir).pki().chain().display(),
            port = self.gate.addr().port(),
        );
        let text = if extra.contains("[spool]") {
            text
        } else {
            format!("{text}\n[spool]\ndir = \"spool-{name}\"\nflush_on_exit_secs = 2\n")
        };
        std::fs::write(&path, text).expect("write config");
        let config = AgentConfig::load(&path).expect("valid agent config");
        (path, config)
    }

    pub async fn agent(&self, config: &AgentConfig, clock: Arc<dyn Clock>) -> RunningAgent {
        certbound_agent::start(config, clock)
            .await
            .expect("agent starts")
    }

    pub async fn agent_now(&self, config: &AgentConfig) -> RunningAgent {
        self.agent(config, Arc::new(SystemClock)).await
    }

    pub fn verifier(&self) -> TokenVerifier {
        let mut keys = KeySet::new();
        for (kid, key) in certbound_registry::keys::public_keys(&DataDir::new(&self.dir).keys())
            .expect("broker keys")
        {
            keys.insert(kid, key).expect("key");
        }
        let mut config = VerifierConfig::new(API);
        config.issuer = Some(ISSUER.into());
        TokenVerifier::new(keys, config)
    }

    /// A backend subscribed to every device's telemetry, with a service
    /// certificate; it reconnects and subscribes again after a server restart.
    pub async fn subscriber(&self) -> Subscriber {
        let ca = certbound_pki::IssuingCa::load(&DataDir::new(&self.dir).pki()).expect("CA");
        let bundle = ca.issue_service("ingest", 30, now()).expect("service cert");
        let chain = std::fs::read_to_string(DataDir::new(&self.dir).pki().chain()).expect("chain");
        let tls = certbound_mqtt::client_tls::client_tls_config(
            &chain,
            &bundle.chain_pem,
            &bundle.key_pkcs8_pem,
        )
        .expect("tls");
        let options = ClientOptions::new("ingest", "127.0.0.1", self.mqtt_port)
            .tls(tls)
            .subscribe("cb/v1/+/telemetry", QoS::AtLeastOnce)
            .reconnect(certbound_proto::schedule::Backoff {
                base_ms: 50,
                max_ms: 50,
                floor_ms: 50,
            });
        let (client, mut events) = MqttClient::connect(options)
            .await
            .expect("the subscriber connects");
        let (tx, rx) = mpsc::unbounded_channel();
        let (ready_tx, ready) = watch::channel(0u64);
        let (count_tx, received) = watch::channel(0u64);
        let task = tokio::spawn(async move {
            let _client = client;
            while let Some(event) = events.recv().await {
                match event {
                    // Once per connection, after the SUBACK.
                    Event::Connected { .. } => ready_tx.send_modify(|n| *n += 1),
                    Event::Message(p) => {
                        let _ = tx.send((p.topic.clone(), p.payload.to_vec()));
                        count_tx.send_modify(|n| *n += 1);
                    }
                    Event::Disconnected { .. } => {}
                }
            }
        });
        let mut subscriber = Subscriber {
            rx,
            ready,
            received,
            task,
        };
        subscriber.wait_subscribed(1).await;
        subscriber
    }
}

/// A backend receiving telemetry.
pub struct Subscriber {
    rx: mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    ready: watch::Receiver<u64>,
    received: watch::Receiver<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Subscriber {
    /// Waits until the subscription was acknowledged `n` times in total
    /// (once per connection).
    pub async fn wait_subscribed(&mut self, n: u64) {
        within(
            "the subscriber subscribes",
            self.ready.wait_for(|c| *c >= n),
        )
        .await
        .expect("subscriber task alive");
    }

    /// Waits until `n` messages were received in total (read or not).
    pub async fn wait_received(&mut self, n: u64) {
        within(
            "the subscriber receives",
            self.received.wait_for(|c| *c >= n),
        )
        .await
        .expect("subscriber task alive");
    }

    /// The next envelope (topic checked).
    pub async fn next(&mut self) -> Vec<u8> {
        let (topic, payload) = within("telemetry arrives", self.rx.recv())
            .await
            .expect("subscriber task alive");
        assert_eq!(topic, format!("cb/v1/{DEVICE}/telemetry"));
        payload
    }

    /// Receives until every seq in `expected` has arrived; returns everything
    /// received (in order), duplicates included.
    pub async fn until_all(&mut self, world: &World, expected: &[u64]) -> Vec<Opened> {
        let mut seen: BTreeMap<u64, (Vec<u8>, u64)> = BTreeMap::new();
        let mut all = Vec::new();
        while !expected.iter().all(|s| seen.contains_key(s)) {
            let Ok(Some((_, envelope))) = tokio::time::timeout(PATIENCE, self.rx.recv()).await
            else {
                let missing: Vec<&u64> =
                    expected.iter().filter(|s| !seen.contains_key(s)).collect();
                let got: Vec<&u64> = seen.keys().collect();
                panic!("timed out; missing {missing:?}\nreceived {got:?}");
            };
            let opened = open(world, &envelope);
            if let Some(first) = seen.get(&opened.payload.seq) {
                // A duplicate (resent after a lost PUBACK) must be the same message.
                assert_eq!(
                    (&opened.payload.data, &opened.payload.timestamp_ms),
                    (&first.0, &first.1),
                    "seq {} arrived twice with different content",
                    opened.payload.seq
                );
            }
            seen.insert(
                opened.payload.seq,
                (opened.payload.data.clone(), opened.payload.timestamp_ms),
            );
            all.push(opened);
        }
        all
    }
}

/// A verified envelope.
#[derive(Debug)]
pub struct Opened {
    pub payload: TelemetryPayload,
    pub token: VerifiedToken,
}

/// Verifies an envelope as a backend does: token (signature, audience,
/// scope, expiry, issuer), then the proof of possession and the cti link.
pub fn open(world: &World, envelope: &[u8]) -> Opened {
    let parsed = UnverifiedTelemetry::parse(envelope, Limits::default()).expect("an envelope");
    let token = world
        .verifier()
        .verify(&parsed.token, &["telemetry:write"], now())
        .expect("the attached token verifies");
    assert_eq!(token.device_id(), Some(DEVICE));
    let payload = token
        .check_telemetry_pop(&parsed, Limits::default())
        .expect("signed by the device key named in the token");
    Opened { payload, token }
}

/// Sets `key = value` lines in the `[pki]` section of the broker config.
fn set_pki(dir: &Path, settings: &[(&str, &str)]) {
    if settings.is_empty() {
        return;
    }
    let path = DataDir::new(dir).config();
    let text = std::fs::read_to_string(&path).expect("broker config");
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for (key, value) in settings {
        let line = format!("{key} = {value}");
        if let Some(l) = lines
            .iter_mut()
            .find(|l| l.split('=').next().map(str::trim) == Some(*key))
        {
            *l = line;
        } else {
            let at = lines
                .iter()
                .position(|l| l.trim() == "[pki]")
                .expect("a [pki] section");
            lines.insert(at + 1, line);
        }
    }
    std::fs::write(&path, lines.join("\n") + "\n").expect("write broker config");
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The first certificate (DER) of a PEM chain.
pub fn leaf(chain_pem: &str) -> Vec<u8> {
    certbound_pki::parse_pem_certs(chain_pem)
        .expect("PEM chain")
        .remove(0)
}

/// Waits for `what` for at most `secs` seconds, failing the test with `why`.
pub async fn within_secs<T>(secs: u64, why: &str, what: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(secs), what).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {secs} s: {why}"),
    }
}

/// Waits until the agent's status satisfies `f`.
pub async fn until_status(
    agent: &RunningAgent,
    why: &str,
    f: impl FnMut(&AgentStatus) -> bool,
) -> AgentStatus {
    let mut status = agent.status();
    within(why, status.wait_for(f))
        .await
        .expect("agent running")
        .clone()
}

/// Message files in a spool directory, by seq.
pub fn spool_files(dir: &Path) -> Vec<u64> {
    let mut seqs: Vec<u64> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter_map(|e| certbound_agent::spool::parse_file_name(e.file_name().to_str()?))
                .collect()
        })
        .unwrap_or_default();
    seqs.sort_unstable();
    seqs
}

/// Sends one datagram to a `udp:` source and returns its answer.
pub async fn send_udp(socket: &tokio::net::UdpSocket, to: SocketAddr, data: &[u8]) -> String {
    socket.send_to(data, to).await.expect("send");
    let mut buf = [0u8; 512];
    let (n, _) = within("the agent answers", socket.recv_from(&mut buf))
        .await
        .expect("recv");
    String::from_utf8_lossy(&buf[..n]).trim().to_string()
}

/// The seq in an `ok <seq>` answer.
pub fn accepted(answer: &str) -> u64 {
    answer
        .strip_prefix("ok ")
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("expected ok <seq>, got {answer:?}"))
}
