//! [`TokenVerifier`]: the offline check of a certbound access token, and its
//! result [`VerifiedToken`].

use certbound_proto::cbor::Limits;
use certbound_proto::claims::{Claims, Expectations};
use certbound_proto::token::UnverifiedToken;

use crate::error::VerifyError;
use crate::keyset::KeySet;

/// Default allowed clock skew between the broker and a backend, in seconds.
pub const DEFAULT_LEEWAY: u64 = 60;

/// What a backend expects of the tokens it accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierConfig {
    /// Required issuer (`iss`), when set.
    pub issuer: Option<String>,
    /// This backend's API identifier, which the token's `aud` (a string or an
    /// array) must contain.
    pub audience: String,
    /// Allowed clock skew for `exp`, `nbf` and `iat`, in seconds (default 60).
    pub leeway: u64,
    /// Size and depth bounds applied before any decoding or crypto.
    pub limits: Limits,
    /// Accept tokens without `cnf` (bearer tokens). Default `false`: such
    /// tokens are refused with [`VerifyError::MissingConfirmation`].
    pub allow_bearer: bool,
}

impl VerifierConfig {
    /// A configuration for `audience` with no issuer check, 60 s leeway,
    /// default limits and bearer tokens refused.
    pub fn new(audience: impl Into<String>) -> Self {
        Self {
            issuer: None,
            audience: audience.into(),
            leeway: DEFAULT_LEEWAY,
            limits: Limits::default(),
            allow_bearer: false,
        }
    }
}

/// Verifies certbound access tokens offline against a [`KeySet`].
///
/// Cheap to share: wrap it in an `Arc` or clone it (the key set's verifiers
/// are shared).
#[derive(Debug, Clone)]
pub struct TokenVerifier {
    keys: KeySet,
    config: VerifierConfig,
}

impl TokenVerifier {
    /// A verifier trusting `keys` with the expectations of `config`.
    pub fn new(keys: KeySet, config: VerifierConfig) -> Self {
        Self { keys, config }
    }

    /// The trusted keys.
    pub fn keys(&self) -> &KeySet {
        &self.keys
    }

    /// The configuration.
    pub fn config(&self) -> &VerifierConfig {
        &self.config
    }

    /// Verifies `token` at time `now` (Unix seconds) and requires every scope
    /// of `required_scopes`.
    ///
    /// In order: strict parsing (size, depth, CBOR strictness, COSE headers,
    /// `typ` = `at+cwt`, ES256 only), key lookup by `kid` (only a hint: the
    /// signature decides), the signature, then the claims: `exp` required,
    /// `nbf`/`iat` not in the future, both with the configured leeway; `iss`
    /// when configured; `aud` contains the configured audience; every
    /// required scope granted; `cnf` present unless `allow_bearer`.
    ///
    /// # Errors
    /// [`VerifyError::Malformed`], [`VerifyError::UnknownKey`],
    /// [`VerifyError::BadSignature`], [`VerifyError::Claims`],
    /// [`VerifyError::MissingConfirmation`].
    pub fn verify(
        &self,
        token: &[u8],
        required_scopes: &[&str],
        now: u64,
    ) -> Result<VerifiedToken, VerifyError> {
        let limits = self.config.limits;
        let parsed = UnverifiedToken::parse(token, limits)?;
        let kid = kid_text(parsed.kid());
        let verifier = std::str::from_utf8(parsed.kid())
            .ok()
            .and_then(|k| self.keys.verifier(k))
            .ok_or_else(|| VerifyError::UnknownKey { kid: kid.clone() })?;
        let claims = parsed.verify(verifier, limits)?;
        claims.validate(&Expectations {
            issuer: self.config.issuer.as_deref(),
            audience: &self.config.audience,
            required_scopes,
            now,
            leeway: self.config.leeway,
        })?;
        if claims.cnf.is_none() && !self.config.allow_bearer {
            return Err(VerifyError::MissingConfirmation);
        }
        Ok(VerifiedToken { claims, kid })
    }
}

/// A token whose signature and claims were verified.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    /// The verified claims.
    pub claims: Claims,
    /// The kid of the key that verified the signature.
    pub kid: String,
}

impl VerifiedToken {
    /// The device id (`sub`).
    pub fn device_id(&self) -> Option<&str> {
        self.claims.sub.as_deref()
    }

    /// The confirmation key (`cnf`): the public key of the device certificate.
    pub fn confirmation_key(&self) -> Option<&certbound_proto::EcPublicKey> {
        self.claims.cnf.as_ref()
    }

    /// Whether the token grants `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.claims
            .scope
            .as_deref()
            .is_some_and(|s| certbound_proto::claims::scopes(s).any(|g| g == scope))
    }
}

/// The kid hint as text; a non-UTF-8 kid (never issued by certbound) is shown
/// as `h'<hex>'` (and never looked up).
pub(crate) fn kid_text(kid: &[u8]) -> String {
    match std::str::from_utf8(kid) {
        Ok(s) => s.to_string(),
        Err(_) => format!("h'{}'", crate::inspect::to_hex(kid)),
    }
}
