//! API keys in a policy (`[[apikey]]`): reading, validation (the rules of
//! `certbound apikey create`), the plan's key changes and their writes.
//!
//! Keys are matched by name. A new key is made like `apikey create` makes
//! it and printed once by `apply`; a changed key keeps its key (grants and
//! expiry change); a key absent from the document is revoked like `apikey
//! revoke`, as absent clients are deleted. The key and its hash are never
//! in a document.

use std::collections::{BTreeMap, BTreeSet};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::apply::{grant_rows, plan_changes};
use super::plan::{Change, Op, Plan, grant_details};
use super::state::grants_of;
use super::validate::{ApiScopes, check_grants};
use super::{ApiKeySpec, GrantSpec};
use crate::credentials::{hash_secret, new_api_key, new_api_key_id};
use crate::error::RegistryError;
use crate::registry::{CreatedApiKey, check_api_key_grants, check_api_key_name};
use crate::store::RoleHolder;
use crate::store::policy::{self as db, PolicyConn};
use crate::store::{
    NewApiKey, api_key_subject, insert_api_key, read_api_keys, replace_api_key_grants,
    revoke_api_key_row, set_api_key_expiry,
};

/// A key as stored (with its row id, which is not policy).
pub(super) struct StoredApiKey {
    id: String,
    expires_at: Option<u64>,
    spec: ApiKeySpec,
}

/// Unix seconds as RFC 3339 UTC (`2027-03-01T00:00:00Z`).
fn rfc3339(unix: u64) -> String {
    i64::try_from(unix)
        .ok()
        .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
}

/// Parses an `expires` value (RFC 3339, e.g. `2027-03-01T00:00:00Z`).
pub(super) fn parse_expires(name: &str, text: &str) -> Result<u64, RegistryError> {
    OffsetDateTime::parse(text.trim(), &Rfc3339)
        .ok()
        .and_then(|t| u64::try_from(t.unix_timestamp()).ok())
        .ok_or_else(|| {
            RegistryError::Invalid(format!(
                "apikey {name}: expires {text:?} is not an RFC 3339 time like \"2027-03-01T00:00:00Z\""
            ))
        })
}

pub(super) async fn read_keys(conn: &mut PolicyConn) -> Result<Vec<StoredApiKey>, RegistryError> {
    let mut out = Vec::new();
    for k in read_api_keys(conn, false).await? {
        let roles = crate::store::policy::read::api_key_roles(conn, &k.id).await?;
        out.push(StoredApiKey {
            id: k.id,
            expires_at: k.expires_at,
            spec: ApiKeySpec {
                name: k.name,
                expires: k.expires_at.map(rfc3339),
                roles,
                // Filled with the other attributes (`policy::attrs::fill`).
                attributes: Default::default(),
                grant: grants_of(k.grants),
            },
        });
    }
    Ok(out)
}

/// The store form of the key specs (exported as is).
pub(super) fn specs(keys: Vec<StoredApiKey>) -> Vec<ApiKeySpec> {
    keys.into_iter().map(|k| k.spec).collect()
}

/// Checks the keys of a document: names, grants (as `apikey create`: the
/// API must exist, never the admin API), expiry.
pub(super) fn validate_keys(
    keys: &[ApiKeySpec],
    apis: &ApiScopes<'_>,
) -> Result<(), RegistryError> {
    let mut names = BTreeSet::new();
    for k in keys {
        check_api_key_name(&k.name)?;
        if !names.insert(k.name.as_str()) {
            return Err(RegistryError::Invalid(format!(
                "apikey {} is defined twice",
                k.name
            )));
        }
        let rows: Vec<(String, String)> = grant_rows(&k.grant)
            .map(|(a, s)| (a.to_string(), s))
            .collect();
        check_api_key_grants(&k.name, &rows)?;
        check_grants(apis, &format!("apikey {}", k.name), &k.grant, false)?;
        if let Some(e) = &k.expires {
            parse_expires(&k.name, e)?;
        }
    }
    Ok(())
}

fn expiry_of(k: &ApiKeySpec) -> Option<u64> {
    k.expires
        .as_deref()
        .and_then(|e| parse_expires(&k.name, e).ok())
}

