//! API keys at the OAuth endpoints.
//!
//! * `POST /oauth/token` with `X-API-Key: cbk_...` and
//!   `grant_type=client_credentials`: the key is exchanged for a token of
//!   the API's format and lifetime, `sub` and `client_id`
//!   `cb_apikey:<name>` ([`api_key_subject`]), scopes within the key's grant
//!   for that API. The key is the only credential of such a request: client
//!   credentials or a service certificate next to it are refused
//!   (`invalid_request`); a device, claim or broker certificate is refused
//!   as at every `/oauth` route. An unknown, revoked or expired key reads
//!   like every failed client authentication ([`AUTH_FAILED`]).
//! * `POST /oauth/introspect` with `token=cbk_...`: a client that holds a
//!   grant for an API the key is granted (or an admin client) learns
//!   whether the key is active and its scopes for those APIs; anyone else
//!   reads `{"active": false}`.
//!
//! A key is looked up by the SHA-256 of its text, and only after its shape
//! was checked (no database read for text that cannot be a key). Its row is
//! read on every use, so a revocation holds at once on every instance.

use std::collections::HashMap;
use std::sync::Mutex;

use certbound_registry::credentials::{hash_secret, looks_like_api_key};
use serde_json::{Value, json};

use super::client_auth::AUTH_FAILED;
use super::introspect::{ADMIN_READ_SCOPE, ADMIN_WRITE_SCOPE};
use super::{OAuthError, OAuthService, Presented, store_failure};
use crate::store::{ApiKey, Client, Grant, api_key_subject};

/// A key's last use is written at most once per this many seconds.
pub const LAST_USED_EVERY: u64 = 60;

/// Most keys whose last write this process remembers (the memory is
/// cleared when it is full: at worst one more write per key).
const REMEMBERED_USES: usize = 10_000;

/// When this process last wrote each key's last use (by row id).
#[derive(Debug, Default)]
pub struct KeyUses(Mutex<HashMap<String, u64>>);

impl KeyUses {
    /// Whether a use at `now` should be written (and notes it).
    fn due(&self, id: &str, now: u64) -> bool {
        let Ok(mut map) = self.0.lock() else {
            return true;
        };
        if map
            .get(id)
            .is_some_and(|last| now < last.saturating_add(LAST_USED_EVERY))
        {
            return false;
        }
        if map.len() >= REMEMBERED_USES {
            map.clear();
        }
        map.insert(id.to_string(), now);
        true
    }
}

/// Whether `caller` administers the broker (`admin:read` or `admin:write`).
fn is_admin(caller: &Client, admin_api: &str) -> bool {
    caller.granted_for(admin_api).is_some_and(|s| {
        s.iter()
            .any(|x| x == ADMIN_READ_SCOPE || x == ADMIN_WRITE_SCOPE)
    })
}

impl OAuthService {
    /// The effective grants of `key`: what it may ask for, per API. (Today
    /// its own grants; every decision about a key's permissions goes
    /// through here.)
    pub async fn api_key_grants(&self, key: &ApiKey) -> Result<Vec<Grant>, OAuthError> {
        // Its own grants and its roles' (read on each use, like the key).
        let from_roles = self
            .store
            .role_grants_of(crate::store::RoleHolder::ApiKey(&key.id))
            .await
            .map_err(|e| store_failure(&e))?;
        // A header-only credential never administers the broker: a role
        // granting the admin API gives a key nothing there (as `apikey
        // create` refuses such a grant), whenever the role got it.
        Ok(crate::store::merge_grants(
            key.grants
                .iter()
                .chain(&from_roles)
                .filter(|g| g.api_id != crate::registry::ADMIN_API),
        ))
    }

    /// The key `text` names when it is usable at `now` (active, unexpired).
    async fn usable_api_key(&self, text: &str, now: u64) -> Result<Option<ApiKey>, OAuthError> {
        let text = text.trim();
        if !looks_like_api_key(text) {
            return Ok(None);
        }
        let key = self
            .store
            .api_key_by_hash(&hash_secret(text))
            .await
            .map_err(|e| store_failure(&e))?;
        Ok(key.filter(|k| k.usable_at(now)))
    }

