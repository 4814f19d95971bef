//! `certbound demo`: the whole flow in one process on embedded defaults.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use certbound_agent::mqtt::{MqttConnectSettings, MqttDevice};
use certbound_agent::{AgentError, DeviceIdentity, TokenRequestParams, request_token_coap};
use certbound_broker::config::DataDir;
use certbound_broker::registry::{self, Registry};
use certbound_broker::server::{ServeOptions, start};
use certbound_broker::store::DeviceStatus;
use certbound_verify::{TokenVerifier, VerifierConfig, inspect};

use super::admin::key_set;
use crate::output::now;

const ISSUER: &str = "https://auth.certbound.demo";
const API: &str = "https://telemetry.certbound.demo";

struct Row {
    device: String,
    transport: &'static str,
    size: usize,
    expires_in: u64,
    scope: String,
    verified: Result<(), String>,
    millis: f64,
}

pub async fn run(devices: u32, keep: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        (1..=1000).contains(&devices),
        "--devices must be between 1 and 1000"
    );
    let temp;
    let dir = match keep {
        Some(d) => d,
        None => {
            temp = tempfile::tempdir().context("creating a temporary directory")?;
            temp.path().to_path_buf()
        }
    };
    let started = Instant::now();
    println!("certbound demo — data directory {}", dir.display());

    step(1, "create the CA hierarchy and token signing key");
    registry::init(&dir, ISSUER).await?;
    let reg = Registry::open(&dir).await?;
    step(2, "register the telemetry API and a group of sensors");
    reg.create_api(API, "telemetry:write firmware:read", 3600)
        .await?;
    reg.create_group("sensors", &[(API.into(), "telemetry:write".into())])
        .await?;

    step(
        3,
        &format!("provision {devices} devices (P-256 key + certificate each)"),
    );
    let out = dir.join("devices");
    let mut ids = Vec::new();
    for i in 1..=devices {
        let id = format!("sensor-{i}");
        reg.provision_device(&id, &["sensors".into()], &out, None)
            .await?;
        ids.push(id);
    }

    step(
        4,
        "start the broker: CoAP on a free UDP port, embedded MQTT server (mTLS) and HTTPS on free TCP ports",
    );
    let broker = start(
        &dir,
        ServeOptions {
            coap_listen: Some("127.0.0.1:0".parse()?),
            mqtt_listen: Some("127.0.0.1:0".parse()?),
            https_listen: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
        },
    )
    .await?;
    let coap = broker
        .coap_addr()
        .context("CoAP is disabled in the demo configuration")?;
    let mqtt = broker
        .mqtt_addr()
        .context("MQTT is disabled in the demo configuration")?;
    println!(
        "     listening on coap://{coap}, mqtts://{mqtt} and {}",
        broker.https_url().unwrap_or("(no https)")
    );

    step(
        5,
        "each device asks for a token (odd ones over CoAP, even ones over MQTT with mTLS), signing the request with its key",
    );
    let ca_pem = std::fs::read_to_string(DataDir::new(&dir).pki().chain())?;
    let verifier = TokenVerifier::new(key_set(&dir).await?, {
        let mut c = VerifierConfig::new(API);
        c.issuer = Some(ISSUER.into());
        c
    });
    let client = certbound_coap::Client::connect(coap, Default::default()).await?;
    let params = TokenRequestParams::new(ISSUER, API).with_scope("telemetry:write firmware:read");
    let mut rows = Vec::new();
    let mut sample = None;
    for (i, id) in ids.iter().enumerate() {
        let key_file = out.join(format!("{id}.key.pem"));
        let cert_file = out.join(format!("{id}.cert.pem"));
        let identity = DeviceIdentity::load(&key_file, &cert_file)?;
        let over_mqtt = i % 2 == 1;
        let t0 = Instant::now();
        let token = if over_mqtt {
            let settings = MqttConnectSettings {
                host: mqtt.ip().to_string(),
                port: mqtt.port(),
                ca_pem: ca_pem.clone(),
                cert_pem: std::fs::read_to_string(&cert_file)?,
                key_pem: std::fs::read_to_string(&key_file)?,
                timeout: std::time::Duration::from_secs(10),
            };
            let device = MqttDevice::connect(&identity, &settings).await?;
            let token = device.request_token(&identity, &params).await;
            device.disconnect().await;
            token?
        } else {
            request_token_coap(&client, &identity, &params).await?
        };
        let millis = t0.elapsed().as_secs_f64() * 1000.0;
        tracing::debug!(device = %id, millis, "token obtained");
        let leaf = identity.chain().first().cloned().unwrap_or_default();
        let verified = verifier
            .verify(&token.access_token, &["telemetry:write"], now())
            .and_then(|v| v.check_certificate_binding(&leaf).map(|_| v))
            .map(|_| ())
            .map_err(|e| e.to_string());
        rows.push(Row {
            device: id.clone(),
            transport: if over_mqtt { "mqtt" } else { "coap" },
            size: token.access_token.len(),
            expires_in: token.expires_in,
            scope: token
                .scope
                .clone()
                .unwrap_or_else(|| "telemetry:write firmware:read".into()),
            verified,
            millis,
        });
        sample.get_or_insert(token.access_token);
    }

    step(
        6,
        "revoke the last device; its next request must be refused",
    );
    let victim = ids.last().cloned().unwrap_or_default();
    reg.set_device_status(&victim, DeviceStatus::Revoked, "demo")
        .await?;
    let identity = DeviceIdentity::load(
        &out.join(format!("{victim}.key.pem")),
        &out.join(format!("{victim}.cert.pem")),
    )?;
    let refused = match request_token_coap(&client, &identity, &params).await {
        Err(AgentError::Refused(e)) => format!("refused as expected: {e}"),
        Ok(_) => "UNEXPECTED: a revoked device got a token".into(),
        Err(e) => format!("UNEXPECTED error: {e}"),
    };
    println!("     {victim}: {refused}");

    step(
        7,
        "renew the first device's certificate with a NEW key over CoAP (what the agent does at 2/3 of the lifetime)",
    );
    let first = ids.first().cloned().unwrap_or_default();
    let identity = DeviceIdentity::load(
        &out.join(format!("{first}.key.pem")),
        &out.join(format!("{first}.cert.pem")),
    )?;
    let renewal = match certbound_agent::renew_over_coap(&client, &identity, ISSUER).await {
        Ok(renewed) => match request_token_coap(&client, &renewed.identity, &params).await {
            Ok(token) => {
                let leaf = renewed
                    .identity
                    .chain()
                    .first()
                    .cloned()
                    .unwrap_or_default();
                match verifier
                    .verify(&token.access_token, &["telemetry:write"], now())
                    .and_then(|v| v.check_certificate_binding(&leaf).map(|_| v))
                {
                    Ok(_) => "renewed; a fresh token is bound to the new key".to_string(),
                    Err(e) => format!("UNEXPECTED: the new token does not verify: {e}"),
                }
            }
            Err(e) => format!("UNEXPECTED: no token with the new certificate: {e}"),
        },
        Err(e) => format!("UNEXPECTED: renewal failed: {e}"),
    };
    println!("     {first}: {renewal}");

    step(
        8,
        "a backend service gets a JWT by OAuth client credentials over HTTPS with its TLS certificate (RFC 8705)",
    );
    let backend = backend_service(
        &reg,
        &dir,
        broker.https_url().unwrap_or_default(),
        &verifier,
    )
    .await;
    println!(
        "     reporting: {}",
        backend.as_deref().unwrap_or_else(|e| e)
    );

    broker.shutdown().await;
    reg.close().await;

    println!();
    println!(
        "{:<12} {:<5} {:>6} {:>8} {:>9}  {:<28} verified offline (signature, aud, scope, cert binding)",
        "device", "via", "bytes", "ttl", "latency", "granted scope"
    );
    let mut failures = 0;
    for r in &rows {
        let check = match &r.verified {
            Ok(()) => "✓".to_string(),
            Err(e) => {
                failures += 1;
                format!("✗ {e}")
            }
        };
        println!(
            "{:<12} {:<5} {:>6} {:>7}s {:>7.1}ms  {:<28} {check}",
            r.device, r.transport, r.size, r.expires_in, r.millis, r.scope
        );
    }
    if let Some(token) = sample {
        println!("\nOne token, decoded (`certbound token inspect`):\n");
        println!(
            "{}",
            inspect(
                &token,
                Some(verifier.keys()),
                Some(API),
                Some(ISSUER),
                now(),
                60
            )
        );
    }
    let ok = failures == 0
        && refused.starts_with("refused as expected")
        && renewal.starts_with("renewed")
        && backend.is_ok();
    println!(
        "\n{} devices, {} tokens verified, {} refused as expected; {:.1} s in all. {}",
        rows.len(),
        rows.len() - failures,
        usize::from(refused.starts_with("refused")),
        started.elapsed().as_secs_f64(),
        if ok { "Demo OK." } else { "Demo FAILED." }
    );
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Registers a JWT API and a certificate-authenticated client, then gets and
/// checks a token over HTTPS as that client would.
async fn backend_service(
    reg: &Registry,
    dir: &std::path::Path,
    https: &str,
    verifier: &TokenVerifier,
) -> Result<String, String> {
    const REPORTS: &str = "https://reports.certbound.demo";
    let run = async {
        reg.create_api_with_format(REPORTS, "reports:read", 600, "jwt")
            .await?;
        let services = dir.join("services");
        let svc = reg.provision_service("reporting", &services, 30).await?;
        reg.create_client(
            "reporting",
            &[(REPORTS.into(), "reports:read".into())],
            Some("CN=reporting"),
            false,
        )
        .await?;
        let ca = std::fs::read_to_string(DataDir::new(dir).pki().chain())?;
        let cert = std::fs::read_to_string(&svc.cert_file)?;
        let key = std::fs::read_to_string(&svc.key_file)?;
        let tls = certbound_verify::http::client_tls_config(&ca, Some((&cert, &key)))?;
        let fetcher = certbound_verify::http::HttpsFetcher::new(
            tls,
            std::time::Duration::from_secs(10),
            1 << 16,
        );
        let answer = fetcher
            .post_form(
                &format!("{https}/oauth/token"),
                &[("grant_type", "client_credentials"), ("audience", REPORTS)],
                None,
            )
            .await?;
        let json: serde_json::Value = serde_json::from_slice(&answer.body)?;
        let token = json["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut config = VerifierConfig::new(REPORTS);
        config.issuer = Some(ISSUER.into());
        let jwt_verifier = TokenVerifier::new(verifier.keys().clone(), config);
        let verified = jwt_verifier.verify_jwt(&token, &["reports:read"], now())?;
        let leaf = certbound_pki::parse_pem_certs(&cert)?
            .into_iter()
            .next()
            .unwrap_or_default();
        verified.check_certificate_binding(&leaf)?;
        anyhow::Ok(format!(
            "JWT of {} bytes, verified offline, bound to its certificate (cnf.x5t#S256)",
            token.len()
        ))
    };
    run.await.map_err(|e| format!("UNEXPECTED: {e:#}"))
}

fn step(n: u32, text: &str) {
    println!("[{n}] {text}");
}
