//! Arguments of `certbound prune`: housekeeping of the store for operators
//! who run without `certbound serve` (which prunes on its own, every
//! `[audit] prune_every_secs`).

use clap::Args;

use super::DirArg;

/// Delete what the store no longer needs
///
/// Deletes token records expired for good (past their expiry plus
/// `[broker] leeway_secs` and `[status] ttl_secs`), status lists none of
/// whose tokens is left, and audit events older than `[audit]
/// retention_days` (0 keeps them). Live and recently expired tokens, and
/// the revocations verifiers may still need, stay. Safe to run while a
/// broker runs: rows are deleted in batches.
///
/// Example:
///   certbound prune --dir ./cb --dry-run
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct PruneArgs {
    #[command(flatten)]
    pub dir: DirArg,
    /// Show what would be deleted; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}
