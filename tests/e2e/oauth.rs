//! OAuth 2.0 for backend services over real TLS on loopback: every client
//! authentication method, every refusal, JWT and CWT formats, certificate
//! binding (RFC 8705), ACE over HTTPS, discovery.

use anyhow::Context as _;
use base64::Engine as _;
use certbound_e2e::https::HttpsClient;
use certbound_e2e::{API, Fixture, GRANTED_SCOPE, ISSUER, unix_now};
use certbound_proto::ace::{AceErrorCode, AceResponse};
use certbound_proto::cbor::Limits;
use certbound_proto::crypto::AwsLcVerifier;
use certbound_proto::jwt::UnverifiedJwt;
use certbound_verify::KeySet;
use http::Method;

/// An API whose client tokens are JWTs.
pub const JWT_API: &str = "https://reports.example.com";

/// A broker with a JWT API and a secret client `reporting` (grant
/// `reports:read` on [`JWT_API`] and `telemetry:write` on [`API`]).
pub struct OAuthFixture {
    pub fx: Fixture,
    pub https: HttpsClient,
    pub client_id: String,
    pub secret: String,
}

impl OAuthFixture {
    pub async fn new() -> anyhow::Result<Self> {
        let fx = Fixture::new().await?;
        fx.registry
            .create_api_with_format(JWT_API, "reports:read reports:write", 600, "jwt")
            .await?;
        let created = fx
            .registry
            .create_client(
                "reporting",
                &[
                    (JWT_API.into(), "reports:read".into()),
                    (API.into(), GRANTED_SCOPE.into()),
                ],
                None,
                true,
            )
            .await?;
        let https = HttpsClient::new(&fx.https_url(), fx.path(), None)?;
        Ok(Self {
            https,
            client_id: created.client_id,
            secret: created.client_secret.context("a secret client")?,
            fx,
        })
    }

    /// The broker's published keys, fetched from /.well-known/jwks.json.
    pub async fn jwks(&self) -> anyhow::Result<KeySet> {
        let a = self.https.get("/.well-known/jwks.json", None).await?;
        anyhow::ensure!(a.status == 200, "jwks: {}", a.status);
        Ok(KeySet::from_jwks(std::str::from_utf8(&a.raw.body)?)?)
    }
}

