//! The operator console in a real browser: `certbound serve` with a
//! firmware-sim fleet getting tokens over CoAP, MQTT and HTTPS, 2 000 more
//! devices, and `node ui/e2e/console.mjs` driving Debian's Chromium
//! (playwright-core) through the console: form and one-time-link sign-in,
//! dashboard charts with the fleet's numbers, a device found by the search
//! box among thousands, revoked through the confirmation dialog, keyboard
//! operation, screenshots. Then the revoked device is refused a token over
//! CoAP (real UDP) and another device still gets one.
//!
//! Skipped loudly without node, chromium or ui/node_modules (a failure under
//! `CERTBOUND_REQUIRE_ALL=1`). Screenshots go to a temporary directory, or to
//! `CERTBOUND_UI_SCREENSHOTS` (e.g. `docs/console` to refresh the README's;
//! `CERTBOUND_UI_SETTLE_MINUTES=N` waits for N minutes of fleet tokens before
//! the dashboard's picture).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use certbound_agent::{
    AgentError, DeviceIdentity, TokenRequestParams, build_token_request, decode_token_response,
};
use certbound_coap::content_format;
use certbound_registry::registry::{ADMIN_CLIENT_FILE, BulkControl, BulkOptions, Registry};
use common::{ISSUER, Serve, ok, skip_or_fail};
use firmware_sim::{BrokerTarget, RemoteFleet, SimOptions, TransportMix};

