//! Attack-matrix cases: see [`super`]. HTTPS `/oauth/*`: client identities
//! (identity kinds, pinned methods, self-signed and operator-PKI clients,
//! revoked service certificates), the form parser, introspection, error texts,
//! and connection limits. Each case asserts the specific refusal and that a
//! legitimate client still gets a token afterwards.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use certbound_broker::store::ClientAuthMethod;
use certbound_e2e::https::{HttpsClient, JsonAnswer};
use certbound_e2e::{API, Fixture, GRANTED_SCOPE, GROUP};
use certbound_registry::registry::{ClientCredential, CreatedClient, thumbprint_of_pem};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::oauth::JWT_API;

/// Generous bound for anything the tests wait for.
const PATIENCE: Duration = Duration::from_secs(20);

/// `certs/oauth/<name>` (made by certs/oauth/make.sh with openssl).
fn fixture_cert(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../certs/oauth")
        .join(name)
}

/// A broker (optionally with `[https]` edits) with a JWT API.
async fn broker(edits: &[(&str, &str)]) -> anyhow::Result<Fixture> {
    let fx = Fixture::with_config(edits).await?;
    fx.registry
        .create_api_with_format(JWT_API, "reports:read reports:write", 600, "jwt")
        .await?;
    Ok(fx)
}

/// A broker trusting the operator CA of certs/oauth for OAuth clients.
async fn broker_with_operator_ca(edits: &[(&str, &str)]) -> anyhow::Result<Fixture> {
    let ca = fixture_cert("operator-ca.cert.pem");
    let line = format!("client_ca_file = {:?}", ca.display().to_string());
    let mut all = vec![("# client_ca_file = \"oauth-client-cas.pem\"", line.as_str())];
    all.extend_from_slice(edits);
    broker(&all).await
}

async fn client(
    fx: &Fixture,
    name: &str,
    credential: ClientCredential,
) -> anyhow::Result<CreatedClient> {
    Ok(fx
        .registry
        .create_client_with(name, &[(JWT_API.into(), "reports:read".into())], credential)
        .await?)
}

fn secret_client_secret(c: &CreatedClient) -> anyhow::Result<&str> {
    c.client_secret.as_deref().context("a secret client")
}

/// An HTTPS client of `fx` presenting `(cert, key)`.
fn with_cert(fx: &Fixture, cert: &Path, key: &Path) -> anyhow::Result<HttpsClient> {
    HttpsClient::new(&fx.https_url(), fx.path(), Some((cert, key)))
}

fn anonymous(fx: &Fixture) -> anyhow::Result<HttpsClient> {
    HttpsClient::new(&fx.https_url(), fx.path(), None)
}

const CC: (&str, &str) = ("grant_type", "client_credentials");

/// A token request for [`JWT_API`], optionally naming `client_id`.
async fn token(h: &HttpsClient, client_id: Option<&str>) -> anyhow::Result<JsonAnswer> {
    let mut form = vec![CC, ("audience", JWT_API)];
    if let Some(id) = client_id {
        form.push(("client_id", id));
    }
    h.form("/oauth/token", &form, None).await
}

/// A legitimate secret client that must still get a token.
async fn still_serves(fx: &Fixture) -> anyhow::Result<()> {
    let name = format!("legit-{}", hex::encode(certbound_e2e::nonce()));
    let c = client(
        fx,
        &name,
        ClientCredential::Secret(ClientAuthMethod::ClientSecret),
    )
    .await?;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let attempt = anonymous(fx)?
            .token_with_secret(&c.client_id, secret_client_secret(&c)?, JWT_API, None)
            .await;
        match attempt {
            Ok(grant) => {
                anyhow::ensure!(grant["token_type"] == "Bearer", "{grant}");
                return Ok(());
            }
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing_wait(&e).await;
            }
            Err(e) => return Err(e.context("a legitimate client got no token")),
        }
    }
}

