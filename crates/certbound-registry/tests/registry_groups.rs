//! Changes to existing APIs and groups: `Registry::set_api_ttl`,
//! `delete_group`, `set_grant`, `remove_grant` — validation, effect on the
//! store (as the token endpoint reads it) and audit events.

use certbound_registry::RegistryError;
use certbound_registry::registry::{self, Registry};

const API: &str = "https://telemetry.example.com";
const OTHER: &str = "https://firmware.example.com";

async fn setup() -> (tempfile::TempDir, Registry) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cb");
    registry::init_with(
        &dir,
        "https://auth.example.com",
        &certbound_registry::registry::InitOptions::on_test_backend().await,
    )
    .await
    .unwrap();
    let reg = Registry::open(&dir).await.unwrap();
    reg.create_api(API, "telemetry:write telemetry:read admin", 7200)
        .await
        .unwrap();
    reg.create_api(OTHER, "firmware:read", 600).await.unwrap();
    reg.create_group("sensors", &[(API.into(), "telemetry:write admin".into())])
        .await
        .unwrap();
    reg.provision_device(
        "sensor-1",
        &["sensors".into()],
        &tmp.path().join("devices"),
        None,
    )
    .await
    .unwrap();
    (tmp, reg)
}

/// The audit actions recorded so far, oldest first.
async fn actions(reg: &Registry) -> Vec<(String, String, String)> {
    reg.store
        .recent_audit(None, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.action, e.subject, e.detail))
        .collect()
}

async fn grants_of(reg: &Registry, group: &str) -> Option<Vec<(String, String)>> {
    reg.store
        .list_groups()
        .await
        .unwrap()
        .into_iter()
        .find(|(name, _)| name == group)
        .map(|(_, grants)| {
            grants
                .into_iter()
                .map(|g| (g.api_id, g.scopes.join(" ")))
                .collect()
        })
}

async fn set_api_ttl_changes_the_lifetime_and_audits() {
    let (_tmp, reg) = setup().await;
    let change = reg.set_api_ttl(API, 3600).await.unwrap();
    assert_eq!(change.ttl_secs, 3600);
    assert_eq!(change.previous_ttl_secs, 7200);
    assert_eq!(
        reg.store.get_api(API).await.unwrap().unwrap().ttl_secs,
        3600
    );
    assert!(
        actions(&reg)
            .await
            .iter()
            .any(|(a, s, d)| a == "api.ttl_changed" && s == API && d == "ttl=3600 previous=7200")
    );
    // The bounds of `api create --ttl`, inclusive.
    reg.set_api_ttl(API, 5).await.unwrap();
    reg.set_api_ttl(API, 86_400).await.unwrap();
    for bad in [0, 4, 86_401, u64::MAX] {
        let err = reg.set_api_ttl(API, bad).await.unwrap_err();
        assert!(matches!(err, RegistryError::Invalid(_)), "{err}");
        assert!(err.to_string().contains("5 to 86400"), "{err}");
    }
    assert_eq!(
        reg.store.get_api(API).await.unwrap().unwrap().ttl_secs,
        86_400
    );
    reg.close().await;
}

async fn set_api_ttl_of_an_unknown_api() {
    let (_tmp, reg) = setup().await;
    let err = reg.set_api_ttl("https://nope", 600).await.unwrap_err();
    assert!(
        matches!(err, RegistryError::NotFound { kind: "API", .. }),
        "{err}"
    );
    assert!(err.to_string().contains("certbound api list"), "{err}");
    reg.close().await;
}

async fn delete_group_refuses_with_members_unless_forced() {
    let (_tmp, reg) = setup().await;
    let err = reg.delete_group("sensors", false).await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("sensor-1") && msg.contains("--force"), "{msg}");
    assert!(grants_of(&reg, "sensors").await.is_some(), "still there");
    assert!(
        !actions(&reg)
            .await
            .iter()
            .any(|(a, ..)| a == "group.deleted")
    );

    let deleted = reg.delete_group("sensors", true).await.unwrap();
    assert_eq!(deleted.removed_members, vec!["sensor-1".to_string()]);
    assert!(grants_of(&reg, "sensors").await.is_none());
    assert!(!reg.store.group_exists("sensors").await.unwrap());
    // The device stays, in no group: the token endpoint finds no grant.
    let device = reg.store.get_device("sensor-1").await.unwrap().unwrap();
    assert!(device.groups.is_empty(), "{device:?}");
    let (_, certs) = reg.show_device("sensor-1").await.unwrap();
    let view = reg
        .store
        .token_view(&certs[0].thumbprint, API)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.granted, None);
    assert!(
        actions(&reg)
            .await
            .iter()
            .any(|(a, s, d)| a == "group.deleted"
                && s == "sensors"
                && d.contains("removed_members=sensor-1"))
    );
    reg.close().await;
}

