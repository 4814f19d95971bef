//! Two `certbound serve` processes, each on a data directory with keys of its
//! own (`init --join`), on one PostgreSQL store and one
//! Mosquitto (external MQTT, shared subscriptions), a firmware-sim fleet over
//! CoAP and MQTT targeting both, and instance A killed with SIGKILL mid-run:
//! the fleet carries on through instance B (CoAP devices fail over, MQTT
//! requests go to B's shared subscription), and nothing A acknowledged is
//! lost — every token and certificate the fleet received (the sim's ledger)
//! is in the store, a revocation made through A holds on B, and a claim use
//! through A is counted.
//!
//! Skipped loudly without PostgreSQL or Mosquitto (a failure under
//! `CERTBOUND_REQUIRE_ALL=1`).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use certbound_agent::{
    AgentError, DeviceIdentity, TokenRequestParams, build_token_request, decode_token_response,
};
use certbound_broker::store::{DeviceStatus, Store};
use certbound_coap::content_format;
use certbound_e2e::https::HttpsClient;
use certbound_e2e::mosquitto::{MOSQUITTO_ACL, Mosquitto};
use certbound_proto::crypto::P256Signer;
use certbound_proto::request::{CertRef, TokenRequest, sign_request};
use certbound_registry::registry::{ADMIN_CLIENT_FILE, Registry};
use common::{Serve, ok, skip_or_fail};
use firmware_sim::ledger::{self, Entry};
use firmware_sim::{BrokerTarget, RemoteFleet, SimOptions, TransportMix};
use http::Method;
use serde_json::json;

const ISSUER: &str = "https://auth.cluster.test";
/// The API and group of the devices the test makes itself (not the fleet's).
const API: &str = "https://side.cluster.test";
const GROUP: &str = "side";
const RUN: Duration = Duration::from_secs(45);

/// The instances of one service: a PostgreSQL store, a Mosquitto they
/// consume device requests from, and `certbound serve` processes, each on a
/// data directory of its own with keys of its own (the first made by
/// `init --store`, the others by `init --join`, `ca sign-instance` on the
/// first, `ca install`): no private key is shared between them.
struct Cluster {
    _tmp: tempfile::TempDir,
    /// The data directory of each instance.
    dirs: Vec<PathBuf>,
    mosquitto: Mosquitto,
    instances: Vec<Serve>,
}

/// Points a data directory at the external Mosquitto, with quick status
/// lists and short-lived renewed certificates (renewals within the run).
fn tune(dir: &Path, mosquitto: &Mosquitto) {
    let config = dir.join("certbound.toml");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace(
            "mode = \"embedded\"",
            &format!("mode = \"external\"\nurl = \"mqtts://{}\"", mosquitto.addr),
        )
        .replacen("ttl_secs = 60", "ttl_secs = 2", 1)
        .replacen("# device_cert_secs = 120", "device_cert_secs = 60", 1);
    std::fs::write(&config, text).unwrap();
}

impl Cluster {
    /// `None` (after a loud skip) when Mosquitto is not installed.
    fn start(store_url: &str, n: usize) -> Option<Cluster> {
        let tmp = tempfile::tempdir().unwrap();
        let first = tmp.path().join("cb-0");
        let d = |p: &Path| p.to_str().unwrap().to_string();
        ok(&[
            "init",
            "--dir",
            &d(&first),
            "--issuer-id",
            ISSUER,
            "--store",
            store_url,
        ]);
        let mut dirs = vec![first.clone()];
        for i in 1..n {
            let dir = tmp.path().join(format!("cb-{i}"));
            ok(&[
                "init",
                "--dir",
                &d(&dir),
                "--join",
                "--store",
                store_url,
                "--name",
                &format!("i{i}"),
                "--key-grace",
                "0",
            ]);
            let cert = tmp.path().join(format!("issuing-ca-{i}.pem"));
            ok(&[
                "ca",
                "sign-instance",
                "--dir",
                &d(&first),
                &d(&dir.join("pki/issuing-ca.csr.pem")),
                "--out",
                &d(&cert),
            ]);
            ok(&["ca", "install", "--dir", &d(&dir), &d(&cert)]);
            dirs.push(dir);
        }
        // The documented ACL, and the simulator's backend may read telemetry.
        let acl = format!(
            "{MOSQUITTO_ACL}\nuser {}\ntopic read cb/v1/+/telemetry\n",
            firmware_sim::fleet::SIM_SERVICE
        );
        let Some(mosquitto) = Mosquitto::start_with_acl(&first, &acl) else {
            skip_or_fail("mosquitto (Debian package mosquitto)");
            return None;
        };
        for dir in &dirs {
            tune(dir, &mosquitto);
        }
        let instances = dirs.iter().map(|dir| Serve::start(dir)).collect();
        Some(Cluster {
            _tmp: tmp,
            dirs,
            mosquitto,
            instances,
        })
    }

