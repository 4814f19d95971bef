//! End to end: a real broker issues certificate-bound tokens over mutual TLS
//! (OAuth client credentials, `tls_client_auth`), and the example API admits
//! them only from the certificate they are bound to, for its own audience
//! and scopes, and refuses them once revoked — learning of the revocation
//! from the broker's status list (fetched at most once per ttl), never by
//! calling the broker per request.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use base64::Engine as _;
use certbound_broker::server::{RunningBroker, ServeOptions, start};
use certbound_e2e::https::{HttpsClient, JsonAnswer};
use certbound_e2e::{API, Fixture, ISSUER, edit_config, verifier_for};
use certbound_registry::config::DataDir;
use certbound_registry::registry::{self, Registry};
use certbound_verify::TokenFormat;
use http::Method;
use http_api::{Options, RunningApi, SCOPE_READ, SCOPE_WRITE};

/// The second API, issued JWTs.
const REPORTS: &str = "https://reports.example.com";
/// Its scopes.
const REPORTS_SCOPES: &str = "telemetry:read telemetry:write";

/// A service identity from the broker CA.
struct Service {
    name: String,
    cert: PathBuf,
    key: PathBuf,
    der: Vec<u8>,
}

async fn provision(registry: &Registry, dir: &Path, name: &str) -> anyhow::Result<Service> {
    let out = dir.join("services");
    let p = registry.provision_service(name, &out, 30).await?;
    let pem = std::fs::read_to_string(&p.cert_file)?;
    let der = first_certificate_der(&pem)?;
    Ok(Service {
        name: name.into(),
        cert: p.cert_file,
        key: p.key_file,
        der,
    })
}

/// The DER of the first `CERTIFICATE` block of `pem`.
fn first_certificate_der(pem: &str) -> anyhow::Result<Vec<u8>> {
    let begin = "-----BEGIN CERTIFICATE-----";
    let start = pem.find(begin).context("no certificate in the PEM")? + begin.len();
    let end = pem[start..]
        .find("-----END CERTIFICATE-----")
        .context("unterminated certificate")?;
    let b64: String = pem[start..start + end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    Ok(base64::engine::general_purpose::STANDARD.decode(b64)?)
}

/// Starts the example API for `audience` against the broker at `broker_url`,
/// with the broker's own server certificate (it names 127.0.0.1).
fn start_api(data_dir: &Path, broker_url: &str, audience: &str) -> anyhow::Result<RunningApi> {
    let data = DataDir::new(data_dir);
    let options = Options {
        listen: "127.0.0.1:0".parse()?,
        cert_pem: std::fs::read_to_string(data.server_cert())?,
        key_pem: std::fs::read_to_string(data.server_key())?,
        ca_pem: std::fs::read_to_string(data.pki().chain())?,
        issuer: ISSUER.into(),
        audience: audience.into(),
        jwks_url: format!("{broker_url}/.well-known/jwks.json"),
        status_base: format!("{broker_url}/status/"),
    };
    http_api::start(&options)
}

/// Client credentials over mutual TLS as `service`; returns the access token.
async fn token(
    broker: &HttpsClient,
    client_id: &str,
    audience: &str,
    scope: &str,
) -> anyhow::Result<String> {
    let answer = broker
        .form(
            "/oauth/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", client_id),
                ("audience", audience),
                ("scope", scope),
            ],
            None,
        )
        .await?;
    ensure!(
        answer.status == 200,
        "token request refused: {} {}",
        answer.status,
        answer.json
    );
    ensure!(answer.json["token_type"] == "Bearer", "{}", answer.json);
    Ok(answer.json["access_token"]
        .as_str()
        .context("no access_token")?
        .to_string())
}

/// A client of the example API, with `service`'s certificate or none.
fn api_client(
    api: &RunningApi,
    data_dir: &Path,
    service: Option<&Service>,
) -> anyhow::Result<HttpsClient> {
    HttpsClient::new(
        &api.base_url(),
        data_dir,
        service.map(|s| (s.cert.as_path(), s.key.as_path())),
    )
}

