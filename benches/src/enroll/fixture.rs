//! The broker under test: a data directory with the bench's configuration
//! (rate limits off, admission caps up, no MQTT), provisioned devices or a
//! provisioning claim, and a `certbound serve` child process on free ports.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use certbound_agent::DeviceIdentity;
use certbound_registry::config::DataDir;
use certbound_registry::registry::{self, BulkControl, BulkOptions, BulkReport, Registry};
use tokio_rustls::rustls::ClientConfig;

use super::http::{Conn, Target};

/// The broker's issuer id.
pub const ISSUER: &str = "https://auth.enroll.bench";
/// The group devices and claimed devices join.
pub const GROUP: &str = "fleet";

/// What the bench changes in the `certbound.toml` that `certbound init`
/// writes: (the template's line, the bench's line, why). Each must match
/// exactly once, so a changed template stops the bench instead of being
/// measured with other settings.
pub const CONFIG_CHANGES: &[(&str, &str, &str)] = &[
    (
        "device_per_sec = 1.0",
        "device_per_sec = 0",
        "EST simplereenroll takes from the per-device token bucket (1/s, burst 10): `est --mode reenroll` renews each device many times",
    ),
    (
        "client_per_sec = 10.0",
        "client_per_sec = 0",
        "the same for OAuth clients (not used here), as certbound-load does",
    ),
    (
        "max_in_flight = 512",
        "max_in_flight = 16384",
        "CoAP: more than 512 requests in flight get 5.03 (a wave with --concurrency above 512)",
    ),
    (
        "max_connections = 1024",
        "max_connections = 16384",
        "HTTPS: connections past 1024 are closed at accept (an EST wave with --concurrency above 1024)",
    ),
    (
        "mode = \"embedded\"",
        "mode = \"off\"",
        "no embedded MQTT server: not measured here, and one listener less",
    ),
];

/// A data directory, made in a temporary folder (or kept in `--keep`).
pub struct Bench {
    _temp: Option<tempfile::TempDir>,
    /// The folder holding the data directory and the device files.
    pub root: PathBuf,
    /// The broker data directory.
    pub dir: PathBuf,
}

impl Bench {
    /// `certbound init`, the bench configuration, one group without grants.
    pub async fn new(keep: Option<PathBuf>) -> anyhow::Result<Self> {
        let (temp, root) = match keep {
            Some(path) => {
                std::fs::create_dir_all(&path)?;
                anyhow::ensure!(
                    std::fs::read_dir(&path)?.next().is_none(),
                    "--keep {} must be an empty or new folder",
                    path.display()
                );
                (None, path)
            }
            None => {
                let t = tempfile::tempdir()?;
                let p = t.path().to_path_buf();
                (Some(t), p)
            }
        };
        let dir = root.join("broker");
        registry::init(&dir, ISSUER).await?;
        apply_config(&dir.join("certbound.toml"))?;
        let reg = Registry::open(&dir).await?;
        reg.create_group(GROUP, &[]).await?;
        reg.close().await;
        Ok(Self {
            _temp: temp,
            root,
            dir,
        })
    }

    /// The CA chain servers and clients trust.
    pub fn ca_pem(&self) -> anyhow::Result<String> {
        Ok(std::fs::read_to_string(
            DataDir::new(&self.dir).pki().chain(),
        )?)
    }

    /// Provisions `count` devices `{prefix}1..` with the registry's bulk
    /// provisioning (what `certbound device provision --count` runs) and
    /// loads their identities.
    pub async fn provision(
        &self,
        prefix: &str,
        count: u64,
    ) -> anyhow::Result<(Vec<DeviceIdentity>, BulkReport)> {
        let out = self
            .root
            .join(format!("devices-{}", prefix.trim_end_matches('-')));
        let mut opts = BulkOptions::new(prefix, count, &out);
        opts.groups = vec![GROUP.into()];
        let reg = Registry::open(&self.dir).await?;
        let report = reg.provision_bulk(&opts, &BulkControl::default()).await;
        reg.close().await;
        let report = report?;
        anyhow::ensure!(
            report.provisioned == count,
            "provisioned {} of {count} devices",
            report.provisioned
        );
        let manifest = std::fs::read_to_string(&report.manifest_csv)?;
        let mut devices = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
        for line in manifest.lines().skip(1) {
            let fields: Vec<&str> = line.split(',').collect();
            let (Some(key), Some(cert)) = (fields.get(4), fields.get(5)) else {
                bail!("unexpected manifest row {line:?}");
            };
            devices.push(DeviceIdentity::load(&out.join(key), &out.join(cert))?);
        }
        Ok((devices, report))
    }