async fn tracing_wait(_e: &anyhow::Error) {
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Polls `f` until it returns `Ok(true)` (within [`PATIENCE`]).
async fn eventually<F, Fut>(what: &str, mut f: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if f().await? {
            return Ok(());
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One keep-alive TLS connection speaking raw HTTP/1.1.
struct RawConn {
    tls: tokio_rustls::client::TlsStream<TcpStream>,
}

impl RawConn {
    async fn open(fx: &Fixture, identity: Option<(&Path, &Path)>) -> anyhow::Result<Self> {
        let ca = std::fs::read_to_string(
            certbound_registry::config::DataDir::new(fx.path())
                .pki()
                .chain(),
        )?;
        let identity = match identity {
            Some((c, k)) => Some((std::fs::read_to_string(c)?, std::fs::read_to_string(k)?)),
            None => None,
        };
        let config = certbound_verify::http::client_tls_config(
            &ca,
            identity.as_ref().map(|(c, k)| (c.as_str(), k.as_str())),
        )?;
        let addr = fx
            .https_url()
            .trim_start_matches("https://")
            .parse::<std::net::SocketAddr>()?;
        let tcp = TcpStream::connect(addr).await?;
        let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
        let tls = tokio_rustls::TlsConnector::from(Arc::<rustls::ClientConfig>::clone(&config))
            .connect(name, tcp)
            .await?;
        Ok(Self { tls })
    }

    /// Sends `POST path` with a form body and reads one response.
    async fn post_form(
        &mut self,
        path: &str,
        body: &str,
    ) -> anyhow::Result<(u16, serde_json::Value)> {
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        self.tls.write_all(head.as_bytes()).await?;
        self.tls.write_all(body.as_bytes()).await?;
        self.tls.flush().await?;
        self.read_response().await
    }

    /// Reads one response (status, JSON body); `Err` when the server closed.
    async fn read_response(&mut self) -> anyhow::Result<(u16, serde_json::Value)> {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = tokio::time::timeout(PATIENCE, self.tls.read(&mut chunk)).await??;
            anyhow::ensure!(n > 0, "the server closed the connection");
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .context("status line")?
            .parse()?;
        let len: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().to_string())
            })
            .unwrap_or_else(|| "0".into())
            .parse()?;
        while buf.len() < head_end + len {
            let n = tokio::time::timeout(PATIENCE, self.tls.read(&mut chunk)).await??;
            anyhow::ensure!(n > 0, "the server closed the connection mid-body");
            buf.extend_from_slice(&chunk[..n]);
        }
        let json = serde_json::from_slice(&buf[head_end..head_end + len])
            .unwrap_or(serde_json::Value::Null);
        Ok((status, json))
    }
}

/// A service `name` provisioned by certbound: (cert file, key file).
async fn service(fx: &Fixture, name: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
    let s = fx
        .registry
        .provision_service(name, &fx.path().join("services"), 30)
        .await?;
    Ok((s.cert_file, s.key_file))
}

/// The finding: a device named like a client's registered subject logs in as the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_device_cert_as_oauth_client() -> anyhow::Result<()> {
    let fx = broker(&[]).await?;
    let (svc_cert, svc_key) = service(&fx, "reporting").await?;
    let c = client(
        &fx,
        "reporting",
        ClientCredential::TlsSubject("CN=reporting".into()),
    )
    .await?;
    let device = fx.device("reporting").await?;
    let as_device = with_cert(&fx, &device.cert_file, &device.key_file)?;
    let a = token(&as_device, Some(&c.client_id)).await?;
    expect_described(&a, 401, "invalid_client", "device certificate")?;
    // Without client_id too (lookup by subject).
    token(&as_device, None)
        .await?
        .expect_error(401, "invalid_client")?;
    // The service certificate of the same subject is the client.
    let legit = token(&with_cert(&fx, &svc_cert, &svc_key)?, Some(&c.client_id)).await?;
    anyhow::ensure!(legit.status == 200, "{}", legit.json);
    still_serves(&fx).await?;
    fx.shutdown().await;
    Ok(())
}

