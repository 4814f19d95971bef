//! Attack-matrix cases: see [`super`]. Revocation that sticks (issue 11,
//! medium 4), the CRL of every issuing CA, and the audit log (medium 6).
//! The CLI cases (`device resume` of a revoked device, `audit tail` escaping)
//! are in `crates/certbound-cli/tests/revocation.rs`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use certbound_broker::store::DeviceStatus;
use certbound_coap::ResponseType;
use certbound_e2e::https::HttpsClient;
use certbound_e2e::{Fixture, GRANTED_SCOPE, unix_now};
use certbound_proto::ace::AceErrorCode;
use certbound_proto::cbor::Limits;
use certbound_proto::status_list::StatusRef;
use certbound_registry::config::DataDir;
use certbound_registry::registry::{ADMIN_API, ADMIN_CLIENT_FILE};
use certbound_verify::status::{StatusCache, StatusCacheConfig};
use http::Method;
use serde_json::json;

use crate::oauth::{JWT_API, OAuthFixture};

/// Whether `tool` runs; otherwise skips loudly, or fails under
/// `CERTBOUND_REQUIRE_ALL=1`.
fn have(tool: &str) -> anyhow::Result<bool> {
    if Command::new(tool).arg("-version").output().is_ok() {
        return Ok(true);
    }
    if std::env::var("CERTBOUND_REQUIRE_ALL").as_deref() == Ok("1") {
        bail!("{tool} is required (CERTBOUND_REQUIRE_ALL=1) but missing");
    }
    eprintln!("\n*** SKIPPED: {tool} is missing; install it to run this attack case ***\n");
    Ok(false)
}

/// Runs `sqlite3` on the broker's database (what an operator, or an
/// attacker with file access, can do): `.timeout` first, the broker may be
/// writing.
fn sql(dir: &Path, statement: &str) -> anyhow::Result<std::process::Output> {
    Ok(Command::new("sqlite3")
        .arg(DataDir::new(dir).database())
        .arg(".timeout 20000")
        .arg(statement)
        .output()?)
}

