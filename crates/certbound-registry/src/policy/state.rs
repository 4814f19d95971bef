//! Reading the current policy from the store (one transaction's snapshot).

use super::clients::read_clients;
use super::{ApiSpec, GrantSpec, GroupSpec, PolicyDoc};
use crate::error::RegistryError;
use crate::registry::ADMIN_API;
use crate::store::Grant;
use crate::store::policy::{self as db, PolicyConn};

pub(super) fn grants_of(grants: Vec<Grant>) -> Vec<GrantSpec> {
    grants
        .into_iter()
        .map(|g| GrantSpec {
            api: g.api_id,
            scopes: g.scopes,
        })
        .collect()
}

/// The grants of a document as the store takes them.
pub(super) fn store_grants(grants: &[GrantSpec]) -> Vec<Grant> {
    grants
        .iter()
        .map(|g| Grant {
            api_id: g.api.clone(),
            scopes: g.scopes.clone(),
        })
        .collect()
}

pub(super) async fn read_apis(conn: &mut PolicyConn) -> Result<Vec<ApiSpec>, RegistryError> {
    let algs = crate::store::signing_algs::read_api_signing_algs(conn).await?;
    Ok(db::read_apis(conn, ADMIN_API)
        .await?
        .into_iter()
        .map(|a| ApiSpec {
            alg: algs
                .iter()
                .find(|(id, _)| *id == a.id)
                .map(|(_, alg)| alg.clone()),
            id: a.id,
            scopes: a.scopes,
            ttl_secs: a.ttl_secs,
            format: a.format,
            claim: Vec::new(),
        })
        .collect())
}

pub(super) async fn read_groups(conn: &mut PolicyConn) -> Result<Vec<GroupSpec>, RegistryError> {
    Ok(db::read_groups(conn)
        .await?
        .into_iter()
        .map(|g| GroupSpec {
            name: g.name,
            roles: g.roles,
            attributes: Default::default(),
            grant: grants_of(g.grants),
        })
        .collect())
}

pub(super) async fn read_state(conn: &mut PolicyConn) -> Result<PolicyDoc, RegistryError> {
    let mut doc = PolicyDoc {
        api: read_apis(conn).await?,
        role: super::roles::read_roles(conn).await?,
        group: read_groups(conn).await?,
        client: read_clients(conn)
            .await?
            .into_iter()
            .map(|c| c.spec)
            .collect(),
        apikey: super::api_keys::specs(super::api_keys::read_keys(conn).await?),
    };
    super::attrs::fill(conn, &mut doc).await?;
    Ok(doc)
}

pub(super) async fn admin_scopes(conn: &mut PolicyConn) -> Result<Vec<String>, RegistryError> {
    Ok(db::admin_api_scopes(conn, ADMIN_API)
        .await?
        .unwrap_or_default())
}
