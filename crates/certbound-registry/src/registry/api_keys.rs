//! Operator operations on API keys: create (the key is shown once), list
//! (never the key nor its hash), revoke (at once, on every instance).

use serde::Serialize;

use super::{ADMIN_API, Registry, check_token};
use crate::clock::unix_now;
use crate::credentials::{hash_secret, new_api_key, new_api_key_id};
use crate::error::RegistryError;
use crate::store::{ApiKey, NewApiKey, api_key_subject};

/// A newly created API key; the key is shown only here.
#[derive(Debug, Clone, Serialize)]
pub struct CreatedApiKey {
    /// Name.
    pub name: String,
    /// The key (store it now: only its hash is kept).
    pub api_key: String,
    /// The `sub` of the tokens it is exchanged for.
    pub subject: String,
    /// Grants `(api, scopes)`.
    pub grants: Vec<(String, String)>,
    /// Expiry, Unix seconds.
    pub expires_at: Option<u64>,
}

/// Checks an API key name: 1-128 characters of `A-Z a-z 0-9 . _ -` (it
/// goes into token subjects, audit lines and the admin API's paths).
pub fn check_api_key_name(name: &str) -> Result<(), RegistryError> {
    check_token("API key name", name)?;
    if name.len() > 128
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(RegistryError::Invalid(format!(
            "API key name {name:?} is invalid: use 1-128 characters of A-Z a-z 0-9 . _ -"
        )));
    }
    Ok(())
}

/// Checks the grants of an API key: at least one, and never the admin API
/// (a header-only credential must not administer the broker).
pub fn check_api_key_grants(name: &str, grants: &[(String, String)]) -> Result<(), RegistryError> {
    if grants.is_empty() {
        return Err(RegistryError::Invalid(format!(
            "API key {name} needs at least one --grant \"<API identifier>=<scope>\""
        )));
    }
    if grants.iter().any(|(api, _)| api == ADMIN_API) {
        return Err(RegistryError::Invalid(format!(
            "API key {name}: the admin API ({ADMIN_API}) cannot be granted to an API key; \
             use a client (`certbound client create`) for administration"
        )));
    }
    Ok(())
}

impl Registry {
    /// Creates an API key with `grants`, expiring at `expires_at` (Unix
    /// seconds) when given. The key is returned once; only its hash is kept.
    pub async fn create_api_key(
        &self,
        name: &str,
        grants: &[(String, String)],
        expires_at: Option<u64>,
    ) -> Result<CreatedApiKey, RegistryError> {
        check_api_key_name(name)?;
        check_api_key_grants(name, grants)?;
        let now = unix_now();
        if expires_at.is_some_and(|e| e <= now) {
            return Err(RegistryError::Invalid(format!(
                "API key {name}: the expiry is in the past"
            )));
        }
        let key = new_api_key();
        let id = new_api_key_id();
        let hash = hash_secret(&key);
        self.store
            .create_api_key(
                &NewApiKey {
                    id: &id,
                    name,
                    key_hash: &hash,
                    expires_at,
                    grants,
                },
                now,
            )
            .await?;
        let grants_text: Vec<String> = grants.iter().map(|(a, s)| format!("{a}={s}")).collect();
        self.audit(
            "apikey.created",
            &api_key_subject(name),
            format!(
                "name={name} id={id} expires_at={} grants={}",
                expires_at.map_or("never".into(), |e| e.to_string()),
                grants_text.join(";")
            ),
        )
        .await?;
        Ok(CreatedApiKey {
            name: name.into(),
            api_key: key,
            subject: api_key_subject(name),
            grants: grants.to_vec(),
            expires_at,
        })
    }

    /// The active API keys (with `all`, revoked ones too), by name.
    pub async fn list_api_keys(&self, all: bool) -> Result<Vec<ApiKey>, RegistryError> {
        Ok(self.store.list_api_keys(all).await?)
    }

    /// Revokes the active API key `name`: its next use is refused on every
    /// instance, and the tokens it was exchanged for turn inactive.
    pub async fn revoke_api_key(&self, name: &str) -> Result<ApiKey, RegistryError> {
        let key = self
            .store
            .revoke_api_key(name, unix_now())
            .await?
            .ok_or_else(|| RegistryError::NotFound {
                kind: "API key",
                name: name.into(),
                hint: "; see `certbound apikey list`".into(),
            })?;
        self.audit(
            "apikey.revoked",
            &api_key_subject(name),
            format!("name={name} id={}", key.id),
        )
        .await?;
        Ok(key)
    }
}