fn jwt_claims(token: &str, keys: &KeySet) -> anyhow::Result<certbound_proto::jwt::JwtClaims> {
    let jwt = UnverifiedJwt::parse(token, 8192)?;
    let key = keys.get(jwt.kid().context("kid")?).context("kid in jwks")?;
    Ok(jwt.verify(&AwsLcVerifier::new(key)?)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_secret_basic_gets_a_verifiable_rfc9068_jwt() -> anyhow::Result<()> {
    let o = OAuthFixture::new().await?;
    let grant = o
        .https
        .token_with_secret(&o.client_id, &o.secret, JWT_API, None)
        .await?;
    assert_eq!(grant["token_type"], "Bearer");
    assert_eq!(grant["expires_in"], 600);
    assert_eq!(
        grant["scope"], "reports:read",
        "no scope asked: the grant's defaults"
    );
    let token = grant["access_token"].as_str().context("access_token")?;
    let header: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.split('.').next().context("header")?)?,
    )?;
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "ES256");
    let claims = jwt_claims(token, &o.jwks().await?)?;
    assert_eq!(claims.iss, ISSUER);
    assert_eq!(claims.sub, o.client_id);
    assert_eq!(claims.client_id, o.client_id);
    assert!(claims.aud.contains(JWT_API));
    assert!(claims.exp > unix_now() && claims.exp <= unix_now() + 601);
    assert!(
        claims.cnf.is_none(),
        "a secret client gets an unbound token"
    );
    let status = claims
        .status
        .clone()
        .context("every token carries a status reference")?;
    assert!(status.status_list.uri.starts_with(&o.fx.https_url()));
    claims.validate(ISSUER, JWT_API, unix_now(), 0)?;
    o.fx.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_secret_post_and_cwt_format() -> anyhow::Result<()> {
    let o = OAuthFixture::new().await?;
    let a = o
        .https
        .form(
            "/oauth/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &o.client_id),
                ("client_secret", &o.secret),
                ("resource", API),
                ("scope", "telemetry:write firmware:read"),
            ],
            None,
        )
        .await?;
    assert_eq!(a.status, 200, "{}", a.json);
    assert_eq!(a.raw.header("cache-control"), Some("no-store"));
    assert_eq!(
        a.json["scope"], GRANTED_SCOPE,
        "least privilege: the intersection"
    );
    // A CWT, base64url: it verifies with the offline verifier as a bearer token.
    let bytes =
        certbound_verify::decode_token_text(a.json["access_token"].as_str().context("token")?)?;
    let mut config = certbound_verify::VerifierConfig::new(API);
    config.issuer = Some(ISSUER.into());
    config.allow_bearer = true;
    let verifier = certbound_verify::TokenVerifier::new(o.jwks().await?, config.clone());
    let verified = verifier.verify(&bytes, &[GRANTED_SCOPE], unix_now())?;
    assert_eq!(verified.claims.sub.as_deref(), Some(o.client_id.as_str()));
    assert!(verified.claims.cnf.is_none());
    // Without the bearer opt-in the unbound token is refused.
    config.allow_bearer = false;
    let strict = certbound_verify::TokenVerifier::new(o.jwks().await?, config);
    assert!(strict.verify(&bytes, &[GRANTED_SCOPE], unix_now()).is_err());
    o.fx.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_client_auth_binds_the_token_to_the_certificate() -> anyhow::Result<()> {
    let o = OAuthFixture::new().await?;
    let out = o.fx.path().join("services");
    let svc = o.fx.registry.provision_service("billing", &out, 30).await?;
    let created =
        o.fx.registry
            .create_client(
                "billing",
                &[
                    (JWT_API.into(), "reports:read".into()),
                    (API.into(), GRANTED_SCOPE.into()),
                ],
                Some("CN=billing"),
                false,
            )
            .await?;
    assert!(created.client_secret.is_none());
    let mtls = HttpsClient::new(
        &o.fx.https_url(),
        o.fx.path(),
        Some((&svc.cert_file, &svc.key_file)),
    )?;
    // JWT: cnf.x5t#S256 is the base64url SHA-256 of the certificate DER.
    let a = mtls
        .form(
            "/oauth/token",
            &[("grant_type", "client_credentials"), ("audience", JWT_API)],
            None,
        )
        .await?;
    assert_eq!(a.status, 200, "{}", a.json);
    let claims = jwt_claims(
        a.json["access_token"].as_str().context("token")?,
        &o.jwks().await?,
    )?;
    assert_eq!(claims.client_id, created.client_id);
    let pem = std::fs::read_to_string(&svc.cert_file)?;
    let der = certbound_pki::parse_pem_certs(&pem)?.remove(0);
    let expected = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(certbound_pki::thumbprint_sha256(&der));
    assert_eq!(claims.cnf.context("cnf")?.x5t_s256, expected);
    // CWT: cnf is the certificate's key, so the offline verifier's binding check passes for it.
    let a = mtls
        .form(
            "/oauth/token",
            &[("grant_type", "client_credentials"), ("audience", API)],
            None,
        )
        .await?;
    assert_eq!(a.status, 200, "{}", a.json);
    let bytes =
        certbound_verify::decode_token_text(a.json["access_token"].as_str().context("token")?)?;
    let mut config = certbound_verify::VerifierConfig::new(API);
    config.issuer = Some(ISSUER.into());
    let verified = certbound_verify::TokenVerifier::new(o.jwks().await?, config).verify(
        &bytes,
        &[GRANTED_SCOPE],
        unix_now(),
    )?;
    verified.check_certificate_binding(&der)?;
    // ... and fails for another certificate.
    let other = o.fx.registry.provision_service("other", &out, 30).await?;
    let other_der =
        certbound_pki::parse_pem_certs(&std::fs::read_to_string(&other.cert_file)?)?.remove(0);
    assert!(verified.check_certificate_binding(&other_der).is_err());

    // A certificate from the CA whose subject is not registered: invalid_client.
    let stranger = HttpsClient::new(
        &o.fx.https_url(),
        o.fx.path(),
        Some((&other.cert_file, &other.key_file)),
    )?;
    stranger
        .form(
            "/oauth/token",
            &[("grant_type", "client_credentials"), ("audience", JWT_API)],
            None,
        )
        .await?
        .expect_error(401, "invalid_client")?;
    // The certificate of one client with the client_id of another: invalid_client.
    mtls.form(
        "/oauth/token",
        &[
            ("grant_type", "client_credentials"),
            ("audience", JWT_API),
            ("client_id", &o.client_id),
        ],
        None,
    )
    .await?
    .expect_error(401, "invalid_client")?;
    o.fx.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_has_its_rfc6749_error() -> anyhow::Result<()> {
    let o = OAuthFixture::new().await?;
    let h = &o.https;
    let id = o.client_id.as_str();
    let secret = o.secret.as_str();
    let cc = ("grant_type", "client_credentials");

    // Wrong secret (Basic): 401 with a Basic challenge.
    let a = h
        .form(
            "/oauth/token",
            &[cc, ("audience", JWT_API)],
            Some((id, "cbs_wrong")),
        )
        .await?;
    a.expect_error(401, "invalid_client")?;
    assert!(
        a.raw
            .header("www-authenticate")
            .is_some_and(|v| v.starts_with("Basic"))
    );
    // Wrong secret (post).
    h.form(
        "/oauth/token",
        &[
            cc,
            ("audience", JWT_API),
            ("client_id", id),
            ("client_secret", "x"),
        ],
        None,
    )
    .await?
    .expect_error(401, "invalid_client")?;
    // Unknown client.
    h.form(
        "/oauth/token",
        &[cc, ("audience", JWT_API)],
        Some(("cb_nobody", secret)),
    )
    .await?
    .expect_error(401, "invalid_client")?;
    // No credentials at all.
    h.form("/oauth/token", &[cc, ("audience", JWT_API)], None)
        .await?
        .expect_error(401, "invalid_client")?;
    // client_id without a secret or certificate.
    h.form(
        "/oauth/token",
        &[cc, ("audience", JWT_API), ("client_id", id)],
        None,
    )
    .await?
    .expect_error(401, "invalid_client")?;
    // Two authentication methods at once.
    h.form(
        "/oauth/token",
        &[cc, ("audience", JWT_API), ("client_secret", secret)],
        Some((id, secret)),
    )
    .await?
    .expect_error(400, "invalid_request")?;
    // Client without a grant for the audience.
    o.fx.registry
        .create_api_with_format("https://billing.example.com", "bill:read", 300, "jwt")
        .await?;
    h.form(
        "/oauth/token",
        &[cc, ("audience", "https://billing.example.com")],
        Some((id, secret)),
    )
    .await?
    .expect_error(400, "unauthorized_client")?;
    // Unknown audience.
    h.form(
        "/oauth/token",
        &[cc, ("audience", "https://nowhere.example.com")],
        Some((id, secret)),
    )
    .await?
    .expect_error(400, "invalid_target")?;
    // Scope not granted.
    h.form(
        "/oauth/token",
        &[cc, ("audience", JWT_API), ("scope", "reports:write")],
        Some((id, secret)),
    )
    .await?
    .expect_error(400, "invalid_scope")?;
    // Unsupported grant type.
    h.form(
        "/oauth/token",
        &[("grant_type", "password"), ("audience", JWT_API)],
        Some((id, secret)),
    )
    .await?
    .expect_error(400, "unsupported_grant_type")?;
    // Missing grant type.
    h.form("/oauth/token", &[("audience", JWT_API)], Some((id, secret)))
        .await?
        .expect_error(400, "invalid_request")?;
    // Missing audience.
    h.form("/oauth/token", &[cc], Some((id, secret)))
        .await?
        .expect_error(400, "invalid_request")?;
    // audience and resource that differ.
    h.form(
        "/oauth/token",
        &[cc, ("audience", JWT_API), ("resource", API)],
        Some((id, secret)),
    )
    .await?
    .expect_error(400, "invalid_request")?;
    // A parameter twice.
    h.form(
        "/oauth/token",
        &[cc, ("audience", JWT_API), ("audience", API)],
        Some((id, secret)),
    )
    .await?
    .expect_error(400, "invalid_request")?;
    // JSON instead of a form.
    let a = h
        .send(
            Method::POST,
            "/oauth/token",
            &[("content-type", "application/json")],
            br#"{"grant_type":"client_credentials"}"#.to_vec(),
        )
        .await?;
    a.expect_error(400, "invalid_request")?;
    // A rotated secret stops working at once; the new one works.
    let rotated = o.fx.registry.rotate_client_secret(id).await?;
    h.form(
        "/oauth/token",
        &[cc, ("audience", JWT_API)],
        Some((id, secret)),
    )
    .await?
    .expect_error(401, "invalid_client")?;
    h.token_with_secret(
        id,
        rotated.client_secret.as_deref().context("secret")?,
        JWT_API,
        None,
    )
    .await?;
    // A deleted client is refused.
    o.fx.registry.delete_client(id).await?;
    h.form(
        "/oauth/token",
        &[cc, ("audience", JWT_API)],
        Some((id, rotated.client_secret.as_deref().unwrap_or_default())),
    )
    .await?
    .expect_error(401, "invalid_client")?;
    // Every refusal is audited with its code (the writer batches: wait for it).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let outcomes: Vec<String> =
            o.fx.registry
                .store
                .recent_audit(Some(id), 100)
                .await?
                .into_iter()
                .filter(|e| e.action == "token.refused")
                .map(|e| e.outcome)
                .collect();
        let wanted = [
            "invalid_client",
            "unauthorized_client",
            "invalid_target",
            "invalid_scope",
        ];
        if wanted.iter().all(|w| outcomes.iter().any(|o| o == w)) {
            break;
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "refusals not audited: {outcomes:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    o.fx.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_get_the_same_ace_answer_over_https() -> anyhow::Result<()> {
    let o = OAuthFixture::new().await?;
    let device = o.fx.device("sensor-https").await?;
    let body =
        o.fx.agent_request(&device, &o.fx.params(Some(GRANTED_SCOPE)))?;
    let a = o
        .https
        .send(
            Method::POST,
            "/ace/token",
            &[("content-type", "application/cose")],
            body,
        )
        .await?;
    assert_eq!(a.status, 201);
    assert_eq!(a.raw.header("content-type"), Some("application/ace+cbor"));
    let AceResponse::Token(token) = AceResponse::from_cbor(&a.raw.body, Limits::default())? else {
        anyhow::bail!("expected a token");
    };
    let verified =
        o.fx.verifier
            .verify(&token.access_token, &[GRANTED_SCOPE], unix_now())?;
    verified.check_certificate_binding(device.leaf_der())?;
    // A replayed request: the same ACE error as over CoAP, as HTTP 401.
    let body =
        o.fx.agent_request(&device, &o.fx.params(Some(GRANTED_SCOPE)))?;
    let first = o
        .https
        .send(Method::POST, "/ace/token", &[], body.clone())
        .await?;
    assert_eq!(first.status, 201);
    let again = o.https.send(Method::POST, "/ace/token", &[], body).await?;
    assert_eq!(again.status, 401);
    let AceResponse::Error(e) = AceResponse::from_cbor(&again.raw.body, Limits::default())? else {
        anyhow::bail!("expected an ACE error");
    };
    assert_eq!(e.code, AceErrorCode::InvalidClient);
    // Garbage: 400 invalid_request.
    let bad = o
        .https
        .send(Method::POST, "/ace/token", &[], vec![0xff, 0x00])
        .await?;
    assert_eq!(bad.status, 400);
    // The audit names the TCP peer and the certificate (what `doctor` reads).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let details: Vec<String> =
            o.fx.registry
                .store
                .recent_audit(Some("sensor-https"), 100)
                .await?
                .into_iter()
                .filter(|e| e.action.starts_with("token."))
                .map(|e| e.detail)
                .collect();
        if details.len() >= 3 {
            let x5t = format!(
                " x5t={}",
                hex::encode(certbound_pki::thumbprint_sha256(device.leaf_der()))
            );
            for d in &details {
                anyhow::ensure!(
                    d.starts_with("transport=https peer=127.0.0.1") && d.contains(&x5t),
                    "audit detail: {d}"
                );
            }
            break;
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "token requests not audited: {details:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    o.fx.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_documents() -> anyhow::Result<()> {
    let o = OAuthFixture::new().await?;
    let base = o.fx.https_url();
    let m = o
        .https
        .get("/.well-known/oauth-authorization-server", None)
        .await?;
    assert_eq!(m.status, 200);
    assert_eq!(m.json["issuer"], ISSUER);
    assert_eq!(m.json["token_endpoint"], format!("{base}/oauth/token"));
    assert_eq!(m.json["jwks_uri"], format!("{base}/.well-known/jwks.json"));
    assert_eq!(m.json["tls_client_certificate_bound_access_tokens"], true);
    assert_eq!(
        m.json["mtls_endpoint_aliases"]["token_endpoint"],
        format!("{base}/oauth/token")
    );
    let methods = m.json["token_endpoint_auth_methods_supported"].to_string();
    for method in [
        "client_secret_basic",
        "client_secret_post",
        "tls_client_auth",
    ] {
        assert!(methods.contains(method), "{method} missing from {methods}");
    }
    let jwks = o.jwks().await?;
    assert_eq!(jwks.len(), 1);
    let cose = o.https.get("/.well-known/cose-keys", None).await?;
    assert_eq!(
        cose.raw.header("content-type"),
        Some("application/cose-key-set")
    );
    assert_eq!(
        KeySet::from_cose_key_set(&cose.raw.body)?.kids(),
        jwks.kids()
    );
    let health = o.https.get("/healthz", None).await?;
    assert_eq!(health.status, 200);
    let missing = o.https.get("/nope", None).await?;
    assert_eq!(missing.status, 404);
    o.fx.shutdown().await;
    Ok(())
}
