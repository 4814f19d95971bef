//! `private_key_jwt` client authentication (RFC 7523) and dynamic client
//! registration (RFC 7591, RFC 7592) against a running broker over real
//! TLS: PyJWT-made assertions and Authlib's OAuth2Session in
//! `tests/interop/private_key_jwt.py`, and registration end to end.

use std::path::PathBuf;

use anyhow::Context as _;
use base64::Engine as _;
use certbound_e2e::{API, GRANTED_SCOPE, ISSUER, unix_now};
use certbound_proto::crypto::{AwsLcSigner, Signer as _};
use certbound_registry::registry::ClientCredential;
use certbound_registry::store::ClientAuthMethod;
use http::Method;
use serde_json::{Value, json};

use crate::oauth::{JWT_API, OAuthFixture};

pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The Python interpreter with PyJWT, Authlib and requests, if any.
fn python_with_authlib() -> Option<PathBuf> {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    [
        std::env::var_os("CERTBOUND_PYTHON").map(PathBuf::from),
        Some(workspace.join(".venv/bin/python")),
        Some("python3".into()),
    ]
    .into_iter()
    .flatten()
    .find(|p| {
        std::process::Command::new(p)
            .args(["-c", "import jwt, authlib, requests, cryptography"])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop/private_key_jwt.py")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyjwt_assertions_and_authlib_get_tokens_replays_and_forgeries_do_not() -> anyhow::Result<()>
{
    let Some(python) = python_with_authlib() else {
        certbound_e2e::mosquitto::skip_or_fail(
            "python with pyjwt, authlib, requests, cryptography (tests/interop/requirements.txt)",
        );
        return Ok(());
    };
    let o = OAuthFixture::new().await?;
    let keys = tempfile::tempdir()?;
    let status = std::process::Command::new(&python)
        .arg(script())
        .arg("keygen")
        .arg(keys.path())
        .status()?;
    anyhow::ensure!(status.success(), "keygen failed");
    let grants = [(JWT_API.to_string(), "reports:read".to_string())];
    let mut ids = Vec::new();
    for name in ["ec", "rsa"] {
        let jwks = std::fs::read_to_string(keys.path().join(format!("{name}.jwks.json")))?;
        let created =
            o.fx.registry
                .create_client_with(&format!("pk-{name}"), &grants, ClientCredential::Jwks(jwks))
                .await?;
        assert_eq!(created.auth_method, ClientAuthMethod::PrivateKeyJwt);
        assert!(created.client_secret.is_none());
        ids.push(created.client_id);
    }
    let ca = certbound_registry::config::DataDir::new(o.fx.path())
        .pki()
        .chain();
    let base = o.fx.https_url();
    let out = tokio::task::spawn_blocking({
        let (python, keys, ids) = (python.clone(), keys.path().to_path_buf(), ids.clone());
        let (client_id, secret) = (o.client_id.clone(), o.secret.clone());
        move || {
            std::process::Command::new(python)
                .arg(script())
                .arg("run")
                .args([base.as_str(), &ca.to_string_lossy(), ISSUER, JWT_API])
                .arg(keys)
                .args([&ids[0], &ids[1], &client_id, &secret])
                .output()
        }
    })
    .await??;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "interop failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(stdout.lines().last().context("no output")?)?;
    for case in [
        "pyjwt_es256",
        "replayed",
        "authlib",
        "alg_none",
        "wrong_key",
    ] {
        assert!(
            report["results"].get(case).is_some(),
            "{case} did not run: {report}"
        );
    }
    // The refusal is audited with its precise reason (the first of a
    // window per client is written at once; the writer batches: wait).
    wait_for_audit(&o, |e| {
        e.action == "token.refused" && e.subject == ids[0] && e.detail.contains("was used before")
    })
    .await?;
    o.fx.shutdown().await;
    Ok(())
}

/// Waits (up to 10 s) until the audit log holds an event `wanted` matches.
async fn wait_for_audit(
    o: &OAuthFixture,
    wanted: impl Fn(&certbound_registry::store::AuditEvent) -> bool,
) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let events = o.fx.registry.store.recent_audit(None, 1000).await?;
        if events.iter().any(&wanted) {
            return Ok(());
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the audit event never appeared: {events:#?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A P-256 key and its public JWK Set.
pub(crate) fn ec_key(kid: &str) -> anyhow::Result<(AwsLcSigner, Value)> {
    let (signer, _) = AwsLcSigner::generate()?;
    let point = signer.public_key().to_sec1();
    let jwks = json!({"keys": [{
        "kty": "EC", "crv": "P-256", "kid": kid,
        "x": b64(&point[1..33]), "y": b64(&point[33..65]),
    }]});
    Ok((signer, jwks))
}

/// An ES256 client assertion for `client_id`.
pub(crate) fn assertion(
    signer: &AwsLcSigner,
    kid: &str,
    client_id: &str,
    aud: &str,
) -> anyhow::Result<String> {
    let now = unix_now();
    let header = b64(json!({"alg": "ES256", "kid": kid}).to_string().as_bytes());
    let claims = json!({
        "iss": client_id, "sub": client_id, "aud": aud, "iat": now, "exp": now + 60,
        "jti": format!("{}-{}", client_id, rand::random::<u64>()),
    });
    let input = format!("{header}.{}", b64(claims.to_string().as_bytes()));
    let sig = signer.sign(input.as_bytes())?;
    Ok(format!("{input}.{}", b64(&sig)))
}

async fn json_request(
    o: &OAuthFixture,
    method: Method,
    path: &str,
    bearer: &str,
    body: Option<&Value>,
) -> anyhow::Result<(u16, Value)> {
    let auth = format!("Bearer {bearer}");
    let a = o
        .https
        .send(
            method,
            path,
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            body.map(|b| b.to_string().into_bytes()).unwrap_or_default(),
        )
        .await?;
    Ok((a.status, a.json))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_stays_within_the_initial_tokens_bounds() -> anyhow::Result<()> {
    let o = OAuthFixture::new().await?;
    let reg = &o.fx.registry;
    let issued = reg
        .create_registration_token(
            &[(JWT_API.into(), "reports:read".into())],
            &[ClientAuthMethod::PrivateKeyJwt],
            2,
            3600,
        )
        .await?;
    assert!(issued.token.starts_with("cbr_"));
    let token_url = format!("{}/oauth/token", o.fx.https_url());
    let (signer, jwks) = ec_key("k1")?;
    let register = |body: Value, bearer: String| {
        let o = &o;
        async move { json_request(o, Method::POST, "/oauth/register", &bearer, Some(&body)).await }
    };

    // Beyond the bounds: a scope, an API, a method it does not allow.
    let (s, b) = register(
        json!({"token_endpoint_auth_method": "private_key_jwt", "jwks": jwks, "scope": "reports:write"}),
        issued.token.clone(),
    )
    .await?;
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("invalid_client_metadata")),
        "{b}"
    );
    let (s, b) = register(
        json!({"token_endpoint_auth_method": "private_key_jwt", "jwks": jwks,
               "certbound_grants": {API: GRANTED_SCOPE}}),
        issued.token.clone(),
    )
    .await?;
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("invalid_client_metadata")),
        "{b}"
    );
    let (s, b) = register(
        json!({"token_endpoint_auth_method": "client_secret_basic"}),
        issued.token.clone(),
    )
    .await?;
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("invalid_client_metadata")),
        "{b}"
    );
    // A private key in the JWK Set.
    let mut private = jwks.clone();
    private["keys"][0]["d"] = json!(b64(&[7; 32]));
    let (s, b) = register(
        json!({"token_endpoint_auth_method": "private_key_jwt", "jwks": private}),
        issued.token.clone(),
    )
    .await?;
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("invalid_client_metadata")),
        "{b}"
    );
    // Unknown token, no token.
    let (s, b) = register(json!({}), "cbr_nope".into()).await?;
    assert_eq!(
        (s, b["error"].as_str()),
        (401, Some("invalid_token")),
        "{b}"
    );

    // Within the bounds: 201, and the client gets a token with private_key_jwt.
    let (s, b) = register(
        json!({"client_name": "partner app", "token_endpoint_auth_method": "private_key_jwt",
               "jwks": jwks, "grant_types": ["client_credentials"], "scope": "reports:read"}),
        issued.token.clone(),
    )
    .await?;
    assert_eq!(s, 201, "{b}");
    let client_id = b["client_id"].as_str().context("client_id")?.to_string();
    let rat = b["registration_access_token"]
        .as_str()
        .context("rat")?
        .to_string();
    let uri = b["registration_client_uri"]
        .as_str()
        .context("uri")?
        .to_string();
    assert!(b.get("client_secret").is_none());
    assert_eq!(b["scope"], "reports:read");
    let a = assertion(&signer, "k1", &client_id, &token_url)?;
    let t = o
        .https
        .form(
            "/oauth/token",
            &[
                ("grant_type", "client_credentials"),
                ("audience", JWT_API),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", &a),
            ],
            None,
        )
        .await?;
    assert_eq!(t.status, 200, "{}", t.json);
    assert_eq!(t.json["scope"], "reports:read");

    // RFC 7592: read, update within the bounds, refuse beyond, delete.
    let path = uri
        .strip_prefix(&o.fx.https_url())
        .context("uri on this server")?;
    let (s, b) = json_request(&o, Method::GET, path, &rat, None).await?;
    assert_eq!(
        (s, b["client_id"].as_str()),
        (200, Some(client_id.as_str())),
        "{b}"
    );
    let (s, b) = json_request(&o, Method::GET, path, "cbra_wrong", None).await?;
    assert_eq!(
        (s, b["error"].as_str()),
        (401, Some("invalid_token")),
        "{b}"
    );
    let (s, b) = json_request(&o, Method::GET, path, &issued.token, None).await?;
    assert_eq!(
        s, 401,
        "the initial token is no registration access token: {b}"
    );
    let (s, b) = json_request(
        &o,
        Method::PUT,
        path,
        &rat,
        Some(&json!({"client_id": client_id, "client_name": "renamed",
                     "token_endpoint_auth_method": "private_key_jwt", "jwks": jwks,
                     "scope": "reports:write"})),
    )
    .await?;
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("invalid_client_metadata")),
        "{b}"
    );
    let (s, b) = json_request(
        &o,
        Method::PUT,
        path,
        &rat,
        Some(&json!({"client_id": client_id, "client_name": "renamed",
                     "token_endpoint_auth_method": "private_key_jwt", "jwks": jwks})),
    )
    .await?;
    assert_eq!(
        (s, b["client_name"].as_str()),
        (200, Some("renamed")),
        "{b}"
    );
    let (s, _) = json_request(&o, Method::DELETE, path, "cbra_wrong", None).await?;
    assert_eq!(s, 401);
    let (s, _) = json_request(&o, Method::DELETE, path, &rat, None).await?;
    assert_eq!(s, 204);
    let (s, _) = json_request(&o, Method::GET, path, &rat, None).await?;
    assert_eq!(s, 401, "deleted: the registration access token is gone");
    let a = assertion(&signer, "k1", &client_id, &token_url)?;
    let t = o
        .https
        .form(
            "/oauth/token",
            &[
                ("grant_type", "client_credentials"),
                ("audience", JWT_API),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", &a),
            ],
            None,
        )
        .await?;
    assert_eq!(t.status, 401, "a deleted client gets no token");

    // The second (last) use; then the token is exhausted.
    let (s, b) = register(
        json!({"token_endpoint_auth_method": "private_key_jwt", "jwks": jwks}),
        issued.token.clone(),
    )
    .await?;
    assert_eq!(s, 201, "{b}");
    let (s, b) = register(
        json!({"token_endpoint_auth_method": "private_key_jwt", "jwks": jwks}),
        issued.token.clone(),
    )
    .await?;
    assert_eq!(
        (s, b["error"].as_str()),
        (401, Some("invalid_token")),
        "exhausted: {b}"
    );

    // An expired token (1 s lifetime; the broker's clock decides, so wait
    // for the store to see it expired rather than sleeping a fixed time).
    let short = reg
        .create_registration_token(
            &[(JWT_API.into(), "reports:read".into())],
            &[ClientAuthMethod::PrivateKeyJwt],
            5,
            1,
        )
        .await?;
    while unix_now() <= short.expires_at {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (s, b) = register(
        json!({"token_endpoint_auth_method": "private_key_jwt", "jwks": jwks}),
        short.token.clone(),
    )
    .await?;
    assert_eq!(
        (s, b["error"].as_str()),
        (401, Some("invalid_token")),
        "expired: {b}"
    );
    // Every registration event is audited.
    for a in [
        "client.registered",
        "client.registration_updated",
        "client.registration_deleted",
        "client.registration_refused",
    ] {
        wait_for_audit(&o, |e| e.action == a).await?;
    }
    o.fx.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_as_code_creates_and_exports_private_key_jwt_clients() -> anyhow::Result<()> {
    use certbound_registry::policy::{self, ApplyOptions, PolicyDoc};
    let o = OAuthFixture::new().await?;
    let (signer, jwks) = ec_key("p1")?;
    let mut doc = policy::export(&o.fx.registry.store).await?;
    let text = format!(
        "{}\n[[client]]\nname = \"signer\"\njwks = '{}'\n[[client.grant]]\napi = \"{JWT_API}\"\nscopes = [\"reports:read\"]\n",
        doc.to_toml()?,
        jwks
    );
    doc = PolicyDoc::parse(&text, |_| None)?;
    let applied =
        policy::apply(&o.fx.registry.store, &doc, "test", ApplyOptions::default()).await?;
    let created = applied
        .created_clients
        .iter()
        .find(|c| c.name == "signer")
        .context("signer created")?;
    assert_eq!(created.auth_method, ClientAuthMethod::PrivateKeyJwt);
    assert!(created.client_secret.is_none());
    // Export writes it back; a private key in the document is refused.
    let exported = policy::export(&o.fx.registry.store).await?;
    let spec = exported
        .client
        .iter()
        .find(|c| c.name == "signer")
        .context("exported")?;
    assert_eq!(spec.auth_method, Some(ClientAuthMethod::PrivateKeyJwt));
    assert!(spec.jwks.as_deref().is_some_and(|j| j.contains("\"p1\"")));
    let mut private = jwks.clone();
    private["keys"][0]["d"] = json!(b64(&[7; 32]));
    let bad = PolicyDoc::parse(
        &text.replace(&jwks.to_string(), &private.to_string()),
        |_| None,
    )?;
    let e = policy::plan(&o.fx.registry.store, &bad).await.unwrap_err();
    assert!(e.to_string().contains("private member"), "{e}");
    // The client gets a token with its key (a running broker sees the change).
    let token_url = format!("{}/oauth/token", o.fx.https_url());
    let a = assertion(&signer, "p1", &created.client_id, &token_url)?;
    let t = o
        .https
        .form(
            "/oauth/token",
            &[
                ("grant_type", "client_credentials"),
                ("audience", JWT_API),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", &a),
            ],
            None,
        )
        .await?;
    assert_eq!(t.status, 200, "{}", t.json);
    o.fx.shutdown().await;
    Ok(())
}

/// `--role`: a registration token bounded by a role's grants (as of its
/// issuance) registers within them and refuses beyond them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_token_bounded_by_a_role() -> anyhow::Result<()> {
    let o = OAuthFixture::new().await?;
    let reg = &o.fx.registry;
    reg.create_role(
        "report-reader",
        "",
        &[(JWT_API.into(), "reports:read".into())],
    )
    .await?;
    let empty = reg.create_role("nothing", "", &[]).await?;
    assert!(
        reg.create_registration_token_with_roles(
            &[],
            std::slice::from_ref(&empty.name),
            &[ClientAuthMethod::PrivateKeyJwt],
            1,
            3600
        )
        .await
        .is_err(),
        "a role granting nothing bounds nothing"
    );
    let issued = reg
        .create_registration_token_with_roles(
            &[],
            &["report-reader".into()],
            &[ClientAuthMethod::PrivateKeyJwt],
            2,
            3600,
        )
        .await?;
    // A later change to the role does not widen the issued token.
    reg.set_role_grant("report-reader", JWT_API, "reports:read reports:write")
        .await?;
    let (_, jwks) = ec_key("k1")?;
    let (s, b) = json_request(
        &o,
        Method::POST,
        "/oauth/register",
        &issued.token,
        Some(
            &json!({"token_endpoint_auth_method": "private_key_jwt", "jwks": jwks,
                     "scope": "reports:write"}),
        ),
    )
    .await?;
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("invalid_client_metadata")),
        "{b}"
    );
    let (s, b) = json_request(
        &o,
        Method::POST,
        "/oauth/register",
        &issued.token,
        Some(
            &json!({"token_endpoint_auth_method": "private_key_jwt", "jwks": jwks,
                     "scope": "reports:read"}),
        ),
    )
    .await?;
    assert_eq!(s, 201, "{b}");
    o.fx.shutdown().await;
    Ok(())
}