async fn get(client: &HttpsClient, token: &str) -> anyhow::Result<JsonAnswer> {
    client.get("/telemetry", Some(token)).await
}

async fn post(client: &HttpsClient, token: &str) -> anyhow::Result<JsonAnswer> {
    client
        .json(
            Method::POST,
            "/telemetry",
            token,
            &serde_json::json!({"temperature": 21.5}),
        )
        .await
}

/// Requires a refusal with `status` and OAuth `error`, the RFC 6750
/// challenge, and a description containing `needle`.
fn expect_refused(a: &JsonAnswer, status: u16, error: &str, needle: &str) -> anyhow::Result<()> {
    a.expect_error(status, error)?;
    let description = a.json["error_description"].as_str().unwrap_or_default();
    ensure!(
        description.contains(needle),
        "{needle:?} not in {description:?}"
    );
    let challenge = a.raw.header("www-authenticate").unwrap_or_default();
    ensure!(
        challenge.starts_with("Bearer ") && challenge.contains(&format!("error=\"{error}\"")),
        "WWW-Authenticate is {challenge:?}"
    );
    Ok(())
}

#[tokio::test]
async fn tokens_are_accepted_only_with_the_certificate_they_are_bound_to() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    fx.registry
        .create_api_with_format(REPORTS, REPORTS_SCOPES, 3600, "jwt")
        .await?;
    let a = provision(&fx.registry, fx.path(), "svc-a").await?;
    let b = provision(&fx.registry, fx.path(), "svc-b").await?;
    let client = fx
        .registry
        .create_client(
            &a.name,
            &[
                (API.into(), "telemetry:write firmware:read".into()),
                (REPORTS.into(), REPORTS_SCOPES.into()),
            ],
            Some(&format!("CN={}", a.name)),
            false,
        )
        .await?;
    let broker_url = fx.https_url();
    let as_a = HttpsClient::new(&broker_url, fx.path(), Some((&a.cert, &a.key)))?;

    // Tokens over mTLS with certificate A: a JWT for REPORTS, a CWT for API.
    let jwt = token(&as_a, &client.client_id, REPORTS, REPORTS_SCOPES).await?;
    let jwt_read_only = token(&as_a, &client.client_id, REPORTS, SCOPE_READ).await?;
    let cwt = token(&as_a, &client.client_id, API, SCOPE_WRITE).await?;
    ensure!(jwt.matches('.').count() == 2, "a JWT: {jwt}");
    ensure!(!cwt.contains('.'), "a base64url CWT: {cwt}");

    // The JWT carries x5t#S256 of A; the CWT carries A's key as cnf.
    let now = certbound_e2e::unix_now();
    let verified = verifier_for(fx.path(), REPORTS)?.verify_jwt(&jwt, &[], now)?;
    ensure!(verified.format == TokenFormat::Jwt);
    ensure!(
        verified.x5t_s256 == Some(sha256(&a.der)),
        "JWT cnf is not A's thumbprint"
    );
    verified.check_certificate_binding(&a.der)?;
    ensure!(verified.check_certificate_binding(&b.der).is_err());
    let verified = fx.verifier.verify_text(&cwt, &[], now)?;
    ensure!(verified.format == TokenFormat::Cwt && verified.confirmation_key().is_some());
    verified.check_certificate_binding(&a.der)?;
    ensure!(verified.check_certificate_binding(&b.der).is_err());

    let reports = start_api(fx.path(), &broker_url, REPORTS)?;
    let telemetry = start_api(fx.path(), &broker_url, API)?;
    let (r_a, r_b, r_none) = (
        api_client(&reports, fx.path(), Some(&a))?,
        api_client(&reports, fx.path(), Some(&b))?,
        api_client(&reports, fx.path(), None)?,
    );
    let (t_a, t_b, t_none) = (
        api_client(&telemetry, fx.path(), Some(&a))?,
        api_client(&telemetry, fx.path(), Some(&b))?,
        api_client(&telemetry, fx.path(), None)?,
    );

    // With certificate A: admitted.
    let answer = post(&r_a, &jwt).await?;
    ensure!(answer.status == 201, "{} {}", answer.status, answer.json);
    let answer = get(&r_a, &jwt).await?;
    ensure!(answer.status == 200, "{} {}", answer.status, answer.json);
    ensure!(
        answer.json["caller"] == client.client_id.as_str(),
        "{}",
        answer.json
    );
    ensure!(answer.json["format"] == "jwt");
    ensure!(
        answer.json["readings"][0]["data"]["temperature"] == 21.5,
        "{}",
        answer.json
    );
    let answer = post(&t_a, &cwt).await?;
    ensure!(answer.status == 201, "{} {}", answer.status, answer.json);

    // With certificate B (same CA, but not the bound one): 401.
    expect_refused(&get(&r_b, &jwt).await?, 401, "invalid_token", "bound")?;
    expect_refused(&post(&t_b, &cwt).await?, 401, "invalid_token", "bound")?;
    // Without a certificate: 401.
    expect_refused(
        &get(&r_none, &jwt).await?,
        401,
        "invalid_token",
        "without one",
    )?;
    expect_refused(
        &post(&t_none, &cwt).await?,
        401,
        "invalid_token",
        "without one",
    )?;
    // Without a token: 401, no error code in the challenge (RFC 6750 §3.1).
    let answer = r_a.get("/telemetry", None).await?;
    ensure!(answer.status == 401, "{}", answer.json);
    ensure!(
        !answer
            .raw
            .header("www-authenticate")
            .unwrap_or_default()
            .contains("error="),
        "{:?}",
        answer.raw.header("www-authenticate")
    );

    // A token for the other audience: 401, both ways round.
    expect_refused(&post(&t_a, &jwt).await?, 401, "invalid_token", "audience")?;
    expect_refused(&post(&r_a, &cwt).await?, 401, "invalid_token", "audience")?;

    // A missing scope: 403 insufficient_scope.
    let answer = post(&r_a, &jwt_read_only).await?;
    expect_refused(&answer, 403, "insufficient_scope", SCOPE_WRITE)?;
    ensure!(
        answer
            .raw
            .header("www-authenticate")
            .unwrap_or_default()
            .contains(&format!("scope=\"{SCOPE_WRITE}\""))
    );
    expect_refused(
        &get(&t_a, &cwt).await?,
        403,
        "insufficient_scope",
        SCOPE_READ,
    )?;

    // Every token named a status list; the APIs fetched it once each (all
    // within its 60 s ttl), not once per request.
    for (api, name) in [(&reports, "reports"), (&telemetry, "telemetry")] {
        let stats = api.stats();
        ensure!(
            stats.status_fetches == 1 && stats.status_fetch_failures == 0,
            "{name}: {stats:?}"
        );
        ensure!(
            stats.accepted >= 1 && stats.rejected >= 4,
            "{name}: {stats:?}"
        );
    }
    reports.shutdown().await;
    telemetry.shutdown().await;
    fx.shutdown().await;
    Ok(())
}

