//! Attack-matrix cases: see [`super`]. Keys at rest: the root CA key kept
//! offline, CA and token signing keys encrypted with a key encryption key
//! (AES-256-GCM), and no secret in the logs.
//!
//! Each case starts a real broker (`server::start`) on its own data
//! directory made by `registry::init_with`, asserts the specific refusal,
//! and then that the broker serves a device token over CoAP (verified with
//! the broker's published keys and bound to the device certificate).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail, ensure};
use certbound_agent::{TokenRequestParams, build_token_request};
use certbound_broker::error::BrokerError;
use certbound_broker::server::{RunningBroker, ServeOptions, start};
use certbound_coap::{Client, ResponseType, content_format};
use certbound_e2e::https::HttpsClient;
use certbound_e2e::{
    API, API_SCOPES, API_TTL, GRANTED_SCOPE, GROUP, ISSUER, TestDevice, edit_config,
    loopback_client_config, nonce, provision, unix_now,
};
use certbound_pki::{KeyEncryptionKey, PkiError};
use certbound_proto::ace::AceResponse;
use certbound_proto::cbor::Limits;
use certbound_registry::RegistryError;
use certbound_registry::config::KEY_ENCRYPTION_KEY_ENV;
use certbound_registry::registry::{self, ADMIN_CLIENT_FILE, InitOptions, Registry};
use certbound_verify::{KeySet, TokenVerifier, VerifierConfig};

