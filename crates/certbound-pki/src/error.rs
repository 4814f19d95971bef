//! The single error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while creating, issuing, loading or validating
/// certificates.
///
/// The variants are deliberately fine-grained so that callers can map them to
/// protocol errors (for example `Expired` and `NotYetValid` to a "renew your
/// certificate" answer, `UnknownIssuer` and `BadSignature` to `invalid_client`).
/// Every message says what was wrong and what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// A certificate of the chain (the leaf or a CA) is past its notAfter.
    #[error(
        "certificate expired: valid until {not_after} (unix seconds), now is {now}; \
         renew or re-provision the certificate (or fix this host's clock)"
    )]
    Expired {
        /// notAfter of the expired certificate, unix seconds.
        not_after: u64,
        /// The time used for the check, unix seconds.
        now: u64,
    },

    /// A certificate of the chain (the leaf or a CA) is not valid yet.
    #[error(
        "certificate not valid yet: valid from {not_before} (unix seconds), now is {now}; \
         check the clocks of this host and of the issuing CA"
    )]
    NotYetValid {
        /// notBefore of the certificate, unix seconds.
        not_before: u64,
        /// The time used for the check, unix seconds.
        now: u64,
    },

    /// No trusted CA issued this certificate (a foreign CA, or a missing intermediate).
    #[error(
        "unknown issuer: {0}; the certificate was not issued by a CA in this trust store \
         (provision the device from this CA, or send the missing intermediate CA certificate)"
    )]
    UnknownIssuer(String),

    /// A signature in the chain does not verify (tampered or mis-assembled certificate).
    #[error(
        "bad signature: {0}; the certificate was altered or does not belong to this CA \
         (re-issue it from the CA)"
    )]
    BadSignature(String),

    /// A CA certificate of the chain may not issue certificates (basic constraints,
    /// key usage or path length violated).
    #[error("invalid certificate chain: {0}; use certificates made by `certbound init`")]
    InvalidChain(String),

    /// The leaf is not a certbound device certificate (missing clientAuth EKU or
    /// device SAN URI, CN/SAN mismatch, a CA certificate, ...).
    #[error(
        "not a device certificate: {0}; issue device certificates with \
         `certbound device provision` or `device sign-csr`"
    )]
    NotADeviceCert(String),

    /// Input could not be parsed (DER, PEM, key material, ...).
    #[error("malformed input: {0}")]
    Malformed(String),

    /// A key or signature algorithm other than ECDSA P-256 with SHA-256 was used.
    #[error("unsupported key or algorithm: {0}; certbound only supports ECDSA P-256 with SHA-256")]
    UnsupportedKey(String),

    /// The device id does not follow the rules of [`crate::validate_device_id`].
    #[error(
        "invalid device id {id:?}: {reason}; use 1 to 128 characters of A-Z a-z 0-9 . _ : - \
         not starting with '.' or '-'"
    )]
    InvalidDeviceId {
        /// The rejected id (possibly truncated for display).
        id: String,
        /// What rule it broke.
        reason: &'static str,
    },

    /// A PKCS#10 certificate signing request was refused (unreadable, too big,
    /// not version 1, or its self-signature does not verify).
    #[error(
        "certificate signing request rejected: {0}; create a new PKCS#10 CSR signed by its own \
         ECDSA P-256 key with ecdsa-with-SHA256 (for example `openssl req -new -newkey ec \
         -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=<id>`)"
    )]
    BadCsr(String),

    /// The root CA private key is not in the data directory, but the operation
    /// (issuing CA rotation) must sign with it.
    #[error(
        "the root CA key is not available: {} does not exist; rotating the issuing CA signs \
         with the root key: pass the offline copy with `--root-key PATH` (made by \
         `certbound init --root-key-out PATH`)",
        .0.display()
    )]
    RootKeyUnavailable(PathBuf),

    /// A private key file is encrypted at rest but no key encryption key was given.
    #[error(
        "{} is an encrypted private key (CERTBOUND ENCRYPTED PRIVATE KEY) but no key \
         encryption key is configured; set the environment variable \
         CERTBOUND_KEY_ENCRYPTION_KEY or `[keys] encryption_key_file` in certbound.toml",
        .0.display()
    )]
    SealedKeyNoKek(PathBuf),

    /// An encrypted private key file could not be decrypted.
    #[error(
        "{} could not be decrypted: the key encryption key is wrong, or the file was altered \
         or belongs to another key (the AES-GCM tag does not verify); configure the key it \
         was encrypted with, or restore the file from a backup",
        .0.display()
    )]
    SealedKeyOpen(PathBuf),

    /// The key encryption key itself is unusable.
    #[error(
        "unusable key encryption key: {0}; it must be 32 random bytes in base64 \
         (e.g. `openssl rand -base64 32`)"
    )]
    BadKeyEncryptionKey(String),

    /// A certificate from an external CA verified up to a configured anchor
    /// but is not usable as a device certificate.
    #[error(
        "not usable as an external device certificate: {0}; the external CA must issue \
         end-entity (CA:FALSE) certificates with an ECDSA P-256 key, and clientAuth when \
         they carry an extendedKeyUsage"
    )]
    NotAnExternalDeviceCert(String),

    /// The subject CN of an external certificate cannot serve as a device id.
    #[error(
        "the external certificate cannot name a device: {0}; its subject must have exactly \
         one CN that is a valid device id (1 to 128 characters of A-Z a-z 0-9 . _ : - not \
         starting with '.' or '-'); ask the external CA for such certificates"
    )]
    ExternalDeviceId(String),

    /// An argument is out of range (for example a lifetime of zero days).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// A file that would be written already exists; nothing is overwritten.
    #[error(
        "{} already exists; refusing to overwrite it (move it away or choose another directory)",
        .0.display()
    )]
    AlreadyExists(PathBuf),

    /// Reading or writing a file failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The system random number generator failed.
    #[error("the system random number generator failed; check the OS entropy source")]
    Random,

    /// Certificate generation failed inside rcgen.
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
}

impl PkiError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        PkiError::Io {
            path: path.into(),
            source,
        }
    }
}
