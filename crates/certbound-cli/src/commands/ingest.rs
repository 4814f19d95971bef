//! `certbound ingest`: an example telemetry backend. It subscribes to
//! `cb/v1/+/telemetry` with a service identity, verifies every message offline
//! with `certbound-verify` (token, proof of possession, topic, the token's
//! revocation status from the broker's status lists, and the device's replay
//! window), prints accepted messages as JSON lines on stdout, and counts
//! rejects by reason (summary on stderr).
//!
//! Replay windows are kept in a SQLite file ([`replay`]) and written before a
//! message is accepted, so a restart never accepts an old sequence number.

mod replay;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use certbound_mqtt::client::{ClientOptions, Event, MqttClient, QoS};
use certbound_proto::schedule::Backoff;
use certbound_proto::topics::{self, TopicKind};
use certbound_registry::config::{Config, DataDir, MqttMode, parse_mqtt_url};
use certbound_verify::http::{Authenticator, HttpsFetcher, StatusCheck, VerifyConfig};
use certbound_verify::status::StatusCacheConfig;
use certbound_verify::{
    TelemetryConfig, TelemetryVerifier, TokenVerifier, VerifierConfig, VerifyError,
};

use super::admin::key_set;
use crate::cli::IngestArgs;
use crate::output::now;

