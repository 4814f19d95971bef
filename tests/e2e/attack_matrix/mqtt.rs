//! Attack-matrix cases for MQTT: the embedded server's roles, topics and
//! connects (and, where the rule lives in the documented Mosquitto ACL, a real
//! Mosquitto). Each case drives raw MQTT 3.1.1 packets (rumqttc's codec) over
//! tokio-rustls against a real broker, asserts the specific refusal (CONNACK
//! or SUBACK code, the connection closed without PUBACK, the server's refusal
//! counter) and then that a legitimate device still gets a token over MQTT.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use bytes::BytesMut;
use certbound_agent::{DeviceIdentity, TokenRequestParams, build_token_request};
use certbound_broker::config::DataDir;
use certbound_broker::registry::{self, BulkControl, BulkOptions, Registry};
use certbound_broker::server::{RunningBroker, ServeOptions, start};
use certbound_broker::store::CertRecord;
use certbound_e2e::mosquitto::{Mosquitto, skip_or_fail};
use certbound_e2e::{
    API, API_SCOPES, API_TTL, GRANTED_SCOPE, GROUP, ISSUER, edit_config, nonce, unix_now,
    verifier_for,
};
use certbound_mqtt::MqttStats;
use certbound_proto::ace::AceResponse;
use certbound_proto::cbor::Limits;
use rumqttc::mqttbytes::v4::{
    ConnectReturnCode, Packet, Publish, Subscribe, SubscribeFilter, SubscribeReasonCode,
};
use rumqttc::mqttbytes::{Error as CodecError, QoS};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Failure guard for anything awaited (never reached when things work).
const GUARD: Duration = Duration::from_secs(20);
/// The broker's own service name (registry::BROKER_SERVICE_NAME).
const BROKER_NAME: &str = "certbound-broker";

// === fixture ===

/// A certificate and key on disk.
#[derive(Debug, Clone)]
struct Creds {
    id: String,
    key_file: PathBuf,
    cert_file: PathBuf,
}

/// A broker with the embedded MQTT server on a fresh data directory.
struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    registry: Registry,
    broker: Option<RunningBroker>,
    addr: SocketAddr,
}

impl Fixture {
    async fn new() -> anyhow::Result<Self> {
        Self::with_config(&[]).await
    }

    async fn with_config(edits: &[(&str, &str)]) -> anyhow::Result<Self> {
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path().join("cb");
        let registry = prepare(&dir, edits).await?;
        let broker = start(&dir, listen_options()?).await?;
        let addr = broker.mqtt_addr().context("the embedded MQTT server is off")?;
        Ok(Fixture {
            _tmp: tmp,
            dir,
            registry,
            broker: Some(broker),
            addr,
        })
    }

    fn stats(&self) -> MqttStats {
        self.broker
            .as_ref()
            .and_then(RunningBroker::mqtt_server)
            .map(certbound_mqtt::MqttServer::stats)
            .unwrap_or_default()
    }

    async fn device(&self, id: &str) -> anyhow::Result<Creds> {
        provision_device(&self.registry, &self.dir, id).await
    }

    async fn service(&self, name: &str) -> anyhow::Result<Creds> {
        let p = self
            .registry
            .provision_service(name, &self.dir.join("services"), 30)
            .await?;
        Ok(Creds {
            id: name.into(),
            key_file: p.key_file,
            cert_file: p.cert_file,
        })
    }

    /// A TLS connection (no MQTT yet).
    async fn tls(&self, who: &Creds) -> anyhow::Result<Raw> {
        Raw::tls(self.addr, &self.dir, who).await
    }

    /// A connection whose CONNECT was accepted.
    async fn session(&self, who: &Creds, client_id: &str) -> anyhow::Result<Raw> {
        let mut raw = self.tls(who).await?;
        let code = raw.connect(client_id).await?;
        ensure!(code == ConnectReturnCode::Success, "CONNECT of {}: {code:?}", who.id);
        Ok(raw)
    }

    /// The check after every refusal: `device` gets a verifiable token over MQTT.
    async fn assert_serves(&self, device: &Creds) -> anyhow::Result<()> {
        let mut raw = self.session(device, &format!("{}-check", device.id)).await?;
        assert_token_over_mqtt(&mut raw, &self.dir, device).await
    }

    async fn shutdown(mut self) {
        if let Some(broker) = self.broker.take() {
            broker.shutdown().await;
        }
        self.registry.close().await;
    }
}

