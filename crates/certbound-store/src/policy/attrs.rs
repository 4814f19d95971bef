//! Policy as code: API claim declarations and group/client attributes,
//! read and written inside the policy transaction.

use std::collections::BTreeMap;

use sqlx::Row;

use super::PolicyConn;
use crate::attributes::{Attributes, ClaimDecl, claims_from_json, claims_to_json};
use crate::error::StoreError;

/// Every API's claim declarations (APIs without any left out), by id.
pub async fn read_api_claims(
    conn: &mut PolicyConn,
) -> Result<BTreeMap<String, Vec<ClaimDecl>>, StoreError> {
    let rows = sqlx::query("SELECT id, claims FROM apis WHERE claims <> '[]'")
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.get("id"),
                claims_from_json(&r.get::<String, _>("claims"))?,
            ))
        })
        .collect()
}

/// Attributes of every group (by name) with some.
pub async fn read_group_attributes(
    conn: &mut PolicyConn,
) -> Result<BTreeMap<String, Attributes>, StoreError> {
    read_attrs(
        conn,
        "SELECT name, attributes FROM groups WHERE attributes <> '{}'",
    )
    .await
}

/// Attributes of every active client (by NAME, the policy's key) with some.
pub async fn read_client_attributes(
    conn: &mut PolicyConn,
) -> Result<BTreeMap<String, Attributes>, StoreError> {
    read_attrs(
        conn,
        "SELECT name, attributes FROM clients WHERE attributes <> '{}' AND status = 'active'",
    )
    .await
}

async fn read_attrs(
    conn: &mut PolicyConn,
    sql: &str,
) -> Result<BTreeMap<String, Attributes>, StoreError> {
    let rows = sqlx::query(sql).fetch_all(&mut *conn).await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.get("name"),
                Attributes::from_json(&r.get::<String, _>("attributes"))?,
            ))
        })
        .collect()
}

/// Sets an API's claim declarations.
pub async fn write_api_claims(
    conn: &mut PolicyConn,
    api: &str,
    claims: &[ClaimDecl],
) -> Result<(), StoreError> {
    sqlx::query("UPDATE apis SET claims = $1 WHERE id = $2")
        .bind(claims_to_json(claims))
        .bind(api)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Sets a group's attributes.
pub async fn write_group_attributes(
    conn: &mut PolicyConn,
    name: &str,
    attrs: &Attributes,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE groups SET attributes = $1 WHERE name = $2")
        .bind(attrs.to_json())
        .bind(name)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Sets an active client's attributes, by name.
pub async fn write_client_attributes(
    conn: &mut PolicyConn,
    name: &str,
    attrs: &Attributes,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE clients SET attributes = $1 WHERE name = $2 AND status = 'active'")
        .bind(attrs.to_json())
        .bind(name)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Every active API key's attributes (not empty), by name.
pub async fn read_api_key_attributes(
    conn: &mut PolicyConn,
) -> Result<BTreeMap<String, Attributes>, StoreError> {
    read_attrs(
        conn,
        "SELECT name, attributes FROM api_keys WHERE attributes <> '{}' AND status = 'active'",
    )
    .await
}

/// Sets an active API key's attributes, by name.
pub async fn write_api_key_attributes(
    conn: &mut PolicyConn,
    name: &str,
    attrs: &Attributes,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE api_keys SET attributes = $1 WHERE name = $2 AND status = 'active'")
        .bind(attrs.to_json())
        .bind(name)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
