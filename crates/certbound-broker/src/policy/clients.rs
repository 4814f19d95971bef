//! Backend-service clients in a policy: reading, validation, the plan's
//! client changes and their writes.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::{Row, SqliteConnection};

use super::apply::{grant_rows, plan_changes};
use super::plan::{Change, Op, Plan, grant_details};
use super::state::grants_of;
use super::validate::{ApiScopes, check_grants, check_name};
use super::{ADMIN_CLIENT, ClientSpec};
use crate::error::BrokerError;
use crate::oauth::{hash_secret, new_client_id, new_client_secret};
use crate::registry::CreatedClient;

/// A client as stored (with its id, which is not policy).
pub(super) struct StoredClient {
    pub(super) id: String,
    pub(super) has_secret: bool,
    pub(super) spec: ClientSpec,
}

pub(super) async fn read_clients(
    conn: &mut SqliteConnection,
) -> Result<Vec<StoredClient>, BrokerError> {
    let rows = sqlx::query(
        "SELECT id, name, secret_hash, tls_subject FROM clients \
         WHERE status = 'active' AND name != ? ORDER BY name",
    )
    .bind(ADMIN_CLIENT)
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let id: String = r.get("id");
        let secret: Option<String> = r.get("secret_hash");
        let grants = sqlx::query(
            "SELECT api_id, scopes FROM client_grants WHERE client_id = ? ORDER BY api_id",
        )
        .bind(&id)
        .fetch_all(&mut *conn)
        .await?;
        out.push(StoredClient {
            id,
            has_secret: secret.is_some_and(|h| h != "revoked"),
            spec: ClientSpec {
                name: r.get("name"),
                tls_subject: r.get("tls_subject"),
                grant: grants_of(grants),
            },
        });
    }
    Ok(out)
}

/// Checks the clients of a document (names, grants, TLS subjects) and
/// normalises their TLS subjects in place.
pub(super) fn validate_clients(
    clients: &mut [ClientSpec],
    apis: &ApiScopes<'_>,
) -> Result<(), BrokerError> {
    let mut names = BTreeSet::new();
    let mut subjects = BTreeMap::new();
    for c in clients.iter_mut() {
        check_name("client name", &c.name)?;
        if c.name.contains('#') {
            return Err(BrokerError::Invalid(format!(
                "client name {:?} may not contain '#'",
                c.name
            )));
        }
        if c.name == ADMIN_CLIENT {
            return Err(BrokerError::Invalid(format!(
                "client {ADMIN_CLIENT:?} is the built-in bootstrap client and not policy: remove it from the document"
            )));
        }
        if !names.insert(c.name.clone()) {
            return Err(BrokerError::Invalid(format!(
                "client {} is defined twice",
                c.name
            )));
        }
        // As `certbound client create`: the API must exist, scopes are free.
        check_grants(apis, &format!("client {}", c.name), &c.grant, false)?;
        if let Some(dn) = &mut c.tls_subject {
            *dn = crate::oauth::normalise_dn(dn);
            if !dn.contains('=') {
                return Err(BrokerError::Invalid(format!(
                    "client {}: TLS subject {dn:?} is not a DN: write it as \"CN=reporting\" (RFC 4514)",
                    c.name
                )));
            }
            if let Some(other) = subjects.insert(dn.clone(), c.name.clone()) {
                return Err(BrokerError::Invalid(format!(
                    "clients {other} and {} have the same TLS subject {dn:?}",
                    c.name
                )));
            }
        }
    }
    Ok(())
}