fn listen_options() -> anyhow::Result<ServeOptions> {
    Ok(ServeOptions {
        coap_listen: Some("127.0.0.1:0".parse()?),
        mqtt_listen: Some("127.0.0.1:0".parse()?),
        https_listen: Some("127.0.0.1:0".parse()?),
    })
}

/// `init`, the API and the group; returns the registry.
async fn prepare(dir: &Path, edits: &[(&str, &str)]) -> anyhow::Result<Registry> {
    registry::init(dir, ISSUER).await?;
    edit_config(dir, &[("device_per_sec = 1.0", "device_per_sec = 0")])?;
    edit_config(dir, edits)?;
    let registry = Registry::open(dir).await?;
    registry.create_api(API, API_SCOPES, API_TTL).await?;
    registry
        .create_group(GROUP, &[(API.into(), GRANTED_SCOPE.into())])
        .await?;
    Ok(registry)
}

async fn provision_device(registry: &Registry, dir: &Path, id: &str) -> anyhow::Result<Creds> {
    let p = registry
        .provision_device(id, &[GROUP.to_string()], &dir.join("devices"), None)
        .await?;
    Ok(Creds {
        id: id.into(),
        key_file: p.key_file,
        cert_file: p.cert_file,
    })
}

/// Subscribes to the device's `token/res`, asks for a token on `token/req`
/// and requires a token that verifies for [`API`].
async fn assert_token_over_mqtt(raw: &mut Raw, dir: &Path, device: &Creds) -> anyhow::Result<()> {
    let res = format!("cb/v1/{}/token/res", device.id);
    let codes = raw.subscribe(&[&res]).await?;
    ensure!(
        codes == [SubscribeReasonCode::Success(QoS::AtLeastOnce)],
        "{res}: {codes:?}"
    );
    let identity = DeviceIdentity::load(&device.key_file, &device.cert_file)?;
    let mut params = TokenRequestParams::new(ISSUER, API);
    params.scope = Some(GRANTED_SCOPE.into());
    let request = build_token_request(&identity, &params, unix_now(), nonce())?;
    raw.publish(&format!("cb/v1/{}/token/req", device.id), request, 7)
        .await?;
    loop {
        match raw.next().await? {
            Some(Packet::PubAck(_)) => {}
            Some(Packet::Publish(p)) => {
                ensure!(p.topic == res, "answer on {}", p.topic);
                let AceResponse::Token(token) = AceResponse::from_cbor(&p.payload, Limits::default())?
                else {
                    bail!("the broker refused {}: {:?}", device.id, p.payload);
                };
                let verified = verifier_for(dir, API)?.verify(
                    &token.access_token,
                    &[GRANTED_SCOPE],
                    unix_now(),
                )?;
                ensure!(verified.device_id() == Some(device.id.as_str()));
                return Ok(());
            }
            other => bail!("expected the token answer for {}, got {other:?}", device.id),
        }
    }
}

// === a raw MQTT 3.1.1 client over mutual TLS ===

struct Raw {
    tls: TlsStream<TcpStream>,
    buf: BytesMut,
    next_pkid: u16,
}

impl Raw {
    async fn tls(addr: SocketAddr, dir: &Path, who: &Creds) -> anyhow::Result<Raw> {
        let config = certbound_mqtt::client_tls::client_tls_config(
            &std::fs::read_to_string(DataDir::new(dir).pki().chain())?,
            &std::fs::read_to_string(&who.cert_file)?,
            &std::fs::read_to_string(&who.key_file)?,
        )?;
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let name = rustls_pki_types::ServerName::try_from("localhost")?;
        let tls = tokio::time::timeout(GUARD, TlsConnector::from(config).connect(name, tcp))
            .await
            .context("TLS handshake timed out")??;
        Ok(Raw {
            tls,
            buf: BytesMut::new(),
            next_pkid: 1,
        })
    }

    async fn send_raw(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.tls.write_all(bytes).await?;
        self.tls.flush().await?;
        Ok(())
    }

    async fn send(&mut self, packet: Packet) -> anyhow::Result<()> {
        let mut out = BytesMut::new();
        packet.write(&mut out, usize::MAX)?;
        self.send_raw(&out).await
    }

    /// The next packet from the server; `None` once it closed the connection.
    async fn next(&mut self) -> anyhow::Result<Option<Packet>> {
        tokio::time::timeout(GUARD, async {
            loop {
                match Packet::read(&mut self.buf, usize::MAX) {
                    Ok(packet) => return Ok(Some(packet)),
                    Err(CodecError::InsufficientBytes(_)) => {}
                    Err(e) => bail!("the server sent a malformed packet: {e}"),
                }
                let mut chunk = [0u8; 4096];
                match self.tls.read(&mut chunk).await {
                    // A close_notify, a FIN or a reset: closed either way.
                    Ok(0) | Err(_) => return Ok(None),
                    Ok(n) => self.buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
                }
            }
        })
        .await
        .context("neither a packet nor a close within the guard")?
    }

