//! `GET /admin/v1/dashboard` against a running broker: device tokens issued
//! over CoAP show in the current minute, a refusal by its reason, devices by
//! status, a certificate expiring within 90 days in its day, this instance's
//! heartbeat; and `GET /admin/v1/doctor` answers the doctor's findings.

use std::time::Duration;

use anyhow::Context as _;
use certbound_e2e::https::HttpsClient;
use certbound_e2e::{Fixture, GRANTED_SCOPE, GROUP, unix_now};
use certbound_registry::store::DeviceStatus;

/// Polls the dashboard until `ready` holds (the audit log is written in
/// batches), for up to 60 s.
async fn dashboard_when(
    https: &HttpsClient,
    token: &str,
    ready: impl Fn(&serde_json::Value) -> bool,
) -> anyhow::Result<serde_json::Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let a = https.get("/admin/v1/dashboard", Some(token)).await?;
        anyhow::ensure!(a.status == 200, "dashboard: {} {}", a.status, a.json);
        if ready(&a.json) {
            return Ok(a.json);
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the dashboard never showed what was expected: {}",
            a.json
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn coap_tokens(d: &serde_json::Value) -> u64 {
    d["tokens"]["per_minute"]
        .as_array()
        .map(|m| m.iter().filter_map(|x| x["coap"].as_u64()).sum())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_dashboard_shows_tokens_refusals_devices_and_expiry() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let https = HttpsClient::new(&fx.https_url(), fx.path(), None)?;
    let token = crate::admin_api::admin_token(&fx, &https, Some("admin:read")).await?;
    let started = unix_now();

    let d1 = fx.device("dash-1").await?;
    let d2 = fx.device("dash-2").await?;
    let suspended = fx.device("dash-3").await?;
    // One certificate expiring within the chart's 90 days.
    let short = fx
        .registry
        .provision_device("dash-short", &[GROUP.into()], &fx.devices_dir(), Some(30))
        .await?;
    for d in [&d1, &d2, &d1] {
        fx.obtain(d, &fx.params(Some(GRANTED_SCOPE))).await?;
    }
    fx.registry
        .set_device_status("dash-3", DeviceStatus::Suspended, "test")
        .await?;
    let refused = fx
        .post_token(fx.agent_request(&suspended, &fx.params(Some(GRANTED_SCOPE)))?)
        .await?;
    anyhow::ensure!(
        refused.error().is_ok(),
        "a suspended device got a token: {refused}"
    );

    let d = dashboard_when(&https, &token, |d| {
        coap_tokens(d) >= 3
            && d["refusals"]["by_reason"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
    })
    .await?;
    // Tokens: 3 over CoAP, in the current (or, across a minute boundary, the previous) minute.
    let minutes = d["tokens"]["per_minute"].as_array().context("per_minute")?;
    assert_eq!(minutes.len(), 60);
    assert_eq!(d["tokens"]["window_secs"], 3600);
    let last = minutes[59]["minute"].as_u64().context("minute")?;
    assert!(last <= unix_now() && last + 60 > unix_now() - 60, "{last}");
    assert!(
        minutes
            .windows(2)
            .all(|w| w[1]["minute"].as_u64() == w[0]["minute"].as_u64().map(|m| m + 60)),
        "oldest first, one per minute"
    );
    let recent: u64 = minutes[58..]
        .iter()
        .filter_map(|m| m["coap"].as_u64())
        .sum();
    assert_eq!(recent, 3, "{minutes:?}");
    assert_eq!(coap_tokens(&d), 3);
    assert!(started / 60 * 60 >= minutes[0]["minute"].as_u64().unwrap_or(u64::MAX));
    // The refusal, by the reason the audit log recorded for it.
    let audited = fx
        .registry
        .store
        .audit_page(
            &certbound_registry::store::AuditFilter {
                action: Some("token.refused".into()),
                device: Some("dash-3".into()),
                ..Default::default()
            },
            None,
            1,
        )
        .await?;
    let reason = &audited.first().context("the refusal is audited")?.1.outcome;
    let by_reason = d["refusals"]["by_reason"].as_array().context("by_reason")?;
    assert!(
        by_reason
            .iter()
            .any(|r| r["reason"] == reason.as_str() && r["count"].as_u64() >= Some(1)),
        "{by_reason:?} lacks {reason}"
    );
    // Devices by status.
    assert_eq!(d["devices"]["total"], 4);
    assert_eq!(d["devices"]["by_status"]["active"], 3);
    assert_eq!(d["devices"]["by_status"]["suspended"], 1);
    assert_eq!(d["devices"]["by_status"]["revoked"], 0);
    // The 30-day certificate in its day; the default (longer) ones outside.
    let buckets = d["cert_expiry"]["buckets"].as_array().context("buckets")?;
    assert_eq!(buckets.len(), 90);
    let total: u64 = buckets.iter().filter_map(|b| b["count"].as_u64()).sum();
    assert_eq!(total, 1, "{buckets:?}");
    let day = (short.not_after - unix_now() / 86_400 * 86_400) / 86_400;
    assert_eq!(buckets[usize::try_from(day)?]["count"], 1, "{buckets:?}");
    assert!(buckets[0]["date"].as_str().is_some_and(|s| s.len() == 10));
    // Renewals: nothing renewed, nothing overdue.
    assert_eq!(d["renewals"]["renewed"], 0);
    assert_eq!(d["renewals"]["overdue"], 0);
    // This instance's heartbeat.
    let d = dashboard_when(&https, &token, |d| {
        d["instances"]
            .as_array()
            .is_some_and(|i| i.iter().any(|x| x["state"] == "active"))
    })
    .await?;
    assert_eq!(d["instances"][0]["id"], fx.https_url());

    // The doctor's findings.
    let doc = https.get("/admin/v1/doctor", Some(&token)).await?;
    assert_eq!(doc.status, 200, "{}", doc.json);
    let findings = doc.json["findings"].as_array().context("findings")?;
    assert!(findings.iter().all(|f| {
        ["check", "severity", "subject", "message", "fix"]
            .iter()
            .all(|k| f[k].is_string())
    }));
    fx.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --ignored --nocapture"]
async fn console_dashboard_latency() -> anyhow::Result<()> {
    use certbound_registry::store::AuditEvent;
    let fx = Fixture::new().await?;
    let https = HttpsClient::new(&fx.https_url(), fx.path(), None)?;
    let token = crate::admin_api::admin_token(&fx, &https, Some("admin:read")).await?;
    let store = &fx.registry.store;
    let now = unix_now();
    let t = std::time::Instant::now();
    certbound_registry::store::testing::bulk_devices(
        store,
        "fleet-",
        0,
        100_000,
        &[],
        now - 200 * 86_400,
        now + 165 * 86_400,
    )
    .await?;
    // 1 000 000 audit events over the last 10 hours: a tenth of them in the
    // dashboard's hour, tokens issued and refused, renewals.
    // 85 % tokens issued, 10 % refused, 4 % renewals, 1 % renewals refused.
    let action = |n: u64| match n % 100 {
        0..=84 => "token.issued",
        85..=94 => "token.refused",
        95..=98 => "cert.renewed",
        _ => "cert.renewal_refused",
    };
    for batch in 0..20u64 {
        let events: Vec<AuditEvent> = (0..50_000u64)
            .map(|i| {
                let n = batch * 50_000 + i;
                AuditEvent {
                    ts_ms: (now * 1000).saturating_sub(n * 36),
                    actor: format!("device:fleet-{:06}", n % 100_000),
                    action: action(n).into(),
                    subject: format!("fleet-{:06}", n % 100_000),
                    outcome: if action(n).ends_with("refused") {
                        "unauthorized_client".into()
                    } else {
                        "ok".into()
                    },
                    detail: ["transport=coap", "transport=mqtt", "transport=https"]
                        [(n % 3) as usize]
                        .into(),
                }
            })
            .collect();
        store.append_audit(&events).await?;
    }
    println!(
        "100000 devices and 1000000 audit events written in {:?}",
        t.elapsed()
    );
    https.get("/admin/v1/dashboard", Some(&token)).await?;
    // Each query on its own.
    let ms = now * 1000;
    let t = std::time::Instant::now();
    store.device_status_counts().await?;
    println!("  devices by status: {:?}", t.elapsed());
    let t = std::time::Instant::now();
    store.cert_expiry_by_day(now, 90).await?;
    println!("  certificate expiry: {:?}", t.elapsed());
    let t = std::time::Instant::now();
    store.tokens_per_minute(now, 60).await?;
    println!("  tokens per minute: {:?}", t.elapsed());
    let t = std::time::Instant::now();
    store.refusals_by_reason(ms - 3_600_000).await?;
    println!("  refusals by reason: {:?}", t.elapsed());
    let t = std::time::Instant::now();
    store.renewal_health(ms - 30 * 86_400_000, now).await?;
    println!("  renewal health: {:?}", t.elapsed());
    let mut times = Vec::new();
    for _ in 0..11 {
        let t = std::time::Instant::now();
        let a = https.get("/admin/v1/dashboard", Some(&token)).await?;
        times.push(t.elapsed());
        anyhow::ensure!(a.status == 200, "{}", a.json);
    }
    times.sort();
    println!(
        "GET /admin/v1/dashboard at 100000 devices, 1000000 audit events (SQLite, HTTPS round trip): median {:?}, max {:?}",
        times[5], times[10]
    );
    fx.shutdown().await;
    Ok(())
}
