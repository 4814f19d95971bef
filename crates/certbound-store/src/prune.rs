//! Housekeeping: deletes what a long-running broker no longer needs —
//! expired token records, status lists whose tokens are all gone, and audit
//! events past their retention — in bounded batches so the SQLite writer
//! lock is never held for long (the broker's audit writer and token
//! recording wait behind each statement, not behind the whole run).
//!
//! # Why deleting expired token records is safe
//!
//! * **Status lists.** A list's bits are computed from `issued_tokens` when
//!   it is built ([`Store::status_entries`]): a token is INVALID when its row
//!   has `revoked_at` or its holder is revoked. Deleting the row of a revoked
//!   token flips its bit back to VALID in every list built afterwards. That
//!   is only acceptable once no verifier can accept the token any more,
//!   whatever list it holds: verifiers check `exp` (with up to the broker's
//!   `leeway_secs` of clock skew) before they look at the status, so a token
//!   past `exp + leeway` is refused on its expiry alone. Lists already
//!   fetched were built before the deletion and still read revoked for as
//!   long as verifiers cache them (`[status] ttl_secs`). Lists built now keep
//!   a revoked token marked until `exp + EXPIRED_KEPT_SECS` (300 s,
//!   covering verifier leeways up to that). Rows are therefore deleted only
//!   when `exp + max(leeway, EXPIRED_KEPT_SECS) + status ttl < now`
//!   ([`PrunePolicy::token_margin_secs`]): the deletion changes no bit served
//!   while any verifier could still accept the token.
//! * **Introspection** answers `active: false` for an expired token and for
//!   an unknown one alike; live tokens are never deleted.
//! * **Key retirement** ([`Store::extend_retirements`]) pushes a retiring
//!   key's `retire_after` past `MAX(exp) + leeway` of the tokens it signed,
//!   and never moves it earlier (`MAX(retire_after, ...)`). Deleting only
//!   rows past `exp + margin` leaves every live token's `exp` in that
//!   maximum, so no key is retired while a token it signed can be valid.
//!
//! # Status lists
//!
//! A list is deleted when it is full (`next_idx >= size`), no token record
//! references it any more, and a later list was created more than
//! `token_margin_secs + status::MAX_BLOCK_AGE_SECS` ago. The last condition
//! covers blocks of entries that a broker reserved before the list filled
//! up and still hands out: a broker uses a block for at most
//! `MAX_BLOCK_AGE_SECS`, and a later list exists only once this one was
//! full. `GET /status/{id}` (and CoAP `status/{id}`) then answer 404
//! / 4.04, as for a list that never existed.

use serde::Serialize;

use super::{Store, to_i64};
use crate::error::StoreError;

/// Rows deleted per statement.
pub const DEFAULT_BATCH: u32 = 10_000;

/// What housekeeping deletes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrunePolicy {
    /// Token records are deleted once `exp + token_margin_secs < now`: the
    /// broker's leeway plus the status-list TTL (see the module docs).
    pub token_margin_secs: u64,
    /// Audit events older than this are deleted; `None` keeps them forever.
    pub audit_retention_secs: Option<u64>,
    /// Rows deleted per statement (at least 1).
    pub batch: u32,
    /// Count what would be deleted, delete nothing.
    pub dry_run: bool,
}

/// A reserved status-list block is handed out for at most this long,
/// seconds; then its unused entries are dropped and a new block is reserved.
/// This bounds how long after a list filled up in the store a token can
/// still get an entry in it, which [`Store::prune`] relies on before it
/// deletes a full list.
pub const MAX_BLOCK_AGE_SECS: u64 = 300;

/// How long after its `exp` a revoked or suspended token stays marked in the
/// status lists served, in seconds: a verifier allowing for clock skew
/// accepts a token until `exp + leeway`, so the mark must outlive that (the
/// verifier default is 60 s; this covers leeways up to 5 minutes). Token
/// rows are pruned only after it.
pub const EXPIRED_KEPT_SECS: u64 = 300;

/// What one housekeeping run deleted (or, dry run, would delete).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    /// `issued_tokens` rows.
    pub issued_tokens: u64,
    /// `status_lists` rows.
    pub status_lists: u64,
    /// `audit_events` rows.
    pub audit_events: u64,
    /// `client_assertion_jtis` rows: the jti of a `private_key_jwt`
    /// assertion is remembered until the assertion expires (plus the
    /// token margin, which covers the leeway).
    pub client_assertions: u64,
    /// Nothing was deleted: these are the counts that would have been.
    pub dry_run: bool,
}

impl PruneReport {
    /// Rows deleted in all tables.
    pub fn total(&self) -> u64 {
        self.issued_tokens + self.status_lists + self.audit_events + self.client_assertions
    }

