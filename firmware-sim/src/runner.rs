//! One run: fleet, broker, backend, relays, device tasks, scripted events,
//! live frames, and the report.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use certbound_agent::TokenRequestParams;
use certbound_broker::store::DeviceStatus;
use certbound_verify::KeySet;
use certbound_verify::http::{HttpsFetcher, TlsServer, client_tls_config, server_tls_config};
use rand::{Rng, SeedableRng};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::SimError;
use crate::backend::{
    self, Backend, BackendConfig, CoapIntake, Expectations, Intakes, MqttIntakeSettings,
};
use crate::device::{self, DeviceContext, SimDevice};
use crate::fleet::{self, EmbeddedBroker, Endpoints, Fleet, SIM_API};
use crate::ledger::Ledger;
use crate::live::Frame;
use crate::options::{BrokerTarget, SimOptions, Transport};
use crate::stats::{Report, Snapshot, Stats, process_usage};

mod instances;

/// What a run produced.
#[derive(Debug)]
pub struct Outcome {
    /// The report.
    pub report: Report,
    /// The broker's data directory (gone after the run unless kept).
    pub data_dir: std::path::PathBuf,
    /// Ids of the devices revoked by the scenario.
    pub revoked: Vec<String>,
    /// One token a device obtained (for showing it decoded).
    pub sample_token: Option<Vec<u8>>,
    /// The broker's token-signing keys.
    pub keys: KeySet,
    /// The broker's issuer id.
    pub issuer: String,
}

/// Devices per shared CoAP endpoint.
const DEVICES_PER_COAP_ENDPOINT: usize = 64;

/// Runs the simulation described by `options`, calling `view` with a frame
/// about once a second.
///
/// # Errors
/// [`SimError`] when the options are invalid or setup fails; rejections
/// during the run are not errors (see [`Report::ok`]).
pub async fn run(
    options: &SimOptions,
    view: &(dyn Fn(&Frame) + Sync),
) -> Result<Outcome, SimError> {
    options.validate().map_err(SimError::Options)?;
    let stats = Arc::new(Stats::default());
    let frame = |phase, elapsed, provisioned, stats: Snapshot| Frame {
        phase,
        elapsed,
        duration: options.duration,
        devices: options.devices,
        provisioned,
        stats,
    };
    let progress = |done, total| {
        view(&frame(
            "provisioning",
            Duration::ZERO,
            (done, total),
            Snapshot::default(),
        ))
    };
    let fleet = fleet::prepare(options, &progress).await?;
    view(&frame(
        "provisioning",
        Duration::ZERO,
        (fleet.devices.len() as u64, fleet.devices.len() as u64),
        Snapshot::default(),
    ));
    let ledger = options.ledger.as_deref().map(Ledger::create).transpose()?;
    let mut embedded = None;
    let endpoints = match &options.broker {
        BrokerTarget::Embedded { .. } => {
            let b = EmbeddedBroker::start(&fleet.dir).await?;
            let e = b.endpoints();
            embedded = Some(b);
            vec![e]
        }
        BrokerTarget::Remote(r) => fleet::remote_instances(r)?,
    };
    let result = run_fleet(
        options,
        &fleet,
        &endpoints,
        ledger,
        embedded.as_mut(),
        stats,
        view,
    )
    .await;
    if let Some(b) = embedded {
        b.shutdown().await;
    }
    let (report, revoked, sample_token, keys) = result?;
    let data_dir = fleet.dir.clone();
    let issuer = fleet.issuer.clone();
    fleet.registry.close().await;
    Ok(Outcome {
        report,
        data_dir,
        revoked,
        sample_token,
        keys,
        issuer,
    })
}

type FleetResult = (Report, Vec<String>, Option<Vec<u8>>, KeySet);

