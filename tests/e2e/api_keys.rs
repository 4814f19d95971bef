//! API keys against a running broker (real TLS on loopback): exchange at
//! `/oauth/token`, introspection, revocation, every refusal, the admin API,
//! and the verifier's axum layer admitting `X-API-Key` through introspection.

use std::time::Duration;

use anyhow::Context as _;
use certbound_broker::oauth::AUTH_FAILED;
use certbound_broker::store::NewApiKey;
use certbound_e2e::https::{HttpsClient, JsonAnswer};
use certbound_e2e::{API, GRANTED_SCOPE, unix_now};
use certbound_registry::config::DataDir;
use certbound_registry::credentials::{hash_secret, new_api_key};
use certbound_registry::registry::ADMIN_CLIENT_FILE;
use http::Method;

use crate::oauth::{JWT_API, OAuthFixture};

const CC: (&str, &str) = ("grant_type", "client_credentials");
const KEY_NAME: &str = "nightly-export";

/// `POST /oauth/token` with `X-API-Key: key` and `form`.
async fn exchange(
    h: &HttpsClient,
    key: &str,
    form: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> anyhow::Result<JsonAnswer> {
    let body = serde_urlencoded::to_string(form)?;
    let mut headers = vec![
        (
            "content-type",
            "application/x-www-form-urlencoded".to_string(),
        ),
        ("x-api-key", key.to_string()),
    ];
    if let Some((id, secret)) = basic {
        use base64::Engine as _;
        headers.push((
            "authorization",
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
            ),
        ));
    }
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    h.send(Method::POST, "/oauth/token", &headers, body.into_bytes())
        .await
}

fn expect_auth_failed(a: &JsonAnswer) -> anyhow::Result<()> {
    a.expect_error(401, "invalid_client")?;
    anyhow::ensure!(
        a.json["error_description"] == AUTH_FAILED,
        "every failed authentication reads the same: {}",
        a.json
    );
    Ok(())
}

/// Introspects `token` as the client `(id, secret)`.
async fn introspect(
    h: &HttpsClient,
    (id, secret): (&str, &str),
    token: &str,
) -> anyhow::Result<serde_json::Value> {
    let a = h
        .form("/oauth/introspect", &[("token", token)], Some((id, secret)))
        .await?;
    anyhow::ensure!(a.status == 200, "introspection: {} {}", a.status, a.json);
    Ok(a.json)
}

