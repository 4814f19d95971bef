//! The admin routes that match CLI commands (docs/admin-api.md): each one
//! works, is audited, and a change reaches the running broker (the next
//! device token follows it). Every error, including the ones axum's body
//! extractor makes, is a JSON `Error`.

use anyhow::Context as _;
use certbound_e2e::https::{HttpsClient, JsonAnswer};
use certbound_e2e::{API, Fixture, GRANTED_SCOPE, GROUP};
use http::Method;
use serde_json::json;

use crate::admin_api::admin_token;

fn path_of(api: &str) -> String {
    api.replace(':', "%3A").replace('/', "%2F")
}

async fn audited(
    https: &HttpsClient,
    token: &str,
    subject: &str,
    action: &str,
) -> anyhow::Result<()> {
    let audit = https
        .get(
            &format!("/admin/v1/audit?subject={}&limit=50", path_of(subject)),
            Some(token),
        )
        .await?;
    anyhow::ensure!(
        audit.json.to_string().contains(action)
            && audit.json.to_string().contains("\"actor\":\"admin:"),
        "{action} on {subject} not audited as the admin client: {}",
        audit.json
    );
    Ok(())
}

fn expect(answer: &JsonAnswer, status: u16) -> anyhow::Result<()> {
    anyhow::ensure!(
        answer.status == status,
        "expected {status}, got {}: {}",
        answer.status,
        answer.json
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_and_api_changes_reach_the_running_broker() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let https = HttpsClient::new(&fx.https_url(), fx.path(), None)?;
    let token = admin_token(&fx, &https, None).await?;
    let device = fx.device("sensor-admin").await?;
    fx.assert_serves(&device).await?;

    // api set-ttl: the next token has the new lifetime.
    let ttl = https
        .json(
            Method::PUT,
            &format!("/admin/v1/apis/{}/ttl", path_of(API)),
            &token,
            &json!({"ttl_secs": 600}),
        )
        .await?;
    expect(&ttl, 200)?;
    assert_eq!(ttl.json["previous_ttl_secs"], 3600);
    let t = fx.obtain(&device, &fx.params(Some(GRANTED_SCOPE))).await?;
    assert_eq!(t.expires_in, 600);
    audited(&https, &token, API, "api.ttl_changed").await?;

    // group grant replaces the scope: the old one is refused at once.
    let g = https
        .json(
            Method::POST,
            &format!("/admin/v1/groups/{GROUP}/grant"),
            &token,
            &json!({"api": API, "scopes": "firmware:read"}),
        )
        .await?;
    expect(&g, 200)?;
    assert_eq!(g.json["previous"], json!([GRANTED_SCOPE]));
    let refused = fx
        .post_token(fx.agent_request(&device, &fx.params(Some(GRANTED_SCOPE)))?)
        .await?;
    assert!(refused.error().is_ok(), "the replaced scope is refused");
    fx.obtain(&device, &fx.params(Some("firmware:read")))
        .await?;
    audited(&https, &token, GROUP, "group.grant_set").await?;

    // group revoke-grant: the next token request gets nothing.
    let r = https
        .json(
            Method::POST,
            &format!("/admin/v1/groups/{GROUP}/revoke-grant"),
            &token,
            &json!({"api": API}),
        )
        .await?;
    expect(&r, 200)?;
    let refused = fx
        .post_token(fx.agent_request(&device, &fx.params(Some("firmware:read")))?)
        .await?;
    assert!(refused.error().is_ok(), "no grant left, no token");
    audited(&https, &token, GROUP, "group.grant_removed").await?;
    let again = https
        .json(
            Method::POST,
            &format!("/admin/v1/groups/{GROUP}/revoke-grant"),
            &token,
            &json!({"api": API}),
        )
        .await?;
    assert!(again.status == 404 || again.status == 200, "{}", again.json);

    // group delete: refused while the device is a member, done with force.
    let del = https
        .send(
            Method::DELETE,
            &format!("/admin/v1/groups/{GROUP}"),
            &[("authorization", &format!("Bearer {token}"))],
            Vec::new(),
        )
        .await?;
    expect(&del, 400)?;
    assert!(
        del.json["message"]
            .as_str()
            .is_some_and(|m| m.contains("force=true")),
        "{}",
        del.json
    );
    let del = https
        .send(
            Method::DELETE,
            &format!("/admin/v1/groups/{GROUP}?force=true"),
            &[("authorization", &format!("Bearer {token}"))],
            Vec::new(),
        )
        .await?;
    expect(&del, 200)?;
    assert_eq!(del.json["removed_members"], json!(["sensor-admin"]));
    audited(&https, &token, GROUP, "group.deleted").await?;
    let missing = https
        .json(
            Method::POST,
            &format!("/admin/v1/groups/{GROUP}/grant"),
            &token,
            &json!({"api": API, "scopes": GRANTED_SCOPE}),
        )
        .await?;
    expect(&missing, 404)?;
    fx.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pki_routes_and_policy_work_like_the_cli() -> anyhow::Result<()> {
    pki_routes_and_policy(None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pki_routes_and_policy_on_postgres() -> anyhow::Result<()> {
    let Some(url) = certbound_broker::store::testing::fresh_postgres().await else {
        return Ok(());
    };
    pki_routes_and_policy(Some(url)).await
}

async fn pki_routes_and_policy(store: Option<String>) -> anyhow::Result<()> {
    let fx = Fixture::on_store(store, &[]).await?;
    let https = HttpsClient::new(&fx.https_url(), fx.path(), None)?;
    let token = admin_token(&fx, &https, None).await?;
    let read = admin_token(&fx, &https, Some("admin:read")).await?;

    // ca show, rotate-issuing.
    let cas = https.get("/admin/v1/ca", Some(&read)).await?;
    expect(&cas, 200)?;
    let before = cas.json[0]["serial"]
        .as_str()
        .context("serial")?
        .to_string();
    assert_eq!(cas.json[0]["current"], true);
    let rotated = https
        .json(
            Method::POST,
            "/admin/v1/ca/rotate-issuing",
            &token,
            &json!({}),
        )
        .await?;
    expect(&rotated, 200)?;
    assert_eq!(rotated.json["old_serial"], before.as_str());
    let cas = https.get("/admin/v1/ca", Some(&read)).await?;
    assert_eq!(cas.json[0]["serial"], rotated.json["new_serial"]);

    // A service certificate: key in the answer, listed, revoked, audited.
    let svc = https
        .json(
            Method::POST,
            "/admin/v1/services",
            &token,
            &json!({"name": "ingester"}),
        )
        .await?;
    expect(&svc, 201)?;
    assert!(
        svc.json["key_pem"]
            .as_str()
            .is_some_and(|k| k.contains("PRIVATE KEY"))
    );
    let list = https.get("/admin/v1/services", Some(&read)).await?;
    assert!(list.json.to_string().contains("ingester"));
    let revoked = https
        .json(
            Method::POST,
            "/admin/v1/services/ingester/revoke",
            &token,
            &json!({}),
        )
        .await?;
    expect(&revoked, 200)?;
    assert!(revoked.json[0]["revoked_at"].is_u64());
    audited(&https, &token, "ingester", "service.provisioned").await?;

    // A provisioning claim: made, listed, revoked.
    let claim = https
        .json(
            Method::POST,
            "/admin/v1/claims",
            &token,
            &json!({"group": GROUP, "uses": 3, "ttl_secs": 3600, "id_pattern": "line-*"}),
        )
        .await?;
    expect(&claim, 201)?;
    let id = claim.json["claim"]["id"]
        .as_str()
        .context("claim id")?
        .to_string();
    let claims = https.get("/admin/v1/claims", Some(&read)).await?;
    assert!(claims.json.to_string().contains(&id));
    let r = https
        .json(
            Method::POST,
            &format!("/admin/v1/claims/{id}/revoke"),
            &token,
            &json!({}),
        )
        .await?;
    expect(&r, 200)?;
    audited(&https, &token, &id, "claim.revoked").await?;
    // A policy without the group the claim enrolls into: refused, not a 500
    // from the database (the claim's row names the group), prune or not.
    let prune = https
        .send(
            Method::POST,
            "/admin/v1/policy/apply?prune=true",
            &[
                ("authorization", &format!("Bearer {token}")),
                ("content-type", "application/toml"),
            ],
            Vec::new(),
        )
        .await?;
    expect(&prune, 400)?;
    assert!(
        prune.json["message"]
            .as_str()
            .is_some_and(|m| m.contains("cannot be removed") && m.contains(&id)),
        "{}",
        prune.json
    );
    let none = https
        .json(
            Method::POST,
            "/admin/v1/claims/nope/revoke",
            &token,
            &json!({}),
        )
        .await?;
    expect(&none, 404)?;

    // Retiring this instance's own key is refused (rotate it instead).
    let keys = https.get("/admin/v1/keys", Some(&read)).await?;
    let kid = keys.json[0]["kid"].as_str().context("kid")?.to_string();
    let own = https
        .json(
            Method::POST,
            &format!("/admin/v1/keys/{kid}/retire"),
            &token,
            &json!({}),
        )
        .await?;
    expect(&own, 400)?;

    // Policy: export as TOML, plan a change (nothing written), apply it.
    let exported = https
        .send(
            Method::GET,
            "/admin/v1/policy",
            &[("authorization", &format!("Bearer {read}"))],
            Vec::new(),
        )
        .await?;
    expect(&exported, 200)?;
    let toml = String::from_utf8(exported.raw.body.clone())?;
    assert!(toml.contains(API), "{toml}");
    let changed = toml.replace("ttl_secs = 3600", "ttl_secs = 900");
    assert_ne!(changed, toml, "the export names the API's lifetime");
    let headers = [
        ("authorization", format!("Bearer {token}")),
        ("content-type", "application/toml".into()),
    ];
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let plan = https
        .send(
            Method::POST,
            "/admin/v1/policy/plan",
            &headers,
            changed.clone().into_bytes(),
        )
        .await?;
    expect(&plan, 200)?;
    assert_eq!(plan.json["changes"][0]["op"], "update", "{}", plan.json);
    assert!(plan.json["diff"].as_str().is_some_and(|d| d.contains(API)));
    let apis = https.get("/admin/v1/apis", Some(&read)).await?;
    assert!(
        apis.json.to_string().contains("\"ttl_secs\":3600"),
        "plan wrote nothing"
    );
    let plan_read = https
        .send(
            Method::POST,
            "/admin/v1/policy/plan",
            &[("authorization", &format!("Bearer {read}"))],
            changed.clone().into_bytes(),
        )
        .await?;
    expect(&plan_read, 403)?;
    let applied = https
        .send(
            Method::POST,
            "/admin/v1/policy/apply",
            &headers,
            changed.into_bytes(),
        )
        .await?;
    expect(&applied, 200)?;
    let apis = https.get("/admin/v1/apis", Some(&read)).await?;
    assert!(
        apis.json.to_string().contains("\"ttl_secs\":900"),
        "{}",
        apis.json
    );
    let bad = https
        .send(
            Method::POST,
            "/admin/v1/policy/apply",
            &headers,
            b"apis = [ {".to_vec(),
        )
        .await?;
    expect(&bad, 400)?;
    assert_eq!(bad.json["error"], "invalid");
    let env = https
        .send(
            Method::POST,
            "/admin/v1/policy/plan",
            &headers,
            b"[[apis]]\nid = \"${HOME}\"\nscopes = [\"a\"]\n".to_vec(),
        )
        .await?;
    expect(&env, 400)?;
    assert!(
        !env.json.to_string().contains("/root"),
        "no server environment over the API"
    );
    fx.shutdown().await;
    Ok(())
}

/// Headers, body, the status and `error` code expected.
type Case<'a> = (&'a [(&'a str, &'a str)], Vec<u8>, u16, &'a str);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_errors_are_json() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let https = HttpsClient::new(&fx.https_url(), fx.path(), None)?;
    let token = admin_token(&fx, &https, None).await?;
    let auth = format!("Bearer {token}");
    let json_ct = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    let cases: [Case; 3] = [
        (&json_ct, b"{not json".to_vec(), 400, "invalid_request"),
        (
            &[
                ("authorization", auth.as_str()),
                ("content-type", "text/plain"),
            ],
            b"{}".to_vec(),
            415,
            "unsupported_media_type",
        ),
        (
            &json_ct,
            b"{\"scopes\": \"a\"}".to_vec(),
            422,
            "invalid_request",
        ),
    ];
    for (headers, body, status, code) in cases {
        let a = https
            .send(Method::POST, "/admin/v1/apis", headers, body)
            .await?;
        expect(&a, status)?;
        assert_eq!(a.json["error"], code, "{}", a.json);
        assert!(a.json["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // Too large: the server answers 413 from Content-Length and closes
    // without reading the body, so the client may still be writing it
    // (broken pipe) or see the reset before the answer; on a busy machine
    // that happens now and then. A transport error is retried; a 413 must
    // come back within a few tries.
    let too_large = vec![b' '; certbound_broker::transport::https::ADMIN_MAX_BODY + 1];
    let mut answer = None;
    for _ in 0..10 {
        match https
            .send(Method::POST, "/admin/v1/apis", &json_ct, too_large.clone())
            .await
        {
            Ok(a) => {
                answer = Some(a);
                break;
            }
            Err(e) => eprintln!("oversized body: {e} (retrying)"),
        }
    }
    let a = answer.context("no answer to an oversized body in 10 tries")?;
    expect(&a, 413)?;
    assert_eq!(a.json["error"], "too_large", "{}", a.json);
    let wrong = https
        .send(
            Method::PATCH,
            "/admin/v1/apis",
            &[("authorization", auth.as_str())],
            Vec::new(),
        )
        .await?;
    expect(&wrong, 405)?;
    assert_eq!(wrong.json["error"], "method_not_allowed");
    fx.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_group_membership_reaches_the_running_broker() -> anyhow::Result<()> {
    device_group_membership(None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_group_membership_on_postgres() -> anyhow::Result<()> {
    // `None` (after a loud message; a failure with CERTBOUND_REQUIRE_ALL=1)
    // when no PostgreSQL server is reachable.
    let Some(url) = certbound_broker::store::testing::fresh_postgres().await else {
        return Ok(());
    };
    device_group_membership(Some(url)).await
}

async fn device_group_membership(store: Option<String>) -> anyhow::Result<()> {
    let fx = Fixture::on_store(store, &[]).await?;
    let https = HttpsClient::new(&fx.https_url(), fx.path(), None)?;
    let token = admin_token(&fx, &https, None).await?;
    let auth = format!("Bearer {token}");
    let device = fx.device("sensor-member").await?;
    let g = https
        .json(
            Method::POST,
            "/admin/v1/groups",
            &token,
            &json!({"name": "firmware", "grants": [{"api": API, "scopes": "firmware:read"}]}),
        )
        .await?;
    expect(&g, 201)?;
    let firmware = fx.params(Some("firmware:read"));
    let refused = fx.post_token(fx.agent_request(&device, &firmware)?).await?;
    assert!(refused.error().is_ok(), "not a member yet");

    let path = "/admin/v1/devices/sensor-member/groups/firmware";
    let join = https
        .send(Method::PUT, path, &[("authorization", &auth)], Vec::new())
        .await?;
    expect(&join, 200)?;
    assert_eq!(join.json["changed"], true);
    fx.obtain(&device, &firmware).await?;
    audited(&https, &token, "sensor-member", "device.group_added").await?;
    let again = https
        .send(Method::PUT, path, &[("authorization", &auth)], Vec::new())
        .await?;
    expect(&again, 200)?;
    assert_eq!(again.json["changed"], false);

    let leave = https
        .send(
            Method::DELETE,
            path,
            &[("authorization", &auth)],
            Vec::new(),
        )
        .await?;
    expect(&leave, 200)?;
    let refused = fx.post_token(fx.agent_request(&device, &firmware)?).await?;
    assert!(refused.error().is_ok(), "left the group, lost its grant");
    fx.assert_serves(&device).await?;
    audited(&https, &token, "sensor-member", "device.group_removed").await?;

    let unknown = https
        .send(
            Method::PUT,
            "/admin/v1/devices/sensor-member/groups/nope",
            &[("authorization", &auth)],
            Vec::new(),
        )
        .await?;
    expect(&unknown, 404)?;
    fx.shutdown().await;
    Ok(())
}

/// A failure inside the server (here: a table gone) is a 500 `internal`
/// whose message names nothing internal (no database detail).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_failures_say_nothing_internal() -> anyhow::Result<()> {
    if std::process::Command::new("sqlite3")
        .arg("-version")
        .output()
        .is_err()
    {
        certbound_e2e::mosquitto::skip_or_fail("sqlite3 (the SQLite command-line tool)");
        return Ok(());
    }
    let fx = Fixture::new().await?;
    let https = HttpsClient::new(&fx.https_url(), fx.path(), None)?;
    let token = admin_token(&fx, &https, Some("admin:read")).await?;
    let db = certbound_registry::config::DataDir::new(fx.path()).database();
    let out = std::process::Command::new("sqlite3")
        .arg(&db)
        .arg(".timeout 20000")
        .arg("ALTER TABLE claims RENAME TO claims_away;")
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let a = https.get("/admin/v1/claims", Some(&token)).await?;
    expect(&a, 500)?;
    assert_eq!(a.json["error"], "internal");
    let text = a.json.to_string().to_ascii_lowercase();
    for word in ["sqlite", "claims", "table", "database", "sqlx"] {
        assert!(!text.contains(word), "the answer names {word}: {text}");
    }
    fx.shutdown().await;
    Ok(())
}
