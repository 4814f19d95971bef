//! [`RemoteKeys`]: the broker's signing keys fetched from its JWKS URL
//! (`/.well-known/jwks.json`), cached as `Cache-Control: max-age` says
//! (within bounds), and refetched on an unknown `kid` at most once per
//! interval.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::fetch::{HttpsFetcher, Target};
use crate::VerifyError;
use crate::keyset::KeySet;

/// How [`RemoteKeys`] caches and refetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteKeysConfig {
    /// At most one fetch per this interval, whatever happens: an unknown
    /// `kid` (a key rotation, or an attacker spraying random kids), an
    /// expired cache, or failing fetches. Default 10 s.
    pub min_refetch_interval: Duration,
    /// Cache lifetime when the answer has no `Cache-Control: max-age`.
    /// Default 60 s.
    pub default_max_age: Duration,
    /// Upper bound of the cache lifetime, whatever `max-age` says.
    /// Default 1 hour.
    pub max_max_age: Duration,
    /// How long expired keys are still used while refreshing fails.
    /// After that, tokens are refused until a fetch succeeds. Default 1 hour.
    pub max_stale: Duration,
}

impl Default for RemoteKeysConfig {
    fn default() -> Self {
        Self {
            min_refetch_interval: Duration::from_secs(10),
            default_max_age: Duration::from_secs(60),
            max_max_age: Duration::from_secs(3600),
            max_stale: Duration::from_secs(3600),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    keys: Option<Arc<KeySet>>,
    /// When the cached keys should be refreshed.
    expires: Option<Instant>,
    /// When the last fetch started, then when it ended (successful or not).
    last_attempt: Option<Instant>,
    /// The error of the last fetch, when it failed.
    last_error: Option<VerifyError>,
}

/// A key set kept in sync with a JWKS URL.
///
/// Every lookup is answered from memory unless a fetch is due; fetches are
/// single-flight (concurrent callers wait for the one in progress) and at
/// most one per [`RemoteKeysConfig::min_refetch_interval`]. Share it in an
/// `Arc`.
#[derive(Debug)]
pub struct RemoteKeys {
    url: String,
    fetcher: HttpsFetcher,
    config: RemoteKeysConfig,
    state: RwLock<State>,
    fetch_lock: tokio::sync::Mutex<()>,
    fetches: AtomicU64,
}

/// What a lookup should do.
enum Plan {
    Use(Arc<KeySet>),
    Fetch,
    Fail(VerifyError),
}

impl RemoteKeys {
    /// Keys from `url` (an `https://` JWKS URL), fetched with `fetcher` on
    /// first use.
    ///
    /// # Errors
    /// [`VerifyError::InvalidUrl`] when `url` is not an `https://` URL (or
    /// `http://` with a fetcher that allows plain HTTP).
    pub fn new(
        url: impl Into<String>,
        fetcher: HttpsFetcher,
        config: RemoteKeysConfig,
    ) -> Result<Self, VerifyError> {
        let url = url.into();
        Target::parse(&url, fetcher.allows_plain_http())?;
        Ok(Self {
            url,
            fetcher,
            config,
            state: RwLock::new(State::default()),
            fetch_lock: tokio::sync::Mutex::new(()),
            fetches: AtomicU64::new(0),
        })
    }

    /// The JWKS URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// How many fetches were started so far.
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// The cached key set, if any (no fetch).
    pub fn cached(&self) -> Option<Arc<KeySet>> {
        self.read().keys.clone()
    }

    /// The current key set: from the cache while it is fresh, else fetched
    /// (rate-limited; expired keys are used within
    /// [`RemoteKeysConfig::max_stale`] while fetching fails).
    ///
    /// # Errors
    /// The fetch or key-set error when no usable keys are at hand.
    pub async fn current(&self) -> Result<Arc<KeySet>, VerifyError> {
        self.lookup(None).await
    }

    /// A key set that holds `kid` if the JWKS does: as [`RemoteKeys::current`],
    /// and when `kid` is not in the cached set, refetched — unless a fetch
    /// started less than [`RemoteKeysConfig::min_refetch_interval`] ago, in
    /// which case the cached set is returned as it is (and the token's
    /// verification fails with [`VerifyError::UnknownKey`]).
    ///
    /// # Errors
    /// As for [`RemoteKeys::current`].
    pub async fn for_kid(&self, kid: &str) -> Result<Arc<KeySet>, VerifyError> {
        self.lookup(Some(kid)).await
    }

    async fn lookup(&self, kid: Option<&str>) -> Result<Arc<KeySet>, VerifyError> {
        let entered = Instant::now();
        match self.plan(kid, entered) {
            Plan::Use(keys) => return Ok(keys),
            Plan::Fail(_) => {
                // No usable keys and no fetch due: one may be in flight
                // (started just before this call); wait for it.
                drop(self.fetch_lock.lock().await);
                return self.usable(Instant::now());
            }
            Plan::Fetch => {}
        }
        let _guard = self.fetch_lock.lock().await;
        // Another caller may have fetched while this one waited.
        let fetched_meanwhile = self.read().last_attempt.is_some_and(|t| t >= entered);
        if !fetched_meanwhile {
            match self.plan(kid, Instant::now()) {
                Plan::Use(keys) => return Ok(keys),
                Plan::Fail(e) => return Err(e),
                Plan::Fetch => self.fetch().await,
            }
        }
        self.usable(Instant::now())
    }

    /// Decides from the cache alone.
    fn plan(&self, kid: Option<&str>, now: Instant) -> Plan {
        let state = self.read();
        let fresh = state.expires.is_some_and(|e| now < e);
        let has_kid = match (&state.keys, kid) {
            (Some(keys), Some(kid)) => keys.get(kid).is_some(),
            (Some(_), None) => true,
            (None, _) => false,
        };
        if fresh
            && has_kid
            && let Some(keys) = &state.keys
        {
            return Plan::Use(keys.clone());
        }
        let may_fetch = state
            .last_attempt
            .is_none_or(|t| now.saturating_duration_since(t) >= self.config.min_refetch_interval);
        if may_fetch {
            return Plan::Fetch;
        }
        drop(state);
        match self.usable(now) {
            Ok(keys) => Plan::Use(keys),
            Err(e) => Plan::Fail(e),
        }
    }

    /// The cached keys if they may still be used (fresh, or expired within
    /// `max_stale`), else the reason there are none.
    fn usable(&self, now: Instant) -> Result<Arc<KeySet>, VerifyError> {
        let state = self.read();
        let within = state
            .expires
            .is_some_and(|e| now < e + self.config.max_stale);
        match (&state.keys, within) {
            (Some(keys), true) => Ok(keys.clone()),
            _ => Err(state.last_error.clone().unwrap_or_else(|| {
                VerifyError::InvalidKeySet(format!(
                    "no usable keys from {}: the cached key set is too old and could not be refreshed",
                    self.url
                ))
            })),
        }
    }

    /// Fetches the JWKS and updates the cache (or records the error).
    async fn fetch(&self) {
        let started = Instant::now();
        self.write().last_attempt = Some(started);
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let result = self
            .fetcher
            .get(&self.url, "application/jwk-set+json, application/json")
            .await
            .and_then(|fetched| {
                let text = std::str::from_utf8(&fetched.body).map_err(|_| {
                    VerifyError::InvalidKeySet(format!(
                        "{} answered a body that is not UTF-8",
                        self.url
                    ))
                })?;
                Ok((KeySet::from_jwks(text)?, fetched.max_age))
            });
        let mut state = self.write();
        match result {
            Ok((keys, max_age)) => {
                let age = max_age
                    .map_or(self.config.default_max_age, Duration::from_secs)
                    .clamp(
                        self.config.min_refetch_interval,
                        self.config
                            .max_max_age
                            .max(self.config.min_refetch_interval),
                    );
                tracing::debug!(url = %self.url, keys = keys.len(), max_age = ?age, "fetched the JWKS");
                state.keys = Some(Arc::new(keys));
                state.expires = Some(Instant::now() + age);
                state.last_error = None;
            }
            Err(e) => {
                tracing::warn!(url = %self.url, error = %e, "fetching the JWKS failed; keeping the cached keys");
                state.last_error = Some(e);
            }
        }
        // The interval runs from the end of this fetch, so a slow broker is
        // not asked again as soon as it answers.
        state.last_attempt = Some(Instant::now().max(started));
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
