//! Policy as code (`certbound_registry::policy`): export / apply round trip,
//! plans of every kind of change, atomic failure, env substitution. Client
//! authentication methods: `policy_clients.rs`.

mod policy_common;

use certbound_registry::policy::{self, ApplyOptions, Op, PolicyDoc};
use certbound_registry::registry::ADMIN_API;
use policy_common::*;

async fn round_trip_through_an_empty_data_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let a = populated(&tmp.path().join("a")).await;
    let text = export_text(&a).await;
    assert!(!text.contains(ADMIN_API), "{text}");
    assert!(!text.contains("name = \"admin\""), "{text}");
    assert!(!text.contains("secret ="), "{text}");
    assert!(!text.contains("secret_hash"), "{text}");
    assert!(text.contains("[[group.grant]]"), "{text}");

    let b = fresh(&tmp.path().join("b")).await;
    let doc = PolicyDoc::parse(&text, |_| None).unwrap();
    let applied = policy::apply(&b.store, &doc, "test", yes()).await.unwrap();
    assert_eq!(applied.plan.changes.len(), 6, "{}", applied.plan.render());
    assert!(applied.plan.changes.iter().all(|c| c.op == Op::Add));
    // The secret client gets a secret, the mTLS client none.
    let mut created = applied.created_clients.clone();
    created.sort_by(|x, y| x.name.cmp(&y.name));
    assert_eq!(created.len(), 2);
    assert!(created[0].client_secret.is_some());
    assert!(created[1].client_secret.is_none());
    assert_eq!(
        created[1].tls_subject.as_deref(),
        Some("CN=updater,O=Example")
    );
    // The created clients work like ones made by `client create`.
    let c = b.find_client("reporting").await.unwrap();
    assert!(c.is_active() && c.has_secret);
    assert_eq!(c.granted_for(TEL).unwrap(), ["telemetry:read"]);

    assert_eq!(export_text(&b).await, text);
    // Identical state: nothing to do, on both sides.
    assert!(policy::plan(&a.store, &doc).await.unwrap().is_empty());
    assert!(policy::plan(&b.store, &doc).await.unwrap().is_empty());
    let again = policy::apply(&b.store, &doc, "test", yes()).await.unwrap();
    assert!(again.plan.is_empty() && again.created_clients.is_empty());
    // The admin API and client survive a policy that does not mention them.
    assert!(b.store.get_api(ADMIN_API).await.unwrap().is_some());
    assert!(b.find_client("admin").await.unwrap().is_active());
}

async fn plan_shows_each_kind_of_change() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = populated(&tmp.path().join("a")).await;
    let mut doc = policy::export(&reg.store).await.unwrap();
    // ~ api: ttl and scopes; + api; - group readers; ~ group sensors grant;
    // + group; - client reporting; ~ client updater; + client.
    doc.api[1].ttl_secs = 300; // telemetry (sorted by id: firmware, telemetry)
    assert_eq!(doc.api[1].id, TEL);
    doc.api.push(policy::ApiSpec {
        id: "https://new.example.com".into(),
        scopes: vec!["x".into()],
        ttl_secs: 60,
        format: "cwt".into(),
        alg: None,
        claim: vec![],
    });
    doc.group.retain(|g| g.name != "readers");
    let sensors = doc.group.iter_mut().find(|g| g.name == "sensors").unwrap();
    sensors.grant[0].scopes = vec!["firmware:read".into(), "firmware:write".into()];
    doc.group.push(policy::GroupSpec {
        name: "gateways".into(),
        attributes: Default::default(),
        grant: vec![policy::GrantSpec {
            api: "https://new.example.com".into(),
            scopes: vec!["x".into()],
        }],
        ..Default::default()
    });
    doc.client.retain(|c| c.name != "reporting");
    doc.client[0].tls_subject = Some("CN=updater2".into());
    doc.client.push(policy::ClientSpec {
        name: "billing".into(),
        ..Default::default()
    });
    let plan = policy::plan(&reg.store, &doc).await.unwrap();
    let text = plan.render();
    println!("{text}");
    for line in [
        "~ api https://telemetry.example.com: ttl_secs 600 -> 300",
        "+ api https://new.example.com: scopes x ttl_secs 60 format cwt",
        "- group readers",
        "~ group sensors: grant https://firmware.example.com scopes firmware:read -> firmware:read firmware:write",
        "+ group gateways: + grant https://new.example.com scopes x",
        "- client reporting",
        "~ client updater: tls_subject \"CN=updater,O=Example\" -> \"CN=updater2\"",
        "+ client billing: secret (printed once by apply)",
        "Plan: 3 to add, 3 to change, 2 to remove.",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    // Plan writes nothing.
    let before = export_text(&reg).await;
    assert_ne!(PolicyDoc::parse(&before, |_| None).unwrap(), doc);
    let applied = policy::apply(&reg.store, &doc, "test", yes())
        .await
        .unwrap();
    assert_eq!(applied.plan, plan);
    assert!(policy::plan(&reg.store, &doc).await.unwrap().is_empty());
    // The removed client is deleted like `client delete` (name freed).
    assert!(reg.find_client("reporting").await.is_err());
}