/// Waits (bounded) until the audit log holds an event matching `pred`.
async fn audited(
    o: &OAuthFixture,
    what: &str,
    pred: impl Fn(&certbound_broker::store::AuditEvent) -> bool,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let events = o.fx.registry.store.recent_audit(None, 10_000).await?;
        if events.iter().any(&pred) {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "not audited: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_is_exchanged_introspected_revoked_and_refused() -> anyhow::Result<()> {
    let o = OAuthFixture::new().await?;
    let reg = &o.fx.registry;
    let created = reg
        .create_api_key(
            KEY_NAME,
            &[
                (JWT_API.into(), "reports:read".into()),
                (API.into(), GRANTED_SCOPE.into()),
            ],
            Some(unix_now() + 90 * 86_400),
        )
        .await?;
    let key = created.api_key.clone();
    assert!(key.starts_with("cbk_") && key.len() == 47, "{key}");
    let subject = format!("cb_apikey:{KEY_NAME}");

    // Exchange: answered like a client's token (the API's format and ttl).
    let a = exchange(&o.https, &key, &[CC, ("audience", JWT_API)], None).await?;
    assert_eq!(a.status, 200, "{}", a.json);
    assert_eq!(a.json["token_type"], "Bearer");
    assert_eq!(a.json["expires_in"], 600);
    assert_eq!(a.json["scope"], "reports:read");
    let jwt = a.json["access_token"]
        .as_str()
        .context("token")?
        .to_string();
    let claims = {
        use certbound_proto::crypto::AwsLcVerifier;
        use certbound_proto::jwt::UnverifiedJwt;
        let keys = o.jwks().await?;
        let parsed = UnverifiedJwt::parse(&jwt, 8192)?;
        let k = keys.get(parsed.kid().context("kid")?).context("kid")?;
        parsed.verify(&AwsLcVerifier::new(k)?)?
    };
    assert_eq!(claims.sub, subject);
    assert_eq!(claims.client_id, subject);
    assert_eq!(claims.aud.0, vec![JWT_API.to_string()]);
    // Scopes are intersected with the key's grant.
    let a = exchange(
        &o.https,
        &key,
        &[
            CC,
            ("audience", JWT_API),
            ("scope", "reports:read reports:write"),
        ],
        None,
    )
    .await?;
    assert_eq!(a.json["scope"], "reports:read", "{}", a.json);
    exchange(
        &o.https,
        &key,
        &[CC, ("audience", JWT_API), ("scope", "reports:write")],
        None,
    )
    .await?
    .expect_error(400, "invalid_scope")?;
    // A CWT API: the same key, that API's format.
    let a = exchange(&o.https, &key, &[CC, ("audience", API)], None).await?;
    assert_eq!(a.status, 200, "{}", a.json);
    let cwt = a.json["access_token"].as_str().context("cwt")?.to_string();
    assert!(!cwt.contains('.'), "a CWT, not a JWT");

    // The client `reporting` (grants on both APIs) introspects the key ...
    let reporting = (o.client_id.as_str(), o.secret.as_str());
    let i = introspect(&o.https, reporting, &key).await?;
    assert_eq!(i["active"], true, "{i}");
    assert_eq!(i["sub"], subject);
    assert_eq!(i["exp"], created.expires_at.context("expiry")?);
    assert!(
        i["scope"]
            .as_str()
            .is_some_and(|s| s.contains("reports:read"))
    );
    // ... and the tokens it was exchanged for.
    let t = introspect(&o.https, reporting, &jwt).await?;
    assert_eq!(t["active"], true, "{t}");
    assert_eq!(t["sub"], subject);
    let t = introspect(&o.https, reporting, &cwt).await?;
    assert_eq!(t["active"], true, "{t}");
    // A client granted no API of the key learns nothing.
    reg.create_api("https://other.example.com", "other:read", 600)
        .await?;
    let other = reg
        .create_client(
            "other",
            &[("https://other.example.com".into(), "other:read".into())],
            None,
            true,
        )
        .await?;
    let other_secret = other.client_secret.clone().context("secret")?;
    let i = introspect(&o.https, (&other.client_id, &other_secret), &key).await?;
    assert_eq!(i, serde_json::json!({ "active": false }));
    // And the key cannot ask for that API.
    exchange(
        &o.https,
        &key,
        &[CC, ("audience", "https://other.example.com")],
        None,
    )
    .await?
    .expect_error(400, "unauthorized_client")?;

    // One credential per request.
    exchange(
        &o.https,
        &key,
        &[CC, ("audience", JWT_API)],
        Some((&o.client_id, &o.secret)),
    )
    .await?
    .expect_error(400, "invalid_request")?;
    exchange(
        &o.https,
        &key,
        &[
            CC,
            ("audience", JWT_API),
            ("client_id", &o.client_id),
            ("client_secret", &o.secret),
        ],
        None,
    )
    .await?
    .expect_error(400, "invalid_request")?;
    // An API key is no client credential at introspection.
    let body = serde_urlencoded::to_string([("token", jwt.as_str())])?;
    o.https
        .send(
            Method::POST,
            "/oauth/introspect",
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("x-api-key", &key),
            ],
            body.into_bytes(),
        )
        .await?
        .expect_error(400, "invalid_request")?;

    // Unknown, malformed and expired keys read like any failed client auth.
    expect_auth_failed(
        &exchange(&o.https, &new_api_key(), &[CC, ("audience", JWT_API)], None).await?,
    )?;
    expect_auth_failed(
        &exchange(&o.https, "cbk_short", &[CC, ("audience", JWT_API)], None).await?,
    )?;
    let expired = new_api_key();
    reg.store
        .create_api_key(
            &NewApiKey {
                id: "ak_expired",
                name: "expired-job",
                key_hash: &hash_secret(&expired),
                expires_at: Some(unix_now() - 1),
                grants: &[(JWT_API.into(), "reports:read".into())],
            },
            unix_now() - 100,
        )
        .await?;
    expect_auth_failed(&exchange(&o.https, &expired, &[CC, ("audience", JWT_API)], None).await?)?;
    assert_eq!(
        introspect(&o.https, reporting, &expired).await?,
        serde_json::json!({ "active": false })
    );

    // The last use is recorded.
    let listed = reg.list_api_keys(false).await?;
    let k = listed
        .iter()
        .find(|k| k.name == KEY_NAME)
        .context("listed")?;
    assert!(
        k.last_used_at.is_some_and(|t| t + 120 >= unix_now()),
        "{k:?}"
    );

    // Revocation: the next use is refused, its tokens turn inactive.
    reg.revoke_api_key(KEY_NAME).await?;
    expect_auth_failed(&exchange(&o.https, &key, &[CC, ("audience", JWT_API)], None).await?)?;
    assert_eq!(
        introspect(&o.https, reporting, &key).await?["active"],
        false
    );
    assert_eq!(
        introspect(&o.https, reporting, &jwt).await?["active"],
        false
    );
    assert_eq!(
        introspect(&o.https, reporting, &cwt).await?["active"],
        false
    );

    // Audited under the key's name, never the key.
    let actor = format!("apikey:{KEY_NAME}");
    audited(&o, "token.issued", |e| {
        e.action == "token.issued" && e.actor == actor
    })
    .await?;
    audited(&o, "token.refused (scope)", |e| {
        e.action == "token.refused" && e.actor == actor
    })
    .await?;
    audited(&o, "token.refused (unknown key)", |e| {
        e.action == "token.refused" && e.actor.starts_with("apikey:(")
    })
    .await?;
    audited(&o, "apikey.created", |e| {
        e.action == "apikey.created" && e.subject == subject
    })
    .await?;
    audited(&o, "apikey.revoked", |e| {
        e.action == "apikey.revoked" && e.subject == subject
    })
    .await?;
    let events = reg.store.recent_audit(None, 10_000).await?;
    let text = serde_json::to_string(&events)?;
    assert!(!text.contains(&key[4..]), "the key is in the audit log");
    o.fx.shutdown().await;
    Ok(())
}

