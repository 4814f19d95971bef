//! The operator console: sessions (sign-in with client credentials and
//! one-time links, CSRF, timeouts), every route refused without the right
//! credentials, the dashboard, the device search and the audit stream.

mod dashboard;
mod refusals;
mod search;
mod session;
mod settings;
mod shared;
mod stream;

use anyhow::Context as _;
use certbound_e2e::Fixture;
use certbound_e2e::https::{HttpsClient, JsonAnswer};
use certbound_registry::registry::ADMIN_CLIENT_FILE;
use http::Method;

/// The admin client's credentials (`DIR/admin-client.json`).
pub(crate) fn admin_credentials(fx: &Fixture) -> anyhow::Result<(String, String)> {
    let creds: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fx.path().join(ADMIN_CLIENT_FILE))?)?;
    Ok((
        creds["client_id"]
            .as_str()
            .context("client_id")?
            .to_string(),
        creds["client_secret"]
            .as_str()
            .context("client_secret")?
            .to_string(),
    ))
}

/// A signed-in console session.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// `__Host-certbound_session=<value>`.
    pub cookie: String,
    /// Its CSRF token.
    pub csrf: String,
    /// The `Set-Cookie` header it came with.
    pub set_cookie: String,
}

/// `POST path` with a form body and extra headers.
pub(crate) async fn post_form(
    https: &HttpsClient,
    path: &str,
    form: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> anyhow::Result<JsonAnswer> {
    let mut hs = vec![("content-type", "application/x-www-form-urlencoded")];
    hs.extend_from_slice(headers);
    https
        .send(
            Method::POST,
            path,
            &hs,
            serde_urlencoded::to_string(form)?.into_bytes(),
        )
        .await
}

/// The session a sign-in answer set (303 to /ui/ with a cookie), with its
/// CSRF token from `GET /ui/session`.
pub(crate) async fn session_of(https: &HttpsClient, a: &JsonAnswer) -> anyhow::Result<Session> {
    anyhow::ensure!(
        a.status == 303 && a.raw.header("location") == Some("/ui/"),
        "sign-in refused: {} {:?}",
        a.status,
        a.raw.header("location")
    );
    let set_cookie = a
        .raw
        .header("set-cookie")
        .context("no Set-Cookie")?
        .to_string();
    let cookie = set_cookie
        .split(';')
        .next()
        .context("cookie")?
        .trim()
        .to_string();
    let s = https
        .send(
            Method::GET,
            "/ui/session",
            &[("cookie", &cookie)],
            Vec::new(),
        )
        .await?;
    anyhow::ensure!(s.status == 200, "/ui/session: {} {}", s.status, s.json);
    Ok(Session {
        cookie,
        csrf: s.json["csrf_token"]
            .as_str()
            .context("csrf_token")?
            .to_string(),
        set_cookie,
    })
}

/// Signs in with client credentials.
pub(crate) async fn login(
    https: &HttpsClient,
    client_id: &str,
    secret: &str,
) -> anyhow::Result<Session> {
    let a = post_form(
        https,
        "/ui/login",
        &[("client_id", client_id), ("client_secret", secret)],
        &[],
    )
    .await?;
    session_of(https, &a).await
}

/// A JSON request with the session's cookie and, when `csrf` is given,
/// that `X-CSRF-Token`.
pub(crate) async fn with_cookie(
    https: &HttpsClient,
    method: Method,
    path: &str,
    session: &Session,
    csrf: Option<&str>,
    extra: &[(&str, &str)],
    body: &serde_json::Value,
) -> anyhow::Result<JsonAnswer> {
    let mut hs = vec![
        ("cookie", session.cookie.as_str()),
        ("content-type", "application/json"),
    ];
    if let Some(c) = csrf {
        hs.push(("x-csrf-token", c));
    }
    hs.extend_from_slice(extra);
    https
        .send(method, path, &hs, serde_json::to_vec(body)?)
        .await
}
