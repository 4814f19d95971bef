//! Operator changes made through a separate registry connection (as the CLI
//! makes them, while `certbound serve` runs) take effect on the running
//! broker within the bound: the broker decides from its in-memory registry
//! and reads the store's change feed every 100 ms (the broker's own changes,
//! through its admin API, count at once: `instances.rs`). Each test prints
//! the measured delay.

use std::time::{Duration, Instant};

use anyhow::ensure;
use certbound_agent::{DeviceIdentity, build_token_request};
use certbound_broker::store::DeviceStatus;
use certbound_coap::{Client, ResponseType, content_format};
use certbound_e2e::{
    Fixture, GRANTED_SCOPE, GROUP, loopback_client_config, nonce, provision, unix_now,
};
use certbound_proto::ace::{AceErrorCode, AceResponse};
use certbound_proto::cbor::Limits;
use certbound_registry::registry::Registry;

/// The bound on how fast a revocation must take effect.
const REVOCATION_BOUND: Duration = Duration::from_secs(1);

/// Asks until `done` holds for the answer; returns how long that took.
/// Fails after [`REVOCATION_BOUND`].
async fn within_bound<F, Fut>(what: &str, mut attempt: F) -> anyhow::Result<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let since = Instant::now();
    loop {
        if attempt().await? {
            let took = since.elapsed();
            println!("{what}: {:.1} ms", took.as_secs_f64() * 1000.0);
            return Ok(took);
        }
        ensure!(
            since.elapsed() < REVOCATION_BOUND,
            "{what}: not within {REVOCATION_BOUND:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_provisioned_by_another_connection_is_served_at_once() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let cli = Registry::open(fx.path()).await?;
    let device = provision(&cli, "sensor-new", &[GROUP.into()], &fx.devices_dir()).await?;
    let t0 = Instant::now();
    let token = fx.obtain(&device, &fx.params(Some(GRANTED_SCOPE))).await?;
    println!(
        "new device served {:.1} ms after provisioning returned",
        t0.elapsed().as_secs_f64() * 1000.0
    );
    let verified = fx
        .verifier
        .verify(&token.access_token, &[GRANTED_SCOPE], unix_now())?;
    verified.check_certificate_binding(device.leaf_der())?;
    assert_eq!(verified.device_id(), Some("sensor-new"));
    cli.close().await;
    fx.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_by_another_connection_takes_effect_within_the_bound() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let device = fx.device("sensor-1").await?;
    let other = fx.device("sensor-2").await?;
    fx.assert_serves(&device).await?;

    let cli = Registry::open(fx.path()).await?;
    cli.set_device_status("sensor-1", DeviceStatus::Revoked, "lost")
        .await?;
    within_bound("revocation by the CLI enforced after", || async {
        let answer = fx
            .post_token(fx.agent_request(&device, &fx.params(Some(GRANTED_SCOPE)))?)
            .await?;
        if answer.token().is_ok() {
            return Ok(false);
        }
        let description =
            answer.expect_refused(AceErrorCode::InvalidClient, ResponseType::Unauthorized)?;
        ensure!(description.contains("revoked"), "{description}");
        Ok(true)
    })
    .await?;
    // Other devices are unaffected.
    fx.assert_serves(&other).await?;
    cli.close().await;
    fx.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspension_by_another_connection_takes_effect_within_the_bound() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let device = fx.device("sensor-1").await?;
    let cli = Registry::open(fx.path()).await?;
    cli.set_device_status("sensor-1", DeviceStatus::Suspended, "audit")
        .await?;
    within_bound("suspension by the CLI enforced after", || async {
        let answer = fx
            .post_token(fx.agent_request(&device, &fx.params(Some(GRANTED_SCOPE)))?)
            .await?;
        if answer.token().is_ok() {
            return Ok(false);
        }
        answer.expect_refused(AceErrorCode::UnauthorizedClient, ResponseType::Forbidden)?;
        Ok(true)
    })
    .await?;
    cli.set_device_status("sensor-1", DeviceStatus::Active, "cleared")
        .await?;
    within_bound("resumption by the CLI served after", || async {
        Ok(fx.assert_serves(&device).await.is_ok())
    })
    .await?;
    cli.close().await;
    fx.shutdown().await;
    Ok(())
}

/// One request of the background load: when it was sent and whether it got a token.
struct Sample {
    sent: Instant,
    answered: Instant,
    issued: bool,
}

/// A device requests tokens back to back while the operator revokes it
/// through the CLI: the first refusal comes within the bound, and from then
/// on every request is refused (no request sent later than the bound after
/// the revoke returned gets a token, and none after the first refusal).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_for_requests_sent_after_revocation_under_load() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let device = fx.device("sensor-1").await?;
    let (key_file, cert_file) = (device.key_file.clone(), device.cert_file.clone());
    let params = fx.params(Some(GRANTED_SCOPE));
    let addr = fx.coap_addr;
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();

    let load = tokio::spawn(async move {
        let identity = DeviceIdentity::load(&key_file, &cert_file)?;
        let client = Client::connect(addr, loopback_client_config()).await?;
        let mut samples: Vec<Sample> = Vec::new();
        let mut ready = Some(ready_tx);
        // After the stop signal (which follows the revocation), runs until
        // 3 requests were sent after the first refusal, or a cap.
        let mut refused_after_stop = 0;
        let mut stopped_at: Option<Instant> = None;
        while samples.len() < 20_000
            && refused_after_stop < 4
            && stopped_at.is_none_or(|t| t.elapsed() < 3 * REVOCATION_BOUND)
        {
            if stopped_at.is_none() && *stop_rx.borrow_and_update() {
                stopped_at = Some(Instant::now());
            }
            if stopped_at.is_some() && samples.last().is_some_and(|s: &Sample| !s.issued) {
                refused_after_stop += 1;
            }
            let body = build_token_request(&identity, &params, unix_now(), nonce())?;
            let sent = Instant::now();
            let response = client
                .post("token", content_format::COSE_SIGN1, body)
                .await?;
            let answered = Instant::now();
            let issued = response.code == ResponseType::Created
                && matches!(
                    AceResponse::from_cbor(&response.payload, Limits::default())?,
                    AceResponse::Token(_)
                );
            samples.push(Sample {
                sent,
                answered,
                issued,
            });
            if samples.iter().filter(|s| s.issued).count() >= 3
                && let Some(ready) = ready.take()
            {
                let _ = ready.send(());
            }
        }
        anyhow::Ok(samples)
    });

    // Revoke once the load has had a few tokens.
    let cli = Registry::open(fx.path()).await?;
    tokio::time::timeout(Duration::from_secs(5), ready_rx).await??;
    cli.set_device_status("sensor-1", DeviceStatus::Revoked, "stolen")
        .await?;
    let revoked_at = Instant::now();
    stop_tx.send(true)?;
    let samples = load.await??;

    let before = samples.iter().filter(|s| s.sent < revoked_at).count();
    let after: Vec<&Sample> = samples.iter().filter(|s| s.sent >= revoked_at).collect();
    ensure!(after.len() >= 3, "the load stopped before the revocation");
    ensure!(
        samples.iter().any(|s| s.issued),
        "the load never got a token"
    );
    let first_refused = samples
        .iter()
        .position(|s| !s.issued)
        .ok_or_else(|| anyhow::anyhow!("no request was refused"))?;
    ensure!(
        samples[first_refused..].iter().all(|s| !s.issued),
        "a token was issued after the first refusal"
    );
    ensure!(
        after
            .iter()
            .all(|s| !s.issued || s.sent < revoked_at + REVOCATION_BOUND),
        "a request sent more than {REVOCATION_BOUND:?} after the revocation got a token"
    );
    // Signed: a refusal may even be answered before the revoke call returns
    // (the status commit precedes the audit write, and a poll may fall
    // between them).
    let first_refusal_ms = samples.iter().find(|s| !s.issued).map(|s| {
        if s.answered >= revoked_at {
            (s.answered - revoked_at).as_secs_f64() * 1000.0
        } else {
            -(revoked_at - s.answered).as_secs_f64() * 1000.0
        }
    });
    println!(
        "under load: {before} requests sent before the revocation, {} after ({} of them \
         served before the change feed was read); first refusal answered {:+.1} ms relative \
         to the revoke returning",
        after.len(),
        after.iter().filter(|s| s.issued).count(),
        first_refusal_ms.unwrap_or(f64::NAN),
    );
    ensure!(first_refusal_ms.is_some_and(|ms| ms < REVOCATION_BOUND.as_secs_f64() * 1000.0));
    cli.close().await;
    fx.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grant_and_ttl_changes_by_another_connection_take_effect_within_the_bound()
-> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let device = fx.device("sensor-1").await?;
    fx.assert_serves(&device).await?;
    let cli = Registry::open(fx.path()).await?;

    // `certbound api set-ttl`: tokens get the new lifetime.
    cli.set_api_ttl(certbound_e2e::API, 600).await?;
    within_bound("new token lifetime after", || async {
        let token = fx.obtain(&device, &fx.params(Some(GRANTED_SCOPE))).await?;
        Ok(token.expires_in == 600)
    })
    .await?;

    // `certbound group grant`: the replaced scope is refused, the new one served.
    cli.set_grant(GROUP, certbound_e2e::API, "firmware:read")
        .await?;
    within_bound("replaced scope refused after", || async {
        let answer = fx
            .post_token(fx.agent_request(&device, &fx.params(Some(GRANTED_SCOPE)))?)
            .await?;
        if answer.token().is_ok() {
            return Ok(false);
        }
        answer.expect_refused(AceErrorCode::InvalidScope, ResponseType::BadRequest)?;
        Ok(true)
    })
    .await?;
    fx.obtain(&device, &fx.params(Some("firmware:read")))
        .await?;

    // `certbound group revoke-grant`, then `group delete --force`: nothing is served.
    cli.remove_grant(GROUP, certbound_e2e::API).await?;
    within_bound("revoke-grant enforced after", || async {
        let answer = fx
            .post_token(fx.agent_request(&device, &fx.params(Some("firmware:read")))?)
            .await?;
        Ok(answer.error().is_ok())
    })
    .await?;
    cli.delete_group(GROUP, true).await?;
    within_bound("group delete enforced after", || async {
        let answer = fx
            .post_token(fx.agent_request(&device, &fx.params(Some("firmware:read")))?)
            .await?;
        Ok(answer.error().is_ok())
    })
    .await?;
    cli.close().await;
    fx.shutdown().await;
    Ok(())
}
