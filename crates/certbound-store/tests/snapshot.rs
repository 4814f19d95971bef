//! The in-memory registry (`Snapshot`) answers exactly as the per-request
//! query (`Store::token_view`) after every kind of change, whoever made it:
//! this process (counted at once) or another store handle, as another
//! instance or the CLI would (counted at the next refresh).

use certbound_store::testing::current;
use certbound_store::{Api, CertRecord, DeviceStatus, Grant, Store};

const TEL: &str = "https://telemetry.example.com";
const FW: &str = "https://firmware.example.com";

fn cert(device: &str, n: u8) -> CertRecord {
    CertRecord {
        serial: format!("{n:02x}{device}"),
        device_id: device.into(),
        thumbprint: format!("{n:02x}{}", hex::encode(device)),
        not_before: 1,
        not_after: 4_000_000_000,
        status: "active".into(),
        der: vec![0x30, n],
    }
}

fn grant(api: &str, scopes: &str) -> Grant {
    Grant {
        api_id: api.into(),
        scopes: scopes.split(' ').map(String::from).collect(),
    }
}

/// Every (thumbprint, audience) the test uses, compared: snapshot vs store.
async fn same_answers(store: &Store, snapshot: &certbound_store::snapshot::Snapshot) {
    let thumbprints = [
        cert("d1", 1).thumbprint,
        cert("d1", 2).thumbprint,
        cert("d2", 1).thumbprint,
        cert("d3", 1).thumbprint,
        "ffff".to_string(),
    ];
    for t in &thumbprints {
        for aud in [TEL, FW, "https://unknown.example.com", ""] {
            let want = store.token_view(t, aud).await.unwrap();
            let got = snapshot.token_view(t, aud);
            let key = |v: &Option<certbound_store::TokenView>| {
                v.as_ref().map(|v| {
                    let mut granted = v.granted.clone();
                    if let Some(g) = granted.as_mut() {
                        g.sort();
                    }
                    (
                        v.der.clone(),
                        v.serial.clone(),
                        v.cert_active,
                        v.device_id.clone(),
                        v.device_status,
                        v.api_ttl,
                        granted,
                    )
                })
            };
            assert_eq!(key(&got), key(&want), "{t} for {aud:?}");
        }
    }
}

async fn the_snapshot_answers_as_the_store_after_every_change() {
    let dir = tempfile::tempdir().unwrap();
    let store = current().open(dir.path()).await;
    // Another handle on the same database: another instance, or the CLI.
    let other = Store::connect(&current().url_for(dir.path()))
        .await
        .unwrap();
    for (id, ttl, scopes) in [(TEL, 600, "telemetry:write"), (FW, 60, "firmware:read")] {
        let api = Api {
            id: id.into(),
            format: "cwt".into(),
            ttl_secs: ttl,
            scopes: vec![scopes.into()],
        };
        store.create_api(&api, 1).await.unwrap();
    }
    store
        .create_group("sensors", &[grant(TEL, "telemetry:write")], 1)
        .await
        .unwrap();
    store
        .create_group("fw", &[grant(FW, "firmware:read")], 1)
        .await
        .unwrap();
    store
        .create_device("d1", &["sensors".into(), "fw".into()], &cert("d1", 1), 1)
        .await
        .unwrap();
    let snapshot = store.load_snapshot().await.unwrap();
    same_answers(&store, &snapshot).await;

    // Changes through this handle: visible at once (refresh_if_written).
    store
        .create_device("d2", &["sensors".into()], &cert("d2", 1), 2)
        .await
        .unwrap();
    store.add_certificate(&cert("d1", 2), 2).await.unwrap();
    store
        .set_device_status("d1", DeviceStatus::Suspended, 3)
        .await
        .unwrap();
    snapshot.refresh_if_written().await.unwrap();
    same_answers(&store, &snapshot).await;
    assert_eq!(snapshot.counts(), (2, 3));

    // Changes through the other handle: visible after the next refresh.
    other
        .set_device_status("d1", DeviceStatus::Active, 4)
        .await
        .unwrap();
    other
        .set_grant("sensors", &grant(TEL, "telemetry:write telemetry:read"))
        .await
        .unwrap();
    other.set_api_ttl(FW, 120).await.unwrap();
    other
        .create_device("d3", &["fw".into()], &cert("d3", 1), 4)
        .await
        .unwrap();
    snapshot.refresh_if_written().await.unwrap(); // not this process's writes: a no-op
    assert!(snapshot.token_view(&cert("d3", 1).thumbprint, FW).is_none());
    let r = snapshot.refresh().await.unwrap();
    assert!(r.changes >= 4 && !r.full_reload, "{r:?}");
    same_answers(&store, &snapshot).await;

    // Revocation (the device's certificates follow), grant removal, group deletion.
    other
        .set_device_status("d2", DeviceStatus::Revoked, 5)
        .await
        .unwrap();
    other.remove_grant("fw", FW).await.unwrap();
    other.delete_group("sensors", true).await.unwrap();
    snapshot.refresh().await.unwrap();
    same_answers(&store, &snapshot).await;
    let revoked = snapshot.token_view(&cert("d2", 1).thumbprint, TEL).unwrap();
    assert_eq!(revoked.device_status, DeviceStatus::Revoked);
    assert!(snapshot.version() > 0);

    // Nothing new: a refresh reads nothing.
    assert_eq!(snapshot.refresh().await.unwrap().changes, 0);
    // Housekeeping of the feed keeps what was asked for.
    let last = store.last_change().await.unwrap();
    let pruned = store.prune_registry_changes(3).await.unwrap();
    assert_eq!(pruned, u64::try_from(last - 3).unwrap());
    // A snapshot loaded now agrees too.
    same_answers(&store, &store.load_snapshot().await.unwrap()).await;
}

