//! Fixture, a raw MQTT 3.1.1 client over mutual TLS (rumqttc's codec on
//! tokio-rustls) and certificate helpers for the MQTT attack-matrix cases.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use bytes::BytesMut;
use certbound_agent::{DeviceIdentity, TokenRequestParams, build_token_request};
use certbound_broker::server::{RunningBroker, ServeOptions, start};
use certbound_e2e::mosquitto::skip_or_fail;
use certbound_e2e::{
    API, API_SCOPES, API_TTL, GRANTED_SCOPE, GROUP, ISSUER, edit_config, nonce, unix_now,
    verifier_for,
};
use certbound_mqtt::MqttStats;
use certbound_proto::ace::AceResponse;
use certbound_proto::cbor::Limits;
use certbound_registry::config::DataDir;
use certbound_registry::registry::{self, Registry};
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
pub(super) struct Creds {
    pub(super) id: String,
    pub(super) key_file: PathBuf,
    pub(super) cert_file: PathBuf,
}

/// A broker with the embedded MQTT server on a fresh data directory.
pub(super) struct Fixture {
    _tmp: tempfile::TempDir,
    pub(super) dir: PathBuf,
    pub(super) registry: Registry,
    broker: Option<RunningBroker>,
    addr: SocketAddr,
}

impl Fixture {
    pub(super) async fn new() -> anyhow::Result<Self> {
        Self::with_config(&[]).await
    }

    pub(super) async fn with_config(edits: &[(&str, &str)]) -> anyhow::Result<Self> {
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path().join("cb");
        let registry = prepare(&dir, edits).await?;
        let broker = start(&dir, listen_options()?).await?;
        let addr = broker
            .mqtt_addr()
            .context("the embedded MQTT server is off")?;
        Ok(Fixture {
            _tmp: tmp,
            dir,
            registry,
            broker: Some(broker),
            addr,
        })
    }

    pub(super) fn stats(&self) -> MqttStats {
        self.broker
            .as_ref()
            .and_then(RunningBroker::mqtt_server)
            .map(certbound_mqtt::MqttServer::stats)
            .unwrap_or_default()
    }

    pub(super) async fn device(&self, id: &str) -> anyhow::Result<Creds> {
        provision_device(&self.registry, &self.dir, id).await
    }

