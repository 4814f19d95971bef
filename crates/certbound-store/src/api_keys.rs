//! API keys in the [`Store`]: long-lived header credentials (`X-API-Key`)
//! of jobs that cannot do more, exchanged at `/oauth/token` or checked by
//! introspection. Only the hex SHA-256 of a key is stored; a key row is read
//! on every use (no snapshot), so a revocation holds at once everywhere.

use serde::Serialize;
use sqlx::Row;

use super::{Grant, Store, split_scopes, to_i64, to_u64};
use crate::error::StoreError;

/// The `sub` (and `client_id`) prefix of tokens exchanged for an API key:
/// `cb_apikey:<name>`. No device id may start with `cb_` and no `client_id`
/// contains `:`, so it names neither a device nor a client.
pub const API_KEY_SUBJECT_PREFIX: &str = "cb_apikey:";

/// The token subject of the API key `name`.
pub fn api_key_subject(name: &str) -> String {
    format!("{API_KEY_SUBJECT_PREFIX}{name}")
}

/// The key name of a token subject made by [`api_key_subject`].
pub fn api_key_name_of(subject: &str) -> Option<&str> {
    subject.strip_prefix(API_KEY_SUBJECT_PREFIX)
}

/// An API key as stored: never the key, never its hash.
#[derive(Debug, Clone, Serialize)]
pub struct ApiKey {
    /// Row id (random, not secret; not the key).
    pub id: String,
    /// Operator-chosen name (unique among active keys).
    pub name: String,
    /// `active` or `revoked`.
    pub status: String,
    /// What the key may ask for.
    pub grants: Vec<Grant>,
    /// Its attributes (custom claims and `{attr.NAME}` scopes of its tokens).
    pub attributes: crate::attributes::Attributes,
    /// Creation time, Unix seconds.
    pub created_at: u64,
    /// Expiry, Unix seconds; `None`: none.
    pub expires_at: Option<u64>,
    /// Last use (exchange or introspection), Unix seconds, at most a minute old.
    pub last_used_at: Option<u64>,
    /// When it was revoked.
    pub revoked_at: Option<u64>,
}

impl ApiKey {
    /// Whether the key authenticates at `now`: active and not expired.
    pub fn usable_at(&self, now: u64) -> bool {
        self.status == "active" && self.expires_at.is_none_or(|e| now < e)
    }

    /// `active`, `expired` or `revoked` at `now`.
    pub fn state_at(&self, now: u64) -> &'static str {
        if self.status != "active" {
            "revoked"
        } else if self.expires_at.is_some_and(|e| now >= e) {
            "expired"
        } else {
            "active"
        }
    }

    /// The scopes granted for `api`, if any grant names it.
    pub fn granted_for(&self, api: &str) -> Option<&[String]> {
        self.grants
            .iter()
            .find(|g| g.api_id == api)
            .map(|g| g.scopes.as_slice())
    }
}

/// What a new API key is made of.
#[derive(Debug, Clone)]
pub struct NewApiKey<'a> {
    /// Row id.
    pub id: &'a str,
    /// Name.
    pub name: &'a str,
    /// Hex SHA-256 of the key.
    pub key_hash: &'a str,
    /// Expiry, Unix seconds.
    pub expires_at: Option<u64>,
    /// Grants `(api, scopes)`.
    pub grants: &'a [(String, String)],
}

const COLUMNS: &str =
    "id, name, status, created_at, expires_at, last_used_at, revoked_at, attributes";

impl Store {
    /// Registers an API key and its grants atomically.
    pub async fn create_api_key(&self, key: &NewApiKey<'_>, now: u64) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        insert_api_key(&mut tx, key, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The key whose hash is `key_hash` (any status: the caller decides
    /// with [`ApiKey::usable_at`]).
    pub async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKey>, StoreError> {
        self.api_key_where("key_hash = $1", key_hash).await
    }

    /// The active key named `name`.
    pub async fn api_key_by_name(&self, name: &str) -> Result<Option<ApiKey>, StoreError> {
        self.api_key_where("status = 'active' AND name = $1", name)
            .await
    }

    async fn api_key_where(&self, clause: &str, value: &str) -> Result<Option<ApiKey>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        api_key_where(&mut conn, clause, value).await
    }

