//! The plan: what `apply` would change to make the store match a document.

use std::collections::BTreeMap;

use serde::Serialize;

use super::clients::{StoredClient, diff_clients, read_clients};
use super::roles::role_details;
use super::state::{read_apis, read_groups};
use super::{ApiSpec, GrantSpec, GroupSpec, PolicyDoc};
use crate::clock::unix_now;
use crate::error::RegistryError;
use crate::store::policy::{self as db, PolicyConn};

/// What a change does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// Created.
    Add,
    /// Changed.
    Change,
    /// Removed.
    Remove,
}

/// One change of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Add, change or remove.
    pub op: Op,
    /// `api`, `role`, `group`, `client` or `apikey`.
    pub kind: &'static str,
    /// API identifier, group or client name.
    pub name: String,
    /// What changes, e.g. `grant https://x scopes a b -> a c`.
    pub details: Vec<String>,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sign = match self.op {
            Op::Add => '+',
            Op::Change => '~',
            Op::Remove => '-',
        };
        write!(f, "{sign} {} {}", self.kind, self.name)?;
        if !self.details.is_empty() {
            write!(f, ": {}", self.details.join("; "))?;
        }
        Ok(())
    }
}

/// The difference between the store and a document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Changes: APIs, then roles, then groups, then clients, then API keys; each sorted by name.
    pub changes: Vec<Change>,
    /// Removals that `--prune` is needed for (they touch inventory).
    pub needs_prune: Vec<String>,
}

impl Plan {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// The human-readable diff, one change a line.
    pub fn render(&self) -> String {
        if self.changes.is_empty() {
            return "No changes: the store matches the policy.\n".into();
        }
        let mut out = String::new();
        for c in &self.changes {
            out.push_str(&c.to_string());
            out.push('\n');
        }
        let count = |op| self.changes.iter().filter(|c| c.op == op).count();
        out.push_str(&format!(
            "Plan: {} to add, {} to change, {} to remove.\n",
            count(Op::Add),
            count(Op::Change),
            count(Op::Remove)
        ));
        for n in &self.needs_prune {
            out.push_str(&format!("! {n} (apply needs --prune)\n"));
        }
        out
    }
}

pub(super) fn words(s: &[String]) -> String {
    if s.is_empty() {
        "(none)".into()
    } else {
        s.join(" ")
    }
}

pub(super) fn grant_details(old: &[GrantSpec], new: &[GrantSpec]) -> Vec<String> {
    let old: BTreeMap<&str, &[String]> = old
        .iter()
        .map(|g| (g.api.as_str(), g.scopes.as_slice()))
        .collect();
    let new: BTreeMap<&str, &[String]> = new
        .iter()
        .map(|g| (g.api.as_str(), g.scopes.as_slice()))
        .collect();
    let mut out = Vec::new();
    for (api, s) in &new {
        match old.get(api) {
            None => out.push(format!("+ grant {api} scopes {}", words(s))),
            Some(o) if o != s => {
                out.push(format!("grant {api} scopes {} -> {}", words(o), words(s)))
            }
            Some(_) => {}
        }
    }
    for (api, s) in &old {
        if !new.contains_key(api) {
            out.push(format!("- grant {api} scopes {}", words(s)));
        }
    }
    out
}