    /// Requires that the server closes the connection without answering.
    async fn expect_closed(&mut self) -> anyhow::Result<()> {
        match self.next().await? {
            None => Ok(()),
            Some(packet) => bail!("expected the server to close the connection, got {packet:?}"),
        }
    }

    /// Requires that the connection is still up (PINGREQ answered).
    async fn expect_alive(&mut self) -> anyhow::Result<()> {
        self.send(Packet::PingReq).await?;
        match self.next().await? {
            Some(Packet::PingResp) => Ok(()),
            other => bail!("expected PINGRESP, got {other:?}"),
        }
    }

    async fn connect(&mut self, client_id: &str) -> anyhow::Result<ConnectReturnCode> {
        let mut connect = rumqttc::mqttbytes::v4::Connect::new(client_id);
        connect.keep_alive = 60;
        self.send(Packet::Connect(connect)).await?;
        match self.next().await? {
            Some(Packet::ConnAck(ack)) => Ok(ack.code),
            other => bail!("expected CONNACK, got {other:?}"),
        }
    }

    async fn subscribe(&mut self, filters: &[&str]) -> anyhow::Result<Vec<SubscribeReasonCode>> {
        let mut subscribe = Subscribe::new_many(
            filters
                .iter()
                .map(|f| SubscribeFilter::new((*f).to_owned(), QoS::AtLeastOnce)),
        );
        subscribe.pkid = self.pkid();
        self.send(Packet::Subscribe(subscribe)).await?;
        match self.next().await? {
            Some(Packet::SubAck(ack)) => Ok(ack.return_codes),
            other => bail!("expected SUBACK, got {other:?}"),
        }
    }

    async fn publish(&mut self, topic: &str, payload: Vec<u8>, pkid: u16) -> anyhow::Result<()> {
        let mut p = Publish::new(topic, QoS::AtLeastOnce, payload);
        p.pkid = pkid;
        self.send(Packet::Publish(p)).await
    }

    fn pkid(&mut self) -> u16 {
        self.next_pkid = self.next_pkid.wrapping_add(1).max(1);
        self.next_pkid
    }
}

/// Subscribes as `who` to each filter (one SUBSCRIBE), requires 0x80 for
/// every one, the connection still up, the refusals counted, and then a
/// legitimate device served.
async fn assert_filters_refused(
    fx: &Fixture,
    who: &Creds,
    filters: &[&str],
    legit: &Creds,
) -> anyhow::Result<()> {
    let before = fx.stats().subscribe_refusals;
    let mut raw = fx.session(who, "attacker").await?;
    let codes = raw.subscribe(filters).await?;
    ensure!(
        codes.iter().all(|c| *c == SubscribeReasonCode::Failure) && codes.len() == filters.len(),
        "{filters:?} answered {codes:?}"
    );
    raw.expect_alive().await?;
    let refused = fx.stats().subscribe_refusals - before;
    ensure!(refused == filters.len() as u64, "{refused} refusals counted");
    fx.assert_serves(legit).await
}

/// Publishes as `who` to `topic` (QoS 1) and requires the connection closed
/// without PUBACK and the refusal counted.
async fn assert_publish_refused(fx: &Fixture, who: &Creds, topic: &str) -> anyhow::Result<()> {
    let before = fx.stats().publish_refusals;
    let mut raw = fx.session(who, "attacker").await?;
    raw.publish(topic, b"forged answer".to_vec(), 3).await?;
    raw.expect_closed().await?;
    ensure!(fx.stats().publish_refusals == before + 1, "refusal not counted");
    Ok(())
}

// === roles ===

/// A service that is not the broker publishes a forged token answer on a device's `token/res`.
#[tokio::test]
async fn attack_mqtt_service_publishes_device_token_res() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let victim = fx.device("sensor-1").await?;
    let service = fx.service("reporting").await?;
    // The victim listens first: a forged answer would be the first thing it gets.
    let mut listening = fx.session(&victim, "victim").await?;
    assert_publish_refused(&fx, &service, "cb/v1/sensor-1/token/res").await?;
    assert_token_over_mqtt(&mut listening, &fx.dir, &victim).await?;
    fx.shutdown().await;
    Ok(())
}

