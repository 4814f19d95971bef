//! `GET /metrics`: the Prometheus text exposition moves with real traffic
//! (a device token over CoAP, a refusal, a client token over HTTPS).

use anyhow::{Context as _, ensure};
use certbound_e2e::https::HttpsClient;
use certbound_e2e::{API, Fixture, GRANTED_SCOPE};

/// Every sample line of `text` as `(name, labels, value)`; fails on a line
/// that is not `name{labels} value` or `name value`.
fn samples(text: &str) -> anyhow::Result<Vec<(String, String, f64)>> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .with_context(|| format!("no value: {line:?}"))?;
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().with_context(|| format!("bad value: {line:?}"))?,
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let labels = rest
                    .strip_suffix('}')
                    .with_context(|| format!("unclosed labels: {line:?}"))?;
                for pair in labels.split(',').filter(|p| !p.is_empty()) {
                    let (k, v) = pair
                        .split_once('=')
                        .with_context(|| format!("bad label: {line:?}"))?;
                    ensure!(
                        !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                        "bad label name: {line:?}"
                    );
                    ensure!(
                        v.len() >= 2 && v.starts_with('"') && v.ends_with('"'),
                        "unquoted label value: {line:?}"
                    );
                }
                (name, labels.to_string())
            }
            None => (series, String::new()),
        };
        ensure!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name: {line:?}"
        );
        out.push((name.to_string(), labels, value));
    }
    Ok(out)
}

fn value(samples: &[(String, String, f64)], name: &str, labels: &str) -> f64 {
    samples
        .iter()
        .find(|(n, l, _)| n == name && l == labels)
        .map(|s| s.2)
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_issued_and_refused_tokens() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let device = fx.device("metrics-1").await?;
    fx.obtain(&device, &fx.params(Some(GRANTED_SCOPE))).await?;
    let mut request = fx.token_request(&device);
    request.audience = Some("https://unknown.example.com".into());
    let body = fx.sign(&request, &device.x5t(), device.identity.signer())?;
    fx.post_token(body).await?.error()?;

    let created = fx
        .registry
        .create_client(
            "metrics-client",
            &[(API.into(), GRANTED_SCOPE.into())],
            None,
            true,
        )
        .await?;
    let https = HttpsClient::new(&fx.https_url(), fx.path(), None)?;
    https
        .token_with_secret(
            &created.client_id,
            created
                .client_secret
                .as_deref()
                .context("a secret client")?,
            API,
            None,
        )
        .await?;

    let scrape = https.get("/metrics", None).await?;
    ensure!(scrape.status == 200, "GET /metrics: {}", scrape.status);
    let content_type = scrape
        .raw
        .header("content-type")
        .unwrap_or_default()
        .to_string();
    ensure!(
        content_type == "text/plain; version=0.0.4",
        "content-type {content_type:?}"
    );
    let text = std::str::from_utf8(&scrape.raw.body)?;
    let s = samples(text)?;
    let check = |name: &str, labels: &str, want: f64| {
        let got = value(&s, name, labels);
        ensure!(
            got == want,
            "{name}{{{labels}}} = {got}, want {want}\n{text}"
        );
        Ok(())
    };
    check(
        "certbound_tokens_issued_total",
        "transport=\"coap\",kind=\"device\"",
        1.0,
    )?;
    check(
        "certbound_tokens_refused_total",
        "transport=\"coap\",reason=\"invalid_request\"",
        1.0,
    )?;
    check(
        "certbound_tokens_issued_total",
        "transport=\"https\",kind=\"client\"",
        1.0,
    )?;
    check(
        "certbound_token_request_seconds_count",
        "transport=\"coap\"",
        2.0,
    )?;
    check(
        "certbound_token_request_seconds_bucket",
        "transport=\"coap\",le=\"+Inf\"",
        2.0,
    )?;
    check(
        "certbound_token_request_seconds_count",
        "transport=\"https\"",
        1.0,
    )?;
    ensure!(
        value(&s, "certbound_signing_keys_published", "") >= 1.0,
        "no signing key published\n{text}"
    );
    ensure!(
        s.iter().any(|(n, _, _)| n == "certbound_mqtt_sessions"),
        "no MQTT session gauge\n{text}"
    );
    ensure!(
        s.iter()
            .any(|(n, labels, _)| n == "certbound_mqtt_refusals_total"
                && labels.contains("identity_cap")),
        "no MQTT refusal counters\n{text}"
    );
    fx.shutdown().await;
    Ok(())
}