/// A broker like [`Fixture::new`]'s, but with `[status] ttl_secs = 1`.
struct ShortTtlBroker {
    dir: tempfile::TempDir,
    registry: Registry,
    broker: RunningBroker,
}

impl ShortTtlBroker {
    async fn start() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        registry::init(dir.path(), ISSUER).await?;
        let registry = Registry::open(dir.path()).await?;
        registry
            .create_api_with_format(REPORTS, REPORTS_SCOPES, 3600, "jwt")
            .await?;
        edit_config(dir.path(), &[("ttl_secs = 60", "ttl_secs = 1")])?;
        let broker = start(
            dir.path(),
            ServeOptions {
                coap_listen: Some("127.0.0.1:0".parse()?),
                mqtt_listen: Some("127.0.0.1:0".parse()?),
                https_listen: Some("127.0.0.1:0".parse()?),
            },
        )
        .await?;
        Ok(Self {
            dir,
            registry,
            broker,
        })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn https_url(&self) -> String {
        self.broker.https_url().unwrap_or_default().to_string()
    }

    async fn shutdown(self) {
        self.broker.shutdown().await;
        self.registry.close().await;
    }
}

#[tokio::test]
async fn revoked_tokens_are_refused_once_the_cached_list_is_older_than_its_ttl()
-> anyhow::Result<()> {
    let broker = ShortTtlBroker::start().await?;
    let a = provision(&broker.registry, broker.path(), "svc-a").await?;
    let client = broker
        .registry
        .create_client(
            &a.name,
            &[(REPORTS.into(), REPORTS_SCOPES.into())],
            Some(&format!("CN={}", a.name)),
            false,
        )
        .await?;
    let broker_url = broker.https_url();
    let as_a = HttpsClient::new(&broker_url, broker.path(), Some((&a.cert, &a.key)))?;
    let doomed = token(&as_a, &client.client_id, REPORTS, REPORTS_SCOPES).await?;
    let spared = token(&as_a, &client.client_id, REPORTS, REPORTS_SCOPES).await?;

    let api = start_api(broker.path(), &broker_url, REPORTS)?;
    let to_api = api_client(&api, broker.path(), Some(&a))?;

    // A burst of requests: the list is fetched about once per second (its
    // ttl), not once per request.
    let burst = Instant::now();
    let requests = 20;
    for i in 0..requests {
        let t = if i % 2 == 0 { &doomed } else { &spared };
        let answer = get(&to_api, t).await?;
        ensure!(answer.status == 200, "{} {}", answer.status, answer.json);
    }
    let fetches = api.stats().status_fetches;
    let allowed = burst.elapsed().as_secs() + 2;
    ensure!(
        fetches >= 1 && fetches <= allowed,
        "{fetches} status list fetches for {requests} requests in {:?}",
        burst.elapsed()
    );

    // Client A revokes one token (RFC 7009, authenticating by mTLS).
    let answer = as_a
        .form(
            "/oauth/revoke",
            &[
                ("token", doomed.as_str()),
                ("token_type_hint", "access_token"),
                ("client_id", client.client_id.as_str()),
            ],
            None,
        )
        .await?;
    ensure!(
        answer.status == 200,
        "revocation refused: {} {}",
        answer.status,
        answer.json
    );
    let revoked_at = Instant::now();

    // Once the API's cached list is older than the ttl (1 s; the broker
    // rebuilds its list at most every second), the token is refused.
    let refused = loop {
        let answer = get(&to_api, &doomed).await?;
        if answer.status != 200 {
            break answer;
        }
        ensure!(
            revoked_at.elapsed() < Duration::from_secs(10),
            "the revoked token was still accepted 10 s after revocation"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    expect_refused(&refused, 401, "invalid_token", "revoked")?;
    ensure!(
        revoked_at.elapsed() < Duration::from_secs(5),
        "refused only after {:?}",
        revoked_at.elapsed()
    );
    // The other token of the same client is untouched.
    let answer = get(&to_api, &spared).await?;
    ensure!(answer.status == 200, "{} {}", answer.status, answer.json);
    // It learnt of the revocation from a newer list (no introspection call).
    let stats = api.stats();
    ensure!(
        stats.status_fetches > fetches && stats.status_fetch_failures == 0,
        "{stats:?}"
    );

    api.shutdown().await;
    broker.shutdown().await;
    Ok(())
}

/// SHA-256 of a certificate's DER (what `x5t#S256` holds).
fn sha256(der: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(der).into()
}