/// A device certificate next to an API key is refused as at every /oauth
/// route; a service certificate next to one is a second credential.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_with_a_certificate_is_refused() -> anyhow::Result<()> {
    let o = OAuthFixture::new().await?;
    let key =
        o.fx.registry
            .create_api_key("job", &[(JWT_API.into(), "reports:read".into())], None)
            .await?
            .api_key;
    let device = o.fx.device("sensor-1").await?;
    let as_device = HttpsClient::new(
        &o.fx.https_url(),
        o.fx.path(),
        Some((&device.cert_file, &device.key_file)),
    )?;
    let a = exchange(&as_device, &key, &[CC, ("audience", JWT_API)], None).await?;
    a.expect_error(401, "invalid_client")?;
    assert!(
        a.json["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("device certificate")),
        "{}",
        a.json
    );
    let service =
        o.fx.registry
            .provision_service("reporting", &o.fx.path().join("services"), 30)
            .await?;
    let as_service = HttpsClient::new(
        &o.fx.https_url(),
        o.fx.path(),
        Some((&service.cert_file, &service.key_file)),
    )?;
    exchange(&as_service, &key, &[CC, ("audience", JWT_API)], None)
        .await?
        .expect_error(400, "invalid_request")?;
    // Without a certificate the key works.
    let a = exchange(&o.https, &key, &[CC, ("audience", JWT_API)], None).await?;
    assert_eq!(a.status, 200, "{}", a.json);
    o.fx.shutdown().await;
    Ok(())
}