async fn delete_empty_and_unknown_groups() {
    let (_tmp, reg) = setup().await;
    reg.create_group("unused", &[(OTHER.into(), "firmware:read".into())])
        .await
        .unwrap();
    let deleted = reg.delete_group("unused", false).await.unwrap();
    assert!(deleted.removed_members.is_empty());
    assert!(!reg.store.group_exists("unused").await.unwrap());
    let err = reg.delete_group("unused", true).await.unwrap_err();
    assert!(
        matches!(err, RegistryError::NotFound { kind: "group", .. }),
        "{err}"
    );
    reg.close().await;
}

async fn delete_group_used_by_a_claim_is_refused_even_forced() {
    let (tmp, reg) = setup().await;
    reg.create_group("line-1", &[(API.into(), "telemetry:write".into())])
        .await
        .unwrap();
    let claim = reg
        .create_claim("line-1", 10, 3600, None, None, &tmp.path().join("claim"))
        .await
        .unwrap();
    let err = reg.delete_group("line-1", true).await.unwrap_err();
    assert!(err.to_string().contains(&claim.claim.id), "{err}");
    assert!(reg.store.group_exists("line-1").await.unwrap());
    reg.close().await;
}

async fn set_grant_replaces_or_adds_and_validates() {
    let (_tmp, reg) = setup().await;
    let change = reg
        .set_grant("sensors", API, "telemetry:write telemetry:read")
        .await
        .unwrap();
    assert_eq!(change.scopes, vec!["telemetry:write", "telemetry:read"]);
    assert_eq!(
        change.previous,
        Some(vec!["telemetry:write".to_string(), "admin".to_string()])
    );
    let change = reg
        .set_grant("sensors", OTHER, "firmware:read")
        .await
        .unwrap();
    assert_eq!(change.previous, None);
    assert_eq!(
        grants_of(&reg, "sensors").await.unwrap(),
        vec![
            (OTHER.to_string(), "firmware:read".to_string()),
            (
                API.to_string(),
                "telemetry:write telemetry:read".to_string()
            ),
        ]
    );
    // What the token endpoint now grants sensor-1.
    let (_, certs) = reg.show_device("sensor-1").await.unwrap();
    let view = reg
        .store
        .token_view(&certs[0].thumbprint, API)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        view.granted,
        Some(vec!["telemetry:write".into(), "telemetry:read".into()])
    );
    assert!(
        actions(&reg)
            .await
            .iter()
            .any(|(a, s, d)| a == "group.grant_set"
                && s == "sensors"
                && d == &format!(
                    "api={API} scopes=telemetry:write telemetry:read previous=telemetry:write admin"
                ))
    );

    // Errors: unknown group, unknown API, undefined scope, no scope.
    let err = reg.set_grant("nope", API, "admin").await.unwrap_err();
    assert!(
        matches!(err, RegistryError::NotFound { kind: "group", .. }),
        "{err}"
    );
    let err = reg
        .set_grant("sensors", "https://nope", "x")
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::NotFound { kind: "API", .. }),
        "{err}"
    );
    assert!(err.to_string().contains("certbound api list"), "{err}");
    let err = reg
        .set_grant("sensors", API, "firmware:read")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not defined by API"), "{err}");
    let err = reg.set_grant("sensors", API, "  ").await.unwrap_err();
    assert!(err.to_string().contains("names no scopes"), "{err}");
    // Nothing changed by the refused calls.
    assert_eq!(grants_of(&reg, "sensors").await.unwrap().len(), 2);
    reg.close().await;
}

async fn remove_grant_keeps_the_group() {
    let (_tmp, reg) = setup().await;
    let change = reg.remove_grant("sensors", API).await.unwrap();
    assert_eq!(
        change.previous,
        Some(vec!["telemetry:write".to_string(), "admin".to_string()])
    );
    assert_eq!(grants_of(&reg, "sensors").await.unwrap(), vec![]);
    assert!(reg.store.group_exists("sensors").await.unwrap());
    assert!(
        actions(&reg)
            .await
            .iter()
            .any(|(a, s, _)| a == "group.grant_removed" && s == "sensors")
    );
    let err = reg.remove_grant("sensors", API).await.unwrap_err();
    assert!(matches!(err, RegistryError::NotFound { .. }), "{err}");
    let err = reg.remove_grant("nope", API).await.unwrap_err();
    assert!(
        matches!(err, RegistryError::NotFound { kind: "group", .. }),
        "{err}"
    );
    reg.close().await;
}

certbound_registry::store::on_every_backend!(
    set_api_ttl_changes_the_lifetime_and_audits,
    set_api_ttl_of_an_unknown_api,
    delete_group_refuses_with_members_unless_forced,
    delete_empty_and_unknown_groups,
    delete_group_used_by_a_claim_is_refused_even_forced,
    set_grant_replaces_or_adds_and_validates,
    remove_grant_keeps_the_group
);
