//! The operator console's state in the [`Store`]: sessions, one-time login
//! tokens and instance heartbeats. Sessions and tokens are keyed by the
//! SHA-256 of the secret (the caller hashes), so the store never holds a
//! value that signs anybody in; being in the store, every instance on one
//! PostgreSQL database shares them.

use sqlx::Row;

use crate::{Store, StoreError, to_i64, to_u64};

/// A console session (see migration 0020).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UiSession {
    /// Lowercase hex SHA-256 of the cookie value.
    pub id_hash: String,
    /// Who acts (`admin-client:<id>`, `ui-login:<label>`): the audit actor.
    pub actor: String,
    /// Space-separated admin scopes.
    pub scopes: String,
    /// The CSRF token non-GET requests must carry.
    pub csrf_token: String,
    /// Unix seconds.
    pub created_at: u64,
    /// Last use, Unix seconds (the idle timeout slides from here).
    pub last_seen: u64,
    /// Absolute end, Unix seconds.
    pub expires_at: u64,
}

/// Why a one-time login token was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginTokenRefusal {
    /// No such token.
    Unknown,
    /// Consumed before.
    Used,
    /// Past its lifetime.
    Expired,
}

impl LoginTokenRefusal {
    /// `unknown`, `used` or `expired` (audit outcome and error code).
    pub fn as_str(self) -> &'static str {
        match self {
            LoginTokenRefusal::Unknown => "unknown",
            LoginTokenRefusal::Used => "used",
            LoginTokenRefusal::Expired => "expired",
        }
    }
}

/// An instance's last heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceHeartbeat {
    /// The instance (its HTTPS base URL).
    pub id: String,
    /// When it started, Unix seconds.
    pub started_at: u64,
    /// Its last heartbeat, Unix seconds.
    pub last_seen: u64,
    /// Free text (addresses, key id).
    pub detail: String,
}

fn session_of(r: &sqlx::any::AnyRow) -> UiSession {
    UiSession {
        id_hash: r.get("id_hash"),
        actor: r.get("actor"),
        scopes: r.get("scopes"),
        csrf_token: r.get("csrf_token"),
        created_at: to_u64(r.get("created_at")),
        last_seen: to_u64(r.get("last_seen")),
        expires_at: to_u64(r.get("expires_at")),
    }
}

impl Store {
    /// Records a new session.
    pub async fn create_ui_session(&self, s: &UiSession) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO ui_sessions (id_hash, actor, scopes, csrf_token, created_at, last_seen, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&s.id_hash)
        .bind(&s.actor)
        .bind(&s.scopes)
        .bind(&s.csrf_token)
        .bind(to_i64(s.created_at))
        .bind(to_i64(s.last_seen))
        .bind(to_i64(s.expires_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The session whose cookie hashes to `id_hash`, if any (expired or not:
    /// the caller judges).
    pub async fn ui_session(&self, id_hash: &str) -> Result<Option<UiSession>, StoreError> {
        let row = sqlx::query("SELECT * FROM ui_sessions WHERE id_hash = $1")
            .bind(id_hash)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(session_of))
    }

    /// Moves a session's last use to `now`.
    pub async fn touch_ui_session(&self, id_hash: &str, now: u64) -> Result<(), StoreError> {
        sqlx::query("UPDATE ui_sessions SET last_seen = $2 WHERE id_hash = $1 AND last_seen < $2")
            .bind(id_hash)
            .bind(to_i64(now))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Ends a session; whether there was one.
    pub async fn delete_ui_session(&self, id_hash: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM ui_sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes sessions past their absolute end or idle longer than
    /// `idle_secs`, and login tokens expired before `now`; how many rows.
    pub async fn prune_ui_sessions(&self, now: u64, idle_secs: u64) -> Result<u64, StoreError> {
        let idle_before = to_i64(now.saturating_sub(idle_secs));
        let s = sqlx::query("DELETE FROM ui_sessions WHERE expires_at <= $1 OR last_seen < $2")
            .bind(to_i64(now))
            .bind(idle_before)
            .execute(&self.pool)
            .await?;
        let t = sqlx::query("DELETE FROM ui_login_tokens WHERE expires_at <= $1")
            .bind(to_i64(now))
            .execute(&self.pool)
            .await?;
        Ok(s.rows_affected() + t.rows_affected())
    }

    /// Records a one-time login token (by its hash) valid until `expires_at`.
    pub async fn create_ui_login_token(
        &self,
        token_hash: &str,
        label: &str,
        now: u64,
        expires_at: u64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO ui_login_tokens (token_hash, label, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash)
        .bind(label)
        .bind(to_i64(now))
        .bind(to_i64(expires_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Consumes a one-time login token: its label when it was unused and not
    /// expired at `now` (one atomic update: of two concurrent attempts, one
    /// wins), else why not.
    pub async fn consume_ui_login_token(
        &self,
        token_hash: &str,
        now: u64,
    ) -> Result<Result<String, LoginTokenRefusal>, StoreError> {
        let won: Option<String> = sqlx::query_scalar(
            "UPDATE ui_login_tokens SET used_at = $2 \
             WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING label",
        )
        .bind(token_hash)
        .bind(to_i64(now))
        .fetch_optional(&self.pool)
        .await?;
        if let Some(label) = won {
            return Ok(Ok(label));
        }
        let row = sqlx::query("SELECT used_at FROM ui_login_tokens WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
        Ok(Err(match row {
            None => LoginTokenRefusal::Unknown,
            Some(r) if r.get::<Option<i64>, _>("used_at").is_some() => LoginTokenRefusal::Used,
            Some(_) => LoginTokenRefusal::Expired,
        }))
    }

    /// Whether a login token (by hash) exists, unused and unexpired at `now`
    /// (for the confirmation page; does not consume it).
    pub async fn ui_login_token_usable(
        &self,
        token_hash: &str,
        now: u64,
    ) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM ui_login_tokens WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2",
        )
        .bind(token_hash)
        .bind(to_i64(now))
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }

    /// Records that instance `id` is alive at `now`.
    pub async fn heartbeat(
        &self,
        id: &str,
        started_at: u64,
        detail: &str,
        now: u64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO instance_heartbeats (id, started_at, last_seen, detail) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO UPDATE SET started_at = excluded.started_at, \
             last_seen = excluded.last_seen, detail = excluded.detail",
        )
        .bind(id)
        .bind(to_i64(started_at))
        .bind(to_i64(now))
        .bind(detail)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every instance's last heartbeat, most recent first (at most 100).
    pub async fn instance_heartbeats(&self) -> Result<Vec<InstanceHeartbeat>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, started_at, last_seen, detail FROM instance_heartbeats \
             ORDER BY last_seen DESC, id LIMIT 100",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| InstanceHeartbeat {
                id: r.get("id"),
                started_at: to_u64(r.get("started_at")),
                last_seen: to_u64(r.get("last_seen")),
                detail: r.get("detail"),
            })
            .collect())
    }
}
