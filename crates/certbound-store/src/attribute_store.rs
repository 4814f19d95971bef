//! Attributes of devices, groups, clients and API keys, and the custom claims of
//! APIs, in the [`Store`] (see [`crate::attributes`] for the rules).

use sqlx::Row;

use super::Store;
use crate::attributes::{
    Attributes, ClaimDecl, ClaimValue, check_attribute_name, claims_from_json, claims_to_json,
    validate_claims,
};
use crate::error::StoreError;

/// Who holds attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrHolder {
    /// A device, by id.
    Device,
    /// A group, by name.
    Group,
    /// An OAuth client, by `client_id`.
    Client,
    /// An API key, by its row id (never the key).
    ApiKey,
}

impl AttrHolder {
    /// `device`, `group` or `client`.
    pub fn as_str(self) -> &'static str {
        match self {
            AttrHolder::Device => "device",
            AttrHolder::Group => "group",
            AttrHolder::Client => "client",
            AttrHolder::ApiKey => "apikey",
        }
    }

    fn table_key(self) -> (&'static str, &'static str) {
        match self {
            AttrHolder::Device => ("devices", "id"),
            AttrHolder::Group => ("groups", "name"),
            AttrHolder::Client => ("clients", "id"),
            AttrHolder::ApiKey => ("api_keys", "id"),
        }
    }

    fn not_found(self, key: &str) -> StoreError {
        let hint = match self {
            AttrHolder::Device => "; `certbound device list` shows them",
            AttrHolder::Group => "; `certbound group list` shows them",
            AttrHolder::Client => "; `certbound client list` shows them",
            AttrHolder::ApiKey => "; `certbound apikey list` shows them",
        };
        StoreError::NotFound {
            kind: self.as_str(),
            name: key.into(),
            hint: hint.into(),
        }
    }
}

/// An attribute change: the attributes before and after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrChange {
    /// Before the change.
    pub before: Attributes,
    /// After it.
    pub after: Attributes,
}

impl Store {
    /// The attributes of one holder. [`StoreError::NotFound`] when there is
    /// no such holder.
    pub async fn attributes(
        &self,
        holder: AttrHolder,
        key: &str,
    ) -> Result<Attributes, StoreError> {
        let (table, column) = holder.table_key();
        let text: Option<String> = sqlx::query_scalar(&format!(
            "SELECT attributes FROM {table} WHERE {column} = $1"
        ))
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        Attributes::from_json(&text.ok_or_else(|| holder.not_found(key))?)
    }

    /// Sets the attributes `set` and removes the ones named in `unset`, in
    /// one transaction; the result is checked (bounds, names, values)
    /// before it is written. [`StoreError::NotFound`] when there is no such
    /// holder, [`StoreError::Invalid`] for a result out of bounds.
    pub async fn change_attributes(
        &self,
        holder: AttrHolder,
        key: &str,
        set: &[(String, ClaimValue)],
        unset: &[String],
    ) -> Result<AttrChange, StoreError> {
        for name in unset {
            check_attribute_name(name)?;
        }
        self.rewrite_attributes(holder, key, |before| {
            let mut after = before.clone();
            for name in unset {
                after.0.remove(name);
            }
            for (k, v) in set {
                after.0.insert(k.clone(), v.clone());
            }
            after
        })
        .await
    }

    /// Replaces all attributes of one holder (policy as code).
    pub async fn replace_attributes(
        &self,
        holder: AttrHolder,
        key: &str,
        attrs: &Attributes,
    ) -> Result<AttrChange, StoreError> {
        self.rewrite_attributes(holder, key, |_| attrs.clone())
            .await
    }

