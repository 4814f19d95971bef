//! Setting up a fleet: the broker's data directory (a fresh one for the
//! embedded broker, or the directory of a broker that runs elsewhere), the
//! telemetry API and group, N devices provisioned in bulk (resumable: a
//! second run into a kept directory reuses them), and a service certificate
//! for the backend's MQTT subscription.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use certbound_broker::server::{RunningBroker, ServeOptions, start};
use certbound_registry::RegistryError;
use certbound_registry::config::{Config, DataDir, MqttMode, parse_mqtt_url};
use certbound_registry::registry::{self, Registry};
use certbound_registry::registry::{BulkControl, BulkOptions, BulkProgress};

use crate::SimError;
use crate::options::{BrokerTarget, SimOptions};

/// Issuer id of a broker the simulator creates.
pub const SIM_ISSUER: &str = "https://auth.sim.certbound";
/// The telemetry API the fleet's tokens are for.
pub const SIM_API: &str = "https://telemetry.sim.certbound";
/// The group the fleet's devices join.
pub const SIM_GROUP: &str = "sim-fleet";
/// Name of the backend's service identity.
pub const SIM_SERVICE: &str = "firmware-sim-backend";

/// A broker that runs elsewhere, as one instance or several sharing one
/// store: the first data directory gives the issuer and CA (the simulator
/// registers its API, group and devices there, which every running
/// instance picks up live); each data directory gives one instance's
/// addresses, unless the instances are given by address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFleet {
    /// The instances' data directories (`--broker DIR`, repeatable), at least one.
    pub data_dirs: Vec<PathBuf>,
    /// Instances given by address (`--instance`, repeatable): when any are
    /// given, they replace the addresses of the data directory's configuration.
    pub instances: Vec<Endpoints>,
}

impl RemoteFleet {
    /// One broker, one data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dirs: vec![data_dir.into()],
            instances: Vec::new(),
        }
    }

    /// The data directory the simulator provisions through (the first).
    ///
    /// # Errors
    /// [`SimError::Options`] when none is given.
    pub fn data_dir(&self) -> Result<&Path, SimError> {
        self.data_dirs
            .first()
            .map(PathBuf::as_path)
            .ok_or_else(|| SimError::Options("--broker DIR is needed".into()))
    }
}

/// A provisioned device's files.
#[derive(Debug, Clone)]
pub struct DeviceFiles {
    /// Device id.
    pub id: String,
    /// Private key (PEM).
    pub key_file: PathBuf,
    /// Certificate chain (PEM).
    pub cert_file: PathBuf,
    /// When the certificate provisioned into the folder expires (Unix seconds).
    pub not_after: u64,
}

/// The fleet, ready to run.
#[derive(Debug)]
pub struct Fleet {
    /// The broker's data directory.
    pub dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    /// Registry on that directory (revocations during the run go through it).
    pub registry: Registry,
    /// The devices.
    pub devices: Vec<DeviceFiles>,
    /// Issuer id.
    pub issuer: String,
    /// The broker's CA chain (PEM): trusted for its TLS servers.
    pub ca_pem: String,
    /// Backend service certificate and key (PEM).
    pub service: (String, String),
    /// The broker's allowed clock skew, seconds.
    pub leeway: u64,
    /// Seconds spent provisioning (or loading) the fleet.
    pub provision_secs: f64,
}

/// Where one broker instance listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// CoAP.
    pub coap: Option<SocketAddr>,
    /// MQTT (host, port).
    pub mqtt: Option<(String, u16)>,
    /// HTTPS base URL.
    pub https: Option<String>,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> SimError + '_ {
    move |e| SimError::Setup(format!("{}: {e}", path.display()))
}