/// The API and group of the 2 000 extra devices.
const API: &str = "https://meters.example.com";
const GROUP: &str = "meters";
const EXTRA: u64 = 2000;
/// The device the browser finds and revokes, and one that stays active.
const VICTIM: &str = "meter-1234";
const BYSTANDER: &str = "meter-1235";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// node, chromium and ui/node_modules/playwright-core, or `None` after a
/// loud skip (a failure under `CERTBOUND_REQUIRE_ALL=1`).
fn browser_tools() -> Option<(PathBuf, PathBuf)> {
    let node = std::env::var_os("CERTBOUND_NODE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("node"));
    let node_ok = Command::new(&node)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !node_ok {
        skip_or_fail("node (Debian package nodejs, or CERTBOUND_NODE)");
        return None;
    }
    let chromium = std::env::var_os("CERTBOUND_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if !chromium.exists() {
        skip_or_fail("chromium (Debian package chromium, or CERTBOUND_CHROMIUM)");
        return None;
    }
    if !workspace().join("ui/node_modules/playwright-core").exists() {
        skip_or_fail("ui/node_modules (run `npm ci` in ui/)");
        return None;
    }
    Some((node, chromium))
}

/// The node process running the browser script, killed if the test fails first.
struct Browser(std::process::Child);

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A token request of `device` for `API` over CoAP to `addr`.
async fn coap_token(
    addr: &str,
    device: &DeviceIdentity,
    scope: &str,
) -> Result<certbound_agent::ObtainedToken, AgentError> {
    let client = certbound_coap::Client::connect(addr.parse().unwrap(), Default::default())
        .await
        .unwrap();
    let params = TokenRequestParams::new(ISSUER, API).with_scope(scope);
    let body = build_token_request(device, &params, unix_now(), rand::random())?;
    let r = client
        .post("token", content_format::COSE_SIGN1, body)
        .await?;
    decode_token_response(r.code, r.content_format, &r.payload)
}

/// The key and certificate files of `id` from the manifest.csv of one of
/// the bulk runs under `out`.
fn identity(out: &Path, id: &str) -> DeviceIdentity {
    for batch in std::fs::read_dir(out).unwrap() {
        let batch = batch.unwrap().path();
        let manifest = std::fs::read_to_string(batch.join("manifest.csv")).unwrap();
        let Some(line) = manifest.lines().find(|l| l.starts_with(&format!("{id},"))) else {
            continue;
        };
        let cols: Vec<&str> = line.split(',').collect();
        let path = |p: &str| {
            let p = Path::new(p);
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                batch.join(p)
            }
        };
        return DeviceIdentity::load(&path(cols[4]), &path(cols[5])).unwrap();
    }
    panic!("{id} is in no manifest under {}", out.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_finds_and_revokes_a_device_that_coap_then_refuses() {
    let Some((node, chromium)) = browser_tools() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cb");
    let d = dir.to_str().unwrap().to_string();
    ok(&["init", "--dir", &d, "--issuer-id", ISSUER]);

    // 2 000 devices besides the fleet, so that the search box matters.
    let registry = Registry::open(&dir).await.unwrap();
    registry.create_api(API, "read", 600).await.unwrap();
    registry
        .create_group(GROUP, &[(API.into(), "read".into())])
        .await
        .unwrap();
    // In 20 batches whose certificates expire 5, 9, ... 81 days from now:
    // the dashboard's 90-day expiry chart has something to show.
    let out = tmp.path().join("meters");
    let batches = 20;
    let per = EXTRA / batches;
    for k in 0..batches {
        let bulk = BulkOptions {
            groups: vec![GROUP.into()],
            start: 1 + k * per,
            lifetime_days: Some(5 + 4 * k as u32),
            ..BulkOptions::new("meter-", per, &out.join(format!("batch-{k}")))
        };
        registry
            .provision_bulk(
                &bulk,
                &BulkControl {
                    stop: None,
                    progress: None,
                },
            )
            .await
            .unwrap();
    }
    eprintln!("{EXTRA} extra devices provisioned");
    registry.close().await;
    let victim = identity(&out, VICTIM);
    let bystander = identity(&out, BYSTANDER);

    let serve = Serve::start(&dir);
    coap_token(&serve.addr, &victim, "read")
        .await
        .expect("the device gets a token before the console revokes it");
    // A scope it was never granted: refused (the dashboard's refusals chart shows it).
    let refused = coap_token(&serve.addr, &bystander, "write").await;
    assert!(
        matches!(refused, Err(AgentError::Refused(_))),
        "a scope never granted: {refused:?}"
    );

    // The fleet: tokens over CoAP, MQTT and HTTPS for the whole browser run.
    let mut o = SimOptions::new(12);
    // 6 CoAP, 4 MQTT and 2 HTTPS devices: three lines apart on the chart.
    o.transports = TransportMix::parse("coap,mqtt,coap,https,coap,mqtt").unwrap();
    o.duration = Duration::from_secs(900);
    o.telemetry_every = Duration::from_secs(2);
    o.token_lifetime = Duration::from_secs(10);
    o.broker = BrokerTarget::Remote(RemoteFleet {
        data_dirs: vec![dir.clone()],
        instances: vec![
            firmware_sim::options::parse_instance(&format!(
                "coap={},https={},mqtt={}",
                serve.addr, serve.https, serve.mqtt
            ))
            .unwrap(),
        ],
    });
    let mut sim = tokio::spawn(async move { firmware_sim::run(&o, &|_| {}).await });

    // A one-time sign-in link, and the admin client for the form sign-in.
    let link: serde_json::Value = serde_json::from_str(&ok(&[
        "ui-login",
        "--dir",
        &d,
        "--json",
        "--label",
        "e2e",
        "--base-url",
        &serve.https,
    ]))
    .unwrap();
    let link = link["url"].as_str().expect("ui-login --json gives a url");
    let creds: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(ADMIN_CLIENT_FILE)).unwrap())
            .unwrap();

    let shots = std::env::var_os("CERTBOUND_UI_SCREENSHOTS")
        .map(|p| {
            let p = PathBuf::from(p);
            if p.is_absolute() {
                p
            } else {
                workspace().join(p)
            }
        })
        .unwrap_or_else(|| tmp.path().join("screenshots"));
    let script = workspace().join("ui/e2e/console.mjs");
    let mut browser = Browser(
        Command::new(&node)
            .arg(&script)
            .current_dir(workspace().join("ui"))
            .env("CERTBOUND_UI_BASE", &serve.https)
            .env("CERTBOUND_UI_LINK", link)
            .env("CERTBOUND_UI_DEVICE", VICTIM)
            .env("CERTBOUND_UI_MIN_DEVICES", EXTRA.to_string())
            .env(
                "CERTBOUND_UI_CLIENT_ID",
                creds["client_id"].as_str().unwrap(),
            )
            .env(
                "CERTBOUND_UI_CLIENT_SECRET",
                creds["client_secret"].as_str().unwrap(),
            )
            .env("CERTBOUND_UI_OUT", &shots)
            .env(
                "CERTBOUND_UI_SETTLE_MINUTES",
                std::env::var("CERTBOUND_UI_SETTLE_MINUTES").unwrap_or_else(|_| "0".into()),
            )
            .env("CERTBOUND_CHROMIUM", &chromium)
            .spawn()
            .expect("run node"),
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    let status = loop {
        if let Some(status) = browser.0.try_wait().unwrap() {
            break status;
        }
        if sim.is_finished() {
            match (&mut sim).await {
                Ok(Ok(outcome)) => panic!("the fleet stopped early:\n{}", outcome.report.summary()),
                Ok(Err(e)) => panic!("the fleet failed: {e}"),
                Err(e) => panic!("the fleet task failed: {e}"),
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the browser run took over 10 min"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(status.success(), "ui/e2e/console.mjs failed: {status}");
    eprintln!("screenshots in {}", shots.display());

    // Revoked in the browser: refused over CoAP at once; others still served.
    match coap_token(&serve.addr, &victim, "read").await {
        Err(AgentError::Refused(e)) => eprintln!("{VICTIM} refused over CoAP: {e}"),
        Ok(_) => panic!("{VICTIM} got a token after the console revoked it"),
        Err(e) => panic!("{VICTIM}: {e}"),
    }
    coap_token(&serve.addr, &bystander, "read")
        .await
        .expect("another device still gets a token");
    sim.abort();
}
