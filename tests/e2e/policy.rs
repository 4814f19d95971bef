//! Policy as code against a running broker: clients applied from a policy
//! document — by a SAN of the operator's PKI (`tls_san`) and by a pinned
//! self-signed certificate (`thumbprint`) — authenticate at `/oauth/token`
//! like clients made by `certbound client create`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use base64::Engine as _;
use certbound_broker::store::ClientAuthMethod;
use certbound_e2e::Fixture;
use certbound_e2e::https::{HttpsClient, JsonAnswer};
use certbound_registry::policy::{self, ApplyOptions, ClientSpec, GrantSpec, PolicyDoc};
use certbound_registry::registry::thumbprint_of_pem;

use crate::oauth::JWT_API;

/// The SAN of `certs/oauth/reporting-san.cert.pem` (operator CA).
const SAN: &str = "uri:https://operator.example/svc/reporting";

/// `certs/oauth/<name>` (made by certs/oauth/make.sh with openssl).
fn fixture_cert(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../certs/oauth")
        .join(name)
}

/// A token request for [`JWT_API`] by whatever certificate `h` presents.
async fn token(h: &HttpsClient) -> anyhow::Result<JsonAnswer> {
    h.form(
        "/oauth/token",
        &[("grant_type", "client_credentials"), ("audience", JWT_API)],
        None,
    )
    .await
}

/// The `client_id` claim of a JWT (unverified: the broker just issued it).
fn jwt_client_id(answer: &JsonAnswer) -> anyhow::Result<String> {
    let jwt = answer.json["access_token"].as_str().context("a token")?;
    let payload = jwt.split('.').nth(1).context("JWT payload")?;
    let json: serde_json::Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload)?)?;
    Ok(json["client_id"].as_str().context("client_id")?.to_string())
}

fn client(name: &str) -> ClientSpec {
    ClientSpec {
        name: name.into(),
        grant: vec![GrantSpec {
            api: JWT_API.into(),
            scopes: vec!["reports:read".into()],
        }],
        ..ClientSpec::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applied_san_and_self_signed_clients_get_tokens() -> anyhow::Result<()> {
    let ca = fixture_cert("operator-ca.cert.pem");
    let line = format!("client_ca_file = {:?}", ca.display().to_string());
    let fx =
        Fixture::with_config(&[("# client_ca_file = \"oauth-client-cas.pem\"", line.as_str())])
            .await?;
    let x5t = thumbprint_of_pem(&std::fs::read_to_string(fixture_cert(
        "self-signed.cert.pem",
    ))?)?;

    // The fixture's policy plus a JWT API and two certificate clients.
    let mut doc = policy::export(&fx.registry.store).await?;
    doc.api.push(policy::ApiSpec {
        id: JWT_API.into(),
        scopes: vec!["reports:read".into()],
        ttl_secs: 600,
        format: "jwt".into(),
        alg: None,
        claim: vec![],
    });
    doc.client.push(ClientSpec {
        tls_san: Some(SAN.into()),
        ..client("partner")
    });
    doc.client.push(ClientSpec {
        thumbprint: Some(x5t.clone()),
        ..client("edge")
    });
    let text = doc.to_toml()?;
    let doc = PolicyDoc::parse(&text, |_| None)?;
    let applied = policy::apply(&fx.registry.store, &doc, "test", ApplyOptions::default()).await?;
    let id_of = |name: &str| {
        applied
            .created_clients
            .iter()
            .find(|c| c.name == name)
            .map(|c| (c.client_id.clone(), c.auth_method))
            .context(name.to_string())
    };
    let (partner, method) = id_of("partner")?;
    anyhow::ensure!(method == ClientAuthMethod::TlsClientAuth);
    let (edge, method) = id_of("edge")?;
    anyhow::ensure!(method == ClientAuthMethod::SelfSignedTlsClientAuth);

    // The operator PKI's certificate with that SAN is the client (no client_id sent).
    let by_san = HttpsClient::new(
        &fx.https_url(),
        fx.path(),
        Some((
            &fixture_cert("reporting-san.cert.pem"),
            &fixture_cert("reporting-san.key.pem"),
        )),
    )?;
    let a = token(&by_san).await?;
    anyhow::ensure!(a.status == 200, "SAN client: {}", a.json);
    anyhow::ensure!(jwt_client_id(&a)? == partner);

    // The pinned self-signed certificate: the broker picks the new pin up
    // within [`certbound_broker::oauth::REFRESH_EVERY`].
    let pinned = HttpsClient::new(
        &fx.https_url(),
        fx.path(),
        Some((
            &fixture_cert("self-signed.cert.pem"),
            &fixture_cert("self-signed.key.pem"),
        )),
    )?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let a = loop {
        match token(&pinned).await {
            Ok(a) if a.status == 200 => break a,
            other if Instant::now() < deadline => {
                tracing::debug!(?other, "pinned client not yet accepted");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => anyhow::bail!("the pinned client got no token: {other:?}"),
        }
    };
    anyhow::ensure!(jwt_client_id(&a)? == edge);

    // The document and the store agree.
    anyhow::ensure!(policy::plan(&fx.registry.store, &doc).await?.is_empty());
    fx.shutdown().await;
    Ok(())
}
