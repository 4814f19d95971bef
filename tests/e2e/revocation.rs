//! Introspection (RFC 7662), revocation (RFC 7009) and the status lists
//! that carry revocations to offline verifiers.

use anyhow::Context as _;
use certbound_broker::store::DeviceStatus;
use certbound_e2e::{API, GRANTED_SCOPE, unix_now};
use certbound_proto::cbor::Limits;
use certbound_proto::crypto::AwsLcVerifier;
use certbound_proto::status_list::{
    STATUS_INVALID, STATUS_SUSPENDED, STATUS_VALID, UnverifiedStatusList,
};

use super::oauth::{JWT_API, OAuthFixture};

/// Fetches and verifies the status list a token points at; returns the status of its entry.
async fn status_of(o: &OAuthFixture, uri: &str, idx: u64) -> anyhow::Result<u8> {
    let path = uri
        .strip_prefix(&o.fx.https_url())
        .context("list on this broker")?;
    let a = o.https.get(path, None).await?;
    anyhow::ensure!(a.status == 200, "status list: {}", a.status);
    assert_eq!(
        a.raw.header("content-type"),
        Some("application/statuslist+cwt")
    );
    assert_eq!(a.raw.header("cache-control"), Some("max-age=60"));
    let list = UnverifiedStatusList::parse(&a.raw.body, Limits::default())?;
    let keys = o.jwks().await?;
    let key = keys
        .get(std::str::from_utf8(list.kid())?)
        .context("list signed by a published key")?;
    let token = list.verify(
        &AwsLcVerifier::new(key)?,
        Limits::default(),
        uri,
        unix_now(),
        60,
        1 << 20,
    )?;
    assert_eq!(token.ttl, Some(60));
    Ok(token.list.status(idx)?)
}

