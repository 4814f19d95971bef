//! Shared helpers for the end-to-end tests.
//!
//! [`Fixture::new`] builds a complete, isolated certbound setup in a fresh
//! temporary directory and starts a real broker on a free UDP port of
//! 127.0.0.1:
//!
//! ```text
//!   registry::init(dir, ISSUER)                 ISSUER = "https://auth.example.com"
//!   api   API (API_SCOPES, ttl API_TTL)         API = "https://telemetry.example.com"
//!   group GROUP granting GRANTED_SCOPE on API   "sensors": "telemetry:write"
//!   server::start(dir, coap_listen = 127.0.0.1:0)
//! ```
//!
//! Devices are provisioned on demand ([`Fixture::device`]); requests are
//! built with [`certbound_agent::build_token_request`] or by hand
//! ([`Fixture::token_request`] + [`Fixture::sign`]) and sent as raw bytes
//! to `POST /token` ([`Fixture::post_token`]), which returns the CoAP code
//! together with the decoded ACE answer ([`Answer`]).

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail, ensure};
use certbound_agent::{DeviceIdentity, TokenRequestParams, build_token_request};
use certbound_broker::server::{RunningBroker, ServeOptions, start};
use certbound_coap::{Client, ClientConfig, ResponseType, content_format};
use certbound_proto::ace::{AceError, AceErrorCode, AceResponse, TokenResponse};
use certbound_proto::cbor::Limits;
use certbound_proto::crypto::Signer;
use certbound_proto::request::{CertRef, GRANT_CLIENT_CREDENTIALS, TokenRequest, sign_request};
use certbound_registry::config::DataDir;
use certbound_registry::registry::{self, ProvisionedDevice, Registry};
use certbound_verify::{KeySet, TokenVerifier, VerifiedToken, VerifierConfig};
use rand::RngCore;
use tempfile::TempDir;

/// The broker's issuer id (the `iss` of tokens, the `aud` of device requests).
pub const ISSUER: &str = "https://auth.example.com";
/// The registered API (the `audience` devices ask for, the `aud` of tokens).
pub const API: &str = "https://telemetry.example.com";
/// Every scope the API defines.
pub const API_SCOPES: &str = "telemetry:write firmware:read";
/// Token lifetime of the API, seconds.
pub const API_TTL: u64 = 3600;
/// The group every fixture device belongs to.
pub const GROUP: &str = "sensors";
/// The scope the group grants on [`API`].
pub const GRANTED_SCOPE: &str = "telemetry:write";

/// Current Unix time in seconds.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A fresh random 16-byte nonce (request `cti`).
pub fn nonce() -> [u8; 16] {
    let mut n = [0u8; 16];
    rand::rng().fill_bytes(&mut n);
    n
}

/// A CoAP client configuration for loopback tests: short retransmission
/// timeouts so that a lost datagram costs milliseconds, not seconds.
pub fn loopback_client_config() -> ClientConfig {
    ClientConfig {
        ack_timeout: std::time::Duration::from_millis(500),
        ..ClientConfig::default()
    }
}

/// A provisioned device: its loaded identity and the files the registry wrote.
#[derive(Debug)]
pub struct TestDevice {
    /// Key and certificate chain, as the device agent loads them.
    pub identity: DeviceIdentity,
    /// `<id>.key.pem` (PKCS#8, mode 0600).
    pub key_file: PathBuf,
    /// `<id>.cert.pem` (leaf, then the issuing CA).
    pub cert_file: PathBuf,
    /// What the registry reported (serial, thumbprint, expiry).
    pub provisioned: ProvisionedDevice,
}

impl TestDevice {
    /// The device id.
    pub fn id(&self) -> &str {
        self.identity.device_id()
    }

    /// The leaf certificate, DER.
    pub fn leaf_der(&self) -> &[u8] {
        self.identity.chain().first().map_or(&[], Vec::as_slice)
    }

    /// `x5t` naming this device's certificate.
    pub fn x5t(&self) -> CertRef {
        CertRef::X5t(self.identity.thumbprint())
    }

    /// `x5chain` carrying this device's certificate chain.
    pub fn x5chain(&self) -> CertRef {
        CertRef::X5Chain(self.identity.chain().to_vec())
    }
}

