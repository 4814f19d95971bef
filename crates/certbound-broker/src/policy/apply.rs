//! `apply`: the store made to match a document in one transaction.

use serde::Serialize;
use sqlx::AnyConnection as SqliteConnection;

use super::clients::apply_clients;
use super::plan::{Op, Plan, diff};
use super::state::admin_scopes;
use super::validate::validate;
use super::{GrantSpec, PolicyDoc};
use crate::clock::unix_now;
use crate::error::BrokerError;
use crate::registry::CreatedClient;
use crate::store::Store;

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
) -> Result<Applied, BrokerError> {
    let mut desired = desired.clone();
    let mut tx = store.policy_write().await?;
    let admin = admin_scopes(&mut tx).await?;
    validate(&mut desired, &admin)?;
    let (plan, stored) = diff(&mut tx, &mut desired).await?;
    if !options.prune && !plan.needs_prune.is_empty() {
        return Err(BrokerError::Invalid(format!(
            "refusing to remove without --prune: {}",
            plan.needs_prune.join("; ")
        )));
    }
    if options.dry_run || plan.is_empty() {
        tx.rollback().await?;
        return Ok(Applied {
            plan,
            created_clients: vec![],
        });
    }
    let now = unix_now();
    let now_i = i64::try_from(now).unwrap_or(i64::MAX);
    let conn: &mut SqliteConnection = &mut tx;

    // APIs first (grants below refer to them), removals last.
    for a in &desired.api {
        sqlx::query(
            "INSERT INTO apis (id, format, ttl_secs, scopes, created_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT(id) DO UPDATE SET format = $2, ttl_secs = $3, scopes = $4",
        )
        .bind(&a.id)
        .bind(&a.format)
        .bind(i64::try_from(a.ttl_secs).unwrap_or(i64::MAX))
        .bind(a.scopes.join(" "))
        .bind(now_i)
        .execute(&mut *conn)
        .await?;
    }
    for g in &desired.group {
        if !plan_changes(&plan, "group", &g.name) {
            continue;
        }
        sqlx::query(
            "INSERT INTO groups (name, created_at) VALUES ($1, $2) ON CONFLICT(name) DO NOTHING",
        )
        .bind(&g.name)
        .bind(now_i)
        .execute(&mut *conn)
        .await?;
        sqlx::query("DELETE FROM grants WHERE group_name = $1")
            .bind(&g.name)
            .execute(&mut *conn)
            .await?;
        for (api, scopes) in grant_rows(&g.grant) {
            sqlx::query("INSERT INTO grants (group_name, api_id, scopes) VALUES ($1, $2, $3)")
                .bind(&g.name)
                .bind(api)
                .bind(scopes)
                .execute(&mut *conn)
                .await?;
        }
    }
    let created = apply_clients(conn, &plan, &stored, &desired.client, now).await?;
    for ch in plan
        .changes
        .iter()
        .filter(|c| c.op == Op::Remove && c.kind == "group")
    {
        sqlx::query("DELETE FROM groups WHERE name = $1")
            .bind(&ch.name)
            .execute(&mut *conn)
            .await?;
    }
    // APIs last: by now no grant in the target state names them.
    for ch in plan
        .changes
        .iter()
        .filter(|c| c.op == Op::Remove && c.kind == "api")
    {
        sqlx::query("DELETE FROM apis WHERE id = $1")
            .bind(&ch.name)
            .execute(&mut *conn)
            .await?;
    }
    for ch in &plan.changes {
        let op = match ch.op {
            Op::Add => "created",
            Op::Change => "changed",
            Op::Remove => "removed",
        };
        sqlx::query(
            "INSERT INTO audit_events (ts, actor, action, subject, outcome, detail) \
             VALUES ($1, $2, $3, $4, 'ok', $5)",
        )
        .bind(i64::try_from(now.saturating_mul(1000)).unwrap_or(i64::MAX))
        .bind(actor)
        .bind(format!("policy.{}.{op}", ch.kind))
        .bind(&ch.name)
        .bind(ch.details.join("; "))
        .execute(&mut *conn)
        .await?;
    }
    tx.commit().await?;
    Ok(Applied {
        plan,
        created_clients: created,
    })
}

/// Whether the plan adds or changes `kind` `name`.
pub(super) fn plan_changes(plan: &Plan, kind: &str, name: &str) -> bool {
    plan.changes
        .iter()
        .any(|c| c.kind == kind && c.name == name && c.op != Op::Remove)
}