async fn failed_apply_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = populated(&tmp.path().join("a")).await;
    let before = export_text(&reg).await;
    let audit_before = reg.store.recent_audit(None, 1000).await.unwrap().len();

    let bad = [
        // A grant naming an API that is not in the target state (and a
        // valid change before it that must not happen either).
        format!(
            "{before}\n[[group]]\nname = \"extra\"\n[[group.grant]]\napi = \"https://unknown.example.com\"\nscopes = [\"x\"]\n"
        ),
        // Removing an API that a kept group still grants.
        before.replacen(
            &format!("[[api]]\nid = \"{FW}\""),
            "[[api]]\nid = \"https://other.example.com\"",
            1,
        ),
        // A scope the API does not define.
        before.replacen(
            "scopes = [\"firmware:read\"]",
            "scopes = [\"firmware:delete\"]",
            1,
        ),
        // Duplicate names, invalid names, the built-in admin API.
        format!("{before}\n[[group]]\nname = \"sensors\"\n"),
        format!("{before}\n[[group]]\nname = \"has space\"\n"),
        format!("{before}\n[[api]]\nid = \"{ADMIN_API}\"\nscopes = [\"a\"]\n"),
        format!("{before}\n[[client]]\nname = \"admin\"\n"),
        format!("{before}\n[[api]]\nid = \"https://x\"\nscopes = [\"a\"]\nformat = \"xml\"\n"),
        format!("{before}\n[[api]]\nid = \"https://x\"\nscopes = [\"a b\"]\n"),
    ];
    for (i, text) in bad.iter().enumerate() {
        let doc = PolicyDoc::parse(text, |_| None)
            .unwrap_or_else(|e| panic!("case {i} should parse: {e}"));
        let err = policy::apply(&reg.store, &doc, "test", yes()).await;
        assert!(err.is_err(), "case {i} applied:\n{text}");
        assert!(policy::plan(&reg.store, &doc).await.is_err(), "case {i}");
        assert_eq!(
            export_text(&reg).await,
            before,
            "case {i} changed the store"
        );
    }
    // An undefined ${VAR} fails at parse time, naming the variable.
    let text =
        format!("{before}\n[[api]]\nid = \"${{CB_TEST_UNDEFINED_HOST}}\"\nscopes = [\"a\"]\n");
    let err = PolicyDoc::parse(&text, |_| None).unwrap_err().to_string();
    assert!(err.contains("CB_TEST_UNDEFINED_HOST"), "{err}");
    assert_eq!(export_text(&reg).await, before);
    assert_eq!(
        reg.store.recent_audit(None, 1000).await.unwrap().len(),
        audit_before
    );
}

