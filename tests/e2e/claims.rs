//! First-boot provisioning by claim: a batch claim certificate lets N devices
//! enroll their own keys (CoAP `/sen` with a request signed by the claim key,
//! or EST `simpleenroll` with the claim certificate over mTLS), then stops.

use anyhow::Context as _;
use certbound_coap::{ResponseType, content_format};
use certbound_e2e::https::HttpsClient;
use certbound_e2e::{Fixture, GROUP, ISSUER, nonce, unix_now};
use certbound_proto::cbor::Limits;
use certbound_proto::crypto::P256Signer;
use certbound_proto::enroll::CertResponse;
use certbound_proto::request::{CertRef, TokenRequest, sign_request};

struct ClaimCred {
    id: String,
    chain: Vec<Vec<u8>>,
    signer: P256Signer,
    key_file: std::path::PathBuf,
    cert_file: std::path::PathBuf,
}

async fn claim(fx: &Fixture, uses: u64, pattern: Option<&str>) -> anyhow::Result<ClaimCred> {
    let out = fx.path().join("claims");
    let c = fx
        .registry
        .create_claim(GROUP, uses, 3600, pattern, None, &out)
        .await?;
    let pem = std::fs::read_to_string(&c.cert_file)?;
    Ok(ClaimCred {
        id: c.claim.id,
        chain: certbound_pki::parse_pem_certs(&pem)?,
        signer: P256Signer::from_pkcs8_pem(&std::fs::read_to_string(&c.key_file)?)?,
        key_file: c.key_file,
        cert_file: c.cert_file,
    })
}

fn csr(cn: &str) -> anyhow::Result<Vec<u8>> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    Ok(params.serialize_request(&key)?.der().to_vec())
}

async fn sen(
    fx: &Fixture,
    c: &ClaimCred,
    device: &str,
) -> anyhow::Result<certbound_coap::Response> {
    let now = unix_now();
    let request = TokenRequest {
        iss: device.into(),
        aud: ISSUER.into(),
        exp: now + 60,
        iat: now,
        cti: nonce().to_vec(),
        grant_type: None,
        audience: None,
        scope: None,
        csr: Some(csr(device)?),
    };
    let body = sign_request(&request, &CertRef::X5Chain(c.chain.clone()), &c.signer)?;
    Ok(fx
        .client
        .post(".well-known/est/sen", content_format::COSE_SIGN1, body)
        .await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_with_three_uses_provisions_three_devices_and_refuses_the_fourth()
-> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let c = claim(&fx, 3, Some("line-*")).await?;
    let trust = certbound_pki::TrustStore::load(
        &certbound_registry::config::DataDir::new(fx.path()).pki(),
    )?;
    for i in 1..=3 {
        let id = format!("line-{i}");
        let a = sen(&fx, &c, &id).await?;
        assert_eq!(
            a.code,
            ResponseType::Changed,
            "{id}: {:?}",
            String::from_utf8_lossy(&a.payload)
        );
        let cert = CertResponse::from_cbor(&a.payload, Limits::default())?;
        let checked = trust.verify_device_cert(&cert.chain[0], &cert.chain[1..], unix_now(), 0)?;
        assert_eq!(checked.device_id, id);
        let device = fx
            .registry
            .store
            .get_device(&id)
            .await?
            .context("registered")?;
        assert_eq!(device.groups, vec![GROUP.to_string()]);
    }
    let fourth = sen(&fx, &c, "line-4").await?;
    assert_eq!(fourth.code, ResponseType::Forbidden);
    assert!(fx.registry.store.get_device("line-4").await?.is_none());
    assert_eq!(
        fx.registry
            .store
            .get_claim(&c.id)
            .await?
            .context("claim")?
            .uses_left,
        0
    );
    // The claim certificate is not a device identity: it gets no tokens.
    let now = unix_now();
    let as_token = sign_request(
        &TokenRequest {
            iss: format!("claim-{}", c.id),
            aud: ISSUER.into(),
            exp: now + 60,
            iat: now,
            cti: nonce().to_vec(),
            grant_type: Some(2),
            audience: Some(certbound_e2e::API.into()),
            scope: None,
            csr: None,
        },
        &CertRef::X5Chain(c.chain.clone()),
        &c.signer,
    )?;
    assert_eq!(
        fx.post_token(as_token).await?.code,
        ResponseType::Unauthorized
    );
    // Every use is audited.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let events = fx.registry.store.recent_audit(None, 200).await?;
        let claimed = events
            .iter()
            .filter(|e| e.action == "device.claimed")
            .count();
        let refused = events
            .iter()
            .filter(|e| e.action == "device.claim_refused")
            .count();
        if claimed == 3 && refused >= 1 {
            break;
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "claimed {claimed}, refused {refused}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    fx.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_revoked_and_mismatched_claims_are_refused() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let c = claim(&fx, 10, Some("line-*")).await?;
    // An id outside the pattern.
    assert_eq!(
        sen(&fx, &c, "gateway-1").await?.code,
        ResponseType::Forbidden
    );
    // An id that already exists.
    fx.device("line-9").await?;
    assert_eq!(sen(&fx, &c, "line-9").await?.code, ResponseType::Forbidden);
    // Expired (in the registry).
    fx.registry
        .store
        .set_claim_expiry(&c.id, unix_now() - 1)
        .await?;
    assert_eq!(sen(&fx, &c, "line-1").await?.code, ResponseType::Forbidden);
    // Revoked.
    let d = claim(&fx, 10, None).await?;
    fx.registry.revoke_claim(&d.id).await?;
    assert_eq!(sen(&fx, &d, "any-1").await?.code, ResponseType::Forbidden);
    // A request signed by another key than the claim's.
    let e = claim(&fx, 10, None).await?;
    let forged = ClaimCred {
        signer: d.signer,
        ..e
    };
    assert_eq!(
        sen(&fx, &forged, "any-2").await?.code,
        ResponseType::Unauthorized
    );
    assert!(fx.registry.store.get_device("any-2").await?.is_none());
    fx.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn est_simpleenroll_with_the_claim_certificate() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let c = claim(&fx, 1, None).await?;
    let https = HttpsClient::new(
        &fx.https_url(),
        fx.path(),
        Some((&c.cert_file, &c.key_file)),
    )?;
    let b64 = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        csr("est-device-1")?,
    );
    let a = https
        .send(
            http::Method::POST,
            "/.well-known/est/simpleenroll",
            &[("content-type", "application/pkcs10")],
            b64.into_bytes(),
        )
        .await?;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.raw.body));
    assert!(
        fx.registry
            .store
            .get_device("est-device-1")
            .await?
            .is_some()
    );
    // One use only.
    let b64 = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        csr("est-device-2")?,
    );
    let a = https
        .send(
            http::Method::POST,
            "/.well-known/est/simpleenroll",
            &[],
            b64.into_bytes(),
        )
        .await?;
    assert_eq!(a.status, 403);
    fx.shutdown().await;
    Ok(())
}

