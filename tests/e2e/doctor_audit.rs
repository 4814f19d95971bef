//! `certbound doctor`'s audit-trail checks against a running broker: real
//! CoAP token requests from two source addresses (Linux loopback accepts
//! any 127.x source) and from revoked / suspended devices, then
//! `doctor::run` on the data directory.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use certbound_broker::store::{AuditEvent, DeviceStatus};
use certbound_coap::{Client, ResponseType, content_format};
use certbound_e2e::{Fixture, TestDevice, loopback_client_config, unix_now};
use certbound_proto::ace::AceErrorCode;
use certbound_registry::doctor::{self, DoctorOptions, Finding, Severity};
use certbound_registry::registry::Registry;

/// A CoAP client whose requests come from 127.0.0.2.
async fn second_address(fx: &Fixture) -> anyhow::Result<Client> {
    let local: SocketAddr = "127.0.0.2:0".parse()?;
    Ok(Client::connect_from(local, fx.coap_addr, loopback_client_config()).await?)
}

/// One agent-built token request for `device` through `client`; the CoAP code.
async fn request(
    fx: &Fixture,
    client: &Client,
    device: &TestDevice,
) -> anyhow::Result<ResponseType> {
    let body = fx.agent_request(device, &fx.params(None))?;
    let response = client
        .post("token", content_format::COSE_SIGN1, body)
        .await?;
    Ok(response.code)
}

/// Waits until the broker's audit writer has stored `n` token events.
async fn token_events(reg: &Registry, n: usize) -> anyhow::Result<Vec<AuditEvent>> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let events: Vec<AuditEvent> = reg
            .store
            .recent_audit(None, 10_000)
            .await?
            .into_iter()
            .filter(|e| e.action.starts_with("token."))
            .collect();
        if events.len() >= n {
            return Ok(events);
        }
        ensure!(
            Instant::now() < deadline,
            "only {} of {n} token events audited: {events:#?}",
            events.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn of<'a>(all: &'a [Finding], check: &str) -> Vec<&'a Finding> {
    all.iter().filter(|f| f.check == check).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_certificate_used_from_two_addresses_is_reported_as_cloned() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let twin = fx.device("twin-1").await?;
    let mover = fx.device("mover-1").await?;
    let other = second_address(&fx).await?;

    // The same credentials from 127.0.0.1, 127.0.0.2, 127.0.0.1: two copies at once.
    ensure!(request(&fx, &fx.client, &twin).await? == ResponseType::Created);
    ensure!(request(&fx, &other, &twin).await? == ResponseType::Created);
    ensure!(request(&fx, &fx.client, &twin).await? == ResponseType::Created);
    // Moved once (A, A, B, B): not a clone.
    ensure!(request(&fx, &fx.client, &mover).await? == ResponseType::Created);
    ensure!(request(&fx, &fx.client, &mover).await? == ResponseType::Created);
    ensure!(request(&fx, &other, &mover).await? == ResponseType::Created);
    ensure!(request(&fx, &other, &mover).await? == ResponseType::Created);

    let events = token_events(&fx.registry, 7).await?;
    let from_b = events
        .iter()
        .find(|e| e.subject == "twin-1" && e.detail.contains("peer=127.0.0.2"))
        .context("the audit detail names the peer address")?;
    ensure!(
        from_b
            .detail
            .starts_with("transport=coap peer=127.0.0.2 x5t="),
        "detail: {}",
        from_b.detail
    );

    let all = doctor::run(&fx.registry, &DoctorOptions::default(), unix_now()).await?;
    let cloned = of(&all, doctor::CHECK_CLONED);
    assert_eq!(cloned.len(), 1, "only twin-1: {cloned:#?}");
    let f = cloned[0];
    assert_eq!(f.severity, Severity::Error);
    assert!(f.message.contains("device twin-1"), "{}", f.message);
    assert!(
        f.message.contains("127.0.0.1") && f.message.contains("127.0.0.2"),
        "{}",
        f.message
    );
    assert!(
        f.fix.contains("certbound device revoke --dir") && f.fix.ends_with("addresses above)"),
        "{}",
        f.fix
    );
    assert!(f.fix.contains(" twin-1,"), "{}", f.fix);
    assert_eq!(doctor::exit_code(&all), 2);
    fx.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_and_suspended_devices_still_sending_are_reported() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let gone = fx.device("gone-1").await?;
    let paused = fx.device("paused-1").await?;
    let quiet = fx.device("quiet-1").await?;

    // quiet-1: served, then revoked, and never heard from again.
    ensure!(request(&fx, &fx.client, &quiet).await? == ResponseType::Created);
    fx.registry
        .set_device_status("quiet-1", DeviceStatus::Revoked, "decommissioned")
        .await?;
    // gone-1: revoked, still asking (certificate revoked: refused).
    fx.registry
        .set_device_status("gone-1", DeviceStatus::Revoked, "stolen")
        .await?;
    let refused = fx
        .post_token(fx.agent_request(&gone, &fx.params(None))?)
        .await?;
    refused.expect_refused(AceErrorCode::InvalidClient, ResponseType::Unauthorized)?;
    // paused-1: suspended, still asking (refused as unauthorized_client).
    fx.registry
        .set_device_status("paused-1", DeviceStatus::Suspended, "maintenance")
        .await?;
    let refused = fx
        .post_token(fx.agent_request(&paused, &fx.params(None))?)
        .await?;
    refused.expect_refused(AceErrorCode::UnauthorizedClient, ResponseType::Forbidden)?;

    token_events(&fx.registry, 3).await?;
    let all = doctor::run(&fx.registry, &DoctorOptions::default(), unix_now()).await?;
    let found = of(&all, doctor::CHECK_REVOKED_CONNECTED);
    assert_eq!(found.len(), 2, "gone-1 and paused-1 only: {found:#?}");
    let gone_f = found
        .iter()
        .find(|f| f.message.starts_with("device gone-1 was revoked"))
        .context("gone-1 reported")?;
    assert_eq!(gone_f.severity, Severity::Warning);
    assert!(
        gone_f.message.contains("over coap from 127.0.0.1") && gone_f.message.contains("last seen"),
        "{}",
        gone_f.message
    );
    assert!(gone_f.fix.contains("certbound crl --dir"), "{}", gone_f.fix);
    assert!(
        found
            .iter()
            .any(|f| f.message.starts_with("device paused-1 was suspended")),
        "{found:#?}"
    );
    assert!(!found.iter().any(|f| f.message.contains("quiet-1")));
    fx.shutdown().await;
    Ok(())
}
