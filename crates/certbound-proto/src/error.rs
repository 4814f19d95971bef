//! The one error type of this crate.

use crate::ace::AceErrorCode;

/// Everything that can go wrong while encoding, decoding, signing or validating
/// certbound protocol objects.
///
/// Each variant says what was wrong; [`ProtoError::ace_code`] maps it to the ACE
/// error code a broker answers with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtoError {
    /// The input is larger than the configured bound.
    #[error("input is {size} bytes, more than the limit of {limit} bytes")]
    TooLarge {
        /// Size of the input.
        size: usize,
        /// Configured limit.
        limit: usize,
    },
    /// The input is not well-formed CBOR or breaks one of the strictness rules.
    #[error("malformed CBOR at byte {offset}: {reason}")]
    MalformedCbor {
        /// Byte offset of the problem.
        offset: usize,
        /// What was wrong.
        reason: &'static str,
    },
    /// The CBOR is well formed but does not have the expected structure.
    #[error("invalid {what}: {reason}")]
    InvalidStructure {
        /// Which object was being decoded.
        what: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// A COSE header breaks the rules (alg missing or unprotected, unknown crit, ...).
    #[error("COSE header rejected: {0}")]
    BadHeader(String),
    /// The object's `typ` header names another kind of object.
    #[error("wrong object type: expected typ {expected:?}, found {found:?}")]
    WrongType {
        /// The typ this verifier expects.
        expected: &'static str,
        /// The typ in the message.
        found: String,
    },
    /// The algorithm is not ES256 (or ESP256) with a P-256 key.
    #[error(
        "unsupported algorithm {0}: only ES256 (-7) / ESP256 (-9) with P-256 keys are accepted"
    )]
    UnsupportedAlgorithm(i64),
    /// The signature does not verify with the key.
    #[error("signature does not verify with the expected key")]
    BadSignature,
    /// A key could not be parsed or used.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// A signing operation failed.
    #[error("signing failed: {0}")]
    SigningFailed(String),
    /// A claim failed validation.
    #[error(transparent)]
    Claim(#[from] ClaimError),
    /// A Token Status List is malformed or used out of its bounds.
    #[error("invalid status list: {0}")]
    InvalidStatusList(String),
    /// A compressed status list inflates to more than the configured bound.
    #[error(
        "status list inflates to more than {limit} bytes: refused as a possible zip bomb \
         (raise the bound only if the issuer really publishes lists this large)"
    )]
    StatusListTooLarge {
        /// The configured bound on the inflated list, bytes.
        limit: usize,
    },
    /// A compact JWS / JWT is malformed.
    #[error("invalid JWT: {0}")]
    InvalidJwt(String),
    /// The JWS `alg` is not one certbound signs with.
    #[error(
        "unsupported JWS algorithm {0:?}: only ES256, RS256, PS256 and EdDSA are accepted \
         (\"none\" and HMAC are always refused)"
    )]
    UnsupportedJwsAlgorithm(String),
    /// The JWS header names another algorithm than the key's (algorithm
    /// confusion): the key's type and its JWK `alg` decide, never the header.
    #[error(
        "JWS alg {header} does not match the signing key, which is a {key} key: refused \
         (the key decides the algorithm, never the token)"
    )]
    AlgorithmMismatch {
        /// The header's `alg`.
        header: String,
        /// The key's algorithm.
        key: String,
    },
}

/// Why a set of claims (of a token or of a device request) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClaimError {
    /// A required claim is missing.
    #[error("required claim `{0}` is missing")]
    Missing(&'static str),
    /// `exp` is in the past (beyond the leeway).
    #[error("expired at {exp} (now {now}, {} s ago)", now.saturating_sub(*exp))]
    Expired {
        /// Expiry time, Unix seconds.
        exp: u64,
        /// Validation time.
        now: u64,
    },
    /// `nbf` (or `iat` of a request) is in the future beyond the leeway.
    #[error("not valid before {nbf} (now {now}, {} s early)", nbf.saturating_sub(*now))]
    NotYetValid {
        /// Start of validity, Unix seconds.
        nbf: u64,
        /// Validation time.
        now: u64,
    },
    /// The object lives longer than allowed (e.g. a device request with exp > iat + 5 min).
    #[error("lifetime of {lifetime} s exceeds the maximum of {max} s")]
    LifetimeTooLong {
        /// exp - iat.
        lifetime: u64,
        /// Allowed maximum.
        max: u64,
    },
    /// The subject is not the expected one (e.g. a status list token whose
    /// `sub` is not the `uri` the referenced token points to).
    #[error("subject is {found:?}, expected {expected:?}")]
    SubjectMismatch {
        /// Expected subject.
        expected: String,
        /// Subject in the claims.
        found: String,
    },
    /// The audience does not name the expected party.
    #[error("audience is {found:?}, expected {expected:?}")]
    AudienceMismatch {
        /// Who the verifier is.
        expected: String,
        /// What the token names.
        found: Vec<String>,
    },
    /// The issuer is not the expected one.
    #[error("issuer is {found:?}, expected {expected:?}")]
    IssuerMismatch {
        /// Expected issuer.
        expected: String,
        /// Issuer in the claims.
        found: String,
    },
    /// The token lacks scopes the verifier requires.
    #[error("scope {missing:?} is not granted by the token (token has {granted:?})")]
    ScopeMissing {
        /// The first missing scope.
        missing: String,
        /// The token's scope string.
        granted: String,
    },
    /// The `cti` was seen before within its validity.
    #[error("cti {0} was already used (replay)")]
    Replayed(String),
}

impl ProtoError {
    /// The ACE error code (RFC 9200 Table 3) a broker should answer with.
    pub fn ace_code(&self) -> AceErrorCode {
        match self {
            ProtoError::TooLarge { .. }
            | ProtoError::MalformedCbor { .. }
            | ProtoError::InvalidStructure { .. } => AceErrorCode::InvalidRequest,
            ProtoError::Claim(ClaimError::ScopeMissing { .. }) => AceErrorCode::InvalidScope,
            _ => AceErrorCode::InvalidClient,
        }
    }

    pub(crate) fn structure(what: &'static str, reason: impl Into<String>) -> Self {
        ProtoError::InvalidStructure {
            what,
            reason: reason.into(),
        }
    }
}
