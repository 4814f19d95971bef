//! `RemoteKeys` and the `VerifyLayer` middleware over real TLS on loopback:
//! a fake broker (`TlsServer`) serving a JWKS and status lists whose content
//! the tests swap and whose hits they count, an API behind the layer, and
//! tokens (CWT and JWT) minted here.
#![cfg(feature = "http")]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use certbound_pki::DeviceBundle;
use certbound_proto::claims::Claims;
use certbound_proto::crypto::{P256Signer, Signer};
use certbound_proto::jwt::{JwtAudience, JwtClaims, JwtConfirmation, JwtStatus, sign_jwt};
use certbound_proto::status_list::{StatusList, StatusListToken, StatusRef, mint_status_list};
use certbound_proto::token;
use certbound_verify::http::{
    ClientAuth, HttpsFetcher, RawResponse, RemoteKeys, RemoteKeysConfig, StatusCheck, TlsServer,
    VerifyConfig, VerifyLayer, client_tls_config, server_tls_config,
};
use certbound_verify::status::StatusCacheConfig;
use certbound_verify::{KeySet, TokenFormat, VerifiedToken, VerifierConfig, VerifyError};
use sha2::{Digest as _, Sha256};

#[path = "http_plumbing/support.rs"]
#[allow(dead_code, reason = "shared with the plumbing tests")]
mod support;
use support::{Pki, make_pki};

const ISS: &str = "https://auth.example.com";
const AUD: &str = "https://telemetry.example.com";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn broker_key() -> P256Signer {
    P256Signer::from_scalar(&[7u8; 32]).unwrap()
}

fn rotated_key() -> P256Signer {
    P256Signer::from_scalar(&[8u8; 32]).unwrap()
}

fn jwks_of(signers: &[&P256Signer]) -> String {
    let mut keys = KeySet::new();
    for s in signers {
        keys.insert(s.public_key().kid(), s.public_key().clone())
            .unwrap();
    }
    keys.to_jwks()
}

/// What the fake broker serves, changeable by the tests.
#[derive(Default)]
struct Broker {
    jwks: Mutex<String>,
    jwks_cache_control: Mutex<String>,
    jwks_hits: AtomicU64,
    /// The list bytes by id; missing → 404; `fail` → 500.
    lists: Mutex<std::collections::HashMap<u64, Vec<u8>>>,
    list_hits: AtomicU64,
    fail: std::sync::atomic::AtomicBool,
    /// Delay of each list answer (to make requests overlap).
    list_delay_ms: AtomicU64,
}

async fn jwks(State(b): State<Arc<Broker>>) -> impl IntoResponse {
    b.jwks_hits.fetch_add(1, Ordering::SeqCst);
    if b.fail.load(Ordering::SeqCst) {
        return (StatusCode::INTERNAL_SERVER_ERROR, "down").into_response();
    }
    let cc = b.jwks_cache_control.lock().unwrap().clone();
    let body = b.jwks.lock().unwrap().clone();
    (
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (header::CACHE_CONTROL, cc),
        ],
        body,
    )
        .into_response()
}