/// A device certificate next to a valid client secret is refused outright.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_device_cert_with_valid_secret() -> anyhow::Result<()> {
    let fx = broker(&[]).await?;
    let c = client(
        &fx,
        "poster",
        ClientCredential::Secret(ClientAuthMethod::ClientSecret),
    )
    .await?;
    let device = fx.device("sensor-1").await?;
    let a = with_cert(&fx, &device.cert_file, &device.key_file)?
        .form(
            "/oauth/token",
            &[
                CC,
                ("audience", JWT_API),
                ("client_id", &c.client_id),
                ("client_secret", secret_client_secret(&c)?),
            ],
            None,
        )
        .await?;
    a.expect_error(401, "invalid_client")?;
    // The same secret without the device certificate works.
    anonymous(&fx)?
        .token_with_secret(&c.client_id, secret_client_secret(&c)?, JWT_API, None)
        .await?;
    fx.shutdown().await;
    Ok(())
}

/// A provisioning claim certificate (CN claim-<id>) at /oauth is refused at every route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_claim_cert_at_oauth() -> anyhow::Result<()> {
    let fx = broker(&[]).await?;
    let claim = fx
        .registry
        .create_claim(GROUP, 5, 3600, None, None, &fx.path().join("claims"))
        .await?;
    let dn = format!("CN=claim-{}", claim.claim.id);
    let c = client(&fx, "claimish", ClientCredential::TlsSubject(dn)).await?;
    let h = with_cert(&fx, &claim.cert_file, &claim.key_file)?;
    token(&h, Some(&c.client_id))
        .await?
        .expect_error(401, "invalid_client")?;
    for route in ["/oauth/introspect", "/oauth/revoke"] {
        h.form(route, &[("token", "x"), ("client_id", &c.client_id)], None)
            .await?
            .expect_error(401, "invalid_client")?;
    }
    still_serves(&fx).await?;
    fx.shutdown().await;
    Ok(())
}

/// A certificate from a trusted operator CA that claims a certbound device identity is no client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_operator_ca_cert_claiming_device_identity() -> anyhow::Result<()> {
    let fx = broker_with_operator_ca(&[]).await?;
    let c = client(
        &fx,
        "reporting",
        ClientCredential::TlsSubject("CN=reporting".into()),
    )
    .await?;
    let impostor = with_cert(
        &fx,
        &fixture_cert("impostor-device.cert.pem"),
        &fixture_cert("impostor-device.key.pem"),
    )?;
    token(&impostor, Some(&c.client_id))
        .await?
        .expect_error(401, "invalid_client")?;
    // The operator PKI's genuine client certificates work, by DN and by SAN URI.
    let by_dn = client(
        &fx,
        "op-dn",
        ClientCredential::TlsSubject("O=Operator, CN=reporting-svc".into()),
    )
    .await?;
    let a = token(
        &with_cert(
            &fx,
            &fixture_cert("reporting-dn.cert.pem"),
            &fixture_cert("reporting-dn.key.pem"),
        )?,
        Some(&by_dn.client_id),
    )
    .await?;
    anyhow::ensure!(a.status == 200, "operator DN client: {}", a.json);
    let by_san = client(
        &fx,
        "op-san",
        ClientCredential::TlsSan("uri:https://operator.example/svc/reporting".into()),
    )
    .await?;
    let a = token(
        &with_cert(
            &fx,
            &fixture_cert("reporting-san.cert.pem"),
            &fixture_cert("reporting-san.key.pem"),
        )?,
        None,
    )
    .await?;
    anyhow::ensure!(a.status == 200, "operator SAN client: {}", a.json);
    assert_eq!(
        crate_jwt_client_id(a.json["access_token"].as_str().context("token")?)?,
        by_san.client_id
    );
    fx.shutdown().await;
    Ok(())
}

/// The `client_id` claim of a JWT (unverified: the issuing test already trusts it).
fn crate_jwt_client_id(jwt: &str) -> anyhow::Result<String> {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1).context("JWT payload")?;
    let json: serde_json::Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload)?)?;
    Ok(json["client_id"].as_str().context("client_id")?.to_string())
}

