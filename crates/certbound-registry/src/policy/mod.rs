//! Policy as code: the APIs, roles, groups (with their grants and roles),
//! backend-service clients (with their authentication method, grants and
//! roles) and API keys (grants and expiry; never the key) of a data
//! directory as one TOML document.
//!
//! - [`export`] writes the current policy ([`PolicyDoc::to_toml`]);
//! - [`plan`] compares a document with the store and lists the changes;
//! - [`apply`] makes the store match the document in ONE `BEGIN IMMEDIATE`
//!   transaction: everything is validated first, and either every change
//!   happens or none does.
//!
//! Values may use `${ENV_VAR}` ([`substitute`]); `$${` writes a literal `${`.
//! Devices, certificates, claims and secrets are inventory, not policy. The
//! built-in admin API (`urn:certbound:admin`) and the bootstrap `admin`
//! client are never exported, changed or removed. See `docs/policy.md`.

mod api_keys;
mod apply;
mod attrs;
mod clients;
mod document;
mod plan;
mod roles;
mod state;
mod validate;

pub use apply::{Applied, ApplyOptions, apply};
pub use document::{
    ApiKeySpec, ApiSpec, ClientSpec, GrantSpec, GroupSpec, PolicyDoc, RoleSpec, substitute,
};
pub use plan::{Change, Op, Plan};

use crate::error::RegistryError;
use crate::store::Store;

/// Name of the bootstrap admin client (made by `init`; not policy).
pub const ADMIN_CLIENT: &str = "admin";
/// Token lifetime of an API that does not give `ttl_secs`.
pub const DEFAULT_TTL_SECS: u64 = 3600;

/// The current policy of the store (sorted; admin API and client left out).
pub async fn export(store: &Store) -> Result<PolicyDoc, RegistryError> {
    let mut tx = store.policy_read().await?;
    let doc = state::read_state(&mut tx).await?;
    tx.rollback().await?;
    Ok(doc)
}

/// Validates `desired` and compares it with the store.
pub async fn plan(store: &Store, desired: &PolicyDoc) -> Result<Plan, RegistryError> {
    let mut desired = desired.clone();
    let mut tx = store.policy_read().await?;
    let result = async {
        let admin = state::admin_scopes(&mut tx).await?;
        validate::validate(&mut desired, &admin)?;
        Ok::<_, RegistryError>(plan::diff(&mut tx, &mut desired).await?.0)
    }
    .await;
    tx.rollback().await?;
    result
}