/// [`sql`] that must succeed.
fn sql_ok(dir: &Path, statement: &str) -> anyhow::Result<()> {
    let out = sql(dir, statement)?;
    ensure!(
        out.status.success(),
        "{statement}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// `POST /oauth/token` (client_credentials for the JWT API) as the fixture's client.
async fn oauth_token(o: &OAuthFixture) -> anyhow::Result<certbound_e2e::https::JsonAnswer> {
    o.https
        .form(
            "/oauth/token",
            &[("grant_type", "client_credentials"), ("audience", JWT_API)],
            Some((&o.client_id, &o.secret)),
        )
        .await
}

fn openssl(args: &[&str]) -> anyhow::Result<(bool, String)> {
    let out = Command::new("openssl").args(args).output()?;
    Ok((
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}

async fn admin_token(fx: &Fixture, https: &HttpsClient) -> anyhow::Result<String> {
    let creds: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fx.path().join(ADMIN_CLIENT_FILE))?)?;
    let grant = https
        .token_with_secret(
            creds["client_id"].as_str().context("client_id")?,
            creds["client_secret"].as_str().context("client_secret")?,
            ADMIN_API,
            None,
        )
        .await?;
    Ok(grant["access_token"].as_str().context("token")?.to_string())
}

/// The status reference of a device token.
fn status_ref(token: &[u8]) -> anyhow::Result<StatusRef> {
    let claims = certbound_proto::token::UnverifiedToken::parse(token, Limits::default())?
        .unverified_claims(Limits::default())?;
    claims
        .status
        .context("device tokens carry a status reference")
}

/// What an offline verifier decides about `status`: it fetches the list the
/// token names and checks it with `certbound-verify`'s status cache.
/// `Ok(())`: valid; `Err(reason code)`.
async fn verifier_status(
    o: &OAuthFixture,
    status: &StatusRef,
) -> anyhow::Result<Result<(), String>> {
    let path = status
        .uri
        .strip_prefix(&o.fx.https_url())
        .context("a list of this broker")?;
    let a = o.https.get(path, None).await?;
    ensure!(a.status == 200, "status list: {}", a.status);
    let mut cache = StatusCache::new(StatusCacheConfig::new(format!(
        "{}/status/",
        o.fx.https_url()
    )))?;
    let now = unix_now();
    cache.insert(&status.uri, &a.raw.body, &o.jwks().await?, now)?;
    Ok(cache
        .check(status, now)
        .map_err(|e| e.reason_code().to_string()))
}

/// Waits (lists are rebuilt at most once a second) until the verifier's
/// decision is `want`.
async fn wait_verifier(
    o: &OAuthFixture,
    status: &StatusRef,
    want: Result<(), &str>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = verifier_status(o, status).await?;
        if got.as_ref().map_err(String::as_str) == want.as_ref().map_err(|s| *s) {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "verifier says {got:?}, wanted {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Resume (or suspend) of a revoked device through the admin API: 409 `revoked`, the device stays refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_resume_revoked_device_admin_api() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let https = HttpsClient::new(&fx.https_url(), fx.path(), None)?;
    let token = admin_token(&fx, &https).await?;
    let victim = fx.device("stolen-1").await?;
    let good = fx.device("good-1").await?;
    let r = https
        .json(
            Method::POST,
            "/admin/v1/devices/stolen-1/revoke",
            &token,
            &json!({"reason": "stolen"}),
        )
        .await?;
    ensure!(r.status == 200, "{} {}", r.status, r.json);
    for action in ["suspend", "resume"] {
        let r = https
            .json(
                Method::POST,
                &format!("/admin/v1/devices/stolen-1/{action}"),
                &token,
                &json!({}),
            )
            .await?;
        ensure!(
            r.status == 409 && r.error() == Some("revoked"),
            "{action}: {} {}",
            r.status,
            r.json
        );
        let message = r.json["message"].as_str().unwrap_or_default();
        ensure!(message.contains("revoked, which is final"), "{message}");
    }
    let shown = https
        .get("/admin/v1/devices/stolen-1", Some(&token))
        .await?;
    ensure!(
        shown.json.to_string().contains("\"revoked\""),
        "{}",
        shown.json
    );
    // The device is still refused; the others are served.
    let body = fx.agent_request(&victim, &fx.params(Some(GRANTED_SCOPE)))?;
    let d = fx
        .post_token(body)
        .await?
        .expect_refused(AceErrorCode::InvalidClient, ResponseType::Unauthorized)?;
    ensure!(d.contains("revoked"), "{d}");
    fx.assert_serves(&good).await?;
    fx.shutdown().await;
    Ok(())
}

/// A token issued before its device was revoked stays INVALID even after the device row is edited back to active with SQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_revoked_token_survives_device_row_edit() -> anyhow::Result<()> {
    if !have("sqlite3")? {
        return Ok(());
    }
    let o = OAuthFixture::new().await?;
    let victim = o.fx.device("edit-me").await?;
    let good = o.fx.device("edit-good").await?;
    let before =
        o.fx.obtain(&victim, &o.fx.params(Some(GRANTED_SCOPE)))
            .await?;
    let status = status_ref(&before.access_token)?;
    wait_verifier(&o, &status, Ok(())).await?;
    o.fx.registry
        .set_device_status("edit-me", DeviceStatus::Revoked, "stolen")
        .await?;
    wait_verifier(&o, &status, Err("revoked")).await?;
    // The guard refuses the edit ...
    let out = sql(
        o.fx.path(),
        "UPDATE devices SET status = 'active' WHERE id = 'edit-me';",
    )?;
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(
        !out.status.success() && err.contains("device is revoked, which is final"),
        "{err}"
    );
    // ... and even with the guard gone, the token's own record decides.
    sql_ok(
        o.fx.path(),
        "DROP TRIGGER devices_revoked_is_final; UPDATE devices SET status = 'active' WHERE id = 'edit-me';",
    )?;
    tokio::time::sleep(Duration::from_millis(1200)).await; // past the 1 s list reuse
    ensure!(
        verifier_status(&o, &status).await? == Err("revoked".into()),
        "a revoked token became valid again"
    );
    // The revoked certificate is still refused; others are served.
    let body =
        o.fx.agent_request(&victim, &o.fx.params(Some(GRANTED_SCOPE)))?;
    o.fx.post_token(body)
        .await?
        .expect_refused(AceErrorCode::InvalidClient, ResponseType::Unauthorized)?;
    let fresh =
        o.fx.obtain(&good, &o.fx.params(Some(GRANTED_SCOPE)))
            .await?;
    wait_verifier(&o, &status_ref(&fresh.access_token)?, Ok(())).await?;
    o.fx.shutdown().await;
    Ok(())
}

/// A token of a revoked device is refused by the offline verifier through the status list (reason `revoked`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_revoked_device_token_refused_by_verifier() -> anyhow::Result<()> {
    let o = OAuthFixture::new().await?;
    let victim = o.fx.device("rv-1").await?;
    let good = o.fx.device("rv-good").await?;
    let tokens = [
        o.fx.obtain(&victim, &o.fx.params(Some(GRANTED_SCOPE)))
            .await?,
        o.fx.obtain(&victim, &o.fx.params(Some(GRANTED_SCOPE)))
            .await?,
    ];
    let good_token =
        o.fx.obtain(&good, &o.fx.params(Some(GRANTED_SCOPE)))
            .await?;
    // The token itself verifies (signature, audience, binding) ...
    o.fx.verifier
        .verify(&tokens[0].access_token, &[GRANTED_SCOPE], unix_now())?;
    o.fx.registry
        .set_device_status("rv-1", DeviceStatus::Revoked, "compromised")
        .await?;
    // ... but every token issued before the revocation is INVALID.
    for t in &tokens {
        wait_verifier(&o, &status_ref(&t.access_token)?, Err("revoked")).await?;
    }
    wait_verifier(&o, &status_ref(&good_token.access_token)?, Ok(())).await?;
    o.fx.assert_serves(&good).await?;
    o.fx.shutdown().await;
    Ok(())
}

/// Suspension is not revocation: a suspended device's token is SUSPENDED (refused) and valid again on resume; a later revocation is final.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_suspended_token_used_while_suspended() -> anyhow::Result<()> {
    let o = OAuthFixture::new().await?;
    let device = o.fx.device("sus-1").await?;
    let token =
        o.fx.obtain(&device, &o.fx.params(Some(GRANTED_SCOPE)))
            .await?;
    let status = status_ref(&token.access_token)?;
    o.fx.registry
        .set_device_status("sus-1", DeviceStatus::Suspended, "maintenance")
        .await?;
    wait_verifier(&o, &status, Err("suspended")).await?;
    o.fx.registry
        .set_device_status("sus-1", DeviceStatus::Active, "done")
        .await?;
    wait_verifier(&o, &status, Ok(())).await?;
    o.fx.assert_serves(&device).await?;
    o.fx.registry
        .set_device_status("sus-1", DeviceStatus::Revoked, "gone")
        .await?;
    wait_verifier(&o, &status, Err("revoked")).await?;
    let err =
        o.fx.registry
            .set_device_status("sus-1", DeviceStatus::Active, "try")
            .await
            .unwrap_err();
    ensure!(err.to_string().contains("revoked, which is final"), "{err}");
    o.fx.shutdown().await;
    Ok(())
}

