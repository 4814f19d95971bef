//! Route by route: every operation of openapi.json and every `/ui` route
//! refuses callers without credentials, with a token of a client that is
//! not an admin (another audience), and — for changes — a console session
//! holding only `admin:read`. The document is walked, so a route added to
//! it without authentication fails this test; the `/ui` routes are a fixed
//! list.

use anyhow::Context as _;
use certbound_e2e::https::{HttpsClient, JsonAnswer};
use certbound_e2e::{API, Fixture, GRANTED_SCOPE};
use certbound_registry::registry::ADMIN_API;
use http::Method;

use super::login;

/// The `/ui` routes that need a session: (method, path, HTML route).
const UI_ROUTES: &[(&str, &str, bool)] = &[
    ("GET", "/ui/", true),
    ("GET", "/ui/devices", true),
    ("GET", "/ui/devices/sensor-1", true),
    ("GET", "/ui/audit", true),
    ("GET", "/ui/assets/app.js", false),
    ("GET", "/ui/assets/app.css", false),
    ("GET", "/ui/session", false),
    ("POST", "/ui/logout", false),
];

/// The public `/ui` routes.
const UI_PUBLIC: &[&str] = &["/ui/login", "/ui/login.css", "/ui/login/link?token=x"];

fn concrete(path: &str) -> String {
    // Every `{param}` gets a dummy value (`{action}` a real action, so the
    // route's own checks do not answer first).
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find('}')
            .map_or(rest.len(), |e| start + e + 1);
        out.push_str(if &rest[start..end] == "{action}" {
            "suspend"
        } else {
            "dummy-1"
        });
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

fn is_refusal(a: &JsonAnswer, status: u16) -> bool {
    a.status == status && a.json["error"].is_string() && a.json["message"].is_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_every_route_refuses_without_the_right_credentials() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let https = HttpsClient::new(&fx.https_url(), fx.path(), None)?;
    // A client of another API, and its (valid) token.
    let other = fx
        .registry
        .create_client("etl", &[(API.into(), GRANTED_SCOPE.into())], None, true)
        .await?;
    let other_secret = other.client_secret.clone().context("secret")?;
    let foreign = https
        .token_with_secret(&other.client_id, &other_secret, API, None)
        .await?;
    let foreign = format!(
        "Bearer {}",
        foreign["access_token"].as_str().context("token")?
    );
    // A reader: admin:read only.
    let reader = fx
        .registry
        .create_client(
            "reader",
            &[(ADMIN_API.into(), "admin:read".into())],
            None,
            true,
        )
        .await?;
    let reader_session = login(
        &https,
        &reader.client_id,
        reader.client_secret.as_deref().context("secret")?,
    )
    .await?;

    let doc = https.get("/admin/v1/openapi.json", None).await?;
    let paths = doc.json["paths"].as_object().context("paths")?;
    let mut checked = 0;
    for (path, ops) in paths {
        for (method, op) in ops.as_object().context("ops")? {
            if matches!(
                method.as_str(),
                "parameters" | "summary" | "description" | "servers"
            ) {
                continue;
            }
            let public = op["security"].as_array().is_some_and(Vec::is_empty);
            if public {
                assert_eq!(path, "/openapi.json", "only the document itself is public");
                continue;
            }
            let m = Method::from_bytes(method.to_uppercase().as_bytes())?;
            let url = format!("/admin/v1{}", concrete(path));
            let json = ("content-type", "application/json");
            let body = b"{}".to_vec();
            // No credentials.
            let a = https.send(m.clone(), &url, &[json], body.clone()).await?;
            assert!(
                is_refusal(&a, 401),
                "{m} {url} without credentials: {} {}",
                a.status,
                a.json
            );
            assert_eq!(a.json["error"], "invalid_token", "{m} {url}");
            // A garbage cookie.
            let a = https
                .send(
                    m.clone(),
                    &url,
                    &[json, ("cookie", "__Host-certbound_session=forged")],
                    body.clone(),
                )
                .await?;
            assert!(
                is_refusal(&a, 401),
                "{m} {url} with a forged cookie: {} {}",
                a.status,
                a.json
            );
            // A valid token for another audience.
            let a = https
                .send(
                    m.clone(),
                    &url,
                    &[json, ("authorization", &foreign)],
                    body.clone(),
                )
                .await?;
            assert!(
                is_refusal(&a, 401) || is_refusal(&a, 403),
                "{m} {url} with a token of another API: {} {}",
                a.status,
                a.json
            );
            // A read-only session may not change anything (even with its CSRF token).
            if m != Method::GET {
                let a = https
                    .send(
                        m.clone(),
                        &url,
                        &[
                            json,
                            ("cookie", &reader_session.cookie),
                            ("x-csrf-token", &reader_session.csrf),
                        ],
                        body.clone(),
                    )
                    .await?;
                assert!(
                    is_refusal(&a, 403),
                    "{m} {url} as a reader: {} {}",
                    a.status,
                    a.json
                );
                assert_eq!(a.json["error"], "insufficient_scope", "{m} {url}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 30, "only {checked} operations documented");

    // The console's own routes.
    for (method, path, html) in UI_ROUTES {
        let m = Method::from_bytes(method.as_bytes())?;
        for auth in [None, Some(foreign.as_str())] {
            let headers: Vec<(&str, &str)> =
                auth.map(|a| vec![("authorization", a)]).unwrap_or_default();
            let a = https.send(m.clone(), path, &headers, Vec::new()).await?;
            if *html {
                assert_eq!(
                    (a.status, a.raw.header("location")),
                    (303, Some("/ui/login")),
                    "{method} {path}"
                );
                assert!(!String::from_utf8_lossy(&a.raw.body).contains("app.js"));
            } else {
                assert!(
                    is_refusal(&a, 401),
                    "{method} {path}: {} {}",
                    a.status,
                    a.json
                );
            }
            assert!(
                a.raw.header("content-security-policy").is_some(),
                "{method} {path} without the CSP"
            );
        }
    }
    for path in UI_PUBLIC {
        let a = https.get(path, None).await?;
        assert_eq!(a.status, 200, "{path} is public");
        assert_eq!(
            a.raw.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
    }
    fx.shutdown().await;
    Ok(())
}

/// The guard lets exactly the document through unauthenticated: a route
/// whose last segment is `openapi.json` (a device action, a group) is
/// authenticated before its body is read, so a malformed body earns a 401,
/// not a 400 that tells the caller the route parsed it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_routes_named_like_the_document_are_not_public() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let https = HttpsClient::new(&fx.https_url(), fx.path(), None)?;
    let json = ("content-type", "application/json");
    for (method, path) in [
        (Method::POST, "/admin/v1/devices/sensor-1/openapi.json"),
        (Method::DELETE, "/admin/v1/groups/openapi.json"),
        (Method::GET, "/admin/v1/roles/openapi.json"),
    ] {
        let a = https
            .send(method.clone(), path, &[json], b"{".to_vec())
            .await?;
        assert_eq!(a.status, 401, "{method} {path}: {}", a.json);
    }
    let doc = https.get("/admin/v1/openapi.json", None).await?;
    assert_eq!(doc.status, 200, "the document itself stays public");
    fx.shutdown().await;
    Ok(())
}