/// One answer of `POST /token`: the CoAP response and the ACE message in it.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The CoAP response code.
    pub code: ResponseType,
    /// The response Content-Format, if any.
    pub content_format: Option<u16>,
    /// The raw response payload.
    pub payload: Vec<u8>,
    /// The decoded ACE message, when the payload is `application/ace+cbor`.
    pub ace: Option<AceResponse>,
}

impl Answer {
    /// The token response; fails unless the answer is 2.01 Created with a token.
    pub fn token(&self) -> anyhow::Result<&TokenResponse> {
        match &self.ace {
            Some(AceResponse::Token(t)) if self.code == ResponseType::Created => Ok(t),
            _ => bail!("expected 2.01 Created with a token, got {self}"),
        }
    }

    /// The ACE error; fails unless the answer carries one.
    pub fn error(&self) -> anyhow::Result<&AceError> {
        match &self.ace {
            Some(AceResponse::Error(e)) => Ok(e),
            _ => bail!("expected an ACE error, got {self}"),
        }
    }

    /// Requires the ACE error `code` on the CoAP response `coap`; returns the
    /// error description (empty when absent).
    pub fn expect_refused(&self, code: AceErrorCode, coap: ResponseType) -> anyhow::Result<String> {
        let error = self.error()?;
        ensure!(
            error.code == code && self.code == coap,
            "expected {} on {coap:?}, got {self}",
            code.name()
        );
        ensure!(
            self.content_format == Some(content_format::ACE_CBOR),
            "an ACE error must be application/ace+cbor (19), got {:?}",
            self.content_format
        );
        Ok(error.description.clone().unwrap_or_default())
    }
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?} (content-format {:?}): ",
            self.code, self.content_format
        )?;
        match &self.ace {
            Some(AceResponse::Token(t)) => write!(
                f,
                "token of {} bytes, expires_in {}, scope {:?}",
                t.access_token.len(),
                t.expires_in,
                t.scope
            ),
            Some(AceResponse::Error(e)) => write!(f, "{e}"),
            None => write!(f, "{:?}", String::from_utf8_lossy(&self.payload)),
        }
    }
}

/// Replaces lines of `DIR/certbound.toml` (each `from` must be present).
pub fn edit_config(dir: &Path, edits: &[(&str, &str)]) -> anyhow::Result<()> {
    let path = dir.join("certbound.toml");
    let mut text = std::fs::read_to_string(&path)?;
    for (from, to) in edits {
        anyhow::ensure!(
            text.contains(from),
            "{} has no line {from:?}",
            path.display()
        );
        text = text.replacen(from, to, 1);
    }
    std::fs::write(&path, text)?;
    Ok(())
}

/// A running broker on a fresh data directory, with a client and a verifier.
#[derive(Debug)]
pub struct Fixture {
    /// The temporary data directory (removed on drop).
    pub dir: TempDir,
    /// The registry the fixture set up with (its own database connection).
    pub registry: Registry,
    /// The broker's CoAP address (127.0.0.1, ephemeral port).
    pub coap_addr: SocketAddr,
    /// A CoAP client connected to the broker.
    pub client: Client,
    /// A verifier for [`API`] trusting the broker's signing keys, requiring
    /// issuer [`ISSUER`].
    pub verifier: TokenVerifier,
    broker: Option<RunningBroker>,
}

impl Fixture {
    /// Initialises a data directory, registers [`API`] and [`GROUP`], and
    /// starts the broker on `127.0.0.1:0`.
    pub async fn new() -> anyhow::Result<Self> {
        Self::with_config(&[]).await
    }

    /// Like [`Fixture::new`], with lines of certbound.toml replaced first
    /// (see [`edit_config`]).
    pub async fn with_config(edits: &[(&str, &str)]) -> anyhow::Result<Self> {
        Self::on_store(None, edits).await
    }