certbound_store::on_every_backend!(the_snapshot_answers_as_the_store_after_every_change);

/// The token path's own records (audit events, status-list blocks) leave
/// the write counter alone: otherwise every token would make the next
/// lookup re-read the change feed, a query per request under load (found by
/// the issuance benchmark). Registry writes move it.
async fn only_registry_writes_move_the_write_counter() {
    let dir = tempfile::tempdir().unwrap();
    let store = current().open(dir.path()).await;
    let before = store.writes();
    store
        .append_audit(&[certbound_store::AuditEvent {
            ts_ms: 1,
            actor: "t".into(),
            action: "token.issued".into(),
            subject: "d1".into(),
            outcome: "ok".into(),
            detail: String::new(),
        }])
        .await
        .unwrap();
    store.reserve_status_entries(16, 1024, 1).await.unwrap();
    assert_eq!(store.writes(), before, "log writes moved the write counter");
    store
        .create_api(
            &Api {
                id: TEL.into(),
                format: "cwt".into(),
                ttl_secs: 60,
                scopes: vec!["telemetry:write".into()],
            },
            1,
        )
        .await
        .unwrap();
    assert!(store.writes() > before, "a registry write must move it");
}

certbound_store::on_every_backend!(only_registry_writes_move_the_write_counter);