async fn status_list(State(b): State<Arc<Broker>>, Path(id): Path<u64>) -> impl IntoResponse {
    b.list_hits.fetch_add(1, Ordering::SeqCst);
    let delay = b.list_delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if b.fail.load(Ordering::SeqCst) {
        return (StatusCode::INTERNAL_SERVER_ERROR, "down").into_response();
    }
    match b.lists.lock().unwrap().get(&id) {
        Some(bytes) => (
            [(header::CONTENT_TYPE, "application/statuslist+cwt")],
            bytes.clone(),
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

struct FakeBroker {
    state: Arc<Broker>,
    server: TlsServer,
}

impl FakeBroker {
    fn start(pki: &Pki) -> Self {
        let state = Arc::new(Broker::default());
        *state.jwks.lock().unwrap() = jwks_of(&[&broker_key()]);
        *state.jwks_cache_control.lock().unwrap() = "public, max-age=60".into();
        let app = Router::new()
            .route("/.well-known/jwks.json", get(jwks))
            .route("/status/{id}", get(status_list))
            .with_state(state.clone());
        let tls = server_tls_config(
            &pki.server.chain_pem,
            &pki.server.key_pkcs8_pem,
            None,
            ClientAuth::None,
            true,
        )
        .unwrap();
        let server = TlsServer::start("127.0.0.1:0".parse().unwrap(), tls, app).unwrap();
        Self { state, server }
    }

    fn jwks_url(&self) -> String {
        format!("{}/.well-known/jwks.json", self.server.base_url())
    }

    fn status_base(&self) -> String {
        format!("{}/status/", self.server.base_url())
    }

    fn list_uri(&self, id: u64) -> String {
        format!("{}{id}", self.status_base())
    }

    /// Publishes list `id` with `revoked` entries INVALID and `suspended` SUSPENDED.
    fn publish(&self, id: u64, revoked: &[u64], suspended: &[u64], ttl: u64) {
        let mut list = StatusList::new(2, 1024).unwrap();
        for i in revoked {
            list.set(*i, 1).unwrap();
        }
        for i in suspended {
            list.set(*i, 2).unwrap();
        }
        let token = StatusListToken {
            sub: self.list_uri(id),
            iat: now(),
            exp: Some(now() + 600),
            ttl: Some(ttl),
            list,
        };
        let key = broker_key();
        let bytes = mint_status_list(&token, &key.public_key().kid(), &key).unwrap();
        self.state.lists.lock().unwrap().insert(id, bytes);
    }

    fn list_hits(&self) -> u64 {
        self.state.list_hits.load(Ordering::SeqCst)
    }
}

fn fetcher(pki: &Pki, identity: Option<&DeviceBundle>) -> HttpsFetcher {
    let identity = identity.map(|b| (b.chain_pem.as_str(), b.key_pkcs8_pem.as_str()));
    HttpsFetcher::new(
        client_tls_config(&pki.ca_chain_pem, identity).unwrap(),
        Duration::from_secs(10),
        1 << 20,
    )
}

// ---------------------------------------------------------------- RemoteKeys

fn quick_config() -> RemoteKeysConfig {
    RemoteKeysConfig {
        min_refetch_interval: Duration::from_millis(300),
        ..RemoteKeysConfig::default()
    }
}

#[tokio::test]
async fn remote_keys_are_cached_and_unknown_kids_refetch_at_most_once_per_interval() {
    let pki = make_pki("rk");
    let broker = FakeBroker::start(&pki);
    let keys = RemoteKeys::new(broker.jwks_url(), fetcher(&pki, None), quick_config()).unwrap();
    assert_eq!(keys.url(), broker.jwks_url());
    assert!(keys.cached().is_none());

    let old_kid = broker_key().public_key().kid();
    let new_kid = rotated_key().public_key().kid();
    let set = keys.current().await.unwrap();
    assert!(set.get(&old_kid).is_some());
    for _ in 0..20 {
        keys.current().await.unwrap();
        keys.for_kid(&old_kid).await.unwrap();
    }
    assert_eq!(keys.fetch_count(), 1, "a fresh cache is not refetched");

    // The broker rotates: the new kid is unknown until a refetch.
    *broker.state.jwks.lock().unwrap() = jwks_of(&[&broker_key(), &rotated_key()]);
    // An attacker sprays random kids: at most one fetch per interval.
    for i in 0..50 {
        let set = keys.for_kid(&format!("random-{i}")).await.unwrap();
        assert!(set.get(&format!("random-{i}")).is_none());
    }
    assert_eq!(
        keys.fetch_count(),
        1,
        "the first fetch was less than 300 ms ago"
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    let set = keys.for_kid(&new_kid).await.unwrap();
    assert!(set.get(&new_kid).is_some(), "refetched on the unknown kid");
    assert_eq!(keys.fetch_count(), 2);
    for i in 0..50 {
        keys.for_kid(&format!("again-{i}")).await.unwrap();
    }
    assert_eq!(keys.fetch_count(), 2);
    assert_eq!(broker.state.jwks_hits.load(Ordering::SeqCst), 2);
    broker.server.shutdown().await;
}

#[tokio::test]
async fn remote_keys_follow_max_age_within_bounds() {
    let pki = make_pki("rk2");
    let broker = FakeBroker::start(&pki);
    // no-store would mean a fetch per request: held for min_refetch_interval.
    *broker.state.jwks_cache_control.lock().unwrap() = "no-store".into();
    let keys = RemoteKeys::new(broker.jwks_url(), fetcher(&pki, None), quick_config()).unwrap();
    for _ in 0..10 {
        keys.current().await.unwrap();
    }
    assert_eq!(keys.fetch_count(), 1);
    tokio::time::sleep(Duration::from_millis(350)).await;
    keys.current().await.unwrap();
    assert_eq!(keys.fetch_count(), 2, "expired after the clamped max-age");

    // A huge max-age is capped by max_max_age.
    *broker.state.jwks_cache_control.lock().unwrap() = "max-age=999999999".into();
    let capped = RemoteKeys::new(
        broker.jwks_url(),
        fetcher(&pki, None),
        RemoteKeysConfig {
            min_refetch_interval: Duration::from_millis(100),
            max_max_age: Duration::from_millis(300),
            ..RemoteKeysConfig::default()
        },
    )
    .unwrap();
    capped.current().await.unwrap();
    capped.current().await.unwrap();
    assert_eq!(capped.fetch_count(), 1);
    tokio::time::sleep(Duration::from_millis(350)).await;
    capped.current().await.unwrap();
    assert_eq!(capped.fetch_count(), 2);
    broker.server.shutdown().await;
}

#[tokio::test]
async fn remote_keys_fetch_once_for_concurrent_callers_and_survive_failures() {
    let pki = make_pki("rk3");
    let broker = FakeBroker::start(&pki);
    let keys =
        Arc::new(RemoteKeys::new(broker.jwks_url(), fetcher(&pki, None), quick_config()).unwrap());
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let keys = keys.clone();
            tokio::spawn(async move { keys.current().await.map(|k| k.len()) })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), 1);
    }
    assert_eq!(keys.fetch_count(), 1, "single flight");

    // The JWKS endpoint fails: the cached keys are kept.
    broker.state.fail.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(350)).await;
    let set = keys.for_kid("unknown").await.unwrap();
    assert_eq!(set.len(), 1);
    assert_eq!(keys.fetch_count(), 2);

    // No keys at all and a failing endpoint: an error, and no fetch storm.
    let empty = RemoteKeys::new(broker.jwks_url(), fetcher(&pki, None), quick_config()).unwrap();
    let err = empty.current().await.unwrap_err();
    assert_eq!(err.http_status(), Some(500), "{err}");
    for _ in 0..10 {
        assert!(empty.current().await.is_err());
    }
    assert_eq!(empty.fetch_count(), 1);

    // Not https: refused at construction.
    let err =
        RemoteKeys::new("http://127.0.0.1/jwks", fetcher(&pki, None), quick_config()).unwrap_err();
    assert_eq!(err.reason_code(), "invalid_url");
    broker.server.shutdown().await;
}

