//! Reading the current policy from the store (one transaction's snapshot).

use sqlx::{AnyConnection as SqliteConnection, Row};

use super::clients::read_clients;
use super::{ApiSpec, GrantSpec, GroupSpec, PolicyDoc};
use crate::error::BrokerError;
use crate::registry::ADMIN_API;

pub(super) fn scopes_of(s: &str) -> Vec<String> {
    s.split(' ')
        .filter(|x| !x.is_empty())
        .map(String::from)
        .collect()
}

pub(super) fn grants_of(rows: Vec<sqlx::any::AnyRow>) -> Vec<GrantSpec> {
    rows.into_iter()
        .map(|r| GrantSpec {
            api: r.get("api_id"),
            scopes: scopes_of(r.get("scopes")),
        })
        .collect()
}

pub(super) async fn read_apis(conn: &mut SqliteConnection) -> Result<Vec<ApiSpec>, BrokerError> {
    let rows =
        sqlx::query("SELECT id, format, ttl_secs, scopes FROM apis WHERE id != $1 ORDER BY id")
            .bind(ADMIN_API)
            .fetch_all(&mut *conn)
            .await?;
    Ok(rows
        .into_iter()
        .map(|r| ApiSpec {
            id: r.get("id"),
            scopes: scopes_of(r.get("scopes")),
            ttl_secs: u64::try_from(r.get::<i64, _>("ttl_secs")).unwrap_or(0),
            format: r.get("format"),
        })
        .collect())
}

pub(super) async fn read_groups(
    conn: &mut SqliteConnection,
) -> Result<Vec<GroupSpec>, BrokerError> {
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
        out.push(GroupSpec {
            name,
            grant: grants_of(rows),
        });
    }
    Ok(out)
}

pub(super) async fn read_state(conn: &mut SqliteConnection) -> Result<PolicyDoc, BrokerError> {
    Ok(PolicyDoc {
        api: read_apis(conn).await?,
        group: read_groups(conn).await?,
        client: read_clients(conn)
            .await?
            .into_iter()
            .map(|c| c.spec)
            .collect(),
    })
}

pub(super) async fn admin_scopes(conn: &mut SqliteConnection) -> Result<Vec<String>, BrokerError> {
    let s: Option<String> = sqlx::query_scalar("SELECT scopes FROM apis WHERE id = $1")
        .bind(ADMIN_API)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(s.as_deref().map(scopes_of).unwrap_or_default())
}
