//! Refusals: every bad request gets the right ACE error (RFC 9200 Table 3)
//! on the right CoAP code (invalid_client 4.01, unauthorized_client 4.03,
//! everything else 4.00), and the broker keeps serving good requests after
//! each one.

use anyhow::ensure;
use certbound_broker::store::{CertRecord, DeviceStatus};
use certbound_coap::{ResponseType, content_format};
use certbound_e2e::{
    API, Fixture, GRANTED_SCOPE, ISSUER, TestDevice, provision, unix_now, verifier_for,
};
use certbound_pki::{IssuingCa, PkiError, TrustStore};
use certbound_proto::ace::AceErrorCode;
use certbound_proto::cbor::{self, int, uint};
use certbound_proto::cose::{self, HEADER_X5T, ProtectedParams};
use certbound_proto::crypto::P256Signer;
use certbound_proto::request::{HASH_SHA256, TYP_DEVICE_REQUEST};
use certbound_registry::config::DataDir;
use certbound_registry::registry::{self, Registry};
use ciborium::Value;
use rand::{Rng, SeedableRng};

const INVALID_REQUEST: AceErrorCode = AceErrorCode::InvalidRequest;
const INVALID_CLIENT: AceErrorCode = AceErrorCode::InvalidClient;
const BAD_REQUEST: ResponseType = ResponseType::BadRequest;
const UNAUTHORIZED: ResponseType = ResponseType::Unauthorized;

/// A fixture with one good device, checked to be served before the test.
async fn setup() -> anyhow::Result<(Fixture, TestDevice)> {
    let fx = Fixture::new().await?;
    let good = fx.device("sensor-good").await?;
    fx.assert_serves(&good).await?;
    Ok((fx, good))
}

