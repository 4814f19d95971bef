//! Token revocation by status list (draft-ietf-oauth-status-list), sans-IO.
//!
//! A certbound access token carries `status` = `{idx, uri}`: entry `idx` of
//! the Status List Token published at `uri`. [`StatusCache`] keeps verified
//! lists by URI; the caller fetches (HTTP `GET uri`, `Accept:
//! application/statuslist+cwt`) when [`StatusCache::needs_refresh`] says so
//! and hands the bytes to [`StatusCache::insert`], which verifies them
//! (`typ`, ES256 signature by a key of the [`KeySet`], `sub` == `uri`, `exp`,
//! `iat`, bounded inflation) before caching. [`StatusCache::check`] then
//! answers from memory, failing closed when no fresh enough list is at hand.
//!
//! **Fetching is restricted** to `https://` URIs under the configured
//! prefixes (by default the broker's status-list base URL): a token must
//! never make a verifier fetch an arbitrary URL (SSRF). [`StatusCache::check_uri`]
//! enforces this for both `check` and `insert`, and `needs_refresh` is false
//! for a refused URI.
//!
//! Time is passed in as Unix seconds. The `http` feature's
//! [`Authenticator`](crate::http::layer::Authenticator) does the fetching.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use certbound_proto::crypto::{P256Signer, Signer};
//! use certbound_proto::status_list::{StatusList, StatusListToken, StatusRef, mint_status_list};
//! use certbound_verify::KeySet;
//! use certbound_verify::status::{StatusCache, StatusCacheConfig};
//!
//! let broker = P256Signer::from_scalar(&[7u8; 32])?;
//! let kid = broker.public_key().kid();
//! let mut keys = KeySet::new();
//! keys.insert(kid.clone(), broker.public_key().clone())?;
//!
//! let uri = "https://auth.example.com/status/1";
//! let mut list = StatusList::new(2, 1024)?;
//! list.set(5, 1)?; // entry 5 revoked
//! let now = 1_700_000_000;
//! let token = StatusListToken { sub: uri.into(), iat: now, exp: Some(now + 600), ttl: Some(60), list };
//! let bytes = mint_status_list(&token, &kid, &broker)?;
//!
//! let mut cache = StatusCache::new(StatusCacheConfig::new("https://auth.example.com/status/"))?;
//! assert!(cache.needs_refresh(uri, now));
//! cache.insert(uri, &bytes, &keys, now)?;
//! assert!(!cache.needs_refresh(uri, now + 10));
//! cache.check(&StatusRef { idx: 4, uri: uri.into() }, now + 10)?;
//! let err = cache.check(&StatusRef { idx: 5, uri: uri.into() }, now + 10).unwrap_err();
//! assert_eq!(err.reason_code(), "revoked");
//! // Somewhere else entirely: never fetched.
//! let err = cache.check_uri("https://evil.example/status/1").unwrap_err();
//! assert_eq!(err.reason_code(), "status_uri");
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;

use certbound_proto::cbor::Limits;
use certbound_proto::status_list::{
    STATUS_INVALID, STATUS_SUSPENDED, STATUS_VALID, StatusListToken, StatusRef,
    UnverifiedStatusList,
};

use crate::error::VerifyError;
use crate::keyset::KeySet;
use crate::url_allow::split_https;
use crate::verifier::{DEFAULT_LEEWAY, kid_text};

/// Default [`StatusCacheConfig::max_staleness`], seconds.
pub const DEFAULT_MAX_STALENESS: u64 = 60;
/// Default [`StatusCacheConfig::max_lists`].
pub const DEFAULT_MAX_LISTS: usize = 64;
/// Default [`StatusCacheConfig::max_list_bytes`]: 4 MiB, a list of 16 Mi
/// entries of 2 bits (the broker's largest).
pub const DEFAULT_MAX_LIST_BYTES: usize = 4 * 1024 * 1024;

