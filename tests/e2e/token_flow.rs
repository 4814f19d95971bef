//! The happy path: provision, request over CoAP, verify offline.

use certbound_coap::{ResponseType, content_format};
use certbound_e2e::{API, API_SCOPES, Fixture, GRANTED_SCOPE, ISSUER, unix_now};
use certbound_verify::VerifyError;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_gets_a_bound_token_that_verifies() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let sensor1 = fx.device("sensor-1").await?;
    let sensor2 = fx.device("sensor-2").await?;

    let token = fx.obtain(&sensor1, &fx.params(Some(GRANTED_SCOPE))).await?;
    println!(
        "quick-start token (sensor-1, {GRANTED_SCOPE}): {} bytes",
        token.access_token.len()
    );
    assert!(
        token.access_token.len() < 300,
        "token is {} bytes, the design target is < 300",
        token.access_token.len()
    );
    assert_eq!(token.expires_in, 3600);
    assert_eq!(token.scope, None, "scope is sent only when it differs");

    let now = unix_now();
    let verified = fx
        .verifier
        .verify(&token.access_token, &[GRANTED_SCOPE], now)?;
    assert_eq!(verified.device_id(), Some("sensor-1"));
    assert_eq!(verified.claims.iss.as_deref(), Some(ISSUER));
    assert_eq!(verified.claims.aud, vec![API.to_string()]);
    assert_eq!(verified.claims.scope.as_deref(), Some(GRANTED_SCOPE));
    assert!(verified.has_scope(GRANTED_SCOPE));
    assert_eq!(verified.claims.cti.as_ref().map(Vec::len), Some(16));
    let iat = verified.claims.iat.unwrap_or_default();
    assert!(iat.abs_diff(now) <= 5, "iat {iat} is not now ({now})");
    assert_eq!(verified.claims.exp, Some(iat + 3600));

    // Bound to sensor-1's certificate, and to no other.
    verified.check_certificate_binding(sensor1.leaf_der())?;
    assert_eq!(
        verified.check_certificate_binding(sensor2.leaf_der()),
        Err(VerifyError::BindingMismatch)
    );
    fx.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x5chain_form_works() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let device = fx.device("gateway-7").await?;
    let mut params = fx.params(Some(GRANTED_SCOPE));
    params.send_chain = true;
    let request = fx.agent_request(&device, &params)?;
    assert!(
        request.len() > 500,
        "an x5chain request carries the certificates"
    );
    let answer = fx.post_token(request).await?;
    let token = answer.token()?;
    println!(
        "x5chain request → token of {} bytes",
        token.access_token.len()
    );
    let verified = fx
        .verifier
        .verify(&token.access_token, &[GRANTED_SCOPE], unix_now())?;
    assert_eq!(verified.device_id(), Some("gateway-7"));
    verified.check_certificate_binding(device.leaf_der())?;
    fx.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_privilege_scopes() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let device = fx.device("sensor-1").await?;

    // Asking for more than granted yields the intersection, and says so.
    let token = fx.obtain(&device, &fx.params(Some(API_SCOPES))).await?;
    assert_eq!(token.scope.as_deref(), Some(GRANTED_SCOPE));
    let verified = fx
        .verifier
        .verify(&token.access_token, &[GRANTED_SCOPE], unix_now())?;
    assert_eq!(verified.claims.scope.as_deref(), Some(GRANTED_SCOPE));
    assert!(!verified.has_scope("firmware:read"));

    // Asking for nothing yields the grant's scopes.
    let token = fx.obtain(&device, &fx.params(None)).await?;
    assert_eq!(token.scope.as_deref(), Some(GRANTED_SCOPE));
    let verified = fx
        .verifier
        .verify(&token.access_token, &[GRANTED_SCOPE], unix_now())?;
    assert_eq!(verified.claims.scope.as_deref(), Some(GRANTED_SCOPE));
    fx.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn well_known_core_lists_the_token_endpoint() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let response = fx.client.get(".well-known/core").await?;
    assert_eq!(response.code, ResponseType::Content);
    assert_eq!(response.content_format, Some(content_format::LINK_FORMAT));
    let links = String::from_utf8(response.payload)?;
    assert!(links.contains("</token>"), "{links}");
    fx.shutdown().await;
    Ok(())
}