/// Creates or opens the data directory, registers the API and group, and
/// provisions the devices. `progress(done, total)` is called as devices are made.
///
/// # Errors
/// [`SimError`] for a directory that is not a certbound data directory, and
/// any registry or provisioning failure.
pub async fn prepare(
    options: &SimOptions,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Fleet, SimError> {
    let started = std::time::Instant::now();
    let (dir, temp) = match &options.broker {
        BrokerTarget::Embedded { keep } => {
            let (dir, temp) = match keep {
                Some(d) => {
                    std::fs::create_dir_all(d).map_err(io(d))?;
                    (d.clone(), None)
                }
                None => {
                    let t = tempfile::tempdir()
                        .map_err(|e| SimError::Setup(format!("temporary directory: {e}")))?;
                    (t.path().to_path_buf(), Some(t))
                }
            };
            if !DataDir::new(&dir).config().exists() {
                registry::init(&dir, SIM_ISSUER).await?;
                tune_config(&dir, options)?;
            }
            (dir, temp)
        }
        BrokerTarget::Remote(remote) => {
            for d in &remote.data_dirs {
                if !DataDir::new(d).config().exists() {
                    return Err(SimError::Setup(format!(
                        "{} is not a certbound data directory (no certbound.toml); pass the --dir of the running broker",
                        d.display()
                    )));
                }
            }
            (remote.data_dir()?.to_path_buf(), None)
        }
    };
    let config = Config::load(&dir)?;
    let registry = Registry::open(&dir).await?;
    ignore_conflict(
        registry
            .create_api(SIM_API, "telemetry:write", options.token_lifetime.as_secs())
            .await
            .map(drop),
    )?;
    ignore_conflict(
        registry
            .create_group(SIM_GROUP, &[(SIM_API.into(), "telemetry:write".into())])
            .await
            .map(drop),
    )?;

    let out = dir
        .join("sim-devices")
        .join(options.prefix.trim_end_matches('-'));
    let bulk = BulkOptions {
        groups: vec![SIM_GROUP.into()],
        lifetime_secs: options.cert_lifetime.map(|d| d.as_secs()),
        ..BulkOptions::new(&options.prefix, options.devices as u64, &out)
    };
    let report_progress = |p: &BulkProgress| progress(p.registered, p.total);
    registry
        .provision_bulk(
            &bulk,
            &BulkControl {
                stop: None,
                progress: Some(&report_progress),
            },
        )
        .await?;
    // A kept directory may hold more devices from an earlier, larger run.
    let wanted: std::collections::HashSet<String> = (1..=options.devices)
        .map(|n| format!("{}{n}", options.prefix))
        .collect();
    let devices: Vec<_> = read_manifest(&out)?
        .into_iter()
        .filter(|d| wanted.contains(&d.id))
        .collect();
    // Devices kept from an earlier run may hold certificates that are
    // expired (or expire during this run): they could not connect over TLS.
    let ends = crate::unix_now() + options.duration.as_secs() + 5;
    if let Some(d) = devices.iter().find(|d| d.not_after <= ends) {
        return Err(SimError::Setup(format!(
            "device {} in {} has a certificate valid only until {} (Unix time), before this run ends: \
             the fleet kept there was provisioned with short-lived certificates; use a new --keep \
             directory or another --prefix",
            d.id,
            out.display(),
            d.not_after
        )));
    }
    if devices.len() != options.devices {
        return Err(SimError::Setup(format!(
            "{} lists {} of the {} devices asked for; run again to resume provisioning",
            out.display(),
            devices.len(),
            options.devices
        )));
    }

    let service_dir = dir.join("sim-service");
    fresh_service_files(&service_dir, SIM_SERVICE)?;
    let svc = registry
        .provision_service(SIM_SERVICE, &service_dir, 1)
        .await?;
    let read = |p: &Path| std::fs::read_to_string(p).map_err(io(p));
    let service = (read(&svc.cert_file)?, read(&svc.key_file)?);
    let ca_pem = read(&DataDir::new(&dir).pki().chain())?;
    Ok(Fleet {
        dir,
        _temp: temp,
        registry,
        devices,
        issuer: config.broker.issuer_id.clone(),
        ca_pem,
        service,
        leeway: config.broker.leeway_secs,
        provision_secs: started.elapsed().as_secs_f64(),
    })
}

/// Removes the simulator's own service key and certificate from an earlier
/// run into a kept directory: a new pair is issued for every run.
///
/// # Errors
/// [`SimError::Setup`] when a file exists but cannot be removed.
pub fn fresh_service_files(dir: &Path, name: &str) -> Result<(), SimError> {
    for ext in ["key.pem", "cert.pem"] {
        let file = dir.join(format!("{name}.{ext}"));
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&file)(e)),
        }
    }
    Ok(())
}

