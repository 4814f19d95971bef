//! Zero-touch certificate renewal against a real broker: by the daemon over
//! MQTT (with certificates that live a minute, so renewal happens during the
//! test) and over CoAP, a renewal whose answer is lost, a renewed pair found
//! staged at start, the library functions over CoAP (block-wise) and HTTPS
//! EST, and refusals.

use std::net::SocketAddr;
use std::time::Duration;

use certbound_agent::credentials::CredentialFiles;
use certbound_agent::keygen::NewKey;
use certbound_agent::reenroll::{build_reenroll_request, decode_coap_answer};
#[cfg(feature = "est")]
use certbound_agent::renew_over_est;
use certbound_agent::{
    AgentError, DeviceIdentity, RenewedIdentity, TokenRequestParams, renew_over_coap,
    request_token_coap,
};
use certbound_broker::store::DeviceStatus;
use certbound_coap::{Client, ClientConfig, content_format};
use certbound_proto::ace::AceErrorCode;
use certbound_proto::request::CertRef;
use certbound_registry::registry::Registry;
use certbound_verify::{VerifiedToken, VerifyError};

use crate::common::*;
use crate::gate::Mode;

/// Lifetime of the short-lived certificates (the broker's minimum).
const SHORT: u64 = 60;

fn thumbprint(der: &[u8]) -> String {
    hex(&certbound_pki::thumbprint_sha256(der))
}

fn public_key(der: &[u8]) -> Vec<u8> {
    certbound_pki::public_key_sec1(der).expect("certificate key")
}

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).expect("readable")
}

/// Only the current key and certificate are left in the device directory.
fn only_current_files(world: &World) {
    let mut names: Vec<String> = std::fs::read_dir(&world.devices)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [format!("{DEVICE}.cert.pem"), format!("{DEVICE}.key.pem")]
    );
}

fn coap_addr(world: &World) -> SocketAddr {
    world
        .broker
        .as_ref()
        .and_then(|b| b.coap_addr())
        .expect("CoAP listens")
}

async fn coap_client(world: &World) -> Client {
    Client::connect(coap_addr(world), ClientConfig::default())
        .await
        .expect("CoAP client")
}

/// A telemetry token for `identity` over CoAP, verified as a backend does.
async fn token_over_coap(world: &World, identity: &DeviceIdentity) -> VerifiedToken {
    let client = coap_client(world).await;
    let params = TokenRequestParams::new(ISSUER, API).with_scope("telemetry:write");
    let token = request_token_coap(&client, identity, &params)
        .await
        .expect("a token");
    world
        .verifier()
        .verify(&token.access_token, &["telemetry:write"], now())
        .expect("the token verifies")
}

