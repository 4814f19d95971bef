//! The JWK Sets of `private_key_jwt` clients registered with a `jwks_uri`:
//! fetched only from URLs under the operator's allow-list
//! ([`certbound_verify::url_allow::UrlAllowList`], `[oauth]
//! jwks_uri_allowed_prefixes`) with the bounded HTTPS client every outbound
//! fetch uses ([`certbound_verify::http::HttpsFetcher`]: a deadline for the
//! whole exchange, a body cap, no redirects), cached for a TTL, and
//! refetched early on an unknown `kid` at most once per cooldown per URL —
//! so no request, authenticated or not, can make the server fetch more
//! often than that.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use certbound_registry::client_jwks::{ClientJwks, MAX_JWKS_BYTES};
use certbound_verify::http::HttpsFetcher;
use certbound_verify::url_allow::UrlAllowList;

/// How [`JwksFetcher`] fetches and caches.
#[derive(Debug, Clone)]
pub struct JwksFetcherConfig {
    /// Where a `jwks_uri` may point.
    pub allow: UrlAllowList,
    /// How long a fetched set is used, whatever its headers say. Default 300 s.
    pub ttl: Duration,
    /// At most one fetch per URL per this interval (unknown kids, failures).
    /// Default 30 s.
    pub cooldown: Duration,
    /// How long an expired set is still used while refetching fails.
    /// Default 1 hour.
    pub max_stale: Duration,
    /// Most URLs cached. Default 1024.
    pub max_entries: usize,
    /// Deadline of one fetch (connect to last byte). Default 5 s.
    pub timeout: Duration,
}

impl JwksFetcherConfig {
    /// The defaults, fetching under `allow`.
    pub fn new(allow: UrlAllowList) -> Self {
        Self {
            allow,
            ttl: Duration::from_secs(300),
            cooldown: Duration::from_secs(30),
            max_stale: Duration::from_secs(3600),
            max_entries: 1024,
            timeout: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    keys: Option<Arc<ClientJwks>>,
    fetched: Option<Instant>,
    last_attempt: Option<Instant>,
    error: Option<String>,
}

#[derive(Debug, Default)]
struct Entry {
    state: Mutex<State>,
    fetching: tokio::sync::Mutex<()>,
}

/// Cached client JWK Sets by URL (share it in an `Arc`).
#[derive(Debug)]
pub struct JwksFetcher {
    fetcher: HttpsFetcher,
    config: JwksFetcherConfig,
    entries: Mutex<HashMap<String, Arc<Entry>>>,
    fetches: std::sync::atomic::AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl JwksFetcher {
    /// A fetcher trusting the servers `tls` trusts.
    pub fn new(tls: Arc<rustls::ClientConfig>, config: JwksFetcherConfig) -> Self {
        Self {
            fetcher: HttpsFetcher::new(tls, config.timeout, MAX_JWKS_BYTES),
            config,
            entries: Mutex::default(),
            fetches: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// How many fetches were started.
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn entry(&self, uri: &str) -> Arc<Entry> {
        let mut entries = lock(&self.entries);
        if let Some(e) = entries.get(uri) {
            return e.clone();
        }
        if entries.len() >= self.config.max_entries {
            // Drop the least recently fetched.
            let oldest = entries
                .iter()
                .min_by_key(|(_, e)| lock(&e.state).last_attempt)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                entries.remove(&k);
            }
        }
        entries.entry(uri.to_string()).or_default().clone()
    }

    /// The key set of `uri`, holding `kid` if the client publishes it.
    ///
    /// # Errors
    /// Why no usable key set is at hand (for the audit log).
    pub async fn keys(&self, uri: &str, kid: Option<&str>) -> Result<Arc<ClientJwks>, String> {
        self.config
            .allow
            .check(uri)
            .map_err(|e| format!("jwks_uri {uri:?} is not allowed: {e}"))?;
        let entry = self.entry(uri);
        let entered = Instant::now();
        if let Some(keys) = self.usable(&entry, kid, entered, false) {
            return Ok(keys);
        }
        let _one = entry.fetching.lock().await;
        let now = Instant::now();
        let (fetched_meanwhile, may_fetch) = {
            let s = lock(&entry.state);
            (
                s.last_attempt.is_some_and(|t| t >= entered),
                s.last_attempt
                    .is_none_or(|t| now.saturating_duration_since(t) >= self.config.cooldown),
            )
        };
        if !fetched_meanwhile && may_fetch {
            self.fetch(uri, &entry).await;
        }
        self.usable(&entry, kid, Instant::now(), true)
            .ok_or_else(|| {
                let s = lock(&entry.state);
                match (&s.error, &s.keys) {
                    (Some(e), _) => format!("fetching the JWK Set {uri} failed: {e}"),
                    (None, Some(_)) => format!("the JWK Set of {uri} has no key {kid:?}"),
                    (None, None) => format!("no JWK Set from {uri} yet"),
                }
            })
    }

    /// The cached set if it may be used now: fresh and holding `kid`, or,
    /// when `settle` (no fetch is possible now), any set within `max_stale`.
    fn usable(
        &self,
        entry: &Entry,
        kid: Option<&str>,
        now: Instant,
        settle: bool,
    ) -> Option<Arc<ClientJwks>> {
        let s = lock(&entry.state);
        let keys = s.keys.as_ref()?;
        let age = now.saturating_duration_since(s.fetched?);
        let has_kid = kid.is_none_or(|k| keys.has_kid(k));
        let fresh = age < self.config.ttl;
        if fresh && has_kid {
            return Some(keys.clone());
        }
        let cooling = s
            .last_attempt
            .is_some_and(|t| now.saturating_duration_since(t) < self.config.cooldown);
        // Unknown kid or expired, but no fetch allowed yet: the cached set
        // answers (the signature check then fails for an unknown kid).
        ((settle || cooling) && age < self.config.ttl + self.config.max_stale).then(|| keys.clone())
    }

    async fn fetch(&self, uri: &str, entry: &Entry) {
        lock(&entry.state).last_attempt = Some(Instant::now());
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let result = self
            .fetcher
            .get(uri, "application/jwk-set+json, application/json")
            .await
            .map_err(|e| e.to_string())
            .and_then(|f| String::from_utf8(f.body).map_err(|_| "the body is not UTF-8".into()))
            .and_then(|text| ClientJwks::parse(&text).map_err(|e| e.to_string()));
        let mut s = lock(&entry.state);
        match result {
            Ok(keys) => {
                tracing::debug!(%uri, keys = keys.keys.len(), "fetched a client JWK Set");
                s.keys = Some(Arc::new(keys));
                s.fetched = Some(Instant::now());
                s.error = None;
            }
            Err(e) => {
                tracing::warn!(%uri, error = %e, "fetching a client JWK Set failed");
                s.error = Some(e);
            }
        }
        s.last_attempt = Some(Instant::now());
    }
}