/// Sends `body`, requires the refusal `code` on `coap`, then requires that
/// `good` is still served. Returns the error description.
async fn refused(
    fx: &Fixture,
    good: &TestDevice,
    case: &str,
    body: Vec<u8>,
    code: AceErrorCode,
    coap: ResponseType,
) -> anyhow::Result<String> {
    let answer = fx.post_token(body).await?;
    println!("{case}: {answer}");
    let description = answer.expect_refused(code, coap)?;
    fx.assert_serves(good).await?;
    Ok(description)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_signature() -> anyhow::Result<()> {
    let (fx, good) = setup().await?;
    let device = fx.device("sensor-1").await?;
    let mut body = fx.agent_request(&device, &fx.params(Some(GRANTED_SCOPE)))?;
    // The signature is the last 64 bytes of the COSE_Sign1.
    let last = body.len() - 1;
    body[last] ^= 0x01;
    let d = refused(
        &fx,
        &good,
        "bad signature",
        body,
        INVALID_CLIENT,
        UNAUTHORIZED,
    )
    .await?;
    ensure!(d.contains("signature"), "{d}");
    fx.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signature_by_another_key_than_the_certificate() -> anyhow::Result<()> {
    let (fx, good) = setup().await?;
    let device = fx.device("sensor-1").await?;
    let intruder = P256Signer::from_scalar(&[0x5a; 32])?;
    let body = fx.sign(&fx.token_request(&device), &device.x5t(), &intruder)?;
    refused(
        &fx,
        &good,
        "foreign key, x5t",
        body,
        INVALID_CLIENT,
        UNAUTHORIZED,
    )
    .await?;
    let body = fx.sign(&fx.token_request(&device), &device.x5chain(), &intruder)?;
    refused(
        &fx,
        &good,
        "foreign key, x5chain",
        body,
        INVALID_CLIENT,
        UNAUTHORIZED,
    )
    .await?;
    fx.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iss_not_matching_the_certificate() -> anyhow::Result<()> {
    let (fx, good) = setup().await?;
    let device = fx.device("sensor-1").await?;
    fx.device("sensor-2").await?;
    let mut request = fx.token_request(&device);
    request.iss = "sensor-2".into();
    let body = fx.sign(&request, &device.x5t(), device.identity.signer())?;
    let d = refused(
        &fx,
        &good,
        "iss mismatch",
        body,
        INVALID_CLIENT,
        UNAUTHORIZED,
    )
    .await?;
    ensure!(d.contains("sensor-2"), "{d}");
    fx.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assertion_for_another_broker() -> anyhow::Result<()> {
    let (fx, good) = setup().await?;
    let device = fx.device("sensor-1").await?;
    let mut request = fx.token_request(&device);
    request.aud = "https://other-broker.example.com".into();
    let body = fx.sign(&request, &device.x5t(), device.identity.signer())?;
    refused(
        &fx,
        &good,
        "aud not this broker",
        body,
        INVALID_CLIENT,
        UNAUTHORIZED,
    )
    .await?;
    fx.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_future_and_long_lived_requests() -> anyhow::Result<()> {
    let (fx, good) = setup().await?;
    let device = fx.device("sensor-1").await?;
    let signer = device.identity.signer();
    let now = unix_now();

    let mut expired = fx.token_request(&device);
    (expired.iat, expired.exp) = (now - 600, now - 400);
    let body = fx.sign(&expired, &device.x5t(), signer)?;
    let d = refused(
        &fx,
        &good,
        "expired request",
        body,
        INVALID_CLIENT,
        UNAUTHORIZED,
    )
    .await?;
    ensure!(d.contains("expired"), "{d}");

    let mut future = fx.token_request(&device);
    (future.iat, future.exp) = (now + 3600, now + 3700);
    let body = fx.sign(&future, &device.x5t(), signer)?;
    let d = refused(
        &fx,
        &good,
        "request from the future",
        body,
        INVALID_CLIENT,
        UNAUTHORIZED,
    )
    .await?;
    ensure!(d.contains("not valid before"), "{d}");

    let mut long = fx.token_request(&device);
    (long.iat, long.exp) = (now, now + 301);
    let body = fx.sign(&long, &device.x5t(), signer)?;
    let d = refused(
        &fx,
        &good,
        "lifetime 301 s",
        body,
        INVALID_CLIENT,
        UNAUTHORIZED,
    )
    .await?;
    ensure!(d.contains("lifetime"), "{d}");

    // exactly 300 s is allowed
    let mut max = fx.token_request(&device);
    (max.iat, max.exp) = (now, now + 300);
    fx.post_token(fx.sign(&max, &device.x5t(), signer)?)
        .await?
        .token()?;
    fx.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_request() -> anyhow::Result<()> {
    let (fx, good) = setup().await?;
    let device = fx.device("sensor-1").await?;
    let body = fx.agent_request(&device, &fx.params(Some(GRANTED_SCOPE)))?;
    fx.post_token(body.clone()).await?.token()?;
    let d = refused(
        &fx,
        &good,
        "replayed cti",
        body,
        INVALID_CLIENT,
        UNAUTHORIZED,
    )
    .await?;
    ensure!(d.contains("replay") || d.contains("already used"), "{d}");
    // A new request (other scope, new signature) reusing the cti is a replay too.
    let mut request = fx.token_request(&device);
    request.cti = b"same-nonce-twice".to_vec();
    fx.post_token(fx.sign(&request, &device.x5t(), device.identity.signer())?)
        .await?
        .token()?;
    request.scope = None;
    let body = fx.sign(&request, &device.x5t(), device.identity.signer())?;
    refused(
        &fx,
        &good,
        "reused cti, new body",
        body,
        INVALID_CLIENT,
        UNAUTHORIZED,
    )
    .await?;
    // The replaying device itself is still served with a fresh request.
    fx.assert_serves(&device).await?;
    fx.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_from_a_foreign_ca() -> anyhow::Result<()> {
    let (fx, good) = setup().await?;
    // Another certbound installation (same issuer id, same device id).
    let foreign_dir = tempfile::tempdir()?;
    registry::init(foreign_dir.path(), ISSUER).await?;
    let foreign = Registry::open(foreign_dir.path()).await?;
    let impostor = provision(&foreign, "sensor-good", &[], &foreign_dir.path().join("d")).await?;
    foreign.close().await;

    let mut params = fx.params(Some(GRANTED_SCOPE));
    params.send_chain = true;
    let body = fx.agent_request(&impostor, &params)?;
    let d = refused(
        &fx,
        &good,
        "foreign CA, x5chain",
        body,
        INVALID_CLIENT,
        UNAUTHORIZED,
    )
    .await?;
    ensure!(d.contains("certificate"), "{d}");

    params.send_chain = false;
    let body = fx.agent_request(&impostor, &params)?;
    refused(
        &fx,
        &good,
        "foreign CA, x5t",
        body,
        INVALID_CLIENT,
        UNAUTHORIZED,
    )
    .await?;
    fx.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_certificate() -> anyhow::Result<()> {
    let (fx, good) = setup().await?;
    let pki = DataDir::new(fx.path()).pki();
    let now = unix_now();
    // A one-day certificate issued three days ago by the broker's own CA.
    let bundle = IssuingCa::load(&pki)?.issue_device("sensor-old", 1, now - 3 * 86_400)?;
    let trust = TrustStore::load(&pki)?;
    let err = trust
        .verify_device_cert(&bundle.cert.der, &[], now, 60)
        .expect_err("the certificate expired two days ago");
    ensure!(matches!(err, PkiError::Expired { .. }), "{err}");
    ensure!(bundle.cert.not_after <= now - 2 * 86_400 + 60);

    // Register it in the store as if it had been provisioned then, so that
    // the x5t form finds it; the broker must still check validity.
    fx.registry
        .store
        .create_device(
            "sensor-old",
            &["sensors".into()],
            &CertRecord {
                serial: bundle.cert.serial_hex.clone(),
                device_id: "sensor-old".into(),
                thumbprint: hex::encode(bundle.cert.thumbprint),
                not_before: bundle.cert.not_before,
                not_after: bundle.cert.not_after,
                status: "active".into(),
                der: bundle.cert.der.clone(),
            },
            now - 3 * 86_400,
        )
        .await?;
    let identity =
        certbound_agent::DeviceIdentity::from_pem(&bundle.key_pkcs8_pem, &bundle.chain_pem)?;
    let old = TestDevice {
        identity,
        key_file: Default::default(),
        cert_file: Default::default(),
        provisioned: registry::ProvisionedDevice {
            id: "sensor-old".into(),
            serial: bundle.cert.serial_hex.clone(),
            thumbprint: hex::encode(bundle.cert.thumbprint),
            not_after: bundle.cert.not_after,
            key_file: Default::default(),
            cert_file: Default::default(),
        },
    };
    // A currently valid certificate from the broker's own CA that was never
    // registered (e.g. issued outside the registry) is refused as well.
    let ghost = IssuingCa::load(&pki)?.issue_device("sensor-ghost", 1, now)?;
    let ghost = certbound_agent::DeviceIdentity::from_pem(&ghost.key_pkcs8_pem, &ghost.chain_pem)?;
    let mut request = fx.token_request(&old);
    request.iss = "sensor-ghost".into();
    let chain = certbound_proto::request::CertRef::X5Chain(ghost.chain().to_vec());
    let body = fx.sign(&request, &chain, ghost.signer())?;
    let d = refused(
        &fx,
        &good,
        "unregistered certificate",
        body,
        INVALID_CLIENT,
        UNAUTHORIZED,
    )
    .await?;
    // Unknown to the registry: refused before any signature check, with the
    // one answer every unauthenticated refusal gets.
    ensure!(d == certbound_broker::NOT_AUTHENTICATED, "{d}");

    for (case, cert) in [("x5chain", old.x5chain()), ("x5t", old.x5t())] {
        let body = fx.sign(&fx.token_request(&old), &cert, old.identity.signer())?;
        let d = refused(
            &fx,
            &good,
            &format!("expired certificate, {case}"),
            body,
            INVALID_CLIENT,
            UNAUTHORIZED,
        )
        .await?;
        ensure!(d.contains("expired"), "{d}");
    }
    fx.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_device() -> anyhow::Result<()> {
    let (fx, good) = setup().await?;
    let device = fx.device("sensor-1").await?;
    fx.assert_serves(&device).await?;
    fx.registry
        .set_device_status("sensor-1", DeviceStatus::Revoked, "stolen")
        .await?;
    for send_chain in [false, true] {
        let mut params = fx.params(Some(GRANTED_SCOPE));
        params.send_chain = send_chain;
        let body = fx.agent_request(&device, &params)?;
        let case = format!("revoked device (send_chain {send_chain})");
        let d = refused(&fx, &good, &case, body, INVALID_CLIENT, UNAUTHORIZED).await?;
        ensure!(d.contains("revoked"), "{d}");
    }
    fx.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspended_then_resumed_device() -> anyhow::Result<()> {
    let (fx, good) = setup().await?;
    let device = fx.device("sensor-1").await?;
    fx.registry
        .set_device_status("sensor-1", DeviceStatus::Suspended, "maintenance")
        .await?;
    let body = fx.agent_request(&device, &fx.params(Some(GRANTED_SCOPE)))?;
    let d = refused(
        &fx,
        &good,
        "suspended device",
        body,
        AceErrorCode::UnauthorizedClient,
        ResponseType::Forbidden,
    )
    .await?;
    ensure!(d.contains("suspended"), "{d}");
    fx.registry
        .set_device_status("sensor-1", DeviceStatus::Active, "done")
        .await?;
    fx.assert_serves(&device).await?;
    fx.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_refusals() -> anyhow::Result<()> {
    let (fx, good) = setup().await?;
    let device = fx.device("sensor-1").await?;
    let signer = device.identity.signer();

    let body = fx.agent_request(&device, &fx.params(Some("firmware:read")))?;
    let d = refused(
        &fx,
        &good,
        "scope not granted",
        body,
        AceErrorCode::InvalidScope,
        BAD_REQUEST,
    )
    .await?;
    ensure!(d.contains("firmware:read"), "{d}");

    let mut request = fx.token_request(&device);
    request.audience = Some("https://unknown.example.com".into());
    let body = fx.sign(&request, &device.x5t(), signer)?;
    refused(
        &fx,
        &good,
        "unknown audience",
        body,
        INVALID_REQUEST,
        BAD_REQUEST,
    )
    .await?;

    let mut request = fx.token_request(&device);
    request.audience = None;
    let body = fx.sign(&request, &device.x5t(), signer)?;
    refused(
        &fx,
        &good,
        "no audience",
        body,
        INVALID_REQUEST,
        BAD_REQUEST,
    )
    .await?;

    let mut request = fx.token_request(&device);
    request.grant_type = Some(1);
    let body = fx.sign(&request, &device.x5t(), signer)?;
    refused(
        &fx,
        &good,
        "grant_type 1",
        body,
        AceErrorCode::UnsupportedGrantType,
        BAD_REQUEST,
    )
    .await?;

    // A registered device in no group has no grant for the API.
    let loner = provision(&fx.registry, "loner", &[], &fx.devices_dir()).await?;
    let body = fx.agent_request(&loner, &fx.params(Some(GRANTED_SCOPE)))?;
    let d = refused(
        &fx,
        &good,
        "no grant",
        body,
        AceErrorCode::UnauthorizedClient,
        ResponseType::Forbidden,
    )
    .await?;
    ensure!(d.contains("no grant"), "{d}");

    // Without grant_type the default is client_credentials.
    let mut request = fx.token_request(&device);
    request.grant_type = None;
    fx.post_token(fx.sign(&request, &device.x5t(), signer)?)
        .await?
        .token()?;
    fx.shutdown().await;
    Ok(())
}

/// A hand-made payload: `entries` are `(label, value)` pairs encoded in this
/// order, in a definite-length map (or an indefinite one).
fn payload(entries: &[(i64, Value)], indefinite: bool) -> Vec<u8> {
    let mut out = Vec::new();
    if indefinite {
        out.push(0xbf);
    } else {
        assert!(entries.len() < 24);
        out.push(0xa0 | u8::try_from(entries.len()).unwrap_or(0));
    }
    for (label, value) in entries {
        out.extend(cbor::encode(&int(*label)));
        out.extend(cbor::encode(value));
    }
    if indefinite {
        out.push(0xff);
    }
    out
}

/// Signs a hand-made payload as a device request naming `device`'s certificate by x5t.
fn sign_raw(device: &TestDevice, payload: Vec<u8>) -> anyhow::Result<Vec<u8>> {
    let params = ProtectedParams {
        kid: None,
        typ: Some(TYP_DEVICE_REQUEST),
        extra: vec![(
            HEADER_X5T,
            Value::Array(vec![
                int(HASH_SHA256),
                Value::Bytes(device.identity.thumbprint().to_vec()),
            ]),
        )],
    };
    Ok(cose::sign1(params, payload, device.identity.signer())?)
}

fn entries(device: &TestDevice) -> Vec<(i64, Value)> {
    let now = unix_now();
    vec![
        (1, Value::Text(device.id().into())),
        (3, Value::Text(ISSUER.into())),
        (4, uint(now + 120)),
        (5, Value::Text(API.into())),
        (6, uint(now)),
        (7, Value::Bytes(certbound_e2e::nonce().to_vec())),
        (9, Value::Text(GRANTED_SCOPE.into())),
        (33, uint(2)),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_cbor() -> anyhow::Result<()> {
    let (fx, good) = setup().await?;
    let device = fx.device("sensor-1").await?;

    // Control: the hand-made encoding is accepted when it is well formed.
    let body = sign_raw(&device, payload(&entries(&device), false))?;
    fx.post_token(body).await?.token()?;

    let mut rng = rand::rngs::StdRng::seed_from_u64(0x00ce_27b0);
    for len in [1usize, 7, 64, 300] {
        let mut junk = vec![0u8; len];
        rng.fill(junk.as_mut_slice());
        let case = format!("{len} random bytes");
        refused(&fx, &good, &case, junk, INVALID_REQUEST, BAD_REQUEST).await?;
    }
    refused(
        &fx,
        &good,
        "empty body",
        Vec::new(),
        INVALID_REQUEST,
        BAD_REQUEST,
    )
    .await?;

    let valid = fx.agent_request(&device, &fx.params(Some(GRANTED_SCOPE)))?;
    let truncated = valid[..valid.len() - 10].to_vec();
    refused(
        &fx,
        &good,
        "truncated",
        truncated,
        INVALID_REQUEST,
        BAD_REQUEST,
    )
    .await?;

    let mut trailing = fx.agent_request(&device, &fx.params(Some(GRANTED_SCOPE)))?;
    trailing.push(0x00);
    refused(
        &fx,
        &good,
        "trailing byte",
        trailing,
        INVALID_REQUEST,
        BAD_REQUEST,
    )
    .await?;

    let body = sign_raw(&device, payload(&entries(&device), true))?;
    let d = refused(
        &fx,
        &good,
        "indefinite-length map",
        body,
        INVALID_REQUEST,
        BAD_REQUEST,
    )
    .await?;
    ensure!(d.contains("indefinite"), "{d}");

    let mut dup = entries(&device);
    dup.push((1, Value::Text("sensor-good".into())));
    let body = sign_raw(&device, payload(&dup, false))?;
    let d = refused(
        &fx,
        &good,
        "duplicate map key",
        body,
        INVALID_REQUEST,
        BAD_REQUEST,
    )
    .await?;
    ensure!(d.contains("duplicate"), "{d}");

    // An indefinite-length COSE_Sign1 array (outer structure, unsigned part).
    let mut outer = fx.agent_request(&device, &fx.params(Some(GRANTED_SCOPE)))?;
    // d2 84 ... → d2 9f ... ff
    ensure!(outer[..2] == [0xd2, 0x84], "tag 18 + array(4) expected");
    outer[1] = 0x9f;
    outer.push(0xff);
    refused(
        &fx,
        &good,
        "indefinite COSE array",
        outer,
        INVALID_REQUEST,
        BAD_REQUEST,
    )
    .await?;
    fx.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_content_format() -> anyhow::Result<()> {
    let (fx, good) = setup().await?;
    let device = fx.device("sensor-1").await?;
    let body = fx.agent_request(&device, &fx.params(Some(GRANTED_SCOPE)))?;
    let answer = fx.post_token_as(body, content_format::CBOR).await?;
    println!("content-format 60: {answer}");
    ensure!(
        answer.code == ResponseType::UnsupportedContentFormat,
        "{answer}"
    );
    fx.assert_serves(&good).await?;
    fx.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_token_sent_as_a_request() -> anyhow::Result<()> {
    let (fx, good) = setup().await?;
    let device = fx.device("sensor-1").await?;
    let token = fx.obtain(&device, &fx.params(None)).await?;
    let d = refused(
        &fx,
        &good,
        "access token as request",
        token.access_token,
        INVALID_CLIENT,
        UNAUTHORIZED,
    )
    .await?;
    ensure!(d.contains("at+cwt"), "{d}");
    fx.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_request() -> anyhow::Result<()> {
    let (fx, good) = setup().await?;
    let device = fx.device("sensor-1").await?;
    let mut request = fx.token_request(&device);
    request.scope = Some(format!("{GRANTED_SCOPE} {}", "x".repeat(9 * 1024)));
    let body = fx.sign(&request, &device.x5t(), device.identity.signer())?;
    ensure!(body.len() > 8 * 1024);
    let answer = fx.post_token(body).await?;
    println!("request of {} bytes: {answer}", 9 * 1024);
    let too_large = answer.code == ResponseType::RequestEntityTooLarge;
    let invalid = answer
        .error()
        .is_ok_and(|e| e.code == INVALID_REQUEST && answer.code == BAD_REQUEST);
    ensure!(too_large || invalid, "{answer}");
    fx.assert_serves(&good).await?;
    fx.shutdown().await;
    Ok(())
}

/// Verifier side: a token for the telemetry API is refused by a backend for
/// another audience, and when it lacks a scope the backend requires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verifier_refuses_other_audience_and_missing_scope() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let device = fx.device("sensor-1").await?;
    let token = fx.obtain(&device, &fx.params(None)).await?;
    let now = unix_now();
    fx.verifier
        .verify(&token.access_token, &[GRANTED_SCOPE], now)?;

    let billing = verifier_for(fx.path(), "https://billing.example.com")?;
    let err = billing
        .verify(&token.access_token, &[], now)
        .expect_err("a token for the telemetry API must not open the billing API");
    assert_eq!(err.reason_code(), "audience", "{err}");

    let err = fx
        .verifier
        .verify(&token.access_token, &["firmware:read"], now)
        .expect_err("the token does not grant firmware:read");
    assert_eq!(err.reason_code(), "scope", "{err}");

    // After expiry (beyond the 60 s leeway) it is refused too.
    let err = fx
        .verifier
        .verify(&token.access_token, &[GRANTED_SCOPE], now + 3600 + 61)
        .expect_err("the token has expired");
    assert_eq!(err.reason_code(), "expired", "{err}");

    // A verifier trusting another broker's keys refuses it.
    let other = tempfile::tempdir()?;
    registry::init(other.path(), ISSUER).await?;
    let stranger = verifier_for(other.path(), API)?;
    let err = stranger
        .verify(&token.access_token, &[], now)
        .expect_err("signed by a key the stranger does not trust");
    assert_eq!(err.reason_code(), "unknown_key", "{err}");
    fx.shutdown().await;
    Ok(())
}