    /// Like [`Fixture::with_config`], with the registry in the store at
    /// `store_url` (`None`: SQLite in the data directory).
    pub async fn on_store(
        store_url: Option<String>,
        edits: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("creating the data directory")?;
        let options = registry::InitOptions {
            store_url,
            ..registry::InitOptions::default()
        };
        registry::init_with(dir.path(), ISSUER, &options).await?;
        // Tests send many requests per device: rate limits are tested on their own.
        edit_config(
            dir.path(),
            &[("device_per_sec = 1.0", "device_per_sec = 0")],
        )?;
        edit_config(dir.path(), edits)?;
        let registry = Registry::open(dir.path()).await?;
        registry.create_api(API, API_SCOPES, API_TTL).await?;
        registry
            .create_group(GROUP, &[(API.into(), GRANTED_SCOPE.into())])
            .await?;
        let broker = start(
            dir.path(),
            ServeOptions {
                coap_listen: Some("127.0.0.1:0".parse()?),
                mqtt_listen: Some("127.0.0.1:0".parse()?),
                https_listen: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
            },
        )
        .await?;
        let coap_addr = broker
            .coap_addr()
            .context("CoAP is disabled in the default configuration")?;
        let client = Client::connect(coap_addr, loopback_client_config()).await?;
        let verifier = verifier_for(dir.path(), API)?;
        // The fixture changes the registry through the broker's own store
        // handle, as the admin API does: the broker enforces each change on
        // its very next request. (Changes through another handle, as the CLI
        // makes them, are covered by `instances.rs`.)
        registry.close().await;
        let registry = Registry::with_store(
            dir.path(),
            certbound_registry::config::Config::load(dir.path())?,
            broker.store().clone(),
            "cli".into(),
        );
        Ok(Self {
            dir,
            registry,
            coap_addr,
            client,
            verifier,
            broker: Some(broker),
        })
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Where provisioned device files go.
    pub fn devices_dir(&self) -> PathBuf {
        self.path().join("devices")
    }

    /// Provisions a device in [`GROUP`] and loads its identity.
    pub async fn device(&self, id: &str) -> anyhow::Result<TestDevice> {
        provision(
            &self.registry,
            id,
            &[GROUP.to_string()],
            &self.devices_dir(),
        )
        .await
    }

    /// Agent parameters for [`API`] asking for `scope` (`None`: the grant's
    /// defaults), in the compact `x5t` form.
    pub fn params(&self, scope: Option<&str>) -> TokenRequestParams {
        let mut p = TokenRequestParams::new(ISSUER, API);
        p.scope = scope.map(str::to_string);
        p
    }

    /// A signed request as the agent builds it (fresh nonce, current time).
    pub fn agent_request(
        &self,
        device: &TestDevice,
        params: &TokenRequestParams,
    ) -> anyhow::Result<Vec<u8>> {
        Ok(build_token_request(
            &device.identity,
            params,
            unix_now(),
            nonce(),
        )?)
    }

    /// A valid request payload for `device` (iat now, exp now + 120, fresh
    /// cti, client_credentials, [`API`], [`GRANTED_SCOPE`]) for tests to
    /// alter before [`Fixture::sign`].
    pub fn token_request(&self, device: &TestDevice) -> TokenRequest {
        let now = unix_now();
        TokenRequest {
            iss: device.id().to_string(),
            aud: ISSUER.to_string(),
            exp: now + 120,
            iat: now,
            cti: nonce().to_vec(),
            grant_type: Some(GRANT_CLIENT_CREDENTIALS),
            audience: Some(API.to_string()),
            scope: Some(GRANTED_SCOPE.to_string()),
            csr: None,
        }
    }

    /// Signs `request` with `signer`, naming the certificate with `cert`.
    pub fn sign(
        &self,
        request: &TokenRequest,
        cert: &CertRef,
        signer: &dyn Signer,
    ) -> anyhow::Result<Vec<u8>> {
        Ok(sign_request(request, cert, signer)?)
    }

    /// Sends `body` to `POST /token` with content-format 18.
    pub async fn post_token(&self, body: Vec<u8>) -> anyhow::Result<Answer> {
        self.post_token_as(body, content_format::COSE_SIGN1).await
    }

    /// Sends `body` to `POST /token` with the given content-format.
    pub async fn post_token_as(&self, body: Vec<u8>, format: u16) -> anyhow::Result<Answer> {
        post_token_to(&self.client, body, format).await
    }

    /// Starts one more broker on this data directory (and so on the same
    /// store), as a second instance of a cluster would run.
    pub async fn another_instance(&self) -> anyhow::Result<Instance> {
        let broker = start(
            self.path(),
            ServeOptions {
                coap_listen: Some("127.0.0.1:0".parse()?),
                mqtt_listen: Some("127.0.0.1:0".parse()?),
                https_listen: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
            },
        )
        .await?;
        let coap_addr = broker.coap_addr().context("CoAP is disabled")?;
        let client = Client::connect(coap_addr, loopback_client_config()).await?;
        Ok(Instance { broker, client })
    }

    /// Asks for a token as the agent would and requires success.
    pub async fn obtain(
        &self,
        device: &TestDevice,
        params: &TokenRequestParams,
    ) -> anyhow::Result<TokenResponse> {
        let answer = self.post_token(self.agent_request(device, params)?).await?;
        Ok(answer.token()?.clone())
    }

    /// Requires that the broker still issues `device` a token that verifies
    /// and is bound to its certificate (the check after every refusal).
    pub async fn assert_serves(&self, device: &TestDevice) -> anyhow::Result<VerifiedToken> {
        let token = self
            .obtain(device, &self.params(Some(GRANTED_SCOPE)))
            .await
            .with_context(|| format!("the broker no longer serves {}", device.id()))?;
        let verified = self
            .verifier
            .verify(&token.access_token, &[GRANTED_SCOPE], unix_now())?;
        verified.check_certificate_binding(device.leaf_der())?;
        ensure!(verified.device_id() == Some(device.id()));
        Ok(verified)
    }

    /// The embedded MQTT server's address.
    pub fn mqtt_addr(&self) -> Option<SocketAddr> {
        self.broker.as_ref().and_then(|b| b.mqtt_addr())
    }

    /// The broker's HTTPS base URL (`https://127.0.0.1:<port>`).
    pub fn https_url(&self) -> String {
        self.broker
            .as_ref()
            .and_then(|b| b.https_url())
            .unwrap_or_default()
            .to_string()
    }

    /// Stops the broker (flushing its audit log) and closes the registry.
    pub async fn shutdown(mut self) {
        if let Some(broker) = self.broker.take() {
            broker.shutdown().await;
        }
        self.registry.close().await;
    }
}

/// A second broker on a [`Fixture`]'s data directory ([`Fixture::another_instance`]).
pub struct Instance {
    broker: RunningBroker,
    client: Client,
}

impl Instance {
    /// `POST /token` to this instance (content-format 18).
    pub async fn post_token(&self, body: Vec<u8>) -> anyhow::Result<Answer> {
        post_token_to(&self.client, body, content_format::COSE_SIGN1).await
    }

