//! Roles (the Logto model): a role is a named set of grants across APIs;
//! clients and groups get roles, and their effective permissions are the
//! union of their own grants and their roles' grants
//! ([`crate::Client::granted_for`], [`crate::snapshot`] for groups).
//!
//! Every change is one `BEGIN IMMEDIATE` transaction. The change feed
//! triggers (migration 17) append the holders of a changed role, so running
//! instances apply a change from the next token on.

use serde::Serialize;
use sqlx::Row;

use super::{Grant, Store, split_scopes, to_i64, to_u64};
use crate::error::StoreError;

/// Who holds a role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleHolder<'a> {
    /// A client, by `client_id`.
    Client(&'a str),
    /// A group, by name.
    Group(&'a str),
    /// An API key, by its row id (not the key).
    ApiKey(&'a str),
}

impl RoleHolder<'_> {
    fn table(self) -> (&'static str, &'static str, &'static str, &'static str) {
        match self {
            RoleHolder::Client(_) => ("client_roles", "client_id", "clients", "id"),
            RoleHolder::Group(_) => ("group_roles", "group_name", "groups", "name"),
            RoleHolder::ApiKey(_) => ("api_key_roles", "key_id", "api_keys", "id"),
        }
    }

    fn key(self) -> &'static str {
        match self {
            RoleHolder::Client(_) => "client",
            RoleHolder::Group(_) => "group",
            RoleHolder::ApiKey(_) => "apikey",
        }
    }

    fn id(self) -> String {
        match self {
            RoleHolder::Client(id) | RoleHolder::Group(id) | RoleHolder::ApiKey(id) => {
                id.to_string()
            }
        }
    }
}

/// A role with its grants and holders.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Role {
    /// Role name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// Its permissions.
    pub grants: Vec<Grant>,
    /// Clients holding it, by `client_id`.
    pub clients: Vec<String>,
    /// Groups holding it, by name.
    pub groups: Vec<String>,
    /// Active API keys holding it, by name.
    pub api_keys: Vec<String>,
    /// Creation time, Unix seconds.
    pub created_at: u64,
}

fn no_role(name: &str) -> StoreError {
    StoreError::NotFound {
        kind: "role",
        name: name.into(),
        hint: "; `certbound role list` shows them".into(),
    }
}