/// On PostgreSQL a change reaches a following snapshot through NOTIFY, not
/// the poll: with a poll of an hour, it still arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_notifications_refresh_without_waiting_for_the_poll() {
    let Some(pg) = certbound_store::testing::postgres().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = pg.open(dir.path()).await;
    let other = Store::connect(&pg.url_for(dir.path())).await.unwrap();
    store.create_group("g", &[], 1).await.unwrap();
    store
        .create_device("n1", &["g".into()], &cert("n1", 1), 1)
        .await
        .unwrap();
    let snapshot = store.load_snapshot().await.unwrap();
    let task = tokio::spawn(
        snapshot
            .clone()
            .follow(std::time::Duration::from_secs(3600)),
    );
    // The first tick refreshes at once; the listener is up by then.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while snapshot.version() < store.last_change().await.unwrap() {
        assert!(
            std::time::Instant::now() < deadline,
            "the first refresh never came"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    other
        .set_device_status("n1", DeviceStatus::Revoked, 2)
        .await
        .unwrap();
    let thumb = cert("n1", 1).thumbprint;
    loop {
        let view = snapshot.token_view(&thumb, TEL).unwrap();
        if view.device_status == DeviceStatus::Revoked {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no NOTIFY-driven refresh (the poll is an hour)"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    task.abort();
}

/// A client as both sides see it: JSON (secret hash excluded there) plus
/// the secret hash.
fn client_facts(c: Option<certbound_store::Client>) -> Option<(serde_json::Value, Option<String>)> {
    c.map(|c| (serde_json::to_value(&c).unwrap(), c.secret_hash))
}

/// Clients and APIs in the snapshot answer as the store after every kind
/// of client change, made by another handle (instance) and seen after a
/// refresh: create, secret rotation, revocation, deletion of an API
/// (cascading to grants), and lookups by id, subject, SAN and thumbprint.
async fn clients_in_the_snapshot_answer_as_the_store() {
    use certbound_store::snapshot::clients::ClientKey;
    use certbound_store::{ClientAuthMethod, NewClient};
    let dir = tempfile::tempdir().unwrap();
    let store = current().open(dir.path()).await;
    let other = Store::connect(&current().url_for(dir.path()))
        .await
        .unwrap();
    for (id, format) in [(TEL, "cwt"), (FW, "jwt")] {
        store
            .create_api(
                &Api {
                    id: id.into(),
                    format: format.into(),
                    ttl_secs: 300,
                    scopes: vec!["read".into()],
                },
                1,
            )
            .await
            .unwrap();
    }
    let snapshot = store.load_snapshot().await.unwrap();
    let grants = [
        (TEL.to_string(), "read".to_string()),
        (FW.to_string(), "read".to_string()),
    ];
    let clients = [
        NewClient {
            id: "c-secret",
            name: "secret",
            secret_hash: Some("aa"),
            tls_subject: None,
            tls_san: None,
            thumbprint: None,
            jwks: None,
            jwks_uri: None,
            auth_method: ClientAuthMethod::ClientSecretBasic,
            grants: &grants,
        },
        NewClient {
            id: "c-dn",
            name: "dn",
            secret_hash: None,
            tls_subject: Some("CN=svc"),
            tls_san: None,
            thumbprint: None,
            jwks: None,
            jwks_uri: None,
            auth_method: ClientAuthMethod::TlsClientAuth,
            grants: &grants[..1],
        },
        NewClient {
            id: "c-san",
            name: "san",
            secret_hash: None,
            tls_subject: None,
            tls_san: Some("dns:svc.example"),
            thumbprint: None,
            jwks: None,
            jwks_uri: None,
            auth_method: ClientAuthMethod::TlsClientAuth,
            grants: &grants[1..],
        },
        NewClient {
            id: "c-pin",
            name: "pin",
            secret_hash: None,
            tls_subject: None,
            tls_san: None,
            thumbprint: Some("x5t-pinned"),
            jwks: None,
            jwks_uri: None,
            auth_method: ClientAuthMethod::SelfSignedTlsClientAuth,
            grants: &grants,
        },
    ];
    for c in &clients {
        other.create_client(c, 2).await.unwrap();
    }
    let compare = |snapshot: certbound_store::snapshot::Snapshot| {
        let store = store.clone();
        async move {
            for id in ["c-secret", "c-dn", "c-san", "c-pin", "nobody"] {
                assert_eq!(
                    client_facts(snapshot.client(ClientKey::Id(id))),
                    client_facts(store.get_client(id).await.unwrap()),
                    "client {id}"
                );
            }
            assert_eq!(
                client_facts(snapshot.client(ClientKey::Subject("CN=svc"))),
                client_facts(store.get_client_by_subject("CN=svc").await.unwrap())
            );
            assert_eq!(
                client_facts(snapshot.client(ClientKey::San("dns:svc.example"))),
                client_facts(store.get_client_by_san("dns:svc.example").await.unwrap())
            );
            assert_eq!(
                client_facts(snapshot.client(ClientKey::Thumbprint("x5t-pinned"))),
                client_facts(store.get_client_by_thumbprint("x5t-pinned").await.unwrap())
            );
            for api in [TEL, FW, "https://none.example"] {
                let theirs = store
                    .get_api(api)
                    .await
                    .unwrap()
                    .map(|a| (a.ttl_secs, a.format));
                let ours = snapshot.api(api).map(|a| (a.ttl_secs, a.format));
                assert_eq!(ours, theirs, "api {api}");
            }
        }
    };
    // Not seen before a refresh (another handle wrote), seen after it.
    assert!(snapshot.client(ClientKey::Id("c-secret")).is_none());
    snapshot.refresh().await.unwrap();
    assert_eq!(snapshot.client_count(), 4);
    compare(snapshot.clone()).await;

    other.set_client_secret("c-secret", "bb", 3).await.unwrap();
    other.revoke_client("c-dn", 3).await.unwrap();
    snapshot.refresh().await.unwrap();
    compare(snapshot.clone()).await;
    assert_eq!(
        snapshot
            .client(ClientKey::Id("c-secret"))
            .unwrap()
            .secret_hash
            .as_deref(),
        Some("bb")
    );
    assert!(snapshot.client(ClientKey::Subject("CN=svc")).is_none());

    // A miss reads the feed at once: a client made a moment ago elsewhere.
    other
        .create_client(
            &NewClient {
                id: "c-late",
                name: "late",
                ..clients[0]
            },
            4,
        )
        .await
        .unwrap();
    assert!(
        snapshot
            .client_or_refresh(ClientKey::Id("c-late"))
            .await
            .unwrap()
            .is_some()
    );

    // This handle's own write counts at its next lookup.
    store.set_client_secret("c-late", "cc", 5).await.unwrap();
    snapshot.refresh_if_written().await.unwrap();
    assert_eq!(
        snapshot
            .client(ClientKey::Id("c-late"))
            .unwrap()
            .secret_hash
            .as_deref(),
        Some("cc")
    );
    compare(snapshot.clone()).await;
}

certbound_store::on_every_backend!(clients_in_the_snapshot_answer_as_the_store);