/// Each key has its own token rate limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_are_rate_limited_per_key() -> anyhow::Result<()> {
    let fx = certbound_e2e::Fixture::with_config(&[
        ("client_per_sec = 10.0", "client_per_sec = 0.01"),
        ("client_burst = 50", "client_burst = 2"),
    ])
    .await?;
    let https = HttpsClient::new(&fx.https_url(), fx.path(), None)?;
    let grants = [(API.to_string(), GRANTED_SCOPE.to_string())];
    let a = fx
        .registry
        .create_api_key("a", &grants, None)
        .await?
        .api_key;
    let b = fx
        .registry
        .create_api_key("b", &grants, None)
        .await?
        .api_key;
    for _ in 0..2 {
        let r = exchange(&https, &a, &[CC, ("audience", API)], None).await?;
        assert_eq!(r.status, 200, "{}", r.json);
    }
    let r = exchange(&https, &a, &[CC, ("audience", API)], None).await?;
    assert_eq!(r.status, 429, "{}", r.json);
    assert!(
        r.json["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("API key a"))
    );
    // Another key is not limited by the first.
    let r = exchange(&https, &b, &[CC, ("audience", API)], None).await?;
    assert_eq!(r.status, 200, "{}", r.json);
    fx.shutdown().await;
    Ok(())
}

/// `GET path` with `X-API-Key: key`.
async fn with_key(h: &HttpsClient, path: &str, key: &str) -> anyhow::Result<JsonAnswer> {
    h.send(Method::GET, path, &[("x-api-key", key)], Vec::new())
        .await
}

