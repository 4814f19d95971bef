//! Status-list entries handed out to tokens: reserved from the store in
//! blocks, the next block reserved in the background while the current one
//! is used. Two services on one store (two instances) allocating at once,
//! across several lists, never hand out one entry twice.

use std::collections::HashSet;
use std::sync::Arc;

use certbound_broker::status::{StatusConfig, StatusLists};
use certbound_broker::store::testing::current;
use certbound_registry::keys::SharedKeys;

const LIST_SIZE: u64 = 300;

async fn entries_never_collide_between_instances_or_lists() {
    let dir = tempfile::tempdir().unwrap();
    let store = current().open(dir.path()).await;
    let instance = || {
        Arc::new(StatusLists::new(
            StatusConfig {
                base_url: "https://auth.example.com".into(),
                list_size: LIST_SIZE,
                ttl: 60,
                issuer_id: "https://auth.example.com".into(),
            },
            store.clone(),
            SharedKeys::default(),
        ))
    };
    let (a, b) = (instance(), instance());
    let mut tasks = Vec::new();
    for lists in [a, b] {
        for _ in 0..4 {
            let lists = Arc::clone(&lists);
            tasks.push(tokio::spawn(async move {
                let mut got = Vec::new();
                for _ in 0..250 {
                    got.push(lists.allocate(1_000).await.unwrap());
                    tokio::task::yield_now().await;
                }
                got
            }));
        }
    }
    let mut seen = HashSet::new();
    let mut lists_used = HashSet::new();
    for t in tasks {
        for entry in t.await.unwrap() {
            assert!(entry.idx < LIST_SIZE, "{entry:?}");
            lists_used.insert(entry.uri.clone());
            assert!(seen.insert((entry.uri, entry.idx)), "handed out twice");
        }
    }
    assert_eq!(seen.len(), 2_000);
    assert!(
        lists_used.len() >= 7,
        "2 000 entries fill at least 7 lists of 300: {lists_used:?}"
    );
}

certbound_broker::store::on_every_backend!(entries_never_collide_between_instances_or_lists);