/// A service that is not the broker publishes a forged certificate answer on a device's `cert/res`.
#[tokio::test]
async fn attack_mqtt_service_publishes_device_cert_res() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let victim = fx.device("sensor-1").await?;
    let service = fx.service("reporting").await?;
    assert_publish_refused(&fx, &service, "cb/v1/sensor-1/cert/res").await?;
    assert_publish_refused(&fx, &service, "cb/v1/sensor-1/telemetry").await?;
    fx.assert_serves(&victim).await?;
    fx.shutdown().await;
    Ok(())
}

/// A service that is not the broker joins the broker's share group `$share/certbound` or reads requests.
#[tokio::test]
async fn attack_mqtt_service_joins_broker_share_group() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let device = fx.device("sensor-1").await?;
    let service = fx.service("reporting").await?;
    assert_filters_refused(
        &fx,
        &service,
        &[
            "$share/certbound/cb/v1/+/token/req",
            "$share/certbound/cb/v1/+/telemetry",
            "$share/reporting/cb/v1/+/token/req",
            "cb/v1/+/cert/req",
            "cb/#",
        ],
        &device,
    )
    .await?;
    // What a service may do: read telemetry, plainly or in its own group.
    let mut reader = fx.session(&service, "reader").await?;
    let codes = reader
        .subscribe(&["cb/v1/+/telemetry", "$share/reporting/cb/v1/+/telemetry"])
        .await?;
    ensure!(
        codes == [SubscribeReasonCode::Success(QoS::AtLeastOnce); 2],
        "{codes:?}"
    );
    fx.shutdown().await;
    Ok(())
}

/// A device whose certificate says CN=certbound-broker (made with openssl) tries to act as the broker.
#[tokio::test]
async fn attack_mqtt_device_named_like_broker() -> anyhow::Result<()> {
    if !openssl_available() {
        return Ok(());
    }
    let fx = Fixture::new().await?;
    let victim = fx.device("sensor-1").await?;
    let lookalike = lookalike_cert(&fx.dir)?;
    let mut raw = fx.tls(&lookalike).await?;
    match raw.connect("certbound-broker").await? {
        // Refusing the device outright (an id reserved for services) is fine too.
        ConnectReturnCode::NotAuthorized => {}
        ConnectReturnCode::Success => {
            let codes = raw
                .subscribe(&["$share/certbound/cb/v1/+/token/req", "cb/v1/sensor-1/#"])
                .await?;
            ensure!(codes == [SubscribeReasonCode::Failure; 2], "{codes:?}");
            raw.publish("cb/v1/sensor-1/token/res", b"forged".to_vec(), 4)
                .await?;
            raw.expect_closed().await?;
            ensure!(fx.stats().publish_refusals == 1);
        }
        other => bail!("unexpected CONNACK {other:?}"),
    }
    fx.assert_serves(&victim).await?;
    fx.shutdown().await;
    Ok(())
}

/// A provisioning-claim certificate reaches outside `cb/claims/claim-<id>/`.
#[tokio::test]
async fn attack_mqtt_claim_outside_its_topics() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let device = fx.device("sensor-1").await?;
    let claim = fx
        .registry
        .create_claim(GROUP, 5, 3600, None, None, &fx.dir.join("claims"))
        .await?;
    let holder = Creds {
        id: format!("claim-{}", claim.claim.id),
        key_file: claim.key_file,
        cert_file: claim.cert_file,
    };
    assert_filters_refused(
        &fx,
        &holder,
        &["cb/v1/+/token/res", "cb/claims/+/res/+", "#"],
        &device,
    )
    .await?;
    assert_publish_refused(&fx, &holder, "cb/v1/sensor-1/token/req").await?;
    fx.assert_serves(&device).await?;
    fx.shutdown().await;
    Ok(())
}

/// A certificate from the certbound CA whose CN names an existing device but that has no SAN URI (made with openssl).
#[tokio::test]
async fn attack_mqtt_cn_without_san_uri() -> anyhow::Result<()> {
    if !openssl_available() {
        return Ok(());
    }
    let fx = Fixture::new().await?;
    let device = fx.device("sensor-1").await?;
    let cn_only = openssl_client_cert(&fx.dir, "cn-only", "sensor-1", None)?;
    let mut raw = fx.tls(&cn_only).await?;
    ensure!(raw.connect("sensor-1").await? == ConnectReturnCode::NotAuthorized);
    raw.expect_closed().await?;
    ensure!(fx.stats().auth_failures == 1);
    fx.assert_serves(&device).await?;
    fx.shutdown().await;
    Ok(())
}

