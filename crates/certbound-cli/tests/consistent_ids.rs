//! Every command acting on one existing object takes it as its first
//! argument or with the flag that named it at creation (`--id` for devices
//! and clients, `--name` for groups, roles, API keys, services and trusted
//! CAs): both forms do the same, giving both or neither is a usage error.

mod common;

use common::{API, QuickStart, certbound, ok};

fn json(args: &[&str]) -> serde_json::Value {
    let out = ok(args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn usage_error(args: &[&str]) -> String {
    let out = certbound(args);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{args:?} should be a usage error"
    );
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn objects_are_named_positionally_or_by_their_creation_flag() {
    let qs = QuickStart::new();
    let d = qs.d();
    // Devices: --id or positional.
    let by_flag = json(&["device", "show", "--dir", d, "--id", "sensor-1", "--json"]);
    let by_arg = json(&["device", "show", "--dir", d, "sensor-1", "--json"]);
    assert_eq!(by_flag, by_arg);
    ok(&["device", "suspend", "--dir", d, "--id", "sensor-1"]);
    assert_eq!(
        json(&["device", "show", "--dir", d, "sensor-1", "--json"])["device"]["status"],
        "suspended"
    );
    ok(&["device", "resume", "--dir", d, "sensor-1"]);
    assert_eq!(
        json(&["device", "show", "--dir", d, "--id", "sensor-1", "--json"])["device"]["status"],
        "active"
    );
    let both = usage_error(&["device", "show", "--dir", d, "sensor-1", "--id", "sensor-1"]);
    assert!(both.contains("cannot be used with"), "{both}");
    let neither = usage_error(&["device", "revoke", "--dir", d]);
    assert!(neither.contains("--id"), "{neither}");
    ok(&[
        "device", "revoke", "--dir", d, "--id", "sensor-1", "--reason", "test",
    ]);
    assert_eq!(
        json(&["device", "show", "--dir", d, "sensor-1", "--json"])["device"]["status"],
        "revoked"
    );

    // Groups: --name (as at creation) or positional.
    ok(&[
        "group",
        "create",
        "--dir",
        d,
        "--name",
        "spare",
        "--grant",
        &format!("{API}=telemetry:write"),
    ]);
    ok(&[
        "group",
        "grant",
        "--dir",
        d,
        "spare",
        "--api",
        API,
        "--scopes",
        "firmware:read",
    ]);
    ok(&[
        "group",
        "revoke-grant",
        "--dir",
        d,
        "--name",
        "spare",
        "--api",
        API,
    ]);
    ok(&["group", "delete", "--dir", d, "spare"]);
    let groups = ok(&["group", "list", "--dir", d, "--json"]);
    assert!(!groups.contains("spare"), "{groups}");

    // Roles.
    ok(&[
        "role",
        "create",
        "--dir",
        d,
        "--name",
        "reader",
        "--grant",
        &format!("{API}=firmware:read"),
    ]);
    ok(&["role", "assign", "--dir", d, "reader", "--group", "sensors"]);
    ok(&[
        "role", "unassign", "--dir", d, "--name", "reader", "--group", "sensors",
    ]);
    ok(&["role", "delete", "--dir", d, "reader"]);

    // Clients: --id (client_id or name) or positional.
    let c = json(&[
        "client",
        "create",
        "--dir",
        d,
        "--name",
        "ingester",
        "--grant",
        &format!("{API}=telemetry:write"),
        "--json",
    ]);
    let id = c["client_id"].as_str().unwrap().to_string();
    let s1 = json(&["client", "rotate-secret", "--dir", d, "--id", &id, "--json"]);
    let s2 = json(&["client", "rotate-secret", "--dir", d, &id, "--json"]);
    assert_ne!(s1["client_secret"], s2["client_secret"]);
    ok(&["client", "delete", "--dir", d, "--id", "ingester"]);

    // API keys: --name or positional.
    ok(&[
        "apikey",
        "create",
        "--dir",
        d,
        "--name",
        "nightly",
        "--grant",
        &format!("{API}=firmware:read"),
    ]);
    ok(&["apikey", "revoke", "--dir", d, "--name", "nightly"]);
    let active = json(&["apikey", "list", "--dir", d, "--json"]);
    assert!(!active.to_string().contains("nightly"), "{active}");
    let all = json(&["apikey", "list", "--dir", d, "--all", "--json"]);
    assert!(all.to_string().contains("nightly"), "{all}");
}
