//! The admin API `/admin/v1`: certbound's own JWTs with admin scopes, every
//! documented route served, every undocumented one absent.

use anyhow::Context as _;
use certbound_e2e::https::HttpsClient;
use certbound_e2e::{API, Fixture, GRANTED_SCOPE};
use certbound_registry::registry::{ADMIN_API, ADMIN_CLIENT_FILE};
use http::Method;
use serde_json::json;

pub(crate) async fn admin_token(
    fx: &Fixture,
    https: &HttpsClient,
    scope: Option<&str>,
) -> anyhow::Result<String> {
    let creds: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fx.path().join(ADMIN_CLIENT_FILE))?)?;
    let grant = https
        .token_with_secret(
            creds["client_id"].as_str().context("client_id")?,
            creds["client_secret"].as_str().context("client_secret")?,
            ADMIN_API,
            scope,
        )
        .await?;
    Ok(grant["access_token"].as_str().context("token")?.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_manages_the_registry() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let https = HttpsClient::new(&fx.https_url(), fx.path(), None)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(fx.path().join(ADMIN_CLIENT_FILE))?
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the admin credentials are private");
    }
    let token = admin_token(&fx, &https, None).await?;

    // Read.
    let apis = https.get("/admin/v1/apis", Some(&token)).await?;
    assert_eq!(apis.status, 200, "{}", apis.json);
    assert!(apis.json.to_string().contains(API));
    // Write: a group, a device (key and certificate in the answer), a client.
    let g = https
        .json(
            Method::POST,
            "/admin/v1/groups",
            &token,
            &json!({"name": "gateways", "grants": [{"api": API, "scopes": GRANTED_SCOPE}]}),
        )
        .await?;
    assert_eq!(g.status, 201, "{}", g.json);
    let d = https
        .json(
            Method::POST,
            "/admin/v1/devices",
            &token,
            &json!({"id": "gw-1", "groups": ["gateways"]}),
        )
        .await?;
    assert_eq!(d.status, 201, "{}", d.json);
    assert!(
        d.json["key_pem"]
            .as_str()
            .is_some_and(|k| k.contains("PRIVATE KEY"))
    );
    assert!(
        d.json["cert_pem"]
            .as_str()
            .is_some_and(|c| c.contains("CERTIFICATE"))
    );
    let dup = https
        .json(
            Method::POST,
            "/admin/v1/devices",
            &token,
            &json!({"id": "gw-1", "groups": ["gateways"]}),
        )
        .await?;
    assert_eq!(dup.status, 409);
    let show = https.get("/admin/v1/devices/gw-1", Some(&token)).await?;
    assert_eq!(show.json["device"]["status"], "active");
    let r = https
        .json(
            Method::POST,
            "/admin/v1/devices/gw-1/suspend",
            &token,
            &json!({"reason": "maintenance"}),
        )
        .await?;
    assert_eq!(r.status, 200, "{}", r.json);
    let show = https.get("/admin/v1/devices/gw-1", Some(&token)).await?;
    assert_eq!(show.json["device"]["status"], "suspended");
    let missing = https.get("/admin/v1/devices/nope", Some(&token)).await?;
    assert_eq!(missing.status, 404);
    let c = https
        .json(
            Method::POST,
            "/admin/v1/clients",
            &token,
            &json!({"name": "etl", "grants": [{"api": API, "scopes": GRANTED_SCOPE}]}),
        )
        .await?;
    assert_eq!(c.status, 201, "{}", c.json);
    let client_id = c.json["client_id"]
        .as_str()
        .context("client_id")?
        .to_string();
    let secret = c.json["client_secret"]
        .as_str()
        .context("secret")?
        .to_string();
    https
        .token_with_secret(&client_id, &secret, API, None)
        .await?;
    let list = https.get("/admin/v1/clients", Some(&token)).await?;
    assert!(list.json.to_string().contains("etl"));
    assert!(
        !list.json.to_string().contains(&secret),
        "secrets are never listed"
    );
    let del = https
        .send(
            Method::DELETE,
            &format!("/admin/v1/clients/{client_id}"),
            &[("authorization", &format!("Bearer {token}"))],
            Vec::new(),
        )
        .await?;
    assert_eq!(del.status, 200, "{}", del.json);
    // The audit log names the admin client as the actor.
    let audit = https
        .get("/admin/v1/audit?subject=gw-1", Some(&token))
        .await?;
    assert!(
        audit.json.to_string().contains("device.suspended"),
        "{}",
        audit.json
    );
    assert!(
        audit.json.to_string().contains("\"actor\":\"admin:cb_"),
        "{}",
        audit.json
    );
    fx.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_refuses_without_the_right_token() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let https = HttpsClient::new(&fx.https_url(), fx.path(), None)?;
    // No token.
    let a = https.get("/admin/v1/devices", None).await?;
    assert_eq!(a.status, 401);
    assert!(
        a.raw
            .header("www-authenticate")
            .is_some_and(|v| v.starts_with("Bearer"))
    );
    // Garbage.
    assert_eq!(
        https
            .get("/admin/v1/devices", Some("garbage"))
            .await?
            .status,
        401
    );
    // A read-only admin token cannot write.
    let read_only = admin_token(&fx, &https, Some("admin:read")).await?;
    assert_eq!(
        https
            .get("/admin/v1/devices", Some(&read_only))
            .await?
            .status,
        200
    );
    let w = https
        .json(
            Method::POST,
            "/admin/v1/groups",
            &read_only,
            &json!({"name": "x"}),
        )
        .await?;
    assert_eq!(w.status, 403, "{}", w.json);
    // A valid certbound token for another API is not an admin token.
    let other = fx
        .registry
        .create_client("svc", &[(API.into(), GRANTED_SCOPE.into())], None, true)
        .await?;
    let grant = https
        .token_with_secret(
            &other.client_id,
            other.client_secret.as_deref().unwrap_or_default(),
            API,
            None,
        )
        .await?;
    let t = grant["access_token"].as_str().context("token")?;
    assert_eq!(https.get("/admin/v1/devices", Some(t)).await?.status, 401);
    // A revoked admin token.
    let token = admin_token(&fx, &https, None).await?;
    let r = https
        .json(
            Method::POST,
            "/admin/v1/revocations",
            &token,
            &json!({"token": read_only}),
        )
        .await?;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(
        https
            .get("/admin/v1/devices", Some(&read_only))
            .await?
            .status,
        401
    );
    fx.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_route_exists() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let https = HttpsClient::new(&fx.https_url(), fx.path(), None)?;
    let doc = https.get("/admin/v1/openapi.json", None).await?;
    assert_eq!(doc.status, 200);
    assert_eq!(doc.json["openapi"], "3.1.0");
    let token = admin_token(&fx, &https, Some("admin:read")).await?;
    let auth = format!("Bearer {token}");
    let paths = doc.json["paths"].as_object().context("paths")?;
    assert!(paths.len() >= 12, "{} paths", paths.len());
    for (path, ops) in paths {
        // Path-item keys that are not operations (OpenAPI 3.1 §4.8.9).
        let operations = ops.as_object().context("ops")?.keys().filter(|k| {
            !matches!(
                k.as_str(),
                "parameters" | "summary" | "description" | "servers"
            )
        });
        for method in operations {
            // A server-sent event stream never ends: console::stream checks it.
            if ops[method]["responses"]["200"]["content"]
                .get("text/event-stream")
                .is_some()
            {
                continue;
            }
            let concrete = path
                .replace("{id}", "no-such-thing")
                .replace("{name}", "no-such-thing")
                .replace("{kid}", "no-such-thing")
                .replace("{group}", "no-such-thing")
                .replace("{action}", "suspend");
            let m = Method::from_bytes(method.to_uppercase().as_bytes())?;
            let a = https
                .send(
                    m.clone(),
                    &format!("/admin/v1{concrete}"),
                    &[
                        ("authorization", &auth),
                        ("content-type", "application/json"),
                    ],
                    b"{}".to_vec(),
                )
                .await?;
            // Served: anything but the router's "no such endpoint" or 405.
            assert_ne!(a.status, 405, "{m} {path} is documented but not routed");
            // (The admin API's own fallback answers `no admin route ...`.)
            assert!(
                !(a.status == 404
                    && a.json["message"]
                        .as_str()
                        .is_some_and(|d| d.starts_with("no admin route"))),
                "{m} {path} is documented but not routed"
            );
        }
    }
    // And an undocumented one is not served.
    let a = https.get("/admin/v1/secrets", Some(&token)).await?;
    assert_eq!(a.status, 404);
    assert!(
        a.json["message"]
            .as_str()
            .is_some_and(|d| d.starts_with("no admin route")),
        "{}",
        a.json
    );
    fx.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_manages_roles() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let https = HttpsClient::new(&fx.https_url(), fx.path(), None)?;
    let token = admin_token(&fx, &https, None).await?;
    let reader = admin_token(&fx, &https, Some("admin:read")).await?;
    let post = |path: &'static str, body: serde_json::Value, t: String| {
        let https = &https;
        async move { https.json(Method::POST, path, &t, &body).await }
    };

    let r = post(
        "/admin/v1/roles",
        json!({"name": "writer", "description": "sends telemetry",
               "grants": [{"api": API, "scopes": GRANTED_SCOPE}]}),
        token.clone(),
    )
    .await?;
    assert_eq!(r.status, 201, "{}", r.json);
    assert_eq!(r.json["grants"][0]["scopes"], json!([GRANTED_SCOPE]));
    // Refusals: a read-only token, a scope the API does not define, a name
    // taken, an unknown field.
    let r = post("/admin/v1/roles", json!({"name": "x"}), reader.clone()).await?;
    assert_eq!(r.status, 403, "admin:read cannot create: {}", r.json);
    let r = post(
        "/admin/v1/roles",
        json!({"name": "bad", "grants": [{"api": API, "scopes": "telemetry:admin"}]}),
        token.clone(),
    )
    .await?;
    assert_eq!(r.status, 400, "{}", r.json);
    let r = post("/admin/v1/roles", json!({"name": "writer"}), token.clone()).await?;
    assert_eq!(r.status, 409, "{}", r.json);
    let r = post(
        "/admin/v1/roles",
        json!({"name": "y", "admin": true}),
        token.clone(),
    )
    .await?;
    assert_eq!(r.status, 422, "unknown fields are refused: {}", r.json);

    // Assign to a client (by name) and to a group; exactly one holder.
    fx.registry
        .create_client("etl", &[], None, true)
        .await
        .context("client")?;
    let r = post(
        "/admin/v1/roles/writer/assign",
        json!({"client": "etl"}),
        token.clone(),
    )
    .await?;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json["changed"], true);
    let r = post(
        "/admin/v1/roles/writer/assign",
        json!({"group": certbound_e2e::GROUP}),
        token.clone(),
    )
    .await?;
    assert_eq!(r.status, 200, "{}", r.json);
    let r = post(
        "/admin/v1/roles/writer/assign",
        json!({"client": "etl", "group": "sensors"}),
        token.clone(),
    )
    .await?;
    assert_eq!(r.status, 400, "{}", r.json);
    let r = post(
        "/admin/v1/roles/nobody/assign",
        json!({"client": "etl"}),
        token.clone(),
    )
    .await?;
    assert_eq!(r.status, 404, "{}", r.json);

    // The role shows its holders; the group list shows its roles.
    let shown = https.get("/admin/v1/roles/writer", Some(&reader)).await?;
    assert_eq!(shown.status, 200);
    assert_eq!(shown.json["groups"], json!([certbound_e2e::GROUP]));
    assert_eq!(shown.json["clients"].as_array().map(Vec::len), Some(1));
    let groups = https.get("/admin/v1/groups", Some(&reader)).await?;
    assert!(
        groups.json.to_string().contains("\"roles\":[\"writer\"]"),
        "{}",
        groups.json
    );

    // Grant changes, then delete: refused while held unless force.
    let r = post(
        "/admin/v1/roles/writer/grant",
        json!({"api": API, "scopes": "telemetry:write firmware:read"}),
        token.clone(),
    )
    .await?;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json["previous"], json!([GRANTED_SCOPE]));
    let r = post(
        "/admin/v1/roles/writer/revoke-grant",
        json!({"api": API}),
        token.clone(),
    )
    .await?;
    assert_eq!(r.status, 200, "{}", r.json);
    let del = https
        .send(
            Method::DELETE,
            "/admin/v1/roles/writer",
            &[("authorization", &format!("Bearer {token}"))],
            Vec::new(),
        )
        .await?;
    assert_eq!(del.status, 400, "held: {}", del.json);
    let del = https
        .send(
            Method::DELETE,
            "/admin/v1/roles/writer?force=true",
            &[("authorization", &format!("Bearer {token}"))],
            Vec::new(),
        )
        .await?;
    assert_eq!(del.status, 200, "{}", del.json);
    let gone = https.get("/admin/v1/roles/writer", Some(&reader)).await?;
    assert_eq!(gone.status, 404);
    // No token, no roles.
    assert_eq!(https.get("/admin/v1/roles", None).await?.status, 401);
    fx.shutdown().await;
    Ok(())
}