/// Compares the (validated) document with the store; returns the plan and
/// the stored clients (with their ids, for apply). Resolves what the
/// document leaves to the store (a secret client's method) in place.
pub(super) async fn diff(
    conn: &mut PolicyConn,
    desired: &mut PolicyDoc,
) -> Result<(Plan, Vec<StoredClient>), RegistryError> {
    let apis = read_apis(conn).await?;
    let roles = super::roles::read_roles(conn).await?;
    let groups = read_groups(conn).await?;
    let clients = read_clients(conn).await?;
    let mut plan = Plan::default();

    let old: BTreeMap<&str, &ApiSpec> = apis.iter().map(|a| (a.id.as_str(), a)).collect();
    let new: BTreeMap<&str, &ApiSpec> = desired.api.iter().map(|a| (a.id.as_str(), a)).collect();
    for (id, a) in &new {
        match old.get(id) {
            None => plan.changes.push(Change {
                op: Op::Add,
                kind: "api",
                name: id.to_string(),
                details: vec![format!(
                    "scopes {} ttl_secs {} format {}{}",
                    words(&a.scopes),
                    a.ttl_secs,
                    a.format,
                    a.alg
                        .as_deref()
                        .map(|g| format!(" alg {g}"))
                        .unwrap_or_default()
                )],
            }),
            Some(o) => {
                let mut d = Vec::new();
                if o.scopes != a.scopes {
                    d.push(format!(
                        "scopes {} -> {}",
                        words(&o.scopes),
                        words(&a.scopes)
                    ));
                }
                if o.ttl_secs != a.ttl_secs {
                    d.push(format!("ttl_secs {} -> {}", o.ttl_secs, a.ttl_secs));
                }
                if o.format != a.format {
                    d.push(format!("format {} -> {}", o.format, a.format));
                }
                if o.alg != a.alg {
                    let show = |alg: &Option<String>| alg.clone().unwrap_or_else(|| "ES256".into());
                    d.push(format!("alg {} -> {}", show(&o.alg), show(&a.alg)));
                }
                if !d.is_empty() {
                    plan.changes.push(Change {
                        op: Op::Change,
                        kind: "api",
                        name: id.to_string(),
                        details: d,
                    });
                }
            }
        }
    }
    let now = unix_now();
    for id in old.keys().filter(|id| !new.contains_key(*id)) {
        plan.changes.push(Change {
            op: Op::Remove,
            kind: "api",
            name: id.to_string(),
            details: vec![],
        });
        let live = db::live_tokens_of_api(conn, id, now).await?;
        if live > 0 {
            plan.needs_prune.push(format!(
                "API {id} has {live} unexpired issued token(s); they stay valid until they expire"
            ));
        }
    }

    super::roles::diff_roles(&roles, &desired.role, &mut plan);

    let old: BTreeMap<&str, &GroupSpec> = groups.iter().map(|g| (g.name.as_str(), g)).collect();
    let new: BTreeMap<&str, &GroupSpec> =
        desired.group.iter().map(|g| (g.name.as_str(), g)).collect();
    for (name, g) in &new {
        match old.get(name) {
            None => plan.changes.push(Change {
                op: Op::Add,
                kind: "group",
                name: name.to_string(),
                details: role_details(&[], &g.roles)
                    .into_iter()
                    .chain(grant_details(&[], &g.grant))
                    .collect(),
            }),
            Some(o) => {
                let mut d = role_details(&o.roles, &g.roles);
                d.extend(grant_details(&o.grant, &g.grant));
                if !d.is_empty() {
                    plan.changes.push(Change {
                        op: Op::Change,
                        kind: "group",
                        name: name.to_string(),
                        details: d,
                    });
                }
            }
        }
    }
    for name in old.keys().filter(|n| !new.contains_key(*n)) {
        // Claims and trusted CAs enroll into a group by name: removing it is
        // refused, --prune or not (as `certbound group delete` refuses it).
        let enrollers = db::group_enrollers(conn, name).await?;
        if !enrollers.is_empty() {
            return Err(RegistryError::Invalid(format!(
                "group {name} cannot be removed: {} enroll(ed) devices into it (claims name it \
                 even when revoked or used up); keep the group in the document",
                enrollers.join(", ")
            )));
        }
        plan.changes.push(Change {
            op: Op::Remove,
            kind: "group",
            name: name.to_string(),
            details: vec![],
        });
        let members = db::group_member_count(conn, name).await?;
        if members > 0 {
            plan.needs_prune.push(format!(
                "group {name} has {members} member device(s); they would lose its grants"
            ));
        }
    }
    diff_clients(conn, &clients, &mut desired.client, &mut plan).await?;
    let keys = super::api_keys::read_keys(conn).await?;
    super::api_keys::diff_keys(&keys, &desired.apikey, now, &mut plan)?;
    super::attrs::diff(conn, desired, &mut plan).await?;
    Ok((plan, clients))
}