    /// Every key (revoked ones too when `all`), by name.
    pub async fn list_api_keys(&self, all: bool) -> Result<Vec<ApiKey>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        read_api_keys(&mut conn, all).await
    }

    /// Revokes the active key `name` (see [`revoke_api_key_row`]); the key
    /// as it was, or `None` when no active key has that name.
    pub async fn revoke_api_key(&self, name: &str, now: u64) -> Result<Option<ApiKey>, StoreError> {
        let mut tx = self.begin_write().await?;
        let Some(key) = api_key_where(&mut tx, "status = 'active' AND name = $1", name).await?
        else {
            return Ok(None);
        };
        let done = revoke_api_key_row(&mut tx, &key.id, now).await?;
        tx.commit().await?;
        Ok(done.then_some(key))
    }

    /// Records a use of key `id` at `now`, unless one at most `every` seconds
    /// old is recorded already (so a busy key costs one write a minute,
    /// whichever instance sees it). Whether a write happened.
    pub async fn touch_api_key(&self, id: &str, now: u64, every: u64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE api_keys SET last_used_at = $1 \
             WHERE id = $2 AND (last_used_at IS NULL OR last_used_at <= $3)",
        )
        .bind(to_i64(now))
        .bind(id)
        .bind(to_i64(now.saturating_sub(every)))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }
}

async fn api_key_where(
    conn: &mut sqlx::AnyConnection,
    clause: &str,
    value: &str,
) -> Result<Option<ApiKey>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM api_keys WHERE {clause}");
    let Some(row) = sqlx::query(&sql)
        .bind(value)
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(None);
    };
    let grants = api_key_grants(conn, row.get("id")).await?;
    Ok(Some(api_key_from_row(&row, grants)?))
}

/// Every key (revoked ones too when `all`), by name, on `conn`.
pub async fn read_api_keys(
    conn: &mut sqlx::AnyConnection,
    all: bool,
) -> Result<Vec<ApiKey>, StoreError> {
    let filter = if all { "" } else { "WHERE status = 'active'" };
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM api_keys {filter} ORDER BY name, created_at"
    ))
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let grants = api_key_grants(conn, row.get("id")).await?;
        out.push(api_key_from_row(&row, grants)?);
    }
    Ok(out)
}

async fn api_key_grants(
    conn: &mut sqlx::AnyConnection,
    id: &str,
) -> Result<Vec<Grant>, StoreError> {
    let rows =
        sqlx::query("SELECT api_id, scopes FROM api_key_grants WHERE key_id = $1 ORDER BY api_id")
            .bind(id)
            .fetch_all(&mut *conn)
            .await?;
    Ok(rows
        .into_iter()
        .map(|r| Grant {
            api_id: r.get("api_id"),
            scopes: split_scopes(r.get("scopes")),
        })
        .collect())
}

/// Registers a key on `conn` (inside the caller's transaction): the name
/// must be free among active keys, every granted API must exist.
pub async fn insert_api_key(
    conn: &mut sqlx::AnyConnection,
    key: &NewApiKey<'_>,
    now: u64,
) -> Result<(), StoreError> {
    let taken = sqlx::query("SELECT 1 FROM api_keys WHERE status = 'active' AND name = $1")
        .bind(key.name)
        .fetch_optional(&mut *conn)
        .await?;
    if taken.is_some() {
        return Err(StoreError::Conflict {
            kind: "API key",
            name: key.name.into(),
        });
    }
    sqlx::query(
        "INSERT INTO api_keys (id, name, key_hash, status, created_at, updated_at, expires_at) \
         VALUES ($1, $2, $3, 'active', $4, $5, $6)",
    )
    .bind(key.id)
    .bind(key.name)
    .bind(key.key_hash)
    .bind(to_i64(now))
    .bind(to_i64(now))
    .bind(key.expires_at.map(to_i64))
    .execute(&mut *conn)
    .await?;
    replace_api_key_grants(conn, key.id, key.grants).await
}

