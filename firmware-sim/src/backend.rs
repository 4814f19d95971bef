//! The telemetry backend of the simulation: it verifies every message offline
//! with `certbound-verify` — token signature, `exp`, `aud`, scope, proof of
//! possession by the token's `cnf` key, sequence numbers, and revocation
//! through the broker's status lists — and receives messages the way a real
//! backend would: as an MQTT subscriber to `cb/v1/+/telemetry` (with a
//! service certificate), as a CoAP server (`POST /telemetry/{device}`) and as
//! an HTTPS server (`POST /telemetry/{device}`).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::routing::post;
use certbound_coap::{Handler, Method, Request, Response, ResponseType};
use certbound_mqtt::client::{ClientOptions, Event, MqttClient, QoS};
use certbound_proto::schedule::Backoff;
use certbound_proto::topics::{self, TopicKind};
use certbound_verify::http::{Authenticator, HttpsFetcher, StatusCheck, TlsServer, VerifyConfig};
use certbound_verify::status::StatusCacheConfig;
use certbound_verify::{KeySet, TelemetryConfig, TelemetryVerifier, TokenVerifier, VerifierConfig};
use http::StatusCode;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::SimError;
use crate::stats::{Expected, Stats, bump};

/// The scopes a telemetry message's token must grant.
pub const TELEMETRY_SCOPE: &str = "telemetry:write";

/// Devices whose rejections the scenario explains.
#[derive(Debug, Default)]
pub struct Expectations {
    revoked: RwLock<HashSet<String>>,
    skewed: HashSet<String>,
}

impl Expectations {
    /// `skewed`: devices whose injected clock skew exceeds the broker's leeway.
    pub fn new(skewed: HashSet<String>) -> Self {
        Self {
            revoked: RwLock::default(),
            skewed,
        }
    }

    /// Marks a device as revoked on purpose.
    pub fn revoke(&self, device: &str) {
        self.revoked
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(device.to_string());
    }

    /// True when the scenario revoked `device`.
    pub fn is_revoked(&self, device: &str) -> bool {
        self.revoked
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(device)
    }

    /// True when `device`'s clock was skewed beyond the broker's leeway.
    pub fn is_skewed(&self, device: &str) -> bool {
        self.skewed.contains(device)
    }
}

/// How the backend is set up.
#[derive(Debug, Clone)]
pub struct BackendConfig {
    /// The broker's token-signing keys (from its `/.well-known/cose-keys`).
    pub keys: KeySet,
    /// The broker's issuer id.
    pub issuer: String,
    /// The telemetry API (`aud`).
    pub audience: String,
    /// The status-list base URLs the broker's instances announce
    /// (`https://.../status/`): lists are fetched from these only.
    pub status_bases: Vec<String>,
    /// PEM of the CA that signed the broker's HTTPS certificate.
    pub broker_ca_pem: String,
}

/// Verifies telemetry and counts the outcome.
#[derive(Debug)]
pub struct Backend {
    telemetry: TelemetryVerifier,
    status: Authenticator,
    stats: Arc<Stats>,
    expect: Arc<Expectations>,
}

impl Backend {
    /// A backend for `config`.
    ///
    /// # Errors
    /// [`SimError::Setup`] when the TLS client or status cache cannot be built.
    pub fn new(
        config: BackendConfig,
        stats: Arc<Stats>,
        expect: Arc<Expectations>,
    ) -> Result<Self, SimError> {
        let mut verifier = VerifierConfig::new(config.audience);
        verifier.issuer = Some(config.issuer);
        let tokens = TokenVerifier::new(config.keys.clone(), verifier.clone());
        let telemetry = TelemetryVerifier::new(
            tokens,
            TelemetryConfig {
                required_scopes: vec![TELEMETRY_SCOPE.into()],
                ..TelemetryConfig::default()
            },
        );
        let tls = certbound_verify::http::client_tls_config(&config.broker_ca_pem, None)
            .map_err(|e| SimError::Setup(format!("backend TLS client: {e}")))?;
        let fetcher = HttpsFetcher::new(tls, Duration::from_secs(5), 1 << 20);
        let mut cache = StatusCacheConfig::new(String::new());
        cache.allowed_prefixes = config.status_bases;
        // Ride out a broker restart on the last list (the default is already generous).
        cache.retry_after_failure = 1;
        let status = Authenticator::new(VerifyConfig::new(
            verifier,
            config.keys,
            StatusCheck::Fetch { cache, fetcher },
        ))
        .map_err(|e| SimError::Setup(format!("backend status checks: {e}")))?;
        Ok(Self {
            telemetry,
            status,
            stats,
            expect,
        })
    }