async fn admin_token(o: &OAuthFixture) -> anyhow::Result<String> {
    let creds: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        o.fx.path().join(ADMIN_CLIENT_FILE),
    )?)?;
    let grant = o
        .https
        .token_with_secret(
            creds["client_id"].as_str().context("client_id")?,
            creds["client_secret"].as_str().context("client_secret")?,
            certbound_registry::registry::ADMIN_API,
            None,
        )
        .await?;
    Ok(grant["access_token"].as_str().context("token")?.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_creates_lists_and_revokes_api_keys() -> anyhow::Result<()> {
    let o = OAuthFixture::new().await?;
    let token = admin_token(&o).await?;
    let a = o
        .https
        .json(
            Method::POST,
            "/admin/v1/api-keys",
            &token,
            &serde_json::json!({
                "name": "nightly",
                "grants": [{ "api": JWT_API, "scopes": "reports:read" }],
                "expires_in_secs": 3600
            }),
        )
        .await?;
    assert_eq!(a.status, 201, "{}", a.json);
    let key = a.json["api_key"].as_str().context("api_key")?.to_string();
    assert!(a.json["expires_at"].as_u64().is_some());
    // The key works.
    let t = exchange(&o.https, &key, &[CC, ("audience", JWT_API)], None).await?;
    assert_eq!(t.status, 200, "{}", t.json);
    // Listed without the key or its hash.
    let l = o.https.get("/admin/v1/api-keys", Some(&token)).await?;
    assert_eq!(l.status, 200);
    assert_eq!(l.json[0]["name"], "nightly");
    assert_eq!(l.json[0]["state"], "active");
    let text = String::from_utf8_lossy(&l.raw.body).to_string();
    assert!(
        !text.contains(&key[4..]) && !text.contains(&hash_secret(&key)),
        "{text}"
    );
    // The admin API cannot be granted to a key.
    let bad = o
        .https
        .json(
            Method::POST,
            "/admin/v1/api-keys",
            &token,
            &serde_json::json!({
                "name": "admin-key",
                "grants": [{ "api": "urn:certbound:admin", "scopes": "admin:read" }]
            }),
        )
        .await?;
    assert_eq!(bad.status, 400, "{}", bad.json);
    // Revoke: at once.
    let d = o
        .https
        .send(
            Method::DELETE,
            "/admin/v1/api-keys/nightly",
            &[("authorization", &format!("Bearer {token}"))],
            Vec::new(),
        )
        .await?;
    assert_eq!(d.status, 200, "{}", d.json);
    expect_auth_failed(&exchange(&o.https, &key, &[CC, ("audience", JWT_API)], None).await?)?;
    let again = o
        .https
        .send(
            Method::DELETE,
            "/admin/v1/api-keys/nightly",
            &[("authorization", &format!("Bearer {token}"))],
            Vec::new(),
        )
        .await?;
    assert_eq!(again.status, 404, "{}", again.json);
    let l = o
        .https
        .get("/admin/v1/api-keys?all=true", Some(&token))
        .await?;
    assert_eq!(l.json[0]["state"], "revoked", "{}", l.json);
    o.fx.shutdown().await;
    Ok(())
}

/// The verifier's axum layer admits `X-API-Key` through the broker's
/// introspection (with the backend's own client credentials), requires the
/// route's scopes, and refuses a revoked key once its cached answer expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_layer_accepts_api_keys_through_introspection() -> anyhow::Result<()> {
    use axum::routing::get;
    use certbound_verify::VerifiedToken;
    use certbound_verify::VerifierConfig;
    use certbound_verify::http::{
        ApiKeyIntrospection, ClientAuth, HttpsFetcher, StatusCheck, TlsServer, VerifyConfig,
        VerifyLayer, client_tls_config, server_tls_config,
    };

    let o = OAuthFixture::new().await?;
    let key =
        o.fx.registry
            .create_api_key("job", &[(JWT_API.into(), "reports:read".into())], None)
            .await?
            .api_key;
    let data = DataDir::new(o.fx.path());
    let ca = std::fs::read_to_string(data.pki().chain())?;
    let fetcher = HttpsFetcher::new(
        client_tls_config(&ca, None)?,
        Duration::from_secs(10),
        1 << 16,
    );
    let mut introspection = ApiKeyIntrospection::new(
        format!("{}/oauth/introspect", o.fx.https_url()),
        &o.client_id,
        &o.secret,
        fetcher,
    );
    // No reuse of answers, so a revocation shows on the next request.
    introspection.positive_ttl = Duration::ZERO;
    let mut verifier = VerifierConfig::new(JWT_API);
    verifier.issuer = Some(certbound_e2e::ISSUER.into());
    verifier.allow_bearer = true;
    let config = VerifyConfig::new(verifier, o.jwks().await?, StatusCheck::Ignore)
        .with_api_keys(introspection);
    let auth = VerifyLayer::new(config)?;
    async fn whoami(token: VerifiedToken) -> String {
        format!(
            "{} {}",
            token.subject().unwrap_or("-"),
            token.format.as_str()
        )
    }
    let app = axum::Router::new()
        .route(
            "/read",
            get(whoami).layer(auth.with_scopes(["reports:read"])),
        )
        .route(
            "/write",
            get(whoami).layer(auth.with_scopes(["reports:write"])),
        );
    let tls = server_tls_config(
        &std::fs::read_to_string(data.server_cert())?,
        &std::fs::read_to_string(data.server_key())?,
        None,
        ClientAuth::None,
        true,
    )?;
    let server = TlsServer::start("127.0.0.1:0".parse()?, tls, app)?;
    let backend = HttpsClient::new(&server.base_url(), o.fx.path(), None)?;
    let a = with_key(&backend, "/read", &key).await?;
    assert_eq!(a.status, 200);
    assert_eq!(
        String::from_utf8_lossy(&a.raw.body),
        "cb_apikey:job api_key"
    );
    // A scope the key lacks.
    assert_eq!(with_key(&backend, "/write", &key).await?.status, 403);
    // An unknown key.
    assert_eq!(
        with_key(&backend, "/read", &new_api_key()).await?.status,
        401
    );
    // Revoked: refused.
    o.fx.registry.revoke_api_key("job").await?;
    assert_eq!(with_key(&backend, "/read", &key).await?.status, 401);
    // Tokens still work through the same layer.
    let grant = o
        .https
        .token_with_secret(&o.client_id, &o.secret, JWT_API, None)
        .await?;
    let bearer = grant["access_token"].as_str().context("token")?;
    let a = backend.get("/read", Some(bearer)).await?;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.raw.body));
    server.shutdown().await;
    o.fx.shutdown().await;
    Ok(())
}

