//! Access tokens inside MQTT 5 sessions (RFC 9431, with certbound's
//! certificate binding) on the embedded server of a running broker: a device
//! gets a token for the MQTT server's audience (`[mqtt] audience`), CONNECTs
//! with Authentication Method `ace`, gains the topic rights of the token's
//! scope, re-authenticates in-session with AUTH, and loses the session when
//! the token expires without re-authentication or is revoked.

use std::path::PathBuf;
use std::time::Duration;

use certbound_agent::mqtt::{MqttConnectSettings, MqttDevice};
use certbound_agent::{DeviceIdentity, TokenRequestParams};
use certbound_broker::server::{RunningBroker, ServeOptions, start};
use certbound_mqtt::MqttError;
use certbound_mqtt::client::{
    Authentication, ClientOptions, Event, Message, MqttClient, MqttEvents, Protocol, QoS,
};
use certbound_registry::config::DataDir;
use certbound_registry::registry::{self, Registry};

const ISSUER: &str = "https://auth.example.com";
const MQTT_API: &str = "urn:certbound:mqtt";
const SCOPE: &str = "pub:plant/+/alerts sub:plant/#";
const GUARD: Duration = Duration::from_secs(20);

struct Setup {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    devices: PathBuf,
}

/// A data directory whose MQTT API grants `SCOPE` with tokens living `ttl` s.
async fn setup(ttl: u64) -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cb");
    let devices = tmp.path().join("devices");
    registry::init(&dir, ISSUER).await.unwrap();
    certbound_e2e::edit_config(&dir, &[("device_per_sec = 1.0", "device_per_sec = 0")]).unwrap();
    let reg = Registry::open(&dir).await.unwrap();
    reg.create_api(MQTT_API, SCOPE, ttl).await.unwrap();
    reg.create_group("plant", &[(MQTT_API.into(), SCOPE.into())])
        .await
        .unwrap();
    for id in ["sensor-1", "sensor-2"] {
        reg.provision_device(id, &["plant".into()], &devices, None)
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
        DeviceIdentity::load(
            &self.devices.join(format!("{id}.key.pem")),
            &self.devices.join(format!("{id}.cert.pem")),
        )
        .unwrap()
    }

    fn settings(&self, id: &str, broker: &RunningBroker) -> MqttConnectSettings {
        let addr = broker.mqtt_addr().unwrap();
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap();
        MqttConnectSettings {
            host: addr.ip().to_string(),
            port: addr.port(),
            ca_pem: read(DataDir::new(&self.dir).pki().chain()),
            cert_pem: read(self.devices.join(format!("{id}.cert.pem"))),
            key_pem: read(self.devices.join(format!("{id}.key.pem"))),
            timeout: Duration::from_secs(10),
        }
    }

    /// A token for the MQTT server's audience, asked for over MQTT.
    async fn token(&self, id: &str, broker: &RunningBroker) -> Vec<u8> {
        let identity = self.identity(id);
        let device = MqttDevice::connect(&identity, &self.settings(id, broker))
            .await
            .unwrap();
        let params = TokenRequestParams::new(ISSUER, MQTT_API).with_scope(SCOPE);
        let token = device.request_token(&identity, &params).await.unwrap();
        device.disconnect().await;
        token.access_token
    }

    /// MQTT 5 client options for `id`, with `token` as RFC 9431 auth data.
    fn options(&self, id: &str, broker: &RunningBroker, token: Option<&[u8]>) -> ClientOptions {
        let s = self.settings(id, broker);
        let tls = certbound_mqtt::client_tls::client_tls_config(&s.ca_pem, &s.cert_pem, &s.key_pem)
            .unwrap();
        let options = ClientOptions::new(format!("{id}-ace"), s.host, s.port)
            .tls(tls)
            .protocol(Protocol::V5);
        match token {
            Some(t) => options.authenticate(Authentication::ace(t.to_vec())),
            None => options,
        }
    }
}