// === devices and topics ===

/// A device subscribes to `#` (every topic of every device).
#[tokio::test]
async fn attack_mqtt_device_subscribes_everything() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let (a, b) = (fx.device("sensor-1").await?, fx.device("sensor-2").await?);
    assert_filters_refused(&fx, &a, &["#", "+/#", "cb/#", "cb/v1/#"], &b).await?;
    fx.shutdown().await;
    Ok(())
}

/// A device subscribes with a wildcard at the device level (`cb/v1/+/...`).
#[tokio::test]
async fn attack_mqtt_device_subscribes_across_devices() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let (a, b) = (fx.device("sensor-1").await?, fx.device("sensor-2").await?);
    assert_filters_refused(
        &fx,
        &a,
        &["cb/v1/+/token/res", "cb/v1/+/telemetry", "cb/v1/+/#", "+/v1/sensor-1/#"],
        &b,
    )
    .await?;
    fx.shutdown().await;
    Ok(())
}

/// A device subscribes to `$SYS/#` and joins a shared subscription.
#[tokio::test]
async fn attack_mqtt_device_subscribes_sys_and_shares() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let (a, b) = (fx.device("sensor-1").await?, fx.device("sensor-2").await?);
    assert_filters_refused(
        &fx,
        &a,
        &[
            "$SYS/#",
            "$share/certbound/cb/v1/+/token/req",
            "$share/x/cb/v1/sensor-1/#",
        ],
        &b,
    )
    .await?;
    fx.shutdown().await;
    Ok(())
}

/// A device subscribes to another device's answers.
#[tokio::test]
async fn attack_mqtt_device_reads_another_device() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let (a, b) = (fx.device("sensor-1").await?, fx.device("sensor-2").await?);
    assert_filters_refused(
        &fx,
        &a,
        &["cb/v1/sensor-2/token/res", "cb/v1/sensor-2/#", "cb/v1/sensor-10/#"],
        &b,
    )
    .await?;
    fx.shutdown().await;
    Ok(())
}

/// Topic spoofing: a device publishes on another device's topics.
#[tokio::test]
async fn attack_mqtt_device_topic_spoofing() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let (a, b) = (fx.device("sensor-1").await?, fx.device("sensor-2").await?);
    let mut victim = fx.session(&b, "victim").await?;
    for topic in [
        "cb/v1/sensor-2/token/res",
        "cb/v1/sensor-2/telemetry",
        "cb/v1/sensor-2/token/req",
    ] {
        assert_publish_refused(&fx, &a, topic).await?;
    }
    // The victim's first message is the broker's genuine answer.
    assert_token_over_mqtt(&mut victim, &fx.dir, &b).await?;
    fx.shutdown().await;
    Ok(())
}

/// A PUBLISH whose topic name holds a wildcard (`+`, `#`) inside the device's own namespace.
#[tokio::test]
async fn attack_mqtt_wildcard_in_publish_topic() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let device = fx.device("sensor-1").await?;
    for (i, topic) in ["cb/v1/sensor-1/+", "cb/v1/sensor-1/#"].iter().enumerate() {
        let mut raw = fx.session(&device, "wild").await?;
        raw.publish(topic, b"x".to_vec(), 5).await?;
        raw.expect_closed().await?;
        ensure!(fx.stats().invalid_topics == i as u64 + 1, "{topic}");
    }
    fx.assert_serves(&device).await?;
    fx.shutdown().await;
    Ok(())
}

/// A PUBLISH topic and a SUBSCRIBE filter that are not valid UTF-8.
#[tokio::test]
async fn attack_mqtt_invalid_utf8_topic() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let device = fx.device("sensor-1").await?;
    let prefix = b"cb/v1/sensor-1/";
    // PUBLISH QoS 0: topic length, topic with 0xff 0xfe, payload.
    let mut publish = vec![0x30, u8::try_from(2 + prefix.len() + 2 + 1)?];
    publish.extend_from_slice(&u16::try_from(prefix.len() + 2)?.to_be_bytes());
    publish.extend_from_slice(prefix);
    publish.extend_from_slice(&[0xff, 0xfe, b'p']);
    // SUBSCRIBE pkid 1, one filter ending in a lone 0xc3, QoS 0.
    let mut subscribe = vec![0x82, u8::try_from(2 + 2 + prefix.len() + 1 + 1)?, 0, 1];
    subscribe.extend_from_slice(&u16::try_from(prefix.len() + 1)?.to_be_bytes());
    subscribe.extend_from_slice(prefix);
    subscribe.extend_from_slice(&[0xc3, 0]);
    for (i, bytes) in [publish, subscribe].iter().enumerate() {
        let mut raw = fx.session(&device, "utf8").await?;
        raw.send_raw(bytes).await?;
        raw.expect_closed().await?;
        ensure!(fx.stats().invalid_topics == i as u64 + 1);
    }
    fx.assert_serves(&device).await?;
    fx.shutdown().await;
    Ok(())
}

