//! [`TokenVerifier`]: the offline check of a certbound access token (CWT or
//! RFC 9068 JWT), and its result [`VerifiedToken`].

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use certbound_proto::ProtoError;
use certbound_proto::cbor::Limits;
use certbound_proto::claims::{Claims, Expectations};
use certbound_proto::jwt::UnverifiedJwt;
use certbound_proto::token::UnverifiedToken;

use crate::error::VerifyError;
use crate::keyset::KeySet;
use crate::text::decode_token_text;

/// Default allowed clock skew between the broker and a backend, in seconds.
pub const DEFAULT_LEEWAY: u64 = 60;

/// What a backend expects of the tokens it accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierConfig {
    /// The required issuer (`iss`, the broker's issuer id). Required: a
    /// verifier with no issuer refuses every token
    /// ([`VerifyError::IssuerNotConfigured`]) unless [`VerifierConfig::any_issuer`]
    /// opts out explicitly.
    pub issuer: Option<String>,
    /// Explicit opt-out of the issuer check (default `false`): accept tokens
    /// of any `iss` when [`VerifierConfig::issuer`] is `None`. Only for a
    /// verifier whose key set holds a single issuer's keys.
    pub any_issuer: bool,
    /// This backend's API identifier, which the token's `aud` (a string or an
    /// array) must contain.
    pub audience: String,
    /// Allowed clock skew for `exp`, `nbf` and `iat`, in seconds (default 60).
    pub leeway: u64,
    /// Size and depth bounds applied before any decoding or crypto (a
    /// JWT's text may be at most `max_size` bytes long).
    pub limits: Limits,
    /// Accept tokens without `cnf` (bearer tokens). Default `false`: such
    /// tokens are refused with [`VerifyError::MissingConfirmation`].
    pub allow_bearer: bool,
    /// Custom claims whose type is declared ([`VerifierConfig::expect_claim`]):
    /// a token carrying one with another type is refused.
    pub expected_claims: Vec<(crate::custom::ClaimKey, crate::custom::ClaimType)>,
}

impl VerifierConfig {
    /// A configuration for `audience` with 60 s leeway, default limits and
    /// bearer tokens refused. No issuer is set yet: set one
    /// ([`VerifierConfig::with_issuer`]) or opt out ([`VerifierConfig::any_issuer`]),
    /// or every token is refused with [`VerifyError::IssuerNotConfigured`].
    pub fn new(audience: impl Into<String>) -> Self {
        Self {
            issuer: None,
            any_issuer: false,
            audience: audience.into(),
            leeway: DEFAULT_LEEWAY,
            limits: Limits::default(),
            allow_bearer: false,
            expected_claims: Vec::new(),
        }
    }