/// A revoked service certificate is refused in the TLS handshake (new connections).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_revoked_service_cert_at_tls() -> anyhow::Result<()> {
    let fx = broker(&[]).await?;
    let (cert, key) = service(&fx, "billing").await?;
    let c = client(
        &fx,
        "billing",
        ClientCredential::TlsSubject("CN=billing".into()),
    )
    .await?;
    let h = with_cert(&fx, &cert, &key)?;
    anyhow::ensure!(token(&h, Some(&c.client_id)).await?.status == 200);
    let revoked = fx.registry.revoke_service("billing").await?;
    assert_eq!(revoked.len(), 1);
    eventually("the revoked certificate fails the handshake", || async {
        Ok(token(&h, Some(&c.client_id)).await.is_err())
    })
    .await?;
    let listed = fx.registry.list_service_certs().await?;
    assert!(
        listed
            .iter()
            .any(|s| s.name == "billing" && s.revoked_at.is_some())
    );
    still_serves(&fx).await?;
    fx.shutdown().await;
    Ok(())
}

/// A revoked service certificate on a connection opened before the revocation is refused at /oauth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_revoked_service_cert_at_oauth() -> anyhow::Result<()> {
    let fx = broker(&[]).await?;
    let (cert, key) = service(&fx, "billing").await?;
    let c = client(
        &fx,
        "billing",
        ClientCredential::TlsSubject("CN=billing".into()),
    )
    .await?;
    let mut conn = RawConn::open(&fx, Some((&cert, &key))).await?;
    let body = format!(
        "grant_type=client_credentials&audience={}&client_id={}",
        urlenc(JWT_API),
        c.client_id
    );
    let (status, json) = conn.post_form("/oauth/token", &body).await?;
    anyhow::ensure!(status == 200, "before revocation: {json}");
    fx.registry.revoke_service("billing").await?;
    // The handshake is done: only /oauth can refuse it now.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (status, json) = conn.post_form("/oauth/token", &body).await?;
        if status == 401 {
            assert_eq!(json["error"], "invalid_client", "{json}");
            assert!(
                json["error_description"]
                    .as_str()
                    .is_some_and(|d| d.contains("revoked")),
                "{json}"
            );
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "still served after revocation: {json}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    still_serves(&fx).await?;
    fx.shutdown().await;
    Ok(())
}

fn urlenc(s: &str) -> String {
    certbound_proto::form::encode_form(&[("v".into(), s.into())])[2..].to_string()
}

/// Unknown client_id, wrong secret, deleted client and wrong method read exactly the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_client_id_enumeration() -> anyhow::Result<()> {
    let fx = broker(&[]).await?;
    let basic_only = client(
        &fx,
        "basic-only",
        ClientCredential::Secret(ClientAuthMethod::ClientSecretBasic),
    )
    .await?;
    let deleted = client(
        &fx,
        "gone",
        ClientCredential::Secret(ClientAuthMethod::ClientSecret),
    )
    .await?;
    fx.registry.delete_client("gone").await?;
    let h = anonymous(&fx)?;
    let post = |id: String, secret: String| {
        let h = h.clone();
        async move {
            h.form(
                "/oauth/token",
                &[
                    CC,
                    ("audience", JWT_API),
                    ("client_id", &id),
                    ("client_secret", &secret),
                ],
                None,
            )
            .await
        }
    };
    let answers = [
        post("cb_doesnotexist".into(), "cbs_x".into()).await?,
        post(basic_only.client_id.clone(), "cbs_wrong".into()).await?,
        // The right secret, the wrong (unregistered) method.
        post(
            basic_only.client_id.clone(),
            secret_client_secret(&basic_only)?.into(),
        )
        .await?,
        post(
            deleted.client_id.clone(),
            secret_client_secret(&deleted)?.into(),
        )
        .await?,
    ];
    for a in &answers {
        a.expect_error(401, "invalid_client")?;
        assert_eq!(a.json, answers[0].json, "answers differ");
        assert!(!a.raw.body.windows(3).any(|w| w == b"cb_"), "{}", a.json);
    }
    // The same client with its registered method is served.
    h.token_with_secret(
        &basic_only.client_id,
        secret_client_secret(&basic_only)?,
        JWT_API,
        None,
    )
    .await?;
    fx.shutdown().await;
    Ok(())
}

