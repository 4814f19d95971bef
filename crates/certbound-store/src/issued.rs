//! Issued-token records, status-list entries and the signing-key ring in
//! the [`Store`].

use serde::Serialize;
use sqlx::Row;

use super::{Store, to_i64, to_u64};
use crate::error::StoreError;

/// Who a token was issued to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenHolder {
    /// A device (CWT from the ACE token endpoint).
    Device,
    /// A backend-service client (OAuth client credentials).
    Client,
}

impl TokenHolder {
    fn as_str(self) -> &'static str {
        match self {
            TokenHolder::Device => "device",
            TokenHolder::Client => "client",
        }
    }
}

/// A record of one issued token.
#[derive(Debug, Clone, Serialize)]
pub struct IssuedToken {
    /// Hex cti (CWT) or the jti (JWT).
    pub jti: String,
    /// Device or client.
    pub holder: TokenHolder,
    /// Device id or client id.
    pub subject: String,
    /// The audience.
    pub api_id: String,
    /// Granted scope.
    pub scope: String,
    /// `cwt` or `jwt`.
    pub format: String,
    /// Signing key.
    pub kid: String,
    /// The bound certificate (hex SHA-256 of its DER), when bound.
    pub cnf: Option<String>,
    /// Status-list entry `(list id, index)`.
    pub status_entry: Option<(u64, u64)>,
    /// Issued at.
    pub iat: u64,
    /// Expiry.
    pub exp: u64,
}

/// What introspection knows about a token.
#[derive(Debug, Clone, Serialize)]
pub struct TokenState {
    /// The record.
    pub token: IssuedToken,
    /// Revoked: by `POST /oauth/revoke`, the admin API, or with its holder
    /// (the token's own record; final).
    pub revoked: bool,
    /// Its holder is suspended (device) — inactive until resumed.
    pub suspended: bool,
}

/// A signing key's schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeySchedule {
    /// Key id.
    pub kid: String,
    /// Published from.
    pub created_at: u64,
    /// Signs from (the newest key whose time has come signs).
    pub active_from: u64,
    /// Unpublished from; `None` while it may still sign or verify.
    pub retire_after: Option<u64>,
    /// The public key (SEC1 uncompressed P-256 point), so that instances
    /// that do not hold the private key publish it too; `None` for a key
    /// recorded by a version before 0009 (the instance holding it fills it
    /// in, [`Store::set_signing_public_key`]).
    #[serde(skip)]
    pub public_key: Option<Vec<u8>>,
    /// The JWS algorithm the key signs (`ES256`, `RS256`, `PS256`,
    /// `EdDSA`; 0014). ES256 keys sign CWTs and the JWTs of ES256 APIs; the
    /// others only the JWTs of the APIs that ask for them. For RSA keys
    /// [`KeySchedule::public_key`] is the PKCS#1 `RSAPublicKey` DER, for
    /// Ed25519 keys the 32 raw bytes.
    pub alg: String,
}

/// The algorithm of keys recorded before 0014, and of every ES256 key.
pub const DEFAULT_SIGNING_ALG: &str = "ES256";

/// A retired key whose instance has not removed it this long after its
/// retirement is removed by any instance (one day).
pub const ORPHANED_KEY_SECS: u64 = 86_400;

impl Store {
    /// Records issued tokens.
    pub async fn record_issued(&self, tokens: &[IssuedToken]) -> Result<(), StoreError> {
        self.record_issued_with_events(tokens, &[]).await
    }