fn ignore_conflict(r: Result<(), RegistryError>) -> Result<(), SimError> {
    match r {
        Ok(()) | Err(RegistryError::Conflict { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Settings of a broker made for a simulation: status lists refreshed every
/// 2 s (revocations show quickly), renewed certificates as short-lived as
/// the first ones.
fn tune_config(dir: &Path, options: &SimOptions) -> Result<(), SimError> {
    let path = DataDir::new(dir).config();
    let mut text = std::fs::read_to_string(&path).map_err(io(&path))?;
    text = text.replacen("ttl_secs = 60", "ttl_secs = 2", 1);
    if let Some(c) = options.cert_lifetime {
        text = text.replacen(
            "# device_cert_secs = 120",
            &format!("device_cert_secs = {}", c.as_secs()),
            1,
        );
    }
    std::fs::write(&path, text).map_err(io(&path))
}

#[derive(serde::Deserialize)]
struct Row {
    id: String,
    key_file: String,
    cert_file: String,
    not_after: u64,
}

fn read_manifest(out: &Path) -> Result<Vec<DeviceFiles>, SimError> {
    let path = out.join(certbound_registry::registry::bulk::MANIFEST_JSONL);
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let row: Row = serde_json::from_str(l)
                .map_err(|e| SimError::Setup(format!("{}: {e}", path.display())))?;
            Ok(DeviceFiles {
                not_after: row.not_after,
                id: row.id,
                key_file: out.join(row.key_file),
                cert_file: out.join(row.cert_file),
            })
        })
        .collect()
}

/// The addresses of a broker that runs elsewhere, from its configuration.
///
/// # Errors
/// [`SimError::Broker`] for an unreadable configuration or MQTT URL.
pub fn remote_endpoints(dir: &Path) -> Result<Endpoints, SimError> {
    let config = Config::load(dir)?;
    let mqtt = match config.mqtt.mode {
        MqttMode::Embedded => {
            let a = config.mqtt_listen();
            Some((a.ip().to_string(), a.port()))
        }
        MqttMode::External => Some(
            parse_mqtt_url(config.mqtt.url.as_deref().unwrap_or_default())
                .map_err(|e| SimError::Setup(format!("mqtt.url: {e}")))?,
        ),
        _ => None,
    };
    let https = config.https.enabled.then(|| {
        config
            .https
            .public_url
            .clone()
            .unwrap_or_else(|| format!("https://{}", config.https_listen()))
    });
    Ok(Endpoints {
        coap: config.coap.enabled.then(|| config.coap_listen()),
        mqtt,
        https,
    })
}

/// The instances of a remote broker: the addresses given, or those of each
/// data directory's configuration. Several data directories must name one
/// shared store (`[store] url`), or the devices provisioned through the
/// first would be unknown to the others.
///
/// # Errors
/// [`SimError::Setup`] for unreadable configurations or data directories
/// on different stores.
pub fn remote_instances(remote: &RemoteFleet) -> Result<Vec<Endpoints>, SimError> {
    if !remote.instances.is_empty() && remote.data_dirs.len() <= 1 {
        return Ok(remote.instances.clone());
    }
    let mut stores = Vec::new();
    let mut out = Vec::new();
    for dir in &remote.data_dirs {
        let config = Config::load(dir)?;
        stores.push((dir, config.store.url.clone()));
        out.push(remote_endpoints(dir)?);
    }
    if let [(first_dir, first), rest @ ..] = stores.as_slice()
        && let Some((dir, _)) = rest.iter().find(|(_, url)| url.is_none() || url != first)
    {
        return Err(SimError::Setup(format!(
            "{} and {} do not name the same [store] url: several instances must share one \
             PostgreSQL store (certbound init --store URL)",
            first_dir.display(),
            dir.display()
        )));
    }
    // Addresses given next to the directories (instances listening
    // elsewhere than their configuration says) replace them, in order.
    if !remote.instances.is_empty() {
        return Ok(remote.instances.clone());
    }
    Ok(out)
}

/// The embedded broker, restartable on the same ports.
#[derive(Debug)]
pub struct EmbeddedBroker {
    dir: PathBuf,
    options: ServeOptions,
    running: Option<RunningBroker>,
}

impl EmbeddedBroker {
    /// Starts on free loopback ports.
    ///
    /// # Errors
    /// [`SimError::Broker`] when it cannot start.
    pub async fn start(dir: &Path) -> Result<Self, SimError> {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let running = start(
            dir,
            ServeOptions {
                coap_listen: Some(any),
                mqtt_listen: Some(any),
                https_listen: Some(any),
            },
        )
        .await?;
        let options = ServeOptions {
            coap_listen: running.coap_addr(),
            mqtt_listen: running.mqtt_addr(),
            https_listen: running.https_addr(),
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            options,
            running: Some(running),
        })
    }

    /// Where it listens.
    pub fn endpoints(&self) -> Endpoints {
        let r = self.running.as_ref();
        Endpoints {
            coap: self.options.coap_listen,
            mqtt: self
                .options
                .mqtt_listen
                .map(|a| (a.ip().to_string(), a.port())),
            https: r.and_then(|r| r.https_url()).map(str::to_string),
        }
    }

    /// Stops it and starts it again on the same ports (retrying while the
    /// old sockets are released). Returns how long it was down.
    ///
    /// # Errors
    /// [`SimError::Broker`] when it cannot start again within 10 s.
    pub async fn restart(&mut self) -> Result<Duration, SimError> {
        let t0 = std::time::Instant::now();
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
        let mut last = None;
        while t0.elapsed() < Duration::from_secs(10) {
            match start(&self.dir, self.options.clone()).await {
                Ok(r) => {
                    self.running = Some(r);
                    return Ok(t0.elapsed());
                }
                Err(e) => {
                    last = Some(e);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        Err(last.map_or_else(
            || SimError::Setup("the broker did not restart".into()),
            SimError::Broker,
        ))
    }

    /// Stops it.
    pub async fn shutdown(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }
}
