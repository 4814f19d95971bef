//! Reading the current policy (on the caller's transaction).

use sqlx::Row;

use super::{PolicyClient, PolicyConn, PolicyGroup, PolicyRole};
use crate::error::StoreError;
use crate::{Api, ClientAuthMethod, Grant, split_scopes, to_i64, to_u64};

fn grants_of(rows: Vec<sqlx::any::AnyRow>) -> Vec<Grant> {
    rows.into_iter()
        .map(|r| Grant {
            api_id: r.get("api_id"),
            scopes: split_scopes(r.get("scopes")),
        })
        .collect()
}

/// Every API but `except` (the built-in admin API), by id.
pub async fn read_apis(conn: &mut PolicyConn, except: &str) -> Result<Vec<Api>, StoreError> {
    let rows =
        sqlx::query("SELECT id, format, ttl_secs, scopes FROM apis WHERE id != $1 ORDER BY id")
            .bind(except)
            .fetch_all(&mut *conn)
            .await?;
    Ok(rows
        .into_iter()
        .map(|r| Api {
            id: r.get("id"),
            scopes: split_scopes(r.get("scopes")),
            ttl_secs: to_u64(r.get("ttl_secs")),
            format: r.get("format"),
        })
        .collect())
}

/// Every group with its grants, by name.
pub async fn read_groups(conn: &mut PolicyConn) -> Result<Vec<PolicyGroup>, StoreError> {
    let names: Vec<String> = sqlx::query_scalar("SELECT name FROM groups ORDER BY name")
        .fetch_all(&mut *conn)
        .await?;
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let rows =
            sqlx::query("SELECT api_id, scopes FROM grants WHERE group_name = $1 ORDER BY api_id")
                .bind(&name)
                .fetch_all(&mut *conn)
                .await?;
        let roles = holder_roles(conn, "group_roles", "group_name", &name).await?;
        out.push(PolicyGroup {
            name,
            grants: grants_of(rows),
            roles,
        });
    }
    Ok(out)
}

/// Every active client but the one named `except` (the bootstrap admin
/// client), with its grants, by name.
pub async fn read_clients(
    conn: &mut PolicyConn,
    except: &str,
) -> Result<Vec<PolicyClient>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, name, secret_hash, tls_subject, tls_san, thumbprint, jwks, jwks_uri, \
         auth_method FROM clients \
         WHERE status = 'active' AND name != $1 ORDER BY name",
    )
    .bind(except)
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let id: String = r.get("id");
        let secret: Option<String> = r.get("secret_hash");
        let method: String = r.get("auth_method");
        let grants = sqlx::query(
            "SELECT api_id, scopes FROM client_grants WHERE client_id = $1 ORDER BY api_id",
        )
        .bind(&id)
        .fetch_all(&mut *conn)
        .await?;
        let roles = holder_roles(conn, "client_roles", "client_id", &id).await?;
        out.push(PolicyClient {
            id,
            name: r.get("name"),
            has_secret: secret.is_some_and(|h| h != "revoked"),
            // The column's CHECK admits only known names.
            auth_method: ClientAuthMethod::parse(&method),
            tls_subject: r.get("tls_subject"),
            tls_san: r.get("tls_san"),
            thumbprint: r.get("thumbprint"),
            jwks: r.get("jwks"),
            jwks_uri: r.get("jwks_uri"),
            grants: grants_of(grants),
            roles,
        });
    }
    Ok(out)
}

/// The roles of one holder (`table`: `group_roles` or `client_roles`), by name.
async fn holder_roles(
    conn: &mut PolicyConn,
    table: &str,
    column: &str,
    id: &str,
) -> Result<Vec<String>, StoreError> {
    Ok(sqlx::query_scalar(&format!(
        "SELECT role_name FROM {table} WHERE {column} = $1 ORDER BY role_name"
    ))
    .bind(id)
    .fetch_all(&mut *conn)
    .await?)
}

/// Every role with its grants, by name.
pub async fn read_roles(conn: &mut PolicyConn) -> Result<Vec<PolicyRole>, StoreError> {
    let rows = sqlx::query("SELECT name, description FROM roles ORDER BY name")
        .fetch_all(&mut *conn)
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let name: String = r.get("name");
        let grants = sqlx::query(
            "SELECT api_id, scopes FROM role_grants WHERE role_name = $1 ORDER BY api_id",
        )
        .bind(&name)
        .fetch_all(&mut *conn)
        .await?;
        out.push(PolicyRole {
            name,
            description: r.get("description"),
            grants: grants_of(grants),
        });
    }
    Ok(out)
}

/// The scopes of API `id` (the admin API's, which documents may grant);
/// `None` when there is no such API.
pub async fn admin_api_scopes(
    conn: &mut PolicyConn,
    id: &str,
) -> Result<Option<Vec<String>>, StoreError> {
    let s: Option<String> = sqlx::query_scalar("SELECT scopes FROM apis WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(s.as_deref().map(split_scopes))
}

/// How many tokens issued for API `api` are neither expired at `now` (Unix
/// seconds) nor revoked.
pub async fn live_tokens_of_api(
    conn: &mut PolicyConn,
    api: &str,
    now: u64,
) -> Result<u64, StoreError> {
    let live: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM issued_tokens WHERE api_id = $1 AND exp > $2 AND revoked_at IS NULL",
    )
    .bind(api)
    .bind(to_i64(now))
    .fetch_one(&mut *conn)
    .await?;
    Ok(to_u64(live))
}

/// How many devices are members of group `name`.
pub async fn group_member_count(conn: &mut PolicyConn, name: &str) -> Result<u64, StoreError> {
    let members: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM device_groups WHERE group_name = $1")
            .bind(name)
            .fetch_one(&mut *conn)
            .await?;
    Ok(to_u64(members))
}

/// What keeps group `name` from being removed whatever the policy says: the
/// claims that enroll devices into it (revoked and used-up ones too: their
/// rows name it) and the trusted CAs whose devices join it on first use.
pub async fn group_enrollers(conn: &mut PolicyConn, name: &str) -> Result<Vec<String>, StoreError> {
    let claims: Vec<String> =
        sqlx::query_scalar("SELECT id FROM claims WHERE group_name = $1 ORDER BY id")
            .bind(name)
            .fetch_all(&mut *conn)
            .await?;
    let cas: Vec<String> =
        sqlx::query_scalar("SELECT name FROM external_cas WHERE jit_group = $1 ORDER BY name")
            .bind(name)
            .fetch_all(&mut *conn)
            .await?;
    Ok(claims
        .into_iter()
        .map(|c| format!("claim {c}"))
        .chain(cas.into_iter().map(|c| format!("trusted CA {c}")))
        .collect())
}

/// The roles of API key `id` (its row id), by name.
pub async fn api_key_roles(conn: &mut PolicyConn, id: &str) -> Result<Vec<String>, StoreError> {
    holder_roles(conn, "api_key_roles", "key_id", id).await
}
