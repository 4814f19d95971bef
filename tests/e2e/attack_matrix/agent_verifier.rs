//! Attack-matrix cases: see [`super`]. The offline verifier against real
//! broker tokens tampered by hand (ciborium), the device agent against a
//! forged answerer (a real UDP socket on the path), and a telemetry backend
//! (the checks `certbound ingest` runs) against revoked and cross-device use.
//! Every case asserts the specific refusal and that a legitimate token (or
//! request) still goes through afterwards.

mod support;

use certbound_agent::answers::{MAX_RETRY_HINT_SECS, cert_renewal_deadline_ms, retry_wait_ms};
use certbound_agent::{AgentError, renew_over_coap, request_token_coap};
use certbound_broker::store::DeviceStatus;
use certbound_coap::Client;
use certbound_e2e::{
    API, API_TTL, Fixture, GRANTED_SCOPE, ISSUER, loopback_client_config, unix_now,
};
use certbound_proto::ace::TokenResponse;
use certbound_proto::crypto::Signer as _;
use certbound_proto::status_list::{StatusList, StatusListToken, mint_status_list};
use certbound_proto::telemetry::{TelemetryPayload, seal};
use certbound_proto::{ClaimError, ProtoError};
use certbound_verify::status::{StatusCache, StatusCacheConfig};
use certbound_verify::{TelemetryConfig, TelemetryVerifier, TokenVerifier, VerifyError};
use ciborium::Value;
use coap_lite::ResponseType;
use support::*;

/// The fixture, one device, and a fresh legitimate token of it.
async fn setup(id: &str) -> anyhow::Result<(Fixture, certbound_e2e::TestDevice, Vec<u8>)> {
    let fx = Fixture::new().await?;
    let device = fx.device(id).await?;
    let token = broker_token(&fx, &device).await;
    Ok((fx, device, token))
}

/// Refused by the fixture's verifier; returns the error.
fn refused(fx: &Fixture, token: &[u8]) -> VerifyError {
    fx.verifier
        .verify(token, &[GRANTED_SCOPE], unix_now())
        .expect_err("the tampered token must be refused")
}

/// The legitimate token still verifies and the broker still serves.
async fn still_serves(fx: &Fixture, device: &certbound_e2e::TestDevice, good: &[u8]) {
    fx.verifier
        .verify(good, &[GRANTED_SCOPE], unix_now())
        .expect("the legitimate token still verifies");
    fx.assert_serves(device)
        .await
        .expect("the broker still serves");
}

/// A protected header with `alg` replaced (or removed), keeping the rest.
fn with_alg(parts: &Parts, alg: Option<i64>) -> Vec<u8> {
    let mut m = parts.protected_map();
    m.retain(|(k, _)| k != &int(1));
    if let Some(alg) = alg {
        m.insert(0, (int(1), int(alg)));
    }
    encode(&Value::Map(m))
}

/// alg "none": a CWT whose protected header has no alg, and a JWT with `alg: none`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_verifier_alg_none() -> anyhow::Result<()> {
    let (fx, device, good) = setup("av-none").await?;
    let mut p = Parts::of(&good);
    p.protected = with_alg(&p, None);
    let err = refused(&fx, &p.resign(&fx).to_bytes());
    assert!(
        matches!(err, VerifyError::Malformed(ProtoError::BadHeader(_))),
        "{err:?}"
    );
    // The unsecured JWS (empty signature) and one with a dummy signature.
    let jwt = "eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0.eyJzdWIiOiJ4In0.";
    let err = fx.verifier.verify_text(jwt, &[], unix_now()).unwrap_err();
    assert!(
        matches!(err, VerifyError::Malformed(ProtoError::InvalidJwt(_))),
        "{err:?}"
    );
    let sig = "A".repeat(86); // 64 bytes of base64url
    let err = fx
        .verifier
        .verify_text(&format!("{jwt}{sig}"), &[], unix_now())
        .unwrap_err();
    assert_eq!(err.reason_code(), "unsupported_alg", "{err:?}");
    still_serves(&fx, &device, &good).await;
    fx.shutdown().await;
    Ok(())
}