fn jwt_status(token: &str) -> anyhow::Result<(String, u64)> {
    let c = certbound_proto::jwt::UnverifiedJwt::parse(token, 8192)?.unverified_claims()?;
    let s = c.status.context("status")?.status_list;
    Ok((s.uri, s.idx))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_makes_introspection_inactive_at_once_and_marks_the_status_list()
-> anyhow::Result<()> {
    let o = OAuthFixture::new().await?;
    let (id, secret) = (o.client_id.as_str(), o.secret.as_str());
    let grant = o.https.token_with_secret(id, secret, JWT_API, None).await?;
    let token = grant["access_token"].as_str().context("token")?.to_string();
    let other = o.https.token_with_secret(id, secret, JWT_API, None).await?;
    let other = other["access_token"].as_str().context("token")?.to_string();

    // Introspection needs client authentication.
    o.https
        .form("/oauth/introspect", &[("token", &token)], None)
        .await?
        .expect_error(401, "invalid_client")?;
    let a = o
        .https
        .form(
            "/oauth/introspect",
            &[("token", &token)],
            Some((id, secret)),
        )
        .await?;
    assert_eq!(a.status, 200);
    assert_eq!(a.json["active"], true, "{}", a.json);
    assert_eq!(a.json["client_id"], id);
    assert_eq!(a.json["aud"], JWT_API);
    assert_eq!(a.json["scope"], "reports:read");
    // Garbage and foreign tokens: just inactive.
    let a = o
        .https
        .form(
            "/oauth/introspect",
            &[("token", "eyJhbGciOiJub25lIn0.e30.")],
            Some((id, secret)),
        )
        .await?;
    assert_eq!(a.json, serde_json::json!({"active": false}));

    let (uri, idx) = jwt_status(&token)?;
    assert_eq!(status_of(&o, &uri, idx).await?, STATUS_VALID);

    // Revocation: 200, then inactive at once; the other token stays active.
    let r = o
        .https
        .form(
            "/oauth/revoke",
            &[("token", &token), ("token_type_hint", "access_token")],
            Some((id, secret)),
        )
        .await?;
    assert_eq!(r.status, 200);
    let a = o
        .https
        .form(
            "/oauth/introspect",
            &[("token", &token)],
            Some((id, secret)),
        )
        .await?;
    assert_eq!(a.json, serde_json::json!({"active": false}));
    let a = o
        .https
        .form(
            "/oauth/introspect",
            &[("token", &other)],
            Some((id, secret)),
        )
        .await?;
    assert_eq!(a.json["active"], true);
    assert_eq!(status_of(&o, &uri, idx).await?, STATUS_INVALID);
    let (uri2, idx2) = jwt_status(&other)?;
    assert_eq!(status_of(&o, &uri2, idx2).await?, STATUS_VALID);

    // RFC 7009: unknown tokens answer 200; an unsupported hint is an error.
    let r = o
        .https
        .form(
            "/oauth/revoke",
            &[("token", "not-a-token")],
            Some((id, secret)),
        )
        .await?;
    assert_eq!(r.status, 200);
    o.https
        .form(
            "/oauth/revoke",
            &[("token", &other), ("token_type_hint", "id_token")],
            Some((id, secret)),
        )
        .await?
        .expect_error(400, "unsupported_token_type")?;

    // Another client may not revoke this client's token.
    let intruder =
        o.fx.registry
            .create_client(
                "intruder",
                &[(JWT_API.into(), "reports:read".into())],
                None,
                true,
            )
            .await?;
    o.https
        .form(
            "/oauth/revoke",
            &[("token", &other)],
            Some((
                &intruder.client_id,
                intruder.client_secret.as_deref().unwrap_or_default(),
            )),
        )
        .await?
        .expect_error(400, "unauthorized_client")?;
    let a = o
        .https
        .form(
            "/oauth/introspect",
            &[("token", &other)],
            Some((id, secret)),
        )
        .await?;
    assert_eq!(
        a.json["active"], true,
        "the intruder's attempt changed nothing"
    );

    // Deleting the client turns its remaining tokens inactive.
    let admin = admin_client(&o).await?;
    o.fx.registry.delete_client(id).await?;
    let a = o
        .https
        .form(
            "/oauth/introspect",
            &[("token", &other)],
            Some(admin.creds()),
        )
        .await?;
    assert_eq!(a.json["active"], false);
    assert_eq!(status_of(&o, &uri2, idx2).await?, STATUS_INVALID);
    o.fx.shutdown().await;
    Ok(())
}

/// A second secret client (to introspect after the first is deleted).
struct Creds(String, String);
impl Creds {
    fn creds(&self) -> (&str, &str) {
        (&self.0, &self.1)
    }
}
async fn admin_client(o: &OAuthFixture) -> anyhow::Result<Creds> {
    let c =
        o.fx.registry
            .create_client(
                "resource-server",
                // Introspection answers a client only about tokens of APIs it
                // holds a grant for (docs/oauth.md).
                &[
                    (JWT_API.into(), "reports:read".into()),
                    (API.into(), GRANTED_SCOPE.into()),
                ],
                None,
                true,
            )
            .await?;
    Ok(Creds(c.client_id, c.client_secret.context("secret")?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_revocation_and_suspension_reach_introspection_and_status_lists()
-> anyhow::Result<()> {
    let o = OAuthFixture::new().await?;
    let rs = admin_client(&o).await?;
    let device = o.fx.device("sensor-r").await?;
    let token =
        o.fx.obtain(&device, &o.fx.params(Some(GRANTED_SCOPE)))
            .await?;
    let text = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        &token.access_token,
    );
    let claims =
        certbound_proto::token::UnverifiedToken::parse(&token.access_token, Limits::default())?
            .unverified_claims(Limits::default())?;
    let status = claims.status.context("status")?;

    let a = o
        .https
        .form("/oauth/introspect", &[("token", &text)], Some(rs.creds()))
        .await?;
    assert_eq!(a.json["active"], true, "{}", a.json);
    assert_eq!(a.json["sub"], "sensor-r");
    assert!(
        a.json["cnf"]["jkt"].is_string(),
        "device tokens are key-bound: {}",
        a.json
    );

    o.fx.registry
        .set_device_status("sensor-r", DeviceStatus::Suspended, "test")
        .await?;
    let a = o
        .https
        .form("/oauth/introspect", &[("token", &text)], Some(rs.creds()))
        .await?;
    assert_eq!(a.json["active"], false);
    // Built lists are reused for up to 1 s: wait for the suspension to show.
    wait_status(&o, &status.uri, status.idx, STATUS_SUSPENDED).await?;

    o.fx.registry
        .set_device_status("sensor-r", DeviceStatus::Active, "test")
        .await?;
    let a = o
        .https
        .form("/oauth/introspect", &[("token", &text)], Some(rs.creds()))
        .await?;
    assert_eq!(a.json["active"], true, "resumed");
    wait_status(&o, &status.uri, status.idx, STATUS_VALID).await?;

    o.fx.registry
        .set_device_status("sensor-r", DeviceStatus::Revoked, "test")
        .await?;
    let a = o
        .https
        .form("/oauth/introspect", &[("token", &text)], Some(rs.creds()))
        .await?;
    assert_eq!(a.json["active"], false);
    wait_status(&o, &status.uri, status.idx, STATUS_INVALID).await?;
    o.fx.shutdown().await;
    Ok(())
}

async fn wait_status(o: &OAuthFixture, uri: &str, idx: u64, want: u8) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let got = status_of(o, uri, idx).await?;
        if got == want {
            return Ok(());
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "status {got}, wanted {want}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_lists_are_served_over_coap_too() -> anyhow::Result<()> {
    let o = OAuthFixture::new().await?;
    let device = o.fx.device("sensor-coap-status").await?;
    let token =
        o.fx.obtain(&device, &o.fx.params(Some(GRANTED_SCOPE)))
            .await?;
    let claims =
        certbound_proto::token::UnverifiedToken::parse(&token.access_token, Limits::default())?
            .unverified_claims(Limits::default())?;
    let status = claims.status.context("status")?;
    let id = status.uri.rsplit('/').next().context("list id")?;
    o.fx.registry
        .set_device_status("sensor-coap-status", DeviceStatus::Revoked, "test")
        .await?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let answer = o.fx.client.get(&format!("status/{id}")).await?;
        assert_eq!(answer.code, certbound_coap::ResponseType::Content);
        assert_eq!(
            answer.content_format,
            Some(certbound_coap::content_format::CWT)
        );
        let list = UnverifiedStatusList::parse(&answer.payload, Limits::default())?;
        let keys = o.jwks().await?;
        let key = keys.get(std::str::from_utf8(list.kid())?).context("key")?;
        let verified = list.verify(
            &AwsLcVerifier::new(key)?,
            Limits::default(),
            &status.uri,
            unix_now(),
            60,
            1 << 20,
        )?;
        if verified.list.status(status.idx)? == STATUS_INVALID {
            break;
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "not revoked in the CoAP list"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        o.fx.client.get("status/999").await?.code,
        certbound_coap::ResponseType::NotFound
    );
    o.fx.shutdown().await;
    Ok(())
}

/// A revoked token stays marked in freshly built lists after its `exp`: a
/// verifier allowing for clock skew (leeway) still accepts it until
/// `exp + leeway`, so the list must still say INVALID then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_stays_marked_past_its_expiry() -> anyhow::Result<()> {
    const SHORT_API: &str = "https://short.example.com";
    let o = OAuthFixture::new().await?;
    o.fx.registry
        .create_api_with_format(SHORT_API, "reports:read", 5, "jwt")
        .await?;
    let client =
        o.fx.registry
            .create_client(
                "short-lived",
                &[(SHORT_API.into(), "reports:read".into())],
                None,
                true,
            )
            .await?;
    let secret = client.client_secret.context("secret")?;
    let grant = o
        .https
        .token_with_secret(&client.client_id, &secret, SHORT_API, None)
        .await?;
    let token = grant["access_token"].as_str().context("token")?.to_string();
    let exp = grant["expires_in"].as_u64().context("expires_in")? + unix_now();
    let (uri, idx) = jwt_status(&token)?;
    let r = o
        .https
        .form(
            "/oauth/revoke",
            &[("token", &token)],
            Some((&client.client_id, &secret)),
        )
        .await?;
    assert_eq!(r.status, 200);
    wait_status(&o, &uri, idx, STATUS_INVALID).await?;
    // Past exp (and past the list's 1 s rebuild), a list built now still
    // marks it.
    while unix_now() <= exp + 1 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(status_of(&o, &uri, idx).await?, STATUS_INVALID);
    Ok(())
}
