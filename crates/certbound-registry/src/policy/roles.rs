//! Roles in a policy: reading, validation (names, grants, and every role a
//! group or client names is defined), the plan's role changes and their
//! writes. Roles are written after the APIs and before the groups and
//! clients that name them; removed roles go last but before removed APIs.

use std::collections::{BTreeMap, BTreeSet};

use super::plan::{Change, Op, Plan, grant_details, words};
use super::state::{grants_of, store_grants};
use super::validate::{ApiScopes, check_grants};
use super::{PolicyDoc, RoleSpec};
use crate::error::RegistryError;
use crate::registry::{MAX_DESCRIPTION, check_token};
use crate::store::policy::{self as db, PolicyConn};

pub(super) async fn read_roles(conn: &mut PolicyConn) -> Result<Vec<RoleSpec>, RegistryError> {
    Ok(db::read_roles(conn)
        .await?
        .into_iter()
        .map(|r| RoleSpec {
            name: r.name,
            description: r.description,
            grant: grants_of(r.grants),
        })
        .collect())
}

/// Checks the roles of `doc` (unique valid names, short descriptions,
/// grants whose scopes the APIs define) and that every role a group or a
/// client holds is one of them, each once.
pub(super) fn validate_roles(doc: &PolicyDoc, apis: &ApiScopes<'_>) -> Result<(), RegistryError> {
    let mut names = BTreeSet::new();
    for r in &doc.role {
        check_token("role name", &r.name)?;
        if !names.insert(r.name.as_str()) {
            return Err(RegistryError::Invalid(format!(
                "role {} is defined twice",
                r.name
            )));
        }
        if r.description.len() > MAX_DESCRIPTION {
            return Err(RegistryError::Invalid(format!(
                "role {}: the description is {} bytes; keep it to {MAX_DESCRIPTION}",
                r.name,
                r.description.len()
            )));
        }
        // As `certbound role create`: the scopes must be defined by the API.
        check_grants(apis, &format!("role {}", r.name), &r.grant, true)?;
    }
    let holders = doc
        .group
        .iter()
        .map(|g| (format!("group {}", g.name), &g.roles))
        .chain(
            doc.client
                .iter()
                .map(|c| (format!("client {}", c.name), &c.roles)),
        )
        .chain(
            doc.apikey
                .iter()
                .map(|k| (format!("apikey {}", k.name), &k.roles)),
        );
    for (holder, roles) in holders {
        let mut seen = BTreeSet::new();
        for role in roles {
            if !names.contains(role.as_str()) {
                return Err(RegistryError::Invalid(format!(
                    "{holder}: role {role:?} is not defined in the policy (add a [[role]] with \
                     name = {role:?})"
                )));
            }
            if !seen.insert(role) {
                return Err(RegistryError::Invalid(format!(
                    "{holder}: role {role} is listed twice"
                )));
            }
        }
    }
    Ok(())
}

/// The plan's lines for a holder's roles going from `old` to `new`.
pub(super) fn role_details(old: &[String], new: &[String]) -> Vec<String> {
    let old: BTreeSet<&String> = old.iter().collect();
    let new: BTreeSet<&String> = new.iter().collect();
    new.difference(&old)
        .map(|r| format!("+ role {r}"))
        .chain(old.difference(&new).map(|r| format!("- role {r}")))
        .collect()
}

/// Adds the role changes to `plan`.
pub(super) fn diff_roles(stored: &[RoleSpec], desired: &[RoleSpec], plan: &mut Plan) {
    let old: BTreeMap<&str, &RoleSpec> = stored.iter().map(|r| (r.name.as_str(), r)).collect();
    let new: BTreeMap<&str, &RoleSpec> = desired.iter().map(|r| (r.name.as_str(), r)).collect();
    for (name, r) in &new {
        let mut d = Vec::new();
        let op = match old.get(name) {
            None => {
                if !r.description.is_empty() {
                    d.push(format!("description {:?}", r.description));
                }
                d.extend(grant_details(&[], &r.grant));
                if r.grant.is_empty() {
                    d.push(format!("grants {}", words(&[])));
                }
                Op::Add
            }
            Some(o) => {
                if o.description != r.description {
                    d.push(format!(
                        "description {:?} -> {:?}",
                        o.description, r.description
                    ));
                }
                d.extend(grant_details(&o.grant, &r.grant));
                if d.is_empty() {
                    continue;
                }
                Op::Change
            }
        };
        plan.changes.push(Change {
            op,
            kind: "role",
            name: name.to_string(),
            details: d,
        });
    }
    for name in old.keys().filter(|n| !new.contains_key(*n)) {
        plan.changes.push(Change {
            op: Op::Remove,
            kind: "role",
            name: name.to_string(),
            details: vec![],
        });
    }
}

/// Writes the added and changed roles of `plan`.
pub(super) async fn apply_roles(
    conn: &mut PolicyConn,
    plan: &Plan,
    desired: &[RoleSpec],
    now: u64,
) -> Result<(), RegistryError> {
    for r in desired
        .iter()
        .filter(|r| super::apply::plan_changes(plan, "role", &r.name))
    {
        db::replace_role(conn, &r.name, &r.description, &store_grants(&r.grant), now).await?;
    }
    Ok(())
}

/// Deletes the roles `plan` removes (after their holders were rewritten).
pub(super) async fn remove_roles(conn: &mut PolicyConn, plan: &Plan) -> Result<(), RegistryError> {
    for ch in plan
        .changes
        .iter()
        .filter(|c| c.op == Op::Remove && c.kind == "role")
    {
        db::delete_role(conn, &ch.name).await?;
    }
    Ok(())
}
