//! Policy as code in the store: the transactions of `certbound policy
//! export|plan|apply` and every statement they run.
//!
//! The broker's `policy` module keeps the document, its validation, the
//! plan (diff) and the audit wording; it reads and writes through the
//! functions here, each of which runs on the caller's connection
//! ([`PolicyConn`]) so that a whole `apply` (read, diff, write, audit) stays
//! ONE transaction:
//!
//! - [`Store::policy_read`] opens a read transaction ([`PolicyRead`]) for
//!   export and plan, [`Store::policy_write`] the single write transaction
//!   of apply ([`crate::WriteTx`]);
//! - [`read`]: the current APIs, groups with their grants, clients with
//!   their credentials and grants, and the counts that decide whether a
//!   removal needs `--prune` (unexpired tokens of an API, members of a
//!   group);
//! - [`write`](mod@write): upserting APIs, replacing groups and client
//!   credentials with their grants, removing groups and APIs, and the audit
//!   events of the applied changes. Clients are created and deleted with
//!   [`crate::insert_client`] and [`crate::revoke_client_row`].

pub mod attrs;
pub mod read;
pub mod write;

#[cfg(test)]
mod tests;

use serde::Serialize;
use sqlx::{Any, Transaction};

pub use read::{
    admin_api_scopes, group_enrollers, group_member_count, live_tokens_of_api, read_apis,
    read_clients, read_groups, read_roles,
};
pub use write::{
    ClientCredentials, delete_api, delete_group, delete_role, record_change, replace_client,
    replace_group, replace_role, replace_roles_of, upsert_api,
};

use super::{ClientAuthMethod, Grant, Store};
use crate::error::StoreError;

/// The connection the policy functions run on: a [`PolicyRead`] or a
/// [`crate::WriteTx`] (both dereference to it).
pub type PolicyConn = sqlx::AnyConnection;

/// A group with its grants, sorted by API.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyGroup {
    /// Group name.
    pub name: String,
    /// Its grants.
    pub grants: Vec<Grant>,
    /// Its roles, by name.
    pub roles: Vec<String>,
}

/// A role with its grants, sorted by API.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyRole {
    /// Role name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// Its grants.
    pub grants: Vec<Grant>,
}

/// An active client as policy sees it (its id is not policy, but apply
/// changes and removes clients by it).
#[derive(Debug, Clone, Serialize)]
pub struct PolicyClient {
    /// `client_id`.
    pub id: String,
    /// Name (the policy's match key).
    pub name: String,
    /// Whether it has a (not revoked) secret.
    pub has_secret: bool,
    /// Its method; `None` for a name this build does not know.
    pub auth_method: Option<ClientAuthMethod>,
    /// Subject DN for `tls_client_auth`.
    pub tls_subject: Option<String>,
    /// SAN for `tls_client_auth`.
    pub tls_san: Option<String>,
    /// Pinned thumbprint for `self_signed_tls_client_auth`.
    pub thumbprint: Option<String>,
    /// `private_key_jwt`: the JWK Set.
    pub jwks: Option<String>,
    /// `private_key_jwt`: the JWK Set URL.
    pub jwks_uri: Option<String>,
    /// Its grants, sorted by API.
    pub grants: Vec<Grant>,
    /// Its roles, by name.
    pub roles: Vec<String>,
}

/// A read transaction of policy (one consistent snapshot); dereferences to
/// its connection. Dropping it rolls back.
#[derive(Debug)]
pub struct PolicyRead {
    tx: Transaction<'static, Any>,
}

impl PolicyRead {
    /// Ends the transaction (it wrote nothing).
    pub async fn rollback(self) -> Result<(), StoreError> {
        Ok(self.tx.rollback().await?)
    }
}

impl std::ops::Deref for PolicyRead {
    type Target = PolicyConn;
    fn deref(&self) -> &PolicyConn {
        &self.tx
    }
}

impl std::ops::DerefMut for PolicyRead {
    fn deref_mut(&mut self) -> &mut PolicyConn {
        &mut self.tx
    }
}

impl Store {
    /// A read transaction: one consistent snapshot for export and plan.
    pub async fn policy_read(&self) -> Result<PolicyRead, StoreError> {
        Ok(PolicyRead {
            tx: self.pool.begin().await?,
        })
    }

    /// The single write transaction of `apply` ([`Store::begin_write`]:
    /// the current state is read, diffed and written under one write lock).
    pub async fn policy_write(&self) -> Result<crate::WriteTx, StoreError> {
        self.begin_write().await
    }
}