/// A client pinned to client_secret_post cannot use Basic (and vice versa).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_wrong_auth_method_for_pinned_client() -> anyhow::Result<()> {
    let fx = broker(&[]).await?;
    let c = client(
        &fx,
        "poster",
        ClientCredential::Secret(ClientAuthMethod::ClientSecretPost),
    )
    .await?;
    let secret = secret_client_secret(&c)?;
    let h = anonymous(&fx)?;
    let a = h
        .form(
            "/oauth/token",
            &[CC, ("audience", JWT_API)],
            Some((&c.client_id, secret)),
        )
        .await?;
    a.expect_error(401, "invalid_client")?;
    assert!(
        a.raw
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("www-authenticate")),
        "Basic challenge"
    );
    let a = h
        .form(
            "/oauth/token",
            &[
                CC,
                ("audience", JWT_API),
                ("client_id", &c.client_id),
                ("client_secret", secret),
            ],
            None,
        )
        .await?;
    anyhow::ensure!(a.status == 200, "{}", a.json);
    fx.shutdown().await;
    Ok(())
}

/// The measured finding: 50 000 distinct keys (~440 KB) cost a core for seconds; now 413 at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_quadratic_form() -> anyhow::Result<()> {
    let fx = broker(&[]).await?;
    let body: String = (0..50_000).map(|i| format!("k{i}=v&")).collect();
    let sent = anonymous(&fx)?
        .send(
            http::Method::POST,
            "/oauth/token",
            &[("content-type", "application/x-www-form-urlencoded")],
            body.into_bytes(),
        )
        .await;
    match sent {
        Ok(a) => a.expect_error(413, "invalid_request")?,
        // The server answers 413 after the first 8 KiB and closes; a client
        // still writing the rest of the 440 KB may see the close first.
        Err(e) => {
            let text = format!("{e:#}");
            anyhow::ensure!(
                text.contains("Broken pipe") || text.contains("reset"),
                "{text}"
            );
        }
    }
    still_serves(&fx).await?;
    fx.shutdown().await;
    Ok(())
}

/// A form over the 8 KiB limit of /oauth/* is refused with an OAuth 413 at every route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_oversized_form() -> anyhow::Result<()> {
    let fx = broker(&[]).await?;
    let big = format!(
        "grant_type=client_credentials&scope={}",
        "a".repeat(9 * 1024)
    );
    for route in ["/oauth/token", "/oauth/introspect", "/oauth/revoke"] {
        let a = anonymous(&fx)?
            .send(
                http::Method::POST,
                route,
                &[("content-type", "application/x-www-form-urlencoded")],
                big.clone().into_bytes(),
            )
            .await?;
        a.expect_error(413, "invalid_request")?;
    }
    still_serves(&fx).await?;
    fx.shutdown().await;
    Ok(())
}

/// More than 32 parameters in a small form is refused before any lookup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_too_many_params() -> anyhow::Result<()> {
    let fx = broker(&[]).await?;
    let mut form: Vec<(String, String)> =
        (0..33).map(|i| (format!("x{i}"), String::new())).collect();
    form.push(("grant_type".into(), "client_credentials".into()));
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let a = anonymous(&fx)?.form("/oauth/token", &pairs, None).await?;
    expect_described(&a, 400, "invalid_request", "32")?;
    still_serves(&fx).await?;
    fx.shutdown().await;
    Ok(())
}

