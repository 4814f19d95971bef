//! The one error type of this crate, [`VerifyError`], and its stable reason codes.

use certbound_proto::{ClaimError, ProtoError};

/// Why a token, a key set, a certificate or a telemetry message was refused.
///
/// Every message says what was wrong and what to do about it.
/// [`VerifyError::reason_code`] gives a short, stable code for metrics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The token (or envelope) is not a well-formed certbound object: bad CBOR,
    /// wrong COSE structure or headers, wrong `typ`, unsupported algorithm, ...
    #[error(
        "token is malformed: {0}; it is not a certbound access token or was damaged in transit — reject it"
    )]
    Malformed(ProtoError),
    /// The token names a `kid` that is not in the key set.
    #[error(
        "token is signed by kid {kid:?}, which is not in the verification key set; if the broker rotated its keys, reload the key set (/.well-known/jwks.json or /.well-known/cose-keys)"
    )]
    UnknownKey {
        /// The `kid` hint of the token (non-UTF-8 kids are shown as `h'<hex>'`).
        kid: String,
    },
    /// The token signature does not verify with the key its `kid` names.
    #[error(
        "token signature does not verify with the key for its kid; the token was altered or not issued by this broker — reject it"
    )]
    BadSignature,
    /// The signature is good but a claim check failed (expiry, audience, scope, ...).
    #[error("token claims rejected: {0}; {advice}", advice = claim_advice(.0))]
    Claims(ClaimError),
    /// The verifier has no expected issuer and no explicit opt-out
    /// (`VerifierConfig::any_issuer`): every token is refused.
    #[error(
        "this verifier has no expected issuer configured, so it refuses every token; set VerifierConfig::issuer to the broker's issuer id (or, for a key set that holds one issuer's keys only, opt out with any_issuer = true)"
    )]
    IssuerNotConfigured,
    /// A claim has another type than the one expected of it (a custom claim
    /// read with a typed accessor, or declared with
    /// `VerifierConfig::expect_claim`).
    #[error(
        "token claim {claim} is {found}, not {expected} as expected; the API's claim declaration (certbound api set-claims) and this service disagree — fix one of them, the token is refused"
    )]
    ClaimType {
        /// The claim: its JWT name or CWT label.
        claim: String,
        /// The type expected.
        expected: certbound_proto::custom_claims::ClaimType,
        /// What it is.
        found: String,
    },
    /// The token has no `cnf` and bearer tokens are not allowed.
    #[error(
        "token has no confirmation key (cnf), so it is a bearer token; certbound requires certificate-bound tokens — request the token with the device certificate, or set allow_bearer for this audience"
    )]
    MissingConfirmation,
    /// The presented certificate is not the one the token is bound to: its
    /// public key is not the CWT's `cnf` key, or its SHA-256 is not the
    /// JWT's `cnf.x5t#S256`.
    #[error(
        "the presented certificate is not the one the token is bound to (its public key or SHA-256 thumbprint differs from the token's confirmation, cnf); the token was issued for another certificate — present the certificate the token was issued to, or request a new token after re-enrolment"
    )]
    BindingMismatch,
    /// A certificate-bound token arrived on a connection without a client
    /// certificate, so its binding cannot be checked.
    #[error(
        "the token is bound to a client certificate (cnf), but the request came without one; connect with mutual TLS presenting the certificate the token was issued to"
    )]
    NoClientCertificate,
    /// The token's status list says it is revoked (status INVALID).
    #[error(
        "the token has been revoked (its status list entry is INVALID); the client must request a new token, which the broker issues only if the client or device is still allowed"
    )]
    Revoked,
    /// The token's status list says it is suspended.
    #[error(
        "the token is suspended (its status list entry is SUSPENDED); it is refused until the operator resumes the device or client"
    )]
    Suspended,
    /// The token's status list entry holds a value this verifier does not
    /// know (application-specific statuses are refused).
    #[error(
        "the token's status list entry is {value}, which this verifier does not understand (only 0 VALID, 1 INVALID, 2 SUSPENDED are); the token is refused"
    )]
    UnknownStatus {
        /// The status value.
        value: u8,
    },
    /// No usable status list is at hand for the token's `status` reference:
    /// it was never fetched, its last fetch failed, or the cached list is
    /// older than its ttl plus the allowed staleness. Fails closed.
    #[error(
        "the status of the token cannot be checked: {reason} (list {uri}); the token is refused until a fresh status list is available — check that the broker's status list URL is reachable from this service"
    )]
    StatusUnavailable {
        /// The status list URI.
        uri: String,
        /// Why no usable list is at hand.
        reason: String,
    },
    /// A Status List Token older (`iat`) than the list already accepted for
    /// the same URI: a replayed list, which could turn revoked entries
    /// valid again. The cached list stays in use.
    #[error(
        "the status list fetched from {uri} was issued at {offered_iat}, before the list already accepted (issued at {cached_iat}); an older list is a rollback (it could un-revoke tokens) and is refused — the cached list stays in use; check what sits between this service and the broker"
    )]
    StatusRollback {
        /// The status list URI.
        uri: String,
        /// `iat` of the list in the cache.
        cached_iat: u64,
        /// `iat` of the refused list.
        offered_iat: u64,
    },
    /// The token names a status list outside the configured allowed
    /// prefixes: it is never fetched (SSRF guard).
    #[error(
        "the token names status list {uri:?}, which this verifier will not fetch: {reason}; add the broker's status-list base URL (https://<broker>/status/) to the allowed prefixes if it is trusted"
    )]
    StatusUriNotAllowed {
        /// The URI in the token.
        uri: String,
        /// Why it is refused.
        reason: String,
    },
    /// The telemetry body is signed for another token (its `token_cti` differs).
    #[error(
        "the telemetry body names another token's cti than the token attached to it; the device must sign each message with the cti of the token it sends along"
    )]
    TelemetryTokenMismatch,
    /// The telemetry body is not signed by the token's `cnf` key (no proof of possession).
    #[error(
        "the telemetry body signature does not verify with the token's confirmation key (cnf); the message was not signed by the device the token was issued to — reject it"
    )]
    BadProofOfPossession,
    /// The telemetry sequence number was already accepted for this device, or
    /// is older than the anti-replay window.
    #[error(
        "telemetry message seq {seq} of device {device:?} is a replay: it was already accepted, or it is older than the anti-replay window — drop it; a device must never reuse a sequence number, even after a restart or a token renewal"
    )]
    Replay {
        /// The device (token `sub`).
        device: String,
        /// The refused sequence number.
        seq: u64,
    },
    /// The message arrived on another device's topic than the token's `sub`.
    #[error(
        "the message arrived on the topic of device {topic:?} but its token was issued to {token:?}; a device may only publish on its own topic — reject it"
    )]
    TopicMismatch {
        /// The device named by the topic.
        topic: String,
        /// The token's `sub`.
        token: String,
    },
    /// The certificate presented for binding cannot be parsed or has no P-256 key.
    #[error(
        "presented certificate cannot be used for token binding: {0}; present the DER X.509 certificate holding the device's P-256 key"
    )]
    BadCertificate(String),
    /// A key set (JWKS, COSE_KeySet or an inserted key) is refused.
    #[error(
        "invalid key set: {0}; publish only public keys (EC P-256 for ES256, RSA of 2048 bits or more with alg RS256 or PS256, OKP Ed25519 for EdDSA), each with a unique kid"
    )]
    InvalidKeySet(String),
    /// Token text (hex/base64) pasted on a command line could not be decoded.
    #[error(
        "token text could not be decoded: {0}; give the token as hex, base64url or standard base64"
    )]
    InvalidTokenText(String),
    /// (feature `http`) A TLS configuration could not be built from the given
    /// certificates, key or CA.
    #[error(
        "TLS configuration is invalid: {0}; give the certificate chain (leaf first) and its private key (PKCS#8 or SEC1 EC) as PEM, and the CA certificates as PEM"
    )]
    TlsConfig(String),
    /// (feature `http`) The server cannot listen on its address.
    #[error(
        "cannot listen for HTTPS on {addr}: {reason}; choose a free address and port (port 0 picks one), or stop the process that holds it"
    )]
    Listen {
        /// The address that was asked for.
        addr: String,
        /// What went wrong.
        reason: String,
    },
    /// (feature `http`) A URL that the HTTPS client refuses to fetch.
    #[error("URL {url:?} cannot be fetched: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why it was refused, with what to give instead.
        reason: String,
    },
    /// (feature `http`) The TLS handshake with the server failed (or the
    /// server refused this client's certificate right after it).
    #[error(
        "TLS handshake with {url} failed: {reason}; check that the server's certificate chains to the configured CA and names the URL's host, and, when the server requires mutual TLS, that this client presents a certificate issued by a CA the server trusts"
    )]
    TlsHandshake {
        /// The URL of the request.
        url: String,
        /// The TLS error.
        reason: String,
    },
    /// (feature `http`) Connecting or the HTTP exchange failed.
    #[error(
        "HTTPS request to {url} failed: {reason}; check that the server is running and reachable at that address, then retry"
    )]
    HttpRequest {
        /// The URL of the request.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// (feature `http`) The request did not complete within the client's timeout.
    #[error(
        "HTTPS request to {url} did not complete within {timeout_ms} ms; the server is slow, overloaded or not answering — retry later, or raise the fetcher's timeout"
    )]
    HttpTimeout {
        /// The URL of the request.
        url: String,
        /// The configured timeout, milliseconds.
        timeout_ms: u64,
    },
    /// (feature `http`) The server answered with a status other than 2xx.
    #[error(
        "{url} answered HTTP status {status}{detail}; {advice}",
        detail = status_detail(.body),
        advice = status_advice(*.status)
    )]
    HttpStatus {
        /// The URL of the request.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// The start of the response body (printable text, at most 256 characters).
        body: String,
    },
    /// (feature `http`) An `X-API-Key` the broker's introspection does not
    /// report active for this API (unknown, revoked, expired, or granted
    /// no API this backend's client is granted).
    #[error(
        "the API key is not active for this API: it is unknown, revoked or expired, or not granted this API; ask its owner for a valid key (`certbound apikey list`)"
    )]
    ApiKeyInactive,
    /// (feature `http`) The response body exceeds the client's size limit.
    #[error(
        "the response from {url} is larger than the limit of {limit} bytes, so it was refused; check that the URL names the intended document, or raise the fetcher's max_body if it is legitimately this large"
    )]
    BodyTooLarge {
        /// The URL of the request.
        url: String,
        /// The limit, bytes.
        limit: usize,
    },
}