pub async fn run(args: IngestArgs) -> anyhow::Result<ExitCode> {
    let data = DataDir::new(&args.dir.dir);
    let config = Config::load(&args.dir.dir)?;
    let (host, port) = match (&args.mqtt, config.mqtt.mode) {
        (Some(addr), _) => {
            parse_mqtt_url(&format!("mqtts://{addr}")).map_err(anyhow::Error::msg)?
        }
        (None, MqttMode::External) => {
            parse_mqtt_url(config.mqtt.url.as_deref().unwrap_or_default())
                .map_err(anyhow::Error::msg)?
        }
        (None, _) => {
            let addr = config.mqtt_listen();
            (addr.ip().to_string(), addr.port())
        }
    };
    let keys = match &args.jwks {
        Some(path) => certbound_verify::KeySet::from_jwks(
            &std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?,
        )?,
        None => key_set(&args.dir.dir).await?,
    };
    let verifier_config =
        VerifierConfig::new(args.audience.clone()).with_issuer(config.broker.issuer_id.clone());
    let telemetry_config = TelemetryConfig {
        required_scopes: vec![args.scope.clone()],
        ..TelemetryConfig::default()
    };
    let window = telemetry_config.window;
    let verifier = TelemetryVerifier::new(
        TokenVerifier::new(keys.clone(), verifier_config.clone()),
        telemetry_config,
    );

    let read = |p: &std::path::Path| {
        std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
    };
    // Revocation: the broker's status lists, over HTTPS, trusted like its MQTT server.
    let broker_url = args
        .broker_url
        .clone()
        .or_else(|| config.https.public_url.clone())
        .unwrap_or_else(|| format!("https://{}", config.https_listen()));
    let status_base = format!("{}/status/", broker_url.trim_end_matches('/'));
    let https_tls = certbound_verify::http::client_tls_config(&read(&data.pki().chain())?, None)?;
    let status = Authenticator::new(VerifyConfig::new(
        verifier_config,
        keys,
        StatusCheck::Fetch {
            cache: StatusCacheConfig::new(status_base.clone()),
            fetcher: HttpsFetcher::new(https_tls, Duration::from_secs(5), 1 << 20),
        },
    ))
    .with_context(|| format!("status lists under {status_base}"))?;
    // Replay windows, restored before the first message.
    let state = args.state.clone().unwrap_or_else(|| {
        data.root.join("ingest").join(format!(
            "replay-{}.sqlite3",
            args.share_group.as_deref().unwrap_or("default")
        ))
    });
    let replay = replay::ReplayStore::open(&state).await?;
    let restored = replay.load().await?;
    for (device, w) in &restored {
        verifier.restore_window(device, *w);
    }
    eprintln!(
        "ingest: {} replay window(s) restored from {}; status lists from {status_base}",
        restored.len(),
        state.display()
    );
    let ca = match (&config.mqtt.mode, &config.mqtt.server_ca) {
        (MqttMode::External, Some(path)) => read(&data.root.join(path))?,
        _ => read(&data.pki().chain())?,
    };
    let tls = certbound_mqtt::client_tls::client_tls_config(
        &ca,
        &read(&args.service_cert)?,
        &read(&args.service_key)?,
    )?;
    let client_id = format!("certbound-ingest-{}", std::process::id());
    let base = format!("{}+/{}", topics::PREFIX, TopicKind::Telemetry.suffix());
    let filter = match &args.share_group {
        Some(group) => format!("$share/{group}/{base}"),
        None => base,
    };
    // Reconnects (100 ms doubling to 10 s) and subscribes again by itself.
    let options = ClientOptions::new(client_id, host.clone(), port)
        .tls(tls)
        .queue(1024)
        .subscribe(filter.clone(), QoS::AtLeastOnce)
        .reconnect(Backoff {
            base_ms: 100,
            max_ms: 10_000,
            floor_ms: 100,
        });

    let mut accepted = 0u64;
    eprintln!("ingest: connecting to mqtts://{host}:{port}, subscribing to {filter}");
    let (client, mut events) = loop {
        let attempt = tokio::select! {
            r = MqttClient::connect(options.clone()) => r,
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
        };
        match attempt {
            Ok(connected) => break connected,
            Err(e @ certbound_mqtt::MqttError::SubscribeRefused(_)) => {
                anyhow::bail!("{e}: is the certificate a service identity?");
            }
            Err(e) => {
                eprintln!("ingest: MQTT connection error: {e}; retrying in 1s");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    loop {
        let event = tokio::select! {
            e = events.recv() => e,
            _ = tokio::signal::ctrl_c() => break,
        };
        match event {
            Some(Event::Connected { .. }) => {
                // Machine-readable readiness line for scripts and tests.
                eprintln!("ingest: subscribed");
            }
            Some(Event::Message(p)) => {
                let device = topics::parse(&p.topic).map(|(d, _)| d);
                match accept(&verifier, &status, &replay, window, &p.payload, device).await {
                    Ok(msg) => {
                        accepted += 1;
                        let data = match std::str::from_utf8(&msg.data) {
                            Ok(text) => serde_json::json!({ "text": text }),
                            Err(_) => serde_json::json!({ "hex": hex::encode(&msg.data) }),
                        };
                        println!(
                            "{}",
                            serde_json::json!({
                                "device": msg.device_id, "seq": msg.seq, "timestamp_ms": msg.timestamp_ms,
                                "data": data, "token_cti": hex::encode(&msg.token_cti),
                            })
                        );
                        if args.max_messages.is_some_and(|max| accepted >= max) {
                            break;
                        }
                    }
                    Err(Refusal::Verify(e)) => {
                        tracing::info!(topic = %p.topic, reason = e.reason_code(), error = %e, "telemetry rejected");
                        eprintln!(
                            "ingest: rejected message on {}: {} ({e})",
                            p.topic.escape_debug(),
                            e.reason_code()
                        );
                    }
                    Err(Refusal::State(e)) => {
                        tracing::error!(topic = %p.topic, error = %e, "telemetry refused: the replay window could not be stored");
                        eprintln!(
                            "ingest: refused message on {}: the replay window could not be stored ({e:#})",
                            p.topic.escape_debug()
                        );
                    }
                }
            }
            Some(Event::Disconnected { reason }) => {
                eprintln!("ingest: MQTT connection error: {reason}; reconnecting");
            }
            None => break,
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), client.disconnect()).await;
    replay.close().await;
    let stats = verifier.stats();
    eprintln!("ingest: accepted {} message(s)", stats.accepted);
    for (reason, count) in &stats.rejected {
        eprintln!("ingest: rejected {count} ({reason})");
    }
    Ok(ExitCode::SUCCESS)
}

/// Why a message was not accepted.
enum Refusal {
    /// It failed a check.
    Verify(VerifyError),
    /// Its replay window could not be written (fail closed).
    State(anyhow::Error),
}

/// The whole check of one message: token, proof of possession, topic and
/// revocation status; then its sequence number, written to the replay file
/// before it is accepted (write-ahead).
async fn accept(
    verifier: &TelemetryVerifier,
    status: &Authenticator,
    replay: &replay::ReplayStore,
    window: u64,
    payload: &[u8],
    device: Option<&str>,
) -> Result<certbound_verify::AcceptedTelemetry, Refusal> {
    let checked = status
        .check_telemetry(verifier, payload, device, now())
        .await
        .map_err(Refusal::Verify)?;
    if let Err(e) = verifier.window_after(&checked) {
        verifier.count_rejection(&e);
        return Err(Refusal::Verify(e));
    }
    let message = &checked.message;
    let stored = match replay.record(&message.device_id, message.seq, window).await {
        Ok(Some(w)) => w,
        Ok(None) => {
            let e = VerifyError::Replay {
                device: message.device_id.clone(),
                seq: message.seq,
            };
            verifier.count_rejection(&e);
            return Err(Refusal::Verify(e));
        }
        Err(e) => return Err(Refusal::State(e)),
    };
    let device = message.device_id.clone();
    let accepted = verifier.commit(checked).map_err(Refusal::Verify)?;
    // What other ingesters sharing the file accepted counts too.
    verifier.restore_window(&device, stored);
    Ok(accepted)
}