    pub(super) async fn service(&self, name: &str) -> anyhow::Result<Creds> {
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
    pub(super) async fn tls(&self, who: &Creds) -> anyhow::Result<Raw> {
        Raw::tls(self.addr, &self.dir, who).await
    }

    /// A connection whose CONNECT was accepted.
    pub(super) async fn session(&self, who: &Creds, client_id: &str) -> anyhow::Result<Raw> {
        let mut raw = self.tls(who).await?;
        let code = raw.connect(client_id).await?;
        ensure!(
            code == ConnectReturnCode::Success,
            "CONNECT of {}: {code:?}",
            who.id
        );
        Ok(raw)
    }

    /// The check after every refusal: `device` gets a verifiable token over MQTT.
    pub(super) async fn assert_serves(&self, device: &Creds) -> anyhow::Result<()> {
        let mut raw = self
            .session(device, &format!("{}-check", device.id))
            .await?;
        assert_token_over_mqtt(&mut raw, &self.dir, device).await
    }

    pub(super) async fn shutdown(mut self) {
        if let Some(broker) = self.broker.take() {
            broker.shutdown().await;
        }
        self.registry.close().await;
    }
}

pub(super) fn listen_options() -> anyhow::Result<ServeOptions> {
    Ok(ServeOptions {
        coap_listen: Some("127.0.0.1:0".parse()?),
        mqtt_listen: Some("127.0.0.1:0".parse()?),
        https_listen: Some("127.0.0.1:0".parse()?),
    })
}

/// `init`, the API and the group; returns the registry.
pub(super) async fn prepare(dir: &Path, edits: &[(&str, &str)]) -> anyhow::Result<Registry> {
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

pub(super) async fn provision_device(
    registry: &Registry,
    dir: &Path,
    id: &str,
) -> anyhow::Result<Creds> {
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
pub(super) async fn assert_token_over_mqtt(
    raw: &mut Raw,
    dir: &Path,
    device: &Creds,
) -> anyhow::Result<()> {
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
                let AceResponse::Token(token) =
                    AceResponse::from_cbor(&p.payload, Limits::default())?
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

pub(super) struct Raw {
    tls: TlsStream<TcpStream>,
    buf: BytesMut,
    next_pkid: u16,
}

impl Raw {
    pub(super) async fn tls(addr: SocketAddr, dir: &Path, who: &Creds) -> anyhow::Result<Raw> {
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

    pub(super) async fn send_raw(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.tls.write_all(bytes).await?;
        self.tls.flush().await?;
        Ok(())
    }

    pub(super) async fn send(&mut self, packet: Packet) -> anyhow::Result<()> {
        let mut out = BytesMut::new();
        packet.write(&mut out, usize::MAX)?;
        self.send_raw(&out).await
    }

    /// The next packet from the server; `None` once it closed the connection.
    pub(super) async fn next(&mut self) -> anyhow::Result<Option<Packet>> {
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
                    Ok(n) => self
                        .buf
                        .extend_from_slice(chunk.get(..n).unwrap_or_default()),
                }
            }
        })
        .await
        .context("neither a packet nor a close within the guard")?
    }

    /// Requires that the server closes the connection without answering.
    pub(super) async fn expect_closed(&mut self) -> anyhow::Result<()> {
        match self.next().await? {
            None => Ok(()),
            Some(packet) => bail!("expected the server to close the connection, got {packet:?}"),
        }
    }

    /// Requires that the connection is still up (PINGREQ answered).
    pub(super) async fn expect_alive(&mut self) -> anyhow::Result<()> {
        self.send(Packet::PingReq).await?;
        match self.next().await? {
            Some(Packet::PingResp) => Ok(()),
            other => bail!("expected PINGRESP, got {other:?}"),
        }
    }

    pub(super) async fn connect(&mut self, client_id: &str) -> anyhow::Result<ConnectReturnCode> {
        let mut connect = rumqttc::mqttbytes::v4::Connect::new(client_id);
        connect.keep_alive = 60;
        self.send(Packet::Connect(connect)).await?;
        match self.next().await? {
            Some(Packet::ConnAck(ack)) => Ok(ack.code),
            other => bail!("expected CONNACK, got {other:?}"),
        }
    }

    pub(super) async fn subscribe(
        &mut self,
        filters: &[&str],
    ) -> anyhow::Result<Vec<SubscribeReasonCode>> {
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

    pub(super) async fn publish(
        &mut self,
        topic: &str,
        payload: Vec<u8>,
        pkid: u16,
    ) -> anyhow::Result<()> {
        let mut p = Publish::new(topic, QoS::AtLeastOnce, payload);
        p.pkid = pkid;
        self.send(Packet::Publish(p)).await
    }

    pub(super) fn pkid(&mut self) -> u16 {
        self.next_pkid = self.next_pkid.wrapping_add(1).max(1);
        self.next_pkid
    }
}

/// Subscribes as `who` to each filter (one SUBSCRIBE), requires 0x80 for
/// every one, the connection still up, the refusals counted, and then a
/// legitimate device served.
pub(super) async fn assert_filters_refused(
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
    ensure!(
        refused == filters.len() as u64,
        "{refused} refusals counted"
    );
    fx.assert_serves(legit).await
}

/// Publishes as `who` to `topic` (QoS 1) and requires the connection closed
/// without PUBACK and the refusal counted.
pub(super) async fn assert_publish_refused(
    fx: &Fixture,
    who: &Creds,
    topic: &str,
) -> anyhow::Result<()> {
    let before = fx.stats().publish_refusals;
    let mut raw = fx.session(who, "attacker").await?;
    raw.publish(topic, b"forged answer".to_vec(), 3).await?;
    raw.expect_closed().await?;
    ensure!(
        fx.stats().publish_refusals == before + 1,
        "refusal not counted"
    );
    Ok(())
}

// === helpers ===

/// Marks one certificate revoked in the store (the device stays active), as
/// an operator's single-certificate revocation does.
pub(super) async fn revoke_certificate(dir: &Path, who: &Creds) -> anyhow::Result<()> {
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
pub(super) fn pem_der(path: &Path) -> anyhow::Result<Vec<u8>> {
    let pem = std::fs::read_to_string(path)?;
    let certs = certbound_pki::parse_pem_certs(&pem)?;
    certs.into_iter().next().context("no certificate")
}

pub(super) fn find_file(root: &Path, name: &str) -> anyhow::Result<PathBuf> {
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

pub(super) fn openssl_available() -> bool {
    let found = Command::new("openssl").arg("version").output().is_ok();
    if !found {
        skip_or_fail("openssl");
    }
    found
}

/// A device certificate made with openssl, signed by the data directory's
/// issuing CA: subject CN=certbound-broker (the broker's name), SAN URI
/// `urn:certbound:device:lookalike`, clientAuth.
pub(super) fn lookalike_cert(dir: &Path) -> anyhow::Result<Creds> {
    openssl_client_cert(
        dir,
        "lookalike",
        BROKER_NAME,
        Some("urn:certbound:device:lookalike"),
    )
}

/// A clientAuth certificate made with openssl and signed by the data
/// directory's issuing CA, with subject `CN=<cn>` and the SAN URI `san`.
pub(super) fn openssl_client_cert(
    dir: &Path,
    name: &str,
    cn: &str,
    san: Option<&str>,
) -> anyhow::Result<Creds> {
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