/// After `ca rotate-issuing`, a revoked certificate of the OLD issuer is in a CRL signed by that issuer (`/crl/{serial}` on HTTPS and CoAP, `/crls`); openssl refuses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_revoked_cert_of_old_issuer_after_rotation() -> anyhow::Result<()> {
    if !have("openssl")? {
        return Ok(());
    }
    let fx = Fixture::new().await?;
    let https = HttpsClient::new(&fx.https_url(), fx.path(), None)?;
    let paths = DataDir::new(fx.path()).pki();
    let old_ca = fx
        .registry
        .issuing_cas()?
        .into_iter()
        .find(|c| c.current)
        .context("current CA")?
        .serial_hex;
    let old_device = fx.device("old-issuer-1").await?;
    fx.registry.rotate_issuing_ca().await?;
    let new_device = fx.device("new-issuer-1").await?;
    // Cached: two fetches give the same signed bytes (ECDSA signatures are
    // randomised, so a CRL built per request would differ).
    let first = https.get("/crl", None).await?;
    let second = https.get("/crl", None).await?;
    ensure!(
        first.status == 200 && first.raw.body == second.raw.body,
        "the CRL is rebuilt per request"
    );

    fx.registry
        .set_device_status("old-issuer-1", DeviceStatus::Revoked, "key compromise")
        .await?;
    let tmp = tempfile::tempdir()?;
    let file = |name: &str| -> PathBuf { tmp.path().join(name) };
    let serial = old_device
        .provisioned
        .serial
        .trim_start_matches('0')
        .to_uppercase();
    // The old issuer's CRL lists it (rebuilt within a second of the change).
    let deadline = Instant::now() + Duration::from_secs(20);
    let text = loop {
        let a = https.get(&format!("/crl/{old_ca}"), None).await?;
        ensure!(a.status == 200, "/crl/{old_ca}: {}", a.status);
        ensure!(a.raw.header("content-type") == Some("application/pkix-crl"));
        std::fs::write(file("old.crl"), &a.raw.body)?;
        let old_ca_pem = paths.issuing_cert_archived(&old_ca);
        let (ok, text) = openssl(&[
            "crl",
            "-inform",
            "DER",
            "-in",
            file("old.crl").to_str().context("path")?,
            "-noout",
            "-text",
            "-CAfile",
            old_ca_pem.to_str().context("path")?,
        ])?;
        ensure!(
            ok && text.contains("verify OK"),
            "signed by the old issuer: {text}"
        );
        if text.to_uppercase().replace(':', "").contains(&serial) {
            break text;
        }
        ensure!(
            Instant::now() < deadline,
            "serial {serial} never in the old issuer's CRL:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    ensure!(text.contains("Key Identifier"), "{text}");
    // The current issuer's CRL (GET /crl) does not carry it, and is signed by the new CA.
    let current = https.get("/crl", None).await?;
    std::fs::write(file("cur.crl"), &current.raw.body)?;
    let (ok, text) = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        file("cur.crl").to_str().context("path")?,
        "-noout",
        "-text",
        "-CAfile",
        paths.issuing_cert().to_str().context("path")?,
    ])?;
    ensure!(ok && text.contains("verify OK"), "{text}");
    ensure!(
        !text.to_uppercase().replace(':', "").contains(&serial),
        "{text}"
    );
    // openssl with every CRL (GET /crls): the revoked old certificate is refused,
    // the new one accepted.
    let bundle = https.get("/crls", None).await?;
    ensure!(bundle.status == 200);
    std::fs::write(file("all.pem"), &bundle.raw.body)?;
    let chain = paths.chain();
    let verify = |cert: &Path| {
        openssl(&[
            "verify",
            "-crl_check",
            "-CAfile",
            chain.to_str().unwrap_or_default(),
            "-CRLfile",
            file("all.pem").to_str().unwrap_or_default(),
            cert.to_str().unwrap_or_default(),
        ])
    };
    let (ok, log) = verify(&old_device.cert_file)?;
    ensure!(
        !ok && log.contains("revoked"),
        "old issuer's revoked certificate: {log}"
    );
    let (ok, log) = verify(&new_device.cert_file)?;
    ensure!(ok, "new issuer's certificate: {log}");
    // An unknown CA: 404, not a CRL.
    ensure!(https.get("/crl/abcdef", None).await?.status == 404);
    // CoAP serves the same per-issuer CRLs (the same cached, signed bytes).
    let over_https = https.get(&format!("/crl/{old_ca}"), None).await?;
    let over_coap = fx.client.get(&format!("crl/{old_ca}")).await?;
    ensure!(
        over_coap.code == ResponseType::Content && over_coap.payload == over_https.raw.body,
        "CoAP crl/{old_ca}: {:?}, {} bytes",
        over_coap.code,
        over_coap.payload.len()
    );
    for unknown in ["crl/abcdef", "crl/not-hex", "crl/00/01"] {
        let a = fx.client.get(unknown).await?;
        ensure!(a.code == ResponseType::NotFound, "{unknown}: {:?}", a.code);
    }
    fx.assert_serves(&new_device).await?;
    fx.shutdown().await;
    Ok(())
}

