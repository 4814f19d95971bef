//! `certbound serve`: starts the transports over one token service.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use certbound_coap::{Server as CoapServer, ServerConfig};
use tokio::task::JoinHandle;

use crate::audit::AuditLog;
use crate::config::{Config, DataDir, MqttMode, parse_mqtt_url};
use crate::enroll_service::{EnrollConfig, EnrollService};
use crate::error::BrokerError;
use crate::keys::{KeyRing, SharedKeys};
use crate::limits::{RateLimitConfig, RateLimits};
use crate::oauth::{OAuthConfig, OAuthService};
use crate::pki_state::SharedPki;
use crate::status::{StatusConfig, StatusLists};
use crate::store::Store;
use crate::token_service::{TokenService, TokenServiceConfig};
use crate::transport::DeviceEndpoints;
use crate::transport::coap::CoapTransport;
use crate::transport::https::{self, HttpsState};
use crate::transport::mqtt::{self, MqttClientSettings, MqttTransport};
use certbound_mqtt::client_tls::client_tls_config;
use certbound_mqtt::{Identity, MqttServer, MqttServerConfig};

mod mqtt_access;
mod mqtt_tokens;
use mqtt_access::MqttAccess;
use mqtt_tokens::MqttTokens;

/// Command-line overrides of the configuration.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// Overrides `coap.listen`.
    pub coap_listen: Option<SocketAddr>,
    /// Overrides `mqtt.listen` (embedded mode).
    pub mqtt_listen: Option<SocketAddr>,
    /// Overrides `https.listen`.
    pub https_listen: Option<SocketAddr>,
}

/// A running broker.
#[derive(Debug)]
pub struct RunningBroker {
    coap: Option<CoapServer>,
    mqtt_server: Option<MqttServer>,
    mqtt: Option<MqttTransport>,
    watcher: Option<JoinHandle<()>>,
    key_watcher: JoinHandle<()>,
    housekeeping: JoinHandle<()>,
    snapshot_task: JoinHandle<()>,
    https: Option<RunningHttps>,
    audit_task: JoinHandle<()>,
    service: Arc<TokenService>,
    store: Store,
}

