//! The console's settings at work: sign-in attempts rate limited per
//! address (`[rate_limits] client_*`), and `[ui] enabled = false` serving
//! nothing and accepting no session.

use certbound_e2e::https::HttpsClient;
use certbound_e2e::{Fixture, unix_now};
use certbound_registry::credentials::hash_secret;
use certbound_registry::store::UiSession;
use http::Method;

use super::{admin_credentials, post_form};

fn location(a: &certbound_e2e::https::JsonAnswer) -> Option<&str> {
    a.raw.header("location")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_sign_in_is_rate_limited_per_address() -> anyhow::Result<()> {
    let fx = Fixture::with_config(&[
        ("client_per_sec = 10.0", "client_per_sec = 0.001"),
        ("client_burst = 50", "client_burst = 3"),
    ])
    .await?;
    let https = HttpsClient::new(&fx.https_url(), fx.path(), None)?;
    let (id, secret) = admin_credentials(&fx)?;
    for _ in 0..3 {
        let a = post_form(
            &https,
            "/ui/login",
            &[("client_id", &id), ("client_secret", "wrong")],
            &[],
        )
        .await?;
        assert_eq!(location(&a), Some("/ui/login?error=credentials"));
    }
    // The bucket of 127.0.0.1 is empty: even the right secret waits.
    let a = post_form(
        &https,
        "/ui/login",
        &[("client_id", &id), ("client_secret", &secret)],
        &[],
    )
    .await?;
    assert_eq!(location(&a), Some("/ui/login?error=rate_limited"));
    assert!(a.raw.header("set-cookie").is_none());
    let a = post_form(&https, "/ui/login/link", &[("token", "x")], &[]).await?;
    assert_eq!(location(&a), Some("/ui/login?error=rate_limited"));
    fx.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_switched_off_serves_nothing_and_ignores_cookies() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let store = fx.registry.store.clone();
    let now = unix_now();
    store
        .create_ui_session(&UiSession {
            id_hash: hash_secret("planted"),
            actor: "ui-login:test".into(),
            scopes: "admin:read admin:write".into(),
            csrf_token: "t".into(),
            created_at: now,
            last_seen: now,
            expires_at: now + 600,
        })
        .await?;
    let https = HttpsClient::new(&fx.https_url(), fx.path(), None)?;
    let cookie = ("cookie", "__Host-certbound_session=planted");
    let a = https
        .send(Method::GET, "/admin/v1/dashboard", &[cookie], Vec::new())
        .await?;
    assert_eq!(
        a.status, 200,
        "the planted session works while the console is on"
    );
    fx.shutdown().await;

    // A console switched off: a session in its store is not accepted.
    let fx = Fixture::with_config(&[(
        "\nenabled = true\n# A session unused",
        "\nenabled = false\n# A session unused",
    )])
    .await?;
    fx.registry
        .store
        .create_ui_session(&UiSession {
            id_hash: hash_secret("planted"),
            actor: "ui-login:test".into(),
            scopes: "admin:read admin:write".into(),
            csrf_token: "t".into(),
            created_at: now,
            last_seen: now,
            expires_at: now + 600,
        })
        .await?;
    let https = HttpsClient::new(&fx.https_url(), fx.path(), None)?;
    let a = https
        .send(Method::GET, "/admin/v1/dashboard", &[cookie], Vec::new())
        .await?;
    a.expect_error(401, "invalid_token")?;
    for path in ["/ui/", "/ui/login", "/ui/session", "/ui/assets/app.js"] {
        let a = https.get(path, None).await?;
        assert_eq!(a.status, 404, "{path} with the console off");
    }
    fx.shutdown().await;
    Ok(())
}