/// A data directory made by `init_with`, with [`API`] and [`GROUP`].
struct Setup {
    tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl Setup {
    async fn new(options: &InitOptions) -> anyhow::Result<Self> {
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path().join("data");
        registry::init_with(&dir, ISSUER, options).await?;
        edit_config(&dir, &[("device_per_sec = 1.0", "device_per_sec = 0")])?;
        let reg = Registry::open(&dir).await?;
        reg.create_api(API, API_SCOPES, API_TTL).await?;
        reg.create_group(GROUP, &[(API.into(), GRANTED_SCOPE.into())])
            .await?;
        reg.close().await;
        Ok(Self { tmp, dir })
    }

    /// A data directory whose keys are encrypted with the key in `kek_file`.
    async fn encrypted() -> anyhow::Result<(Self, PathBuf, KeyEncryptionKey)> {
        let secrets = tempfile::tempdir()?;
        let kek = KeyEncryptionKey::generate()?;
        let kek_file = secrets.path().join("kek");
        std::fs::write(&kek_file, kek.to_base64().as_bytes())?;
        let setup = Self::new(&InitOptions {
            encryption_key_file: Some(kek_file.clone()),
            ..InitOptions::default()
        })
        .await?;
        // Keep the key file next to the data directory, outside it.
        let kept = setup.tmp.path().join("kek");
        std::fs::copy(&kek_file, &kept)?;
        let line = format!("encryption_key_file = {:?}", kek_file.display().to_string());
        edit_config(
            &setup.dir,
            &[(
                &line,
                &format!("encryption_key_file = {:?}", kept.display().to_string()),
            )],
        )?;
        Ok((setup, kept, kek))
    }

    fn config_line(&self, kek_file: &Path) -> String {
        format!("encryption_key_file = {:?}", kek_file.display().to_string())
    }

    async fn start(&self) -> Result<RunningBroker, BrokerError> {
        start(
            &self.dir,
            ServeOptions {
                coap_listen: Some(([127, 0, 0, 1], 0).into()),
                mqtt_listen: Some(([127, 0, 0, 1], 0).into()),
                https_listen: Some(([127, 0, 0, 1], 0).into()),
            },
        )
        .await
    }

    /// Every file under the data directory, with its bytes.
    fn files(&self) -> anyhow::Result<Vec<(PathBuf, Vec<u8>)>> {
        fn walk(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) -> anyhow::Result<()> {
            for entry in std::fs::read_dir(dir)? {
                let path = entry?.path();
                if path.is_dir() {
                    walk(&path, out)?;
                } else {
                    match std::fs::read(&path) {
                        Ok(bytes) => out.push((path.clone(), bytes)),
                        // SQLite's -wal / -shm / -journal files come and go
                        // while connections close.
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            Ok(())
        }
        let mut out = Vec::new();
        walk(&self.dir, &mut out)?;
        Ok(out)
    }
}

/// Provisions `id`, asks the broker for a token over CoAP and verifies it
/// with the broker's published keys: the legitimate path still works.
async fn assert_serves(broker: &RunningBroker, dir: &Path, id: &str) -> anyhow::Result<()> {
    let reg = Registry::open(dir).await?;
    let devices = dir.join("devices");
    let device = provision(&reg, id, &[GROUP.to_string()], &devices).await;
    let keys = reg.public_keys().await;
    reg.close().await;
    let (device, keys) = (device?, keys?);
    let mut set = KeySet::new();
    for (kid, key) in keys {
        set.insert(kid, key)?;
    }
    let mut config = VerifierConfig::new(API);
    config.issuer = Some(ISSUER.into());
    let verifier = TokenVerifier::new(set, config);
    let token = request_token(broker, &device).await?;
    let verified = verifier.verify(&token, &[GRANTED_SCOPE], unix_now())?;
    verified.check_certificate_binding(device.leaf_der())?;
    ensure!(verified.device_id() == Some(id));
    Ok(())
}

async fn request_token(broker: &RunningBroker, device: &TestDevice) -> anyhow::Result<Vec<u8>> {
    let addr = broker.coap_addr().context("CoAP is off")?;
    let client = Client::connect(addr, loopback_client_config()).await?;
    let mut params = TokenRequestParams::new(ISSUER, API);
    params.scope = Some(GRANTED_SCOPE.into());
    let body = build_token_request(&device.identity, &params, unix_now(), nonce())?;
    let response = client
        .post("token", content_format::COSE_SIGN1, body)
        .await?;
    let ace = AceResponse::from_cbor(&response.payload, Limits::default())?;
    match ace {
        AceResponse::Token(t) if response.code == ResponseType::Created => Ok(t.access_token),
        other => bail!("expected a token, got {:?} {other:?}", response.code),
    }
}

fn pki_err(err: impl Into<BrokerError>) -> anyhow::Result<PkiError> {
    match err.into() {
        BrokerError::Pki(e) | BrokerError::Registry(RegistryError::Pki(e)) => Ok(e),
        other => bail!("expected a PKI error, got {other}"),
    }
}

/// Stealing the data directory yields no root CA key: the broker serves and provisions without it, and issuing CA rotation is refused until the offline key is supplied.
#[tokio::test]
async fn attack_root_key_stolen_from_data_dir() -> anyhow::Result<()> {
    let offline = tempfile::tempdir()?;
    let root_key = offline.path().join("root-ca.key.pem");
    let setup = Setup::new(&InitOptions {
        root_key_out: Some(root_key.clone()),
        ..InitOptions::default()
    })
    .await?;
    let root_pem = std::fs::read_to_string(&root_key)?;
    ensure!(root_pem.contains("BEGIN PRIVATE KEY"));
    let root_body = root_pem
        .lines()
        .nth(1)
        .context("root key body")?
        .to_string();
    for (path, bytes) in setup.files()? {
        ensure!(
            !String::from_utf8_lossy(&bytes).contains(&root_body),
            "{} holds the root key",
            path.display()
        );
    }
    ensure!(!setup.dir.join("pki/root-ca.key.pem").exists());

    let broker = setup.start().await?;
    assert_serves(&broker, &setup.dir, "before-rotation").await?;

    // Rotation without the offline key: refused, saying how.
    let reg = Registry::open(&setup.dir).await?;
    let err = pki_err(reg.rotate_issuing_ca().await.unwrap_err())?;
    ensure!(
        matches!(&err, PkiError::RootKeyUnavailable(p) if p.ends_with("pki/root-ca.key.pem")),
        "{err}"
    );
    ensure!(err.to_string().contains("--root-key"), "{err}");
    // A root key of another hierarchy: refused.
    let foreign = offline.path().join("foreign.pem");
    std::fs::write(&foreign, rcgen::KeyPair::generate()?.serialize_pem())?;
    let err = pki_err(
        reg.rotate_issuing_ca_with_root_key(Some(&foreign))
            .await
            .unwrap_err(),
    )?;
    ensure!(
        matches!(&err, PkiError::Malformed(m) if m.contains("does not belong to root-ca.pem")),
        "{err}"
    );
    // With the offline key: a new issuing CA, and the root stays offline.
    let rotated = reg.rotate_issuing_ca_with_root_key(Some(&root_key)).await?;
    reg.close().await;
    ensure!(!setup.dir.join("pki/root-ca.key.pem").exists());
    ensure!(rotated.new_serial != rotated.old_serial);
    // The running broker picks the new CA up (polled): a device issued by it is served.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut n = 0;
    loop {
        n += 1;
        match assert_serves(&broker, &setup.dir, &format!("after-rotation-{n}")).await {
            Ok(()) => break,
            Err(e) if std::time::Instant::now() < deadline => {
                tracing::debug!("not yet: {e:#}");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e.context("a device of the rotated CA is not served")),
        }
    }
    broker.shutdown().await;
    Ok(())
}

/// A copied data directory with encrypted keys but no key encryption key: the broker refuses to start and names the encrypted file.
#[tokio::test]
async fn attack_encrypted_keys_without_encryption_key() -> anyhow::Result<()> {
    let (setup, kek_file, _kek) = Setup::encrypted().await?;
    for (path, bytes) in setup.files()? {
        ensure!(
            !String::from_utf8_lossy(&bytes).contains("BEGIN PRIVATE KEY")
                || !(path.starts_with(setup.dir.join("keys"))
                    || path.ends_with("issuing-ca.key.pem")
                    || path.ends_with("root-ca.key.pem")),
            "{} is a plaintext key",
            path.display()
        );
    }
    ensure!(std::env::var_os(KEY_ENCRYPTION_KEY_ENV).is_none());
    let line = setup.config_line(&kek_file);
    edit_config(&setup.dir, &[(&line, "# no key encryption key")])?;
    let err = pki_err(setup.start().await.err().context("the broker started")?)?;
    let PkiError::SealedKeyNoKek(path) = &err else {
        bail!("expected SealedKeyNoKek, got {err}");
    };
    ensure!(path.starts_with(&setup.dir), "{}", path.display());
    let msg = err.to_string();
    ensure!(msg.contains("is an encrypted private key"), "{msg}");
    ensure!(msg.contains(KEY_ENCRYPTION_KEY_ENV), "{msg}");

    // The key configured again: starts and serves.
    edit_config(&setup.dir, &[("# no key encryption key", &line)])?;
    let broker = setup.start().await?;
    assert_serves(&broker, &setup.dir, "sensor-1").await?;
    broker.shutdown().await;
    Ok(())
}

/// A key encryption key other than the one the keys were sealed with: the broker refuses to start (GCM tag), naming the file.
#[tokio::test]
async fn attack_wrong_encryption_key() -> anyhow::Result<()> {
    let (setup, kek_file, _kek) = Setup::encrypted().await?;
    let wrong_file = setup.tmp.path().join("wrong-kek");
    std::fs::write(
        &wrong_file,
        KeyEncryptionKey::generate()?.to_base64().as_bytes(),
    )?;
    let line = setup.config_line(&kek_file);
    let wrong = setup.config_line(&wrong_file);
    edit_config(&setup.dir, &[(&line, &wrong)])?;
    let err = pki_err(setup.start().await.err().context("the broker started")?)?;
    let PkiError::SealedKeyOpen(path) = &err else {
        bail!("expected SealedKeyOpen, got {err}");
    };
    ensure!(path.starts_with(&setup.dir), "{}", path.display());
    ensure!(
        err.to_string().contains("key encryption key is wrong"),
        "{err}"
    );
    // A key encryption key that is not 32 bytes: a config error naming the field.
    std::fs::write(&wrong_file, "c2hvcnQ=\n")?;
    let err = setup.start().await.err().context("the broker started")?;
    ensure!(
        matches!(&err, BrokerError::Registry(RegistryError::Config { field, reason, .. })
            if field == "keys.encryption_key_file" && reason.contains("not 32")),
        "{err}"
    );

    edit_config(&setup.dir, &[(&wrong, &line)])?;
    let broker = setup.start().await?;
    assert_serves(&broker, &setup.dir, "sensor-1").await?;
    broker.shutdown().await;
    Ok(())
}

/// A tampered encrypted signing key file (one ciphertext byte changed, or another kid's sealed key put in its place) is refused: the broker does not start.
#[tokio::test]
async fn attack_tampered_encrypted_key_file() -> anyhow::Result<()> {
    let (setup, _kek_file, _kek) = Setup::encrypted().await?;
    let kid = std::fs::read_to_string(setup.dir.join("keys/current"))?
        .trim()
        .to_string();
    let key_file = setup.dir.join(format!("keys/{kid}.key.pem"));
    let original = std::fs::read_to_string(&key_file)?;
    ensure!(original.starts_with("-----BEGIN CERTBOUND ENCRYPTED PRIVATE KEY-----"));

    // Flip one base64 character in the middle of the body.
    let mut lines: Vec<String> = original.lines().map(String::from).collect();
    let body = &mut lines[1];
    let i = body.len() / 2;
    let c = body.as_bytes()[i];
    let flipped = if c == b'A' { 'B' } else { 'A' };
    body.replace_range(i..=i, &flipped.to_string());
    std::fs::write(&key_file, lines.join("\n") + "\n")?;
    let err = pki_err(setup.start().await.err().context("the broker started")?)?;
    ensure!(
        matches!(&err, PkiError::SealedKeyOpen(p) if *p == key_file),
        "expected SealedKeyOpen for {}, got {err}",
        key_file.display()
    );

    // The sealed issuing CA key under the signing key's name: the role (AAD) differs.
    let issuing = std::fs::read(setup.dir.join("pki/issuing-ca.key.pem"))?;
    std::fs::write(&key_file, &issuing)?;
    let err = pki_err(setup.start().await.err().context("the broker started")?)?;
    ensure!(
        matches!(&err, PkiError::SealedKeyOpen(p) if *p == key_file),
        "{err}"
    );

    std::fs::write(&key_file, &original)?;
    let broker = setup.start().await?;
    assert_serves(&broker, &setup.dir, "sensor-1").await?;
    broker.shutdown().await;
    Ok(())
}

/// A shared log sink for the capture.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.0.lock() {
            Ok(mut v) => v.extend_from_slice(buf),
            Err(p) => p.into_inner().extend_from_slice(buf),
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Sink {
    type Writer = Sink;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Secrets never reach the logs: with encrypted keys, a client secret in use (right and wrong), device provisioning and token requests, the trace-level log holds no client secret, no key encryption key and no private key.
#[tokio::test]
async fn attack_secrets_absent_from_logs() -> anyhow::Result<()> {
    let sink = Sink::default();
    // Current-thread runtime: every broker task runs on this thread, under this subscriber.
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(sink.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    // Callsites first hit by tests on other threads cached "no subscriber": recompute.
    tracing::callsite::rebuild_interest_cache();

    let (setup, kek_file, kek) = Setup::encrypted().await?;
    let broker = setup.start().await?;
    assert_serves(&broker, &setup.dir, "sensor-1").await?;
    let admin: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(setup.dir.join(ADMIN_CLIENT_FILE))?)?;
    let client_id = admin["client_id"].as_str().context("client_id")?;
    let secret = admin["client_secret"].as_str().context("client_secret")?;
    let audience = admin["audience"].as_str().context("audience")?;
    let https = HttpsClient::new(
        broker.https_url().context("HTTPS is off")?,
        &setup.dir,
        None,
    )?;
    https
        .token_with_secret(client_id, secret, audience, None)
        .await?;
    let wrong_secret = format!("{secret}x");
    let refused = https
        .form(
            "/oauth/token",
            &[("grant_type", "client_credentials"), ("audience", audience)],
            Some((client_id, &wrong_secret)),
        )
        .await?;
    ensure!(refused.status == 401, "{} {}", refused.status, refused.json);
    // Secrets in the form body instead of the header.
    let refused = https
        .form(
            "/oauth/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", client_id),
                ("client_secret", &wrong_secret),
            ],
            None,
        )
        .await?;
    ensure!(
        refused.status == 401 || refused.status == 400,
        "{}",
        refused.status
    );
    broker.shutdown().await;
    std::io::stdout().flush()?;

    let log = String::from_utf8_lossy(&sink.0.lock().map_err(|_| anyhow::anyhow!("poisoned"))?)
        .to_string();
    // Not vacuous: the capture saw the broker at work. (Tests running in parallel
    // can race tracing's per-callsite interest cache, so single events may be
    // missed here; the strict version is crates/certbound-cli/tests/keys_at_rest.rs,
    // which reads the stderr of the real `certbound -vvv serve`.)
    ensure!(
        log.contains("certbound broker started") || log.contains("certbound_"),
        "the capture saw no broker log: {log}"
    );
    let kek_text = kek.to_base64();
    let kek_file_text = std::fs::read_to_string(&kek_file)?;
    let device_key = std::fs::read_to_string(setup.dir.join("devices/sensor-1.key.pem"))?;
    let mut secrets = vec![
        ("client secret", secret.to_string()),
        ("wrong client secret", wrong_secret.clone()),
        ("key encryption key", kek_text.to_string()),
        ("key encryption key file", kek_file_text.trim().to_string()),
        ("PEM private key", "PRIVATE KEY".to_string()),
    ];
    for line in device_key.lines().filter(|l| !l.starts_with("-----")) {
        secrets.push(("device private key", line.to_string()));
    }
    for (what, value) in &secrets {
        ensure!(
            !log.contains(value.as_str()),
            "the log holds the {what}: {value}"
        );
    }
    Ok(())
}