/// Audit rows with the client_id a caller claimed: a 2 MB client_id is bounded (truncated, marked), never stored raw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_audit_huge_client_id() -> anyhow::Result<()> {
    let o = OAuthFixture::new().await?;
    let huge = "Z".repeat(2 * 1024 * 1024 - 200);
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", huge.as_str()),
        ("client_secret", "nope"),
        ("audience", JWT_API),
    ];
    // Refused either by the body cap (413) or by client authentication. (An
    // error answer that echoes the claimed id is more than the test client
    // reads: that is the error-text finding, not the audit log's.)
    let capped = match o.https.form("/oauth/token", &form, None).await {
        Ok(a) => {
            ensure!(
                a.status == 413 || a.error() == Some("invalid_client"),
                "{} {}",
                a.status,
                a.json
            );
            a.status == 413
        }
        // The server may also stop reading an oversized body and close the
        // connection before the client finished sending it: refused unread.
        Err(e) => {
            let text = e.to_string();
            ensure!(
                text.contains("larger than the limit")
                    || text.contains("Broken pipe")
                    || text.contains("reset"),
                "{e}"
            );
            !text.contains("larger than the limit")
        }
    };
    // A claimed id that fits any body cap but not an audit field.
    let long = "Y".repeat(4096);
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", long.as_str()),
        ("client_secret", "nope"),
        ("audience", JWT_API),
    ];
    o.https
        .form("/oauth/token", &form, None)
        .await?
        .expect_error(401, "invalid_client")?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rows = o.fx.registry.store.recent_audit(None, 200).await?;
        for e in &rows {
            for f in [&e.actor, &e.subject, &e.action, &e.outcome] {
                ensure!(f.len() < 300, "an audit field of {} bytes", f.len());
            }
            ensure!(
                e.detail.len() < 1100,
                "a detail of {} bytes",
                e.detail.len()
            );
        }
        let huge_row = rows.iter().find(|e| e.subject.starts_with("ZZZZ"));
        if let Some(e) = huge_row {
            let marker = format!("…[truncated, {} bytes]", huge.len());
            ensure!(e.subject.ends_with(&marker), "{}", e.subject);
        }
        if let Some(e) = rows.iter().find(|e| e.subject.starts_with("YYYY")) {
            ensure!(
                e.subject.ends_with("…[truncated, 4096 bytes]"),
                "{}",
                e.subject
            );
            ensure!(e.outcome == "invalid_client", "{}", e.outcome);
            ensure!(
                capped || huge_row.is_some(),
                "the 2 MB refusal was not audited"
            );
            break;
        }
        ensure!(Instant::now() < deadline, "the refusal was not audited");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    o.https
        .token_with_secret(&o.client_id, &o.secret, JWT_API, None)
        .await?;
    o.fx.shutdown().await;
    Ok(())
}

