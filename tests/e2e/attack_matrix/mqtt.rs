//! Attack-matrix cases for MQTT: the embedded server's roles, topics and
//! connects (and, where the rule lives in the documented Mosquitto ACL, a real
//! Mosquitto). Each case drives raw MQTT 3.1.1 packets (rumqttc's codec) over
//! tokio-rustls against a real broker, asserts the specific refusal (CONNACK
//! or SUBACK code, the connection closed without PUBACK, the server's refusal
//! counter) and then that a legitimate device still gets a token over MQTT.

mod support;

use std::time::Duration;

use anyhow::{Context, bail, ensure};
use certbound_broker::server::start;
use certbound_broker::store::CertRecord;
use certbound_e2e::mosquitto::{Mosquitto, skip_or_fail};
use certbound_e2e::{GROUP, edit_config, unix_now};
use certbound_registry::config::DataDir;
use certbound_registry::registry::{BulkControl, BulkOptions};
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{ConnectReturnCode, Packet, Subscribe, SubscribeReasonCode};
use support::*;

// === roles ===

/// A service that is not the broker publishes a forged token answer on a device's `token/res`.
#[tokio::test]
async fn attack_mqtt_service_publishes_device_token_res() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let victim = fx.device("sensor-1").await?;
    let service = fx.service("reporting").await?;
    // The victim listens first: a forged answer would be the first thing it gets.
    let mut listening = fx.session(&victim, "victim").await?;
    assert_publish_refused(&fx, &service, "cb/v1/sensor-1/token/res").await?;
    assert_token_over_mqtt(&mut listening, &fx.dir, &victim).await?;
    fx.shutdown().await;
    Ok(())
}

/// A service that is not the broker publishes a forged certificate answer on a device's `cert/res`.
#[tokio::test]
async fn attack_mqtt_service_publishes_device_cert_res() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let victim = fx.device("sensor-1").await?;
    let service = fx.service("reporting").await?;
    assert_publish_refused(&fx, &service, "cb/v1/sensor-1/cert/res").await?;
    assert_publish_refused(&fx, &service, "cb/v1/sensor-1/telemetry").await?;
    fx.assert_serves(&victim).await?;
    fx.shutdown().await;
    Ok(())
}

/// A service that is not the broker joins the broker's share group `$share/certbound` or reads requests.
#[tokio::test]
async fn attack_mqtt_service_joins_broker_share_group() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let device = fx.device("sensor-1").await?;
    let service = fx.service("reporting").await?;
    assert_filters_refused(
        &fx,
        &service,
        &[
            "$share/certbound/cb/v1/+/token/req",
            "$share/certbound/cb/v1/+/telemetry",
            "$share/reporting/cb/v1/+/token/req",
            "cb/v1/+/cert/req",
            "cb/#",
        ],
        &device,
    )
    .await?;
    // What a service may do: read telemetry, plainly or in its own group.
    let mut reader = fx.session(&service, "reader").await?;
    let codes = reader
        .subscribe(&["cb/v1/+/telemetry", "$share/reporting/cb/v1/+/telemetry"])
        .await?;
    ensure!(
        codes == [SubscribeReasonCode::Success(QoS::AtLeastOnce); 2],
        "{codes:?}"
    );
    fx.shutdown().await;
    Ok(())
}

/// A device whose certificate says CN=certbound-broker (made with openssl) tries to act as the broker.
#[tokio::test]
async fn attack_mqtt_device_named_like_broker() -> anyhow::Result<()> {
    if !openssl_available() {
        return Ok(());
    }
    let fx = Fixture::new().await?;
    let victim = fx.device("sensor-1").await?;
    let lookalike = lookalike_cert(&fx.dir)?;
    let mut raw = fx.tls(&lookalike).await?;
    match raw.connect("certbound-broker").await? {
        // Refusing the device outright (an id reserved for services) is fine too.
        ConnectReturnCode::NotAuthorized => {}
        ConnectReturnCode::Success => {
            let codes = raw
                .subscribe(&["$share/certbound/cb/v1/+/token/req", "cb/v1/sensor-1/#"])
                .await?;
            ensure!(codes == [SubscribeReasonCode::Failure; 2], "{codes:?}");
            raw.publish("cb/v1/sensor-1/token/res", b"forged".to_vec(), 4)
                .await?;
            raw.expect_closed().await?;
            ensure!(fx.stats().publish_refusals == 1);
        }
        other => bail!("unexpected CONNACK {other:?}"),
    }
    fx.assert_serves(&victim).await?;
    fx.shutdown().await;
    Ok(())
}

