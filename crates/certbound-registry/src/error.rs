//! The operator side's one error type.

use std::path::PathBuf;

/// What can go wrong on the operator side: configuration, the data
/// directory, the store, keys, certificates, and operator input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// A configuration field is invalid.
    #[error("{file}: `{field}` {reason}")]
    Config {
        /// The config file.
        file: PathBuf,
        /// The offending key, e.g. `coap.listen`.
        field: String,
        /// What is wrong and what to do.
        reason: String,
    },
    /// The configuration file could not be parsed.
    #[error("{file}: {reason}")]
    ConfigSyntax {
        /// The config file.
        file: PathBuf,
        /// Parser message.
        reason: String,
    },
    /// The data directory is missing or not initialised.
    #[error(
        "{0} is not a certbound data directory (no certbound.toml): run `certbound init --dir {0}` first, or pass --dir / set CERTBOUND_DIR"
    )]
    NotInitialised(PathBuf),
    /// `init` on a directory that already holds a certbound setup.
    #[error("{0} already holds a certbound setup; choose another --dir or remove it first")]
    AlreadyInitialised(PathBuf),
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The database failed (connection, SQL, constraint, migration): the
    /// store's error, shown as it is (`database: ...`).
    #[error(transparent)]
    Store(certbound_store::StoreError),
    /// Certificate authority / certificate problem.
    #[error(transparent)]
    Pki(#[from] certbound_pki::PkiError),
    /// Protocol-level failure (e.g. key parsing).
    #[error(transparent)]
    Proto(#[from] certbound_proto::ProtoError),
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
    /// Invalid input to an operator command.
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

impl From<certbound_store::StoreError> for RegistryError {
    fn from(e: certbound_store::StoreError) -> Self {
        use certbound_store::StoreError as S;
        match e {
            e @ (S::Db(_) | S::Migrate(_)) => RegistryError::Store(e),
            S::NotFound { kind, name, hint } => RegistryError::NotFound { kind, name, hint },
            S::Conflict { kind, name } => RegistryError::Conflict { kind, name },
            S::Revoked { kind, name } => RegistryError::Revoked { kind, name },
            S::Invalid(m) => RegistryError::Invalid(m),
            other => RegistryError::Invalid(other.to_string()),
        }
    }
}

impl RegistryError {
    /// Wraps an I/O error with the file it concerns (for `map_err`).
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| RegistryError::Io { path, source }
    }
}