/// Terminal escapes and NUL in topic names, filters and client ids (log injection).
#[tokio::test]
async fn attack_mqtt_control_characters_in_topic() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let device = fx.device("sensor-1").await?;
    let mut raw = fx.session(&device, "esc").await?;
    raw.publish("cb/v1/sensor-1/\u{1b}[2J\u{1b}[31mOK", b"x".to_vec(), 6)
        .await?;
    raw.expect_closed().await?;
    let mut raw = fx.session(&device, "nul").await?;
    raw.send(Packet::Subscribe(Subscribe::new("cb/v1/sensor-1/\0", QoS::AtMostOnce)))
        .await?;
    raw.expect_closed().await?;
    ensure!(fx.stats().invalid_topics == 2);
    let mut raw = fx.tls(&device).await?;
    ensure!(raw.connect("id\u{1b}[2J").await? == ConnectReturnCode::BadClientId);
    fx.assert_serves(&device).await?;
    fx.shutdown().await;
    Ok(())
}

// === connects: revocation, expiry, caps ===

/// A device's old certificate, revoked after renewal, connects while the device stays active.
#[tokio::test]
async fn attack_mqtt_revoked_certificate_connect() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let old = fx.device("renewed").await?;
    // The renewal: a second certificate for the same (active) device.
    let ca = certbound_pki::IssuingCa::load(&DataDir::new(&fx.dir).pki())?;
    let bundle = ca.issue_device("renewed", 30, unix_now())?;
    let (key_file, cert_file) = bundle.write_to(&fx.dir.join("renewed"), "renewed")?;
    let record = CertRecord {
        serial: bundle.cert.serial_hex.clone(),
        device_id: "renewed".into(),
        thumbprint: hex::encode(bundle.cert.thumbprint),
        not_before: bundle.cert.not_before,
        not_after: bundle.cert.not_after,
        status: "active".into(),
        der: bundle.cert.der.clone(),
    };
    fx.registry
        .store
        .add_certificate(&record, unix_now())
        .await?;
    let new = Creds {
        id: "renewed".into(),
        key_file,
        cert_file,
    };
    // A session with the old certificate is up when it gets revoked.
    let mut live = fx.session(&old, "old").await?;
    revoke_certificate(&fx.dir, &old).await?;
    live.expect_closed().await?;
    let before = fx.stats().auth_failures;
    let mut raw = fx.tls(&old).await?;
    ensure!(raw.connect("old-again").await? == ConnectReturnCode::NotAuthorized);
    raw.expect_closed().await?;
    ensure!(fx.stats().auth_failures == before + 1);
    // The device itself is still active: its new certificate works.
    fx.assert_serves(&new).await?;
    fx.shutdown().await;
    Ok(())
}

/// A session outlives its certificate (60-second certificate from bulk provisioning).
#[tokio::test]
async fn attack_mqtt_expired_certificate_session_cut() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let other = fx.device("sensor-1").await?;
    let out = fx.dir.join("bulk");
    let mut opts = BulkOptions::new("short-", 1, &out);
    opts.groups = vec![GROUP.to_string()];
    opts.lifetime_secs = Some(60);
    fx.registry
        .provision_bulk(
            &opts,
            &BulkControl {
                stop: None,
                progress: None,
            },
        )
        .await?;
    let short = Creds {
        id: "short-1".into(),
        key_file: find_file(&out, "short-1.key.pem")?,
        cert_file: find_file(&out, "short-1.cert.pem")?,
    };
    let not_after = certbound_pki::cert_summary(&pem_der(&short.cert_file)?)?.not_after;
    let mut raw = fx.session(&short, "short").await?;
    // Wait for the cut (the certificate lives ~60 s; keep-alive is 60 s too,
    // so keep the session busy with PINGREQs the server must answer).
    let cut = tokio::time::timeout(Duration::from_secs(180), async {
        loop {
            raw.send(Packet::PingReq).await?;
            match raw.next().await? {
                Some(Packet::PingResp) => tokio::time::sleep(Duration::from_secs(5)).await,
                None => return anyhow::Ok(()),
                Some(other) => bail!("unexpected {other:?}"),
            }
        }
    })
    .await;
    ensure!(cut.is_ok(), "the session was not cut after notAfter {not_after}");
    cut??;
    ensure!(unix_now() >= not_after, "cut before notAfter");
    ensure!(fx.stats().expired_certificates == 1);
    fx.assert_serves(&other).await?;
    fx.shutdown().await;
    Ok(())
}

