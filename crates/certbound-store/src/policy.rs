//! Transactions for policy as code (`certbound plan` / `certbound apply`,
//! see [`crate::policy`]).

use sqlx::{Any, Transaction};

use super::Store;
use crate::error::StoreError;

impl Store {
    /// A read transaction: one consistent snapshot for export and plan.
    pub async fn policy_read(&self) -> Result<Transaction<'static, Any>, StoreError> {
        Ok(self.pool.begin().await?)
    }

    /// The single write transaction of `apply` ([`Store::begin_write`]:
    /// the current state is read, diffed and written under one write lock).
    pub async fn policy_write(&self) -> Result<crate::WriteTx, StoreError> {
        self.begin_write().await
    }
}
