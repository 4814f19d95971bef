//! Per-device and per-client token-bucket rate limits: HTTP 429 with
//! Retry-After, CoAP 4.29 with Max-Age, MQTT error response; audited.

use anyhow::Context as _;
use certbound_coap::ResponseType;
use certbound_e2e::https::HttpsClient;
use certbound_e2e::{API, Fixture, GRANTED_SCOPE};
use certbound_proto::ace::{AceErrorCode, AceResponse};
use certbound_proto::cbor::Limits;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_over_their_rate_get_429_with_retry_after() -> anyhow::Result<()> {
    let fx = Fixture::with_config(&[
        ("client_per_sec = 10.0", "client_per_sec = 0.01"),
        ("client_burst = 50", "client_burst = 3"),
    ])
    .await?;
    let https = HttpsClient::new(&fx.https_url(), fx.path(), None)?;
    let c = fx
        .registry
        .create_client("chatty", &[(API.into(), GRANTED_SCOPE.into())], None, true)
        .await?;
    let secret = c.client_secret.context("secret")?;
    let other = fx
        .registry
        .create_client("quiet", &[(API.into(), GRANTED_SCOPE.into())], None, true)
        .await?;
    for _ in 0..3 {
        https
            .token_with_secret(&c.client_id, &secret, API, None)
            .await?;
    }
    let form = [("grant_type", "client_credentials"), ("audience", API)];
    let a = https
        .form("/oauth/token", &form, Some((&c.client_id, &secret)))
        .await?;
    a.expect_error(429, "too_many_requests")?;
    let retry: u64 = a
        .raw
        .header("retry-after")
        .context("Retry-After")?
        .parse()?;
    assert!(retry >= 1, "Retry-After {retry}");
    // Other clients are not affected.
    https
        .token_with_secret(
            &other.client_id,
            other.client_secret.as_deref().unwrap_or_default(),
            API,
            None,
        )
        .await?;
    // Audited.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !fx
        .registry
        .store
        .recent_audit(Some(&c.client_id), 20)
        .await?
        .iter()
        .any(|e| e.outcome == "too_many_requests")
    {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "rate limit refusal not audited"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    fx.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_over_their_rate_get_coap_4_29_and_an_https_429() -> anyhow::Result<()> {
    let fx = Fixture::with_config(&[
        ("device_per_sec = 0", "device_per_sec = 0.01"),
        ("device_burst = 10", "device_burst = 2"),
    ])
    .await?;
    let device = fx.device("sensor-chatty").await?;
    let calm = fx.device("sensor-calm").await?;
    for _ in 0..2 {
        fx.obtain(&device, &fx.params(Some(GRANTED_SCOPE))).await?;
    }
    let answer = fx
        .post_token(fx.agent_request(&device, &fx.params(Some(GRANTED_SCOPE)))?)
        .await?;
    assert_eq!(answer.code, ResponseType::TooManyRequests, "{answer}");
    // One refusal type: the 4.29 carries the ACE error body with the typed
    // retry hint (-65538), the same one Max-Age states.
    let coap_hint = answer
        .error()?
        .retry_after
        .context("4.29 without retry_after in its ACE body")?;
    assert!(coap_hint >= 1, "retry_after {coap_hint}");
    // HTTPS: 429 with Retry-After for the same device, and the same body.
    let https = HttpsClient::new(&fx.https_url(), fx.path(), None)?;
    let body = fx.agent_request(&device, &fx.params(Some(GRANTED_SCOPE)))?;
    let a = https
        .send(http::Method::POST, "/ace/token", &[], body)
        .await?;
    assert_eq!(a.status, 429);
    let header: u64 = a
        .raw
        .header("retry-after")
        .context("429 without Retry-After")?
        .parse()?;
    match AceResponse::from_cbor(&a.raw.body, Limits::default())? {
        AceResponse::Error(e) => {
            assert_eq!(e.retry_after, Some(header), "body and header disagree");
            assert_eq!(e.code, AceErrorCode::InvalidRequest);
        }
        other => anyhow::bail!("429 with {other:?}"),
    }
    // Another device still gets tokens.
    fx.assert_serves(&calm).await?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !fx
        .registry
        .store
        .recent_audit(Some("sensor-chatty"), 20)
        .await?
        .iter()
        .any(|e| e.outcome == "rate_limited")
    {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "rate limit refusal not audited"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    fx.shutdown().await;
    Ok(())
}
