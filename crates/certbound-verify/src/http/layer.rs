//! An axum / tower middleware that admits only requests carrying a valid,
//! unrevoked, certificate-bound access token.
//!
//! For every request, [`VerifyLayer`] (through its [`Authenticator`]):
//!
//! 1. takes the token from `Authorization: Bearer <token>` — an RFC 9068
//!    JWT or a base64url CWT (tokens in the query or body are not read);
//! 2. verifies it ([`TokenVerifier::verify_text`](crate::TokenVerifier::verify_text)
//!    rules: ES256 signature with a key of a static [`KeySet`] or of a JWKS
//!    URL ([`RemoteKeys`], refetched on an unknown `kid` at most once per
//!    interval), `typ`, `exp`/`nbf`/`iat`, audience, issuer, `cnf` unless
//!    bearer tokens are allowed);
//! 3. when the token is bound (`cnf`), checks the binding to the client
//!    certificate of the TLS connection ([`PeerCertificates`], inserted by
//!    [`serve_tls`](super::serve_tls)); no client certificate → refused;
//! 4. when the token has a `status` and status checking is on, checks its
//!    entry in the status list, fetched over HTTPS only from the allowed
//!    prefixes, cached for its ttl (one fetch per list at a time; requests
//!    never trigger a fetch each), failing closed when no fresh list can be
//!    had ([`StatusCache`]);
//! 5. requires the layer's scopes.
//!
//! On success the [`VerifiedToken`] is inserted into the request extensions
//! (handlers take it as an extractor, or with `Extension<VerifiedToken>`).
//! Failures are answered as RFC 6750 §3 says: `401` with
//! `WWW-Authenticate: Bearer error="invalid_token", error_description="..."`
//! (without `error` when the request had no token at all), `403`
//! `insufficient_scope` for a missing scope, `400` `invalid_request` for a
//! malformed `Authorization` header, and `503` `temporarily_unavailable`
//! (with `Retry-After`) when keys or the status list cannot be fetched; the
//! body is JSON `{"error": ..., "error_description": ...}`.
//!
//! ```no_run
//! # async fn run(ca_pem: &str) -> Result<(), certbound_verify::VerifyError> {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use axum::{Router, routing::get};
//! use certbound_verify::VerifierConfig;
//! use certbound_verify::http::{
//!     HttpsFetcher, RemoteKeys, RemoteKeysConfig, StatusCheck, VerifyConfig, VerifyLayer,
//!     client_tls_config,
//! };
//! use certbound_verify::status::StatusCacheConfig;
//!
//! let fetcher = HttpsFetcher::new(client_tls_config(ca_pem, None)?, Duration::from_secs(5), 1 << 20);
//! let keys = RemoteKeys::new(
//!     "https://auth.example.com/.well-known/jwks.json",
//!     fetcher.clone(),
//!     RemoteKeysConfig::default(),
//! )?;
//! let mut verifier = VerifierConfig::new("https://telemetry.example.com");
//! verifier.issuer = Some("https://auth.example.com".into());
//! let status = StatusCheck::Fetch {
//!     cache: StatusCacheConfig::new("https://auth.example.com/status/"),
//!     fetcher,
//! };
//! let auth = VerifyLayer::new(VerifyConfig::new(verifier, Arc::new(keys), status))?;
//!
//! async fn read() -> &'static str { "ok" }
//! let app: Router = Router::new()
//!     .route("/telemetry", get(read))
//!     .layer(auth.with_scopes(["telemetry:read"]));
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use axum::extract::{FromRequestParts, OptionalFromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use certbound_proto::ClaimError;
use certbound_proto::status_list::{StatusRef, UnverifiedStatusList};
use tower::{Layer, Service};

mod api_keys;
mod auth_error;
mod telemetry;
pub use api_keys::{API_KEY_HEADER, ApiKeyIntrospection};
pub use auth_error::AuthError;
use auth_error::bearer_token;

use super::fetch::HttpsFetcher;
use super::keys::RemoteKeys;
use super::serve::PeerCertificates;
use crate::VerifyError;
use crate::keyset::KeySet;
use crate::status::{StatusCache, StatusCacheConfig};
use crate::verifier::{VerifiedToken, VerifierConfig, verify_text_with};

/// Seconds a client is told to wait (`Retry-After`) after a `503`.
const RETRY_AFTER_SECS: u64 = 5;

/// Longest `error_description` sent to a client.
const MAX_DESCRIPTION: usize = 400;

/// Where the verification keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// A fixed key set (loaded at start from a file or the broker's JWKS).
    Static(Arc<KeySet>),
    /// A JWKS URL, cached and refreshed.
    Remote(Arc<RemoteKeys>),
}