/// One device certificate opens many connections with different client ids.
#[tokio::test]
async fn attack_mqtt_connection_cap_per_identity() -> anyhow::Result<()> {
    let fx = Fixture::with_config(&[(
        "max_connections_per_device = 4",
        "max_connections_per_device = 2",
    )])
    .await?;
    let (a, b) = (fx.device("sensor-1").await?, fx.device("sensor-2").await?);
    let mut first = fx.session(&a, "c1").await?;
    let _second = fx.session(&a, "c2").await?;
    let mut third = fx.tls(&a).await?;
    ensure!(third.connect("c3").await? == ConnectReturnCode::NotAuthorized);
    third.expect_closed().await?;
    ensure!(fx.stats().refused_over_identity_cap == 1);
    // Reconnecting with a live client id takes that connection over (MQTT §3.1.4).
    let mut again = fx.session(&a, "c1").await?;
    first.expect_closed().await?;
    again.expect_alive().await?;
    // Other identities are not affected.
    fx.assert_serves(&b).await?;
    fx.shutdown().await;
    Ok(())
}

/// One session subscribes to more filters than allowed (memory and routing work).
#[tokio::test]
async fn attack_mqtt_subscription_cap() -> anyhow::Result<()> {
    let fx = Fixture::with_config(&[(
        "max_subscriptions_per_session = 32",
        "max_subscriptions_per_session = 3",
    )])
    .await?;
    let device = fx.device("sensor-1").await?;
    let mut raw = fx.session(&device, "many").await?;
    let codes = raw
        .subscribe(&[
            "cb/v1/sensor-1/a",
            "cb/v1/sensor-1/b",
            "cb/v1/sensor-1/c",
            "cb/v1/sensor-1/d",
        ])
        .await?;
    let ok = SubscribeReasonCode::Success(QoS::AtLeastOnce);
    ensure!(
        codes == [ok, ok, ok, SubscribeReasonCode::Failure],
        "{codes:?}"
    );
    raw.expect_alive().await?;
    ensure!(fx.stats().subscribe_refusals == 1);
    fx.assert_serves(&device).await?;
    fx.shutdown().await;
    Ok(())
}

// === Mosquitto (the documented split-listener configuration) ===

/// Against Mosquitto: a device certificate with CN=certbound-broker on the device listener acts as the broker.
#[tokio::test]
async fn attack_mqtt_mosquitto_device_named_like_broker() -> anyhow::Result<()> {
    if !openssl_available() {
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("cb");
    let registry = prepare(&dir, &[]).await?;
    let Some(mosquitto) = Mosquitto::start_split(&dir) else {
        skip_or_fail("mosquitto");
        return Ok(());
    };
    let service_addr = mosquitto.service_addr.context("split listeners")?;
    edit_config(
        &dir,
        &[(
            "mode = \"embedded\"",
            &format!("mode = \"external\"\nurl = \"mqtts://{service_addr}\""),
        )],
    )?;
    let victim = provision_device(&registry, &dir, "sensor-1").await?;
    let broker = start(&dir, listen_options()?).await?;
    let lookalike = lookalike_cert(&dir)?;

    let mut listening = Raw::tls(mosquitto.addr, &dir, &victim).await?;
    ensure!(listening.connect("victim").await? == ConnectReturnCode::Success);
    let mut attacker = Raw::tls(mosquitto.addr, &dir, &lookalike).await?;
    ensure!(attacker.connect("certbound-broker").await? == ConnectReturnCode::Success);
    // Mosquitto 2.0 grants the SUBACK and checks read access per message.
    let _ = attacker
        .subscribe(&[
            "$share/certbound/cb/v1/+/token/req",
            "cb/v1/sensor-1/#",
            "cb/v1/+/token/res",
        ])
        .await?;
    // Mosquitto drops a refused publish silently (PUBACK, no delivery).
    attacker
        .publish("cb/v1/sensor-1/token/res", b"forged".to_vec(), 9)
        .await?;
    match attacker.next().await? {
        Some(Packet::PubAck(_)) | None => {}
        other => bail!("unexpected {other:?}"),
    }
    // The victim's first message is the genuine answer of the real broker,
    // which sits on the service listener.
    assert_token_over_mqtt(&mut listening, &dir, &victim).await?;
    // The attacker saw neither the request nor the answer.
    attacker.expect_alive().await?;
    broker.shutdown().await;
    registry.close().await;
    drop(mosquitto);
    Ok(())
}

// === helpers ===

/// Marks one certificate revoked in the store (the device stays active), as
/// an operator's single-certificate revocation does.
async fn revoke_certificate(dir: &Path, who: &Creds) -> anyhow::Result<()> {
    let der = pem_der(&who.cert_file)?;
    let thumbprint = hex::encode(certbound_pki::thumbprint_sha256(&der));
    let db = DataDir::new(dir).root.join("certbound.db");
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&db);
    let pool = sqlx::SqlitePool::connect_with(options).await?;
    let done = sqlx::query(
        "UPDATE certificates SET status = 'revoked', revoked_at = ? WHERE thumbprint = ?",
    )
    .bind(i64::try_from(unix_now())?)
    .bind(&thumbprint)
    .execute(&pool)
    .await?;
    pool.close().await;
    ensure!(done.rows_affected() == 1, "no certificate {thumbprint}");
    Ok(())
}