    /// Requires `issuer` as the tokens' `iss`.
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// The issuer expectation of a check: `Ok(Some(iss))` to require,
    /// `Ok(None)` with the explicit opt-out.
    ///
    /// # Errors
    /// [`VerifyError::IssuerNotConfigured`] when neither is set.
    pub fn expected_issuer(&self) -> Result<Option<&str>, VerifyError> {
        match (&self.issuer, self.any_issuer) {
            (Some(iss), _) => Ok(Some(iss.as_str())),
            (None, true) => Ok(None),
            (None, false) => Err(VerifyError::IssuerNotConfigured),
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

    /// Verifies the CWT `token` at time `now` (Unix seconds) and requires
    /// every scope of `required_scopes`.
    ///
    /// In order: strict parsing (size, depth, CBOR strictness, COSE headers,
    /// `typ` = `at+cwt`, ES256 only), key lookup by `kid` (only a hint: the
    /// signature decides), the signature, then the claims: `exp` required,
    /// `nbf`/`iat` not in the future, both with the configured leeway; `iss`
    /// equal to the configured issuer (required; see [`VerifierConfig::issuer`]); `aud` contains the configured audience; every
    /// required scope granted; `cnf` present unless `allow_bearer`.
    ///
    /// The token's `status` (revocation) is not checked here: that needs a
    /// fetched status list, see [`crate::status::StatusCache`].
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
        verify_cwt_with(&self.keys, &self.config, token, required_scopes, now)
    }

    /// Verifies an RFC 9068 JWT access token (compact JWS text) at time
    /// `now` and requires every scope of `required_scopes`.
    ///
    /// The same rules as [`TokenVerifier::verify`], in the JWT form: at most
    /// `limits.max_size` bytes of text; header `typ` `at+jwt`, `alg` the
    /// algorithm of the key its `kid` names (`ES256` for EC keys, `RS256` or
    /// `PS256` as the RSA key's JWK says, `EdDSA` for Ed25519 keys; `none`,
    /// HMAC and any other are refused), no `crit`; the signature over the
    /// text as received; then
    /// `exp` (required), `nbf`/`iat` with leeway, `iss` when configured,
    /// `aud` (string or array) containing the audience, the scopes, and
    /// `cnf` (`x5t#S256`, RFC 8705) present unless `allow_bearer`.
    ///
    /// The claims are mapped into [`VerifiedToken::claims`] (`jti` becomes
    /// `cti` as its UTF-8 bytes); the certificate thumbprint is in
    /// [`VerifiedToken::x5t_s256`] and `client_id` in
    /// [`VerifiedToken::client_id`].
    ///
    /// # Errors
    /// As for [`TokenVerifier::verify`].
    pub fn verify_jwt(
        &self,
        text: &str,
        required_scopes: &[&str],
        now: u64,
    ) -> Result<VerifiedToken, VerifyError> {
        verify_jwt_with(&self.keys, &self.config, text, required_scopes, now)
    }

    /// Verifies a token given as text, as it arrives in an
    /// `Authorization: Bearer` header: a JWT (exactly two dots) with
    /// [`TokenVerifier::verify_jwt`], anything else decoded with
    /// [`crate::decode_token_text`] (base64url, base64 or hex) and verified
    /// as a CWT with [`TokenVerifier::verify`]. Surrounding whitespace is
    /// ignored.
    ///
    /// # Errors
    /// As for [`TokenVerifier::verify`], and [`VerifyError::InvalidTokenText`]
    /// for text that is neither.
    pub fn verify_text(
        &self,
        text: &str,
        required_scopes: &[&str],
        now: u64,
    ) -> Result<VerifiedToken, VerifyError> {
        verify_text_with(&self.keys, &self.config, text, required_scopes, now)
    }
}

/// [`TokenVerifier::verify_text`] with a key set given per call (the HTTP
/// layer's keys may be refreshed from a JWKS URL).
pub(crate) fn verify_text_with(
    keys: &KeySet,
    config: &VerifierConfig,
    text: &str,
    required_scopes: &[&str],
    now: u64,
) -> Result<VerifiedToken, VerifyError> {
    let text = text.trim();
    if is_jwt_text(text) {
        return verify_jwt_with(keys, config, text, required_scopes, now);
    }
    // base64 of at most max_size bytes: refuse longer text before decoding.
    let max_text = config.limits.max_size.saturating_mul(2).saturating_add(16);
    if text.len() > max_text {
        return Err(VerifyError::Malformed(ProtoError::TooLarge {
            size: text.len(),
            limit: max_text,
        }));
    }
    let bytes = decode_token_text(text)?;
    verify_cwt_with(keys, config, &bytes, required_scopes, now)
}

/// A JWT in compact form has exactly two dots (three parts).
pub(crate) fn is_jwt_text(text: &str) -> bool {
    text.bytes().filter(|b| *b == b'.').count() == 2
}

fn verify_cwt_with(
    keys: &KeySet,
    config: &VerifierConfig,
    token: &[u8],
    required_scopes: &[&str],
    now: u64,
) -> Result<VerifiedToken, VerifyError> {
    let limits = config.limits;
    config.expected_issuer()?;
    let parsed = UnverifiedToken::parse(token, limits)?;
    let kid = kid_text(parsed.kid());
    let verifier = std::str::from_utf8(parsed.kid())
        .ok()
        .and_then(|k| keys.verifier(k))
        .ok_or_else(|| VerifyError::UnknownKey { kid: kid.clone() })?;
    let claims = parsed.verify(verifier, limits)?;
    claims.validate(&expectations(config, required_scopes, now)?)?;
    crate::custom::check_expected(config, &claims)?;
    if claims.cnf.is_none() && !config.allow_bearer {
        return Err(VerifyError::MissingConfirmation);
    }
    Ok(VerifiedToken {
        claims,
        kid,
        format: TokenFormat::Cwt,
        x5t_s256: None,
        client_id: None,
    })
}

fn verify_jwt_with(
    keys: &KeySet,
    config: &VerifierConfig,
    text: &str,
    required_scopes: &[&str],
    now: u64,
) -> Result<VerifiedToken, VerifyError> {
    config.expected_issuer()?;
    let parsed = UnverifiedJwt::parse(text, config.limits.max_size)?;
    let kid = parsed.kid().ok_or_else(|| {
        VerifyError::Malformed(ProtoError::BadHeader(
            "JWS kid is missing; certbound JWTs name their signing key".into(),
        ))
    })?;
    // The key decides the algorithm: an ES256 key verifies only ES256, an
    // RS256 key only RS256 (a header naming another is refused).
    let jwt = match (keys.verifier(kid), keys.jose_key(kid)) {
        (Some(verifier), _) => parsed.verify(verifier)?,
        (None, Some(key)) => parsed.verify_key(key)?,
        (None, None) => return Err(VerifyError::UnknownKey { kid: kid.into() }),
    };
    let other = parsed
        .custom_claims()?
        .iter()
        .map(|(k, v)| {
            (
                ciborium::Value::Text(k.clone()),
                certbound_proto::jwt::json_to_cbor(v),
            )
        })
        .collect();
    let x5t_s256 = match &jwt.cnf {
        None => None,
        Some(cnf) => Some(decode_x5t(&cnf.x5t_s256)?),
    };
    let claims = Claims {
        iss: Some(jwt.iss),
        sub: Some(jwt.sub),
        aud: jwt.aud.0,
        exp: Some(jwt.exp),
        nbf: jwt.nbf,
        iat: Some(jwt.iat),
        cti: Some(jwt.jti.into_bytes()),
        scope: jwt.scope,
        cnf: None,
        status: jwt.status.map(|s| s.status_list),
        other,
    };
    claims.validate(&expectations(config, required_scopes, now)?)?;
    crate::custom::check_expected(config, &claims)?;
    if x5t_s256.is_none() && !config.allow_bearer {
        return Err(VerifyError::MissingConfirmation);
    }
    Ok(VerifiedToken {
        claims,
        kid: kid.into(),
        format: TokenFormat::Jwt,
        x5t_s256,
        client_id: Some(jwt.client_id),
    })
}

pub(crate) fn expectations<'a>(
    config: &'a VerifierConfig,
    required_scopes: &'a [&'a str],
    now: u64,
) -> Result<Expectations<'a>, VerifyError> {
    Ok(Expectations {
        issuer: config.expected_issuer()?,
        audience: &config.audience,
        required_scopes,
        now,
        leeway: config.leeway,
    })
}