fn claims_of(token: &[u8]) -> certbound_proto::claims::Claims {
    let limits = certbound_proto::cbor::Limits::default();
    certbound_proto::token::UnverifiedToken::parse(token, limits)
        .and_then(|t| t.unverified_claims(limits))
        .expect("token decodes")
}

fn exp_of(token: &[u8]) -> u64 {
    claims_of(token).exp.expect("exp")
}

fn cti_of(token: &[u8]) -> Vec<u8> {
    claims_of(token).cti.expect("cti")
}

fn now() -> u64 {
    certbound_registry::clock::unix_now()
}

/// Waits (without a fixed sleep: the clock is the event) until `unix` has passed.
async fn until(unix: u64) {
    while now() <= unix {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
    .expect("a message in time")
}

/// Waits for the server to end the session; returns the reason.
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
    .expect("the server ends the session in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_in_connect_grants_the_topic_rights_of_its_scope_and_nothing_more() {
    let s = setup(600).await;
    let broker = s.broker().await;
    let t1 = s.token("sensor-1", &broker).await;
    let t2 = s.token("sensor-2", &broker).await;

    // Without a token: the certificate's own namespace only.
    let (plain, _events) = MqttClient::connect(s.options("sensor-1", &broker, None))
        .await
        .unwrap();
    let code = plain.subscribe("plant/#", QoS::AtLeastOnce).await.unwrap();
    assert!(
        matches!(&code, Err(why) if why.contains("NotAuthorized")),
        "{code:?}"
    );
    let refused = plain
        .publish(Message::new("plant/7/alerts", "hot", QoS::AtLeastOnce))
        .await
        .unwrap()
        .wait()
        .await;
    assert!(
        matches!(&refused, Err(MqttError::Publish(why)) if why.contains("NotAuthorized")),
        "{refused:?}"
    );
    plain.disconnect().await;

    // With its token, sensor-2 may read the plant, sensor-1 write alerts.
    let (reader, mut inbox) = MqttClient::connect(
        s.options("sensor-2", &broker, Some(&t2))
            .subscribe("plant/#", QoS::AtLeastOnce),
    )
    .await
    .expect("a valid token is accepted");
    let (writer, _events) = MqttClient::connect(s.options("sensor-1", &broker, Some(&t1)))
        .await
        .unwrap();
    writer
        .publish(Message::new("plant/7/alerts", "hot", QoS::AtLeastOnce))
        .await
        .unwrap()
        .wait()
        .await
        .expect("the scope allows plant/+/alerts");
    let got = next_message(&mut inbox).await;
    assert_eq!(
        (got.topic.as_str(), &got.payload[..]),
        ("plant/7/alerts", &b"hot"[..])
    );
    // Outside the scope: refused with 0x87, the session stays.
    let outside = writer
        .publish(Message::new("plant/7/setpoint", "99", QoS::AtLeastOnce))
        .await
        .unwrap()
        .wait()
        .await;
    assert!(
        matches!(&outside, Err(MqttError::Publish(why)) if why.contains("NotAuthorized")),
        "{outside:?}"
    );
    // The certificate's namespace still works alongside the token.
    writer
        .publish(Message::new(
            "cb/v1/sensor-1/telemetry",
            "t",
            QoS::AtLeastOnce,
        ))
        .await
        .unwrap()
        .wait()
        .await
        .expect("own namespace");
    assert!(writer.is_connected());
    let stats = broker.mqtt_server().expect("embedded server").stats();
    assert!(stats.tokens_accepted >= 2, "{stats:?}");
    writer.disconnect().await;
    reader.disconnect().await;
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_bound_to_another_key_a_foreign_method_and_garbage_are_refused() {
    let s = setup(600).await;
    let broker = s.broker().await;
    let t2 = s.token("sensor-2", &broker).await;

    // sensor-2's token on sensor-1's TLS connection: the cnf key differs.
    let stolen = MqttClient::connect(s.options("sensor-1", &broker, Some(&t2))).await;
    let err = stolen.expect_err("a token bound to another key");
    let text = err.to_string();
    assert!(
        text.contains("NotAuthorized") && text.contains("not bound to this client certificate"),
        "{text}"
    );

    // Another authentication method: 0x8C.
    let options = s
        .options("sensor-1", &broker, None)
        .authenticate(Authentication::new("SCRAM-SHA-1", b"x".to_vec()));
    let err = MqttClient::connect(options)
        .await
        .expect_err("unknown method");
    assert!(err.to_string().contains("BadAuthenticationMethod"), "{err}");

    // Not a token at all.
    let err = MqttClient::connect(s.options("sensor-1", &broker, Some(b"not a token")))
        .await
        .expect_err("garbage");
    assert!(err.to_string().contains("NotAuthorized"), "{err}");

    // Re-authenticating with the stolen token ends a good session (0x87).
    let t1 = s.token("sensor-1", &broker).await;
    let (client, mut events) = MqttClient::connect(s.options("sensor-1", &broker, Some(&t1)))
        .await
        .unwrap();
    let refused = client.reauthenticate(t2.clone()).await;
    assert!(refused.is_err(), "{refused:?}");
    let reason = disconnected(&mut events).await;
    assert!(reason.contains("NotAuthorized"), "{reason}");
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_authentication_keeps_the_session_past_the_first_tokens_expiry_and_without_it_the_session_ends()
 {
    // Tokens live 10 s.
    let s = setup(10).await;
    let broker = s.broker().await;

    // An expired token is refused at CONNECT.
    let old = s.token("sensor-1", &broker).await;
    until(exp_of(&old)).await;
    let err = MqttClient::connect(s.options("sensor-1", &broker, Some(&old)))
        .await
        .expect_err("expired");
    assert!(err.to_string().contains("NotAuthorized"), "{err}");

    // sensor-2 re-authenticates; sensor-1 does not.
    let first = s.token("sensor-2", &broker).await;
    let lazy_token = s.token("sensor-1", &broker).await;
    let (keeper, mut keeper_events) = MqttClient::connect(
        s.options("sensor-2", &broker, Some(&first))
            .subscribe("plant/#", QoS::AtLeastOnce),
    )
    .await
    .unwrap();
    let (lazy, mut lazy_events) =
        MqttClient::connect(s.options("sensor-1", &broker, Some(&lazy_token)))
            .await
            .unwrap();
    // Renew as an agent would, well before expiry: 6 s into the first
    // token's 10, so the fresh one outlives it by about 6 s.
    until(exp_of(&first) - 5).await;
    let fresh = s.token("sensor-2", &broker).await;
    assert!(exp_of(&fresh) >= exp_of(&first) + 5);
    keeper
        .reauthenticate(fresh.clone())
        .await
        .expect("AUTH with a fresh token is accepted");

    // Past the first token's expiry: the re-authenticated session lives on,
    // the other one was ended with 0x87.
    until(exp_of(&first) + 1).await;
    let reason = disconnected(&mut lazy_events).await;
    assert!(reason.contains("NotAuthorized"), "{reason}");
    drop(lazy);
    assert!(keeper.is_connected());
    let (writer, _w) = MqttClient::connect(s.options(
        "sensor-1",
        &broker,
        Some(&s.token("sensor-1", &broker).await),
    ))
    .await
    .unwrap();
    writer
        .publish(Message::new(
            "plant/1/alerts",
            "still here",
            QoS::AtLeastOnce,
        ))
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    let got = next_message(&mut keeper_events).await;
    assert_eq!(
        &got.payload[..],
        b"still here",
        "same session, same subscription"
    );
    let stats = broker.mqtt_server().expect("embedded server").stats();
    assert!(stats.expired_tokens >= 1, "{stats:?}");
    // Without a further AUTH the kept session ends with its second token.
    until(exp_of(&fresh) + 1).await;
    let reason = disconnected(&mut keeper_events).await;
    assert!(reason.contains("NotAuthorized"), "{reason}");
    writer.disconnect().await;
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_ends_its_session_within_the_status_list_ttl() {
    let s = setup(600).await;
    let broker = s.broker().await;
    let token = s.token("sensor-1", &broker).await;
    let (client, mut events) = MqttClient::connect(s.options("sensor-1", &broker, Some(&token)))
        .await
        .unwrap();
    assert!(client.is_connected());
    // Revoke it as `POST /oauth/revoke` or the admin API would.
    let jti = hex::encode(cti_of(&token));
    let store = broker.store().clone();
    let record = tokio::time::timeout(GUARD, async {
        loop {
            if let Some(state) = store.token_state(&jti).await.unwrap() {
                return state.token;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the token is recorded");
    store.revoke_token(&record, now()).await.unwrap();
    let reason = disconnected(&mut events).await;
    assert!(reason.contains("AdministrativeAction"), "{reason}");
    // And it cannot come back with the same token.
    let err = MqttClient::connect(s.options("sensor-1", &broker, Some(&token)))
        .await
        .expect_err("revoked");
    assert!(err.to_string().contains("revoked"), "{err}");
    broker.shutdown().await;
}

/// The Python interpreter with paho-mqtt, if any.
fn python_with_paho() -> Option<PathBuf> {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    [
        std::env::var_os("CERTBOUND_PYTHON").map(PathBuf::from),
        Some(workspace.join(".venv/bin/python")),
        Some("python3".into()),
    ]
    .into_iter()
    .flatten()
    .find(|p| {
        std::process::Command::new(p)
            .args(["-c", "import paho.mqtt.client"])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paho_mqtt5_device_gets_a_token_on_its_response_topic_with_its_correlation_data() {
    let Some(python) = python_with_paho() else {
        return certbound_e2e::mosquitto::skip_or_fail(
            "python with paho-mqtt (tests/interop/requirements.txt)",
        );
    };
    let s = setup(600).await;
    let broker = s.broker().await;
    let identity = s.identity("sensor-1");
    let params = TokenRequestParams::new(ISSUER, MQTT_API).with_scope(SCOPE);
    let request = certbound_agent::build_token_request(&identity, &params, now(), [3; 16]).unwrap();
    let files = s._tmp.path();
    std::fs::write(files.join("request.cose"), &request).unwrap();
    let settings = s.settings("sensor-1", &broker);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop/paho_v5_token.py");
    let output = tokio::task::spawn_blocking({
        let (host, port) = (settings.host.clone(), settings.port.to_string());
        let chain = DataDir::new(&s.dir).pki().chain();
        let cert = s.devices.join("sensor-1.cert.pem");
        let key = s.devices.join("sensor-1.key.pem");
        let request = files.join("request.cose");
        move || {
            std::process::Command::new(python)
                .arg(script)
                .args([host, port])
                .args([chain, cert, key])
                .arg("sensor-1")
                .arg(request)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "paho failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["connack"], 0, "{report}");
    assert_eq!(report["suback"], serde_json::json!([1]), "{report}");
    assert_eq!(report["topic"], "cb/v1/sensor-1/inbox/paho", "{report}");
    assert_eq!(
        report["correlation"], report["sent_correlation"],
        "{report}"
    );
    let answer = hex::decode(report["payload"].as_str().unwrap()).unwrap();
    let token = certbound_agent::decode_token_response(
        certbound_coap::ResponseType::Created,
        Some(certbound_coap::content_format::ACE_CBOR),
        &answer,
    )
    .expect("a token, not an error");
    let claims = claims_of(&token.access_token);
    assert_eq!(claims.sub.as_deref(), Some("sensor-1"));
    assert_eq!(claims.aud, vec![MQTT_API.to_owned()]);
    broker.shutdown().await;
}