impl From<KeySet> for KeySource {
    fn from(keys: KeySet) -> Self {
        KeySource::Static(Arc::new(keys))
    }
}

impl From<Arc<RemoteKeys>> for KeySource {
    fn from(keys: Arc<RemoteKeys>) -> Self {
        KeySource::Remote(keys)
    }
}

impl KeySource {
    /// The keys to try first.
    async fn current(&self) -> Result<Arc<KeySet>, VerifyError> {
        match self {
            KeySource::Static(keys) => Ok(keys.clone()),
            KeySource::Remote(remote) => remote.current().await,
        }
    }

    /// Keys that hold `kid` if the source does (a remote source may refetch).
    async fn for_kid(&self, kid: &str) -> Result<Arc<KeySet>, VerifyError> {
        match self {
            KeySource::Static(keys) => Ok(keys.clone()),
            KeySource::Remote(remote) => remote.for_kid(kid).await,
        }
    }
}

/// Whether and how tokens' `status` (revocation) is checked.
#[derive(Debug, Clone)]
pub enum StatusCheck {
    /// Tokens that carry a `status` claim are checked against their status
    /// list, fetched with `fetcher` from the prefixes `cache` allows (a
    /// token naming another URL is refused). Tokens without `status` are
    /// not revocable and are accepted.
    Fetch {
        /// The cache's bounds and the allowed list URL prefixes.
        cache: StatusCacheConfig,
        /// The HTTPS client for the lists (trusting the broker's CA).
        fetcher: HttpsFetcher,
    },
    /// `status` claims are ignored: a revoked token is accepted until it
    /// expires. Only for APIs whose tokens live a few minutes.
    Ignore,
}

/// The configuration of an [`Authenticator`] / [`VerifyLayer`].
#[derive(Debug, Clone)]
pub struct VerifyConfig {
    /// Audience, issuer, leeway, limits, bearer tokens allowed or not.
    pub verifier: VerifierConfig,
    /// The broker's signing keys.
    pub keys: KeySource,
    /// Revocation checks.
    pub status: StatusCheck,
    /// Scopes every request must carry (more per route with
    /// [`VerifyLayer::with_scopes`]).
    pub required_scopes: Vec<String>,
    /// API keys (`X-API-Key`) checked by introspection; `None` (the
    /// default): the header is ignored.
    pub api_keys: Option<ApiKeyIntrospection>,
}

impl VerifyConfig {
    /// A configuration requiring no scope.
    pub fn new(verifier: VerifierConfig, keys: impl Into<KeySource>, status: StatusCheck) -> Self {
        Self {
            verifier,
            keys: keys.into(),
            status,
            required_scopes: Vec::new(),
            api_keys: None,
        }
    }

    /// Also admits requests with an API key (`X-API-Key`, no
    /// `Authorization`), checked by the broker's introspection ([`ApiKeyIntrospection`]).
    #[must_use]
    pub fn with_api_keys(mut self, introspection: ApiKeyIntrospection) -> Self {
        self.api_keys = Some(introspection);
        self
    }
}

/// Counters of an [`Authenticator`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuthStats {
    /// Requests admitted.
    pub accepted: u64,
    /// Requests refused (any reason).
    pub rejected: u64,
    /// Status list fetches started.
    pub status_fetches: u64,
    /// Status list fetches that failed (network, HTTP status, or the list
    /// did not verify).
    pub status_fetch_failures: u64,
}

#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    rejected: AtomicU64,
    status_fetches: AtomicU64,
    status_fetch_failures: AtomicU64,
}