/// Newlines and terminal escapes in a claimed client_id reach the audit log only escaped (no forged lines, no ESC).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_audit_terminal_escapes() -> anyhow::Result<()> {
    let o = OAuthFixture::new().await?;
    let evil = "x\n2026-01-01T00:00:00Z  cli  device.revoked  ceo-laptop  ok\u{1b}[2J\u{1b}]0;owned\u{7}\u{202e}";
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", evil),
        ("client_secret", "nope"),
        ("audience", JWT_API),
    ];
    o.https
        .form("/oauth/token", &form, None)
        .await?
        .expect_error(401, "invalid_client")?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let row = loop {
        let rows = o.fx.registry.store.recent_audit(None, 50).await?;
        if let Some(e) = rows.into_iter().find(|e| e.subject.starts_with("x\\n2026")) {
            break e;
        }
        ensure!(
            Instant::now() < deadline,
            "the refusal was not audited escaped"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for f in [&row.actor, &row.subject, &row.detail] {
        ensure!(
            !f.chars().any(|c| c.is_control() || c == '\u{202e}'),
            "a control character reached the audit log: {f:?}"
        );
    }
    ensure!(
        row.subject.contains("\\u{1b}[2J") && row.subject.contains("\\u{202e}"),
        "{}",
        row.subject
    );
    o.https
        .token_with_secret(&o.client_id, &o.secret, JWT_API, None)
        .await?;
    o.fx.shutdown().await;
    Ok(())
}

/// A flood of garbage CoAP token requests writes a few aggregated audit rows (repeated=N), not one per datagram; the metric counts each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_garbage_flood_audit_rows() -> anyhow::Result<()> {
    const WINDOW: u64 = 3;
    const SENT: u64 = 300;
    let fx = Fixture::with_config(&[("aggregate_secs = 60", "aggregate_secs = 3")]).await?;
    let https = HttpsClient::new(&fx.https_url(), fx.path(), None)?;
    let good = fx.device("flood-good").await?;
    // The flooding address proves first that it receives (one Echo round
    // trip, RFC 9175): before that, a refusal too large for an unverified
    // address is answered with an Echo challenge, which our client follows by
    // sending the request again, and the refusal would be counted twice.
    fx.client.get(".well-known/core").await?;
    let started = Instant::now();
    for i in 0..SENT {
        let garbage = format!("\u{ff}garbage {i}").into_bytes();
        fx.post_token(garbage)
            .await?
            .expect_refused(AceErrorCode::InvalidRequest, ResponseType::BadRequest)?;
    }
    let elapsed = started.elapsed().as_secs();
    // Every refusal is accounted for: first rows + repeated counts = SENT.
    let deadline = Instant::now() + Duration::from_secs(60);
    let rows = loop {
        let rows: Vec<_> = fx
            .registry
            .store
            .recent_audit(Some("(unauthenticated)"), 10_000)
            .await?
            .into_iter()
            .filter(|e| {
                e.action == "token.refused" && e.detail.starts_with("transport=coap peer=127.0.0.1")
            })
            .collect();
        let accounted: u64 = rows
            .iter()
            .map(|e| {
                e.detail
                    .split(' ')
                    .find_map(|w| w.strip_prefix("repeated="))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1)
            })
            .sum();
        if accounted >= SENT {
            ensure!(
                accounted == SENT,
                "{accounted} refusals accounted for, {SENT} sent"
            );
            break rows;
        }
        ensure!(
            Instant::now() < deadline,
            "only {accounted} of {SENT} refusals in the log"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let windows = elapsed / WINDOW + 3;
    ensure!(
        (rows.len() as u64) <= 2 * windows && (rows.len() as u64) < SENT / 5,
        "{} rows for {SENT} garbage datagrams in {elapsed} s",
        rows.len()
    );
    let metrics = https.get("/metrics", None).await?;
    let text = String::from_utf8_lossy(&metrics.raw.body);
    ensure!(
        text.contains(&format!(
            "certbound_unauthenticated_refusals_total{{transport=\"coap\",reason=\"invalid_request\"}} {SENT}"
        )),
        "{text}"
    );
    fx.assert_serves(&good).await?;
    fx.shutdown().await;
    Ok(())
}

/// The store cannot keep issued-token records: no token is handed out (CoAP 5.03, OAuth 503), and issuance comes back with the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_store_failure_no_unrecorded_token() -> anyhow::Result<()> {
    if !have("sqlite3")? {
        return Ok(());
    }
    let o = OAuthFixture::new().await?;
    let device = o.fx.device("sf-1").await?;
    let mut handed_out: Vec<Vec<u8>> = vec![
        o.fx.obtain(&device, &o.fx.params(Some(GRANTED_SCOPE)))
            .await?
            .access_token,
    ];
    // The table goes away under the running broker.
    sql_ok(
        o.fx.path(),
        "ALTER TABLE issued_tokens RENAME TO issued_tokens_away;",
    )?;
    for _ in 0..3 {
        let body =
            o.fx.agent_request(&device, &o.fx.params(Some(GRANTED_SCOPE)))?;
        let a = o.fx.post_token(body).await?;
        ensure!(
            a.code == ResponseType::ServiceUnavailable,
            "a token without a record: {a}"
        );
        let r = oauth_token(&o).await?;
        r.expect_error(503, "temporarily_unavailable")?;
        ensure!(r.json.get("access_token").is_none());
    }
    sql_ok(
        o.fx.path(),
        "ALTER TABLE issued_tokens_away RENAME TO issued_tokens;",
    )?;
    // Issuance comes back (the writer retries with a backoff of at most 1 s).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body =
            o.fx.agent_request(&device, &o.fx.params(Some(GRANTED_SCOPE)))?;
        let a = o.fx.post_token(body).await?;
        if let Ok(t) = a.token() {
            handed_out.push(t.access_token.clone());
            break;
        }
        ensure!(a.code == ResponseType::ServiceUnavailable, "{a}");
        ensure!(Instant::now() < deadline, "issuance did not come back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let grant = o
        .https
        .token_with_secret(&o.client_id, &o.secret, JWT_API, None)
        .await?;
    ensure!(grant["access_token"].is_string());
    // Every token handed out has its record, so it can be revoked.
    for t in &handed_out {
        let claims = certbound_proto::token::UnverifiedToken::parse(t, Limits::default())?
            .unverified_claims(Limits::default())?;
        let jti = hex::encode(claims.cti.context("cti")?);
        ensure!(
            o.fx.registry.store.token_state(&jti).await?.is_some(),
            "token {jti} was handed out without a record"
        );
    }
    // The refusals of the outage were audited, not lost.
    let rows = o.fx.registry.store.recent_audit(Some("sf-1"), 100).await?;
    ensure!(rows.iter().any(|e| e.outcome == "unavailable"), "{rows:?}");
    o.fx.shutdown().await;
    Ok(())
}

/// The store fails under a running broker: `/healthz`, CoAP, `/ace/token` and `/oauth/token` all say "unavailable, retry after 5 s" in their own form (one refusal type: 503 + Retry-After, 5.03 + the ACE body's retry_after) and no answer carries the internal error text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_store_failure_answers_say_nothing_internal() -> anyhow::Result<()> {
    if !have("sqlite3")? {
        return Ok(());
    }
    let o = OAuthFixture::new().await?;
    let device = o.fx.device("sf-2").await?;
    ensure!(o.https.get("/healthz", None).await?.status == 200);
    sql_ok(o.fx.path(), "ALTER TABLE apis RENAME TO apis_away;")?;
    let internal = |text: &str| {
        let t = text.to_ascii_lowercase();
        ["sqlite", "no such table", "apis", "database", "sqlx"]
            .iter()
            .any(|w| t.contains(w))
    };
    let health = o.https.get("/healthz", None).await?;
    let text = String::from_utf8_lossy(&health.raw.body).to_string();
    ensure!(health.status == 503, "healthz {}: {text}", health.status);
    ensure!(!internal(&text), "healthz leaks: {text}");

    // CoAP: 5.03 with the typed retry hint in the ACE body.
    let a =
        o.fx.post_token(o.fx.agent_request(&device, &o.fx.params(Some(GRANTED_SCOPE)))?)
            .await?;
    ensure!(a.code == ResponseType::ServiceUnavailable, "{a}");
    let e = a.error()?;
    ensure!(
        e.retry_after == Some(5),
        "CoAP retry_after {:?}",
        e.retry_after
    );
    ensure!(!internal(&e.to_string()), "CoAP leaks: {e}");

    // HTTPS /ace/token: 503, Retry-After 5, the same ACE body.
    let body =
        o.fx.agent_request(&device, &o.fx.params(Some(GRANTED_SCOPE)))?;
    let h = o.https.send(Method::POST, "/ace/token", &[], body).await?;
    ensure!(h.status == 503, "/ace/token {}", h.status);
    ensure!(
        h.raw.header("retry-after") == Some("5"),
        "{:?}",
        h.raw.headers
    );
    match certbound_proto::ace::AceResponse::from_cbor(&h.raw.body, Limits::default())? {
        certbound_proto::ace::AceResponse::Error(e) => {
            ensure!(e.retry_after == Some(5), "{e:?}");
            ensure!(!internal(&e.to_string()), "/ace/token leaks: {e}");
        }
        other => bail!("503 with {other:?}"),
    }

    // OAuth: 503 temporarily_unavailable, Retry-After 5.
    let r = oauth_token(&o).await?;
    r.expect_error(503, "temporarily_unavailable")?;
    ensure!(r.raw.header("retry-after") == Some("5"));
    ensure!(!internal(&r.json.to_string()), "OAuth leaks: {}", r.json);

    sql_ok(o.fx.path(), "ALTER TABLE apis_away RENAME TO apis;")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while o.https.get("/healthz", None).await?.status != 200 {
        ensure!(Instant::now() < deadline, "healthz did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    o.fx.assert_serves(&device).await?;
    o.fx.shutdown().await;
    Ok(())
}
