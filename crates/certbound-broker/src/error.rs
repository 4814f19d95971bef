//! The broker's one error type.

use std::path::PathBuf;

use certbound_registry::RegistryError;

/// What can go wrong in the broker library: starting the transports and the
/// services behind them. What the operator side reports (configuration,
/// registry, store, keys) arrives as [`BrokerError::Registry`], unchanged.
///
/// Protocol refusals sent to devices are not errors of this type: they are
/// [`certbound_proto::ace::AceError`] answers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// Configuration, data directory, registry or store: the operator side's
    /// error, shown as it is.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Certificate authority / certificate problem.
    #[error(transparent)]
    Pki(#[from] certbound_pki::PkiError),
    /// Protocol-level failure (e.g. key parsing).
    #[error(transparent)]
    Proto(#[from] certbound_proto::ProtoError),
    /// CoAP endpoint failure.
    #[error(transparent)]
    Coap(#[from] certbound_coap::CoapError),
    /// Invalid input or setup (what is wrong and what to do).
    #[error("{0}")]
    Invalid(String),
}

/// Store errors reach the broker through the registry's one mapping of them
/// (a missing device is [`RegistryError::NotFound`] wherever it was looked up).
impl From<certbound_store::StoreError> for BrokerError {
    fn from(e: certbound_store::StoreError) -> Self {
        BrokerError::Registry(e.into())
    }
}

impl BrokerError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| BrokerError::Io { path, source }
    }
}