    async fn rewrite_attributes(
        &self,
        holder: AttrHolder,
        key: &str,
        change: impl FnOnce(&Attributes) -> Attributes,
    ) -> Result<AttrChange, StoreError> {
        let (table, column) = holder.table_key();
        let mut tx = self.begin_write().await?;
        let text: Option<String> = sqlx::query_scalar(&format!(
            "SELECT attributes FROM {table} WHERE {column} = $1"
        ))
        .bind(key)
        .fetch_optional(&mut *tx)
        .await?;
        let before = Attributes::from_json(&text.ok_or_else(|| holder.not_found(key))?)?;
        let after = change(&before);
        after.validate()?;
        if after != before {
            sqlx::query(&format!(
                "UPDATE {table} SET attributes = $1 WHERE {column} = $2"
            ))
            .bind(after.to_json())
            .bind(key)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(AttrChange { before, after })
    }

    /// Every group's attributes (groups without any left out), by name.
    pub async fn group_attributes(&self) -> Result<Vec<(String, Attributes)>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, attributes FROM groups WHERE attributes <> '{}' ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.get("name"),
                    Attributes::from_json(&r.get::<String, _>("attributes"))?,
                ))
            })
            .collect()
    }

    /// The groups of one device with their attributes, by group name.
    pub async fn device_group_attributes(
        &self,
        device_id: &str,
    ) -> Result<Vec<(String, Attributes)>, StoreError> {
        let rows = sqlx::query(
            "SELECT g.name, g.attributes FROM groups g JOIN device_groups dg ON dg.group_name = g.name \
             WHERE dg.device_id = $1 ORDER BY g.name",
        )
        .bind(device_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.get("name"),
                    Attributes::from_json(&r.get::<String, _>("attributes"))?,
                ))
            })
            .collect()
    }

    /// Every device that has attributes of its own or is in a group with
    /// attributes: `(device, own attributes, groups)`, for `certbound
    /// doctor`.
    pub async fn devices_with_attributes(
        &self,
    ) -> Result<Vec<(String, Attributes, Vec<String>)>, StoreError> {
        let rows = sqlx::query(
            "SELECT d.id, d.attributes, dg.group_name FROM devices d \
             LEFT JOIN device_groups dg ON dg.device_id = d.id \
             WHERE d.attributes <> '{}' OR dg.group_name IN (SELECT name FROM groups WHERE attributes <> '{}') \
             ORDER BY d.id, dg.group_name",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out: Vec<(String, Attributes, Vec<String>)> = Vec::new();
        for r in &rows {
            let id: String = r.get("id");
            let group: Option<String> = r.get("group_name");
            if out.last().is_none_or(|(last, _, _)| *last != id) {
                let own = Attributes::from_json(&r.get::<String, _>("attributes"))?;
                out.push((id, own, Vec::new()));
            }
            if let (Some(g), Some(last)) = (group, out.last_mut()) {
                last.2.push(g);
            }
        }
        Ok(out)
    }

    /// The custom claims an API declares. [`StoreError::NotFound`] when
    /// there is no such API.
    pub async fn api_claims(&self, api: &str) -> Result<Vec<ClaimDecl>, StoreError> {
        let text: Option<String> = sqlx::query_scalar("SELECT claims FROM apis WHERE id = $1")
            .bind(api)
            .fetch_optional(&self.pool)
            .await?;
        claims_from_json(&text.ok_or_else(|| no_api(api))?)
    }

    /// Every API's custom claims (APIs without any left out), by id.
    pub async fn all_api_claims(&self) -> Result<Vec<(String, Vec<ClaimDecl>)>, StoreError> {
        let rows = sqlx::query("SELECT id, claims FROM apis WHERE claims <> '[]' ORDER BY id")
            .fetch_all(&self.pool)
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

    /// Replaces the custom claims an API declares (checked first); returns
    /// the previous ones.
    pub async fn set_api_claims(
        &self,
        api: &str,
        decls: &[ClaimDecl],
    ) -> Result<Vec<ClaimDecl>, StoreError> {
        validate_claims(decls)?;
        let mut tx = self.begin_write().await?;
        let text: Option<String> = sqlx::query_scalar("SELECT claims FROM apis WHERE id = $1")
            .bind(api)
            .fetch_optional(&mut *tx)
            .await?;
        let previous = claims_from_json(&text.ok_or_else(|| no_api(api))?)?;
        if previous != decls {
            sqlx::query("UPDATE apis SET claims = $1 WHERE id = $2")
                .bind(claims_to_json(decls))
                .bind(api)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(previous)
    }
}

fn no_api(id: &str) -> StoreError {
    StoreError::NotFound {
        kind: "API",
        name: id.into(),
        hint: "; `certbound api list` shows them".into(),
    }
}
