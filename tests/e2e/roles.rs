//! Roles (the Logto model) on a running broker, on SQLite and PostgreSQL: a
//! client's and a group's effective permissions are the union of their own
//! grants and the grants of every role they hold, and a change to a role
//! made through another registry connection (as the CLI makes it) reaches
//! the running broker through the change feed from the next token on.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use certbound_broker::store::testing::current;
use certbound_e2e::https::HttpsClient;
use certbound_e2e::{API, Fixture, provision, unix_now};
use certbound_registry::registry::{Registry, RoleTarget};

const REPORTS: &str = "https://reports.example.com";
/// How long a change may take to reach the broker here (the change feed is
/// read every 100 ms; generous for a busy machine).
const BOUND: Duration = Duration::from_secs(20);

fn set(scope: &str) -> BTreeSet<String> {
    scope.split_whitespace().map(str::to_string).collect()
}

/// Polls `scope_now` until it returns `want`; fails after [`BOUND`].
async fn until_scope<F, Fut>(what: &str, want: &str, mut scope_now: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<String>>,
{
    let since = Instant::now();
    loop {
        let got = scope_now().await?;
        if set(&got) == set(want) {
            println!("{what}: {:.1} ms", since.elapsed().as_secs_f64() * 1000.0);
            return Ok(());
        }
        anyhow::ensure!(
            since.elapsed() < BOUND,
            "{what}: scope is {got:?}, not {want:?}, after {BOUND:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn effective_permissions_are_the_union_of_the_roles() {
    run().await.expect("roles on a running broker");
}

async fn run() -> anyhow::Result<()> {
    let fx = Fixture::on_store(current().fresh_url().await, &[]).await?;
    let reg = &fx.registry;
    reg.create_api_with_format(REPORTS, "reports:read reports:write", 600, "jwt")
        .await?;
    // Three roles across two APIs.
    reg.create_role(
        "telemetry-writer",
        "devices and jobs that send telemetry",
        &[(API.into(), "telemetry:write".into())],
    )
    .await?;
    reg.create_role(
        "firmware-reader",
        "",
        &[(API.into(), "firmware:read".into())],
    )
    .await?;
    reg.create_role("reporter", "", &[(REPORTS.into(), "reports:read".into())])
        .await?;

    // A client with one grant of its own and three roles.
    let created = reg
        .create_client(
            "etl",
            &[(REPORTS.into(), "reports:write".into())],
            None,
            true,
        )
        .await?;
    for role in ["telemetry-writer", "firmware-reader", "reporter"] {
        let done = reg
            .assign_role(role, &RoleTarget::Client("etl".into()))
            .await?;
        assert!(done.changed);
    }
    let secret = created.client_secret.context("secret client")?;
    let https = HttpsClient::new(&fx.https_url(), fx.path(), None)?;
    let client_scope = |aud: &'static str| {
        let https = &https;
        let id = created.client_id.clone();
        let secret = secret.clone();
        async move {
            let grant = https.token_with_secret(&id, &secret, aud, None).await?;
            Ok::<_, anyhow::Error>(grant["scope"].as_str().context("scope")?.to_string())
        }
    };
    assert_eq!(
        set(&client_scope(API).await?),
        set("telemetry:write firmware:read"),
        "both roles' grants for the API"
    );
    assert_eq!(
        set(&client_scope(REPORTS).await?),
        set("reports:write reports:read"),
        "its own grant and its role's, for the same API"
    );

    // A group with no grant of its own and two roles.
    reg.create_group("gateways", &[]).await?;
    for role in ["telemetry-writer", "firmware-reader"] {
        reg.assign_role(role, &RoleTarget::Group("gateways".into()))
            .await?;
    }
    let device = provision(reg, "gw-1", &["gateways".into()], &fx.devices_dir()).await?;
    let device_scope = || async {
        let token = fx
            .obtain(&device, &fx.params(Some("telemetry:write firmware:read")))
            .await?;
        let verified = fx
            .verifier
            .verify(&token.access_token, &["telemetry:write"], unix_now())
            .or_else(|_| {
                fx.verifier
                    .verify(&token.access_token, &["firmware:read"], unix_now())
            })?;
        Ok::<_, anyhow::Error>(
            ["telemetry:write", "firmware:read"]
                .into_iter()
                .filter(|s| verified.has_scope(s))
                .collect::<Vec<_>>()
                .join(" "),
        )
    };
    assert_eq!(
        set(&device_scope().await?),
        set("telemetry:write firmware:read")
    );

    // Revoking a role's permission, through another connection as the CLI
    // does: the next tokens of every holder lose it.
    let cli = Registry::open(fx.path()).await?;
    let change = cli.remove_role_grant("firmware-reader", API).await?;
    assert_eq!(change.previous, Some(vec!["firmware:read".to_string()]));
    until_scope("client lost firmware:read", "telemetry:write", || {
        client_scope(API)
    })
    .await?;
    until_scope("device lost firmware:read", "telemetry:write", device_scope).await?;

    // Taking a role away works the same way; and giving a role back.
    cli.unassign_role("reporter", &RoleTarget::Client("etl".into()))
        .await?;
    until_scope("client lost the reporter role", "reports:write", || {
        client_scope(REPORTS)
    })
    .await?;
    cli.set_role_grant("firmware-reader", API, "firmware:read")
        .await?;
    until_scope(
        "device regained firmware:read",
        "telemetry:write firmware:read",
        device_scope,
    )
    .await?;

    // Deleting a held role needs --force; then its holders lose it.
    let refused = cli.delete_role("telemetry-writer", false).await;
    assert!(
        refused.is_err_and(|e| e.to_string().contains("--force")),
        "a held role is not deleted without force"
    );
    cli.delete_role("telemetry-writer", true).await?;
    until_scope(
        "device lost the deleted role",
        "firmware:read",
        device_scope,
    )
    .await?;

    // The audit log names each role change.
    let actions: Vec<String> = cli
        .store
        .recent_audit(None, 1000)
        .await?
        .into_iter()
        .map(|e| e.action)
        .collect();
    for a in [
        "role.created",
        "role.assigned",
        "role.grant_removed",
        "role.unassigned",
        "role.grant_set",
        "role.deleted",
    ] {
        assert!(actions.iter().any(|x| x == a), "audit has {a}: {actions:?}");
    }
    cli.close().await;
    fx.shutdown().await;
    Ok(())
}

certbound_broker::store::on_every_backend!(effective_permissions_are_the_union_of_the_roles);
