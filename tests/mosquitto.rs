//! A real Mosquitto instance with a TLS listener on a free port, started per
//! test with certbound's CA, the server certificate made at `init`, and the
//! documented ACL (each device only `cb/v1/<its CN>/#`).

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The Mosquitto configuration certbound documents (README "External MQTT
/// server"), with `port` and the data directory filled in.
pub fn mosquitto_conf(data_dir: &Path, port: u16, acl_file: &Path) -> String {
    let pki = data_dir.join("pki");
    format!(
        "# certbound: Mosquitto with mutual TLS and per-device topics\n\
         per_listener_settings false\n\
         user root\n\
         listener {port} 127.0.0.1\n\
         cafile {ca}\n\
         certfile {cert}\n\
         keyfile {key}\n\
         require_certificate true\n\
         use_identity_as_username true\n\
         acl_file {acl}\n\
         set_tcp_nodelay true\n\
         persistence false\n\
         log_dest stderr\n\
         log_type error\n\
         log_type warning\n",
        ca = pki.join("ca-chain.pem").display(),
        cert = pki.join("server.cert.pem").display(),
        key = pki.join("server.key.pem").display(),
        acl = acl_file.display(),
    )
}

/// The ACL: the broker identity may use every device topic (and the shared
/// subscription), the `ingest` service may read all telemetry, each device
/// only its own namespace.
pub const MOSQUITTO_ACL: &str = "\
user certbound-broker
topic readwrite cb/v1/#
topic readwrite $share/certbound/cb/v1/#

user ingest
topic read cb/v1/+/telemetry

pattern readwrite cb/v1/%u/#
";

/// The split-listener configuration docs/mqtt.md recommends: devices on
/// `device_port` (no user entries in their ACL, only the per-CN pattern), the
/// broker and services on `service_port` with their own ACL.
pub fn mosquitto_split_conf(
    data_dir: &Path,
    device_port: u16,
    service_port: u16,
    device_acl: &Path,
    service_acl: &Path,
) -> String {
    let pki = data_dir.join("pki");
    let listener = |port: u16, acl: &Path| {
        format!(
            "listener {port} 127.0.0.1\n\
             cafile {ca}\n\
             certfile {cert}\n\
             keyfile {key}\n\
             require_certificate true\n\
             use_identity_as_username true\n\
             acl_file {acl}\n\
             set_tcp_nodelay true\n",
            ca = pki.join("ca-chain.pem").display(),
            cert = pki.join("server.cert.pem").display(),
            key = pki.join("server.key.pem").display(),
            acl = acl.display(),
        )
    };
    format!(
        "# certbound: Mosquitto with a device listener and a service listener\n\
         per_listener_settings true\n\
         user root\n\
         persistence false\n\
         log_dest stderr\n\
         log_type error\n\
         log_type warning\n\
         {}{}",
        listener(device_port, device_acl),
        listener(service_port, service_acl),
    )
}

/// The device listener's ACL (split configuration): no user entries at all.
pub const MOSQUITTO_DEVICE_ACL: &str = "\
pattern readwrite cb/v1/%u/#
";

/// The service listener's ACL (split configuration).
pub const MOSQUITTO_SERVICE_ACL: &str = "\
user certbound-broker
topic readwrite cb/v1/#
topic readwrite $share/certbound/cb/v1/#

user ingest
topic read cb/v1/+/telemetry
";

/// A running Mosquitto, killed on drop.
pub struct Mosquitto {
    child: Child,
    /// Where it listens (the device listener of the split configuration).
    pub addr: SocketAddr,
    /// The service listener of the split configuration.
    pub service_addr: Option<SocketAddr>,
    _conf: PathBuf,
}

impl Mosquitto {
    /// Starts Mosquitto for `data_dir` on a free port; `None` when the
    /// `mosquitto` binary is not installed.
    pub fn start(data_dir: &Path) -> Option<Mosquitto> {
        Self::start_with_acl(data_dir, MOSQUITTO_ACL)
    }

    /// [`Mosquitto::start`] with another ACL file content (e.g.
    /// [`MOSQUITTO_ACL`] plus one more service).
    pub fn start_with_acl(data_dir: &Path, acl_text: &str) -> Option<Mosquitto> {
        let binary = binary()?;
        let port = free_port();
        let acl = data_dir.join("mosquitto.acl");
        std::fs::write(&acl, acl_text).ok()?;
        let conf = data_dir.join(format!("mosquitto-{port}.conf"));
        let mut f = std::fs::File::create(&conf).ok()?;
        f.write_all(mosquitto_conf(data_dir, port, &acl).as_bytes())
            .ok()?;
        let child = Command::new(binary)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .ok()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut m = Mosquitto {
            child,
            addr,
            service_addr: None,
            _conf: conf,
        };
        m.wait_for(addr);
        Some(m)
    }

    /// Starts Mosquitto with the split-listener configuration
    /// ([`mosquitto_split_conf`]): `addr` is the device listener,
    /// `service_addr` the broker's. `None` when `mosquitto` is not installed.
    pub fn start_split(data_dir: &Path) -> Option<Mosquitto> {
        let binary = binary()?;
        let (device_port, service_port) = (free_port(), free_port());
        let device_acl = data_dir.join("mosquitto-devices.acl");
        let service_acl = data_dir.join("mosquitto-services.acl");
        std::fs::write(&device_acl, MOSQUITTO_DEVICE_ACL).ok()?;
        std::fs::write(&service_acl, MOSQUITTO_SERVICE_ACL).ok()?;
        let conf = data_dir.join(format!("mosquitto-split-{device_port}.conf"));
        let text = mosquitto_split_conf(
            data_dir,
            device_port,
            service_port,
            &device_acl,
            &service_acl,
        );
        std::fs::write(&conf, text).ok()?;
        let child = Command::new(binary)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .ok()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], device_port));
        let service_addr = SocketAddr::from(([127, 0, 0, 1], service_port));
        let mut m = Mosquitto {
            child,
            addr,
            service_addr: Some(service_addr),
            _conf: conf,
        };
        m.wait_for(addr);
        m.wait_for(service_addr);
        Some(m)
    }

    /// Waits until `addr` accepts connections; panics if Mosquitto died.
    fn wait_for(&mut self, addr: SocketAddr) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if Instant::now() > deadline || self.child.try_wait().ok().flatten().is_some() {
                panic!("mosquitto did not start on {addr} (see its log above)");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The `mosquitto` binary, when installed.
fn binary() -> Option<&'static str> {
    ["mosquitto", "/usr/sbin/mosquitto"].into_iter().find(|b| {
        Command::new(b)
            .arg("-h")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    })
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(18883)
}

/// Prints a loud skip message, or panics when `CERTBOUND_REQUIRE_ALL=1`.
pub fn skip_or_fail(what: &str) {
    if std::env::var("CERTBOUND_REQUIRE_ALL").as_deref() == Ok("1") {
        panic!("{what} is required (CERTBOUND_REQUIRE_ALL=1) but missing");
    }
    eprintln!(
        "\n*** SKIPPED: {what} is missing; run .ci/run or install it to run this check ***\n"
    );
}