#[derive(Debug)]
struct RunningHttps {
    addr: SocketAddr,
    base_url: String,
    shutdown: tokio::sync::oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// Starts the broker on an initialised data directory.
pub async fn start(dir: &Path, options: ServeOptions) -> Result<RunningBroker, BrokerError> {
    let config = Config::load(dir)?;
    let data = DataDir::with_config(dir, &config);
    crate::instances::check_joined(&data)?;
    let store = Store::connect(&config.store_url(&data)).await?;
    // One service per store: same issuer, same root; this instance's
    // issuing CAs published, every instance's trusted.
    let now = crate::clock::unix_now();
    crate::instances::check_service(&store, &data, &config, now).await?;
    let pki = SharedPki::load(data.pki())?;
    pki.reload_if_changed(&crate::instances::shared_cas(&store, now).await?)?;
    // Data directories made before the admin API existed get it now.
    crate::registry::Registry::with_store(dir, config.clone(), store.clone(), "broker".into())
        .ensure_admin()
        .await?;
    let ring = KeyRing::load(&store, &data.key_dir()).await?;
    let ring = if crate::keys::jose::ensure_for_apis(&store, &data.key_dir(), &ring, now)
        .await?
        .is_empty()
    {
        ring
    } else {
        KeyRing::load(&store, &data.key_dir()).await?
    };
    let keys = SharedKeys::new(ring);
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let (audit, audit_task) = AuditLog::spawn_with(
        store.clone(),
        crate::audit::AuditOptions {
            window: Duration::from_secs(config.audit.aggregate_secs.max(1)),
            metrics: metrics.clone(),
        },
    );
    let limits = Arc::new(RateLimits::new(RateLimitConfig {
        device_per_sec: config.rate_limits.device_per_sec,
        device_burst: config.rate_limits.device_burst,
        client_per_sec: config.rate_limits.client_per_sec,
        client_burst: config.rate_limits.client_burst,
    }));
    // HTTPS is bound first: status-list URIs in tokens name its address.
    let https_listener = if config.https.enabled {
        let addr = options
            .https_listen
            .unwrap_or_else(|| config.https_listen());
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| BrokerError::Invalid(format!("HTTPS listener on {addr}: {e}")))?;
        Some(listener)
    } else {
        None
    };
    let https_addr = match &https_listener {
        Some(l) => Some(l.local_addr().map_err(BrokerError::io(dir))?),
        None => None,
    };
    let base_url = https_addr.map(|addr| {
        config
            .https
            .public_url
            .clone()
            .unwrap_or_else(|| format!("https://{}", display_addr(addr)))
    });
    let status = match (&base_url, config.status.enabled) {
        (Some(base), true) => Some(Arc::new(StatusLists::new(
            StatusConfig {
                base_url: base.clone(),
                list_size: config.status.list_size,
                ttl: config.status.ttl_secs,
                issuer_id: config.broker.issuer_id.clone(),
            },
            store.clone(),
            keys.clone(),
        ))),
        _ => None,
    };
    let service = TokenService::new(
        TokenServiceConfig::from_config(&config),
        store.clone(),
        pki.clone(),
        keys.clone(),
        audit.clone(),
        status.clone(),
        limits.clone(),
    );
    // The registry the token path reads, in memory, kept current by the
    // store's change feed (see certbound_store::snapshot).
    let snapshot = store.load_snapshot().await?;
    let service = Arc::new(
        service
            .with_metrics(metrics.clone())
            .with_snapshot(snapshot.clone()),
    );
    let snapshot_task = tokio::spawn(snapshot.clone().follow(SNAPSHOT_POLL));
    let enroll = EnrollService::new(
        EnrollConfig {
            cert_days: config.pki.device_cert_days,
            cert_secs: config.pki.device_cert_secs,
            expired_grace: u64::from(config.pki.renewal_grace_days) * 86_400,
        },
        store.clone(),
        pki.clone(),
        service.device_auth(),
        limits.clone(),
        audit.clone(),
    );
    let enroll = Arc::new(enroll.with_metrics(metrics.clone()));
    let claims = Arc::new(crate::claim_service::ClaimService::new(
        config.pki.device_cert_days,
        store.clone(),
        pki.clone(),
        service.device_auth(),
        audit.clone(),
    ));
    let endpoints = Arc::new(DeviceEndpoints {
        tokens: service.clone(),
        enroll,
        claims,
    });
    let https = match (https_listener, base_url) {
        (Some(listener), Some(base_url)) => {
            let oauth = OAuthService::new(
                OAuthConfig {
                    issuer_id: config.broker.issuer_id.clone(),
                    leeway: config.broker.leeway_secs,
                    max_token_bytes: config.limits.max_request_bytes,
                },
                store.clone(),
                keys.clone(),
                status.clone(),
                audit.clone(),
                limits.clone(),
            )
            .with_snapshot(snapshot.clone())
            .with_metrics(metrics.clone())
            .with_client_trust(https::client_trust(&data, &config, &store).await?)
            .with_assertions(crate::oauth::AssertionConfig {
                token_endpoint: format!("{base_url}/oauth/token"),
                max_lifetime: config.oauth.max_assertion_lifetime_secs,
                fetcher: https::jwks_fetcher(&data, &config)?,
            });
            let state = HttpsState {
                oauth,
                devices: endpoints.clone(),
                status: status.clone(),
                keys: keys.clone(),
                pki: pki.clone(),
                store: store.clone(),
                dir: dir.to_path_buf(),
                config: Arc::new(config.clone()),
                base_url: base_url.clone(),
                metrics: config.https.metrics.then(|| metrics.clone()),
                ui: Arc::new(https::ui::session::UiState::new(
                    config.rate_limits.client_per_sec,
                    config.rate_limits.client_burst,
                )),
            };
            Some(start_https(&data, &config, listener, base_url, state)?)
        }
        _ => None,
    };
    drop(audit);
    let key_watcher = tokio::spawn(watch_keys(
        store.clone(),
        data.clone(),
        keys.clone(),
        pki.clone(),
        config.broker.leeway_secs,
    ));
    let housekeeping = tokio::spawn(housekeep(
        store.clone(),
        config.prune_policy(),
        Duration::from_secs(config.audit.prune_every_secs.max(1)),
        metrics.clone(),
    ));
    let coap = if config.coap.enabled {
        let addr = options.coap_listen.unwrap_or_else(|| config.coap_listen());
        let handler = Arc::new(CoapTransport::new(endpoints.clone(), pki.clone()));
        let c = &config.coap;
        let server_config = ServerConfig {
            max_body: config.limits.max_request_bytes,
            dedup_capacity: c.dedup_entries.max(1024),
            dedup_bytes: c.dedup_bytes,
            amplification_factor: c.amplification_factor,
            echo_lifetime: Duration::from_secs(c.echo_lifetime_secs),
            verified_lifetime: Duration::from_secs(c.verified_lifetime_secs),
            verified_capacity: c.verified_addresses,
            max_in_flight: c.max_in_flight,
            ..ServerConfig::default()
        };
        let server = CoapServer::bind(addr, handler, server_config).await?;
        metrics.set_coap(server.stats_handle());
        Some(server)
    } else {
        None
    };
    let access = MqttAccess::load(&store).await?;
    let tokens = MqttTokens::new(
        config.mqtt.audience.clone(),
        config.broker.issuer_id.clone(),
        keys.clone(),
        status.clone(),
    );
    let (mqtt_server, mqtt) =
        start_mqtt(&data, &config, &options, &endpoints, &access, &tokens).await?;
    if let Some(server) = &mqtt_server {
        metrics.set_mqtt(server.handle());
    }
    let watcher = mqtt_server.as_ref().map(|server| {
        let (store, handle) = (store.clone(), server.handle());
        let watch_tokens = tokens.clone().watch(store.clone(), handle.clone());
        let watch_access = access.clone().watch(store, handle);
        tokio::spawn(async move {
            tokio::join!(watch_access, watch_tokens);
        })
    });
    tracing::info!(
        issuer = %config.broker.issuer_id,
        kid = %service.kid(),
        coap = ?coap.as_ref().map(|s| s.local_addr()),
        mqtt = ?mqtt_server.as_ref().map(|s| s.local_addr()),
        https = ?https.as_ref().map(|h| h.addr),
        "certbound broker started"
    );
    Ok(RunningBroker {
        coap,
        mqtt_server,
        mqtt,
        watcher,
        key_watcher,
        housekeeping,
        snapshot_task,
        https,
        audit_task,
        service,
        store,
    })
}