    /// Verifies one envelope that arrived for `device` (topic or URL) and
    /// records the outcome.
    ///
    /// # Errors
    /// The [`certbound_verify::VerifyError::reason_code`] of the failed check.
    pub async fn receive(&self, envelope: &[u8], device: &str) -> Result<(), &'static str> {
        let outcome = self.check(envelope, device).await;
        match outcome {
            Ok(()) => bump(&self.stats.telemetry_accepted),
            Err(reason) => {
                let expected = if self.expect.is_revoked(device) {
                    Expected::Yes
                } else {
                    Expected::No
                };
                self.stats
                    .reject(&format!("telemetry:{reason}"), expected, || {
                        format!("telemetry from {device} refused by the backend: {reason}")
                    });
            }
        }
        outcome
    }

    async fn check(&self, envelope: &[u8], device: &str) -> Result<(), &'static str> {
        let now = crate::unix_now();
        // Token, proof of possession, topic and revocation status; only a
        // message that passed all of them touches the replay window.
        let checked = self
            .status
            .check_telemetry(&self.telemetry, envelope, Some(device), now)
            .await
            .map_err(|e| e.reason_code())?;
        self.telemetry
            .commit(checked)
            .map_err(|e| e.reason_code())?;
        Ok(())
    }
}

/// CoAP intake: `POST /telemetry/{device}`.
#[derive(Debug)]
pub struct CoapIntake(pub Arc<Backend>);

impl Handler for CoapIntake {
    async fn handle(&self, request: Request) -> Response {
        let device = request.path.strip_prefix("telemetry/");
        match (request.method, device) {
            (Method::Post, Some(device)) if !device.is_empty() && !device.contains('/') => {
                match self.0.receive(&request.payload, device).await {
                    Ok(()) => Response::new(ResponseType::Changed),
                    Err(reason) => Response::new(ResponseType::Unauthorized)
                        .with_payload(0, reason.as_bytes().to_vec()),
                }
            }
            (_, Some(_)) => Response::new(ResponseType::MethodNotAllowed),
            _ => Response::new(ResponseType::NotFound),
        }
    }
}

/// The HTTPS intake's router: `POST /telemetry/{device}` with the CBOR envelope.
pub fn https_router(backend: Arc<Backend>) -> Router {
    async fn telemetry(
        State(backend): State<Arc<Backend>>,
        UrlPath(device): UrlPath<String>,
        body: Bytes,
    ) -> (StatusCode, String) {
        match backend.receive(&body, &device).await {
            Ok(()) => (StatusCode::NO_CONTENT, String::new()),
            Err(reason) => (StatusCode::UNAUTHORIZED, reason.to_string()),
        }
    }
    Router::new()
        .route("/telemetry/{device}", post(telemetry))
        .with_state(backend)
}

/// A self-signed server certificate for the in-process HTTPS intake
/// (`localhost`, `127.0.0.1`): (certificate PEM, key PEM).
///
/// # Errors
/// [`SimError::Setup`] if rcgen fails.
pub fn intake_certificate() -> Result<(String, String), SimError> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| SimError::Setup(format!("backend key: {e}")))?;
    let params = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .map_err(|e| SimError::Setup(format!("backend certificate: {e}")))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| SimError::Setup(format!("backend certificate: {e}")))?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// The running intakes.