/// HS256 keyed with the broker's public key (COSE alg 5 in place of ES256).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_verifier_hs256_with_public_key() -> anyhow::Result<()> {
    let (fx, device, good) = setup("av-hs256").await?;
    let mut p = Parts::of(&good);
    p.protected = with_alg(&p, Some(5));
    // A 32-byte "MAC" over the token keyed with the public key.
    p.signature = fx
        .verifier
        .keys()
        .kids()
        .first()
        .cloned()
        .unwrap_or_default()
        .into_bytes();
    p.signature.resize(32, 0);
    let err = refused(&fx, &p.to_bytes());
    assert_eq!(
        err,
        VerifyError::Malformed(ProtoError::UnsupportedAlgorithm(5))
    );
    assert_eq!(err.reason_code(), "unsupported_alg");
    still_serves(&fx, &device, &good).await;
    fx.shutdown().await;
    Ok(())
}

/// EdDSA (alg -8) in the ES256 slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_verifier_eddsa_in_es256_slot() -> anyhow::Result<()> {
    let (fx, device, good) = setup("av-eddsa").await?;
    let mut p = Parts::of(&good);
    p.protected = with_alg(&p, Some(-8));
    let err = refused(&fx, &p.resign(&fx).to_bytes());
    assert_eq!(
        err,
        VerifyError::Malformed(ProtoError::UnsupportedAlgorithm(-8))
    );
    still_serves(&fx, &device, &good).await;
    fx.shutdown().await;
    Ok(())
}

/// A kid the verifier does not know.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_verifier_unknown_kid() -> anyhow::Result<()> {
    let (fx, device, good) = setup("av-kid").await?;
    let mut p = Parts::of(&good);
    let mut m = p.protected_map();
    for (k, v) in &mut m {
        if k == &int(4) {
            *v = Value::Bytes(b"attacker-key".to_vec());
        }
    }
    p.protected = encode(&Value::Map(m));
    let err = refused(&fx, &p.to_bytes());
    assert_eq!(
        err,
        VerifyError::UnknownKey {
            kid: "attacker-key".into()
        }
    );
    still_serves(&fx, &device, &good).await;
    fx.shutdown().await;
    Ok(())
}

/// A protected header changed after signing (content type added).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_verifier_tampered_protected_header() -> anyhow::Result<()> {
    let (fx, device, good) = setup("av-prot").await?;
    let mut p = Parts::of(&good);
    let mut m = p.protected_map();
    m.push((int(3), int(60)));
    p.protected = encode(&Value::Map(m));
    let err = refused(&fx, &p.to_bytes());
    assert_eq!(err.reason_code(), "bad_signature", "{err:?}");
    still_serves(&fx, &device, &good).await;
    fx.shutdown().await;
    Ok(())
}

/// The signed structure re-tagged as COSE_Mac0 (17) and COSE_Sign (98).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_verifier_mac0_tag_confusion() -> anyhow::Result<()> {
    let (fx, device, good) = setup("av-tag").await?;
    for tag in [17, 98, 96] {
        let mut p = Parts::of(&good);
        p.tag = tag;
        let err = refused(&fx, &p.to_bytes());
        assert_eq!(err.reason_code(), "malformed", "tag {tag}: {err:?}");
    }
    still_serves(&fx, &device, &good).await;
    fx.shutdown().await;
    Ok(())
}

/// Duplicate claim keys (two `aud`), validly signed by the broker key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_verifier_duplicate_map_keys() -> anyhow::Result<()> {
    let (fx, device, good) = setup("av-dup").await?;
    let mut p = Parts::of(&good);
    let mut claims = p.claims();
    claims.push((int(3), Value::Text("https://other.example.com".into())));
    p.payload = encode(&Value::Map(claims));
    let err = refused(&fx, &p.resign(&fx).to_bytes());
    assert!(
        matches!(
            err,
            VerifyError::Malformed(ProtoError::MalformedCbor { .. })
        ),
        "{err:?}"
    );
    still_serves(&fx, &device, &good).await;
    fx.shutdown().await;
    Ok(())
}