/// `ip:port`, with IPv6 in brackets and the unspecified address as loopback.
fn display_addr(addr: SocketAddr) -> String {
    let ip = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        addr.ip().to_string()
    };
    if addr.is_ipv6() && !addr.ip().is_unspecified() {
        format!("[{ip}]:{}", addr.port())
    } else {
        format!("{ip}:{}", addr.port())
    }
}

fn start_https(
    data: &DataDir,
    config: &Config,
    listener: tokio::net::TcpListener,
    base_url: String,
    state: HttpsState,
) -> Result<RunningHttps, BrokerError> {
    let addr = listener.local_addr().map_err(BrokerError::io(&data.root))?;
    let trust = state.oauth.client_trust().clone();
    let tls = https::tls_config(
        &read(&data.server_cert())?,
        &read(&data.server_key())?,
        &trust,
        config.https.tls13_only,
    )?;
    let limits = https::serve_limits(config);
    let store = state.store.clone();
    let heartbeat = tokio::spawn(https::ui::heartbeat(
        state.store.clone(),
        base_url.clone(),
        state.keys.clone(),
        state.config.ui.session_idle_secs,
    ));
    let app = https::router(state);
    let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let stopped = async {
            let _ = stop.await;
        };
        https::serve(listener, tls, app, limits, trust, store, stopped).await;
        heartbeat.abort();
    });
    Ok(RunningHttps {
        addr,
        base_url,
        shutdown,
        task,
    })
}

/// How often the key ring is reloaded (so `certbound keys rotate` in another
/// process or on another instance takes effect) and retired keys are pruned.
const KEY_POLL: Duration = Duration::from_millis(500);

/// How often the CAs are reloaded: the issuing CA files (`ca rotate-issuing`)
/// and what the store holds for the whole service (other instances' issuing
/// CAs, partner CAs from `ca trust add/remove` made anywhere). Two small
/// reads per tick, so a change reaches every instance well within 1 second.
const CA_POLL: Duration = Duration::from_millis(200);

/// Keeps the key ring and the CAs current (two loops in one task).
async fn watch_keys(store: Store, data: DataDir, keys: SharedKeys, pki: SharedPki, leeway: u64) {
    tokio::join!(
        watch_cas(store.clone(), data.clone(), pki),
        watch_key_ring(store, data, keys, leeway)
    );
}