/// A provisioning-claim certificate reaches outside `cb/claims/claim-<id>/`.
#[tokio::test]
async fn attack_mqtt_claim_outside_its_topics() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let device = fx.device("sensor-1").await?;
    let claim = fx
        .registry
        .create_claim(GROUP, 5, 3600, None, None, &fx.dir.join("claims"))
        .await?;
    let holder = Creds {
        id: format!("claim-{}", claim.claim.id),
        key_file: claim.key_file,
        cert_file: claim.cert_file,
    };
    assert_filters_refused(
        &fx,
        &holder,
        &["cb/v1/+/token/res", "cb/claims/+/res/+", "#"],
        &device,
    )
    .await?;
    assert_publish_refused(&fx, &holder, "cb/v1/sensor-1/token/req").await?;
    fx.assert_serves(&device).await?;
    fx.shutdown().await;
    Ok(())
}

/// A certificate from the certbound CA whose CN names an existing device but that has no SAN URI (made with openssl).
#[tokio::test]
async fn attack_mqtt_cn_without_san_uri() -> anyhow::Result<()> {
    if !openssl_available() {
        return Ok(());
    }
    let fx = Fixture::new().await?;
    let device = fx.device("sensor-1").await?;
    let cn_only = openssl_client_cert(&fx.dir, "cn-only", "sensor-1", None)?;
    let mut raw = fx.tls(&cn_only).await?;
    ensure!(raw.connect("sensor-1").await? == ConnectReturnCode::NotAuthorized);
    raw.expect_closed().await?;
    ensure!(fx.stats().auth_failures == 1);
    fx.assert_serves(&device).await?;
    fx.shutdown().await;
    Ok(())
}

// === devices and topics ===

/// A device subscribes to `#` (every topic of every device).
#[tokio::test]
async fn attack_mqtt_device_subscribes_everything() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let (a, b) = (fx.device("sensor-1").await?, fx.device("sensor-2").await?);
    assert_filters_refused(&fx, &a, &["#", "+/#", "cb/#", "cb/v1/#"], &b).await?;
    fx.shutdown().await;
    Ok(())
}

/// A device subscribes with a wildcard at the device level (`cb/v1/+/...`).
#[tokio::test]
async fn attack_mqtt_device_subscribes_across_devices() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let (a, b) = (fx.device("sensor-1").await?, fx.device("sensor-2").await?);
    assert_filters_refused(
        &fx,
        &a,
        &[
            "cb/v1/+/token/res",
            "cb/v1/+/telemetry",
            "cb/v1/+/#",
            "+/v1/sensor-1/#",
        ],
        &b,
    )
    .await?;
    fx.shutdown().await;
    Ok(())
}

/// A device subscribes to `$SYS/#` and joins a shared subscription.
#[tokio::test]
async fn attack_mqtt_device_subscribes_sys_and_shares() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let (a, b) = (fx.device("sensor-1").await?, fx.device("sensor-2").await?);
    assert_filters_refused(
        &fx,
        &a,
        &[
            "$SYS/#",
            "$share/certbound/cb/v1/+/token/req",
            "$share/x/cb/v1/sensor-1/#",
        ],
        &b,
    )
    .await?;
    fx.shutdown().await;
    Ok(())
}

/// A device subscribes to another device's answers.
#[tokio::test]
async fn attack_mqtt_device_reads_another_device() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let (a, b) = (fx.device("sensor-1").await?, fx.device("sensor-2").await?);
    assert_filters_refused(
        &fx,
        &a,
        &[
            "cb/v1/sensor-2/token/res",
            "cb/v1/sensor-2/#",
            "cb/v1/sensor-10/#",
        ],
        &b,
    )
    .await?;
    fx.shutdown().await;
    Ok(())
}