fn status_detail(body: &str) -> String {
    if body.is_empty() {
        String::new()
    } else {
        format!(" ({body})")
    }
}

fn status_advice(status: u16) -> &'static str {
    match status {
        300..=399 => "redirects are not followed: use the final https:// URL",
        401 | 403 => {
            "check the client credentials or certificate and the permissions granted to it"
        }
        404 => "check the URL's path",
        400..=499 => "check the URL and the request parameters",
        _ => "the server failed; retry later and check the server's logs",
    }
}

impl From<ProtoError> for VerifyError {
    /// Signature failures become [`VerifyError::BadSignature`], claim failures
    /// [`VerifyError::Claims`], everything else [`VerifyError::Malformed`].
    fn from(e: ProtoError) -> Self {
        match e {
            ProtoError::BadSignature => VerifyError::BadSignature,
            ProtoError::Claim(c) => VerifyError::Claims(c),
            other => VerifyError::Malformed(other),
        }
    }
}

impl From<ClaimError> for VerifyError {
    fn from(e: ClaimError) -> Self {
        VerifyError::Claims(e)
    }
}

impl VerifyError {
    /// A short, stable code naming the reason, for counting rejects.
    ///
    /// | code | meaning |
    /// |---|---|
    /// | `malformed` | not a well-formed token, envelope or token text |
    /// | `wrong_type` | a signed object of another kind (`typ` is not `at+cwt` / `at+jwt`) |
    /// | `unsupported_alg` | an algorithm other than ES256/ESP256 (JWT: other than the key's: ES256, RS256, PS256 or EdDSA) |
    /// | `too_large` | over the configured size bound |
    /// | `unknown_key` | `kid` not in the key set |
    /// | `bad_signature` | token signature does not verify |
    /// | `expired` / `not_yet_valid` | outside the validity window |
    /// | `issuer` / `audience` / `scope` | wrong issuer, audience or missing scope |
    /// | `missing_claim` | a required claim (`exp`) is absent |
    /// | `claims` | another claim failure |
    /// | `no_cnf` | bearer token where a bound token is required |
    /// | `binding` | certificate key or thumbprint differs from `cnf` |
    /// | `no_certificate` | a bound token without a client certificate |
    /// | `revoked` / `suspended` | the token's status list entry says so |
    /// | `status_unknown` | an application-specific status value |
    /// | `status_unavailable` | no fresh status list at hand (fail closed) |
    /// | `claim_type` | a claim of another type than expected |
    /// | `status_uri` | the token names a status list outside the allow-list |
    /// | `telemetry_cti` | telemetry body signed for another token |
    /// | `pop` | telemetry body not signed by the `cnf` key |
    /// | `replay` | telemetry sequence number seen before or too old |
    /// | `topic` | telemetry on another device's topic than the token's `sub` |
    /// | `bad_certificate` | unusable certificate for binding |
    /// | `invalid_key_set` | refused key set |
    /// | `tls_config` | unusable TLS certificates, key or CA (feature `http`) |
    /// | `listen` | the HTTPS server cannot bind its address |
    /// | `invalid_url` | a URL the HTTPS client refuses (e.g. plain `http://`) |
    /// | `tls_handshake` | the TLS handshake with a server failed |
    /// | `http_request` | connecting or the HTTP exchange failed |
    /// | `http_timeout` | an HTTPS request took longer than its timeout |
    /// | `http_status` | a server answered a non-2xx status |
    /// | `body_too_large` | a response body over the client's limit |
    pub fn reason_code(&self) -> &'static str {
        match self {
            VerifyError::Malformed(ProtoError::WrongType { .. }) => "wrong_type",
            VerifyError::Malformed(
                ProtoError::UnsupportedAlgorithm(_)
                | ProtoError::UnsupportedJwsAlgorithm(_)
                | ProtoError::AlgorithmMismatch { .. },
            ) => "unsupported_alg",
            VerifyError::Malformed(ProtoError::TooLarge { .. }) => "too_large",
            VerifyError::Malformed(ProtoError::BadSignature) | VerifyError::BadSignature => {
                "bad_signature"
            }
            VerifyError::Malformed(_) | VerifyError::InvalidTokenText(_) => "malformed",
            VerifyError::UnknownKey { .. } => "unknown_key",
            VerifyError::Claims(c) => claim_code(c),
            VerifyError::MissingConfirmation => "no_cnf",
            VerifyError::ClaimType { .. } => "claim_type",
            VerifyError::IssuerNotConfigured => "issuer_not_configured",
            VerifyError::BindingMismatch => "binding",
            VerifyError::NoClientCertificate => "no_certificate",
            VerifyError::Revoked => "revoked",
            VerifyError::Suspended => "suspended",
            VerifyError::UnknownStatus { .. } => "status_unknown",
            VerifyError::StatusUnavailable { .. } => "status_unavailable",
            VerifyError::StatusUriNotAllowed { .. } => "status_uri",
            VerifyError::StatusRollback { .. } => "status_rollback",
            VerifyError::TelemetryTokenMismatch => "telemetry_cti",
            VerifyError::BadProofOfPossession => "pop",
            VerifyError::Replay { .. } => "replay",
            VerifyError::TopicMismatch { .. } => "topic",
            VerifyError::BadCertificate(_) => "bad_certificate",
            VerifyError::InvalidKeySet(_) => "invalid_key_set",
            VerifyError::TlsConfig(_) => "tls_config",
            VerifyError::Listen { .. } => "listen",
            VerifyError::InvalidUrl { .. } => "invalid_url",
            VerifyError::TlsHandshake { .. } => "tls_handshake",
            VerifyError::HttpRequest { .. } => "http_request",
            VerifyError::HttpTimeout { .. } => "http_timeout",
            VerifyError::HttpStatus { .. } => "http_status",
            VerifyError::BodyTooLarge { .. } => "body_too_large",
            VerifyError::ApiKeyInactive => "api_key_inactive",
        }
    }

    /// The HTTP status of a [`VerifyError::HttpStatus`] (a server's non-2xx
    /// answer), `None` for every other error.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            VerifyError::HttpStatus { status, .. } => Some(*status),
            _ => None,
        }
    }
}

fn claim_code(c: &ClaimError) -> &'static str {
    match c {
        ClaimError::Expired { .. } => "expired",
        ClaimError::NotYetValid { .. } => "not_yet_valid",
        ClaimError::IssuerMismatch { .. } | ClaimError::Missing("iss") => "issuer",
        ClaimError::AudienceMismatch { .. } => "audience",
        ClaimError::ScopeMissing { .. } => "scope",
        ClaimError::Missing(_) => "missing_claim",
        _ => "claims",
    }
}

fn claim_advice(c: &ClaimError) -> &'static str {
    match c {
        ClaimError::Expired { .. } => "the client must request a new token",
        ClaimError::NotYetValid { .. } => {
            "check the clocks of the broker and this service, or raise the leeway"
        }
        ClaimError::AudienceMismatch { .. } => {
            "the client must request a token for this API's audience"
        }
        ClaimError::ScopeMissing { .. } => {
            "grant the scope to the client's group in the broker policy, then request a new token"
        }
        ClaimError::IssuerMismatch { .. } | ClaimError::Missing("iss") => {
            "accept only tokens of the configured broker, or fix the configured issuer"
        }
        _ => "the client must request a new token",
    }
}