// ---------------------------------------------------------------- VerifyLayer

/// Echoes what the handler learned from the verified token.
async fn whoami(token: VerifiedToken) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({
        "sub": token.subject(),
        "format": token.format.as_str(),
        "client_id": token.client_id,
    }))
}

struct Api {
    server: TlsServer,
    layer: VerifyLayer,
}

fn start_api(pki: &Pki, broker: &FakeBroker, keys: certbound_verify::http::KeySource) -> Api {
    let mut verifier = VerifierConfig::new(AUD);
    verifier.issuer = Some(ISS.into());
    let mut cache = StatusCacheConfig::new(broker.status_base());
    cache.max_staleness = 0;
    let status = StatusCheck::Fetch {
        cache,
        fetcher: fetcher(pki, None),
    };
    let layer = VerifyLayer::new(VerifyConfig::new(verifier, keys, status)).unwrap();
    let app = Router::new()
        .route(
            "/read",
            get(whoami).route_layer(layer.with_scopes(["telemetry:read"])),
        )
        .route(
            "/admin",
            get(whoami).route_layer(layer.with_scopes(["admin:write"])),
        )
        .route("/open", get(|| async { "open" }));
    let tls = server_tls_config(
        &pki.server.chain_pem,
        &pki.server.key_pkcs8_pem,
        Some(&pki.ca_chain_pem),
        ClientAuth::Optional,
        true,
    )
    .unwrap();
    let server = TlsServer::start("127.0.0.1:0".parse().unwrap(), tls, app).unwrap();
    Api { server, layer }
}

fn static_keys() -> certbound_verify::http::KeySource {
    let mut keys = KeySet::new();
    keys.insert(
        broker_key().public_key().kid(),
        broker_key().public_key().clone(),
    )
    .unwrap();
    keys.into()
}