/// A parameter sent twice (even percent-encoded differently) is refused (RFC 6749 §3.2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_duplicate_params() -> anyhow::Result<()> {
    let fx = broker(&[]).await?;
    let a = anonymous(&fx)?
        .send(
            http::Method::POST,
            "/oauth/token",
            &[("content-type", "application/x-www-form-urlencoded")],
            format!(
                "grant_type=client_credentials&audience=x&%61udience={}",
                urlenc(JWT_API)
            )
            .into_bytes(),
        )
        .await?;
    expect_described(&a, 400, "invalid_request", "more than once")?;
    still_serves(&fx).await?;
    fx.shutdown().await;
    Ok(())
}

/// A body that trickles in (slow loris) is cut at [https] body_timeout_secs with a 408.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_slow_body() -> anyhow::Result<()> {
    let fx = broker(&[("body_timeout_secs = 10", "body_timeout_secs = 1")]).await?;
    let mut conn = RawConn::open(&fx, None).await?;
    let head = "POST /oauth/token HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: 200\r\n\r\ngrant_type=cl";
    conn.tls.write_all(head.as_bytes()).await?;
    conn.tls.flush().await?;
    // The rest never comes: the server answers 408 (or closes) on its own.
    match conn.read_response().await {
        Ok((status, json)) => {
            assert_eq!(status, 408, "{json}");
            assert_eq!(json["error"], "invalid_request", "{json}");
        }
        Err(e) => assert!(e.to_string().contains("closed"), "{e}"),
    }
    still_serves(&fx).await?;
    fx.shutdown().await;
    Ok(())
}

/// Connections over [https] max_connections are closed at accept; the slots free up when they go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_connection_cap() -> anyhow::Result<()> {
    let fx = broker(&[("max_connections = 1024", "max_connections = 4")]).await?;
    let addr: std::net::SocketAddr = fx.https_url().trim_start_matches("https://").parse()?;
    // Four idle TCP connections (no handshake) take every slot.
    let mut hogs = Vec::new();
    for _ in 0..4 {
        hogs.push(TcpStream::connect(addr).await?);
    }
    // The next is closed at once: it reads EOF (or a reset), never waits for the handshake timeout.
    eventually("an extra connection is closed at accept", || async {
        let mut extra = TcpStream::connect(addr).await?;
        let mut b = [0u8; 1];
        let closed = matches!(
            tokio::time::timeout(Duration::from_secs(5), extra.read(&mut b)).await,
            Ok(Ok(0) | Err(_))
        );
        Ok(closed)
    })
    .await?;
    drop(hogs);
    still_serves(&fx).await?;
    fx.shutdown().await;
    Ok(())
}

/// A client with no claim on a token's audience learns nothing from introspection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_introspection_by_foreign_client() -> anyhow::Result<()> {
    let fx = broker(&[]).await?;
    let owner = client(
        &fx,
        "owner",
        ClientCredential::Secret(ClientAuthMethod::ClientSecret),
    )
    .await?;
    let stranger = fx
        .registry
        .create_client_with(
            "stranger",
            &[(API.into(), GRANTED_SCOPE.into())],
            ClientCredential::Secret(ClientAuthMethod::ClientSecret),
        )
        .await?;
    let h = anonymous(&fx)?;
    let grant = h
        .token_with_secret(
            &owner.client_id,
            secret_client_secret(&owner)?,
            JWT_API,
            None,
        )
        .await?;
    let tok = grant["access_token"].as_str().context("token")?;
    let a = h
        .form(
            "/oauth/introspect",
            &[("token", tok)],
            Some((&stranger.client_id, secret_client_secret(&stranger)?)),
        )
        .await?;
    assert_eq!(a.status, 200);
    assert_eq!(a.json, serde_json::json!({ "active": false }));
    // The token's own client and the API's clients see it.
    let a = h
        .form(
            "/oauth/introspect",
            &[("token", tok)],
            Some((&owner.client_id, secret_client_secret(&owner)?)),
        )
        .await?;
    assert_eq!(a.json["active"], true, "{}", a.json);
    fx.shutdown().await;
    Ok(())
}

