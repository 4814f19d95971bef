//! Sessions live in the store: on PostgreSQL, a session opened on one
//! instance works on another, and signing out on one ends it on both.

use certbound_e2e::Fixture;
use certbound_e2e::https::HttpsClient;
use http::Method;
use serde_json::json;

use super::{admin_credentials, login, post_form, with_cookie};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_sessions_are_shared_by_instances_on_postgres() -> anyhow::Result<()> {
    let Some(store) = certbound_registry::store::testing::postgres().await else {
        return Ok(());
    };
    let fx = Fixture::on_store(store.url, &[]).await?;
    let second = fx.another_instance().await?;
    let a = HttpsClient::new(&fx.https_url(), fx.path(), None)?;
    let b = HttpsClient::new(&second.https_url(), fx.path(), None)?;
    assert_ne!(a.base, b.base);
    let (id, secret) = admin_credentials(&fx)?;
    let session = login(&a, &id, &secret).await?;
    let on_b = with_cookie(
        &b,
        Method::GET,
        "/admin/v1/dashboard",
        &session,
        None,
        &[],
        &json!(null),
    )
    .await?;
    assert_eq!(on_b.status, 200, "{}", on_b.json);
    // Both instances' heartbeats are on the dashboard, whichever answers.
    let instances = on_b.json["instances"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for base in [&a.base, &b.base] {
        assert!(
            instances.iter().any(|i| i["id"] == base.as_str()),
            "{base} missing from {instances:?}"
        );
    }
    // A change on B with the CSRF token of the session opened on A.
    let g = with_cookie(
        &b,
        Method::POST,
        "/admin/v1/groups",
        &session,
        Some(&session.csrf),
        &[],
        &json!({"name": "made-on-b"}),
    )
    .await?;
    assert_eq!(g.status, 201, "{}", g.json);
    // Signed out on B: refused on A too.
    let out = post_form(
        &b,
        "/ui/logout",
        &[("csrf", &session.csrf)],
        &[("cookie", &session.cookie)],
    )
    .await?;
    assert_eq!(out.status, 303);
    let on_a = with_cookie(
        &a,
        Method::GET,
        "/admin/v1/dashboard",
        &session,
        None,
        &[],
        &json!(null),
    )
    .await?;
    on_a.expect_error(401, "invalid_token")?;
    second.shutdown().await;
    fx.shutdown().await;
    Ok(())
}
