//! API keys in policy as code (`[[apikey]]`): export never holds a key,
//! apply creates new keys (printed once), changes grants and expiry of
//! existing ones without changing the key, and revokes absent ones; bad
//! keys in a document are refused before anything is written.

mod policy_common;

use certbound_registry::credentials::hash_secret;
use certbound_registry::policy::{self, PolicyDoc};
use certbound_registry::registry::ADMIN_API;
use policy_common::*;

async fn api_keys_round_trip_through_policy() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = populated(&tmp.path().join("a")).await;
    let made = reg
        .create_api_key("nightly", &[(TEL.into(), "telemetry:read".into())], None)
        .await
        .unwrap();
    let text = export_text(&reg).await;
    assert!(
        text.contains("[[apikey]]") && text.contains("name = \"nightly\""),
        "{text}"
    );
    assert!(!text.contains(&made.api_key[4..]) && !text.contains(&hash_secret(&made.api_key)));
    // Re-applying the export changes nothing.
    let doc = PolicyDoc::parse(&text, |_| None).unwrap();
    assert!(policy::plan(&reg.store, &doc).await.unwrap().is_empty());

    // Change nightly (grant, expiry), add weekly, then drop nightly.
    let changed = text.replace(
        "name = \"nightly\"",
        "name = \"nightly\"\nexpires = \"2099-01-01T00:00:00Z\"",
    ) + "\n[[apikey]]\nname = \"weekly\"\n\n[[apikey.grant]]\napi = \"https://firmware.example.com\"\nscopes = [\"firmware:read\"]\n";
    let doc = PolicyDoc::parse(&changed, |_| None).unwrap();
    let plan = policy::plan(&reg.store, &doc).await.unwrap();
    let rendered = plan.render();
    assert!(
        rendered.contains("~ apikey nightly: expires never -> 2099-01-01T00:00:00Z"),
        "{rendered}"
    );
    assert!(rendered.contains("+ apikey weekly"), "{rendered}");
    let applied = policy::apply(&reg.store, &doc, "test", yes())
        .await
        .unwrap();
    assert_eq!(applied.created_api_keys.len(), 1);
    let weekly = &applied.created_api_keys[0];
    assert_eq!(weekly.name, "weekly");
    assert!(weekly.api_key.starts_with("cbk_"));
    // nightly kept its key (same hash), with the new expiry.
    let k = reg
        .store
        .api_key_by_hash(&hash_secret(&made.api_key))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(k.expires_at, Some(4_070_908_800));
    assert!(policy::plan(&reg.store, &doc).await.unwrap().is_empty());

    // A document without nightly revokes it.
    let mut doc = doc;
    doc.apikey.retain(|k| k.name != "nightly");
    let applied = policy::apply(&reg.store, &doc, "test", yes())
        .await
        .unwrap();
    assert!(applied.plan.render().contains("- apikey nightly"));
    let k = reg
        .store
        .api_key_by_hash(&hash_secret(&made.api_key))
        .await
        .unwrap();
    assert!(k.is_none(), "a revoked key's hash is cleared");
    let names: Vec<String> = reg
        .list_api_keys(false)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.name)
        .collect();
    assert_eq!(names, ["weekly"]);
}

async fn bad_api_keys_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = populated(&tmp.path().join("a")).await;
    let before = export_text(&reg).await;
    let grant = |api: &str| format!("\n[[apikey.grant]]\napi = \"{api}\"\nscopes = [\"x\"]\n");
    for bad in [
        // The admin API is never granted to a key.
        format!("{before}\n[[apikey]]\nname = \"k\"\n{}", grant(ADMIN_API)),
        // At least one grant.
        format!("{before}\n[[apikey]]\nname = \"k\"\n"),
        // An API not in the policy.
        format!(
            "{before}\n[[apikey]]\nname = \"k\"\n{}",
            grant("https://unknown.example.com")
        ),
        // A bad name, a bad expiry, an expiry in the past.
        format!("{before}\n[[apikey]]\nname = \"a b\"\n{}", grant(TEL)),
        format!(
            "{before}\n[[apikey]]\nname = \"k\"\nexpires = \"tomorrow\"\n{}",
            grant(TEL)
        ),
        format!(
            "{before}\n[[apikey]]\nname = \"k\"\nexpires = \"2001-01-01T00:00:00Z\"\n{}",
            grant(TEL)
        ),
        // Twice the same name.
        format!(
            "{before}\n[[apikey]]\nname = \"k\"\n{}\n[[apikey]]\nname = \"k\"\n{}",
            grant(TEL),
            grant(TEL)
        ),
    ] {
        let doc = PolicyDoc::parse(&bad, |_| None).unwrap();
        assert!(
            policy::apply(&reg.store, &doc, "test", yes())
                .await
                .is_err(),
            "accepted:\n{bad}"
        );
    }
    assert_eq!(export_text(&reg).await, before);
    assert!(reg.list_api_keys(true).await.unwrap().is_empty());
}

/// `[[apikey]] roles` and `attributes`: applied, exported back, and the
/// key's effective grants are its own and its roles'.
async fn api_keys_hold_roles_and_attributes_in_policy() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = populated(&tmp.path().join("a")).await;
    let mut doc = policy::export(&reg.store).await.unwrap();
    doc.role.push(policy::RoleSpec {
        name: "fw-reader".into(),
        description: String::new(),
        grant: vec![policy::GrantSpec {
            api: FW.into(),
            scopes: vec!["firmware:read".into()],
        }],
    });
    let text = doc.to_toml().unwrap()
        + "\n[[apikey]]\nname = \"job\"\nroles = [\"fw-reader\"]\nattributes = { site = \"berlin\", floor = 3 }\n\n[[apikey.grant]]\napi = \"https://telemetry.example.com\"\nscopes = [\"telemetry:read\"]\n";
    let doc = PolicyDoc::parse(&text, |_| None).unwrap();
    let applied = policy::apply(&reg.store, &doc, "test", yes())
        .await
        .unwrap();
    let rendered = applied.plan.render();
    assert!(
        rendered.contains("+ role fw-reader") && rendered.contains("attributes"),
        "{rendered}"
    );
    let key = reg.store.api_key_by_name("job").await.unwrap().unwrap();
    let roles = reg
        .store
        .roles_of(certbound_registry::store::RoleHolder::ApiKey(&key.id))
        .await
        .unwrap();
    assert_eq!(roles, ["fw-reader"]);
    let attrs = reg
        .store
        .attributes(certbound_registry::store::AttrHolder::ApiKey, &key.id)
        .await
        .unwrap();
    assert_eq!(attrs.summary(), "floor=3 site=\"berlin\"", "{attrs:?}");
    let exported = export_text(&reg).await;
    assert!(
        exported.contains("roles = [\"fw-reader\"]") && exported.contains("site = \"berlin\""),
        "{exported}"
    );
    // The export applies to no change.
    let again = PolicyDoc::parse(&exported, |_| None).unwrap();
    let plan = policy::plan(&reg.store, &again).await.unwrap();
    assert!(plan.is_empty(), "{}", plan.render());
    // A role the document does not define is refused.
    let bad = text.replace("roles = [\"fw-reader\"]", "roles = [\"nobody\"]");
    let bad = PolicyDoc::parse(&bad, |_| None).unwrap();
    assert!(policy::plan(&reg.store, &bad).await.is_err());
}

certbound_registry::store::on_every_backend!(
    api_keys_round_trip_through_policy,
    bad_api_keys_are_refused,
    api_keys_hold_roles_and_attributes_in_policy
);