/// Topic spoofing: a device publishes on another device's topics.
#[tokio::test]
async fn attack_mqtt_device_topic_spoofing() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let (a, b) = (fx.device("sensor-1").await?, fx.device("sensor-2").await?);
    let mut victim = fx.session(&b, "victim").await?;
    for topic in [
        "cb/v1/sensor-2/token/res",
        "cb/v1/sensor-2/telemetry",
        "cb/v1/sensor-2/token/req",
    ] {
        assert_publish_refused(&fx, &a, topic).await?;
    }
    // The victim's first message is the broker's genuine answer.
    assert_token_over_mqtt(&mut victim, &fx.dir, &b).await?;
    fx.shutdown().await;
    Ok(())
}

/// A PUBLISH whose topic name holds a wildcard (`+`, `#`) inside the device's own namespace.
#[tokio::test]
async fn attack_mqtt_wildcard_in_publish_topic() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let device = fx.device("sensor-1").await?;
    for (i, topic) in ["cb/v1/sensor-1/+", "cb/v1/sensor-1/#"].iter().enumerate() {
        let mut raw = fx.session(&device, "wild").await?;
        raw.publish(topic, b"x".to_vec(), 5).await?;
        raw.expect_closed().await?;
        ensure!(fx.stats().invalid_topics == i as u64 + 1, "{topic}");
    }
    fx.assert_serves(&device).await?;
    fx.shutdown().await;
    Ok(())
}

/// A PUBLISH topic and a SUBSCRIBE filter that are not valid UTF-8.
#[tokio::test]
async fn attack_mqtt_invalid_utf8_topic() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let device = fx.device("sensor-1").await?;
    let prefix = b"cb/v1/sensor-1/";
    // PUBLISH QoS 0: topic length, topic with 0xff 0xfe, payload.
    let mut publish = vec![0x30, u8::try_from(2 + prefix.len() + 2 + 1)?];
    publish.extend_from_slice(&u16::try_from(prefix.len() + 2)?.to_be_bytes());
    publish.extend_from_slice(prefix);
    publish.extend_from_slice(&[0xff, 0xfe, b'p']);
    // SUBSCRIBE pkid 1, one filter ending in a lone 0xc3, QoS 0.
    let mut subscribe = vec![0x82, u8::try_from(2 + 2 + prefix.len() + 1 + 1)?, 0, 1];
    subscribe.extend_from_slice(&u16::try_from(prefix.len() + 1)?.to_be_bytes());
    subscribe.extend_from_slice(prefix);
    subscribe.extend_from_slice(&[0xc3, 0]);
    for (i, bytes) in [publish, subscribe].iter().enumerate() {
        let mut raw = fx.session(&device, "utf8").await?;
        raw.send_raw(bytes).await?;
        raw.expect_closed().await?;
        ensure!(fx.stats().invalid_topics == i as u64 + 1);
    }
    fx.assert_serves(&device).await?;
    fx.shutdown().await;
    Ok(())
}

/// Terminal escapes and NUL in topic names, filters and client ids (log injection).
#[tokio::test]
async fn attack_mqtt_control_characters_in_topic() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let device = fx.device("sensor-1").await?;
    let mut raw = fx.session(&device, "esc").await?;
    raw.publish("cb/v1/sensor-1/\u{1b}[2J\u{1b}[31mOK", b"x".to_vec(), 6)
        .await?;
    raw.expect_closed().await?;
    let mut raw = fx.session(&device, "nul").await?;
    // Packet ids are never 0 (§2.3.1; rumqttc's constructor leaves it 0).
    let mut subscribe = Subscribe::new("cb/v1/sensor-1/\0", QoS::AtMostOnce);
    subscribe.pkid = 1;
    raw.send(Packet::Subscribe(subscribe)).await?;
    raw.expect_closed().await?;
    ensure!(fx.stats().invalid_topics == 2);
    let mut raw = fx.tls(&device).await?;
    ensure!(raw.connect("id\u{1b}[2J").await? == ConnectReturnCode::BadClientId);
    fx.assert_serves(&device).await?;
    fx.shutdown().await;
    Ok(())
}

// === connects: revocation, expiry, caps ===