/// What a [`StatusCache`] accepts and how long it trusts a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCacheConfig {
    /// `https://` URI prefixes from which lists may be fetched. A URI is
    /// allowed when it starts with a prefix at a path boundary (the prefix
    /// ends with `/`, or the URI continues with `/`), so
    /// `https://auth.example.com` does not allow
    /// `https://auth.example.com.evil.example/...`.
    pub allowed_prefixes: Vec<String>,
    /// How long past its ttl a cached list is still used while no fresh one
    /// can be had (the fetch is failing, or another request is fetching),
    /// seconds. After ttl + this, tokens of that list are refused
    /// ([`VerifyError::StatusUnavailable`]). Default 60.
    pub max_staleness: u64,
    /// The ttl of a list that has no `ttl` claim, seconds. Default 60.
    pub default_ttl: u64,
    /// Lower bound of a list's ttl (a list saying 0 would be fetched for
    /// every request), seconds. Default 1.
    pub min_ttl: u64,
    /// Upper bound of a list's ttl, seconds. Default 3600.
    pub max_ttl: u64,
    /// After a failed fetch, wait this long before the next, seconds
    /// (so a failing broker is not asked once per request). Default 5.
    pub retry_after_failure: u64,
    /// How many lists are kept; inserting more evicts the least recently
    /// fetched. Default 64.
    pub max_lists: usize,
    /// Largest inflated list, bytes (zip-bomb guard). Default 4 MiB.
    pub max_list_bytes: usize,
    /// Size and depth bounds of a Status List Token. Default 256 KiB, depth 16.
    pub limits: Limits,
    /// Clock skew allowed on the list's `exp` and `iat`, seconds. Default 60.
    pub leeway: u64,
}

impl StatusCacheConfig {
    /// Defaults, allowing lists under `status_base` only (e.g.
    /// `https://auth.example.com/status/`: the broker's HTTPS
    /// public URL followed by `/status/`).
    pub fn new(status_base: impl Into<String>) -> Self {
        Self {
            allowed_prefixes: vec![status_base.into()],
            max_staleness: DEFAULT_MAX_STALENESS,
            default_ttl: 60,
            min_ttl: 1,
            max_ttl: 3600,
            retry_after_failure: 5,
            max_lists: DEFAULT_MAX_LISTS,
            max_list_bytes: DEFAULT_MAX_LIST_BYTES,
            limits: Limits {
                max_size: 256 * 1024,
                max_depth: 16,
            },
            leeway: DEFAULT_LEEWAY,
        }
    }
}

#[derive(Debug, Clone)]
struct Cached {
    token: StatusListToken,
    fetched_at: u64,
    ttl: u64,
}

#[derive(Debug, Clone, Default)]
struct Entry {
    list: Option<Cached>,
    /// When the last fetch failed (cleared by a successful insert).
    failed_at: Option<u64>,
    /// Why it failed, for the error message.
    failure: Option<String>,
    /// The newest `iat` of a list accepted for this URI (rollback guard:
    /// kept across failures, so an older list is refused even while the
    /// cached one is stale).
    newest_iat: Option<u64>,
}

impl Entry {
    /// The time this entry last changed, for eviction.
    fn touched(&self) -> u64 {
        let fetched = self.list.as_ref().map_or(0, |l| l.fetched_at);
        fetched.max(self.failed_at.unwrap_or(0))
    }
}

/// Verified status lists by URI (see the module docs).
#[derive(Debug, Clone)]
pub struct StatusCache {
    config: StatusCacheConfig,
    /// The allowed prefixes, normalised (checked `https://`, trailing `/`).
    prefixes: Vec<String>,
    entries: HashMap<String, Entry>,
}

