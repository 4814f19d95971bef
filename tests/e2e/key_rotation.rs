//! `keys rotate` on a running broker: the new key is published at once and
//! signs after the grace period; tokens of both keys verify during the
//! overlap; the old key disappears from the key sets once no token it
//! signed can still be valid.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use certbound_e2e::Fixture;
use certbound_e2e::https::HttpsClient;
use certbound_proto::crypto::AwsLcVerifier;
use certbound_proto::jwt::UnverifiedJwt;
use certbound_registry::config::DataDir;
use certbound_verify::KeySet;

const SHORT_API: &str = "https://short.example.com";

async fn jwks(https: &HttpsClient) -> anyhow::Result<KeySet> {
    let a = https.get("/.well-known/jwks.json", None).await?;
    Ok(KeySet::from_jwks(std::str::from_utf8(&a.raw.body)?)?)
}

fn verify_with(keys: &KeySet, token: &str) -> anyhow::Result<String> {
    let jwt = UnverifiedJwt::parse(token, 8192)?;
    let kid = jwt.kid().context("kid")?.to_string();
    let key = keys
        .get(&kid)
        .with_context(|| format!("kid {kid} not published"))?;
    jwt.verify(&AwsLcVerifier::new(key)?)?;
    Ok(kid)
}

async fn wait_for<F, Fut>(what: &str, limit: Duration, mut probe: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if probe().await? {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_overlaps_then_retires_the_old_key() -> anyhow::Result<()> {
    let fx = Fixture::with_config(&[
        ("leeway_secs = 60", "leeway_secs = 1"),
        ("ttl_secs = 60", "ttl_secs = 1"),
    ])
    .await?;
    fx.registry
        .create_api_with_format(SHORT_API, "read", 5, "jwt")
        .await?;
    let c = fx
        .registry
        .create_client("rotating", &[(SHORT_API.into(), "read".into())], None, true)
        .await?;
    let secret = c.client_secret.context("secret")?;
    let https = HttpsClient::new(&fx.https_url(), fx.path(), None)?;
    let token = |https: HttpsClient, id: String, secret: String| async move {
        let g = https
            .token_with_secret(&id, &secret, SHORT_API, None)
            .await?;
        anyhow::Ok(g["access_token"].as_str().context("token")?.to_string())
    };

    let before = token(https.clone(), c.client_id.clone(), secret.clone()).await?;
    let old_kid = verify_with(&jwks(&https).await?, &before)?;

    // A long grace: the new key is published, the old one still signs.
    let rotation = fx.registry.rotate_keys(3600).await?;
    assert_ne!(rotation.new_kid, old_kid);
    wait_for(
        "the new key to be published",
        Duration::from_secs(5),
        || {
            let https = https.clone();
            async move { Ok(jwks(&https).await?.len() == 2) }
        },
    )
    .await?;
    let during = token(https.clone(), c.client_id.clone(), secret.clone()).await?;
    assert_eq!(
        verify_with(&jwks(&https).await?, &during)?,
        old_kid,
        "grace: old key still signs"
    );

    // Rotate again with no grace: the newest key signs at once.
    let rotation = fx.registry.rotate_keys(0).await?;
    let new_kid = rotation.new_kid.clone();
    let deadline = Instant::now() + Duration::from_secs(5);
    let after = loop {
        let t = token(https.clone(), c.client_id.clone(), secret.clone()).await?;
        if verify_with(&jwks(&https).await?, &t)? == new_kid {
            break t;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "tokens still signed by the old key"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Overlap: tokens from before and after verify against the same key set.
    let keys = jwks(&https).await?;
    assert!(keys.len() >= 2);
    verify_with(&keys, &before)?;
    verify_with(&keys, &after)?;

    // Retirement: once the old key's last token (5 s lifetime) has expired,
    // it leaves the key sets and its file is deleted.
    let retired = wait_for("the old keys to retire", Duration::from_secs(20), || {
        let https = https.clone();
        let new_kid = new_kid.clone();
        async move { Ok(jwks(&https).await?.kids() == vec![new_kid]) }
    })
    .await;
    if let Err(e) = retired {
        let ring = fx.registry.store.key_schedules().await?;
        anyhow::bail!(
            "{e}: ring {ring:?}, now {}, jwks {:?}",
            certbound_e2e::unix_now(),
            jwks(&https).await?.kids()
        );
    }
    let keys = jwks(&https).await?;
    assert!(verify_with(&keys, &before).is_err(), "the old key is gone");
    verify_with(&keys, &after)?;
    let cose = https.get("/.well-known/cose-keys", None).await?;
    assert_eq!(
        KeySet::from_cose_key_set(&cose.raw.body)?.kids(),
        vec![new_kid.clone()]
    );
    let key_file = DataDir::new(fx.path())
        .keys()
        .join(format!("{old_kid}.key.pem"));
    wait_for(
        "the retired key file to be deleted",
        Duration::from_secs(5),
        || {
            let key_file = key_file.clone();
            async move { Ok(!key_file.exists()) }
        },
    )
    .await?;
    fx.shutdown().await;
    Ok(())
}