#[derive(Debug)]
pub struct Intakes {
    /// CoAP intake address.
    pub coap: Option<certbound_coap::Server>,
    /// HTTPS intake and the PEM of its certificate (devices trust it).
    pub https: Option<(TlsServer, String)>,
    /// MQTT subscriber task.
    pub mqtt: Option<JoinHandle<()>>,
}

impl Intakes {
    /// Stops everything.
    pub async fn shutdown(self) {
        if let Some(s) = self.coap {
            s.shutdown().await;
        }
        if let Some((s, _)) = self.https {
            s.shutdown().await;
        }
        if let Some(t) = self.mqtt {
            t.abort();
        }
    }

    /// The CoAP intake's address.
    pub fn coap_addr(&self) -> Option<SocketAddr> {
        self.coap.as_ref().map(|s| s.local_addr())
    }

    /// The HTTPS intake's base URL.
    pub fn https_url(&self) -> Option<String> {
        self.https
            .as_ref()
            .map(|(s, _)| format!("https://{}", s.local_addr()))
    }
}

/// How the MQTT subscriber connects.
#[derive(Debug, Clone)]
pub struct MqttIntakeSettings {
    /// MQTT server host.
    pub host: String,
    /// MQTT server port.
    pub port: u16,
    /// CA of the MQTT server's certificate.
    pub ca_pem: String,
    /// Service certificate (SAN `urn:certbound:service:<name>`).
    pub cert_pem: String,
    /// Its key.
    pub key_pem: String,
}

/// Subscribes to every device's telemetry and verifies each message in its
/// own task. Reconnects (and resubscribes) after errors, e.g. a broker
/// restart. `ready` turns true at each acknowledged subscription.
///
/// # Errors
/// [`SimError::Setup`] when the TLS configuration cannot be built.
pub fn spawn_mqtt_intake(
    backend: Arc<Backend>,
    settings: MqttIntakeSettings,
    ready: watch::Sender<bool>,
) -> Result<JoinHandle<()>, SimError> {
    let tls = certbound_mqtt::client_tls::client_tls_config(
        &settings.ca_pem,
        &settings.cert_pem,
        &settings.key_pem,
    )
    .map_err(|e| SimError::Setup(format!("backend MQTT TLS: {e}")))?;
    let filter = format!("{}+/{}", topics::PREFIX, TopicKind::Telemetry.suffix());
    // The client reconnects (50 ms doubling to 2 s) and subscribes again.
    let options = ClientOptions::new(
        format!("firmware-sim-backend-{}", std::process::id()),
        settings.host.clone(),
        settings.port,
    )
    .tls(tls)
    .queue(4096)
    .subscribe(filter, QoS::AtLeastOnce)
    .reconnect(Backoff {
        base_ms: 50,
        max_ms: 2_000,
        floor_ms: 50,
    });
    Ok(tokio::spawn(async move {
        // Until the first connection: retry (the broker may still be starting).
        let (_client, mut events) = loop {
            match MqttClient::connect(options.clone()).await {
                Ok(connected) => break connected,
                Err(e) => {
                    tracing::debug!(error = %e, "backend: MQTT connection failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        while let Some(event) = events.recv().await {
            match event {
                Event::Connected { .. } => {
                    let _ = ready.send(true);
                }
                Event::Message(p) => {
                    let backend = backend.clone();
                    tokio::spawn(async move {
                        match topics::parse(&p.topic) {
                            Some((device, TopicKind::Telemetry)) => {
                                let _ = backend.receive(&p.payload, device).await;
                            }
                            _ => backend.stats.reject("telemetry:topic", Expected::No, || {
                                format!("message on an unexpected topic {}", p.topic)
                            }),
                        }
                    });
                }
                Event::Disconnected { reason } => {
                    let _ = ready.send(false);
                    tracing::debug!(%reason, "backend: MQTT connection lost; reconnecting");
                }
            }
        }
    }))
}
