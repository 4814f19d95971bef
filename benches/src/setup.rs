//! The benchmark fixture: a broker data directory in a tempdir with one API,
//! one group and provisioned devices, plus a factory of signed requests with
//! unique nonces (the broker refuses replays).

use std::path::PathBuf;

use certbound_agent::{DeviceIdentity, TokenRequestParams, build_token_request};
use certbound_pki::TrustStore;
use certbound_proto::Signer;
use certbound_proto::claims::Claims;
use certbound_registry::config::DataDir;
use certbound_registry::keys::{self, SigningKey};
use certbound_registry::registry::{self, Registry};
use certbound_verify::{KeySet, TokenVerifier, VerifierConfig};
use rand::RngCore;

/// The broker's issuer id.
pub const ISSUER: &str = "https://auth.certbound.bench";
/// The API tokens are asked for.
pub const API: &str = "https://telemetry.certbound.bench";
/// Scopes asked for and granted.
pub const SCOPE: &str = "telemetry:write firmware:read";

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub struct Fixture {
    /// Keeps the tempdir alive.
    _temp: tempfile::TempDir,
    /// The broker data directory.
    pub dir: PathBuf,
    /// Provisioned devices `sensor-1..=n`.
    pub devices: Vec<DeviceIdentity>,
    /// The broker's trust store (as the service loads it).
    pub trust: TrustStore,
    /// The broker's current token signing key (aws-lc).
    pub signing: SigningKey,
}

impl Fixture {
    /// `registry::init`, one API, one group, `devices` provisioned devices.
    pub async fn new(devices: usize) -> anyhow::Result<Self> {
        let temp = tempfile::tempdir()?;
        let dir = temp.path().join("broker");
        registry::init(&dir, ISSUER).await?;
        // The benchmark hammers one device and one client: no rate limits.
        let config = dir.join("certbound.toml");
        let text = std::fs::read_to_string(&config)?
            .replace("device_per_sec = 1.0", "device_per_sec = 0")
            .replace("client_per_sec = 10.0", "client_per_sec = 0");
        std::fs::write(&config, text)?;
        let reg = Registry::open(&dir).await?;
        reg.create_api(API, SCOPE, 3600).await?;
        reg.create_group("sensors", &[(API.into(), SCOPE.into())])
            .await?;
        let out = temp.path().join("devices");
        let mut identities = Vec::new();
        for i in 1..=devices {
            let id = format!("sensor-{i}");
            let p = reg
                .provision_device(&id, &["sensors".into()], &out, None)
                .await?;
            identities.push(DeviceIdentity::load(&p.key_file, &p.cert_file)?);
        }
        reg.close().await;
        let data = DataDir::new(&dir);
        let trust = TrustStore::load(&data.pki())?;
        let signing = keys::load_current(&data.key_dir())?;
        Ok(Self {
            _temp: temp,
            dir,
            devices: identities,
            trust,
            signing,
        })
    }

    /// The claims the service would issue to device `index` at `now`.
    pub fn claims(&self, index: usize, now: u64) -> Claims {
        let device = &self.devices[index];
        Claims {
            // As the service issues them: no iss (the signing key names it).
            iss: None,
            sub: Some(device.device_id().into()),
            aud: vec![API.into()],
            exp: Some(now + 3600),
            iat: Some(now),
            cti: Some(vec![0xc7; 16]),
            scope: Some(SCOPE.into()),
            cnf: Some(device.signer().public_key().clone()),
            status: Some(certbound_proto::status_list::StatusRef {
                idx: 4711,
                uri: "https://127.0.0.1:8443/status/1".into(),
            }),
            ..Claims::default()
        }
    }

    /// A backend verifier trusting the broker's key.
    pub fn token_verifier(&self) -> TokenVerifier {
        let mut keys = KeySet::new();
        if let Err(e) = keys.insert(
            self.signing.kid.clone(),
            self.signing.signer.public_key().clone(),
        ) {
            panic!("the broker key does not load into a KeySet: {e}");
        }
        let mut config = VerifierConfig::new(API);
        config.issuer = Some(ISSUER.into());
        TokenVerifier::new(keys, config)
    }
}

/// Builds signed device requests with unique `cti` values.
pub struct RequestFactory {
    params: TokenRequestParams,
    salt: [u8; 8],
    counter: u64,
}

impl RequestFactory {
    pub fn new() -> Self {
        let mut salt = [0u8; 8];
        rand::rng().fill_bytes(&mut salt);
        Self {
            params: TokenRequestParams::new(ISSUER, API).with_scope(SCOPE),
            salt,
            counter: 0,
        }
    }

    /// One signed request (x5t form), as the agent builds it.
    pub fn build(&mut self, device: &DeviceIdentity, now: u64) -> anyhow::Result<Vec<u8>> {
        self.counter += 1;
        let mut nonce = [0u8; 16];
        nonce[..8].copy_from_slice(&self.salt);
        nonce[8..].copy_from_slice(&self.counter.to_be_bytes());
        Ok(build_token_request(device, &self.params, now, nonce)?)
    }

    /// `n` signed requests; panics on failure (a broken fixture, not a measurement).
    pub fn batch(&mut self, device: &DeviceIdentity, now: u64, n: u64) -> Vec<Vec<u8>> {
        (0..n)
            .map(|_| {
                self.build(device, now)
                    .unwrap_or_else(|e| panic!("building a request: {e}"))
            })
            .collect()
    }
}