/// A self-signed certificate nobody pinned fails the handshake; the pinned one is its client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_self_signed_cert_not_pinned() -> anyhow::Result<()> {
    let fx = broker(&[]).await?;
    let pinned_pem = std::fs::read_to_string(fixture_cert("self-signed.cert.pem"))?;
    let c = client(
        &fx,
        "edge",
        ClientCredential::SelfSigned(thumbprint_of_pem(&pinned_pem)?),
    )
    .await?;
    let stranger = with_cert(
        &fx,
        &fixture_cert("self-signed-other.cert.pem"),
        &fixture_cert("self-signed-other.key.pem"),
    )?;
    assert!(
        token(&stranger, Some(&c.client_id)).await.is_err(),
        "an unpinned self-signed certificate passed the TLS handshake"
    );
    let pinned = with_cert(
        &fx,
        &fixture_cert("self-signed.cert.pem"),
        &fixture_cert("self-signed.key.pem"),
    )?;
    // The pin reaches the TLS layer within its refresh period.
    eventually("the pinned self-signed client gets a token", || async {
        Ok(matches!(token(&pinned, None).await, Ok(a) if a.status == 200))
    })
    .await?;
    fx.shutdown().await;
    Ok(())
}

/// A pinned self-signed certificate whose subject copies a PKI client's DN is not that client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_pinned_self_signed_posing_as_pki_client() -> anyhow::Result<()> {
    let fx = broker_with_operator_ca(&[]).await?;
    let pki_client = client(
        &fx,
        "op-dn",
        ClientCredential::TlsSubject("O=Operator,CN=reporting-svc".into()),
    )
    .await?;
    let other_pem = std::fs::read_to_string(fixture_cert("self-signed-other.cert.pem"))?;
    let _pinned = client(
        &fx,
        "edge2",
        ClientCredential::SelfSigned(thumbprint_of_pem(&other_pem)?),
    )
    .await?;
    let h = with_cert(
        &fx,
        &fixture_cert("self-signed-other.cert.pem"),
        &fixture_cert("self-signed-other.key.pem"),
    )?;
    eventually("the pinned certificate passes the handshake", || async {
        Ok(matches!(token(&h, None).await, Ok(a) if a.status == 200))
    })
    .await?;
    // Same subject DN as the PKI client, but no chain to a trusted CA.
    token(&h, Some(&pki_client.client_id))
        .await?
        .expect_error(401, "invalid_client")?;
    let legit = with_cert(
        &fx,
        &fixture_cert("reporting-dn.cert.pem"),
        &fixture_cert("reporting-dn.key.pem"),
    )?;
    let a = token(&legit, Some(&pki_client.client_id)).await?;
    anyhow::ensure!(a.status == 200, "{}", a.json);
    fx.shutdown().await;
    Ok(())
}

/// Device ids that take the client-id prefix or the broker's name are refused on provisioning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_device_id_like_client_or_broker() -> anyhow::Result<()> {
    let fx = broker(&[]).await?;
    for id in ["cb_x", "CB_abc", "certbound-broker", "admin"] {
        let err = fx
            .registry
            .provision_device(id, &[GROUP.to_string()], &fx.devices_dir(), None)
            .await
            .expect_err("a reserved device id was provisioned");
        let text = err.to_string();
        assert!(
            text.contains("reserved") || text.contains("cb_"),
            "{id}: {text}"
        );
    }
    let device = fx.device("sensor-ok").await?;
    fx.assert_serves(&device).await?;
    still_serves(&fx).await?;
    fx.shutdown().await;
    Ok(())
}

/// `a` is the OAuth error `error` with `status`, and its description names
/// `needle` (what was wrong, so the caller can fix it).
fn expect_described(a: &JsonAnswer, status: u16, error: &str, needle: &str) -> anyhow::Result<()> {
    a.expect_error(status, error)?;
    anyhow::ensure!(
        a.json["error_description"]
            .as_str()
            .is_some_and(|d| d.contains(needle)),
        "{}",
        a.json
    );
    Ok(())
}