/// The leaf DER of a PEM chain file.
fn pem_der(path: &Path) -> anyhow::Result<Vec<u8>> {
    let pem = std::fs::read_to_string(path)?;
    let certs = certbound_pki::parse_pem_certs(&pem)?;
    certs.into_iter().next().context("no certificate")
}

fn find_file(root: &Path, name: &str) -> anyhow::Result<PathBuf> {
    for entry in std::fs::read_dir(root)? {
        let path = entry?.path();
        if path.is_dir() {
            if let Ok(found) = find_file(&path, name) {
                return Ok(found);
            }
        } else if path.file_name().is_some_and(|n| n == name) {
            return Ok(path);
        }
    }
    bail!("{name} not under {}", root.display())
}

fn openssl_available() -> bool {
    let found = Command::new("openssl").arg("version").output().is_ok();
    if !found {
        skip_or_fail("openssl");
    }
    found
}

/// A device certificate made with openssl, signed by the data directory's
/// issuing CA: subject CN=certbound-broker (the broker's name), SAN URI
/// `urn:certbound:device:lookalike`, clientAuth.
fn lookalike_cert(dir: &Path) -> anyhow::Result<Creds> {
    openssl_client_cert(
        dir,
        "lookalike",
        BROKER_NAME,
        Some("urn:certbound:device:lookalike"),
    )
}

/// A clientAuth certificate made with openssl and signed by the data
/// directory's issuing CA, with subject `CN=<cn>` and the SAN URI `san`.
fn openssl_client_cert(dir: &Path, name: &str, cn: &str, san: Option<&str>) -> anyhow::Result<Creds> {
    let pki = DataDir::new(dir).pki();
    let out = dir.join(name);
    std::fs::create_dir_all(&out)?;
    let key = out.join("client.key.pem");
    let csr = out.join("client.csr.pem");
    let leaf = out.join("client.leaf.pem");
    let ext = out.join("ext.cnf");
    let mut extensions = "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
                          extendedKeyUsage=clientAuth\n"
        .to_owned();
    if let Some(uri) = san {
        extensions.push_str(&format!("subjectAltName=URI:{uri}\n"));
    }
    std::fs::write(&ext, extensions)?;
    let run = |args: &[&str]| -> anyhow::Result<()> {
        let out = Command::new("openssl").args(args).output()?;
        ensure!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    };
    let p = |path: &Path| path.to_string_lossy().into_owned();
    run(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        &p(&key),
    ])?;
    run(&[
        "req",
        "-new",
        "-key",
        &p(&key),
        "-subj",
        &format!("/CN={cn}"),
        "-out",
        &p(&csr),
    ])?;
    run(&[
        "x509",
        "-req",
        "-in",
        &p(&csr),
        "-CA",
        &p(&pki.issuing_cert()),
        "-CAkey",
        &p(&pki.issuing_key()),
        "-set_serial",
        "0x4c6f6f6b616c696b65",
        "-days",
        "2",
        "-sha256",
        "-extfile",
        &p(&ext),
        "-out",
        &p(&leaf),
    ])?;
    let chain = out.join("client.cert.pem");
    std::fs::write(
        &chain,
        format!(
            "{}{}",
            std::fs::read_to_string(&leaf)?,
            std::fs::read_to_string(pki.issuing_cert())?
        ),
    )?;
    Ok(Creds {
        id: name.into(),
        key_file: key,
        cert_file: chain,
    })
}