    /// `(table, rows)` for each table.
    pub fn by_table(&self) -> [(&'static str, u64); 4] {
        [
            ("issued_tokens", self.issued_tokens),
            ("status_lists", self.status_lists),
            ("audit_events", self.audit_events),
            ("client_assertion_jtis", self.client_assertions),
        ]
    }
}

/// Full lists with no token record left (at least none with `exp >= ?1`)
/// whose successor was created at or before `?2`.
const DEAD_LISTS: &str = "FROM status_lists l WHERE l.next_idx >= l.size \
     AND NOT EXISTS (SELECT 1 FROM issued_tokens t WHERE t.list_id = l.id AND t.exp >= $1) \
     AND EXISTS (SELECT 1 FROM status_lists n WHERE n.id > l.id AND n.created_at <= $2)";

impl Store {
    /// Deletes (or with `policy.dry_run` counts) token records expired for
    /// good, status lists none of whose tokens is left, and audit events past
    /// retention, at `now` (Unix seconds). See the module documentation for
    /// why each deletion is safe.
    pub async fn prune(&self, now: u64, policy: &PrunePolicy) -> Result<PruneReport, StoreError> {
        let batch = i64::from(policy.batch.max(1));
        let token_cutoff = to_i64(now.saturating_sub(policy.token_margin_secs));
        let list_cutoff = to_i64(
            now.saturating_sub(policy.token_margin_secs)
                .saturating_sub(MAX_BLOCK_AGE_SECS),
        );
        let audit_cutoff = policy
            .audit_retention_secs
            .map(|r| to_i64(now.saturating_sub(r).saturating_mul(1000)));
        let mut report = PruneReport {
            dry_run: policy.dry_run,
            ..PruneReport::default()
        };
        if policy.dry_run {
            report.issued_tokens = self
                .count(
                    "SELECT COUNT(*) FROM issued_tokens WHERE exp < $1",
                    token_cutoff,
                    None,
                )
                .await?;
            // Lists whose only records are the ones that would go.
            report.status_lists = self
                .count(
                    &format!("SELECT COUNT(*) {DEAD_LISTS}"),
                    token_cutoff,
                    Some(list_cutoff),
                )
                .await?;
            if let Some(cutoff) = audit_cutoff {
                report.audit_events = self
                    .count(
                        "SELECT COUNT(*) FROM audit_events WHERE ts < $1",
                        cutoff,
                        None,
                    )
                    .await?;
            }
            report.client_assertions = self
                .count(
                    "SELECT COUNT(*) FROM client_assertion_jtis WHERE exp < $1",
                    token_cutoff,
                    None,
                )
                .await?;
            return Ok(report);
        }
        report.issued_tokens = self
            .delete_batches(
                "DELETE FROM issued_tokens WHERE jti IN \
                 (SELECT jti FROM issued_tokens WHERE exp < $1 LIMIT $2)",
                token_cutoff,
                batch,
                None,
            )
            .await?;
        // No record at all may reference a list that goes (i64::MIN: any exp).
        report.status_lists = self
            .delete_batches(
                &format!(
                    "DELETE FROM status_lists WHERE id IN (SELECT l.id {DEAD_LISTS} LIMIT $3)"
                ),
                i64::MIN,
                batch,
                Some(list_cutoff),
            )
            .await?;
        // A jti is needed until its assertion expires (+ leeway, inside
        // the margin): after that the assertion is refused on its exp alone.
        report.client_assertions = self
            .delete_batches(
                "DELETE FROM client_assertion_jtis WHERE (client_id, jti) IN \
                 (SELECT client_id, jti FROM client_assertion_jtis WHERE exp < $1 LIMIT $2)",
                token_cutoff,
                batch,
                None,
            )
            .await?;
        if let Some(cutoff) = audit_cutoff {
            report.audit_events = self
                .delete_batches(
                    "DELETE FROM audit_events WHERE id IN \
                     (SELECT id FROM audit_events WHERE ts < $1 LIMIT $2)",
                    cutoff,
                    batch,
                    None,
                )
                .await?;
        }
        Ok(report)
    }

    async fn count(&self, sql: &str, a: i64, b: Option<i64>) -> Result<u64, StoreError> {
        let mut q = sqlx::query_scalar::<_, i64>(sql).bind(a);
        if let Some(b) = b {
            q = q.bind(b);
        }
        Ok(super::to_u64(q.fetch_one(&self.pool).await?))
    }

    /// Runs a bounded `DELETE` until it deletes fewer than `batch` rows.
    /// Binds `$1 = a`, then `$2 = b, $3 = batch` or `$2 = batch`.
    async fn delete_batches(
        &self,
        sql: &str,
        a: i64,
        batch: i64,
        b: Option<i64>,
    ) -> Result<u64, StoreError> {
        let mut total = 0u64;
        loop {
            let mut q = sqlx::query(sql).bind(a);
            if let Some(b) = b {
                q = q.bind(b);
            }
            let done = q.bind(batch).execute(&self.pool).await?.rows_affected();
            total += done;
            if done < u64::try_from(batch).unwrap_or(u64::MAX) {
                return Ok(total);
            }
            // Let the other writers in between batches.
            tokio::task::yield_now().await;
        }
    }
}