/// The claims map with an indefinite length, validly signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_verifier_indefinite_lengths() -> anyhow::Result<()> {
    let (fx, device, good) = setup("av-indef").await?;
    let mut p = Parts::of(&good);
    let definite = p.payload.clone();
    // 0xa0 + n (n < 24) -> 0xbf ... 0xff
    assert!((0xa1..=0xb7).contains(&definite[0]));
    let mut indefinite = vec![0xbf];
    indefinite.extend_from_slice(&definite[1..]);
    indefinite.push(0xff);
    p.payload = indefinite;
    let err = refused(&fx, &p.resign(&fx).to_bytes());
    assert!(
        matches!(
            err,
            VerifyError::Malformed(ProtoError::MalformedCbor { .. })
        ),
        "{err:?}"
    );
    still_serves(&fx, &device, &good).await;
    fx.shutdown().await;
    Ok(())
}

/// A claim nested 64 arrays deep, validly signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_verifier_deep_nesting() -> anyhow::Result<()> {
    let (fx, device, good) = setup("av-deep").await?;
    let mut p = Parts::of(&good);
    let mut deep = Value::Integer(1.into());
    for _ in 0..64 {
        deep = Value::Array(vec![deep]);
    }
    p.payload = set_claim(p.claims(), 65001, Some(deep));
    let err = refused(&fx, &p.resign(&fx).to_bytes());
    assert!(
        matches!(
            err,
            VerifyError::Malformed(ProtoError::MalformedCbor { .. })
        ),
        "{err:?}"
    );
    still_serves(&fx, &device, &good).await;
    fx.shutdown().await;
    Ok(())
}

/// Bytes after the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_verifier_trailing_bytes() -> anyhow::Result<()> {
    let (fx, device, good) = setup("av-trail").await?;
    let mut t = good.clone();
    t.extend_from_slice(&[0xf6]);
    let err = refused(&fx, &t);
    assert!(
        matches!(
            err,
            VerifyError::Malformed(ProtoError::MalformedCbor { .. })
        ),
        "{err:?}"
    );
    still_serves(&fx, &device, &good).await;
    fx.shutdown().await;
    Ok(())
}

/// A token for another API (aud changed, validly signed), and a backend of another API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_verifier_wrong_aud() -> anyhow::Result<()> {
    let (fx, device, good) = setup("av-aud").await?;
    let mut p = Parts::of(&good);
    p.payload = set_claim(
        p.claims(),
        3,
        Some(Value::Text("https://billing.example.com".into())),
    );
    let err = refused(&fx, &p.resign(&fx).to_bytes());
    assert!(
        matches!(
            err,
            VerifyError::Claims(ClaimError::AudienceMismatch { .. })
        ),
        "{err:?}"
    );
    let other = TokenVerifier::new(
        keys(&fx),
        certbound_verify::VerifierConfig::new("https://billing.example.com").with_issuer(ISSUER),
    );
    assert_eq!(
        other
            .verify(&good, &[], unix_now())
            .unwrap_err()
            .reason_code(),
        "audience"
    );
    still_serves(&fx, &device, &good).await;
    fx.shutdown().await;
    Ok(())
}

/// An expired token (exp an hour ago), and one not valid for an hour (nbf), validly signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_verifier_expired_and_nbf_in_future() -> anyhow::Result<()> {
    let (fx, device, good) = setup("av-time").await?;
    let now = unix_now();
    let mut p = Parts::of(&good);
    p.payload = set_claim(p.claims(), 4, Some(int(i64::try_from(now - 3600)?)));
    let err = refused(&fx, &p.resign(&fx).to_bytes());
    assert!(
        matches!(err, VerifyError::Claims(ClaimError::Expired { .. })),
        "{err:?}"
    );
    let mut p = Parts::of(&good);
    p.payload = set_claim(p.claims(), 5, Some(int(i64::try_from(now + 3600)?)));
    let err = refused(&fx, &p.resign(&fx).to_bytes());
    assert!(
        matches!(err, VerifyError::Claims(ClaimError::NotYetValid { .. })),
        "{err:?}"
    );
    still_serves(&fx, &device, &good).await;
    fx.shutdown().await;
    Ok(())
}

