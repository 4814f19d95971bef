//! The store's one error type.

/// What went wrong in the registry database.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database failed (connection, SQL, constraint).
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// A schema migration failed.
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The store URL names no supported database.
    #[error(
        "store URL {0:?}: use sqlite://<path> (the embedded default) or postgres://user@host/db"
    )]
    Url(String),
    /// The PostgreSQL schema is older than this build.
    #[error(
        "the store at {url} lacks migrations {pending:?}: run `certbound migrate` once (with this \
         version of certbound) before starting instances of it"
    )]
    SchemaBehind {
        /// The store (password redacted).
        url: String,
        /// The migrations not yet applied, `version description`.
        pending: Vec<String>,
    },
    /// A named object does not exist.
    #[error("{kind} {name:?} does not exist{hint}")]
    NotFound {
        /// "device", "API", "group".
        kind: &'static str,
        /// The name looked up.
        name: String,
        /// What to do, starting with "; ".
        hint: String,
    },
    /// A named object already exists.
    #[error("{kind} {name:?} already exists")]
    Conflict {
        /// "device", "API", "group".
        kind: &'static str,
        /// The name.
        name: String,
    },
    /// Invalid input.
    #[error("{0}")]
    Invalid(String),
    /// A revoked object was asked to change status: revocation is final.
    #[error(
        "{kind} {name:?} is revoked, which is final: it cannot be suspended or resumed; provision a new identity (a new {kind} id) instead"
    )]
    Revoked {
        /// "device".
        kind: &'static str,
        /// Its id.
        name: String,
    },
}