async fn run_fleet(
    options: &SimOptions,
    fleet: &Fleet,
    endpoints: &[Endpoints],
    ledger: Option<Ledger>,
    mut broker: Option<&mut EmbeddedBroker>,
    stats: Arc<Stats>,
    view: &(dyn Fn(&Frame) + Sync),
) -> Result<FleetResult, SimError> {
    let side = instances::discover(
        endpoints,
        &fleet.ca_pem,
        options.transports.uses(Transport::Mqtt),
    )
    .await?;
    let keys = side.keys.clone();
    // Scripted events use the first instance that serves HTTPS.
    let https = side.https[0].base.clone();

    // Clock skews, and which of them the broker cannot accept.
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    let skew_max = i64::try_from(options.faults.skew.as_secs()).unwrap_or(i64::MAX);
    let leeway = i64::try_from(fleet.leeway).unwrap_or(i64::MAX);
    let request_life = i64::try_from(certbound_agent::REQUEST_LIFETIME_SECS).unwrap_or(120);
    let mut devices = Vec::with_capacity(fleet.devices.len());
    let mut skewed = HashSet::new();
    // Each device's position among the devices of its transport: devices of
    // one transport spread evenly over the instances.
    let mut ordinal: BTreeMap<Transport, usize> = BTreeMap::new();
    for (index, f) in fleet.devices.iter().enumerate() {
        let transport = options.transports.for_device(index);
        let position = ordinal.entry(transport).or_insert(0);
        let instance = *position;
        *position += 1;
        let skew = if skew_max > 0 {
            rng.random_range(-skew_max..=skew_max)
        } else {
            0
        };
        if skew > leeway || -skew >= request_life + leeway {
            skewed.insert(f.id.clone());
        }
        devices.push(SimDevice {
            index,
            id: f.id.clone(),
            key_file: f.key_file.clone(),
            cert_file: f.cert_file.clone(),
            transport,
            skew,
            instance,
        });
    }
    let expect = Arc::new(Expectations::new(skewed));

    // The backend and its intakes.
    let backend = Arc::new(Backend::new(
        BackendConfig {
            keys: keys.clone(),
            issuer: fleet.issuer.clone(),
            audience: SIM_API.into(),
            status_bases: side.status_bases.clone(),
            broker_ca_pem: fleet.ca_pem.clone(),
        },
        stats.clone(),
        expect.clone(),
    )?);
    let uses = |t| devices.iter().any(|d| d.transport == t);
    let mut intakes = Intakes {
        coap: None,
        https: None,
        mqtt: None,
    };
    if uses(Transport::Coap) {
        let server = certbound_coap::Server::bind(
            "127.0.0.1:0"
                .parse()
                .map_err(|_| SimError::Setup("address".into()))?,
            Arc::new(CoapIntake(backend.clone())),
            certbound_coap::ServerConfig {
                // Every retransmission within CoAP's 45 s span must find its answer.
                dedup_capacity: 262_144,
                ..certbound_coap::ServerConfig::default()
            },
        )
        .await
        .map_err(|e| SimError::Setup(format!("backend CoAP intake: {e}")))?;
        intakes.coap = Some(server);
    }
    if uses(Transport::Https) {
        let (cert, key) = backend::intake_certificate()?;
        let tls = server_tls_config(&cert, &key, None, Default::default(), true)
            .map_err(|e| SimError::Setup(format!("backend HTTPS intake: {e}")))?;
        let server = TlsServer::start(
            std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            tls,
            backend::https_router(backend.clone()),
        )
        .map_err(|e| SimError::Setup(format!("backend HTTPS intake: {e}")))?;
        intakes.https = Some((server, cert));
    }
    if uses(Transport::Mqtt) {
        let (host, port) = side.mqtt.clone().ok_or_else(|| {
            SimError::Setup("MQTT devices, but the broker has no MQTT server".into())
        })?;
        let (ready_tx, mut ready) = watch::channel(false);
        let task = backend::spawn_mqtt_intake(
            backend.clone(),
            MqttIntakeSettings {
                host,
                port,
                ca_pem: fleet.ca_pem.clone(),
                cert_pem: fleet.service.0.clone(),
                key_pem: fleet.service.1.clone(),
            },
            ready_tx,
        )?;
        intakes.mqtt = Some(task);
        tokio::time::timeout(Duration::from_secs(15), ready.wait_for(|r| *r))
            .await
            .map_err(|_| {
                SimError::Setup("the backend could not subscribe to telemetry within 15 s".into())
            })?
            .map_err(|_| SimError::Setup("the backend's MQTT task ended".into()))?;
    }

    // CoAP endpoints (through lossy relays when loss is injected).
    let mut relays = Vec::new();
    let coap_devices = devices
        .iter()
        .filter(|d| d.transport == Transport::Coap)
        .count();
    let pool_size = coap_devices
        .div_ceil(DEVICES_PER_COAP_ENDPOINT)
        .clamp(1, 256);
    let loss = options.faults.loss;
    let mut broker_coap = Vec::new();
    let mut backend_coap = None;
    if coap_devices > 0 {
        let (pools, r) = instances::broker_coap(endpoints, pool_size, loss).await?;
        broker_coap = pools;
        relays.extend(r);
        if let Some(addr) = intakes.coap_addr() {
            let (pool, r) = instances::coap_pool(addr, pool_size, loss, "backend").await?;
            backend_coap = Some(pool);
            relays.extend(r);
        }
    }

    let backend_https = match (&intakes.https, intakes.https_url()) {
        (Some((_, cert)), Some(url)) => {
            let tls = client_tls_config(cert, None)
                .map_err(|e| SimError::Setup(format!("TLS client for the backend: {e}")))?;
            Some((
                url,
                HttpsFetcher::new(tls, Duration::from_secs(10), 1 << 16),
            ))
        }
        _ => None,
    };
    let started = Instant::now();
    let deadline = started + options.duration;
    let ctx = Arc::new(DeviceContext {
        stats: stats.clone(),
        expect: expect.clone(),
        params: TokenRequestParams::new(fleet.issuer.clone(), SIM_API)
            .with_scope("telemetry:write"),
        broker_coap,
        broker_mqtt: side.mqtt.clone(),
        broker_https: side.https.clone(),
        broker_fetcher: Some(side.fetcher.clone()),
        failover_after: options.failover_after,
        ledger,
        ca_pem: fleet.ca_pem.clone(),
        backend_coap,
        backend_https,
        telemetry_every: options.telemetry_every,
        started,
        deadline,
        sample_token: std::sync::OnceLock::new(),
        stop: std::sync::atomic::AtomicBool::new(false),
    });
    let mut tasks = JoinSet::new();
    for d in devices.clone() {
        let ctx = ctx.clone();
        let id = d.id.clone();
        tasks.spawn(async move { (id, device::run(ctx, d).await) });
    }

    // Scripted events and the live view.
    let mut revoked = Vec::new();
    let mut restart_at = options.faults.broker_restart_at.map(|t| started + t);
    let mut revoke_at = options.revoke.map(|r| (started + r.at, r.count));
    let mut jwt_at = options.service_jwt_at.map(|t| started + t);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut interrupted = false;
    while Instant::now() < deadline {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::signal::ctrl_c() => {
                interrupted = true;
                ctx.stop.store(true, std::sync::atomic::Ordering::Relaxed);
                stats.event(Instant::now() - started, "interrupted (Ctrl-C): stopping the devices");
                break;
            }
        }
        let now = Instant::now();
        if let Some((at, count)) = revoke_at
            && now >= at
        {
            revoke_at = None;
            for d in pick_victims(&devices, count) {
                expect.revoke(&d.id);
                fleet
                    .registry
                    .set_device_status(&d.id, DeviceStatus::Revoked, "firmware-sim scenario")
                    .await?;
                stats.event(now - started, format!("revoked {} ({})", d.id, d.transport));
                revoked.push(d.id.clone());
            }
        }
        if let Some(at) = restart_at
            && now >= at
        {
            restart_at = None;
            if let Some(b) = broker.as_deref_mut() {
                stats.event(now - started, "broker restarting");
                let down = b.restart().await?;
                stats.event(
                    Instant::now() - started,
                    format!("broker back after {:.2} s (same ports)", down.as_secs_f64()),
                );
            }
        }
        if let Some(at) = jwt_at
            && now >= at
        {
            jwt_at = None;
            let outcome = crate::service::service_jwt(
                &fleet.registry,
                &fleet.dir,
                &https,
                &fleet.ca_pem,
                &keys,
                &fleet.issuer,
            )
            .await;
            match outcome {
                Ok(text) => stats.event(Instant::now() - started, text),
                Err(e) => {
                    stats.event(Instant::now() - started, format!("service JWT FAILED: {e}"));
                    stats.reject("service:jwt", crate::stats::Expected::No, || e.clone());
                }
            }
        }
        view(&Frame {
            phase: "running",
            elapsed: now - started,
            duration: options.duration,
            devices: options.devices,
            provisioned: (0, 0),
            stats: stats.snapshot(),
        });
    }

    // Devices stop at the deadline; requests in flight get 10 s to finish (a
    // CoAP exchange through a lossy relay may retransmit for up to 45 s: such
    // stragglers are cut off, not counted as rejections).
    let mut without_token = Vec::new();
    let drain = async {
        while let Some(r) = tasks.join_next().await {
            if let Ok((id, had_token)) = r
                && !had_token
            {
                without_token.push(id);
            }
        }
    };
    if tokio::time::timeout(Duration::from_secs(60), drain)
        .await
        .is_err()
    {
        tasks.abort_all();
    }
    // Let the last MQTT messages reach the backend.
    let mut last = (0, 0);
    for _ in 0..50 {
        let s = stats.snapshot();
        let now = (
            s.telemetry_accepted,
            s.expected_total() + s.unexpected_total(),
        );
        if now == last {
            break;
        }
        last = now;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let run_secs = (Instant::now() - started).as_secs_f64();
    intakes.shutdown().await;
    drop(relays);

    let unexplained: Vec<_> = without_token
        .iter()
        .filter(|id| !expect.is_revoked(id) && !expect.is_skewed(id))
        .cloned()
        .collect();
    if !unexplained.is_empty() {
        stats.reject(
            "device:never_got_a_token",
            crate::stats::Expected::No,
            || {
                format!(
                    "{} device(s) never obtained a token, e.g. {}",
                    unexplained.len(),
                    unexplained[0]
                )
            },
        );
    }
    let totals = stats.snapshot();
    let mut per_transport = BTreeMap::new();
    for d in &devices {
        *per_transport.entry(d.transport.to_string()).or_insert(0) += 1;
    }
    let (peak_rss_mib, cpu_secs) = process_usage();
    let ok = totals.unexpected_total() == 0 && totals.telemetry_accepted > 0 && !interrupted;
    let report = Report {
        version: env!("CARGO_PKG_VERSION"),
        devices: devices.len(),
        transports: per_transport,
        faults: options.faults.to_string(),
        duration_secs: options.duration.as_secs_f64(),
        telemetry_every_secs: options.telemetry_every.as_secs_f64(),
        provision_secs: fleet.provision_secs,
        run_secs,
        accepted_per_sec: totals.telemetry_accepted as f64 / run_secs.max(0.001),
        peak_rss_mib,
        cpu_secs,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        totals,
        interrupted,
        ok,
    };
    view(&Frame {
        phase: "done",
        elapsed: options.duration,
        duration: options.duration,
        devices: options.devices,
        provisioned: (0, 0),
        stats: report.totals.clone(),
    });
    let sample = ctx.sample_token.get().cloned();
    Ok((report, revoked, sample, keys))
}

/// The devices to revoke: CoAP first (their telemetry then reaches the
/// backend and is refused there), then HTTPS, then MQTT; from the end of the fleet.
fn pick_victims(devices: &[SimDevice], count: usize) -> Vec<&SimDevice> {
    let mut out = Vec::new();
    for t in [Transport::Coap, Transport::Https, Transport::Mqtt] {
        for d in devices.iter().rev().filter(|d| d.transport == t) {
            if out.len() == count {
                return out;
            }
            out.push(d);
        }
    }
    out
}
