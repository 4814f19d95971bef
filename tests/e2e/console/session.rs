//! Console sessions: sign-in with client credentials (cookie attributes,
//! scopes, refusals), CSRF on cookie-authenticated changes, sign-out,
//! idle and absolute timeouts, one-time links.

use certbound_e2e::https::HttpsClient;
use certbound_e2e::{API, Fixture, GRANTED_SCOPE, unix_now};
use certbound_registry::credentials::hash_secret;
use certbound_registry::store::UiSession;
use http::Method;
use serde_json::json;

use super::{admin_credentials, login, post_form, session_of, with_cookie};

fn location(a: &certbound_e2e::https::JsonAnswer) -> Option<&str> {
    a.raw.header("location")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_session_sign_in_csrf_and_sign_out() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let https = HttpsClient::new(&fx.https_url(), fx.path(), None)?;
    let (id, secret) = admin_credentials(&fx)?;

    // The sign-in page is public and carries the security headers.
    let page = https.get("/ui/login", None).await?;
    assert_eq!(page.status, 200);
    let body = String::from_utf8_lossy(&page.raw.body).to_string();
    assert!(body.contains("action=\"/ui/login\"") && body.contains("client_secret"));
    assert!(
        page.raw.header("content-security-policy").is_some_and(|c| c
            .contains("frame-ancestors 'none'")
            && c.contains("script-src 'self'"))
    );
    assert_eq!(page.raw.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(page.raw.header("referrer-policy"), Some("same-origin"));

    // Sign in: 303 to /ui/ with the cookie and its attributes.
    let session = login(&https, &id, &secret).await?;
    let attrs: Vec<String> = session
        .set_cookie
        .split(';')
        .map(|a| a.trim().to_ascii_lowercase())
        .collect();
    assert!(session.cookie.starts_with("__Host-certbound_session="));
    let value = session
        .cookie
        .trim_start_matches("__Host-certbound_session=");
    assert_eq!(value.len(), 43, "32 random bytes, base64url");
    for needed in ["httponly", "secure", "samesite=strict", "path=/"] {
        assert!(
            attrs.iter().any(|a| a == needed),
            "{needed} missing: {attrs:?}"
        );
    }
    assert!(!attrs.iter().any(|a| a.starts_with("domain")), "{attrs:?}");
    // The store holds only the cookie's hash.
    assert!(
        fx.registry
            .store
            .ui_session(&hash_secret(value))
            .await?
            .is_some()
    );
    let who = https
        .send(
            Method::GET,
            "/ui/session",
            &[("cookie", &session.cookie)],
            Vec::new(),
        )
        .await?;
    assert_eq!(who.json["actor"], format!("admin-client:{id}"));
    assert_eq!(who.json["scopes"], json!(["admin:read", "admin:write"]));
    assert!(who.json["expires_at"].as_u64().unwrap_or(0) > unix_now());
    // The app is served with the session.
    let app = https
        .send(
            Method::GET,
            "/ui/",
            &[("cookie", &session.cookie)],
            Vec::new(),
        )
        .await?;
    assert_eq!(app.status, 200);
    assert!(String::from_utf8_lossy(&app.raw.body).contains("/ui/assets/app.js"));
    let js = https
        .send(
            Method::GET,
            "/ui/assets/app.js",
            &[("cookie", &session.cookie)],
            Vec::new(),
        )
        .await?;
    assert_eq!(js.status, 200);
    assert!(
        js.raw
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/javascript"))
    );
    assert_eq!(js.raw.header("cache-control"), Some("no-cache"));

    // A GET needs no CSRF token.
    let dash = with_cookie(
        &https,
        Method::GET,
        "/admin/v1/dashboard",
        &session,
        None,
        &[],
        &json!(null),
    )
    .await?;
    assert_eq!(dash.status, 200, "{}", dash.json);

    // A change: refused without the CSRF token, with a wrong one, and from
    // a foreign origin; done with the right one from this origin.
    let group = json!({"name": "console-made", "grants": [{"api": API, "scopes": GRANTED_SCOPE}]});
    let a = with_cookie(
        &https,
        Method::POST,
        "/admin/v1/groups",
        &session,
        None,
        &[],
        &group,
    )
    .await?;
    a.expect_error(403, "csrf")?;
    let a = with_cookie(
        &https,
        Method::POST,
        "/admin/v1/groups",
        &session,
        Some("wrong"),
        &[],
        &group,
    )
    .await?;
    a.expect_error(403, "csrf")?;
    let a = with_cookie(
        &https,
        Method::POST,
        "/admin/v1/groups",
        &session,
        Some(&session.csrf),
        &[("origin", "https://evil.example")],
        &group,
    )
    .await?;
    a.expect_error(403, "csrf")?;
    let own = https.base.clone();
    let a = with_cookie(
        &https,
        Method::POST,
        "/admin/v1/groups",
        &session,
        Some(&session.csrf),
        &[("origin", &own)],
        &group,
    )
    .await?;
    assert_eq!(a.status, 201, "{}", a.json);
    // Audited under the session's actor.
    let audit = with_cookie(
        &https,
        Method::GET,
        "/admin/v1/audit?action=group.created&subject=console-made",
        &session,
        None,
        &[],
        &json!(null),
    )
    .await?;
    assert_eq!(
        audit.json["items"][0]["actor"],
        format!("admin-client:{id}"),
        "{}",
        audit.json
    );
    // A bearer request needs no CSRF token (unchanged).
    let token = crate::admin_api::admin_token(&fx, &https, None).await?;
    let b = https
        .json(
            Method::POST,
            "/admin/v1/groups",
            &token,
            &json!({"name": "bearer-made"}),
        )
        .await?;
    assert_eq!(b.status, 201, "{}", b.json);

    // Sign-out needs the CSRF token too, then ends the session.
    let a = post_form(&https, "/ui/logout", &[], &[("cookie", &session.cookie)]).await?;
    a.expect_error(403, "csrf")?;
    let a = post_form(
        &https,
        "/ui/logout",
        &[("csrf", &session.csrf)],
        &[("cookie", &session.cookie)],
    )
    .await?;
    assert_eq!(a.status, 303);
    assert!(location(&a).is_some_and(|l| l.starts_with("/ui/login")));
    assert!(
        a.raw
            .header("set-cookie")
            .is_some_and(|c| c.contains("Max-Age=0"))
    );
    let after = https
        .send(
            Method::GET,
            "/ui/session",
            &[("cookie", &session.cookie)],
            Vec::new(),
        )
        .await?;
    after.expect_error(401, "invalid_token")?;
    let after = with_cookie(
        &https,
        Method::GET,
        "/admin/v1/dashboard",
        &session,
        None,
        &[],
        &json!(null),
    )
    .await?;
    after.expect_error(401, "invalid_token")?;
    let app = https
        .send(
            Method::GET,
            "/ui/devices",
            &[("cookie", &session.cookie)],
            Vec::new(),
        )
        .await?;
    assert_eq!((app.status, location(&app)), (303, Some("/ui/login")));
    fx.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_sign_in_refusals() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let https = HttpsClient::new(&fx.https_url(), fx.path(), None)?;
    let (id, secret) = admin_credentials(&fx)?;
    let refused = |a: &certbound_e2e::https::JsonAnswer, code: &str| {
        assert_eq!(a.status, 303);
        assert_eq!(
            location(a),
            Some(format!("/ui/login?error={code}").as_str())
        );
        assert!(
            a.raw.header("set-cookie").is_none(),
            "no cookie on a refusal"
        );
    };
    // Wrong secret.
    let a = post_form(
        &https,
        "/ui/login",
        &[("client_id", &id), ("client_secret", "nope")],
        &[],
    )
    .await?;
    refused(&a, "credentials");
    // A foreign Origin (login CSRF), even with the right credentials.
    let a = post_form(
        &https,
        "/ui/login",
        &[("client_id", &id), ("client_secret", &secret)],
        &[("origin", "https://evil.example")],
    )
    .await?;
    refused(&a, "origin");
    // A client without an admin grant cannot sign in.
    let other = fx
        .registry
        .create_client("etl", &[(API.into(), GRANTED_SCOPE.into())], None, true)
        .await?;
    let other_secret = other.client_secret.clone().unwrap_or_default();
    https
        .token_with_secret(&other.client_id, &other_secret, API, None)
        .await?;
    let a = post_form(
        &https,
        "/ui/login",
        &[
            ("client_id", &other.client_id),
            ("client_secret", &other_secret),
        ],
        &[],
    )
    .await?;
    refused(&a, "no_admin_scope");
    let audit = fx
        .registry
        .store
        .audit_page(
            &certbound_registry::store::AuditFilter {
                action: Some("ui.login".into()),
                subject: Some(other.client_id.clone()),
                ..Default::default()
            },
            None,
            10,
        )
        .await?;
    assert_eq!(
        audit.first().map(|(_, e)| e.outcome.as_str()),
        Some("refused")
    );

    // A session of a client lasts only as long as the client: deleted, its
    // sessions end at once.
    let ops = fx
        .registry
        .create_client(
            "ops",
            &[(
                certbound_registry::registry::ADMIN_API.into(),
                "admin:read admin:write".into(),
            )],
            None,
            true,
        )
        .await?;
    let session = super::login(
        &https,
        &ops.client_id,
        ops.client_secret.as_deref().unwrap_or_default(),
    )
    .await?;
    let dash = with_cookie(
        &https,
        Method::GET,
        "/admin/v1/dashboard",
        &session,
        None,
        &[],
        &json!(null),
    )
    .await?;
    assert_eq!(dash.status, 200, "{}", dash.json);
    fx.registry.delete_client(&ops.client_id).await?;
    let dash = with_cookie(
        &https,
        Method::GET,
        "/admin/v1/dashboard",
        &session,
        None,
        &[],
        &json!(null),
    )
    .await?;
    dash.expect_error(401, "invalid_token")?;
    fx.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_session_timeouts() -> anyhow::Result<()> {
    let fx = Fixture::with_config(&[
        ("session_idle_secs = 1800", "session_idle_secs = 60"),
        ("session_max_secs = 28800", "session_max_secs = 120"),
    ])
    .await?;
    let https = HttpsClient::new(&fx.https_url(), fx.path(), None)?;
    let (id, secret) = admin_credentials(&fx)?;
    let session = login(&https, &id, &secret).await?;
    assert!(
        session.set_cookie.contains("Max-Age=120"),
        "{}",
        session.set_cookie
    );
    let who = https
        .send(
            Method::GET,
            "/ui/session",
            &[("cookie", &session.cookie)],
            Vec::new(),
        )
        .await?;
    let expires = who.json["expires_at"].as_u64().unwrap_or(0);
    let now = unix_now();
    assert!(expires > now && expires <= now + 121, "{expires} vs {now}");

    // Sessions as the store would hold them after time passed: idle for
    // longer than the configured 60 s, or past the absolute end.
    let store = &fx.registry.store;
    let planted = |cookie: &str, last_seen: u64, expires_at: u64| UiSession {
        id_hash: hash_secret(cookie),
        actor: "ui-login:test".into(),
        scopes: "admin:read admin:write".into(),
        csrf_token: "t".into(),
        created_at: now - 100,
        last_seen,
        expires_at,
    };
    let check = |cookie: &'static str| {
        let https = https.clone();
        async move {
            let c = format!("__Host-certbound_session={cookie}");
            let a = https
                .send(
                    Method::GET,
                    "/admin/v1/dashboard",
                    &[("cookie", &c)],
                    Vec::new(),
                )
                .await?;
            anyhow::Ok(a)
        }
    };
    store
        .create_ui_session(&planted("fresh", now - 30, now + 60))
        .await?;
    store
        .create_ui_session(&planted("idle", now - 61, now + 60))
        .await?;
    store
        .create_ui_session(&planted("old", now - 1, now - 1))
        .await?;
    assert_eq!(check("fresh").await?.status, 200);
    let a = check("idle").await?;
    a.expect_error(401, "invalid_token")?;
    assert!(
        a.json["message"]
            .as_str()
            .is_some_and(|m| m.contains("inactivity"))
    );
    let a = check("old").await?;
    a.expect_error(401, "invalid_token")?;
    assert!(
        a.json["message"]
            .as_str()
            .is_some_and(|m| m.contains("maximum age"))
    );
    // And they are gone, not just refused.
    assert!(store.ui_session(&hash_secret("idle")).await?.is_none());
    fx.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_one_time_link() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let https = HttpsClient::new(&fx.https_url(), fx.path(), None)?;
    let store = &fx.registry.store;
    let now = unix_now();
    let token = "a-one-time-token-of-the-test";
    store
        .create_ui_login_token(&hash_secret(token), "alice", now, now + 300)
        .await?;
    // GET shows the Continue page, and does not consume the token.
    for _ in 0..2 {
        let page = https
            .get(&format!("/ui/login/link?token={token}"), None)
            .await?;
        assert_eq!(page.status, 200);
        let body = String::from_utf8_lossy(&page.raw.body).to_string();
        assert!(body.contains("Continue") && body.contains(token), "{body}");
        assert!(page.raw.header("content-security-policy").is_some());
    }
    let a = post_form(&https, "/ui/login/link", &[("token", token)], &[]).await?;
    let session = session_of(&https, &a).await?;
    let who = https
        .send(
            Method::GET,
            "/ui/session",
            &[("cookie", &session.cookie)],
            Vec::new(),
        )
        .await?;
    assert_eq!(who.json["actor"], "ui-login:alice");
    assert_eq!(who.json["scopes"], json!(["admin:read", "admin:write"]));
    // Once only.
    let again = post_form(&https, "/ui/login/link", &[("token", token)], &[]).await?;
    assert_eq!(location(&again), Some("/ui/login?error=link_used"));
    assert!(again.raw.header("set-cookie").is_none());
    let page = https
        .get(&format!("/ui/login/link?token={token}"), None)
        .await?;
    assert!(!String::from_utf8_lossy(&page.raw.body).contains("Continue"));
    // Expired.
    let late = "a-token-past-its-lifetime";
    store
        .create_ui_login_token(&hash_secret(late), "bob", now - 400, now - 100)
        .await?;
    let a = post_form(&https, "/ui/login/link", &[("token", late)], &[]).await?;
    assert_eq!(location(&a), Some("/ui/login?error=link_expired"));
    assert!(a.raw.header("set-cookie").is_none());
    // Unknown, and from a foreign origin.
    let a = post_form(&https, "/ui/login/link", &[("token", "made-up")], &[]).await?;
    assert_eq!(location(&a), Some("/ui/login?error=link_unknown"));
    store
        .create_ui_login_token(&hash_secret("t2"), "carol", now, now + 300)
        .await?;
    let a = post_form(
        &https,
        "/ui/login/link",
        &[("token", "t2")],
        &[("origin", "https://evil.example")],
    )
    .await?;
    assert_eq!(location(&a), Some("/ui/login?error=origin"));
    assert!(store.ui_login_token_usable(&hash_secret("t2"), now).await?);
    fx.shutdown().await;
    Ok(())
}