    /// Records a use of `key` (throttled; a failure is logged, not fatal).
    async fn note_api_key_use(&self, key: &ApiKey, now: u64) {
        if !self.api_key_uses.due(&key.id, now) {
            return;
        }
        if let Err(e) = self
            .store
            .touch_api_key(&key.id, now, LAST_USED_EVERY)
            .await
        {
            tracing::warn!(error = %e, api_key = %key.name, "could not record an API key's last use");
        }
    }

    /// Authenticates a token request that carries `X-API-Key`: the key and
    /// its effective grants.
    pub(crate) async fn authenticate_api_key(
        &self,
        p: &Presented,
        now: u64,
    ) -> Result<(ApiKey, Vec<Grant>), OAuthError> {
        // The certificate's kind first: a device, claim or broker
        // certificate is refused whatever else the request carries.
        let cert = self.client_cert(&p.peer_chain)?;
        if p.basic.is_some()
            || p.form_client_id.is_some()
            || p.form_client_secret.is_some()
            || cert.is_some()
        {
            return Err(OAuthError::invalid_request(
                "use one client authentication: either an X-API-Key header or client credentials \
                 (HTTP Basic, client_secret, a TLS client certificate), not both",
            ));
        }
        let text = p.api_key.as_deref().unwrap_or_default();
        match self.usable_api_key(text, now).await? {
            Some(key) => {
                self.note_api_key_use(&key, now).await;
                let grants = self.api_key_grants(&key).await?;
                Ok((key, grants))
            }
            None => Err(OAuthError::invalid_client(AUTH_FAILED)),
        }
    }

    /// RFC 7662 introspection of an API key for `caller`: active only for
    /// an admin client or a client granted an API the key is granted; the
    /// answer names those APIs and the key's scopes for them only.
    pub(crate) async fn introspect_api_key(
        &self,
        caller: &Client,
        text: &str,
        admin_api: &str,
        now: u64,
    ) -> Result<Value, OAuthError> {
        let inactive = json!({ "active": false });
        let Some(key) = self.usable_api_key(text, now).await? else {
            return Ok(inactive);
        };
        let grants = self.api_key_grants(&key).await?;
        let admin = is_admin(caller, admin_api);
        let shared: Vec<&Grant> = grants
            .iter()
            .filter(|g| g.api_id != admin_api && (admin || caller.granted_for(&g.api_id).is_some()))
            .collect();
        if shared.is_empty() {
            tracing::debug!(caller = %caller.id, api_key = %key.name, "API key introspection refused: no API in common");
            return Ok(inactive);
        }
        self.note_api_key_use(&key, now).await;
        let mut scopes: Vec<&str> = Vec::new();
        for s in shared.iter().flat_map(|g| g.scopes.iter()) {
            if !scopes.contains(&s.as_str()) {
                scopes.push(s);
            }
        }
        let aud: Vec<&str> = shared.iter().map(|g| g.api_id.as_str()).collect();
        let subject = api_key_subject(&key.name);
        let mut out = json!({
            "active": true,
            "iss": self.config.issuer_id,
            "sub": subject,
            "client_id": subject,
            "aud": if aud.len() == 1 { json!(aud[0]) } else { json!(aud) },
            "scope": scopes.join(" "),
            "iat": key.created_at,
            "token_type": "api_key",
        });
        if let Some(exp) = key.expires_at {
            out["exp"] = json!(exp);
        }
        tracing::debug!(caller = %caller.id, api_key = %key.name, "API key introspected");
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uses_are_written_once_a_minute() {
        let uses = KeyUses::default();
        assert!(uses.due("k", 100));
        assert!(!uses.due("k", 159));
        assert!(uses.due("other", 120));
        assert!(uses.due("k", 160));
    }
}