    /// Records issued tokens and appends audit events, in one transaction
    /// (the audit writer's batch: a token is handed out only once this
    /// committed, see [`crate::audit`]).
    pub async fn record_issued_with_events(
        &self,
        tokens: &[IssuedToken],
        events: &[super::AuditEvent],
    ) -> Result<(), StoreError> {
        if tokens.is_empty() && events.is_empty() {
            return Ok(());
        }
        let t0 = std::time::Instant::now();
        let mut tx = self.begin_log_write().await?;
        let t_begin = t0.elapsed();
        if self.backend == crate::Backend::Sqlite {
            // The whole batch in one statement string: one hand-off to
            // sqlx's SQLite worker thread instead of one per chunk. Every
            // hand-off is a thread wake-up, and under load each waited for a
            // core (1-5 ms, measured), which every token of the batch waited
            // for. Not cached: batch sizes vary.
            let clean: Vec<super::AuditEvent> =
                events.iter().map(crate::audit_fields::sanitize).collect();
            let mut sql = crate::batch_insert::statements(
                TOKEN_INSERT_HEAD,
                12,
                tokens.len(),
                TOKEN_INSERT_TAIL,
            );
            sql.push_str(&crate::batch_insert::statements(
                super::audit::EVENT_INSERT_HEAD,
                6,
                clean.len(),
                "",
            ));
            let mut query = sqlx::query(&sql).persistent(false);
            for t in tokens {
                query = bind_token(query, t);
            }
            for e in &clean {
                query = super::audit::bind_event(query, e);
            }
            query.execute(&mut *tx).await?;
        } else {
            // Many rows per statement: one round trip per chunk.
            for chunk in tokens.chunks(crate::batch_insert::ROWS_PER_INSERT) {
                let sql = crate::batch_insert::multi_row_insert(
                    TOKEN_INSERT_HEAD,
                    12,
                    chunk.len(),
                    TOKEN_INSERT_TAIL,
                    true,
                );
                let mut query = sqlx::query(&sql);
                for t in chunk {
                    query = bind_token(query, t);
                }
                query.execute(&mut *tx).await?;
            }
            super::audit::insert_events(&mut tx, events).await?;
        }
        let t_rows = t0.elapsed();
        tx.commit().await?;
        tracing::trace!(
            begin_us = t_begin.as_micros() as u64,
            rows_us = (t_rows - t_begin).as_micros() as u64,
            commit_us = (t0.elapsed() - t_rows).as_micros() as u64,
            tokens = tokens.len(),
            events = events.len(),
            "issued-token batch written"
        );
        Ok(())
    }

