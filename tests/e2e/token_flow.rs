//! The happy path: provision, request over CoAP, verify offline.

use anyhow::Context as _;
use std::time::Duration;

use certbound_coap::{ResponseType, content_format};
use certbound_e2e::{API, API_SCOPES, Fixture, GRANTED_SCOPE, ISSUER, nonce, unix_now};
use certbound_proto::ace::AceResponse;
use certbound_proto::cbor::Limits;
use certbound_proto::cbor::{self, int, uint};
use certbound_proto::cose::{self, HEADER_X5CHAIN, ProtectedParams};
use certbound_verify::VerifyError;
use ciborium::Value;
use coap_lite::{CoapOption, ContentFormat, MessageClass, MessageType, Packet, RequestType};
use tokio::net::UdpSocket;

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
    // The design target (< 300 B) is for the token without its status-list
    // reference; the reference (claim 65535, ~67 B with a loopback URI) is
    // what offline revocation costs (docs/protocol.md).
    let claims =
        certbound_proto::token::UnverifiedToken::parse(&token.access_token, Default::default())?
            .unverified_claims(Default::default())?;
    let status = claims
        .status
        .clone()
        .context("tokens carry a status-list reference")?;
    let status_len = certbound_proto::cbor::encode(&status.to_claim_value()).len() + 3;
    println!("  of which status-list reference: {status_len} bytes");
    assert!(
        token.access_token.len() - status_len < 300,
        "token is {} bytes ({} without the status reference), the design target is < 300",
        token.access_token.len(),
        token.access_token.len() - status_len
    );
    assert_eq!(token.expires_in, 3600);
    assert_eq!(token.scope, None, "scope is sent only when it differs");

    let now = unix_now();
    let verified = fx
        .verifier
        .verify(&token.access_token, &[GRANTED_SCOPE], now)?;
    assert_eq!(verified.device_id(), Some("sensor-1"));
    // No iss: the broker's key, in the verifier's key set, names the issuer.
    assert_eq!(verified.claims.iss, None);
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
    let request_len = request.len();
    let answer = fx.post_token(request).await?;
    let token = answer.token()?;
    println!(
        "x5chain request of {} bytes (Block1 above 1024) → token of {} bytes",
        request_len,
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

/// DESIGN.md: "Plain third-party clients that send only the fields here must
/// work": no `typ`, no `grant_type`, the leaf alone as an x5chain byte
/// string, and `aud` as a one-element array.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minimal_third_party_request() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let device = fx.device("sensor-1").await?;
    let now = unix_now();
    let payload = Value::Map(vec![
        (int(1), Value::Text("sensor-1".into())),
        (int(3), Value::Array(vec![Value::Text(ISSUER.into())])),
        (int(4), uint(now + 60)),
        (int(5), Value::Text(API.into())),
        (int(6), uint(now)),
        (int(7), Value::Bytes(nonce().to_vec())),
    ]);
    let params = ProtectedParams {
        kid: None,
        typ: None,
        extra: vec![(HEADER_X5CHAIN, Value::Bytes(device.leaf_der().to_vec()))],
    };
    let body = cose::sign1(params, cbor::encode(&payload), device.identity.signer())?;
    let answer = fx.post_token(body).await?;
    let token = answer.token()?;
    assert_eq!(token.scope.as_deref(), Some(GRANTED_SCOPE));
    let verified = fx
        .verifier
        .verify(&token.access_token, &[GRANTED_SCOPE], unix_now())?;
    verified.check_certificate_binding(device.leaf_der())?;
    fx.shutdown().await;
    Ok(())
}

/// CoAP deduplication end to end: a retransmitted CON request (same message
/// id, e.g. after a lost ACK) gets the same answer again, not a replay error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retransmitted_request_gets_the_same_answer() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let device = fx.device("sensor-1").await?;
    let body = fx.agent_request(&device, &fx.params(Some(GRANTED_SCOPE)))?;

    let mut packet = Packet::new();
    packet.header.set_type(MessageType::Confirmable);
    packet.header.code = MessageClass::Request(RequestType::Post);
    packet.header.message_id = 0x4242;
    packet.set_token(vec![1, 2, 3, 4]);
    packet.add_option(CoapOption::UriPath, b"token".to_vec());
    packet.set_content_format(ContentFormat::ApplicationCoseSign1);
    packet.payload = body;
    let datagram = packet
        .to_bytes()
        .map_err(|e| anyhow::anyhow!("encoding: {e:?}"))?;

    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    let mut answers = Vec::new();
    for _ in 0..2 {
        socket.send_to(&datagram, fx.coap_addr).await?;
        let mut buf = vec![0u8; 2048];
        let (n, _) =
            tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buf)).await??;
        let reply = Packet::from_bytes(&buf[..n])
            .map_err(|e| anyhow::anyhow!("decoding the reply: {e:?}"))?;
        assert_eq!(reply.header.get_type(), MessageType::Acknowledgement);
        assert_eq!(reply.header.message_id, 0x4242);
        assert_eq!(reply.get_token(), &[1, 2, 3, 4]);
        assert_eq!(
            reply.header.code,
            MessageClass::Response(ResponseType::Created),
            "{:?}",
            String::from_utf8_lossy(&reply.payload)
        );
        answers.push(reply.payload);
    }
    assert_eq!(answers[0], answers[1], "the cached response is sent again");
    let AceResponse::Token(token) = AceResponse::from_cbor(&answers[0], Limits::default())? else {
        anyhow::bail!("not a token response");
    };
    fx.verifier
        .verify(&token.access_token, &[GRANTED_SCOPE], unix_now())?
        .check_certificate_binding(device.leaf_der())?;
    fx.shutdown().await;
    Ok(())
}
