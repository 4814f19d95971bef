//! Changes to existing APIs, groups and grants (`certbound api set-ttl`,
//! `group delete|grant|revoke-grant`). Each change is one `BEGIN IMMEDIATE`
//! transaction; the broker reads these tables on every token request, so a
//! running broker applies a change from its next request on.

use sqlx::Row;

use super::{Grant, Store, split_scopes, to_i64, to_u64};
use crate::error::StoreError;

/// What [`Store::delete_group`] did, or why it did not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupDeletion {
    /// The group and its grants are gone; `removed_members` are the devices
    /// whose membership was removed with it (empty unless forced).
    Deleted {
        /// Devices that were members, sorted.
        removed_members: Vec<String>,
    },
    /// Not deleted: these devices are members (and deletion was not forced).
    HasMembers(Vec<String>),
    /// Not deleted: these claims enroll devices into it.
    UsedByClaims(Vec<String>),
}

fn no_api(id: &str) -> StoreError {
    StoreError::NotFound {
        kind: "API",
        name: id.into(),
        hint: "; `certbound api list` shows them".into(),
    }
}

fn no_group(name: &str) -> StoreError {
    StoreError::NotFound {
        kind: "group",
        name: name.into(),
        hint: "; `certbound group list` shows them".into(),
    }
}

impl Store {
    /// Sets the token lifetime of an API; returns the previous one.
    /// [`StoreError::NotFound`] when there is no such API.
    pub async fn set_api_ttl(&self, id: &str, ttl_secs: u64) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let previous: Option<i64> = sqlx::query_scalar("SELECT ttl_secs FROM apis WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let previous = previous.ok_or_else(|| no_api(id))?;
        sqlx::query("UPDATE apis SET ttl_secs = $1 WHERE id = $2")
            .bind(to_i64(ttl_secs))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(to_u64(previous))
    }

    /// The devices in a group, sorted.
    pub async fn group_members(&self, name: &str) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT device_id FROM device_groups WHERE group_name = $1 ORDER BY device_id",
        )
        .bind(name)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Deletes a group and its grants. A group with member devices is kept
    /// unless `force`, which removes the memberships (the devices stay, in
    /// their other groups); a group that claims enroll into is always kept.
    /// [`StoreError::NotFound`] when there is no such group.
    pub async fn delete_group(&self, name: &str, force: bool) -> Result<GroupDeletion, StoreError> {
        let mut tx = self.begin_write().await?;
        let exists = sqlx::query("SELECT 1 FROM groups WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(no_group(name));
        }
        let claims: Vec<String> =
            sqlx::query_scalar("SELECT id FROM claims WHERE group_name = $1 ORDER BY id")
                .bind(name)
                .fetch_all(&mut *tx)
                .await?;
        if !claims.is_empty() {
            return Ok(GroupDeletion::UsedByClaims(claims));
        }
        let members: Vec<String> = sqlx::query_scalar(
            "SELECT device_id FROM device_groups WHERE group_name = $1 ORDER BY device_id",
        )
        .bind(name)
        .fetch_all(&mut *tx)
        .await?;
        if !members.is_empty() && !force {
            return Ok(GroupDeletion::HasMembers(members));
        }
        sqlx::query("DELETE FROM device_groups WHERE group_name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM grants WHERE group_name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM groups WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(GroupDeletion::Deleted {
            removed_members: members,
        })
    }

    /// Adds the grant to a group, or replaces the scopes of its grant for
    /// the same API; returns the replaced scopes (`None`: a new grant).
    /// The caller checks the API and scopes; [`StoreError::NotFound`] when
    /// the group or the API does not exist.
    pub async fn set_grant(
        &self,
        group: &str,
        grant: &Grant,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let mut tx = self.begin_write().await?;
        let exists = sqlx::query("SELECT 1 FROM groups WHERE name = $1")
            .bind(group)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(no_group(group));
        }
        let api = sqlx::query("SELECT 1 FROM apis WHERE id = $1")
            .bind(&grant.api_id)
            .fetch_optional(&mut *tx)
            .await?;
        if api.is_none() {
            return Err(no_api(&grant.api_id));
        }
        let previous =
            sqlx::query("SELECT scopes FROM grants WHERE group_name = $1 AND api_id = $2")
                .bind(group)
                .bind(&grant.api_id)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| split_scopes(r.get("scopes")));
        sqlx::query(
            "INSERT INTO grants (group_name, api_id, scopes) VALUES ($1, $2, $3) \
             ON CONFLICT (group_name, api_id) DO UPDATE SET scopes = excluded.scopes",
        )
        .bind(group)
        .bind(&grant.api_id)
        .bind(grant.scopes.join(" "))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(previous)
    }

    /// Removes a group's grant for one API; returns its scopes.
    /// [`StoreError::NotFound`] when the group or that grant does not exist.
    pub async fn remove_grant(&self, group: &str, api_id: &str) -> Result<Vec<String>, StoreError> {
        let mut tx = self.begin_write().await?;
        let exists = sqlx::query("SELECT 1 FROM groups WHERE name = $1")
            .bind(group)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(no_group(group));
        }
        let scopes = sqlx::query("SELECT scopes FROM grants WHERE group_name = $1 AND api_id = $2")
            .bind(group)
            .bind(api_id)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| split_scopes(r.get("scopes")))
            .ok_or_else(|| StoreError::NotFound {
                kind: "grant of API",
                name: api_id.into(),
                hint: format!(" in group {group}; `certbound group list` shows the grants"),
            })?;
        sqlx::query("DELETE FROM grants WHERE group_name = $1 AND api_id = $2")
            .bind(group)
            .bind(api_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(scopes)
    }
}

/// Inserts `grants` for group `name` inside the caller's transaction (the
/// group exists and has none of these APIs granted yet).
pub(crate) async fn insert_grants(
    conn: &mut sqlx::AnyConnection,
    name: &str,
    grants: &[Grant],
) -> Result<(), StoreError> {
    for g in grants {
        sqlx::query("INSERT INTO grants (group_name, api_id, scopes) VALUES ($1, $2, $3)")
            .bind(name)
            .bind(&g.api_id)
            .bind(g.scopes.join(" "))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

impl Store {
    /// Puts device `device` into group `group` (`true`) or takes it out
    /// (`false`); returns whether anything changed. The change feed carries
    /// it to running brokers (triggers on `device_groups`).
    /// [`StoreError::NotFound`] when the device or the group does not exist.
    pub async fn set_device_membership(
        &self,
        device: &str,
        group: &str,
        member: bool,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let exists = sqlx::query("SELECT 1 FROM devices WHERE id = $1")
            .bind(device)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound {
                kind: "device",
                name: device.into(),
                hint: "; `certbound device list` shows them".into(),
            });
        }
        let exists = sqlx::query("SELECT 1 FROM groups WHERE name = $1")
            .bind(group)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(no_group(group));
        }
        let done = if member {
            sqlx::query(
                "INSERT INTO device_groups (device_id, group_name) VALUES ($1, $2) \
                 ON CONFLICT (device_id, group_name) DO NOTHING",
            )
        } else {
            sqlx::query("DELETE FROM device_groups WHERE device_id = $1 AND group_name = $2")
        }
        .bind(device)
        .bind(group)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }
}