/// Adds the key changes to `plan`.
pub(super) fn diff_keys(
    stored: &[StoredApiKey],
    desired: &[ApiKeySpec],
    now: u64,
    plan: &mut Plan,
) -> Result<(), RegistryError> {
    let old: BTreeMap<&str, &StoredApiKey> =
        stored.iter().map(|k| (k.spec.name.as_str(), k)).collect();
    for k in desired {
        let expires = expiry_of(k);
        let shown = |e: Option<u64>| e.map_or("never".to_string(), rfc3339);
        match old.get(k.name.as_str()) {
            None => {
                if expires.is_some_and(|e| e <= now) {
                    return Err(RegistryError::Invalid(format!(
                        "apikey {}: expires {} is in the past",
                        k.name,
                        shown(expires)
                    )));
                }
                let mut d = vec![format!(
                    "new key (printed once by apply), expires {}",
                    shown(expires)
                )];
                d.extend(super::roles::role_details(&[], &k.roles));
                d.extend(grant_details(&[], &k.grant));
                plan.changes.push(Change {
                    op: Op::Add,
                    kind: "apikey",
                    name: k.name.clone(),
                    details: d,
                });
            }
            Some(o) => {
                let mut d = Vec::new();
                if o.expires_at != expires {
                    d.push(format!(
                        "expires {} -> {}",
                        shown(o.expires_at),
                        shown(expires)
                    ));
                }
                d.extend(super::roles::role_details(&o.spec.roles, &k.roles));
                d.extend(grant_details(&o.spec.grant, &k.grant));
                if !d.is_empty() {
                    plan.changes.push(Change {
                        op: Op::Change,
                        kind: "apikey",
                        name: k.name.clone(),
                        details: d,
                    });
                }
            }
        }
    }
    for k in stored {
        if !desired.iter().any(|d| d.name == k.spec.name) {
            plan.changes.push(Change {
                op: Op::Remove,
                kind: "apikey",
                name: k.spec.name.clone(),
                details: vec![
                    "revoked like `certbound apikey revoke`: its next use is refused".into(),
                ],
            });
        }
    }
    Ok(())
}

fn rows(grants: &[GrantSpec]) -> Vec<(String, String)> {
    grant_rows(grants)
        .map(|(api, scopes)| (api.to_string(), scopes))
        .collect()
}

/// Writes the key changes of `plan`: revocations, changes, then new keys
/// (returned with their keys, shown once).
pub(super) async fn apply_keys(
    conn: &mut PolicyConn,
    plan: &Plan,
    stored: &[StoredApiKey],
    desired: &[ApiKeySpec],
    now: u64,
) -> Result<Vec<CreatedApiKey>, RegistryError> {
    for k in stored {
        if !desired.iter().any(|d| d.name == k.spec.name) {
            revoke_api_key_row(conn, &k.id, now).await?;
        }
    }
    let mut created = Vec::new();
    for k in desired
        .iter()
        .filter(|k| plan_changes(plan, "apikey", &k.name))
    {
        let grants = rows(&k.grant);
        let expires_at = expiry_of(k);
        match stored.iter().find(|s| s.spec.name == k.name) {
            Some(s) => {
                replace_api_key_grants(conn, &s.id, &grants).await?;
                set_api_key_expiry(conn, &s.id, expires_at, now).await?;
                db::replace_roles_of(conn, RoleHolder::ApiKey(&s.id), &k.roles).await?;
            }
            None => {
                let key = new_api_key();
                let id = new_api_key_id();
                insert_api_key(
                    conn,
                    &NewApiKey {
                        id: &id,
                        name: &k.name,
                        key_hash: &hash_secret(&key),
                        expires_at,
                        grants: &grants,
                    },
                    now,
                )
                .await?;
                db::replace_roles_of(conn, RoleHolder::ApiKey(&id), &k.roles).await?;
                created.push(CreatedApiKey {
                    name: k.name.clone(),
                    api_key: key,
                    subject: api_key_subject(&k.name),
                    grants,
                    expires_at,
                });
            }
        }
    }
    Ok(created)
}