fn cwt_for(device: &DeviceBundle, status: Option<StatusRef>, scope: &str) -> String {
    let device_key = P256Signer::from_pkcs8_pem(&device.key_pkcs8_pem).unwrap();
    let claims = Claims {
        iss: Some(ISS.into()),
        sub: Some("svc-a".into()),
        aud: vec![AUD.into()],
        exp: Some(now() + 600),
        iat: Some(now()),
        cti: Some(vec![1; 16]),
        scope: Some(scope.into()),
        cnf: Some(device_key.public_key().clone()),
        status,
        ..Claims::default()
    };
    let key = broker_key();
    URL_SAFE_NO_PAD.encode(token::mint(&claims, &key.public_key().kid(), &key).unwrap())
}

fn jwt_claims_for(cert_der: Option<&[u8]>, status: Option<StatusRef>, scope: &str) -> JwtClaims {
    JwtClaims {
        iss: ISS.into(),
        sub: "cb_client".into(),
        aud: JwtAudience(vec![AUD.into()]),
        exp: now() + 600,
        iat: now(),
        nbf: None,
        jti: "jti-1".into(),
        client_id: "cb_client".into(),
        scope: Some(scope.into()),
        cnf: cert_der.map(|der| JwtConfirmation {
            x5t_s256: URL_SAFE_NO_PAD.encode(Sha256::digest(der)),
        }),
        status: status.map(|s| JwtStatus { status_list: s }),
    }
}

fn jwt_with(claims: &JwtClaims, signer: &P256Signer) -> String {
    sign_jwt(claims, &signer.public_key().kid(), signer).unwrap()
}