/// A token naming another issuer (validly signed by the broker's key); a
/// token without iss, as the broker issues them; and a verifier configured
/// without an issuer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_verifier_wrong_or_missing_iss() -> anyhow::Result<()> {
    let (fx, device, good) = setup("av-iss").await?;
    let mut p = Parts::of(&good);
    let mut claims = p.claims();
    assert!(
        !claims.iter().any(|(k, _)| k == &int(1)),
        "the broker's CWTs carry no iss"
    );
    // Claims are sorted by label: iss (1) goes first.
    claims.insert(0, (int(1), Value::Text("https://evil.example.com".into())));
    p.payload = encode(&Value::Map(claims));
    let err = refused(&fx, &p.resign(&fx).to_bytes());
    assert!(
        matches!(err, VerifyError::Claims(ClaimError::IssuerMismatch { .. })),
        "{err:?}"
    );
    // A backend that forgot to configure the issuer refuses everything.
    let unset = TokenVerifier::new(keys(&fx), certbound_verify::VerifierConfig::new(API));
    assert_eq!(
        unset.verify(&good, &[], unix_now()).unwrap_err(),
        VerifyError::IssuerNotConfigured
    );
    still_serves(&fx, &device, &good).await;
    fx.shutdown().await;
    Ok(())
}

/// Cross-device use: telemetry signed by device B's key carrying device A's token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_verifier_cross_device_token_use() -> anyhow::Result<()> {
    let (fx, a, token_a) = setup("av-cross-a").await?;
    let b = fx.device("av-cross-b").await?;
    let backend = TelemetryVerifier::new(
        TokenVerifier::new(keys(&fx), backend_config()),
        TelemetryConfig::default(),
    );
    let cti = certbound_agent::tokens::token_cti(&token_a)?;
    let payload = |seq| TelemetryPayload {
        seq,
        timestamp_ms: unix_now() * 1000,
        data: b"t=1".to_vec(),
        token_cti: cti.clone(),
    };
    let forged = seal(&token_a, &payload(1), b.identity.signer())?;
    let err = backend
        .verify(&forged, Some("av-cross-a"), unix_now())
        .unwrap_err();
    assert_eq!(err, VerifyError::BadProofOfPossession);
    // On B's own topic it is refused too (the token names A).
    let err = backend
        .verify(&forged, Some("av-cross-b"), unix_now())
        .unwrap_err();
    assert_eq!(err.reason_code(), "pop");
    // A's own message with the same seq is still accepted: the forgery took no seq.
    let genuine = seal(&token_a, &payload(1), a.identity.signer())?;
    assert_eq!(
        backend
            .verify(&genuine, Some("av-cross-a"), unix_now())?
            .seq,
        1
    );
    still_serves(&fx, &a, &token_a).await;
    fx.shutdown().await;
    Ok(())
}

