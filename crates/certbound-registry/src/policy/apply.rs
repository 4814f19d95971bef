//! `apply`: the store made to match a document in one transaction.

use serde::Serialize;

use super::clients::apply_clients;
use super::plan::{Op, Plan, diff};
use super::state::{admin_scopes, store_grants};
use super::validate::validate;
use super::{GrantSpec, PolicyDoc};
use crate::clock::unix_now;
use crate::error::RegistryError;
use crate::registry::{CreatedApiKey, CreatedClient};
use crate::store::policy::{self as db, PolicyConn};
use crate::store::{Api, RoleHolder, Store};

/// Options of [`apply`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ApplyOptions {
    /// Also remove groups that devices belong to and APIs with unexpired tokens.
    pub prune: bool,
    /// Validate and compute the plan only; write nothing.
    pub dry_run: bool,
}

/// The outcome of [`apply`].
#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    /// What was (or, on a dry run, would be) done.
    pub plan: Plan,
    /// Clients created, with their secrets (shown only here).
    pub created_clients: Vec<CreatedClient>,
    /// API keys created, with their keys (shown only here).
    pub created_api_keys: Vec<CreatedApiKey>,
}

pub(super) fn grant_rows(grants: &[GrantSpec]) -> impl Iterator<Item = (&str, String)> {
    grants.iter().map(|g| (g.api.as_str(), g.scopes.join(" ")))
}

/// Makes the store match `desired` in one `BEGIN IMMEDIATE` transaction
/// (validation, diff and writes under the same lock). `actor` is recorded
/// in the audit log. On any error nothing is changed.
pub async fn apply(
    store: &Store,
    desired: &PolicyDoc,
    actor: &str,
    options: ApplyOptions,
) -> Result<Applied, RegistryError> {
    let mut desired = desired.clone();
    let mut tx = store.policy_write().await?;
    let admin = admin_scopes(&mut tx).await?;
    validate(&mut desired, &admin)?;
    let (plan, stored) = diff(&mut tx, &mut desired).await?;
    if !options.prune && !plan.needs_prune.is_empty() {
        return Err(RegistryError::Invalid(format!(
            "refusing to remove without --prune: {}",
            plan.needs_prune.join("; ")
        )));
    }
    if options.dry_run || plan.is_empty() {
        tx.rollback().await?;
        return Ok(Applied {
            plan,
            created_clients: vec![],
            created_api_keys: vec![],
        });
    }
    let now = unix_now();
    let conn: &mut PolicyConn = &mut tx;

    // APIs first (grants below refer to them), removals last.
    for a in &desired.api {
        let api = Api {
            id: a.id.clone(),
            format: a.format.clone(),
            ttl_secs: a.ttl_secs,
            scopes: a.scopes.clone(),
        };
        db::upsert_api(conn, &api, now).await?;
        crate::store::signing_algs::write_api_signing_alg(conn, &a.id, a.alg.as_deref()).await?;
    }
    super::roles::apply_roles(conn, &plan, &desired.role, now).await?;
    for g in &desired.group {
        if !plan_changes(&plan, "group", &g.name) {
            continue;
        }
        db::replace_group(conn, &g.name, &store_grants(&g.grant), now).await?;
        db::replace_roles_of(conn, RoleHolder::Group(&g.name), &g.roles).await?;
    }
    let created = apply_clients(conn, &plan, &stored, &desired.client, now).await?;
    let keys = super::api_keys::read_keys(conn).await?;
    let created_keys =
        super::api_keys::apply_keys(conn, &plan, &keys, &desired.apikey, now).await?;
    super::attrs::apply(conn, &desired).await?;
    for ch in plan
        .changes
        .iter()
        .filter(|c| c.op == Op::Remove && c.kind == "group")
    {
        db::delete_group(conn, &ch.name).await?;
    }
    super::roles::remove_roles(conn, &plan).await?;
    // APIs last: by now no grant in the target state names them.
    for ch in plan
        .changes
        .iter()
        .filter(|c| c.op == Op::Remove && c.kind == "api")
    {
        db::delete_api(conn, &ch.name).await?;
    }
    for ch in &plan.changes {
        let op = match ch.op {
            Op::Add => "created",
            Op::Change => "changed",
            Op::Remove => "removed",
        };
        db::record_change(
            conn,
            now.saturating_mul(1000),
            actor,
            &format!("policy.{}.{op}", ch.kind),
            &ch.name,
            &ch.details.join("; "),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Applied {
        plan,
        created_clients: created,
        created_api_keys: created_keys,
    })
}

/// Whether the plan adds or changes `kind` `name`.
pub(super) fn plan_changes(plan: &Plan, kind: &str, name: &str) -> bool {
    plan.changes
        .iter()
        .any(|c| c.kind == kind && c.name == name && c.op != Op::Remove)
}
