//! Transactions for policy as code (`certbound plan` / `certbound apply`,
//! see [`crate::policy`]).

use sqlx::{Sqlite, Transaction};

use super::Store;
use crate::error::StoreError;

impl Store {
    /// A read transaction: one consistent snapshot for export and plan.
    pub async fn policy_read(&self) -> Result<Transaction<'_, Sqlite>, StoreError> {
        Ok(self.pool.begin().await?)
    }

    /// The single write transaction of `apply` (`BEGIN IMMEDIATE`: the
    /// current state is read, diffed and written under one write lock).
    pub async fn policy_write(&self) -> Result<Transaction<'_, Sqlite>, StoreError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }
}
