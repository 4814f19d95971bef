//! Provisioning claims in the [`Store`].

use serde::Serialize;
use sqlx::Row;

use super::{CertRecord, Store, to_i64, to_u64};
use crate::error::StoreError;

/// A provisioning claim.
#[derive(Debug, Clone, Serialize)]
pub struct Claim {
    /// Claim id.
    pub id: String,
    /// Group its devices join.
    pub group: String,
    /// Uses it was created with.
    pub uses_total: u64,
    /// Uses left.
    pub uses_left: u64,
    /// Expiry, Unix seconds.
    pub expires_at: u64,
    /// Glob (`*` only) device ids must match.
    pub id_pattern: Option<String>,
    /// Device ids allowed (when set).
    pub allowlist: Option<Vec<String>>,
    /// Revoked by the operator.
    pub revoked: bool,
}

impl Store {
    /// Records a new claim; `public_key` is its certificate's key (SEC1).
    pub async fn create_claim(
        &self,
        c: &Claim,
        public_key: &[u8],
        now: u64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO claims (id, group_name, uses_total, uses_left, expires_at, id_pattern, allowlist, public_key, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&c.id)
        .bind(&c.group)
        .bind(to_i64(c.uses_total))
        .bind(to_i64(c.uses_left))
        .bind(to_i64(c.expires_at))
        .bind(&c.id_pattern)
        .bind(c.allowlist.as_ref().map(|l| l.join("\n")))
        .bind(public_key)
        .bind(to_i64(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Looks a claim up.
    pub async fn get_claim(&self, id: &str) -> Result<Option<Claim>, StoreError> {
        let row = sqlx::query("SELECT * FROM claims WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| claim_from_row(&r)))
    }

    /// The claim (any: expired and revoked ones too) whose certificate key
    /// is `public_key` (SEC1), if one is known.
    pub async fn claim_with_key(&self, public_key: &[u8]) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT id FROM claims WHERE public_key = $1 ORDER BY id LIMIT 1")
                .bind(public_key)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// All claims, newest first.
    pub async fn list_claims(&self) -> Result<Vec<Claim>, StoreError> {
        let rows = sqlx::query("SELECT * FROM claims ORDER BY created_at DESC, id")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(claim_from_row).collect())
    }

    /// Sets a claim's expiry (the certificate's own notAfter still bounds it).
    pub async fn set_claim_expiry(&self, id: &str, expires_at: u64) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE claims SET expires_at = $1 WHERE id = $2")
            .bind(to_i64(expires_at))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Revokes a claim (no more uses).
    pub async fn revoke_claim(&self, id: &str, now: u64) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE claims SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(to_i64(now))
                .bind(id)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Takes one use of `claim` and registers the device with its first
    /// certificate, atomically: the use is only spent when the device is
    /// created, and two devices racing for the last use cannot both win.
    /// `claim_key` (SEC1) is recorded for a claim made before keys were.
    pub async fn enroll_with_claim(
        &self,
        claim: &str,
        claim_key: &[u8],
        device_id: &str,
        group: &str,
        cert: &CertRecord,
        now: u64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let taken = sqlx::query(
            "UPDATE claims SET uses_left = uses_left - 1, public_key = COALESCE(public_key, $1) \
             WHERE id = $2 AND uses_left > 0 AND expires_at > $3 AND revoked_at IS NULL",
        )
        .bind(claim_key)
        .bind(claim)
        .bind(to_i64(now))
        .execute(&mut *tx)
        .await?;
        if taken.rows_affected() == 0 {
            return Ok(false);
        }
        super::insert_device(&mut tx, device_id, &[group.to_string()], cert, now).await?;
        tx.commit().await?;
        Ok(true)
    }
}

fn claim_from_row(r: &sqlx::any::AnyRow) -> Claim {
    let allow: Option<String> = r.get("allowlist");
    Claim {
        id: r.get("id"),
        group: r.get("group_name"),
        uses_total: to_u64(r.get("uses_total")),
        uses_left: to_u64(r.get("uses_left")),
        expires_at: to_u64(r.get("expires_at")),
        id_pattern: r.get("id_pattern"),
        allowlist: allow.map(|a| {
            a.lines()
                .map(str::to_string)
                .filter(|s| !s.is_empty())
                .collect()
        }),
        revoked: r.get::<Option<i64>, _>("revoked_at").is_some(),
    }
}

/// Whether `id` matches `pattern`, a glob where `*` matches any run of characters.
pub fn glob_match(pattern: &str, id: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == id;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !id.starts_with(first) || !id.ends_with(last) || id.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &id[first.len()..id.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs() {
        assert!(glob_match("sensor-*", "sensor-17"));
        assert!(!glob_match("sensor-*", "gateway-1"));
        assert!(glob_match("*", "anything"));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b*c", "axxc"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exact2"));
        assert!(!glob_match("ab*ba", "aba"));
    }
}
