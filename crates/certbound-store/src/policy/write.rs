//! Writing an applied policy (on the caller's write transaction, in the
//! order the caller chooses: APIs before the grants that name them,
//! removals last).

use super::PolicyConn;
use crate::error::StoreError;
use crate::{Api, ClientAuthMethod, Grant, to_i64};

/// Creates API `api.id`, or sets the format, lifetime and scopes of the
/// existing one (its creation time stays).
pub async fn upsert_api(conn: &mut PolicyConn, api: &Api, now: u64) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO apis (id, format, ttl_secs, scopes, created_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT(id) DO UPDATE SET format = $2, ttl_secs = $3, scopes = $4",
    )
    .bind(&api.id)
    .bind(&api.format)
    .bind(to_i64(api.ttl_secs))
    .bind(api.scopes.join(" "))
    .bind(to_i64(now))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Creates group `name` when missing and replaces its grants with `grants`
/// (each API must exist).
pub async fn replace_group(
    conn: &mut PolicyConn,
    name: &str,
    grants: &[Grant],
    now: u64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO groups (name, created_at) VALUES ($1, $2) ON CONFLICT(name) DO NOTHING",
    )
    .bind(name)
    .bind(to_i64(now))
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM grants WHERE group_name = $1")
        .bind(name)
        .execute(&mut *conn)
        .await?;
    crate::groups::insert_grants(conn, name, grants).await
}

/// Deletes group `name` (the caller removed its grants and memberships or
/// was told to: `--prune`).
pub async fn delete_group(conn: &mut PolicyConn, name: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM groups WHERE name = $1")
        .bind(name)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Deletes API `id` (no grant may name it any more).
pub async fn delete_api(conn: &mut PolicyConn, id: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM apis WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The method and certificate identity a kept client is set to (its
/// secret, if any, is left as it is).
#[derive(Debug, Clone, Copy)]
pub struct ClientCredentials<'a> {
    /// The one method.
    pub auth_method: ClientAuthMethod,
    /// Subject DN for `tls_client_auth`.
    pub tls_subject: Option<&'a str>,
    /// SAN for `tls_client_auth`.
    pub tls_san: Option<&'a str>,
    /// Pinned thumbprint for `self_signed_tls_client_auth`.
    pub thumbprint: Option<&'a str>,
    /// `private_key_jwt`: the JWK Set.
    pub jwks: Option<&'a str>,
    /// `private_key_jwt`: the JWK Set URL.
    pub jwks_uri: Option<&'a str>,
}

/// Sets the method and credential of client `id` and replaces its grants
/// with `grants` (the caller checked that the credential is free and that
/// a secret method has its secret).
pub async fn replace_client(
    conn: &mut PolicyConn,
    id: &str,
    credentials: &ClientCredentials<'_>,
    grants: &[Grant],
    now: u64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE clients SET auth_method = $1, tls_subject = $2, tls_san = $3, thumbprint = $4, \
         jwks = $7, jwks_uri = $8, updated_at = $5 WHERE id = $6",
    )
    .bind(credentials.auth_method.as_str())
    .bind(credentials.tls_subject)
    .bind(credentials.tls_san)
    .bind(credentials.thumbprint)
    .bind(to_i64(now))
    .bind(id)
    .bind(credentials.jwks)
    .bind(credentials.jwks_uri)
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM client_grants WHERE client_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    for g in grants {
        sqlx::query("INSERT INTO client_grants (client_id, api_id, scopes) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(&g.api_id)
            .bind(g.scopes.join(" "))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Records one applied change in the audit log with outcome `ok`, as it is
/// (the caller words it): `ts_ms` Unix milliseconds.
pub async fn record_change(
    conn: &mut PolicyConn,
    ts_ms: u64,
    actor: &str,
    action: &str,
    subject: &str,
    detail: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_events (ts, actor, action, subject, outcome, detail) \
         VALUES ($1, $2, $3, $4, 'ok', $5)",
    )
    .bind(to_i64(ts_ms))
    .bind(actor)
    .bind(action)
    .bind(subject)
    .bind(detail)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Creates role `name` when missing, sets its description and replaces its
/// grants with `grants` (each API must exist).
pub async fn replace_role(
    conn: &mut PolicyConn,
    name: &str,
    description: &str,
    grants: &[Grant],
    now: u64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO roles (name, description, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT(name) DO UPDATE SET description = $2",
    )
    .bind(name)
    .bind(description)
    .bind(to_i64(now))
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM role_grants WHERE role_name = $1")
        .bind(name)
        .execute(&mut *conn)
        .await?;
    for g in grants {
        sqlx::query("INSERT INTO role_grants (role_name, api_id, scopes) VALUES ($1, $2, $3)")
            .bind(name)
            .bind(&g.api_id)
            .bind(g.scopes.join(" "))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Replaces the roles of a holder with `roles` (each must exist).
pub async fn replace_roles_of(
    conn: &mut PolicyConn,
    holder: crate::RoleHolder<'_>,
    roles: &[String],
) -> Result<(), StoreError> {
    let (table, column, id) = match holder {
        crate::RoleHolder::Client(id) => ("client_roles", "client_id", id),
        crate::RoleHolder::Group(name) => ("group_roles", "group_name", name),
        crate::RoleHolder::ApiKey(id) => ("api_key_roles", "key_id", id),
    };
    sqlx::query(&format!("DELETE FROM {table} WHERE {column} = $1"))
        .bind(id)
        .execute(&mut *conn)
        .await?;
    for r in roles {
        sqlx::query(&format!(
            "INSERT INTO {table} ({column}, role_name) VALUES ($1, $2)"
        ))
        .bind(id)
        .bind(r)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Deletes role `name`: holders first (so the change feed names them), then
/// its grants and the role.
pub async fn delete_role(conn: &mut PolicyConn, name: &str) -> Result<(), StoreError> {
    for sql in [
        "DELETE FROM client_roles WHERE role_name = $1",
        "DELETE FROM group_roles WHERE role_name = $1",
        "DELETE FROM api_key_roles WHERE role_name = $1",
        "DELETE FROM role_grants WHERE role_name = $1",
        "DELETE FROM roles WHERE name = $1",
    ] {
        sqlx::query(sql).bind(name).execute(&mut *conn).await?;
    }
    Ok(())
}
