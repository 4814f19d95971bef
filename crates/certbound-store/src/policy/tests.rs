//! The policy statements on every backend.

use super::*;
use crate::testing::current;
use crate::{Api, AuditEvent, IssuedToken, NewClient, TokenHolder, insert_client};

const ADMIN: &str = "urn:test:admin";

fn api(id: &str, ttl_secs: u64, scopes: &[&str]) -> Api {
    Api {
        id: id.into(),
        format: "cwt".into(),
        ttl_secs,
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
    }
}

fn grant(api: &str, scopes: &[&str]) -> Grant {
    Grant {
        api_id: api.into(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
    }
}

fn grant_pairs(grants: &[Grant]) -> Vec<(String, String)> {
    grants
        .iter()
        .map(|g| (g.api_id.clone(), g.scopes.join(" ")))
        .collect()
}

fn token(jti: &str, api_id: &str, exp: u64) -> IssuedToken {
    IssuedToken {
        jti: jti.into(),
        holder: TokenHolder::Device,
        subject: "syn-1".into(),
        api_id: api_id.into(),
        scope: "read".into(),
        format: "cwt".into(),
        kid: "k1".into(),
        cnf: None,
        status_entry: None,
        iat: 1_000,
        exp,
    }
}

async fn policy_reads_the_current_state() {
    let dir = tempfile::tempdir().unwrap();
    let store = current().open(dir.path()).await;
    store
        .create_api(&api(ADMIN, 60, &["admin"]), 1)
        .await
        .unwrap();
    store
        .create_api(&api("https://b", 600, &["read", "write"]), 1)
        .await
        .unwrap();
    store
        .create_api(&api("https://a", 60, &[]), 1)
        .await
        .unwrap();
    store
        .create_group(
            "sensors",
            &[grant("https://b", &["read"]), grant("https://a", &[])],
            1,
        )
        .await
        .unwrap();
    store.create_group("empty", &[], 1).await.unwrap();
    store
        .bulk_insert_synthetic_devices(2, "sensors", 8)
        .await
        .unwrap();
    store
        .record_issued(&[
            token("t-live", "https://b", 5_000),
            token("t-expired", "https://b", 1_500),
        ])
        .await
        .unwrap();

    let mut tx = store.policy_read().await.unwrap();
    let apis = read_apis(&mut tx, ADMIN).await.unwrap();
    let shown: Vec<_> = apis
        .iter()
        .map(|a| {
            (
                a.id.as_str(),
                a.format.as_str(),
                a.ttl_secs,
                a.scopes.join(" "),
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            ("https://a", "cwt", 60, String::new()),
            ("https://b", "cwt", 600, "read write".to_string()),
        ]
    );
    assert_eq!(
        admin_api_scopes(&mut tx, ADMIN).await.unwrap(),
        Some(vec!["admin".to_string()])
    );
    assert_eq!(admin_api_scopes(&mut tx, "urn:none").await.unwrap(), None);

    let groups = read_groups(&mut tx).await.unwrap();
    let names: Vec<_> = groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["empty", "sensors"]);
    assert!(groups[0].grants.is_empty());
    assert_eq!(
        grant_pairs(&groups[1].grants),
        [
            ("https://a".to_string(), String::new()),
            ("https://b".to_string(), "read".to_string()),
        ]
    );
    assert_eq!(group_member_count(&mut tx, "sensors").await.unwrap(), 2);
    assert_eq!(group_member_count(&mut tx, "empty").await.unwrap(), 0);
    assert_eq!(
        live_tokens_of_api(&mut tx, "https://b", 1_000)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        live_tokens_of_api(&mut tx, "https://b", 2_000)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        live_tokens_of_api(&mut tx, "https://a", 1_000)
            .await
            .unwrap(),
        0
    );
    assert!(read_clients(&mut tx, "admin").await.unwrap().is_empty());
    tx.rollback().await.unwrap();
}

async fn policy_writes_in_the_callers_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let store = current().open(dir.path()).await;
    store
        .create_api(&api("https://old", 60, &["x"]), 1)
        .await
        .unwrap();
    store.create_group("gone", &[], 1).await.unwrap();
    let no_grants: [(String, String); 0] = [];
    for (id, name, thumbprint) in [("c-admin", "admin", None), ("c-1", "svc", Some("x5t-one"))] {
        store
            .create_client(
                &NewClient {
                    id,
                    name,
                    secret_hash: thumbprint.is_none().then_some("hash"),
                    tls_subject: None,
                    tls_san: None,
                    thumbprint,
                    jwks: None,
                    jwks_uri: None,
                    auth_method: if thumbprint.is_some() {
                        ClientAuthMethod::SelfSignedTlsClientAuth
                    } else {
                        ClientAuthMethod::ClientSecret
                    },
                    grants: &no_grants,
                },
                1,
            )
            .await
            .unwrap();
    }

    // Everything in one write transaction, rolled back: nothing changes.
    let mut tx = store.policy_write().await.unwrap();
    upsert_api(&mut tx, &api("https://new", 120, &["r"]), 10)
        .await
        .unwrap();
    delete_group(&mut tx, "gone").await.unwrap();
    tx.rollback().await.unwrap();
    assert!(store.get_api("https://new").await.unwrap().is_none());
    assert!(store.group_exists("gone").await.unwrap());

    let mut tx = store.policy_write().await.unwrap();
    upsert_api(&mut tx, &api("https://new", 120, &["r", "w"]), 10)
        .await
        .unwrap();
    upsert_api(&mut tx, &api("https://old", 300, &["y"]), 10)
        .await
        .unwrap();
    replace_group(&mut tx, "readers", &[grant("https://new", &["r"])], 10)
        .await
        .unwrap();
    // Replacing again keeps the group and replaces its grants.
    replace_group(
        &mut tx,
        "readers",
        &[grant("https://new", &["w"]), grant("https://old", &["y"])],
        11,
    )
    .await
    .unwrap();
    let clients = read_clients(&mut tx, "admin").await.unwrap();
    assert_eq!(clients.len(), 1);
    let svc = &clients[0];
    assert_eq!((svc.id.as_str(), svc.name.as_str()), ("c-1", "svc"));
    assert!(!svc.has_secret);
    assert_eq!(
        svc.auth_method,
        Some(ClientAuthMethod::SelfSignedTlsClientAuth)
    );
    assert_eq!(svc.thumbprint.as_deref(), Some("x5t-one"));
    replace_client(
        &mut tx,
        "c-1",
        &ClientCredentials {
            auth_method: ClientAuthMethod::TlsClientAuth,
            tls_subject: None,
            tls_san: Some("dns:svc.example"),
            thumbprint: None,
            jwks: None,
            jwks_uri: None,
        },
        &[grant("https://new", &["r"])],
        12,
    )
    .await
    .unwrap();
    let grants = [("https://new".to_string(), "w".to_string())];
    insert_client(
        &mut tx,
        &NewClient {
            id: "c-2",
            name: "second",
            secret_hash: Some("h2"),
            tls_subject: None,
            tls_san: None,
            thumbprint: None,
            jwks: None,
            jwks_uri: None,
            auth_method: ClientAuthMethod::ClientSecretPost,
            grants: &grants,
        },
        12,
    )
    .await
    .unwrap();
    delete_group(&mut tx, "gone").await.unwrap();
    record_change(
        &mut tx,
        12_000,
        "tester",
        "policy.group.removed",
        "gone",
        "",
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let new = store.get_api("https://new").await.unwrap().unwrap();
    assert_eq!((new.ttl_secs, new.scopes.join(" ")), (120, "r w".into()));
    let old = store.get_api("https://old").await.unwrap().unwrap();
    assert_eq!((old.ttl_secs, old.scopes.join(" ")), (300, "y".into()));
    let groups = store.list_groups().await.unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].0, "readers");
    assert_eq!(
        grant_pairs(&groups[0].1),
        [
            ("https://new".to_string(), "w".to_string()),
            ("https://old".to_string(), "y".to_string()),
        ]
    );
    let svc = store.get_client("c-1").await.unwrap().unwrap();
    assert_eq!(svc.auth_method, ClientAuthMethod::TlsClientAuth);
    assert_eq!(svc.tls_san.as_deref(), Some("dns:svc.example"));
    assert_eq!(svc.thumbprint, None);
    assert_eq!(grant_pairs(&svc.grants), grants_of_new_r());
    let audit = store.recent_audit(Some("gone"), 10).await.unwrap();
    assert_eq!(audit.len(), 1);
    let AuditEvent {
        ts_ms,
        actor,
        action,
        outcome,
        ..
    } = &audit[0];
    assert_eq!(
        (*ts_ms, actor.as_str(), action.as_str(), outcome.as_str()),
        (12_000, "tester", "policy.group.removed", "ok")
    );

    // Removals: the grants naming an API go first, then the API.
    let mut tx = store.policy_write().await.unwrap();
    replace_group(&mut tx, "readers", &[grant("https://new", &["w"])], 13)
        .await
        .unwrap();
    delete_api(&mut tx, "https://old").await.unwrap();
    let names: Vec<_> = read_clients(&mut tx, "nobody")
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.name, c.has_secret, c.auth_method))
        .collect();
    assert_eq!(
        names,
        [
            (
                "admin".to_string(),
                true,
                Some(ClientAuthMethod::ClientSecret)
            ),
            (
                "second".to_string(),
                true,
                Some(ClientAuthMethod::ClientSecretPost)
            ),
            (
                "svc".to_string(),
                false,
                Some(ClientAuthMethod::TlsClientAuth)
            ),
        ]
    );
    tx.commit().await.unwrap();
    assert!(store.get_api("https://old").await.unwrap().is_none());
}

fn grants_of_new_r() -> Vec<(String, String)> {
    vec![("https://new".to_string(), "r".to_string())]
}

crate::on_every_backend!(
    policy_reads_the_current_state,
    policy_writes_in_the_callers_transaction
);