/// An MQTT client with the claim certificate on the embedded server: yields
/// SUBACK codes and incoming publishes.
async fn claim_mqtt(
    fx: &Fixture,
    c: &ClaimCred,
    subscribe: &str,
) -> anyhow::Result<(
    certbound_mqtt::client::MqttClient,
    tokio::sync::mpsc::Receiver<Result<(String, Vec<u8>), Vec<rumqttc::SubscribeReasonCode>>>,
)> {
    use certbound_mqtt::client::{ClientOptions, Event, MqttClient, QoS};
    let addr = fx.mqtt_addr().context("embedded MQTT server")?;
    let ca = std::fs::read_to_string(
        certbound_registry::config::DataDir::new(fx.path())
            .pki()
            .chain(),
    )?;
    let tls = certbound_mqtt::client_tls::client_tls_config(
        &ca,
        &std::fs::read_to_string(&c.cert_file)?,
        &std::fs::read_to_string(&c.key_file)?,
    )?;
    let options = ClientOptions::new(
        format!("claim-{}", c.id),
        addr.ip().to_string(),
        addr.port(),
    )
    .tls(tls);
    let (client, mut events) = MqttClient::connect(options).await?;
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let code = match client.subscribe(subscribe, QoS::AtLeastOnce).await? {
        Ok(q) => rumqttc::SubscribeReasonCode::Success(q),
        Err(_) => rumqttc::SubscribeReasonCode::Failure,
    };
    tx.send(Err(vec![code])).await?;
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if let Event::Message(p) = event {
                let _ = tx.send(Ok((p.topic.clone(), p.payload.to_vec()))).await;
            }
        }
    });
    Ok((client, rx))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_enroll_over_mqtt_and_stay_in_their_topics() -> anyhow::Result<()> {
    use certbound_mqtt::client::{Message, QoS};
    use rumqttc::SubscribeReasonCode;
    let fx = Fixture::new().await?;
    let c = claim(&fx, 2, None).await?;
    let cn = format!("claim-{}", c.id);
    // A claim may not listen to devices' topics.
    let (_spy, mut spy_rx) = claim_mqtt(&fx, &c, "cb/v1/+/telemetry").await?;
    let codes = tokio::time::timeout(std::time::Duration::from_secs(10), spy_rx.recv())
        .await?
        .context("suback")?;
    assert!(
        matches!(codes, Err(ref c) if c.iter().all(|x| matches!(x, SubscribeReasonCode::Failure))),
        "{codes:?}"
    );

    let (client, mut rx) = claim_mqtt(&fx, &c, &format!("cb/claims/{cn}/res/mqtt-dev-1")).await?;
    let codes = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
        .await?
        .context("suback")?;
    assert!(
        matches!(codes, Err(ref c) if c.iter().all(|x| matches!(x, SubscribeReasonCode::Success(_)))),
        "{codes:?}"
    );
    let now = unix_now();
    let request = TokenRequest {
        iss: "mqtt-dev-1".into(),
        aud: ISSUER.into(),
        exp: now + 60,
        iat: now,
        cti: nonce().to_vec(),
        grant_type: None,
        audience: None,
        scope: None,
        csr: Some(csr("mqtt-dev-1")?),
    };
    let body = sign_request(&request, &CertRef::X5Chain(c.chain.clone()), &c.signer)?;
    client
        .publish(Message::new(
            format!("cb/claims/{cn}/req"),
            body,
            QoS::AtLeastOnce,
        ))
        .await?;
    let answer = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
        .await?
        .context("answer")?;
    let (topic, payload) = answer.map_err(|c| anyhow::anyhow!("unexpected suback {c:?}"))?;
    assert_eq!(topic, format!("cb/claims/{cn}/res/mqtt-dev-1"));
    let cert = CertResponse::from_cbor(&payload, Limits::default())?;
    assert!(!cert.chain.is_empty());
    assert!(fx.registry.store.get_device("mqtt-dev-1").await?.is_some());
    fx.shutdown().await;
    Ok(())
}
