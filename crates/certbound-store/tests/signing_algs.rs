//! Signing algorithms per API (migration 0014): an API's `signing_alg`,
//! seen by the snapshot, written and read by policy transactions; each
//! signing key's `alg`, ES256 for keys recorded without one.

use certbound_store::testing::current;
use certbound_store::{Api, DEFAULT_SIGNING_ALG, KeySchedule};

const NOW: u64 = 1_750_000_000;

fn api(id: &str, format: &str) -> Api {
    Api {
        id: id.into(),
        format: format.into(),
        ttl_secs: 600,
        scopes: vec!["read".into()],
    }
}

async fn api_signing_algs_are_stored_and_seen_by_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let store = current().open(dir.path()).await;
    store
        .create_api(&api("https://rs.example", "jwt"), NOW)
        .await
        .unwrap();
    store
        .create_api(&api("https://es.example", "jwt"), NOW)
        .await
        .unwrap();
    let snapshot = store.load_snapshot().await.unwrap();

    assert_eq!(
        store.api_signing_alg("https://rs.example").await.unwrap(),
        None
    );
    assert!(store.api_signing_algs().await.unwrap().is_empty());
    assert!(
        store
            .set_api_signing_alg("https://rs.example", Some("RS256"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_api_signing_alg("https://nope.example", Some("RS256"))
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .api_signing_alg("https://rs.example")
            .await
            .unwrap()
            .as_deref(),
        Some("RS256")
    );
    assert_eq!(
        store.api_signing_algs().await.unwrap(),
        vec![("https://rs.example".to_string(), "RS256".to_string())]
    );
    // The change reaches the snapshot through the change feed.
    snapshot.refresh().await.unwrap();
    assert_eq!(
        snapshot
            .api("https://rs.example")
            .unwrap()
            .signing_alg
            .as_deref(),
        Some("RS256")
    );
    assert_eq!(
        snapshot.api("https://es.example").unwrap().signing_alg,
        None
    );
    // Back to the default.
    store
        .set_api_signing_alg("https://rs.example", None)
        .await
        .unwrap();
    snapshot.refresh().await.unwrap();
    assert_eq!(
        snapshot.api("https://rs.example").unwrap().signing_alg,
        None
    );

    // Keys: the algorithm is recorded; a key written without one is ES256.
    store
        .add_signing_key(
            &KeySchedule {
                kid: "rsa-key".into(),
                created_at: NOW,
                active_from: NOW,
                retire_after: None,
                public_key: Some(vec![0x30, 0x00]),
                alg: "PS256".into(),
            },
            &[],
            0,
        )
        .await
        .unwrap();
    store
        .execute_sql(&format!(
            "INSERT INTO signing_keys (kid, created_at, active_from) VALUES ('old-key', {NOW}, {NOW})"
        ))
        .await
        .unwrap();
    let algs: Vec<(String, String)> = store
        .key_schedules()
        .await
        .unwrap()
        .into_iter()
        .map(|k| (k.kid, k.alg))
        .collect();
    assert!(
        algs.contains(&("rsa-key".into(), "PS256".into())),
        "{algs:?}"
    );
    assert!(
        algs.contains(&("old-key".into(), DEFAULT_SIGNING_ALG.into())),
        "{algs:?}"
    );
}

certbound_store::on_every_backend!(api_signing_algs_are_stored_and_seen_by_the_snapshot);