async fn removing_inventory_needs_prune() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = populated(&tmp.path().join("a")).await;
    reg.provision_device(
        "sensor-1",
        &["readers".into()],
        &tmp.path().join("devices"),
        None,
    )
    .await
    .unwrap();
    let mut doc = policy::export(&reg.store).await.unwrap();
    doc.group.retain(|g| g.name != "readers");
    let plan = policy::plan(&reg.store, &doc).await.unwrap();
    assert_eq!(plan.needs_prune.len(), 1, "{}", plan.render());
    let before = export_text(&reg).await;
    let err = policy::apply(&reg.store, &doc, "test", yes())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("--prune") && err.contains("readers"), "{err}");
    assert_eq!(export_text(&reg).await, before);
    let prune = ApplyOptions {
        prune: true,
        ..ApplyOptions::default()
    };
    policy::apply(&reg.store, &doc, "test", prune)
        .await
        .unwrap();
    let (device, _) = reg.show_device("sensor-1").await.unwrap();
    assert!(device.groups.is_empty());
}

async fn env_substitution() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = fresh(&tmp.path().join("a")).await;
    let text = r#"
[[api]]
id = "https://${CB_HOST}/api"
scopes = ["read", "cost$${USD}"]
ttl_secs = 120

[[client]]
name = "svc-${CB_ENV}"
tls_subject = "CN=svc,O=${CB_ORG}"
[[client.grant]]
api = "https://${CB_HOST}/api"
scopes = ["read"]
"#;
    let vars = |k: &str| match k {
        "CB_HOST" => Some("api.example.com".to_string()),
        "CB_ENV" => Some("prod".to_string()),
        "CB_ORG" => Some("Example".to_string()),
        _ => None,
    };
    let doc = PolicyDoc::parse(text, vars).unwrap();
    assert_eq!(doc.api[0].id, "https://api.example.com/api");
    assert_eq!(doc.api[0].scopes[1], "cost${USD}");
    assert_eq!(doc.api[0].format, "cwt");
    policy::apply(&reg.store, &doc, "test", yes())
        .await
        .unwrap();
    let c = reg.find_client("svc-prod").await.unwrap();
    assert_eq!(c.tls_subject.as_deref(), Some("CN=svc,O=Example"));
    assert!(!c.has_secret);
    // The export escapes `${` so it reads back to the same value.
    let out = export_text(&reg).await;
    assert!(out.contains("cost$${USD}"), "{out}");
    assert!(
        policy::plan(&reg.store, &PolicyDoc::parse(&out, |_| None).unwrap())
            .await
            .unwrap()
            .is_empty()
    );
    let err = PolicyDoc::parse(text, |k| (k == "CB_HOST").then(|| "h".to_string()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("CB_ENV"), "{err}");
}

async fn a_write_that_fails_mid_transaction_rolls_back() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = populated(&tmp.path().join("a")).await;
    reg.create_client("other", &[], Some("CN=other"), false)
        .await
        .unwrap();
    let before = export_text(&reg).await;
    // Swapping two clients' TLS subjects passes validation but hits the
    // unique index in the middle of the writes (after the API change).
    let text = before
        .replace("ttl_secs = 600", "ttl_secs = 300")
        .replace("CN=other", "CN=tmp")
        .replace("CN=updater,O=Example", "CN=other")
        .replace("CN=tmp", "CN=updater,O=Example");
    let doc = PolicyDoc::parse(&text, |_| None).unwrap();
    let plan = policy::plan(&reg.store, &doc).await.unwrap();
    assert_eq!(plan.changes.len(), 3, "{}", plan.render());
    assert!(
        policy::apply(&reg.store, &doc, "test", yes())
            .await
            .is_err()
    );
    assert_eq!(export_text(&reg).await, before);
}

certbound_registry::store::on_every_backend!(
    round_trip_through_an_empty_data_dir,
    plan_shows_each_kind_of_change,
    failed_apply_changes_nothing,
    removing_inventory_needs_prune,
    env_substitution,
    a_write_that_fails_mid_transaction_rolls_back
);