/// Adds the client changes to `plan`: `stored` is the store's clients,
/// `desired` the document's.
pub(super) async fn diff_clients(
    conn: &mut SqliteConnection,
    clients: &[StoredClient],
    desired: &[ClientSpec],
    plan: &mut Plan,
) -> Result<(), BrokerError> {
    let old: BTreeMap<&str, &StoredClient> =
        clients.iter().map(|c| (c.spec.name.as_str(), c)).collect();
    let new: BTreeMap<&str, &ClientSpec> = desired.iter().map(|c| (c.name.as_str(), c)).collect();
    for (name, c) in &new {
        match old.get(name) {
            None => {
                let mut d = vec![match &c.tls_subject {
                    Some(dn) => format!("tls_subject {dn:?}"),
                    None => "secret (printed once by apply)".to_string(),
                }];
                d.extend(grant_details(&[], &c.grant));
                plan.changes.push(Change {
                    op: Op::Add,
                    kind: "client",
                    name: name.to_string(),
                    details: d,
                });
            }
            Some(o) => {
                let mut d = Vec::new();
                if o.spec.tls_subject != c.tls_subject {
                    if c.tls_subject.is_none() && !o.has_secret {
                        return Err(BrokerError::Invalid(format!(
                            "client {name} has no secret: removing its tls_subject would leave it without credentials (rotate a secret first: `certbound client rotate-secret`)"
                        )));
                    }
                    let show = |s: &Option<String>| {
                        s.as_ref()
                            .map_or("(none)".to_string(), |dn| format!("{dn:?}"))
                    };
                    d.push(format!(
                        "tls_subject {} -> {}",
                        show(&o.spec.tls_subject),
                        show(&c.tls_subject)
                    ));
                }
                d.extend(grant_details(&o.spec.grant, &c.grant));
                if !d.is_empty() {
                    plan.changes.push(Change {
                        op: Op::Change,
                        kind: "client",
                        name: name.to_string(),
                        details: d,
                    });
                }
            }
        }
    }
    for name in old.keys().filter(|n| !new.contains_key(*n)) {
        plan.changes.push(Change {
            op: Op::Remove,
            kind: "client",
            name: name.to_string(),
            details: vec![
                "deleted like `certbound client delete`: its tokens turn inactive".into(),
            ],
        });
    }
    // A TLS subject held by the admin client (outside the document) cannot be reused.
    for c in desired {
        if let Some(dn) = &c.tls_subject {
            let admin: Option<String> = sqlx::query_scalar(
                "SELECT name FROM clients WHERE tls_subject = ? AND status = 'active' AND name = ?",
            )
            .bind(dn)
            .bind(ADMIN_CLIENT)
            .fetch_optional(&mut *conn)
            .await?;
            if admin.is_some() {
                return Err(BrokerError::Invalid(format!(
                    "client {}: TLS subject {dn:?} belongs to the built-in {ADMIN_CLIENT:?} client",
                    c.name
                )));
            }
        }
    }
    Ok(())
}

/// Writes the client changes of `plan`: removals first, then the added and
/// changed clients with their grants. Returns the created clients.
pub(super) async fn apply_clients(
    conn: &mut SqliteConnection,
    plan: &Plan,
    stored: &[StoredClient],
    desired: &[ClientSpec],
    now_i: i64,
) -> Result<Vec<CreatedClient>, BrokerError> {
    let stored: BTreeMap<&str, &StoredClient> =
        stored.iter().map(|c| (c.spec.name.as_str(), c)).collect();
    // Removed clients first: a kept client may take over a removed one's TLS subject.
    for (name, c) in &stored {
        if desired.iter().any(|d| d.name == *name) {
            continue;
        }
        sqlx::query(
            "UPDATE clients SET status = 'revoked', secret_hash = 'revoked', tls_subject = NULL, \
             name = name || '#deleted-' || ?1, updated_at = ?2 WHERE id = ?1 AND status = 'active'",
        )
        .bind(&c.id)
        .bind(now_i)
        .execute(&mut *conn)
        .await?;
    }
    let mut created = Vec::new();
    for c in desired {
        if !plan_changes(plan, "client", &c.name) {
            continue;
        }
        let id = match stored.get(c.name.as_str()) {
            Some(s) => {
                sqlx::query(
                    "UPDATE clients SET tls_subject = ?1, auth_method = CASE WHEN ?1 IS NULL \
                     THEN 'client_secret' ELSE 'tls_client_auth' END, updated_at = ?2 WHERE id = ?3",
                )
                .bind(&c.tls_subject)
                    .bind(now_i)
                    .bind(&s.id)
                    .execute(&mut *conn)
                    .await?;
                s.id.clone()
            }
            None => {
                let id = new_client_id();
                let secret = c.tls_subject.is_none().then(new_client_secret);
                sqlx::query(
                    "INSERT INTO clients (id, name, secret_hash, tls_subject, auth_method, status, \
                     created_at, updated_at) VALUES (?1, ?2, ?3, ?4, CASE WHEN ?4 IS NULL \
                     THEN 'client_secret' ELSE 'tls_client_auth' END, 'active', ?5, ?6)",
                )
                .bind(&id)
                .bind(&c.name)
                .bind(secret.as_deref().map(hash_secret))
                .bind(&c.tls_subject)
                .bind(now_i)
                .bind(now_i)
                .execute(&mut *conn)
                .await?;
                created.push(CreatedClient {
                    client_id: id.clone(),
                    client_secret: secret,
                    name: c.name.clone(),
                    tls_subject: c.tls_subject.clone(),
                    tls_san: None,
                    thumbprint: None,
                    auth_method: if c.tls_subject.is_some() {
                        crate::store::ClientAuthMethod::TlsClientAuth
                    } else {
                        crate::store::ClientAuthMethod::ClientSecret
                    },
                });
                id
            }
        };
        sqlx::query("DELETE FROM client_grants WHERE client_id = ?")
            .bind(&id)
            .execute(&mut *conn)
            .await?;
        for (api, scopes) in grant_rows(&c.grant) {
            sqlx::query("INSERT INTO client_grants (client_id, api_id, scopes) VALUES (?, ?, ?)")
                .bind(&id)
                .bind(api)
                .bind(scopes)
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(created)
}