/// A device's old certificate, revoked after renewal, connects while the device stays active.
#[tokio::test]
async fn attack_mqtt_revoked_certificate_connect() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let old = fx.device("renewed").await?;
    // The renewal: a second certificate for the same (active) device.
    let ca = certbound_pki::IssuingCa::load(&DataDir::new(&fx.dir).pki())?;
    let bundle = ca.issue_device("renewed", 30, unix_now())?;
    let (key_file, cert_file) = bundle.write_to(&fx.dir.join("renewed"), "renewed")?;
    let record = CertRecord {
        serial: bundle.cert.serial_hex.clone(),
        device_id: "renewed".into(),
        thumbprint: hex::encode(bundle.cert.thumbprint),
        not_before: bundle.cert.not_before,
        not_after: bundle.cert.not_after,
        status: "active".into(),
        der: bundle.cert.der.clone(),
    };
    fx.registry
        .store
        .add_certificate(&record, unix_now())
        .await?;
    let new = Creds {
        id: "renewed".into(),
        key_file,
        cert_file,
    };
    // A session with the old certificate is up when it gets revoked.
    let mut live = fx.session(&old, "old").await?;
    revoke_certificate(&fx.dir, &old).await?;
    live.expect_closed().await?;
    let before = fx.stats().auth_failures;
    let mut raw = fx.tls(&old).await?;
    ensure!(raw.connect("old-again").await? == ConnectReturnCode::NotAuthorized);
    raw.expect_closed().await?;
    ensure!(fx.stats().auth_failures == before + 1);
    // The device itself is still active: its new certificate works.
    fx.assert_serves(&new).await?;
    fx.shutdown().await;
    Ok(())
}

/// A backend service whose certificate was revoked (`certbound service revoke`) stays connected or reconnects.
#[tokio::test]
async fn attack_mqtt_revoked_service_certificate() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let device = fx.device("sensor-1").await?;
    let service = fx.service("reporting").await?;
    let mut live = fx.session(&service, "reader").await?;
    fx.registry.revoke_service("reporting").await?;
    live.expect_closed().await?;
    let mut raw = fx.tls(&service).await?;
    ensure!(raw.connect("reader-again").await? == ConnectReturnCode::NotAuthorized);
    raw.expect_closed().await?;
    fx.assert_serves(&device).await?;
    fx.shutdown().await;
    Ok(())
}

/// A session outlives its certificate (60-second certificate from bulk provisioning).
#[tokio::test]
async fn attack_mqtt_expired_certificate_session_cut() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let other = fx.device("sensor-1").await?;
    let out = fx.dir.join("bulk");
    let mut opts = BulkOptions::new("short-", 1, &out);
    opts.groups = vec![GROUP.to_string()];
    opts.lifetime_secs = Some(60);
    fx.registry
        .provision_bulk(
            &opts,
            &BulkControl {
                stop: None,
                progress: None,
            },
        )
        .await?;
    let short = Creds {
        id: "short-1".into(),
        key_file: find_file(&out, "short-1.key.pem")?,
        cert_file: find_file(&out, "short-1.cert.pem")?,
    };
    let not_after = certbound_pki::cert_summary(&pem_der(&short.cert_file)?)?.not_after;
    let mut raw = fx.session(&short, "short").await?;
    // Wait for the cut (the certificate lives ~60 s; keep-alive is 60 s too,
    // so keep the session busy with PINGREQs the server must answer).
    let cut = tokio::time::timeout(Duration::from_secs(180), async {
        loop {
            raw.send(Packet::PingReq).await?;
            match raw.next().await? {
                Some(Packet::PingResp) => tokio::time::sleep(Duration::from_secs(5)).await,
                None => return anyhow::Ok(()),
                Some(other) => bail!("unexpected {other:?}"),
            }
        }
    })
    .await;
    ensure!(
        cut.is_ok(),
        "the session was not cut after notAfter {not_after}"
    );
    cut??;
    ensure!(unix_now() >= not_after, "cut before notAfter");
    ensure!(fx.stats().expired_certificates == 1);
    fx.assert_serves(&other).await?;
    fx.shutdown().await;
    Ok(())
}