    /// The first instance's data directory (the operator's CLI runs there).
    fn dir(&self) -> &Path {
        &self.dirs[0]
    }

    /// Instance `i`'s addresses, in firmware-sim's `--instance` form.
    fn instance_spec(&self, i: usize) -> String {
        let s = &self.instances[i];
        format!(
            "coap={},https={},mqtt={}",
            s.addr, s.https, self.mosquitto.addr
        )
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Waits (polling the ledger) until `done` holds for its entries; panics
/// after `within`.
async fn ledger_until(path: &Path, within: Duration, what: &str, done: impl Fn(&[Entry]) -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let entries = if path.exists() {
            ledger::read(path).unwrap()
        } else {
            Vec::new()
        };
        if done(&entries) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {within:?} ({} ledger lines)",
            entries.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A token request of `device` over CoAP to `addr`.
async fn coap_token(
    addr: &str,
    device: &DeviceIdentity,
) -> Result<certbound_agent::ObtainedToken, AgentError> {
    let client = certbound_coap::Client::connect(addr.parse().unwrap(), Default::default())
        .await
        .unwrap();
    let params = TokenRequestParams::new(ISSUER, API).with_scope("read");
    let body = build_token_request(device, &params, unix_ms() / 1000, rand::random())?;
    let r = client
        .post("token", content_format::COSE_SIGN1, body)
        .await?;
    decode_token_response(r.code, r.content_format, &r.payload)
}

/// One use of claim `claim` (key and chain files) over CoAP `/sen` to
/// `addr`, enrolling `device`; returns the CoAP code.
async fn claim_use(
    addr: &str,
    key: &Path,
    chain: &Path,
    device: &str,
) -> certbound_coap::ResponseType {
    let signer = P256Signer::from_pkcs8_pem(&std::fs::read_to_string(key).unwrap()).unwrap();
    let chain = certbound_pki::parse_pem_certs(&std::fs::read_to_string(chain).unwrap()).unwrap();
    let csr = certbound_agent::keygen::NewKey::generate(device).unwrap();
    let now = unix_ms() / 1000;
    let request = TokenRequest {
        iss: device.into(),
        aud: ISSUER.into(),
        exp: now + 60,
        iat: now,
        cti: rand::random::<[u8; 16]>().to_vec(),
        grant_type: None,
        audience: None,
        scope: None,
        csr: Some(csr.csr_der().to_vec()),
    };
    let body = sign_request(&request, &CertRef::X5Chain(chain), &signer).unwrap();
    let client = certbound_coap::Client::connect(addr.parse().unwrap(), Default::default())
        .await
        .unwrap();
    client
        .post(".well-known/est/sen", content_format::COSE_SIGN1, body)
        .await
        .unwrap()
        .code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_killed_mid_run_loses_nothing_it_acknowledged() {
    let Some(store_url) = certbound_broker::store::testing::fresh_postgres().await else {
        return;
    };
    let Some(mut cluster) = Cluster::start(&store_url, 2) else {
        return;
    };
    let dir = cluster.dir().to_path_buf();
    let store = Store::connect(&store_url).await.unwrap();

    // Side devices and a claim, made as an operator would (CLI registry).
    let registry = Registry::open(&dir).await.unwrap();
    registry.create_api(API, "read", 600).await.unwrap();
    registry
        .create_group(GROUP, &[(API.into(), "read".into())])
        .await
        .unwrap();
    let side = dir.join("side");
    let victim = registry
        .provision_device("victim-1", &[GROUP.into()], &side, None)
        .await
        .unwrap();
    let claim = registry
        .create_claim(GROUP, 2, 3600, Some("line-*"), None, &side)
        .await
        .unwrap();
    registry.close().await;
    let victim_identity = DeviceIdentity::load(&victim.key_file, &victim.cert_file).unwrap();
    let (a_coap, b_coap) = (
        cluster.instances[0].addr.clone(),
        cluster.instances[1].addr.clone(),
    );
    coap_token(&b_coap, &victim_identity)
        .await
        .expect("instance B serves the side device before the revocation");

    // The fleet: CoAP and MQTT, both instances, 10 s tokens, 60 s certificates.
    let ledger_path = dir.join("ledger.jsonl");
    let mut o = SimOptions::new(24);
    o.transports = TransportMix::parse("coap,mqtt").unwrap();
    o.duration = RUN;
    o.telemetry_every = Duration::from_secs(1);
    o.token_lifetime = Duration::from_secs(10);
    o.cert_lifetime = Some(Duration::from_secs(60));
    o.ledger = Some(ledger_path.clone());
    o.broker = BrokerTarget::Remote(RemoteFleet {
        data_dirs: cluster.dirs.clone(),
        instances: (0..2)
            .map(|i| firmware_sim::options::parse_instance(&cluster.instance_spec(i)).unwrap())
            .collect(),
    });
    let mut sim = tokio::spawn(async move { firmware_sim::run(&o, &|_| {}).await });

    // Wait until instance A has acknowledged a certificate renewal (the
    // wave starts ~14 s in) and every device holds a token.
    let renewed = ledger_until(&ledger_path, RUN, "a renewal answered by instance A", |e| {
        e.iter()
            .any(|e| e.kind == "certificate" && e.instance == Some(1))
            && e.iter()
                .filter(|e| e.kind == "token")
                .map(|e| &e.device)
                .collect::<BTreeSet<_>>()
                .len()
                == 24
    });
    tokio::select! {
        () = renewed => {}
        ended = &mut sim => match ended {
            Ok(Ok(outcome)) => panic!("the simulation ended early:\n{}", outcome.report.summary()),
            Ok(Err(e)) => panic!("the simulation failed: {e}"),
            Err(e) => panic!("the simulation task failed: {e}"),
        },
    }

    // Through A, just before the kill: revoke the side device (admin API)
    // and use the claim once.
    let https = HttpsClient::new(&cluster.instances[0].https, &dir, None).unwrap();
    let creds: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(ADMIN_CLIENT_FILE)).unwrap())
            .unwrap();
    let grant = https
        .token_with_secret(
            creds["client_id"].as_str().unwrap(),
            creds["client_secret"].as_str().unwrap(),
            certbound_registry::registry::ADMIN_API,
            None,
        )
        .await
        .unwrap();
    let admin = grant["access_token"].as_str().unwrap();
    let revoked = https
        .json(
            Method::POST,
            "/admin/v1/devices/victim-1/revoke",
            admin,
            &json!({"reason": "key compromise"}),
        )
        .await
        .unwrap();
    assert_eq!(revoked.status, 200, "{}", revoked.json);
    let used = claim_use(&a_coap, &claim.key_file, &claim.cert_file, "line-1").await;
    assert_eq!(
        used,
        certbound_coap::ResponseType::Changed,
        "claim use through A"
    );

    // SIGKILL instance A.
    let kill_ms = unix_ms();
    cluster.instances[0].kill();
    eprintln!("instance A killed at {kill_ms} (Unix ms)");

    // The revocation A acknowledged is in the store, and B enforces it (once
    // its change feed brought it: docs/architecture.md, within 1 s).
    let status = store.get_device("victim-1").await.unwrap().unwrap().status;
    assert_eq!(status, DeviceStatus::Revoked);
    let since = tokio::time::Instant::now();
    loop {
        match coap_token(&b_coap, &victim_identity).await {
            Err(AgentError::Refused(e)) => {
                eprintln!(
                    "B refuses the device revoked through A {:?} after the kill: {e}",
                    since.elapsed()
                );
                break;
            }
            Ok(_) => assert!(
                since.elapsed() < Duration::from_secs(15),
                "B still serves the device revoked through A"
            ),
            Err(e) => panic!("B: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The claim use through A is counted, and the last use through B is too.
    assert_eq!(
        store
            .get_claim(&claim.claim.id)
            .await
            .unwrap()
            .unwrap()
            .uses_left,
        1
    );
    assert!(store.get_device("line-1").await.unwrap().is_some());
    let used = claim_use(&b_coap, &claim.key_file, &claim.cert_file, "line-2").await;
    assert_eq!(
        used,
        certbound_coap::ResponseType::Changed,
        "claim use through B"
    );
    assert_eq!(
        store
            .get_claim(&claim.claim.id)
            .await
            .unwrap()
            .unwrap()
            .uses_left,
        0
    );
    let third = claim_use(&b_coap, &claim.key_file, &claim.cert_file, "line-3").await;
    assert_eq!(
        third,
        certbound_coap::ResponseType::Forbidden,
        "the claim is used up"
    );

    let outcome = tokio::time::timeout(RUN + Duration::from_secs(120), sim)
        .await
        .expect("the fleet run ends")
        .unwrap()
        .expect("the fleet runs");
    let report = &outcome.report;
    let summary = report.summary();
    eprintln!("{summary}");
    assert!(report.ok, "{summary}");
    assert_eq!(report.totals.unexpected_total(), 0, "{summary}");
    // Telemetry kept flowing over both transports (the backend verified it).
    let t = &report.totals;
    assert!(
        t.telemetry_accepted as f64 >= 0.9 * t.telemetry_sent as f64,
        "{summary}"
    );

    // Every device got a token after the kill (none left without one).
    let entries = ledger::read(&ledger_path).unwrap();
    let tokens: Vec<&Entry> = entries.iter().filter(|e| e.kind == "token").collect();
    let devices: BTreeSet<&str> = tokens.iter().map(|e| e.device.as_str()).collect();
    assert_eq!(devices.len(), 24, "{summary}");
    for d in &devices {
        assert!(
            tokens.iter().any(|e| e.device == *d && e.t_ms > kill_ms),
            "{d} got no token after instance A was killed\n{summary}"
        );
    }

    // Measured (printed, not asserted): per transport, the longest interval
    // between a device's last token before the kill and its first after.
    let mut across: BTreeMap<&str, f64> = BTreeMap::new();
    for d in &devices {
        let mut times: Vec<(u64, &str)> = tokens
            .iter()
            .filter(|e| e.device == *d)
            .map(|e| (e.t_ms, e.transport.as_str()))
            .collect();
        times.sort();
        for w in times.windows(2) {
            if w[0].0 <= kill_ms && w[1].0 > kill_ms {
                let gap = (w[1].0 - w[0].0) as f64 / 1000.0;
                let worst = across.entry(w[0].1).or_default();
                *worst = worst.max(gap);
            }
        }
    }
    eprintln!("longest interval between tokens across the kill, by transport (s): {across:?}");

    // CoAP devices that held a token from A failed over to B; how long it took.
    let mut on_a = BTreeMap::new();
    for e in tokens
        .iter()
        .filter(|e| e.t_ms <= kill_ms && e.transport == "coap")
    {
        on_a.insert(e.device.as_str(), e.instance == Some(1));
    }
    let on_a: Vec<&str> = on_a
        .into_iter()
        .filter(|(_, a)| *a)
        .map(|(d, _)| d)
        .collect();
    assert!(
        !on_a.is_empty(),
        "no CoAP device was on instance A\n{summary}"
    );
    let mut took = Vec::new();
    for d in &on_a {
        assert!(
            report.totals.events.iter().any(|e| e.contains(&format!(
                "{d} (coap) failed over from instance 1 to instance 2"
            ))),
            "{d} was on instance A and did not fail over\n{summary}"
        );
        let first_from_b = tokens
            .iter()
            .find(|e| e.device == *d && e.t_ms > kill_ms && e.instance == Some(2))
            .unwrap_or_else(|| panic!("{d}: no token from B after the kill\n{summary}"));
        took.push((first_from_b.t_ms - kill_ms) as f64 / 1000.0);
    }
    took.sort_by(f64::total_cmp);
    eprintln!(
        "{} of {} CoAP devices were on instance A and failed over; first token from B after \
         {:.1} s (fastest) / {:.1} s (median) / {:.1} s (slowest) after the kill; {} failovers in all",
        on_a.len(),
        report.transports.get("coap").copied().unwrap_or(0),
        took[0],
        took[took.len() / 2],
        took[took.len() - 1],
        report.totals.failovers,
    );

    // Nothing acknowledged was lost: every token and certificate in the ledger is in the store.
    let mut by_instance: BTreeMap<String, usize> = BTreeMap::new();
    for e in &tokens {
        let jti = e.jti.as_deref().unwrap();
        let state = store.token_state(jti).await.unwrap().unwrap_or_else(|| {
            panic!(
                "token {jti} of {} ({:?}) is not in the store",
                e.device, e.instance
            )
        });
        assert_eq!(state.token.subject, e.device);
        *by_instance
            .entry(format!("{} instance {:?}", e.transport, e.instance))
            .or_default() += 1;
    }
    let certs: Vec<&Entry> = entries.iter().filter(|e| e.kind == "certificate").collect();
    assert!(
        certs
            .iter()
            .any(|e| e.instance == Some(1) && e.t_ms <= kill_ms),
        "no certificate from A before the kill"
    );
    for e in &certs {
        let registered = store.device_certificates(&e.device).await.unwrap();
        assert!(
            registered
                .iter()
                .any(|c| Some(&c.serial) == e.serial.as_ref()
                    && Some(&c.thumbprint) == e.thumbprint.as_ref()),
            "certificate {:?} of {} ({:?}) is not in the store",
            e.serial,
            e.device,
            e.instance
        );
    }
    eprintln!(
        "ledger: {} tokens ({by_instance:?}) and {} certificates, all in the store",
        tokens.len(),
        certs.len()
    );
    store.close().await;
}