/// API keys hold roles: the key's effective grants are its own and its
/// roles', a role change counts from the next exchange, and a role can never
/// give a key the admin API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_get_the_grants_of_their_roles_but_never_the_admin_api() -> anyhow::Result<()> {
    use certbound_registry::registry::{ADMIN_API, RoleTarget};
    let o = OAuthFixture::new().await?;
    let reg = &o.fx.registry;
    let key = reg
        .create_api_key("etl", &[(JWT_API.into(), "reports:read".into())], None)
        .await?
        .api_key;
    reg.create_role(
        "writer",
        "",
        &[
            (JWT_API.into(), "reports:write".into()),
            (API.into(), GRANTED_SCOPE.into()),
        ],
    )
    .await?;
    reg.create_role("operator", "", &[(ADMIN_API.into(), "admin:read".into())])
        .await?;
    for role in ["writer", "operator"] {
        let done = reg
            .assign_role(role, &RoleTarget::ApiKey("etl".into()))
            .await?;
        assert_eq!(done.holder_kind, "apikey");
    }
    let scope_for = |aud: &'static str| {
        let h = &o.https;
        let key = key.clone();
        async move { exchange(h, &key, &[CC, ("audience", aud)], None).await }
    };
    let a = scope_for(JWT_API).await?;
    assert_eq!(a.status, 200, "{}", a.json);
    let mut got: Vec<&str> = a.json["scope"]
        .as_str()
        .context("scope")?
        .split(' ')
        .collect();
    got.sort_unstable();
    assert_eq!(
        got,
        ["reports:read", "reports:write"],
        "own grant and the role's"
    );
    let a = scope_for(API).await?;
    assert_eq!(a.status, 200, "a grant from the role alone: {}", a.json);
    let a = scope_for(ADMIN_API).await?;
    a.expect_error(400, "unauthorized_client")?;
    // Taking the role away counts from the next exchange.
    reg.unassign_role("writer", &RoleTarget::ApiKey("etl".into()))
        .await?;
    let a = scope_for(API).await?;
    a.expect_error(400, "unauthorized_client")?;
    let role = reg.role("operator").await?;
    assert_eq!(role.api_keys, ["etl"], "the role lists the key by name");
    o.fx.shutdown().await;
    Ok(())
}

/// API keys carry attributes: the API's declared custom claims and
/// `{attr.NAME}` scopes come from them, as for clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_attributes_become_custom_claims_and_scopes() -> anyhow::Result<()> {
    use base64::Engine as _;
    use certbound_broker::store::AttrHolder;
    use certbound_proto::custom_claims::ClaimValue;
    use certbound_registry::registry::parse_claim_decl;
    let o = OAuthFixture::new().await?;
    let reg = &o.fx.registry;
    reg.create_api_with_format(
        "https://sites.example.com",
        "read:berlin read:paris",
        600,
        "jwt",
    )
    .await?;
    reg.set_api_claims(
        "https://sites.example.com",
        &[parse_claim_decl("site,jwt=site")?],
    )
    .await?;
    let key = reg
        .create_api_key(
            "site-job",
            &[(
                "https://sites.example.com".into(),
                "read:{attr.site}".into(),
            )],
            None,
        )
        .await?
        .api_key;
    // Without the attribute: the placeholder grants nothing.
    let a = exchange(
        &o.https,
        &key,
        &[CC, ("audience", "https://sites.example.com")],
        None,
    )
    .await?;
    a.expect_error(400, "invalid_scope")?;
    reg.change_attributes(
        AttrHolder::ApiKey,
        "site-job",
        &[("site".into(), ClaimValue::Text("berlin".into()))],
        &[],
    )
    .await?;
    let a = exchange(
        &o.https,
        &key,
        &[CC, ("audience", "https://sites.example.com")],
        None,
    )
    .await?;
    assert_eq!(a.status, 200, "{}", a.json);
    assert_eq!(a.json["scope"], "read:berlin");
    let jwt = a.json["access_token"].as_str().context("token")?;
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(jwt.split('.').nth(1).context("payload")?)?,
    )?;
    assert_eq!(claims["site"], "berlin", "{claims}");
    o.fx.shutdown().await;
    Ok(())
}