    /// Runs `--sql FILE` on the registry database, if given.
    pub fn apply_sql(&self, sql: Option<&PathBuf>) -> anyhow::Result<()> {
        let Some(sql) = sql else { return Ok(()) };
        let input =
            std::fs::File::open(sql).with_context(|| format!("opening {}", sql.display()))?;
        let status = Command::new("sqlite3")
            .arg(self.dir.join("certbound.db"))
            .stdin(input)
            .status()
            .context("running sqlite3 (package sqlite3)")?;
        anyhow::ensure!(
            status.success(),
            "sqlite3 < {} failed: {status}",
            sql.display()
        );
        eprintln!("applied {} to the registry database", sql.display());
        Ok(())
    }

    /// A provisioning claim for `uses` devices whose ids match `pattern`:
    /// its certificate chain and key, PEM.
    pub async fn claim(&self, uses: u64, pattern: &str) -> anyhow::Result<(String, String)> {
        let reg = Registry::open(&self.dir).await?;
        let c = reg
            .create_claim(
                GROUP,
                uses,
                24 * 3600,
                Some(pattern),
                None,
                &self.root.join("claim"),
            )
            .await;
        reg.close().await;
        let c = c?;
        Ok((
            std::fs::read_to_string(&c.cert_file)?,
            std::fs::read_to_string(&c.key_file)?,
        ))
    }
}

/// Rewrites `certbound.toml` with [`CONFIG_CHANGES`].
fn apply_config(path: &Path) -> anyhow::Result<()> {
    let mut text = std::fs::read_to_string(path)?;
    for (from, to, _) in CONFIG_CHANGES {
        let found = text.lines().filter(|l| l.trim() == *from).count();
        anyhow::ensure!(
            found == 1,
            "certbound.toml holds {found} lines `{from}` (expected 1): the template changed, update CONFIG_CHANGES"
        );
        text = text
            .lines()
            .map(|l| if l.trim() == *from { *to } else { l })
            .collect::<Vec<_>>()
            .join("\n");
        text.push('\n');
    }
    std::fs::write(path, text)?;
    Ok(())
}

/// A `certbound serve` child process, killed when dropped.
pub struct Server {
    child: Child,
    /// CoAP (UDP).
    pub coap: SocketAddr,
    /// HTTPS (TCP).
    pub https: SocketAddr,
}

impl Drop for Server {
    /// SIGTERM (the server writes its queued audit events and stops), then
    /// SIGKILL if it is still running after 10 s.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `binary serve --dir DIR` on free ports and waits until its
    /// HTTPS listener answers `GET /.well-known/est/cacerts`.
    pub async fn start(binary: &Path, dir: &Path, ca_pem: &str, log: &str) -> anyhow::Result<Self> {
        let coap = UdpSocket::bind("127.0.0.1:0")?.local_addr()?;
        let https = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let child = Command::new(binary)
            .arg("serve")
            .arg("--dir")
            .arg(dir)
            .arg("--coap-listen")
            .arg(coap.to_string())
            .arg("--https-listen")
            .arg(https.to_string())
            .env("RUST_LOG", log)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut server = Server { child, coap, https };
        let target = Target {
            addr: https,
            tls: Some(tls(ca_pem, None)?),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let probe = async {
                let mut c = Conn::open(&target).await?;
                c.get("/.well-known/est/cacerts").await
            };
            match probe.await {
                Ok(a) if a.status == 200 => return Ok(server),
                _ if Instant::now() < deadline => {
                    if let Some(status) = server.child.try_wait()? {
                        bail!("certbound serve exited: {status}");
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Ok(a) => bail!("the server answers GET cacerts with {}", a.status),
                Err(e) => bail!("the server does not answer over HTTPS: {e:#}"),
            }
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// A TLS client configuration trusting `ca_pem`, with a client identity
/// (certificate chain and key, PEM) for mutual TLS.
/// One mTLS target per device at `addr`, each with the device's certificate.
pub fn device_targets(
    devices: &[DeviceIdentity],
    addr: std::net::SocketAddr,
    ca_pem: &str,
) -> anyhow::Result<Vec<super::http::Target>> {
    devices
        .iter()
        .map(|d| {
            Ok(super::http::Target {
                addr,
                tls: Some(tls(ca_pem, Some((d.cert_pem(), d.key_pem())))?),
            })
        })
        .collect()
}

pub fn tls(ca_pem: &str, identity: Option<(&str, &str)>) -> anyhow::Result<Arc<ClientConfig>> {
    certbound_verify::http::client_tls_config(ca_pem, identity)
        .map_err(|e| anyhow::anyhow!("TLS client configuration: {e}"))
}

/// Starts `perf record -F 499 -g -p PID -o FILE -- sleep SECS` in the
/// background (where the server's time goes); `None` when not asked for.
pub fn perf(pid: u32, out: Option<&PathBuf>, secs: u64) -> anyhow::Result<Option<Child>> {
    let Some(out) = out else { return Ok(None) };
    let child = Command::new("perf")
        .args(["record", "-F", "499", "-g", "-p", &pid.to_string(), "-o"])
        .arg(out)
        .args(["--", "sleep", &secs.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting perf (package linux-perf)")?;
    eprintln!(
        "perf recording the server for {secs} s into {}",
        out.display()
    );
    Ok(Some(child))
}