/// Status lists: the cache, the fetcher and the fetches in flight.
#[derive(Debug)]
struct StatusChecker {
    cache: Mutex<StatusCache>,
    fetcher: HttpsFetcher,
    /// One lock per list URI being fetched (entries removed when done).
    in_flight: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// Verifies the token of a request: the shared state behind
/// [`VerifyLayer`], usable on its own (e.g. in a handler of another
/// framework). Share it in an `Arc`.
#[derive(Debug)]
pub struct Authenticator {
    verifier: VerifierConfig,
    keys: KeySource,
    status: Option<StatusChecker>,
    required_scopes: Vec<String>,
    api_keys: Option<api_keys::ApiKeyChecker>,
    counters: Counters,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Authenticator {
    /// Builds the authenticator.
    ///
    /// # Errors
    /// [`VerifyError::InvalidUrl`] when a status-list prefix is not an
    /// `https://` URL.
    pub fn new(config: VerifyConfig) -> Result<Self, VerifyError> {
        let status = match config.status {
            StatusCheck::Fetch { cache, fetcher } => Some(StatusChecker {
                cache: Mutex::new(StatusCache::new(cache)?),
                fetcher,
                in_flight: Mutex::new(HashMap::new()),
            }),
            StatusCheck::Ignore => None,
        };
        Ok(Self {
            verifier: config.verifier,
            keys: config.keys,
            status,
            required_scopes: config.required_scopes,
            api_keys: config.api_keys.map(api_keys::ApiKeyChecker::new),
            counters: Counters::default(),
        })
    }

    /// The token expectations (audience, issuer, ...).
    pub fn verifier_config(&self) -> &VerifierConfig {
        &self.verifier
    }

    /// The key source.
    pub fn keys(&self) -> &KeySource {
        &self.keys
    }

    /// The counters so far.
    pub fn stats(&self) -> AuthStats {
        let c = &self.counters;
        AuthStats {
            accepted: c.accepted.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            status_fetches: c.status_fetches.load(Ordering::Relaxed),
            status_fetch_failures: c.status_fetch_failures.load(Ordering::Relaxed),
        }
    }

    /// Authenticates a request from its headers and the TLS client
    /// certificate chain, requiring the configured scopes and
    /// `extra_scopes`. Counts the outcome.
    ///
    /// # Errors
    /// An [`AuthError`] ready to be sent as the answer.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        peer: Option<&PeerCertificates>,
        extra_scopes: &[&str],
    ) -> Result<VerifiedToken, AuthError> {
        let api_key = match &self.api_keys {
            Some(checker) => match api_keys::api_key_header(headers) {
                Ok(Some(key)) => Some((checker, key)),
                Ok(None) => None,
                Err(e) => {
                    self.counters.rejected.fetch_add(1, Ordering::Relaxed);
                    return Err(e.with_realm(&self.verifier.audience));
                }
            },
            None => None,
        };
        if let Some((checker, key)) = api_key {
            let mut scopes: Vec<&str> = self.required_scopes.iter().map(String::as_str).collect();
            scopes.extend_from_slice(extra_scopes);
            let result = checker
                .check(key, &self.verifier.audience)
                .await
                .and_then(|token| api_keys::require_scopes(token, &scopes))
                .map_err(|e| AuthError::from_verify(e, &self.verifier.audience, &scopes));
            let counter = match &result {
                Ok(_) => &self.counters.accepted,
                Err(_) => &self.counters.rejected,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            return result;
        }
        let result = match bearer_token(headers) {
            Ok(token) => {
                let mut scopes: Vec<&str> =
                    self.required_scopes.iter().map(String::as_str).collect();
                scopes.extend_from_slice(extra_scopes);
                self.verify_token(token, peer.and_then(PeerCertificates::leaf), &scopes)
                    .await
                    .map_err(|e| AuthError::from_verify(e, &self.verifier.audience, &scopes))
            }
            Err(e) => Err(e.with_realm(&self.verifier.audience)),
        };
        let counter = match &result {
            Ok(_) => &self.counters.accepted,
            Err(_) => &self.counters.rejected,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        result
    }

    /// Verifies `token` (JWT or base64url CWT text) presented on a
    /// connection whose client certificate is `peer_leaf` (DER), requiring
    /// `scopes` (the configured scopes are not added here): signature and
    /// claims, certificate binding, revocation status, then scopes.
    ///
    /// # Errors
    /// The first failed check.
    pub async fn verify_token(
        &self,
        token: &str,
        peer_leaf: Option<&[u8]>,
        scopes: &[&str],
    ) -> Result<VerifiedToken, VerifyError> {
        let now = unix_now();
        let keys = self.keys.current().await?;
        let verified = match verify_text_with(&keys, &self.verifier, token, &[], now) {
            Err(VerifyError::UnknownKey { kid }) if matches!(self.keys, KeySource::Remote(_)) => {
                let keys = self.keys.for_kid(&kid).await?;
                verify_text_with(&keys, &self.verifier, token, &[], now)?
            }
            other => other?,
        };
        if verified.is_bound() {
            let leaf = peer_leaf.ok_or(VerifyError::NoClientCertificate)?;
            verified.check_certificate_binding(leaf)?;
        }
        if let (Some(status), Some(checker)) = (&verified.claims.status, &self.status) {
            self.check_status(checker, status, now).await?;
        }
        for needed in scopes {
            if !verified.has_scope(needed) {
                return Err(VerifyError::Claims(ClaimError::ScopeMissing {
                    missing: (*needed).to_string(),
                    granted: verified.claims.scope.clone().unwrap_or_default(),
                }));
            }
        }
        Ok(verified)
    }

    /// Checks one status-list reference (a token's `status` claim) as
    /// [`Authenticator::verify_token`] does: from the cache, fetching the list
    /// when due (one fetch per list at a time). `Ok` when status checks are
    /// off ([`StatusCheck::Ignore`]). For verifiers that check tokens
    /// themselves, e.g. a telemetry backend using
    /// [`TelemetryVerifier`](crate::TelemetryVerifier).
    ///
    /// # Errors
    /// [`VerifyError::Revoked`], [`VerifyError::Suspended`],
    /// [`VerifyError::StatusUnavailable`], [`VerifyError::StatusUriNotAllowed`]
    /// and the other errors of [`crate::status::StatusCache::check`].
    pub async fn check_status_ref(&self, status: &StatusRef) -> Result<(), VerifyError> {
        match &self.status {
            Some(checker) => self.check_status(checker, status, unix_now()).await,
            None => Ok(()),
        }
    }

    /// The status of one token, fetching its list when due. Only one fetch
    /// per list runs at a time: others wait for it, or, while a cached list
    /// is still within its staleness bound, use that one meanwhile.
    async fn check_status(
        &self,
        checker: &StatusChecker,
        status: &StatusRef,
        now: u64,
    ) -> Result<(), VerifyError> {
        let (due, answer) = {
            let cache = lock(&checker.cache);
            cache.check_uri(&status.uri)?;
            (
                cache.needs_refresh(&status.uri, now),
                cache.check(status, now),
            )
        };
        if !due {
            return answer;
        }
        let flight = {
            let mut map = lock(&checker.in_flight);
            map.entry(status.uri.clone()).or_default().clone()
        };
        let result = match flight.clone().try_lock_owned() {
            Ok(guard) => {
                self.refresh_list(checker, &status.uri).await;
                drop(guard);
                lock(&checker.cache).check(status, unix_now())
            }
            Err(_) if !matches!(answer, Err(VerifyError::StatusUnavailable { .. })) => answer,
            Err(_) => {
                drop(flight.lock().await);
                lock(&checker.cache).check(status, unix_now())
            }
        };
        {
            let mut map = lock(&checker.in_flight);
            // The map's reference and ours: nobody else waits on it.
            if Arc::strong_count(&flight) <= 2 {
                map.remove(&status.uri);
            }
            drop(flight);
        }
        result
    }

    /// Fetches, verifies and caches the list at `uri` (unless another
    /// request just did), or records the failure.
    async fn refresh_list(&self, checker: &StatusChecker, uri: &str) {
        if !lock(&checker.cache).needs_refresh(uri, unix_now()) {
            return;
        }
        self.counters.status_fetches.fetch_add(1, Ordering::Relaxed);
        let outcome = self.fetch_list(checker, uri).await;
        let now = unix_now();
        let mut cache = lock(&checker.cache);
        let result = outcome.and_then(|(bytes, keys)| cache.insert(uri, &bytes, &keys, now));
        if let Err(e) = result {
            self.counters
                .status_fetch_failures
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%uri, error = %e, "status list refresh failed");
            cache.record_failure(uri, now, &e.to_string());
        } else {
            tracing::debug!(%uri, "status list refreshed");
        }
    }

    /// The list's bytes and the keys to verify it with.
    async fn fetch_list(
        &self,
        checker: &StatusChecker,
        uri: &str,
    ) -> Result<(Vec<u8>, Arc<KeySet>), VerifyError> {
        let fetched = checker
            .fetcher
            .get(uri, "application/statuslist+cwt")
            .await?;
        let limits = lock(&checker.cache).config().limits;
        let parsed = UnverifiedStatusList::parse(&fetched.body, limits)?;
        let keys = match std::str::from_utf8(parsed.kid()) {
            Ok(kid) => self.keys.for_kid(kid).await?,
            Err(_) => self.keys.current().await?,
        };
        Ok((fetched.body, keys))
    }
}

/// The tower layer: wraps a service (an axum `Router`, a route, a handler)
/// so that it only sees authenticated requests. Cheap to clone; clones
/// share the [`Authenticator`] (its key and status caches).
#[derive(Debug, Clone)]
pub struct VerifyLayer {
    auth: Arc<Authenticator>,
    scopes: Arc<[String]>,
}

impl VerifyLayer {
    /// A layer with a new [`Authenticator`].
    ///
    /// # Errors
    /// As for [`Authenticator::new`].
    pub fn new(config: VerifyConfig) -> Result<Self, VerifyError> {
        Ok(Self::from_authenticator(Arc::new(Authenticator::new(
            config,
        )?)))
    }