    /// This instance's HTTPS base URL.
    pub fn https_url(&self) -> String {
        self.broker.https_url().unwrap_or_default().to_string()
    }

    /// Stops it.
    pub async fn shutdown(self) {
        self.broker.shutdown().await;
    }
}

/// `POST /token` with `body` through `client`, decoded.
pub async fn post_token_to(client: &Client, body: Vec<u8>, format: u16) -> anyhow::Result<Answer> {
    let response = client.post("token", format, body).await?;
    let ace = if response.content_format == Some(content_format::ACE_CBOR) {
        Some(
            AceResponse::from_cbor(&response.payload, Limits::default())
                .context("decoding the ACE answer")?,
        )
    } else {
        None
    };
    Ok(Answer {
        code: response.code,
        content_format: response.content_format,
        payload: response.payload,
        ace,
    })
}

/// Provisions `id` through `registry` into `out` and loads its identity.
pub async fn provision(
    registry: &Registry,
    id: &str,
    groups: &[String],
    out: &Path,
) -> anyhow::Result<TestDevice> {
    let provisioned = registry.provision_device(id, groups, out, None).await?;
    let identity = DeviceIdentity::load(&provisioned.key_file, &provisioned.cert_file)?;
    Ok(TestDevice {
        identity,
        key_file: provisioned.key_file.clone(),
        cert_file: provisioned.cert_file.clone(),
        provisioned,
    })
}

/// The broker's signing keys in `data_dir` (every key file), as a verifier key set.
pub fn key_set(data_dir: &Path) -> anyhow::Result<KeySet> {
    let mut set = KeySet::new();
    for (kid, key) in certbound_registry::keys::public_keys(&DataDir::new(data_dir).keys())? {
        set.insert(kid, key)?;
    }
    Ok(set)
}

/// A verifier for `audience` trusting the signing keys of `data_dir` and
/// requiring issuer [`ISSUER`].
pub fn verifier_for(data_dir: &Path, audience: &str) -> anyhow::Result<TokenVerifier> {
    let mut config = VerifierConfig::new(audience);
    config.issuer = Some(ISSUER.into());
    Ok(TokenVerifier::new(key_set(data_dir)?, config))
}

pub mod https;
pub mod mosquitto;