/// What a renewed identity must look like against the one it replaces.
async fn check_renewed(world: &World, old: &DeviceIdentity, renewed: &RenewedIdentity) {
    let new = &renewed.identity;
    assert_eq!(new.device_id(), DEVICE);
    assert_ne!(new.thumbprint(), old.thumbprint());
    assert_ne!(
        public_key(&new.chain()[0]),
        public_key(&old.chain()[0]),
        "a new key"
    );
    assert_eq!(new.chain().len(), 2, "leaf and issuing CA");
    let ca =
        certbound_pki::IssuingCa::load(&certbound_registry::config::DataDir::new(&world.dir).pki())
            .unwrap();
    assert_eq!(new.chain()[1], ca.cert_der(), "issued by the broker's CA");
    // The PEM texts load to the same identity.
    let again = DeviceIdentity::from_pem(&renewed.key_pem, &renewed.chain_pem).unwrap();
    assert_eq!(again.thumbprint(), new.thumbprint());
    // The registry knows it.
    let certs = world.registry_certs().await;
    let record = certs
        .iter()
        .find(|c| c.thumbprint == hex(&new.thumbprint()))
        .expect("the new certificate is registered");
    assert_eq!(record.status, "active");
    // A token for the new key is bound to the new certificate only.
    let token = token_over_coap(world, new).await;
    token.check_certificate_binding(&new.chain()[0]).unwrap();
    assert!(matches!(
        token.check_certificate_binding(&old.chain()[0]),
        Err(VerifyError::BindingMismatch)
    ));
    // The old certificate keeps working until it expires (a lost answer
    // must not lock a device out).
    let old_token = token_over_coap(world, old).await;
    old_token
        .check_certificate_binding(&old.chain()[0])
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_renews_over_mqtt_during_the_test_and_nothing_is_lost() {
    // Renewed certificates live 60 s (the broker's [pki] device_cert_secs);
    // the first one too (issued here with the same lifetime). A certificate
    // is renewed at 2/3 of notBefore..notAfter (notBefore is back-dated a
    // minute by the CA): about 20 s after issuance, give or take 3 s.
    let world = World::with_pki(3600, &[("device_cert_secs", "60")]).await;
    let (_, first_chain) = world.short_lived_cert(SHORT, 0).await;
    let first_leaf = leaf(&first_chain);
    let mut backend = world.subscriber().await;
    let (_, config) = world.agent_config(
        "renew-mqtt",
        "udp:127.0.0.1:0",
        "[renewal]\nretry_base_secs = 1\nretry_max_secs = 2\n",
    );
    let agent = world.agent_now(&config).await;
    let to = agent.source_addr().unwrap();
    let firmware = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();

    let start = agent.status().borrow().clone();
    assert_eq!(start.cert_thumbprint, Some(thumbprint(&first_leaf)));
    let summary = certbound_pki::cert_summary(&first_leaf).unwrap();
    let lifetime = summary.not_after - summary.not_before;
    let renew_at = start.cert_renew_at.expect("renewal is on");
    assert!(
        renew_at.abs_diff(summary.not_before + lifetime * 2 / 3) <= lifetime / 20 + 1,
        "renewal at 2/3 of the lifetime ±5 %: {renew_at}"
    );

    // Before: telemetry bound to the first certificate.
    let first = accepted(&send_udp(&firmware, to, b"before").await);
    let before = open(&world, &backend.next().await);
    assert_eq!(before.payload.seq, first);
    before.token.check_certificate_binding(&first_leaf).unwrap();
    let mut seqs = Vec::new();

    // Telemetry keeps coming while the renewal happens.
    let mut status = agent.status();
    let mut i = 0;
    while status.borrow().cert_renewals == 0 {
        assert!(
            now() < summary.not_after + 30,
            "no renewal before expiry: {:?}",
            *status.borrow()
        );
        seqs.push(accepted(
            &send_udp(&firmware, to, format!("during {i}").as_bytes()).await,
        ));
        i += 1;
        let _ = tokio::time::timeout(Duration::from_millis(500), status.changed()).await;
    }
    let renewed = status.borrow().clone();
    assert_eq!(renewed.cert_renewal_failures, 0, "{renewed:?}");

    // The files: a new key and a certificate for it, nothing staged left.
    let (key_file, cert_file) = world.device_files();
    let second_chain = read(&cert_file);
    let second_leaf = leaf(&second_chain);
    assert_ne!(
        public_key(&second_leaf),
        public_key(&first_leaf),
        "a new key"
    );
    let on_disk = DeviceIdentity::load(&key_file, &cert_file).expect("key and cert match");
    assert_eq!(
        on_disk.thumbprint(),
        certbound_pki::thumbprint_sha256(&second_leaf)
    );
    only_current_files(&world);
    assert_eq!(renewed.cert_thumbprint, Some(thumbprint(&second_leaf)));
    // The broker's lifetime for renewals applies.
    let second = certbound_pki::cert_summary(&second_leaf).unwrap();
    assert!(second.not_after <= now() + SHORT + 5, "{second:?}");
    // The registry lists the new serial.
    let certs = world.registry_certs().await;
    let record = certs
        .iter()
        .find(|c| c.thumbprint == thumbprint(&second_leaf))
        .expect("registered");
    assert_eq!(
        record.serial.trim_start_matches('0'),
        second.serial_hex.trim_start_matches('0')
    );
    assert_eq!(
        renewed.cert_serial.as_deref(),
        Some(second.serial_hex.as_str())
    );

    // After: a fresh token bound to the NEW key.
    seqs.push(accepted(&send_udp(&firmware, to, b"after").await));
    let all = backend.until_all(&world, &seqs).await;
    let last = all.iter().find(|o| o.payload.data == b"after").unwrap();
    last.token.check_certificate_binding(&second_leaf).unwrap();
    assert!(matches!(
        last.token.check_certificate_binding(&first_leaf),
        Err(VerifyError::BindingMismatch)
    ));
    assert_ne!(last.payload.token_cti, before.payload.token_cti);
    // Every message arrived, verified (token, proof of possession) and in order.
    let mut got: Vec<u64> = all.iter().map(|o| o.payload.seq).collect();
    got.dedup();
    assert_eq!(got, seqs);

    // And again, at 2/3 of the renewed certificate's lifetime.
    let third = within_secs(
        60,
        "a second renewal",
        status.wait_for(|s| s.cert_renewals >= 2),
    )
    .await
    .unwrap()
    .clone();
    let third_leaf = leaf(&read(&cert_file));
    assert_eq!(third.cert_thumbprint, Some(thumbprint(&third_leaf)));
    assert_ne!(public_key(&third_leaf), public_key(&second_leaf));
    let seq = accepted(&send_udp(&firmware, to, b"third").await);
    let all = backend.until_all(&world, &[seq]).await;
    all.last()
        .unwrap()
        .token
        .check_certificate_binding(&third_leaf)
        .unwrap();
    until_status(&agent, "the spool drains", |s| s.spooled == 0).await;
    agent.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_whose_answer_is_lost_keeps_a_working_credential_and_is_retried() {
    let world = World::with_pki(3600, &[("device_cert_secs", "60")]).await;
    let (first_key, first_chain) = world.short_lived_cert(SHORT, 0).await;
    let first_leaf = leaf(&first_chain);
    let mut backend = world.subscriber().await;
    // The retry comes 6..30 s after a failure (full jitter, floor base/5),
    // leaving time to show that the old credential still works.
    let (_, config) = world.agent_config(
        "renew-lost",
        "udp:127.0.0.1:0",
        "[renewal]\nretry_base_secs = 30\nretry_max_secs = 30\n",
    );
    let agent = world.agent_now(&config).await;
    let to = agent.source_addr().unwrap();
    let firmware = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let seq = accepted(&send_udp(&firmware, to, b"before").await);
    let before = backend.until_all(&world, &[seq]).await;
    before[0]
        .token
        .check_certificate_binding(&first_leaf)
        .unwrap();
    until_status(&agent, "acknowledged", |s| s.spooled == 0 && s.acked == 1).await;

    // From now on the server's answers are held at the gate: the broker
    // gets the renewal request and issues a certificate, the agent never
    // sees it; then the connection drops.
    let registered = world.registry_certs().await.len();
    world.gate.set(Mode::HoldReplies);
    let lost = within_secs(60, "the broker issues a certificate", async {
        loop {
            let certs = world.registry_certs().await;
            if certs.len() > registered {
                return certs.last().unwrap().thumbprint.clone();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    world.gate.set(Mode::Closed);
    let failed = until_status(&agent, "the renewal fails", |s| {
        s.cert_renewal_failures >= 1
    })
    .await;
    assert_eq!(failed.cert_renewals, 0);
    assert_eq!(failed.cert_thumbprint, Some(thumbprint(&first_leaf)));

    // The device still has its working credential: the old pair on disk,
    // nothing staged.
    let (key_file, cert_file) = world.device_files();
    assert_eq!(read(&key_file), first_key);
    assert_eq!(read(&cert_file), first_chain);
    only_current_files(&world);
    // ...it reconnects with it and sends, with a token bound to it...
    world.gate.set(Mode::Open);
    until_status(&agent, "reconnected", |s| s.connected).await;
    let seq = accepted(&send_udp(&firmware, to, b"between").await);
    let between = backend.until_all(&world, &[seq]).await;
    let between = between.last().unwrap();
    assert_eq!(between.payload.data, b"between");
    assert_eq!(
        agent.status().borrow().cert_renewals,
        0,
        "the retry has not happened yet (the test needs it later)"
    );
    between
        .token
        .check_certificate_binding(&first_leaf)
        .unwrap();
    // ...and the files on disk get tokens.
    let from_disk = DeviceIdentity::load(&key_file, &cert_file).unwrap();
    token_over_coap(&world, &from_disk)
        .await
        .check_certificate_binding(&first_leaf)
        .unwrap();

    // Later, the retry renews (with yet another key).
    let done = within_secs(60, "the retried renewal", async {
        agent
            .status()
            .wait_for(|s| s.cert_renewals >= 1)
            .await
            .unwrap()
            .clone()
    })
    .await;
    let final_leaf = leaf(&read(&cert_file));
    assert_eq!(done.cert_thumbprint, Some(thumbprint(&final_leaf)));
    assert_ne!(
        thumbprint(&final_leaf),
        lost,
        "not the certificate whose answer was lost"
    );
    assert_ne!(public_key(&final_leaf), public_key(&first_leaf));
    only_current_files(&world);
    let seq = accepted(&send_udp(&firmware, to, b"after").await);
    let after = backend.until_all(&world, &[seq]).await;
    after
        .last()
        .unwrap()
        .token
        .check_certificate_binding(&final_leaf)
        .unwrap();
    agent.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_renews_a_certificate_that_expired_offline_over_coap() {
    // The device was off while its certificate expired: TLS refuses it now,
    // but the broker's grace window (7 days) still accepts a signed CoAP
    // request. (The certificate is issued now and expires in a minute: a
    // certificate that expired before the test's CA existed would not chain.)
    let world = World::new(3600).await;
    let (_, expired_chain) = world.short_lived_cert(SHORT, 0).await;
    let expired_leaf = leaf(&expired_chain);
    let not_after = certbound_pki::cert_summary(&expired_leaf)
        .unwrap()
        .not_after;
    while now() <= not_after + 1 {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut backend = world.subscriber().await;
    let coap = coap_addr(&world);
    let (_, config) = world.agent_config(
        "renew-coap",
        "udp:127.0.0.1:0",
        &format!(
            "[renewal]\ntransport = \"coap\"\ncoap_url = \"coap://{coap}\"\nretry_base_secs = 1\nretry_max_secs = 2\n"
        ),
    );
    let agent = world.agent_now(&config).await;
    let renewed = until_status(&agent, "renewed over CoAP", |s| s.cert_renewals >= 1).await;
    let (_, cert_file) = world.device_files();
    let new_leaf = leaf(&read(&cert_file));
    assert_eq!(renewed.cert_thumbprint, Some(thumbprint(&new_leaf)));
    assert_ne!(public_key(&new_leaf), public_key(&expired_leaf));
    only_current_files(&world);
    let to = agent.source_addr().unwrap();
    let firmware = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let seq = accepted(&send_udp(&firmware, to, b"back online").await);
    let got = backend.until_all(&world, &[seq]).await;
    got[0].token.check_certificate_binding(&new_leaf).unwrap();
    agent.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_pair_found_staged_at_start_is_tried_then_promoted() {
    // As after a crash between writing the new pair and using it.
    let world = World::new(3600).await;
    let (key_file, cert_file) = world.device_files();
    let old = DeviceIdentity::load(&key_file, &cert_file).unwrap();
    let renewed = renew_over_coap(&coap_client(&world).await, &old, ISSUER)
        .await
        .unwrap();
    CredentialFiles::new(&key_file, &cert_file)
        .stage(&renewed.key_pem, &renewed.chain_pem)
        .unwrap();
    let mut backend = world.subscriber().await;
    let (_, config) = world.agent_config("staged", "udp:127.0.0.1:0", "");
    let agent = world.agent_now(&config).await;
    let status = until_status(&agent, "the staged pair is promoted", |s| {
        s.cert_renewals == 1
    })
    .await;
    assert_eq!(
        status.cert_thumbprint,
        Some(hex(&renewed.identity.thumbprint()))
    );
    assert_eq!(read(&key_file), *renewed.key_pem);
    assert_eq!(read(&cert_file), renewed.chain_pem);
    only_current_files(&world);
    let to = agent.source_addr().unwrap();
    let firmware = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let seq = accepted(&send_udp(&firmware, to, b"promoted").await);
    let got = backend.until_all(&world, &[seq]).await;
    got[0]
        .token
        .check_certificate_binding(&renewed.identity.chain()[0])
        .unwrap();
    agent.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_over_coap_with_the_library_block_wise_both_ways() {
    let world = World::new(3600).await;
    let (key_file, cert_file) = world.device_files();
    let old = DeviceIdentity::load(&key_file, &cert_file).unwrap();
    // 64-byte blocks: the request (~600 bytes) goes up with Block1, the
    // answer (two certificates) comes down with Block2.
    let client = Client::connect(
        coap_addr(&world),
        ClientConfig {
            block_size: 64,
            ..ClientConfig::default()
        },
    )
    .await
    .unwrap();
    let renewed = renew_over_coap(&client, &old, ISSUER).await.unwrap();
    check_renewed(&world, &old, &renewed).await;
    // The library writes nothing.
    assert_eq!(
        DeviceIdentity::load(&key_file, &cert_file)
            .unwrap()
            .thumbprint(),
        old.thumbprint()
    );
    // The renewed identity renews again.
    let again = renew_over_coap(&client, &renewed.identity, ISSUER)
        .await
        .unwrap();
    assert_ne!(again.identity.thumbprint(), renewed.identity.thumbprint());
}

#[cfg(feature = "est")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_over_https_est_with_the_library() {
    let world = World::new(3600).await;
    let (key_file, cert_file) = world.device_files();
    let old = DeviceIdentity::load(&key_file, &cert_file).unwrap();
    let url = world
        .broker
        .as_ref()
        .and_then(|b| b.https_url())
        .expect("HTTPS listens")
        .to_string();
    let renewed = renew_over_est(&url, &world.ca_chain_pem(), &old)
        .await
        .unwrap();
    check_renewed(&world, &old, &renewed).await;
    // mTLS with the renewed certificate works for the next renewal.
    let again = renew_over_est(&url, &world.ca_chain_pem(), &renewed.identity)
        .await
        .unwrap();
    assert_ne!(again.identity.thumbprint(), renewed.identity.thumbprint());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_renewals_change_nothing() {
    let world = World::new(3600).await;
    let (key_file, cert_file) = world.device_files();
    let (key_before, cert_before) = (read(&key_file), read(&cert_file));
    let old = DeviceIdentity::load(&key_file, &cert_file).unwrap();
    let client = coap_client(&world).await;
    let registered = world.registry_certs().await.len();

    // A CSR for the CURRENT key (a device that did not make a new one).
    let same_key =
        NewKey::from_pkcs8_pem(DEVICE, zeroize::Zeroizing::new(read(&key_file))).unwrap();
    let nonce: [u8; 16] = rand::random();
    let request = build_reenroll_request(
        &old,
        ISSUER,
        same_key.csr_der(),
        &CertRef::X5t(old.thumbprint()),
        now(),
        nonce,
    )
    .unwrap();
    let r = client
        .post(".well-known/est/sren", content_format::COSE_SIGN1, request)
        .await
        .unwrap();
    let e = decode_coap_answer(r.code, r.content_format, &r.payload, r.max_age).unwrap_err();
    assert!(matches!(e, AgentError::RenewalRefused(_)), "{e}");
    assert_eq!(world.registry_certs().await.len(), registered);
    assert_eq!(
        (read(&key_file), read(&cert_file)),
        (key_before, cert_before)
    );

    // A daemon whose device gets revoked: renewal (due at once: the
    // certificate is past 2/3 of its life) is refused, the files stay.
    let (short_key, short_chain) = world.short_lived_cert(SHORT, 50).await;
    let registered = world.registry_certs().await.len();
    let reg = Registry::open(&world.dir).await.unwrap();
    reg.set_device_status(DEVICE, DeviceStatus::Revoked, "stolen")
        .await
        .unwrap();
    reg.close().await;
    let coap = coap_addr(&world);
    let (_, config) = world.agent_config(
        "revoked",
        "udp:127.0.0.1:0",
        &format!(
            "[renewal]\ntransport = \"coap\"\ncoap_url = \"coap://{coap}\"\nretry_base_secs = 1\nretry_max_secs = 1\n"
        ),
    );
    let agent = world.agent_now(&config).await;
    let status = until_status(&agent, "refused twice", |s| s.cert_renewal_failures >= 2).await;
    assert_eq!(status.cert_renewals, 0);
    assert_eq!(read(&key_file), short_key);
    assert_eq!(read(&cert_file), short_chain);
    only_current_files(&world);
    assert_eq!(
        world.registry_certs().await.len(),
        registered,
        "nothing issued"
    );
    agent.shutdown().await.unwrap();

    // The library says why, over CoAP and EST.
    let revoked = DeviceIdentity::from_pem(&short_key, &short_chain).unwrap();
    match renew_over_coap(&client, &revoked, ISSUER).await {
        Err(AgentError::RenewalRefused(e)) => {
            assert_eq!(e.code, AceErrorCode::InvalidClient, "{e}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let url = world
        .broker
        .as_ref()
        .and_then(|b| b.https_url())
        .unwrap()
        .to_string();
    let est = renew_over_est(&url, &world.ca_chain_pem(), &old).await;
    assert!(est.is_err(), "{est:?}");
    assert_eq!(
        world.registry_certs().await.len(),
        registered,
        "nothing issued"
    );
    assert_eq!(read(&key_file), short_key);
}
