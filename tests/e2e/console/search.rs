//! `GET /admin/v1/devices` with 100 000 devices (provisioned straight into
//! the store): `q` search, `after` paging and `total`, through the running
//! broker; on PostgreSQL with fewer rows. `console_search_latency` (ignored:
//! run it with `--ignored --nocapture`) prints the latency of a search at
//! 100 000 devices for BENCHMARKS.md.

use std::time::Instant;

use anyhow::Context as _;
use certbound_e2e::Fixture;
use certbound_e2e::https::HttpsClient;
use certbound_registry::store::testing::bulk_devices;

async fn search(
    https: &HttpsClient,
    token: &str,
    query: &str,
) -> anyhow::Result<serde_json::Value> {
    let a = https
        .get(&format!("/admin/v1/devices?{query}"), Some(token))
        .await?;
    anyhow::ensure!(a.status == 200, "{query}: {} {}", a.status, a.json);
    Ok(a.json)
}

fn ids(page: &serde_json::Value) -> Vec<String> {
    page["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|d| d["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Fills the store with `count` devices `fleet-000000`.. and checks the
/// search answers.
async fn searches_a_large_fleet(fx: &Fixture, count: u64) -> anyhow::Result<()> {
    let https = HttpsClient::new(&fx.https_url(), fx.path(), None)?;
    let token = crate::admin_api::admin_token(fx, &https, Some("admin:read")).await?;
    let now = certbound_e2e::unix_now();
    let started = Instant::now();
    bulk_devices(
        &fx.registry.store,
        "fleet-",
        0,
        count,
        &[],
        now,
        now + 365 * 86_400,
    )
    .await?;
    eprintln!(
        "{count} devices provisioned into the store in {:?}",
        started.elapsed()
    );

    // Everything, first page: the default size, the total, a cursor.
    let all = search(&https, &token, "").await?;
    assert_eq!(all["total"], count);
    assert_eq!(ids(&all).len(), 50);
    assert_eq!(ids(&all)[0], "fleet-000000");
    assert_eq!(all["next"], "fleet-000049");
    // A prefix: fleet-0012xx is 100 devices, in pages of 30.
    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let page = search(
            &https,
            &token,
            &format!("q=fleet-0012&limit=30&after={after}"),
        )
        .await?;
        assert_eq!(page["total"], 100, "{page}");
        seen.extend(ids(&page));
        match page["next"].as_str() {
            Some(next) => after = next.to_string(),
            None => break,
        }
    }
    let expected: Vec<String> = (1200..1300).map(|i| format!("fleet-{i:06}")).collect();
    assert_eq!(seen, expected);
    // A substring in the middle of the id.
    let sub = search(&https, &token, "q=04242&limit=200").await?;
    let expected: Vec<String> = (0..count)
        .map(|i| format!("fleet-{i:06}"))
        .filter(|id| id.contains("04242"))
        .collect();
    assert_eq!(ids(&sub), expected);
    assert_eq!(sub["total"], expected.len());
    // A page's rows carry the contract's fields.
    let row = &all["items"][0];
    assert_eq!(row["status"], "active");
    assert!(row["cert_not_after"].as_u64().is_some_and(|t| t > now));
    assert!(row["last_seen"].is_null() && row["last_transport"].is_null());
    assert!(row["groups"].as_array().is_some());
    // Bad parameters are refused, not clamped.
    for bad in ["limit=0", "limit=201", "status=lost", "unknown=1"] {
        let a = https
            .get(&format!("/admin/v1/devices?{bad}"), Some(&token))
            .await?;
        a.expect_error(400, "invalid_request").context(bad)?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_device_search_with_100k_devices() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    searches_a_large_fleet(&fx, 100_000).await?;
    fx.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_device_search_on_postgres() -> anyhow::Result<()> {
    let Some(store) = certbound_registry::store::testing::postgres().await else {
        return Ok(());
    };
    let fx = Fixture::on_store(store.url, &[]).await?;
    searches_a_large_fleet(&fx, 10_000).await?;
    fx.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --ignored --nocapture"]
async fn console_search_latency() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let https = HttpsClient::new(&fx.https_url(), fx.path(), None)?;
    let token = crate::admin_api::admin_token(&fx, &https, Some("admin:read")).await?;
    let now = certbound_e2e::unix_now();
    bulk_devices(
        &fx.registry.store,
        "fleet-",
        0,
        100_000,
        &[],
        now,
        now + 365 * 86_400,
    )
    .await?;
    for query in [
        "",
        "q=fleet-0999",
        "q=04242",
        "q=nomatch",
        "status=suspended",
    ] {
        // Warm up once, then the median of 21.
        search(&https, &token, query).await?;
        let mut times = Vec::new();
        for _ in 0..21 {
            let t = Instant::now();
            search(&https, &token, query).await?;
            times.push(t.elapsed());
        }
        times.sort();
        println!(
            "GET /admin/v1/devices?{query} at 100000 devices (SQLite, HTTPS round trip): median {:?}, max {:?}",
            times[10], times[20]
        );
    }
    fx.shutdown().await;
    Ok(())
}