/// Status-list rollback: an older (pre-revocation) list replayed after a newer one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_verifier_status_list_rollback() -> anyhow::Result<()> {
    let (fx, device, good) = setup("av-roll").await?;
    let claims = certbound_proto::token::UnverifiedToken::parse(&good, Default::default())?
        .unverified_claims(Default::default())?;
    let status = claims.status.expect("device tokens are revocable");
    fx.registry
        .set_device_status("av-roll", DeviceStatus::Revoked, "attack matrix")
        .await?;
    // The broker's current list (fetched over HTTPS) says revoked.
    let checker = status_checker(&fx)?;
    eventually("the revocation to reach the status list", || async {
        checker.check_status_ref(&status).await == Err(VerifyError::Revoked)
    })
    .await?;
    let body = fx_status_list(&fx, &status.uri).await?;
    let key = certbound_registry::keys::load_current(
        &certbound_registry::config::DataDir::new(fx.path()).key_dir(),
    )?;
    let list =
        certbound_proto::status_list::UnverifiedStatusList::parse(&body, Default::default())?
            .verify(
                &certbound_proto::crypto::AwsLcVerifier::new(key.signer.public_key())?,
                Default::default(),
                &status.uri,
                unix_now(),
                60,
                1 << 22,
            )?;
    let mut cache = StatusCache::new(StatusCacheConfig::new(format!(
        "{}/status/",
        fx.https_url()
    )))?;
    cache.insert(&status.uri, &body, &keys(&fx), unix_now())?;
    assert_eq!(cache.check(&status, unix_now()), Err(VerifyError::Revoked));
    // An older list for the same URI, signed by the broker (captured before the revocation).
    let older = StatusListToken {
        sub: status.uri.clone(),
        iat: list.iat - 60,
        exp: Some(unix_now() + 600),
        ttl: Some(60),
        list: StatusList::new(2, list.list.len())?,
    };
    let replayed = mint_status_list(&older, &key.kid, &key.signer)?;
    let err = cache
        .insert(&status.uri, &replayed, &keys(&fx), unix_now())
        .unwrap_err();
    assert!(matches!(err, VerifyError::StatusRollback { .. }), "{err:?}");
    assert_eq!(err.reason_code(), "status_rollback");
    assert_eq!(cache.check(&status, unix_now()), Err(VerifyError::Revoked));
    // The current list is still accepted, and another device is still served.
    cache.insert(&status.uri, &body, &keys(&fx), unix_now())?;
    let other = fx.device("av-roll-other").await?;
    let t = broker_token(&fx, &other).await;
    still_serves(&fx, &other, &t).await;
    drop(device);
    fx.shutdown().await;
    Ok(())
}

async fn fx_status_list(fx: &Fixture, uri: &str) -> anyhow::Result<Vec<u8>> {
    let ca = std::fs::read_to_string(
        certbound_registry::config::DataDir::new(fx.path())
            .pki()
            .chain(),
    )?;
    let tls = certbound_verify::http::client_tls_config(&ca, None)?;
    let fetcher =
        certbound_verify::http::HttpsFetcher::new(tls, std::time::Duration::from_secs(10), 1 << 20);
    Ok(fetcher
        .get(uri, "application/statuslist+cwt")
        .await?
        .body
        .to_vec())
}

/// The agent gets a forged 4.29 / 5.03 with Max-Age = 1 000 000 s to its renewal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_agent_caps_forged_retry_after() -> anyhow::Result<()> {
    let (fx, device, good) = setup("av-retry").await?;
    for code in [
        ResponseType::TooManyRequests,
        ResponseType::ServiceUnavailable,
    ] {
        let fake = FakeAnswerer::start(Forged::RetryAfter(code, 1_000_000)).await?;
        let client = Client::connect(fake.addr, loopback_client_config()).await?;
        let err = renew_over_coap(&client, &device.identity, ISSUER)
            .await
            .err();
        let Some(AgentError::RetryLater {
            retry_after_secs, ..
        }) = err
        else {
            panic!("{code:?}: expected RetryLater, got {err:?}");
        };
        assert_eq!(retry_after_secs, MAX_RETRY_HINT_SECS);
        // Scheduled, it never passes the certificate's renewal deadline.
        let cert = device.identity.validity();
        let deadline = cert_renewal_deadline_ms(cert.not_before, cert.not_after);
        let now_ms = deadline - 10_000;
        assert_eq!(retry_wait_ms(retry_after_secs, now_ms, deadline), 10_000);
    }
    // The real broker still renews the device's certificate.
    let renewed = renew_over_coap(&fx.client, &device.identity, ISSUER).await?;
    assert_eq!(renewed.identity.device_id(), "av-retry");
    still_serves(&fx, &device, &good).await;
    fx.shutdown().await;
    Ok(())
}