async fn watch_cas(store: Store, data: DataDir, pki: SharedPki) {
    let mut ticker = tokio::time::interval(CA_POLL);
    loop {
        ticker.tick().await;
        let now = crate::clock::unix_now();
        let shared = match crate::instances::shared_cas(&store, now).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the CAs the service shares in the store");
                continue;
            }
        };
        match pki.reload_if_changed(&shared) {
            Ok(true) => {
                tracing::info!(
                    "CAs changed: CA files, published issuing CAs and partner CAs reloaded"
                );
                // A rotation here (`ca rotate-issuing`) is published for the others.
                if let Err(e) = crate::instances::publish_own(&store, &data, now).await {
                    tracing::warn!(error = %e, "could not publish this instance's issuing CA");
                }
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "could not reload the CA files"),
        }
    }
}

async fn watch_key_ring(store: Store, data: DataDir, keys: SharedKeys, leeway: u64) {
    let mut ticker = tokio::time::interval(KEY_POLL);
    loop {
        ticker.tick().await;
        let now = crate::clock::unix_now();
        if let Err(e) = store.extend_retirements(leeway).await {
            tracing::warn!(error = %e, "could not update key retirement times");
            continue;
        }
        match crate::keys::prune_retired(&store, &data.keys(), now).await {
            Ok(gone) => {
                for kid in gone {
                    tracing::info!(%kid, "signing key retired");
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not prune retired keys"),
        }
        match KeyRing::load(&store, &data.key_dir()).await {
            Ok(ring) => {
                // An API asking for an algorithm this instance has no key of
                // (changed elsewhere, or this instance joined later).
                match crate::keys::jose::ensure_for_apis(&store, &data.key_dir(), &ring, now).await
                {
                    Ok(made) if !made.is_empty() => {
                        match KeyRing::load(&store, &data.key_dir()).await {
                            Ok(ring) => keys.replace(ring),
                            Err(e) => tracing::warn!(error = %e, "could not reload the key ring"),
                        }
                    }
                    Ok(_) => keys.replace(ring),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not create a signing key an API asks for");
                        keys.replace(ring);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not reload the key ring"),
        }
    }
}

/// The first housekeeping run comes this soon after start (or after one
/// interval, when that is shorter).
/// How often an instance reads the registry change feed: a change made
/// through another instance or the CLI is enforced here at most this much
/// later (plus one query); on PostgreSQL a NOTIFY usually comes first.
pub const SNAPSHOT_POLL: Duration = Duration::from_millis(100);

/// Change-feed rows housekeeping keeps (instances read the feed every
/// [`SNAPSHOT_POLL`]; far more than they can fall behind).
const REGISTRY_CHANGES_KEPT: i64 = 100_000;
const FIRST_PRUNE: Duration = Duration::from_secs(10);

/// Prunes the store every `every` (see [`crate::store::PrunePolicy`]).
async fn housekeep(
    store: Store,
    policy: crate::store::PrunePolicy,
    every: Duration,
    metrics: Arc<crate::metrics::Metrics>,
) {
    let first = tokio::time::Instant::now() + FIRST_PRUNE.min(every);
    let mut ticker = tokio::time::interval_at(first, every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match store.prune_registry_changes(REGISTRY_CHANGES_KEPT).await {
            Ok(0) => {}
            Ok(rows) => tracing::debug!(rows, "housekeeping: pruned the registry change feed"),
            Err(e) => {
                tracing::warn!(error = %e, "housekeeping: the registry change feed was not pruned")
            }
        }
        match store.prune(crate::clock::unix_now(), &policy).await {
            Ok(report) if report.total() > 0 => {
                metrics.pruned(&report);
                tracing::info!(
                    issued_tokens = report.issued_tokens,
                    status_lists = report.status_lists,
                    audit_events = report.audit_events,
                    "housekeeping: pruned the store"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "housekeeping: could not prune the store"),
        }
    }
}

fn read(path: &Path) -> Result<String, BrokerError> {
    std::fs::read_to_string(path).map_err(BrokerError::io(path))
}

async fn start_mqtt(
    data: &DataDir,
    config: &Config,
    options: &ServeOptions,
    service: &Arc<DeviceEndpoints>,
    access: &Arc<MqttAccess>,
    tokens: &Arc<MqttTokens>,
) -> Result<(Option<MqttServer>, Option<MqttTransport>), BrokerError> {
    let (server, host, port, server_ca) = match config.mqtt.mode {
        MqttMode::Off => return Ok((None, None)),
        MqttMode::Embedded => {
            let listen = options.mqtt_listen.unwrap_or_else(|| config.mqtt_listen());
            let mut server_config = MqttServerConfig::new(
                listen,
                read(&data.server_cert())?,
                read(&data.server_key())?,
                read(&data.pki().chain())?,
            );
            server_config.max_connections_per_device = config.mqtt.max_connections_per_device;
            server_config.max_connections_per_service = config.mqtt.max_connections_per_service;
            server_config.max_subscriptions_per_session = config.mqtt.max_subscriptions_per_session;
            let tokens = Arc::clone(tokens);
            let acl = access.acl().with_token_check(Arc::new(
                move |who: &Identity, cert: &[u8], token: &[u8]| tokens.check(who, cert, token),
            ));
            let server = MqttServer::bind(server_config, Arc::new(acl))
                .await
                .map_err(|e| BrokerError::Invalid(format!("embedded MQTT server: {e}")))?;
            let addr = server.local_addr();
            let host = if addr.ip().is_unspecified() {
                "127.0.0.1".to_string()
            } else {
                addr.ip().to_string()
            };
            (Some(server), host, addr.port(), read(&data.pki().chain())?)
        }
        MqttMode::External => {
            let url = config.mqtt.url.as_deref().unwrap_or_default();
            let (host, port) = parse_mqtt_url(url).map_err(BrokerError::Invalid)?;
            let ca = match &config.mqtt.server_ca {
                Some(path) => read(&data.root.join(path))?,
                None => read(&data.pki().chain())?,
            };
            (None, host, port, ca)
        }
    };
    let tls = client_tls_config(
        &server_ca,
        &read(&data.broker_cert())?,
        &read(&data.broker_key())?,
    )
    .map_err(|e| BrokerError::Invalid(format!("broker MQTT identity: {e}")))?;
    let settings = MqttClientSettings {
        v5: config.mqtt.protocol == "5",
        host,
        port,
        tls,
        client_id: format!(
            "certbound-broker-{}-{}",
            std::process::id(),
            next_instance()
        ),
        shared: config.mqtt.shared_subscription,
        max_handlers: config.mqtt.max_handlers,
    };
    let transport = mqtt::start(service.clone(), settings, Duration::from_secs(15)).await?;
    Ok((server, Some(transport)))
}

/// Distinguishes several brokers in one process (tests, the demo) on the same MQTT server.
fn next_instance() -> u64 {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl RunningBroker {
    /// The broker's store handle: writes through it (or a clone) count on
    /// this broker's very next request (see
    /// `certbound_store::snapshot::Snapshot::refresh_if_written`); writes
    /// through any other handle within `SNAPSHOT_POLL`.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The bound CoAP address, when CoAP is enabled.
    pub fn coap_addr(&self) -> Option<SocketAddr> {
        self.coap.as_ref().map(|s| s.local_addr())
    }

    /// The embedded MQTT server's address, when it runs.
    pub fn mqtt_addr(&self) -> Option<SocketAddr> {
        self.mqtt_server.as_ref().map(|s| s.local_addr())
    }

    /// The embedded MQTT server, when it runs.
    pub fn mqtt_server(&self) -> Option<&MqttServer> {
        self.mqtt_server.as_ref()
    }

    /// The HTTPS address, when HTTPS runs.
    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https.as_ref().map(|h| h.addr)
    }

    /// The URL the HTTPS endpoints are reached at (`https.public_url`, or
    /// `https://` + the bound address).
    pub fn https_url(&self) -> Option<&str> {
        self.https.as_ref().map(|h| h.base_url.as_str())
    }

    /// The token service (for in-process use, e.g. the demo).
    pub fn service(&self) -> &Arc<TokenService> {
        &self.service
    }

    /// Stops the transports, flushes the audit log and closes the store.
    pub async fn shutdown(self) {
        if let Some(watcher) = self.watcher {
            watcher.abort();
        }
        self.key_watcher.abort();
        self.housekeeping.abort();
        self.snapshot_task.abort();
        if let Some(https) = self.https {
            let _ = https.shutdown.send(());
            let _ = https.task.await;
        }
        if let Some(mqtt) = self.mqtt {
            mqtt.shutdown().await;
        }
        if let Some(server) = self.mqtt_server {
            server.shutdown().await;
        }
        if let Some(coap) = self.coap {
            coap.shutdown().await;
        }
        // The service holds the last audit sender; dropping it ends the writer
        // after it has flushed.
        drop(self.service);
        let _ = self.audit_task.await;
        self.store.close().await;
    }
}
