//! Roles (the Logto model): a named set of permissions across APIs, given
//! to clients, groups and API keys. A holder's effective permissions are the union of
//! its own grants and its roles' grants; a running broker applies every
//! change from the next token on (the change feed names the holders). Every
//! change is audited (`role.*`).

use serde::Serialize;

use super::{Registry, check_token};
use crate::clock::unix_now;
use crate::error::RegistryError;
use crate::store::{Grant, Role, RoleHolder};

/// Longest role description, bytes.
pub const MAX_DESCRIPTION: usize = 512;

/// Who gets (or loses) a role, as the operator names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleTarget {
    /// A client, by `client_id` or name.
    Client(String),
    /// A group, by name.
    Group(String),
    /// An active API key, by name.
    ApiKey(String),
}

/// The result of [`Registry::assign_role`] and [`Registry::unassign_role`].
#[derive(Debug, Clone, Serialize)]
pub struct RoleAssignment {
    /// Role name.
    pub role: String,
    /// `client`, `group` or `apikey`.
    pub holder_kind: &'static str,
    /// The client id, group name or API key name.
    pub holder: String,
    /// Whether anything changed (false: it held / did not hold it already).
    pub changed: bool,
}

/// The result of [`Registry::set_role_grant`] and [`Registry::remove_role_grant`].
#[derive(Debug, Clone, Serialize)]
pub struct RoleGrantChange {
    /// Role name.
    pub role: String,
    /// API identifier.
    pub api: String,
    /// Scopes granted now (empty after a removal).
    pub scopes: Vec<String>,
    /// Scopes granted before; `None`: there was no grant for this API.
    pub previous: Option<Vec<String>>,
}

