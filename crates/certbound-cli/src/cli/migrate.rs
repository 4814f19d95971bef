//! Arguments of `certbound migrate`.

use clap::Args;

use super::DirArg;

/// Bring the store's schema up to date
///
/// Applies the schema migrations this version of certbound has and the store
/// (`[store] url`, or the data directory's SQLite database) lacks. SQLite
/// upgrades itself whenever it is opened; a PostgreSQL store shared by
/// several instances is upgraded only by this command, once, before the
/// instances of the new version start (they refuse to start on an older
/// schema and say so).
///
/// Example:
///   certbound migrate --dir ./cb --dry-run
///   certbound migrate --dir ./cb
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub dir: DirArg,
    /// List the migrations that would be applied; apply nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}