    /// A layer over an existing authenticator.
    pub fn from_authenticator(auth: Arc<Authenticator>) -> Self {
        Self {
            auth,
            scopes: Arc::from(Vec::new()),
        }
    }

    /// The same authenticator (shared caches) also requiring `scopes`
    /// (replacing this layer's extra scopes), for one route or method.
    #[must_use]
    pub fn with_scopes<I, S>(&self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            auth: self.auth.clone(),
            scopes: scopes.into_iter().map(Into::into).collect(),
        }
    }

    /// The shared authenticator (for its [`Authenticator::stats`]).
    pub fn authenticator(&self) -> &Arc<Authenticator> {
        &self.auth
    }
}

/// [`VerifyLayer::new`]: `Router::new().route(..).layer(certbound_verify::http::layer(config)?)`.
///
/// # Errors
/// As for [`Authenticator::new`].
pub fn layer(config: VerifyConfig) -> Result<VerifyLayer, VerifyError> {
    VerifyLayer::new(config)
}

impl<S> Layer<S> for VerifyLayer {
    type Service = VerifyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        VerifyService {
            inner,
            auth: self.auth.clone(),
            scopes: self.scopes.clone(),
        }
    }
}

/// The service [`VerifyLayer`] wraps around `S`.
#[derive(Debug, Clone)]
pub struct VerifyService<S> {
    inner: S,
    auth: Arc<Authenticator>,
    scopes: Arc<[String]>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<S> Service<Request> for VerifyService<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        // The ready service goes into the future; a fresh clone stays.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let auth = self.auth.clone();
        let scopes = self.scopes.clone();
        Box::pin(async move {
            let peer = request.extensions().get::<PeerCertificates>().cloned();
            let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
            match auth
                .authenticate(request.headers(), peer.as_ref(), &scopes)
                .await
            {
                Ok(token) => {
                    request.extensions_mut().insert(token);
                    inner.call(request).await
                }
                Err(refused) => {
                    tracing::debug!(
                        reason = refused.reason_code(),
                        status = refused.status.as_u16(),
                        "request refused: {}",
                        refused.description
                    );
                    Ok(refused.into_response())
                }
            }
        })
    }
}

/// A handler's access to the token the layer verified. Answers `500` when
/// the route is not behind a [`VerifyLayer`] (a wiring mistake);
/// `Option<VerifiedToken>` never rejects.
impl<S: Send + Sync> FromRequestParts<S> for VerifiedToken {
    type Rejection = (StatusCode, &'static str);

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<VerifiedToken>().cloned().ok_or((
            StatusCode::INTERNAL_SERVER_ERROR,
            "this route is not protected by certbound_verify::http::VerifyLayer\n",
        ))
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for VerifiedToken {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<VerifiedToken>().cloned())
    }
}
