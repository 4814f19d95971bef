//! Roles in policy as code: export / apply round trip, plans of role
//! changes (and of the roles groups and clients hold), validation, and the
//! effective permissions of the applied holders.

mod policy_common;

use certbound_registry::policy::{self, Op, PolicyDoc};
use policy_common::*;

const DOC: &str = r#"
[[api]]
id = "https://telemetry.example.com"
scopes = ["telemetry:read", "telemetry:write"]

[[api]]
id = "https://firmware.example.com"
scopes = ["firmware:read"]

[[role]]
name = "reader"
description = "reads everything"
[[role.grant]]
api = "https://telemetry.example.com"
scopes = ["telemetry:read"]
[[role.grant]]
api = "https://firmware.example.com"
scopes = ["firmware:read"]

[[role]]
name = "writer"
[[role.grant]]
api = "https://telemetry.example.com"
scopes = ["telemetry:write"]

[[group]]
name = "sensors"
roles = ["writer"]

[[client]]
name = "etl"
roles = ["reader", "writer"]
"#;

async fn roles_round_trip_and_grant_their_holders() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = fresh(&tmp.path().join("a")).await;
    let doc = PolicyDoc::parse(DOC, |_| None).unwrap();
    let applied = policy::apply(&reg.store, &doc, "test", yes())
        .await
        .unwrap();
    let kinds: Vec<(&str, Op)> = applied
        .plan
        .changes
        .iter()
        .map(|c| (c.kind, c.op))
        .collect();
    assert_eq!(
        kinds,
        [
            ("api", Op::Add),
            ("api", Op::Add),
            ("role", Op::Add),
            ("role", Op::Add),
            ("group", Op::Add),
            ("client", Op::Add)
        ],
        "{}",
        applied.plan.render()
    );
    // The client's effective permissions: the union of both roles.
    let etl = reg.find_client("etl").await.unwrap();
    assert_eq!(etl.roles, ["reader", "writer"]);
    let mut tel = etl.granted_for(TEL).unwrap();
    tel.sort();
    assert_eq!(tel, ["telemetry:read", "telemetry:write"]);
    assert_eq!(etl.granted_for(FW).unwrap(), ["firmware:read"]);
    assert_eq!(reg.group_roles("sensors").await.unwrap(), ["writer"]);

    // Export gives back the same document; a second apply does nothing.
    let text = export_text(&reg).await;
    assert!(
        text.contains("[[role]]") && text.contains("roles = [\"writer\"]"),
        "{text}"
    );
    assert_eq!(PolicyDoc::parse(&text, |_| None).unwrap(), {
        let mut d = doc.clone();
        d.api.sort_by(|a, b| a.id.cmp(&b.id));
        for r in &mut d.role {
            r.grant.sort_by(|a, b| a.api.cmp(&b.api));
        }
        d.client[0].auth_method = Some(certbound_registry::store::ClientAuthMethod::ClientSecret);
        d
    });
    assert!(policy::plan(&reg.store, &doc).await.unwrap().is_empty());

    // A role's grant changed and a holder's roles changed: both planned,
    // and applied.
    let changed = DOC
        .replace(
            "scopes = [\"telemetry:read\"]\n[[role.grant]]",
            "scopes = [\"telemetry:read\", \"telemetry:write\"]\n[[role.grant]]",
        )
        .replace("roles = [\"reader\", \"writer\"]", "roles = [\"reader\"]");
    let doc2 = PolicyDoc::parse(&changed, |_| None).unwrap();
    let plan = policy::plan(&reg.store, &doc2).await.unwrap();
    let text = plan.render();
    assert!(text.contains("~ role reader: grant https://telemetry.example.com scopes telemetry:read -> telemetry:read telemetry:write"), "{text}");
    assert!(text.contains("~ client etl: - role writer"), "{text}");
    policy::apply(&reg.store, &doc2, "test", yes())
        .await
        .unwrap();
    let etl = reg.find_client("etl").await.unwrap();
    assert_eq!(etl.roles, ["reader"]);
    let mut tel = etl.granted_for(TEL).unwrap();
    tel.sort();
    assert_eq!(
        tel,
        ["telemetry:read", "telemetry:write"],
        "now from reader alone"
    );

    // A role no holder names any more can be removed by the policy.
    let removed = changed.replace("roles = [\"writer\"]", "");
    let start = removed.find("[[role]]\nname = \"writer\"").unwrap();
    let end = removed[start..].find("[[group]]").unwrap() + start;
    let removed = format!("{}{}", &removed[..start], &removed[end..]);
    let doc3 = PolicyDoc::parse(&removed, |_| None).unwrap();
    let plan = policy::apply(&reg.store, &doc3, "test", yes())
        .await
        .unwrap()
        .plan;
    assert!(
        plan.changes
            .iter()
            .any(|c| c.kind == "role" && c.op == Op::Remove && c.name == "writer"),
        "{}",
        plan.render()
    );
    assert!(reg.role("writer").await.is_err());
    assert!(reg.group_roles("sensors").await.unwrap().is_empty());
}

async fn invalid_roles_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = fresh(&tmp.path().join("a")).await;
    for (edit, expect) in [
        (
            DOC.replace("roles = [\"writer\"]", "roles = [\"nobody\"]"),
            "role \"nobody\" is not defined",
        ),
        (
            DOC.replace(
                "roles = [\"reader\", \"writer\"]",
                "roles = [\"reader\", \"reader\"]",
            ),
            "listed twice",
        ),
        (
            DOC.replace("name = \"writer\"", "name = \"reader\""),
            "role reader is defined twice",
        ),
        (
            DOC.replace(
                "scopes = [\"telemetry:write\"]\n\n[[group]]",
                "scopes = [\"telemetry:admin\"]\n\n[[group]]",
            ),
            "is not defined by the API",
        ),
    ] {
        let doc = PolicyDoc::parse(&edit, |_| None).unwrap();
        let e = policy::apply(&reg.store, &doc, "test", yes())
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains(expect), "{expect}: {e}");
    }
    assert!(
        reg.list_roles().await.unwrap().is_empty(),
        "nothing applied"
    );
}

certbound_registry::store::on_every_backend!(
    roles_round_trip_and_grant_their_holders,
    invalid_roles_are_refused
);