    /// Reserves `count` consecutive status-list entries, opening a new list
    /// of `list_size` entries when the current one is full. Returns
    /// `(list id, first index, count reserved)`; fewer than `count` are
    /// reserved at the end of a list.
    pub async fn reserve_status_entries(
        &self,
        count: u64,
        list_size: u64,
        now: u64,
    ) -> Result<(u64, u64, u64), StoreError> {
        let mut tx = self.begin_log_write().await?;
        let current = sqlx::query(
            "SELECT id, size, next_idx FROM status_lists WHERE next_idx < size ORDER BY id DESC LIMIT 1",
        )
        .fetch_optional(&mut *tx)
        .await?;
        let (id, size, next) = match current {
            Some(r) => (
                to_u64(r.get("id")),
                to_u64(r.get("size")),
                to_u64(r.get("next_idx")),
            ),
            None => {
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO status_lists (id, size, next_idx, created_at) \
                     VALUES ((SELECT COALESCE(MAX(id), 0) + 1 FROM status_lists), $1, 0, $2) RETURNING id",
                )
                .bind(to_i64(list_size))
                .bind(to_i64(now))
                .fetch_one(&mut *tx)
                .await?;
                (to_u64(id), list_size, 0)
            }
        };
        let granted = count.min(size - next);
        sqlx::query("UPDATE status_lists SET next_idx = $1 WHERE id = $2")
            .bind(to_i64(next + granted))
            .bind(to_i64(id))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok((id, next, granted))
    }

    /// The size of status list `id`, if it exists.
    pub async fn status_list_size(&self, id: u64) -> Result<Option<u64>, StoreError> {
        let size: Option<i64> = sqlx::query_scalar("SELECT size FROM status_lists WHERE id = $1")
            .bind(to_i64(id))
            .fetch_optional(&self.pool)
            .await?;
        Ok(size.map(to_u64))
    }

    /// The non-VALID entries of list `id` among tokens not expired at `now`:
    /// `(index, status)` with 1 = INVALID and 2 = SUSPENDED.
    ///
    /// INVALID comes from the token's own record only (`revoked_at`, set by
    /// `POST /oauth/revoke`, the admin API, and for every token of a device
    /// or client in the transaction that revokes it), so no later change of a
    /// device or client row can make a revoked token valid again. SUSPENDED
    /// follows the device row: a suspended device's tokens are SUSPENDED and
    /// VALID again once it is resumed (draft-ietf-oauth-status-list allows a
    /// SUSPENDED token to return; an INVALID one never does).
    pub async fn status_entries(&self, id: u64, now: u64) -> Result<Vec<(u64, u8)>, StoreError> {
        let rows = sqlx::query(
            "SELECT t.list_idx AS idx, \
               CASE WHEN t.revoked_at IS NOT NULL THEN 1 \
                    WHEN d.status = 'suspended' THEN 2 ELSE 0 END AS st \
             FROM issued_tokens t \
             LEFT JOIN devices d ON t.kind = 'device' AND d.id = t.subject \
             WHERE t.list_id = $1 AND t.exp >= $2 AND t.list_idx IS NOT NULL",
        )
        .bind(to_i64(id))
        .bind(to_i64(now))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let st: i64 = r.get("st");
                (st != 0).then(|| (to_u64(r.get("idx")), st as u8))
            })
            .collect())
    }

    /// Everything introspection needs about a token, by jti.
    pub async fn token_state(&self, jti: &str) -> Result<Option<TokenState>, StoreError> {
        let Some(r) = sqlx::query(
            "SELECT t.*, d.status AS device_status \
             FROM issued_tokens t \
             LEFT JOIN devices d ON t.kind = 'device' AND d.id = t.subject \
             WHERE t.jti = $1",
        )
        .bind(jti)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let device_status: Option<String> = r.get("device_status");
        let revoked_at: Option<i64> = r.get("revoked_at");
        let holder = if r.get::<String, _>("kind") == "device" {
            TokenHolder::Device
        } else {
            TokenHolder::Client
        };
        let list_id: Option<i64> = r.get("list_id");
        let list_idx: Option<i64> = r.get("list_idx");
        Ok(Some(TokenState {
            // From the token's own record: see `status_entries`.
            revoked: revoked_at.is_some(),
            suspended: revoked_at.is_none() && device_status.as_deref() == Some("suspended"),
            token: IssuedToken {
                jti: r.get("jti"),
                holder,
                subject: r.get("subject"),
                api_id: r.get("api_id"),
                scope: r.get("scope"),
                format: r.get("format"),
                kid: r.get("kid"),
                cnf: r.get("cnf"),
                status_entry: list_id.zip(list_idx).map(|(l, i)| (to_u64(l), to_u64(i))),
                iat: to_u64(r.get("iat")),
                exp: to_u64(r.get("exp")),
            },
        }))
    }

    /// Revokes one token. The token's record is written here when the batched
    /// writer has not stored it yet, so a revocation is never lost.
    pub async fn revoke_token(&self, t: &IssuedToken, now: u64) -> Result<(), StoreError> {
        bind_token(sqlx::query(
            "INSERT INTO issued_tokens (jti, kind, subject, api_id, scope, format, kid, cnf, list_id, list_idx, iat, exp, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
             ON CONFLICT(jti) DO UPDATE SET revoked_at = COALESCE(issued_tokens.revoked_at, excluded.revoked_at)",
        ), t)
        .bind(to_i64(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The status of a token's holder: `(revoked, suspended)`, from the
    /// device or client row (for tokens whose record is still queued).
    pub async fn holder_status(
        &self,
        holder: TokenHolder,
        subject: &str,
    ) -> Result<Option<(bool, bool)>, StoreError> {
        let sql = match holder {
            TokenHolder::Device => "SELECT status FROM devices WHERE id = $1",
            TokenHolder::Client => "SELECT status FROM clients WHERE id = $1",
        };
        let status: Option<String> = sqlx::query_scalar(sql)
            .bind(subject)
            .fetch_optional(&self.pool)
            .await?;
        Ok(status.map(|s| (s == "revoked", s == "suspended")))
    }

    // === signing keys ===

    /// The key ring, oldest first.
    pub async fn key_schedules(&self) -> Result<Vec<KeySchedule>, StoreError> {
        let rows = sqlx::query(
            "SELECT kid, created_at, active_from, retire_after, public_key, alg FROM signing_keys ORDER BY active_from, created_at",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| KeySchedule {
                kid: r.get("kid"),
                created_at: to_u64(r.get("created_at")),
                active_from: to_u64(r.get("active_from")),
                retire_after: r.get::<Option<i64>, _>("retire_after").map(to_u64),
                public_key: r.get("public_key"),
                alg: r.get("alg"),
            })
            .collect())
    }

    /// Records the public key of a key recorded without one (before 0009).
    pub async fn set_signing_public_key(
        &self,
        kid: &str,
        public_key: &[u8],
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE signing_keys SET public_key = $1 WHERE kid = $2 AND public_key IS NULL",
        )
        .bind(public_key)
        .bind(kid)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Adds a key to the ring and schedules the retirement of the keys it
    /// replaces (`retire`: kids, the calling instance's own keys; other
    /// instances' keys are theirs to rotate) at `retire_after` (or later,
    /// when already scheduled later), in one transaction.
    pub async fn add_signing_key(
        &self,
        key: &KeySchedule,
        retire: &[String],
        retire_after: u64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_log_write().await?;
        for kid in retire {
            sqlx::query(
                "UPDATE signing_keys SET retire_after = $1 \
                 WHERE kid = $2 AND (retire_after IS NULL OR retire_after > $3)",
            )
            .bind(to_i64(retire_after))
            .bind(kid)
            .bind(to_i64(retire_after))
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "INSERT INTO signing_keys (kid, created_at, active_from, retire_after, public_key, alg) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&key.kid)
        .bind(to_i64(key.created_at))
        .bind(to_i64(key.active_from))
        .bind(key.retire_after.map(to_i64))
        .bind(key.public_key.as_deref())
        .bind(&key.alg)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Schedules the retirement of `kid` at `at` (or keeps an earlier one).
    /// Returns false when the ring has no such key.
    pub async fn retire_signing_key(&self, kid: &str, at: u64) -> Result<bool, StoreError> {
        let known: Option<String> =
            sqlx::query_scalar("SELECT kid FROM signing_keys WHERE kid = $1")
                .bind(kid)
                .fetch_optional(&self.pool)
                .await?;
        if known.is_none() {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE signing_keys SET retire_after = $1 \
             WHERE kid = $2 AND (retire_after IS NULL OR retire_after > $1)",
        )
        .bind(to_i64(at))
        .bind(kid)
        .execute(&self.pool)
        .await?;
        Ok(true)
    }

    /// Pushes each scheduled retirement past the expiry (+ `leeway`) of the
    /// last recorded token its key signed. The records are read outside any
    /// write transaction (a scan of the token records must not hold up the
    /// writers); only a retirement that has to move is written.
    pub async fn extend_retirements(&self, leeway: u64) -> Result<(), StoreError> {
        let scheduled: Vec<(String, i64)> = sqlx::query_as(
            "SELECT kid, retire_after FROM signing_keys WHERE retire_after IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        for (kid, retire_after) in scheduled {
            let last: Option<i64> =
                sqlx::query_scalar("SELECT MAX(exp) FROM issued_tokens WHERE kid = $1")
                    .bind(&kid)
                    .fetch_one(&self.pool)
                    .await?;
            let needed = last.unwrap_or(0).saturating_add(to_i64(leeway));
            if needed <= retire_after {
                continue;
            }
            let mut tx = self.begin_log_write().await?;
            // Only later, never earlier: another instance may have moved it.
            sqlx::query(
                "UPDATE signing_keys SET retire_after = $1 \
                 WHERE kid = $2 AND retire_after IS NOT NULL AND retire_after < $1",
            )
            .bind(needed)
            .bind(&kid)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// Removes retired keys from the ring: the caller's own (`own`: the
    /// kids whose private keys it holds, and deletes after this), and any
    /// key retired more than [`ORPHANED_KEY_SECS`] ago (its instance is gone
    /// for good). Returns the kids removed.
    pub async fn drop_retired_keys(
        &self,
        now: u64,
        own: &[String],
    ) -> Result<Vec<String>, StoreError> {
        let mut gone = Vec::new();
        for kid in own {
            gone.extend(
                sqlx::query_scalar::<_, String>(
                    "DELETE FROM signing_keys \
                     WHERE kid = $1 AND retire_after IS NOT NULL AND retire_after <= $2 RETURNING kid",
                )
                .bind(kid)
                .bind(to_i64(now))
                .fetch_all(&self.pool)
                .await?,
            );
        }
        gone.extend(
            sqlx::query_scalar::<_, String>(
                "DELETE FROM signing_keys WHERE retire_after IS NOT NULL AND retire_after <= $1 RETURNING kid",
            )
            .bind(to_i64(now.saturating_sub(ORPHANED_KEY_SECS)))
            .fetch_all(&self.pool)
            .await?,
        );
        Ok(gone)
    }
}

/// Binds the twelve columns of an issued-token row, `$1` to `$12` in
/// the order `jti, kind, subject, api_id, scope, format, kid, cnf, list_id,
/// list_idx, iat, exp`.
/// The start and end of a multi-row insert into `issued_tokens` (12
/// columns, bound by [`bind_token`]); a record already there is kept.
const TOKEN_INSERT_HEAD: &str = "INSERT INTO issued_tokens (jti, kind, subject, api_id, scope, format, kid, cnf, list_id, list_idx, iat, exp) VALUES ";
const TOKEN_INSERT_TAIL: &str = " ON CONFLICT (jti) DO NOTHING";

fn bind_token<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    t: &'q IssuedToken,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    q.bind(&t.jti)
        .bind(t.holder.as_str())
        .bind(&t.subject)
        .bind(&t.api_id)
        .bind(&t.scope)
        .bind(&t.format)
        .bind(&t.kid)
        .bind(&t.cnf)
        .bind(t.status_entry.map(|(l, _)| to_i64(l)))
        .bind(t.status_entry.map(|(_, i)| to_i64(i)))
        .bind(to_i64(t.iat))
        .bind(to_i64(t.exp))
}
