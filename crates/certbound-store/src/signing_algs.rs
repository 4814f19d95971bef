//! Signing algorithms per API (store version 0014): `apis.signing_alg`,
//! NULL for the default (ES256). The column is kept apart from [`Api`] so
//! that the common API calls stay as they were; the snapshot reads it with
//! the rest of an API.
//!
//! [`Api`]: crate::Api

use sqlx::Row;

use crate::Store;
use crate::error::StoreError;
use crate::policy::PolicyConn;

impl Store {
    /// The signing algorithm an API asked for (`None`: the default, ES256,
    /// or no such API).
    pub async fn api_signing_alg(&self, id: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT signing_alg FROM apis WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.and_then(|r| r.get::<Option<String>, _>("signing_alg")))
    }

    /// Sets (or, with `None`, resets to ES256) an API's signing algorithm.
    /// Returns false when there is no such API.
    pub async fn set_api_signing_alg(
        &self,
        id: &str,
        alg: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("UPDATE apis SET signing_alg = $1 WHERE id = $2")
            .bind(alg)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(done > 0)
    }

    /// Every API with a signing algorithm other than the default, by id.
    pub async fn api_signing_algs(&self) -> Result<Vec<(String, String)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, signing_alg FROM apis WHERE signing_alg IS NOT NULL ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?)
    }
}

/// [`Store::api_signing_algs`] on a policy transaction.
pub async fn read_api_signing_algs(
    conn: &mut PolicyConn,
) -> Result<Vec<(String, String)>, StoreError> {
    Ok(
        sqlx::query_as(
            "SELECT id, signing_alg FROM apis WHERE signing_alg IS NOT NULL ORDER BY id",
        )
        .fetch_all(&mut *conn)
        .await?,
    )
}

/// Sets an API's signing algorithm on a policy transaction (after
/// [`crate::policy::upsert_api`]); `None` resets it to ES256.
pub async fn write_api_signing_alg(
    conn: &mut PolicyConn,
    id: &str,
    alg: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE apis SET signing_alg = $1 WHERE id = $2")
        .bind(alg)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