impl StatusCache {
    /// An empty cache.
    ///
    /// # Errors
    /// [`VerifyError::InvalidUrl`] when an allowed prefix is not an
    /// `https://host[:port][/path]` URL (no user info, query or fragment),
    /// or no prefix is given.
    pub fn new(config: StatusCacheConfig) -> Result<Self, VerifyError> {
        if config.allowed_prefixes.is_empty() {
            return Err(VerifyError::InvalidUrl {
                url: String::new(),
                reason: "no status-list prefix is allowed; give the broker's status-list base URL (https://<broker>/status/)".into(),
            });
        }
        let mut prefixes = Vec::new();
        for prefix in &config.allowed_prefixes {
            let (authority, path) =
                split_https(prefix).map_err(|reason| VerifyError::InvalidUrl {
                    url: prefix.clone(),
                    reason: format!("it cannot be a status-list prefix: {reason}"),
                })?;
            let path = path.trim_end_matches('/');
            prefixes.push(format!("https://{}{path}/", authority.to_ascii_lowercase()));
        }
        Ok(Self {
            config,
            prefixes,
            entries: HashMap::new(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &StatusCacheConfig {
        &self.config
    }

    /// Number of URIs with a cached list or a recorded failure.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `uri` may be fetched: an `https://` URL without user info,
    /// fragment, backslashes, whitespace or dot segments, under one of the
    /// allowed prefixes.
    ///
    /// # Errors
    /// [`VerifyError::StatusUriNotAllowed`] saying why not.
    pub fn check_uri(&self, uri: &str) -> Result<(), VerifyError> {
        let refuse = |reason: String| VerifyError::StatusUriNotAllowed {
            uri: uri.chars().take(200).collect(),
            reason,
        };
        let (authority, path) = split_https(uri).map_err(refuse)?;
        let normalised = format!("https://{}{path}", authority.to_ascii_lowercase());
        if self
            .prefixes
            .iter()
            .any(|p| normalised.starts_with(p.as_str()))
        {
            Ok(())
        } else {
            Err(refuse(format!(
                "it is not under an allowed prefix ({})",
                self.prefixes.join(", ")
            )))
        }
    }

    /// Whether `uri` should be fetched now: it is allowed, and either no
    /// list is cached or the cached one is at least its ttl old — but not
    /// within [`StatusCacheConfig::retry_after_failure`] of a failed fetch.
    pub fn needs_refresh(&self, uri: &str, now: u64) -> bool {
        if self.check_uri(uri).is_err() {
            return false;
        }
        let Some(entry) = self.entries.get(uri) else {
            return true;
        };
        if let Some(failed) = entry.failed_at
            && now < failed.saturating_add(self.config.retry_after_failure)
        {
            return false;
        }
        match &entry.list {
            None => true,
            Some(list) => now >= list.fetched_at.saturating_add(list.ttl),
        }
    }

    /// When the list of `uri` was fetched (Unix seconds), if one is cached.
    pub fn fetched_at(&self, uri: &str) -> Option<u64> {
        self.entries
            .get(uri)
            .and_then(|e| e.list.as_ref())
            .map(|l| l.fetched_at)
    }

    /// The status of `status.idx` in the cached list of `status.uri`.
    ///
    /// # Errors
    /// [`VerifyError::StatusUriNotAllowed`] for a URI outside the allowed
    /// prefixes; [`VerifyError::StatusUnavailable`] when no list is cached,
    /// or the cached one is older than its ttl plus
    /// [`StatusCacheConfig::max_staleness`], or has expired;
    /// [`VerifyError::Malformed`] when the index is outside the list (the
    /// draft requires the token to be refused); [`VerifyError::Revoked`],
    /// [`VerifyError::Suspended`], [`VerifyError::UnknownStatus`] for any
    /// status but VALID.
    pub fn check(&self, status: &StatusRef, now: u64) -> Result<(), VerifyError> {
        self.check_uri(&status.uri)?;
        let unavailable = |reason: String| VerifyError::StatusUnavailable {
            uri: status.uri.clone(),
            reason,
        };
        let entry = self.entries.get(&status.uri);
        let Some(list) = entry.and_then(|e| e.list.as_ref()) else {
            return Err(unavailable(
                match entry.and_then(|e| e.failure.as_deref()) {
                    Some(failure) => format!("the list could not be fetched: {failure}"),
                    None => "the list has not been fetched yet".into(),
                },
            ));
        };
        let usable_until = list
            .fetched_at
            .saturating_add(list.ttl)
            .saturating_add(self.config.max_staleness);
        if now >= usable_until {
            let why = match entry.and_then(|e| e.failure.as_deref()) {
                Some(failure) => format!("; the last refresh failed: {failure}"),
                None => String::new(),
            };
            return Err(unavailable(format!(
                "the cached list is {} s old, more than its ttl of {} s plus {} s of allowed staleness{why}",
                now.saturating_sub(list.fetched_at),
                list.ttl,
                self.config.max_staleness
            )));
        }
        if let Some(exp) = list.token.exp
            && now >= exp.saturating_add(self.config.leeway)
        {
            return Err(unavailable(format!("the cached list expired at {exp}")));
        }
        match list.token.list.status(status.idx)? {
            STATUS_VALID => Ok(()),
            STATUS_INVALID => Err(VerifyError::Revoked),
            STATUS_SUSPENDED => Err(VerifyError::Suspended),
            value => Err(VerifyError::UnknownStatus { value }),
        }
    }

    /// Verifies the Status List Token `bytes` fetched from `uri` at `now`
    /// and caches it: strict parsing (`typ` `application/statuslist+cwt`,
    /// ES256), the signature with the key its `kid` names in `keys`, `sub`
    /// equal to `uri`, `exp` not passed and `iat` not in the future (with
    /// leeway), the list inflated within bounds, and `iat` not older than
    /// that of a list already accepted for `uri` (a replayed older list
    /// would un-revoke tokens). Clears a recorded failure.
    ///
    /// # Errors
    /// [`VerifyError::StatusUriNotAllowed`], [`VerifyError::Malformed`],
    /// [`VerifyError::UnknownKey`], [`VerifyError::BadSignature`],
    /// [`VerifyError::Claims`] (wrong `sub`, expired, `iat` in the future),
    /// [`VerifyError::StatusRollback`] (older than the cached list).
    /// The cache is unchanged on error (record it with
    /// [`StatusCache::record_failure`]).
    pub fn insert(
        &mut self,
        uri: &str,
        bytes: &[u8],
        keys: &KeySet,
        now: u64,
    ) -> Result<(), VerifyError> {
        self.check_uri(uri)?;
        let limits = self.config.limits;
        let parsed = UnverifiedStatusList::parse(bytes, limits)?;
        let verifier = std::str::from_utf8(parsed.kid())
            .ok()
            .and_then(|k| keys.verifier(k))
            .ok_or_else(|| VerifyError::UnknownKey {
                kid: kid_text(parsed.kid()),
            })?;
        let token = parsed.verify(
            verifier,
            limits,
            uri,
            now,
            self.config.leeway,
            self.config.max_list_bytes,
        )?;
        let newest_iat = self.entries.get(uri).and_then(|e| e.newest_iat);
        if let Some(cached_iat) = newest_iat
            && token.iat < cached_iat
        {
            return Err(VerifyError::StatusRollback {
                uri: uri.to_string(),
                cached_iat,
                offered_iat: token.iat,
            });
        }
        let ttl = token.ttl.unwrap_or(self.config.default_ttl).clamp(
            self.config.min_ttl,
            self.config.max_ttl.max(self.config.min_ttl),
        );
        self.make_room(uri);
        let iat = token.iat;
        self.entries.insert(
            uri.to_string(),
            Entry {
                newest_iat: Some(iat),
                list: Some(Cached {
                    token,
                    fetched_at: now,
                    ttl,
                }),
                failed_at: None,
                failure: None,
            },
        );
        Ok(())
    }

    /// Records that fetching (or verifying) the list of `uri` failed at
    /// `now`: no new fetch is due for [`StatusCacheConfig::retry_after_failure`],
    /// and a cached list stays usable within its staleness bound.
    pub fn record_failure(&mut self, uri: &str, now: u64, reason: &str) {
        if self.check_uri(uri).is_err() {
            return;
        }
        self.make_room(uri);
        let entry = self.entries.entry(uri.to_string()).or_default();
        entry.failed_at = Some(now);
        entry.failure = Some(reason.chars().take(300).collect());
    }

    /// Forgets the list of `uri`.
    pub fn remove(&mut self, uri: &str) {
        self.entries.remove(uri);
    }

    /// Evicts the least recently touched entry when a new `uri` would
    /// exceed [`StatusCacheConfig::max_lists`].
    fn make_room(&mut self, uri: &str) {
        if self.entries.contains_key(uri) {
            return;
        }
        while self.entries.len() >= self.config.max_lists.max(1) {
            let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.touched())
                .map(|(k, _)| k.clone())
            else {
                return;
            };
            self.entries.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests;