fn grants_text(grants: &[Grant]) -> String {
    grants
        .iter()
        .map(|g| format!("{}={}", g.api_id, g.scopes.join(" ")))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Registry {
    /// Creates a role with its grants (each `(API, "scope scope")`, checked
    /// against the API's scopes as for groups and clients). A role may start
    /// with no grant (`certbound doctor` flags one that stays so).
    pub async fn create_role(
        &self,
        name: &str,
        description: &str,
        grants: &[(String, String)],
    ) -> Result<Role, RegistryError> {
        check_token("role name", name)?;
        if description.len() > MAX_DESCRIPTION {
            return Err(RegistryError::Invalid(format!(
                "the role description is {} bytes; keep it to {MAX_DESCRIPTION}",
                description.len()
            )));
        }
        let mut checked = Vec::new();
        for (api, scopes) in grants {
            checked.push(self.check_grant(api, scopes).await?);
        }
        let checked = crate::store::merge_grants(&checked);
        self.store
            .create_role(name, description, &checked, unix_now())
            .await?;
        self.audit("role.created", name, grants_text(&checked))
            .await?;
        self.role(name).await
    }

    /// One role with its grants and holders.
    pub async fn role(&self, name: &str) -> Result<Role, RegistryError> {
        self.store
            .get_role(name)
            .await?
            .ok_or_else(|| RegistryError::NotFound {
                kind: "role",
                name: name.into(),
                hint: "; `certbound role list` shows them".into(),
            })
    }

    /// Every role.
    pub async fn list_roles(&self) -> Result<Vec<Role>, RegistryError> {
        Ok(self.store.list_roles().await?)
    }

    /// Deletes a role. Refused while clients or groups hold it, unless
    /// `force`, which takes it from them (their next tokens lose its
    /// permissions).
    pub async fn delete_role(&self, name: &str, force: bool) -> Result<Role, RegistryError> {
        let role = self.role(name).await?;
        let holders = role.clients.len() + role.groups.len() + role.api_keys.len();
        if holders > 0 && !force {
            return Err(RegistryError::Invalid(format!(
                "role {name} is held by {} client(s), {} group(s) and {} API key(s) ({}); pass \
                 --force to delete it and take it from them, or `certbound role unassign` first",
                role.clients.len(),
                role.groups.len(),
                role.api_keys.len(),
                role.clients
                    .iter()
                    .map(|c| format!("client {c}"))
                    .chain(role.groups.iter().map(|g| format!("group {g}")))
                    .chain(role.api_keys.iter().map(|k| format!("API key {k}")))
                    .take(5)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let role = self.store.delete_role(name).await?;
        self.audit(
            "role.deleted",
            name,
            format!(
                "force={force} clients={} groups={}",
                role.clients.join(","),
                role.groups.join(",")
            ),
        )
        .await?;
        Ok(role)
    }

    /// Sets (adds or replaces) a role's grant for one API. Every holder
    /// gets the new scopes from its next token on.
    pub async fn set_role_grant(
        &self,
        role: &str,
        api_id: &str,
        scopes: &str,
    ) -> Result<RoleGrantChange, RegistryError> {
        self.role(role).await?;
        let grant = self.check_grant(api_id, scopes).await?;
        let previous = self.store.set_role_grant(role, &grant).await?;
        self.audit(
            "role.grant_set",
            role,
            format!(
                "api={api_id} scopes={} previous={}",
                grant.scopes.join(" "),
                previous
                    .as_ref()
                    .map_or_else(|| "(none)".to_string(), |p| p.join(" "))
            ),
        )
        .await?;
        Ok(RoleGrantChange {
            role: role.into(),
            api: api_id.into(),
            scopes: grant.scopes,
            previous,
        })
    }

    /// Removes a role's grant for one API: its holders' next tokens lose
    /// those scopes (unless another grant gives them).
    pub async fn remove_role_grant(
        &self,
        role: &str,
        api_id: &str,
    ) -> Result<RoleGrantChange, RegistryError> {
        self.role(role).await?;
        let removed = self.store.remove_role_grant(role, api_id).await?;
        self.audit(
            "role.grant_removed",
            role,
            format!("api={api_id} scopes={}", removed.join(" ")),
        )
        .await?;
        Ok(RoleGrantChange {
            role: role.into(),
            api: api_id.into(),
            scopes: Vec::new(),
            previous: Some(removed),
        })
    }

    /// Gives a client or a group the role.
    pub async fn assign_role(
        &self,
        role: &str,
        target: &RoleTarget,
    ) -> Result<RoleAssignment, RegistryError> {
        self.change_role(role, target, true).await
    }

    /// Takes the role from a client or a group.
    pub async fn unassign_role(
        &self,
        role: &str,
        target: &RoleTarget,
    ) -> Result<RoleAssignment, RegistryError> {
        self.change_role(role, target, false).await
    }

    async fn change_role(
        &self,
        role: &str,
        target: &RoleTarget,
        assign: bool,
    ) -> Result<RoleAssignment, RegistryError> {
        self.role(role).await?;
        let (kind, holder_id) = match target {
            RoleTarget::Client(id_or_name) => ("client", self.find_client(id_or_name).await?.id),
            RoleTarget::Group(name) => {
                if !self.store.group_exists(name).await? {
                    return Err(RegistryError::NotFound {
                        kind: "group",
                        name: name.clone(),
                        hint: "; `certbound group list` shows them".into(),
                    });
                }
                ("group", name.clone())
            }
            RoleTarget::ApiKey(name) => {
                let key = self.store.api_key_by_name(name).await?.ok_or_else(|| {
                    RegistryError::NotFound {
                        kind: "API key",
                        name: name.clone(),
                        hint: "; `certbound apikey list` shows them".into(),
                    }
                })?;
                ("apikey", key.id)
            }
        };
        let holder = match kind {
            "client" => RoleHolder::Client(&holder_id),
            "apikey" => RoleHolder::ApiKey(&holder_id),
            _ => RoleHolder::Group(&holder_id),
        };
        let changed = if assign {
            self.store.assign_role(role, holder).await?
        } else {
            self.store.unassign_role(role, holder).await?
        };
        if changed {
            let action = if assign {
                "role.assigned"
            } else {
                "role.unassigned"
            };
            self.audit(action, role, format!("{kind}={holder_id}"))
                .await?;
        }
        let holder_name = match target {
            RoleTarget::ApiKey(name) => name.clone(),
            _ => holder_id,
        };
        Ok(RoleAssignment {
            role: role.into(),
            holder_kind: kind,
            holder: holder_name,
            changed,
        })
    }

    /// The roles a group holds.
    pub async fn group_roles(&self, group: &str) -> Result<Vec<String>, RegistryError> {
        Ok(self.store.roles_of(RoleHolder::Group(group)).await?)
    }
}
