//! The running broker prunes its store in the background, every
//! `[audit] prune_every_secs`.

use std::time::{Duration, Instant};

use certbound_broker::server::{ServeOptions, start};
use certbound_broker::store::{AuditEvent, IssuedToken, TokenHolder};
use certbound_registry::clock::unix_now;
use certbound_registry::config::DataDir;

fn token(jti: &str, exp: u64) -> IssuedToken {
    IssuedToken {
        jti: jti.into(),
        holder: TokenHolder::Client,
        subject: "backend".into(),
        api_id: "https://telemetry.example.com".into(),
        scope: "telemetry:read".into(),
        format: "jwt".into(),
        kid: "k".into(),
        cnf: None,
        status_entry: None,
        iat: exp.saturating_sub(30),
        exp,
    }
}

async fn broker_prunes_in_the_background() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cb");
    certbound_registry::registry::init_with(
        &dir,
        "https://auth.example.com",
        &certbound_registry::registry::InitOptions::on_test_backend().await,
    )
    .await
    .unwrap();
    let data = DataDir::new(&dir);
    let config = std::fs::read_to_string(data.config()).unwrap();
    let config = config
        .replace("prune_every_secs = 300", "prune_every_secs = 1")
        .replace("mode = \"embedded\"", "mode = \"off\"");
    assert!(config.contains("prune_every_secs = 1"));
    std::fs::write(data.config(), config).unwrap();

    let now = unix_now();
    let config = certbound_registry::config::Config::load(&dir).unwrap();
    let store = certbound_broker::store::Store::connect(&config.store_url(&data))
        .await
        .unwrap();
    store
        .record_issued(&[token("expired", now - 3600), token("live", now + 3600)])
        .await
        .unwrap();
    store
        .append_audit(&[AuditEvent {
            ts_ms: (now - 200 * 86_400) * 1000,
            actor: "broker".into(),
            action: "token.issued".into(),
            subject: "ancient".into(),
            outcome: "ok".into(),
            detail: String::new(),
        }])
        .await
        .unwrap();

    let any = "127.0.0.1:0".parse().ok();
    let broker = start(
        &dir,
        ServeOptions {
            coap_listen: any,
            mqtt_listen: any,
            https_listen: any,
        },
    )
    .await
    .unwrap();

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let gone = store.token_state("expired").await.unwrap().is_none();
        let events = store.recent_audit(Some("ancient"), 10).await.unwrap();
        if gone && events.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the broker did not prune within 30 s (token gone: {gone}, old events: {})",
            events.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(store.token_state("live").await.unwrap().is_some());
    broker.shutdown().await;
    store.close().await;
}

certbound_broker::store::on_every_backend!(broker_prunes_in_the_background);
