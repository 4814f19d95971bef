//! Policy as code for custom claims: `[[api.claim]]` declarations and
//! `attributes = {...}` of groups, clients and API keys (devices are inventory: their
//! attributes are set with `certbound attr set --device`).

use std::collections::BTreeMap;

use super::PolicyDoc;
use super::plan::{Change, Op, Plan};
use crate::error::RegistryError;
use crate::registry::describe_claims;
use crate::store::attributes::{Attributes, ClaimDecl, validate_claims};
use crate::store::policy::{PolicyConn, attrs as db};

/// Adds the stored claims and attributes to an exported document.
pub(super) async fn fill(conn: &mut PolicyConn, doc: &mut PolicyDoc) -> Result<(), RegistryError> {
    let mut claims = db::read_api_claims(conn).await?;
    for a in &mut doc.api {
        a.claim = claims.remove(&a.id).unwrap_or_default();
    }
    let mut groups = db::read_group_attributes(conn).await?;
    for g in &mut doc.group {
        g.attributes = groups.remove(&g.name).unwrap_or_default();
    }
    let mut clients = db::read_client_attributes(conn).await?;
    for c in &mut doc.client {
        c.attributes = clients.remove(&c.name).unwrap_or_default();
    }
    let mut keys = db::read_api_key_attributes(conn).await?;
    for k in &mut doc.apikey {
        k.attributes = keys.remove(&k.name).unwrap_or_default();
    }
    Ok(())
}

fn claims_text(c: &[ClaimDecl]) -> String {
    if c.is_empty() {
        "(none)".into()
    } else {
        describe_claims(c)
    }
}

fn attrs_text(a: &Attributes) -> String {
    if a.is_empty() {
        "(none)".into()
    } else {
        a.summary()
    }
}

/// Adds `detail` to the plan's change of `kind` `name`, or a new change
/// after the others of that kind.
fn note(plan: &mut Plan, kind: &'static str, name: &str, detail: String) {
    if let Some(c) = plan
        .changes
        .iter_mut()
        .find(|c| c.kind == kind && c.name == name && c.op != Op::Remove)
    {
        c.details.push(detail);
        return;
    }
    const ORDER: [&str; 5] = ["api", "role", "group", "client", "apikey"];
    let rank = |k: &str| ORDER.iter().position(|o| *o == k).unwrap_or(ORDER.len());
    let at = plan
        .changes
        .iter()
        .position(|c| rank(c.kind) > rank(kind))
        .unwrap_or(plan.changes.len());
    plan.changes.insert(
        at,
        Change {
            op: Op::Change,
            kind,
            name: name.to_string(),
            details: vec![detail],
        },
    );
}

/// Checks the document's claims and attributes and adds their changes to
/// the plan.
pub(super) async fn diff(
    conn: &mut PolicyConn,
    desired: &PolicyDoc,
    plan: &mut Plan,
) -> Result<(), RegistryError> {
    for a in &desired.api {
        validate_claims(&a.claim)
            .map_err(|e| RegistryError::Invalid(format!("api {}: {e}", a.id)))?;
    }
    for g in &desired.group {
        g.attributes
            .validate()
            .map_err(|e| RegistryError::Invalid(format!("group {}: {e}", g.name)))?;
    }
    for c in &desired.client {
        c.attributes
            .validate()
            .map_err(|e| RegistryError::Invalid(format!("client {}: {e}", c.name)))?;
    }
    for k in &desired.apikey {
        k.attributes
            .validate()
            .map_err(|e| RegistryError::Invalid(format!("apikey {}: {e}", k.name)))?;
    }
    let claims = db::read_api_claims(conn).await?;
    for a in &desired.api {
        let old = claims.get(&a.id).map(Vec::as_slice).unwrap_or_default();
        if old != a.claim.as_slice() {
            let d = format!("claims {} -> {}", claims_text(old), claims_text(&a.claim));
            note(plan, "api", &a.id, d);
        }
    }
    let none = Attributes::default();
    let attrs_diff = |old: &BTreeMap<String, Attributes>, name: &str, new: &Attributes| {
        let old = old.get(name).unwrap_or(&none);
        (old != new).then(|| format!("attributes {} -> {}", attrs_text(old), attrs_text(new)))
    };
    let groups = db::read_group_attributes(conn).await?;
    for g in &desired.group {
        if let Some(d) = attrs_diff(&groups, &g.name, &g.attributes) {
            note(plan, "group", &g.name, d);
        }
    }
    let clients = db::read_client_attributes(conn).await?;
    for c in &desired.client {
        if let Some(d) = attrs_diff(&clients, &c.name, &c.attributes) {
            note(plan, "client", &c.name, d);
        }
    }
    let keys = db::read_api_key_attributes(conn).await?;
    for k in &desired.apikey {
        if let Some(d) = attrs_diff(&keys, &k.name, &k.attributes) {
            note(plan, "apikey", &k.name, d);
        }
    }
    Ok(())
}

/// Writes the document's claims and attributes that differ from the store
/// (after APIs, groups and clients exist).
pub(super) async fn apply(conn: &mut PolicyConn, desired: &PolicyDoc) -> Result<(), RegistryError> {
    let claims = db::read_api_claims(conn).await?;
    for a in &desired.api {
        if claims.get(&a.id).map(Vec::as_slice).unwrap_or_default() != a.claim.as_slice() {
            db::write_api_claims(conn, &a.id, &a.claim).await?;
        }
    }
    let groups = db::read_group_attributes(conn).await?;
    for g in &desired.group {
        if groups.get(&g.name).cloned().unwrap_or_default() != g.attributes {
            db::write_group_attributes(conn, &g.name, &g.attributes).await?;
        }
    }
    let clients = db::read_client_attributes(conn).await?;
    for c in &desired.client {
        if clients.get(&c.name).cloned().unwrap_or_default() != c.attributes {
            db::write_client_attributes(conn, &c.name, &c.attributes).await?;
        }
    }
    let keys = db::read_api_key_attributes(conn).await?;
    for k in &desired.apikey {
        if keys.get(&k.name).cloned().unwrap_or_default() != k.attributes {
            db::write_api_key_attributes(conn, &k.name, &k.attributes).await?;
        }
    }
    Ok(())
}