/// Replaces the grants of key `id` on `conn`; every API must exist.
pub async fn replace_api_key_grants(
    conn: &mut sqlx::AnyConnection,
    id: &str,
    grants: &[(String, String)],
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM api_key_grants WHERE key_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    for (api, scopes) in grants {
        let known = sqlx::query("SELECT 1 FROM apis WHERE id = $1")
            .bind(api)
            .fetch_optional(&mut *conn)
            .await?;
        if known.is_none() {
            return Err(StoreError::NotFound {
                kind: "API",
                name: api.clone(),
                hint: "; create it first with `certbound api create`".into(),
            });
        }
        sqlx::query("INSERT INTO api_key_grants (key_id, api_id, scopes) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(api)
            .bind(scopes)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Sets the expiry of key `id` on `conn`.
pub async fn set_api_key_expiry(
    conn: &mut sqlx::AnyConnection,
    id: &str,
    expires_at: Option<u64>,
    now: u64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE api_keys SET expires_at = $1, updated_at = $2 WHERE id = $3")
        .bind(expires_at.map(to_i64))
        .bind(to_i64(now))
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Revokes key `id` on `conn`: its hash is cleared (`revoked-<id>`, which
/// no SHA-256 hex equals), and the database revokes every token it was
/// exchanged for in the same transaction. Final. Whether an active key was found.
pub async fn revoke_api_key_row(
    conn: &mut sqlx::AnyConnection,
    id: &str,
    now: u64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE api_keys SET status = 'revoked', key_hash = 'revoked-' || $1, \
         revoked_at = $2, updated_at = $2 WHERE id = $1 AND status = 'active'",
    )
    .bind(id)
    .bind(to_i64(now))
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

fn api_key_from_row(row: &sqlx::any::AnyRow, grants: Vec<Grant>) -> Result<ApiKey, StoreError> {
    let opt = |c: &str| row.get::<Option<i64>, _>(c).map(to_u64);
    Ok(ApiKey {
        id: row.get("id"),
        name: row.get("name"),
        status: row.get("status"),
        grants,
        attributes: crate::attributes::Attributes::from_json(&row.get::<String, _>("attributes"))?,
        created_at: to_u64(row.get("created_at")),
        expires_at: opt("expires_at"),
        last_used_at: opt("last_used_at"),
        revoked_at: opt("revoked_at"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Api, TokenHolder};

    async fn api_keys_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::testing::current().open(dir.path()).await;
        let api = Api {
            id: "https://x.example".into(),
            format: "jwt".into(),
            ttl_secs: 60,
            scopes: vec!["a".into(), "b".into()],
        };
        store.create_api(&api, 1).await.unwrap();
        let grants = vec![(api.id.clone(), "a".to_string())];
        let new = NewApiKey {
            id: "k1",
            name: "nightly",
            key_hash: &"ab".repeat(32),
            expires_at: Some(100),
            grants: &grants,
        };
        store.create_api_key(&new, 10).await.unwrap();
        // The name is taken while the key is active.
        let again = NewApiKey {
            id: "k2",
            ..new.clone()
        };
        assert!(matches!(
            store.create_api_key(&again, 10).await,
            Err(StoreError::Conflict { .. })
        ));
        let key = store
            .api_key_by_hash(&"ab".repeat(32))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(key.name, "nightly");
        assert_eq!(key.granted_for(&api.id), Some(&["a".to_string()][..]));
        assert!(key.usable_at(99) && !key.usable_at(100));
        assert_eq!(key.state_at(100), "expired");
        // Last use: written once per interval.
        assert!(store.touch_api_key("k1", 20, 60).await.unwrap());
        assert!(!store.touch_api_key("k1", 50, 60).await.unwrap());
        assert!(store.touch_api_key("k1", 81, 60).await.unwrap());
        // A token it was exchanged for is revoked with it.
        let token = crate::IssuedToken {
            jti: "j1".into(),
            holder: TokenHolder::Client,
            subject: api_key_subject("nightly"),
            api_id: api.id.clone(),
            scope: "a".into(),
            format: "jwt".into(),
            kid: "kid".into(),
            cnf: None,
            status_entry: None,
            iat: 30,
            exp: 1_000_000_000_000,
        };
        store
            .record_issued(std::slice::from_ref(&token))
            .await
            .unwrap();
        assert!(!store.token_state("j1").await.unwrap().unwrap().revoked);
        let revoked = store.revoke_api_key("nightly", 40).await.unwrap().unwrap();
        assert_eq!(revoked.id, "k1");
        assert!(store.token_state("j1").await.unwrap().unwrap().revoked);
        assert!(
            store
                .api_key_by_hash(&"ab".repeat(32))
                .await
                .unwrap()
                .is_none()
        );
        assert!(store.revoke_api_key("nightly", 41).await.unwrap().is_none());
        // Revoked is final, even for an operator with SQL.
        let back = sqlx::query("UPDATE api_keys SET status = 'active' WHERE id = 'k1'")
            .execute(&store.pool)
            .await;
        assert!(back.is_err(), "a revoked key came back");
        // A token recorded after the revocation is recorded revoked.
        let late = crate::IssuedToken {
            jti: "j2".into(),
            ..token
        };
        store.record_issued(&[late]).await.unwrap();
        assert!(store.token_state("j2").await.unwrap().unwrap().revoked);
        // The name is free again; the new key's tokens are its own.
        store.create_api_key(&again, 50).await.unwrap();
        assert_eq!(store.list_api_keys(false).await.unwrap().len(), 1);
        assert_eq!(store.list_api_keys(true).await.unwrap().len(), 2);
    }
    crate::on_every_backend!(api_keys_round_trip);
}
