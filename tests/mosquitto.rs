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

/// A running Mosquitto, killed on drop.
pub struct Mosquitto {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    _conf: PathBuf,
}

impl Mosquitto {
    /// Starts Mosquitto for `data_dir` on a free port; `None` when the
    /// `mosquitto` binary is not installed.
    pub fn start(data_dir: &Path) -> Option<Mosquitto> {
        let binary = ["mosquitto", "/usr/sbin/mosquitto"].into_iter().find(|b| {
            Command::new(b)
                .arg("-h")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok()
        })?;
        let port = free_port();
        let acl = data_dir.join("mosquitto.acl");
        std::fs::write(&acl, MOSQUITTO_ACL).ok()?;
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
            _conf: conf,
        };
        // Wait until it accepts connections (or has died).
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if Instant::now() > deadline || m.child.try_wait().ok().flatten().is_some() {
                panic!("mosquitto did not start on {addr} (see its log above)");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(m)
    }
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