/// One device certificate opens many connections with different client ids.
#[tokio::test]
async fn attack_mqtt_connection_cap_per_identity() -> anyhow::Result<()> {
    let fx = Fixture::with_config(&[(
        "max_connections_per_device = 4",
        "max_connections_per_device = 2",
    )])
    .await?;
    let (a, b) = (fx.device("sensor-1").await?, fx.device("sensor-2").await?);
    let mut first = fx.session(&a, "c1").await?;
    let _second = fx.session(&a, "c2").await?;
    let mut third = fx.tls(&a).await?;
    ensure!(third.connect("c3").await? == ConnectReturnCode::NotAuthorized);
    third.expect_closed().await?;
    ensure!(fx.stats().refused_over_identity_cap == 1);
    // Reconnecting with a live client id takes that connection over (MQTT §3.1.4).
    let mut again = fx.session(&a, "c1").await?;
    first.expect_closed().await?;
    again.expect_alive().await?;
    // Other identities are not affected.
    fx.assert_serves(&b).await?;
    fx.shutdown().await;
    Ok(())
}

/// One session subscribes to more filters than allowed (memory and routing work).
#[tokio::test]
async fn attack_mqtt_subscription_cap() -> anyhow::Result<()> {
    let fx = Fixture::with_config(&[(
        "max_subscriptions_per_session = 32",
        "max_subscriptions_per_session = 3",
    )])
    .await?;
    let device = fx.device("sensor-1").await?;
    let mut raw = fx.session(&device, "many").await?;
    let codes = raw
        .subscribe(&[
            "cb/v1/sensor-1/a",
            "cb/v1/sensor-1/b",
            "cb/v1/sensor-1/c",
            "cb/v1/sensor-1/d",
        ])
        .await?;
    let ok = SubscribeReasonCode::Success(QoS::AtLeastOnce);
    ensure!(
        codes == [ok, ok, ok, SubscribeReasonCode::Failure],
        "{codes:?}"
    );
    raw.expect_alive().await?;
    ensure!(fx.stats().subscribe_refusals == 1);
    fx.assert_serves(&device).await?;
    fx.shutdown().await;
    Ok(())
}

// === Mosquitto (the documented split-listener configuration) ===

/// Against Mosquitto: a device certificate with CN=certbound-broker on the device listener acts as the broker.
#[tokio::test]
async fn attack_mqtt_mosquitto_device_named_like_broker() -> anyhow::Result<()> {
    if !openssl_available() {
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("cb");
    let registry = prepare(&dir, &[]).await?;
    let Some(mosquitto) = Mosquitto::start_split(&dir) else {
        skip_or_fail("mosquitto");
        return Ok(());
    };
    let service_addr = mosquitto.service_addr.context("split listeners")?;
    edit_config(
        &dir,
        &[(
            "mode = \"embedded\"",
            &format!("mode = \"external\"\nurl = \"mqtts://{service_addr}\""),
        )],
    )?;
    let victim = provision_device(&registry, &dir, "sensor-1").await?;
    let broker = start(&dir, listen_options()?).await?;
    let lookalike = lookalike_cert(&dir)?;

    let mut listening = Raw::tls(mosquitto.addr, &dir, &victim).await?;
    ensure!(listening.connect("victim").await? == ConnectReturnCode::Success);
    let mut attacker = Raw::tls(mosquitto.addr, &dir, &lookalike).await?;
    ensure!(attacker.connect("certbound-broker").await? == ConnectReturnCode::Success);
    // Mosquitto 2.0 grants the SUBACK and checks read access per message.
    let _ = attacker
        .subscribe(&[
            "$share/certbound/cb/v1/+/token/req",
            "cb/v1/sensor-1/#",
            "cb/v1/+/token/res",
        ])
        .await?;
    // Mosquitto drops a refused publish silently (PUBACK, no delivery).
    attacker
        .publish("cb/v1/sensor-1/token/res", b"forged".to_vec(), 9)
        .await?;
    match attacker.next().await? {
        Some(Packet::PubAck(_)) | None => {}
        other => bail!("unexpected {other:?}"),
    }
    // The victim's first message is the genuine answer of the real broker,
    // which sits on the service listener.
    assert_token_over_mqtt(&mut listening, &dir, &victim).await?;
    // The attacker saw neither the request nor the answer.
    attacker.expect_alive().await?;
    broker.shutdown().await;
    registry.close().await;
    drop(mosquitto);
    Ok(())
}
