//! Shared test fixtures: a throw-away PKI, a running server, clients
//! (`certbound_mqtt::client`) over mutual TLS.
#![allow(dead_code, missing_docs)]

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use certbound_mqtt::client::{ClientOptions, Event, Message, MqttClient, MqttEvents, QoS};
use certbound_mqtt::{Authorizer, CertboundAcl, MqttError, MqttServer, MqttServerConfig};
use certbound_pki::{CaOptions, DeviceBundle, IssuingCa, PkiPaths, init_ca};
use rumqttc::SubscribeReasonCode;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Failure guard for anything awaited.
pub const GUARD: Duration = Duration::from_secs(10);

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// A CA in a temporary directory.
pub struct Pki {
    pub tmp: tempfile::TempDir,
    pub ca: IssuingCa,
    /// `pki/ca-chain.pem`.
    pub chain_pem: String,
}

impl Pki {
    pub fn new() -> Pki {
        // RUST_LOG=certbound_mqtt=debug shows the server's side of a failing test.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let tmp = tempfile::tempdir().expect("tempdir");
        let paths = PkiPaths::new(tmp.path());
        init_ca(&paths, &CaOptions::default(), now()).expect("init ca");
        let ca = IssuingCa::load(&paths).expect("load ca");
        let chain_pem = std::fs::read_to_string(paths.chain()).expect("ca chain");
        Pki { tmp, ca, chain_pem }
    }

    pub fn device(&self, id: &str) -> DeviceBundle {
        self.ca.issue_device(id, 30, now()).expect("device cert")
    }

    pub fn service(&self, name: &str) -> DeviceBundle {
        self.ca
            .issue_service(name, 30, now())
            .expect("service cert")
    }

    pub fn config(&self) -> MqttServerConfig {
        let server = self
            .ca
            .issue_server(&["localhost".into(), "127.0.0.1".into()], 30, now())
            .expect("server cert");
        MqttServerConfig::new(
            "127.0.0.1:0".parse().expect("addr"),
            server.chain_pem,
            server.key_pkcs8_pem,
            self.chain_pem.clone(),
        )
    }

    pub async fn start(&self) -> MqttServer {
        self.start_with(CertboundAcl::new().with_broker("certbound-broker"))
            .await
    }

    pub async fn start_with<A: Authorizer>(&self, acl: A) -> MqttServer {
        MqttServer::bind(self.config(), Arc::new(acl))
            .await
            .expect("server starts")
    }
}

/// A rustls client configuration trusting `roots_pem`, authenticating with
/// `client` when given.
pub fn client_tls(roots_pem: &str, client: Option<&DeviceBundle>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for der in CertificateDer::pem_slice_iter(roots_pem.as_bytes()) {
        roots.add(der.expect("root pem")).expect("root cert");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let config = match client {
        Some(bundle) => {
            let chain = CertificateDer::pem_slice_iter(bundle.chain_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .expect("chain pem");
            let key =
                PrivateKeyDer::from_pem_slice(bundle.key_pkcs8_pem.as_bytes()).expect("key pem");
            builder
                .with_client_auth_cert(chain, key)
                .expect("client auth")
        }
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

/// A received message (topic, payload, QoS, MQTT 5 properties).
pub type Publish = Message;

/// A connected client (no reconnection): its events are queued until a
/// test looks at them.
pub struct Client {
    pub client: MqttClient,
    events: MqttEvents,
    publishes: VecDeque<Publish>,
    /// Why the connection ended, once it has.
    pub closed: Option<String>,
}

/// Connects `client_id` with `tls` to `server`; `Err` when the connection
/// or CONNACK fails.
pub async fn connect_with(
    server: &MqttServer,
    client_id: &str,
    tls: Arc<rustls::ClientConfig>,
) -> Result<Client, MqttError> {
    let options = ClientOptions::new(client_id, "localhost", server.local_addr().port()).tls(tls);
    let (client, events) = tokio::time::timeout(GUARD, MqttClient::connect(options))
        .await
        .expect("connect finishes in time")?;
    Ok(Client {
        client,
        events,
        publishes: VecDeque::new(),
        closed: None,
    })
}

/// Connects with a certificate issued by `pki` (TLS set up by the crate's
/// own `client_tls_config`).
pub async fn connect(
    server: &MqttServer,
    pki: &Pki,
    client_id: &str,
    bundle: &DeviceBundle,
) -> Client {
    let tls = certbound_mqtt::client_tls::client_tls_config(
        &pki.chain_pem,
        &bundle.chain_pem,
        &bundle.key_pkcs8_pem,
    )
    .expect("client TLS config");
    connect_with(server, client_id, tls)
        .await
        .expect("client connects")
}

impl Client {
    /// Handles one event: publishes are queued. Returns `false` once the
    /// connection is closed.
    async fn pump(&mut self) -> bool {
        if self.closed.is_some() {
            return false;
        }
        match self.events.recv().await {
            Some(Event::Message(p)) => self.publishes.push_back(p),
            Some(Event::Connected { .. }) => {}
            Some(Event::Disconnected { reason }) => {
                self.closed = Some(reason);
                return false;
            }
            None => {
                self.closed = Some("the client stopped".into());
                return false;
            }
        }
        true
    }

    /// Drops the connection without DISCONNECT.
    pub fn abort(&self) {
        let client = self.client.clone();
        tokio::spawn(async move { client.abort().await });
    }

    /// Subscribes and returns the SUBACK codes.
    pub async fn subscribe(&mut self, filter: &str, qos: QoS) -> Vec<SubscribeReasonCode> {
        let granted = tokio::time::timeout(GUARD, self.client.subscribe(filter, qos))
            .await
            .expect("SUBACK in time")
            .expect("subscribed or refused");
        vec![match granted {
            Ok(q) => SubscribeReasonCode::Success(q),
            Err(_) => SubscribeReasonCode::Failure,
        }]
    }

    pub async fn publish(&self, topic: &str, qos: QoS, payload: impl Into<Vec<u8>>) {
        let _delivery = self
            .client
            .publish(Message::new(topic, payload.into(), qos))
            .await
            .expect("queue publish");
    }

    /// The next message received (failure guard: [`GUARD`]).
    pub async fn next_publish(&mut self) -> Publish {
        tokio::time::timeout(GUARD, async {
            loop {
                if let Some(p) = self.publishes.pop_front() {
                    return p;
                }
                if !self.pump().await && self.publishes.is_empty() {
                    panic!(
                        "connection closed while waiting for a message: {:?}",
                        self.closed
                    );
                }
            }
        })
        .await
        .expect("message in time")
    }

    /// Waits until the server closes the connection; returns the reason.
    pub async fn closed(&mut self) -> String {
        tokio::time::timeout(GUARD, async { while self.pump().await {} })
            .await
            .expect("connection closes in time");
        format!("{:?}", self.closed)
    }
}

/// Polls `f` until it holds (failure guard: [`GUARD`]).
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + GUARD;
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