async fn call(
    pki: &Pki,
    api: &Api,
    path: &str,
    identity: Option<&DeviceBundle>,
    authorization: Option<&str>,
) -> (RawResponse, serde_json::Value) {
    let mut headers = Vec::new();
    if let Some(a) = authorization {
        headers.push((header::AUTHORIZATION, HeaderValue::from_str(a).unwrap()));
    }
    let raw = fetcher(pki, identity)
        .send(
            Method::GET,
            &format!("{}{path}", api.server.base_url()),
            headers,
            Vec::new(),
        )
        .await
        .unwrap();
    let json = serde_json::from_slice(&raw.body).unwrap_or(serde_json::Value::Null);
    (raw, json)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Requires a refusal with `status`, body `error`, and a description containing `needle`.
fn refused(answer: &(RawResponse, serde_json::Value), status: u16, error: &str, needle: &str) {
    let (raw, json) = answer;
    assert_eq!(raw.status, status, "{json}");
    assert_eq!(json["error"], error, "{json}");
    let description = json["error_description"].as_str().unwrap();
    assert!(
        description.contains(needle),
        "{needle:?} not in {description:?}"
    );
    assert_eq!(raw.header("cache-control"), Some("no-store"));
    if status == 401 || status == 403 {
        let challenge = raw.header("www-authenticate").unwrap();
        assert!(challenge.starts_with("Bearer realm=\""), "{challenge}");
        assert!(
            challenge.contains(&format!("error=\"{error}\"")),
            "{challenge}"
        );
        assert!(challenge.contains("error_description=\""), "{challenge}");
    }
}

#[tokio::test]
async fn bound_tokens_need_the_certificate_they_are_bound_to() {
    let pki = make_pki("layer1");
    let broker = FakeBroker::start(&pki);
    broker.publish(1, &[], &[], 60);
    let api = start_api(&pki, &broker, static_keys());
    let status = StatusRef {
        idx: 0,
        uri: broker.list_uri(1),
    };
    let cwt = bearer(&cwt_for(
        &pki.device,
        Some(status.clone()),
        "telemetry:read",
    ));
    let jwt = bearer(&jwt_with(
        &jwt_claims_for(Some(&pki.device.cert.der), Some(status), "telemetry:read"),
        &broker_key(),
    ));

    // The right certificate: admitted, and the handler sees the token.
    let (raw, json) = call(&pki, &api, "/read", Some(&pki.device), Some(&cwt)).await;
    assert_eq!(raw.status, 200, "{json}");
    assert_eq!(json["format"], "cwt");
    assert_eq!(json["sub"], "svc-a");
    let (raw, json) = call(&pki, &api, "/read", Some(&pki.device), Some(&jwt)).await;
    assert_eq!(raw.status, 200, "{json}");
    assert_eq!(json["format"], "jwt");
    assert_eq!(json["client_id"], "cb_client");

    // Another certificate of the same CA: refused, for both formats.
    for token in [&cwt, &jwt] {
        let answer = call(&pki, &api, "/read", Some(&pki.other_device), Some(token)).await;
        refused(
            &answer,
            401,
            "invalid_token",
            "not the one the token is bound to",
        );
        // No certificate at all.
        let answer = call(&pki, &api, "/read", None, Some(token)).await;
        refused(&answer, 401, "invalid_token", "came without one");
    }
    // An unprotected route is untouched.
    let (raw, _) = call(&pki, &api, "/open", None, None).await;
    assert_eq!(raw.status, 200);
    assert_eq!(raw.body, b"open");
    let stats = api.layer.authenticator().stats();
    assert_eq!((stats.accepted, stats.rejected), (2, 4));
    assert_eq!(stats.status_fetches, 1, "one list fetch for all of them");
    broker.server.shutdown().await;
    api.server.shutdown().await;
}

#[tokio::test]
async fn header_audience_expiry_and_scope_failures() {
    let pki = make_pki("layer2");
    let broker = FakeBroker::start(&pki);
    let api = start_api(&pki, &broker, static_keys());
    let dev = Some(&pki.device);

    // No Authorization header: 401 without an error code in the challenge.
    let (raw, json) = call(&pki, &api, "/read", dev, None).await;
    assert_eq!(raw.status, 401);
    assert_eq!(
        raw.header("www-authenticate"),
        Some(format!("Bearer realm=\"{AUD}\"").as_str())
    );
    assert_eq!(json["error"], "invalid_token");
    // Another scheme: the same.
    let (raw, _) = call(&pki, &api, "/read", dev, Some("Basic dXNlcjpwdw==")).await;
    assert_eq!(raw.status, 401);
    assert!(!raw.header("www-authenticate").unwrap().contains("error="));
    // A malformed Bearer header: 400 invalid_request.
    for bad in ["Bearer", "Bearer ", "Bearer a b", "Bearer {}"] {
        let answer = call(&pki, &api, "/read", dev, Some(bad)).await;
        refused(&answer, 400, "invalid_request", "b64token");
    }
    // Lower-case scheme is fine (and reaches verification).
    let answer = call(&pki, &api, "/read", dev, Some("bearer garbage")).await;
    refused(&answer, 401, "invalid_token", "");

    // Another audience.
    let mut c = jwt_claims_for(Some(&pki.device.cert.der), None, "telemetry:read");
    c.aud = JwtAudience(vec!["https://reports.example.com".into()]);
    let answer = call(
        &pki,
        &api,
        "/read",
        dev,
        Some(&bearer(&jwt_with(&c, &broker_key()))),
    )
    .await;
    refused(&answer, 401, "invalid_token", "audience");
    // Expired.
    let mut c = jwt_claims_for(Some(&pki.device.cert.der), None, "telemetry:read");
    c.iat = now() - 7200;
    c.exp = now() - 3600;
    let answer = call(
        &pki,
        &api,
        "/read",
        dev,
        Some(&bearer(&jwt_with(&c, &broker_key()))),
    )
    .await;
    refused(&answer, 401, "invalid_token", "expired");
    // Wrong issuer.
    let mut c = jwt_claims_for(Some(&pki.device.cert.der), None, "telemetry:read");
    c.iss = "https://evil.example.com".into();
    let answer = call(
        &pki,
        &api,
        "/read",
        dev,
        Some(&bearer(&jwt_with(&c, &broker_key()))),
    )
    .await;
    refused(&answer, 401, "invalid_token", "issuer");
    // Signed by a stranger.
    let c = jwt_claims_for(Some(&pki.device.cert.der), None, "telemetry:read");
    let answer = call(
        &pki,
        &api,
        "/read",
        dev,
        Some(&bearer(&jwt_with(&c, &rotated_key()))),
    )
    .await;
    refused(
        &answer,
        401,
        "invalid_token",
        "not in the verification key set",
    );
    // A bearer token (no cnf): refused.
    let c = jwt_claims_for(None, None, "telemetry:read");
    let answer = call(
        &pki,
        &api,
        "/read",
        dev,
        Some(&bearer(&jwt_with(&c, &broker_key()))),
    )
    .await;
    refused(&answer, 401, "invalid_token", "bearer token");

    // A valid token without the route's scope: 403 insufficient_scope.
    let c = jwt_claims_for(Some(&pki.device.cert.der), None, "telemetry:read");
    let token = bearer(&jwt_with(&c, &broker_key()));
    let (raw, _) = call(&pki, &api, "/read", dev, Some(&token)).await;
    assert_eq!(raw.status, 200, "no status claim: not revocable, accepted");
    let answer = call(&pki, &api, "/admin", dev, Some(&token)).await;
    refused(&answer, 403, "insufficient_scope", "admin:write");
    assert!(
        answer
            .0
            .header("www-authenticate")
            .unwrap()
            .contains("scope=\"admin:write\"")
    );
    // ... but a token bound to another certificate is 401 there, not 403.
    let answer = call(&pki, &api, "/admin", Some(&pki.other_device), Some(&token)).await;
    refused(&answer, 401, "invalid_token", "bound");
    assert_eq!(broker.list_hits(), 0, "no token named a list");
    broker.server.shutdown().await;
    api.server.shutdown().await;
}

#[tokio::test]
async fn revoked_and_suspended_tokens_are_refused_from_the_cached_list() {
    let pki = make_pki("layer3");
    let broker = FakeBroker::start(&pki);
    broker.publish(1, &[], &[], 1);
    let api = start_api(&pki, &broker, static_keys());
    let dev = Some(&pki.device);
    let token = |idx: u64| {
        bearer(&cwt_for(
            &pki.device,
            Some(StatusRef {
                idx,
                uri: broker.list_uri(1),
            }),
            "telemetry:read",
        ))
    };

    // Ten requests: about one list fetch per ttl (1 s), not one per request.
    let started = std::time::Instant::now();
    for _ in 0..10 {
        let (raw, json) = call(&pki, &api, "/read", dev, Some(&token(5))).await;
        assert_eq!(raw.status, 200, "{json}");
    }
    let allowed = started.elapsed().as_secs() + 2;
    assert!(
        broker.list_hits() <= allowed,
        "{} fetches in {:?}",
        broker.list_hits(),
        started.elapsed()
    );

    // Entry 5 is revoked and 6 suspended; the cached list still says VALID
    // until its ttl (1 s) has passed.
    broker.publish(1, &[5], &[6], 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let answer = call(&pki, &api, "/read", dev, Some(&token(5))).await;
    refused(&answer, 401, "invalid_token", "revoked");
    let answer = call(&pki, &api, "/read", dev, Some(&token(6))).await;
    refused(&answer, 401, "invalid_token", "suspended");
    let (raw, _) = call(&pki, &api, "/read", dev, Some(&token(7))).await;
    assert_eq!(raw.status, 200);
    // Out of the list's bounds (1024 entries).
    let answer = call(&pki, &api, "/read", dev, Some(&token(5000))).await;
    refused(&answer, 401, "invalid_token", "outside the list");

    // A list that does not exist: 404 from the broker → 503, fail closed.
    let missing = bearer(&cwt_for(
        &pki.device,
        Some(StatusRef {
            idx: 0,
            uri: broker.list_uri(99),
        }),
        "telemetry:read",
    ));
    let answer = call(&pki, &api, "/read", dev, Some(&missing)).await;
    refused(&answer, 503, "temporarily_unavailable", "cannot be checked");
    assert_eq!(answer.0.header("retry-after"), Some("5"));
    let before = broker.list_hits();
    for _ in 0..5 {
        let answer = call(&pki, &api, "/read", dev, Some(&missing)).await;
        assert_eq!(answer.0.status, 503);
    }
    assert_eq!(
        broker.list_hits(),
        before,
        "a failed list is not refetched per request"
    );
    broker.server.shutdown().await;
    api.server.shutdown().await;
}

#[tokio::test]
async fn a_token_cannot_make_the_api_fetch_other_urls() {
    let pki = make_pki("layer4");
    let broker = FakeBroker::start(&pki);
    let other = FakeBroker::start(&pki);
    other.publish(1, &[], &[], 60);
    let api = start_api(&pki, &broker, static_keys());
    // Signed by the broker, but naming a list on another server (same CA).
    for uri in [
        other.list_uri(1),
        format!("{}/.well-known/jwks.json", broker.server.base_url()),
        format!("{}1/../../.well-known/jwks.json", broker.status_base()),
        "http://127.0.0.1:1/status/1".to_string(),
    ] {
        let token = bearer(&cwt_for(
            &pki.device,
            Some(StatusRef { idx: 0, uri }),
            "telemetry:read",
        ));
        let answer = call(&pki, &api, "/read", Some(&pki.device), Some(&token)).await;
        refused(&answer, 401, "invalid_token", "will not fetch");
    }
    assert_eq!(other.list_hits(), 0);
    assert_eq!(broker.list_hits(), 0);
    assert_eq!(broker.state.jwks_hits.load(Ordering::SeqCst), 0);
    other.server.shutdown().await;
    broker.server.shutdown().await;
    api.server.shutdown().await;
}

#[tokio::test]
async fn concurrent_requests_share_one_list_fetch_and_remote_keys_work() {
    let pki = make_pki("layer5");
    let broker = FakeBroker::start(&pki);
    broker.publish(1, &[3], &[], 60);
    broker.state.list_delay_ms.store(200, Ordering::SeqCst);
    let remote =
        Arc::new(RemoteKeys::new(broker.jwks_url(), fetcher(&pki, None), quick_config()).unwrap());
    let api = Arc::new(start_api(&pki, &broker, remote.clone().into()));
    let pki = Arc::new(pki);
    let status = |idx| StatusRef {
        idx,
        uri: broker.list_uri(1),
    };
    let good = bearer(&cwt_for(&pki.device, Some(status(0)), "telemetry:read"));
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let (pki, api, good) = (pki.clone(), api.clone(), good.clone());
            tokio::spawn(async move {
                call(&pki, &api, "/read", Some(&pki.device), Some(&good))
                    .await
                    .0
                    .status
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(broker.list_hits(), 1, "one fetch for concurrent requests");
    assert_eq!(remote.fetch_count(), 1);
    let revoked = bearer(&cwt_for(&pki.device, Some(status(3)), "telemetry:read"));
    let answer = call(&pki, &api, "/read", Some(&pki.device), Some(&revoked)).await;
    refused(&answer, 401, "invalid_token", "revoked");

    // The broker rotates to a new key: a token under the new kid makes the
    // API refetch the JWKS once.
    *broker.state.jwks.lock().unwrap() = jwks_of(&[&broker_key(), &rotated_key()]);
    tokio::time::sleep(Duration::from_millis(350)).await;
    let c = jwt_claims_for(Some(&pki.device.cert.der), None, "telemetry:read");
    let rotated = bearer(&jwt_with(&c, &rotated_key()));
    let (raw, json) = call(&pki, &api, "/read", Some(&pki.device), Some(&rotated)).await;
    assert_eq!(raw.status, 200, "{json}");
    assert_eq!(remote.fetch_count(), 2);
    // Random kids: no further fetch within the interval.
    for i in 0..5 {
        let forged = sign_jwt(&c, &format!("spray-{i}"), &rotated_key()).unwrap();
        let answer = call(
            &pki,
            &api,
            "/read",
            Some(&pki.device),
            Some(&bearer(&forged)),
        )
        .await;
        refused(
            &answer,
            401,
            "invalid_token",
            "not in the verification key set",
        );
    }
    assert_eq!(remote.fetch_count(), 2);
    broker.server.shutdown().await;
}

#[tokio::test]
async fn unreachable_keys_answer_503() {
    let pki = make_pki("layer6");
    let broker = FakeBroker::start(&pki);
    broker.state.fail.store(true, Ordering::SeqCst);
    let remote =
        Arc::new(RemoteKeys::new(broker.jwks_url(), fetcher(&pki, None), quick_config()).unwrap());
    let api = start_api(&pki, &broker, remote.into());
    let c = jwt_claims_for(Some(&pki.device.cert.der), None, "telemetry:read");
    let token = bearer(&jwt_with(&c, &broker_key()));
    let answer = call(&pki, &api, "/read", Some(&pki.device), Some(&token)).await;
    refused(&answer, 503, "temporarily_unavailable", "500");
    assert!(answer.0.header("www-authenticate").is_none());
    broker.server.shutdown().await;
    api.server.shutdown().await;
}

/// The error type round-trips its reason codes for the layer's refusals.
#[test]
fn new_reason_codes() {
    assert_eq!(
        VerifyError::NoClientCertificate.reason_code(),
        "no_certificate"
    );
    assert_eq!(VerifyError::Revoked.reason_code(), "revoked");
    assert_eq!(VerifyError::Suspended.reason_code(), "suspended");
    assert_eq!(TokenFormat::Jwt.as_str(), "jwt");
}