/// A forged answer carries a real token with expires_in = 10^9 s: renewal follows the token's exp.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_agent_renews_from_token_exp_not_forged_expires_in() -> anyhow::Result<()> {
    let (fx, device, good) = setup("av-exp").await?;
    let exp = certbound_proto::token::UnverifiedToken::parse(&good, Default::default())?
        .unverified_claims(Default::default())?
        .exp
        .expect("exp");
    let forged = TokenResponse {
        access_token: good.clone(),
        expires_in: 1_000_000_000,
        scope: None,
    };
    let fake = FakeAnswerer::start(Forged::Token(forged.to_cbor())).await?;
    let client = Client::connect(fake.addr, loopback_client_config()).await?;
    let t = request_token_coap(&client, &device.identity, &fx.params(Some(GRANTED_SCOPE))).await?;
    assert!(
        t.expires_in <= API_TTL,
        "expires_in {} taken from the answer",
        t.expires_in
    );
    let mut tokens = certbound_agent::tokens::TokenManager::new(
        vec![certbound_agent::tokens::TokenSpec {
            audience: API.into(),
            scope: None,
        }],
        Default::default(),
        60,
    );
    let now_ms = unix_now() * 1000;
    tokens.on_success(0, t.access_token, vec![1], t.expires_in, now_ms, 0.5);
    let due = tokens.next_due_ms().expect("a renewal is scheduled");
    assert!(
        due < exp * 1000,
        "renewal at {due} ms is past the token's exp {exp}"
    );
    // A token bound to another device's key is refused outright.
    let other = fx.device("av-exp-other").await?;
    let foreign = TokenResponse {
        access_token: broker_token(&fx, &other).await,
        expires_in: 3600,
        scope: None,
    };
    let fake = FakeAnswerer::start(Forged::Token(foreign.to_cbor())).await?;
    let client = Client::connect(fake.addr, loopback_client_config()).await?;
    let err = request_token_coap(&client, &device.identity, &fx.params(Some(GRANTED_SCOPE)))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("another key"), "{err}");
    // The real broker's answer is accepted.
    let real = request_token_coap(
        &fx.client,
        &device.identity,
        &fx.params(Some(GRANTED_SCOPE)),
    )
    .await?;
    assert!(real.expires_in <= API_TTL && real.expires_in > API_TTL - 120);
    still_serves(&fx, &device, &good).await;
    fx.shutdown().await;
    Ok(())
}

/// A revoked device's telemetry reaches a backend (the checks `certbound ingest` runs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_ingest_refuses_revoked_device_telemetry() -> anyhow::Result<()> {
    let (fx, revoked, token) = setup("av-ingest-r").await?;
    let fine = fx.device("av-ingest-ok").await?;
    let fine_token = broker_token(&fx, &fine).await;
    let backend = TelemetryVerifier::new(
        TokenVerifier::new(keys(&fx), backend_config()),
        TelemetryConfig::default(),
    );
    let checker = status_checker(&fx)?;
    let message =
        |token: &[u8], device: &certbound_e2e::TestDevice, seq| -> anyhow::Result<Vec<u8>> {
            let payload = TelemetryPayload {
                seq,
                timestamp_ms: unix_now() * 1000,
                data: b"t=1".to_vec(),
                token_cti: certbound_agent::tokens::token_cti(token)?,
            };
            Ok(seal(token, &payload, device.identity.signer())?)
        };
    fx.registry
        .set_device_status("av-ingest-r", DeviceStatus::Revoked, "attack matrix")
        .await?;
    let m = message(&token, &revoked, 1)?;
    eventually("the revocation to reach the backend", || async {
        matches!(
            checker
                .check_telemetry(&backend, &m, Some("av-ingest-r"), unix_now())
                .await,
            Err(VerifyError::Revoked)
        )
    })
    .await?;
    // The refused message never touched the device's replay window.
    assert_eq!(backend.replay_window("av-ingest-r"), None);
    // Another device is still accepted end to end.
    let ok = checker
        .check_telemetry(
            &backend,
            &message(&fine_token, &fine, 1)?,
            Some("av-ingest-ok"),
            unix_now(),
        )
        .await?;
    assert_eq!(backend.commit(ok)?.device_id, "av-ingest-ok");
    fx.shutdown().await;
    Ok(())
}