impl Store {
    /// Creates a role with its grants (the caller checked them against the
    /// APIs). [`StoreError::Conflict`] when the name is taken.
    pub async fn create_role(
        &self,
        name: &str,
        description: &str,
        grants: &[Grant],
        now: u64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        if sqlx::query("SELECT 1 FROM roles WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?
            .is_some()
        {
            return Err(StoreError::Conflict {
                kind: "role",
                name: name.into(),
            });
        }
        sqlx::query("INSERT INTO roles (name, description, created_at) VALUES ($1, $2, $3)")
            .bind(name)
            .bind(description)
            .bind(to_i64(now))
            .execute(&mut *tx)
            .await?;
        for g in grants {
            sqlx::query("INSERT INTO role_grants (role_name, api_id, scopes) VALUES ($1, $2, $3)")
                .bind(name)
                .bind(&g.api_id)
                .bind(g.scopes.join(" "))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Deletes a role. Its holders lose it first (so the change feed names
    /// them), then its grants. Returns the role as it was.
    pub async fn delete_role(&self, name: &str) -> Result<Role, StoreError> {
        let role = self.get_role(name).await?.ok_or_else(|| no_role(name))?;
        let mut tx = self.begin_write().await?;
        for sql in [
            "DELETE FROM client_roles WHERE role_name = $1",
            "DELETE FROM group_roles WHERE role_name = $1",
            "DELETE FROM api_key_roles WHERE role_name = $1",
            "DELETE FROM role_grants WHERE role_name = $1",
            "DELETE FROM roles WHERE name = $1",
        ] {
            sqlx::query(sql).bind(name).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(role)
    }

    /// Sets (adds or replaces) a role's grant for one API; returns the
    /// replaced scopes (`None`: a new grant).
    pub async fn set_role_grant(
        &self,
        role: &str,
        grant: &Grant,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let mut tx = self.begin_write().await?;
        if sqlx::query("SELECT 1 FROM roles WHERE name = $1")
            .bind(role)
            .fetch_optional(&mut *tx)
            .await?
            .is_none()
        {
            return Err(no_role(role));
        }
        let previous =
            sqlx::query("SELECT scopes FROM role_grants WHERE role_name = $1 AND api_id = $2")
                .bind(role)
                .bind(&grant.api_id)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| split_scopes(r.get("scopes")));
        sqlx::query(
            "INSERT INTO role_grants (role_name, api_id, scopes) VALUES ($1, $2, $3) \
             ON CONFLICT (role_name, api_id) DO UPDATE SET scopes = excluded.scopes",
        )
        .bind(role)
        .bind(&grant.api_id)
        .bind(grant.scopes.join(" "))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(previous)
    }

    /// Removes a role's grant for one API; returns its scopes.
    pub async fn remove_role_grant(
        &self,
        role: &str,
        api_id: &str,
    ) -> Result<Vec<String>, StoreError> {
        let mut tx = self.begin_write().await?;
        let scopes =
            sqlx::query("SELECT scopes FROM role_grants WHERE role_name = $1 AND api_id = $2")
                .bind(role)
                .bind(api_id)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| split_scopes(r.get("scopes")))
                .ok_or_else(|| StoreError::NotFound {
                    kind: "grant of API",
                    name: api_id.into(),
                    hint: format!(" in role {role}; `certbound role list` shows the grants"),
                })?;
        sqlx::query("DELETE FROM role_grants WHERE role_name = $1 AND api_id = $2")
            .bind(role)
            .bind(api_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(scopes)
    }

    /// Gives `holder` the role; `false` when it held it already.
    pub async fn assign_role(
        &self,
        role: &str,
        holder: RoleHolder<'_>,
    ) -> Result<bool, StoreError> {
        let (table, column, owner, owner_key) = holder.table();
        let mut tx = self.begin_write().await?;
        if sqlx::query("SELECT 1 FROM roles WHERE name = $1")
            .bind(role)
            .fetch_optional(&mut *tx)
            .await?
            .is_none()
        {
            return Err(no_role(role));
        }
        if sqlx::query(&format!("SELECT 1 FROM {owner} WHERE {owner_key} = $1"))
            .bind(holder.id())
            .fetch_optional(&mut *tx)
            .await?
            .is_none()
        {
            return Err(StoreError::NotFound {
                kind: holder.key(),
                name: holder.id(),
                hint: format!("; `certbound {} list` shows them", holder.key()),
            });
        }
        let done = sqlx::query(&format!(
            "INSERT INTO {table} ({column}, role_name) VALUES ($1, $2) ON CONFLICT DO NOTHING"
        ))
        .bind(holder.id())
        .bind(role)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(done > 0)
    }

    /// Takes the role from `holder`; `false` when it did not hold it.
    pub async fn unassign_role(
        &self,
        role: &str,
        holder: RoleHolder<'_>,
    ) -> Result<bool, StoreError> {
        let (table, column, _, _) = holder.table();
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(&format!(
            "DELETE FROM {table} WHERE {column} = $1 AND role_name = $2"
        ))
        .bind(holder.id())
        .bind(role)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(done > 0)
    }

    /// One role.
    pub async fn get_role(&self, name: &str) -> Result<Option<Role>, StoreError> {
        let Some(row) =
            sqlx::query("SELECT name, description, created_at FROM roles WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?
        else {
            return Ok(None);
        };
        Ok(Some(self.role_from_row(&row).await?))
    }

    /// Every role, by name.
    pub async fn list_roles(&self) -> Result<Vec<Role>, StoreError> {
        let rows = sqlx::query("SELECT name, description, created_at FROM roles ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(self.role_from_row(row).await?);
        }
        Ok(out)
    }

    /// The roles `holder` has, by name.
    pub async fn roles_of(&self, holder: RoleHolder<'_>) -> Result<Vec<String>, StoreError> {
        let (table, column, _, _) = holder.table();
        Ok(sqlx::query_scalar(&format!(
            "SELECT role_name FROM {table} WHERE {column} = $1 ORDER BY role_name"
        ))
        .bind(holder.id())
        .fetch_all(&self.pool)
        .await?)
    }

    /// The grants `holder` has through its roles (one entry per role and
    /// API; [`merge_grants`] unions them).
    pub async fn role_grants_of(&self, holder: RoleHolder<'_>) -> Result<Vec<Grant>, StoreError> {
        let (table, column, _, _) = holder.table();
        let rows = sqlx::query(&format!(
            "SELECT rg.api_id, rg.scopes FROM {table} h JOIN role_grants rg ON rg.role_name = h.role_name \
             WHERE h.{column} = $1 ORDER BY rg.api_id, rg.role_name"
        ))
        .bind(holder.id())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| Grant {
                api_id: r.get("api_id"),
                scopes: split_scopes(r.get("scopes")),
            })
            .collect())
    }

    async fn role_from_row(&self, row: &sqlx::any::AnyRow) -> Result<Role, StoreError> {
        let name: String = row.get("name");
        let grants = sqlx::query(
            "SELECT api_id, scopes FROM role_grants WHERE role_name = $1 ORDER BY api_id",
        )
        .bind(&name)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|r| Grant {
            api_id: r.get("api_id"),
            scopes: split_scopes(r.get("scopes")),
        })
        .collect();
        let clients = sqlx::query_scalar(
            "SELECT client_id FROM client_roles WHERE role_name = $1 ORDER BY client_id",
        )
        .bind(&name)
        .fetch_all(&self.pool)
        .await?;
        let groups = sqlx::query_scalar(
            "SELECT group_name FROM group_roles WHERE role_name = $1 ORDER BY group_name",
        )
        .bind(&name)
        .fetch_all(&self.pool)
        .await?;
        let api_keys = sqlx::query_scalar(
            "SELECT k.name FROM api_key_roles r JOIN api_keys k ON k.id = r.key_id \
             WHERE r.role_name = $1 AND k.status = 'active' ORDER BY k.name",
        )
        .bind(&name)
        .fetch_all(&self.pool)
        .await?;
        Ok(Role {
            api_keys,
            description: row.get("description"),
            created_at: to_u64(row.get("created_at")),
            name,
            grants,
            clients,
            groups,
        })
    }
}

/// The union of `grants` per API, in API order, scopes in first-seen order
/// (a holder's own grants and its roles' grants).
pub fn merge_grants<'a>(grants: impl IntoIterator<Item = &'a Grant>) -> Vec<Grant> {
    let mut out: Vec<Grant> = Vec::new();
    for g in grants {
        match out.iter_mut().find(|o| o.api_id == g.api_id) {
            Some(o) => {
                for s in &g.scopes {
                    if !o.scopes.contains(s) {
                        o.scopes.push(s.clone());
                    }
                }
            }
            None => out.push(g.clone()),
        }
    }
    out.sort_by(|a, b| a.api_id.cmp(&b.api_id));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(api: &str, scopes: &str) -> Grant {
        Grant {
            api_id: api.into(),
            scopes: split_scopes(scopes),
        }
    }

    #[test]
    fn merge_is_the_union_per_api() {
        let merged = merge_grants(&[g("b", "x"), g("a", "r w"), g("a", "w d"), g("b", "x y")]);
        assert_eq!(merged, vec![g("a", "r w d"), g("b", "x y")]);
        assert!(merge_grants(&[]).is_empty());
    }
}