/// `x5t#S256`: base64url (no padding) of a 32-byte SHA-256.
fn decode_x5t(text: &str) -> Result<[u8; 32], VerifyError> {
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|e| {
        VerifyError::Malformed(ProtoError::InvalidJwt(format!(
            "cnf x5t#S256 is not base64url without padding: {e}"
        )))
    })?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
        VerifyError::Malformed(ProtoError::InvalidJwt(format!(
            "cnf x5t#S256 is {} bytes; a SHA-256 thumbprint is 32",
            bytes.len()
        )))
    })
}

/// The encoding of a verified token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenFormat {
    /// A CWT (COSE_Sign1, `typ` `at+cwt`), bound by a `cnf` COSE_Key.
    Cwt,
    /// An RFC 9068 JWT (`typ` `at+jwt`), bound by `cnf.x5t#S256` (RFC 8705).
    Jwt,
    /// Not a token: an API key (`X-API-Key`) the broker's introspection
    /// reported active (feature `http`, [`crate::http::ApiKeyIntrospection`]).
    ApiKey,
}

impl TokenFormat {
    /// `"cwt"`, `"jwt"` or `"api_key"`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenFormat::Cwt => "cwt",
            TokenFormat::Jwt => "jwt",
            TokenFormat::ApiKey => "api_key",
        }
    }
}

/// A token whose signature and claims were verified.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    /// The verified claims. For a JWT: `iss`, `sub`, `aud`, `exp`, `nbf`,
    /// `iat`, `scope` and `status` as in the token, `cti` = the UTF-8 bytes
    /// of `jti`, `cnf` always `None` (see [`VerifiedToken::x5t_s256`]).
    pub claims: Claims,
    /// The kid of the key that verified the signature.
    pub kid: String,
    /// CWT or JWT.
    pub format: TokenFormat,
    /// JWT only: the certificate thumbprint the token is bound to
    /// (`cnf.x5t#S256`, SHA-256 of the client certificate's DER).
    pub x5t_s256: Option<[u8; 32]>,
    /// JWT only: `client_id`, the OAuth client the token was issued to.
    pub client_id: Option<String>,
}

impl VerifiedToken {
    /// The device id (`sub`).
    pub fn device_id(&self) -> Option<&str> {
        self.claims.sub.as_deref()
    }

    /// The subject (`sub`): a device id, or a service client's id.
    pub fn subject(&self) -> Option<&str> {
        self.claims.sub.as_deref()
    }

    /// The confirmation key (`cnf`) of a CWT: the public key of the device certificate.
    pub fn confirmation_key(&self) -> Option<&certbound_proto::EcPublicKey> {
        self.claims.cnf.as_ref()
    }

    /// Whether the token is bound to a certificate (a `cnf` key or thumbprint).
    pub fn is_bound(&self) -> bool {
        self.claims.cnf.is_some() || self.x5t_s256.is_some()
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
