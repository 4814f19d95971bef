//! [`TelemetryVerifier`]: the complete offline check of telemetry envelopes
//! (DESIGN.md "Telemetry envelope"), with a bounded cache of verified tokens
//! and a per-device anti-replay window over sequence numbers.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use certbound_proto::ClaimError;
use certbound_proto::status_list::StatusRef;
use certbound_proto::telemetry::UnverifiedTelemetry;
use sha2::{Digest, Sha256};

use crate::error::VerifyError;
use crate::verifier::{TokenVerifier, VerifiedToken};

/// Width of the anti-replay bitmap: the largest usable [`TelemetryConfig::window`].
const MAX_WINDOW: u64 = 64;

/// Settings of a [`TelemetryVerifier`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// How far behind the highest accepted sequence number a late message may
    /// arrive and still be accepted (once). Default 64, which is also the
    /// maximum: larger values are treated as 64. `0` (or `1`) only accepts
    /// strictly increasing sequence numbers.
    pub window: u64,
    /// How many verified tokens to keep (default 100 000). `0` disables the
    /// cache: every message then costs two signature checks.
    pub token_cache_capacity: usize,
    /// Scopes every token must grant (default `["telemetry:write"]`).
    pub required_scopes: Vec<String>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            window: MAX_WINDOW,
            token_cache_capacity: 100_000,
            required_scopes: vec!["telemetry:write".into()],
        }
    }
}

/// A telemetry message that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedTelemetry {
    /// The device that sent it: the token's `sub`.
    pub device_id: String,
    /// Its sequence number (accepted exactly once per device).
    pub seq: u64,
    /// Device time of the reading, Unix milliseconds (as signed by the device,
    /// not checked against the clock).
    pub timestamp_ms: u64,
    /// Application data.
    pub data: Vec<u8>,
    /// The `cti` of the attached token.
    pub token_cti: Vec<u8>,
    /// The token's scope string (space-separated scopes, empty when absent).
    pub scope: String,
}

/// Counters of a [`TelemetryVerifier`] since it was created.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TelemetryStats {
    /// Messages accepted.
    pub accepted: u64,
    /// Messages refused, by [`VerifyError::reason_code`].
    pub rejected: BTreeMap<&'static str, u64>,
    /// Messages whose token was found in the cache (no token signature check).
    pub token_cache_hits: u64,
    /// Messages whose token was verified in full (not cached yet, or evicted).
    pub token_cache_misses: u64,
}

/// Verifies telemetry envelopes: the token (signature, `exp`, `aud`, scope —
/// via [`TokenVerifier`]), proof of possession (the body is signed by the
/// token's `cnf` key), the body naming the token's `cti`, the topic's device
/// (when given) equal to the token's `sub`, and per-device sequence numbers.
///
/// Sequence numbers go through an anti-replay sliding window (RFC 4303
/// §3.4.3 style: the highest accepted `seq` plus a 64-bit bitmap). A `seq`
/// above the highest is accepted and slides the window; a `seq` inside the
/// window not seen before is accepted (reordering is tolerated); a `seq`
/// already seen, or older than the window, is refused as
/// [`VerifyError::Replay`]. The window is only updated once everything else
/// verified, so a forged message cannot advance it. Sequence state is kept
/// per device id (`sub`), so it survives token renewals; it is held in memory
/// for every device seen (devices are authenticated before they get state).
///
/// Each message costs about one signature check: verified tokens are cached
/// (key: SHA-256 of the token bytes), bounded by
/// [`TelemetryConfig::token_cache_capacity`], evicting expired tokens first,
/// then the oldest. A cached token's claims are re-validated at `now` on every
/// use, so it is refused once expired. Only verified tokens are cached.
///
/// The envelope is bounded by the token verifier's [`crate::Limits`]
/// (`VerifierConfig::limits`, default 8 KiB for token and data together).
///
/// `Send + Sync`: share it behind an `Arc`. Locks are held only for map
/// lookups and updates, never during signature checks.
#[derive(Debug)]
pub struct TelemetryVerifier {
    tokens: TokenVerifier,
    window: u64,
    required_scopes: Vec<String>,
    cache: Mutex<TokenCache>,
    windows: Mutex<HashMap<String, ReplayWindow>>,
    stats: Mutex<TelemetryStats>,
}

impl TelemetryVerifier {
    /// A verifier checking tokens with `tokens` and messages per `config`.
    pub fn new(tokens: TokenVerifier, config: TelemetryConfig) -> Self {
        Self {
            tokens,
            window: config.window.min(MAX_WINDOW),
            required_scopes: config.required_scopes,
            cache: Mutex::new(TokenCache::new(config.token_cache_capacity)),
            windows: Mutex::new(HashMap::new()),
            stats: Mutex::new(TelemetryStats::default()),
        }
    }

    /// The token verifier.
    pub fn tokens(&self) -> &TokenVerifier {
        &self.tokens
    }

    /// Verifies one envelope received at `now` (Unix seconds).
    ///
    /// `topic_device` is the device named by the transport (the `{device}` of
    /// `cb/v1/{device}/telemetry`), when there is one; it must equal the
    /// token's `sub`.
    ///
    /// In order: envelope parsing; the token (from the cache, re-validated at
    /// `now`, or verified in full); the body signature with the token's `cnf`
    /// key and its `cti`; the token's `sub`; the topic; and last the sequence
    /// number, which is recorded only when accepted.
    ///
    /// The token's revocation status is not checked here (it needs a
    /// fetched status list): a backend that checks it uses
    /// [`TelemetryVerifier::check_unrecorded`], checks
    /// [`CheckedTelemetry::status`], then [`TelemetryVerifier::commit`]
    /// (the `http` feature's `Authenticator::check_telemetry` does the first
    /// two), so that a refused message never touches the replay window.
    ///
    /// # Errors
    /// [`VerifyError::Malformed`] for an undecodable envelope or body; every
    /// error of [`TokenVerifier::verify`] (`Claims(Missing("sub"))` for a token
    /// without `sub`); [`VerifyError::BadProofOfPossession`];
    /// [`VerifyError::TelemetryTokenMismatch`]; [`VerifyError::TopicMismatch`];
    /// [`VerifyError::Replay`].
    pub fn verify(
        &self,
        envelope: &[u8],
        topic_device: Option<&str>,
        now: u64,
    ) -> Result<AcceptedTelemetry, VerifyError> {
        let checked = self.check_unrecorded(envelope, topic_device, now)?;
        self.commit(checked)
    }

    /// Every check of [`TelemetryVerifier::verify`] but the replay window,
    /// which is left untouched: the message still has to be committed
    /// ([`TelemetryVerifier::commit`]) once the caller's own checks (the
    /// revocation status) passed. A refusal is counted in the stats.
    ///
    /// # Errors
    /// As for [`TelemetryVerifier::verify`], except [`VerifyError::Replay`].
    pub fn check_unrecorded(
        &self,
        envelope: &[u8],
        topic_device: Option<&str>,
        now: u64,
    ) -> Result<CheckedTelemetry, VerifyError> {
        let result = self.check(envelope, topic_device, now);
        if let Err(e) = &result {
            self.count_rejection(e);
        }
        result
    }

    /// Counts a refusal decided outside this verifier (e.g. a revoked token)
    /// in [`TelemetryVerifier::stats`].
    pub fn count_rejection(&self, error: &VerifyError) {
        *lock(&self.stats)
            .rejected
            .entry(error.reason_code())
            .or_insert(0) += 1;
    }

    /// The device's replay window as it would be after accepting `checked`,
    /// without changing it: for callers that persist the window before they
    /// accept (write-ahead), then [`TelemetryVerifier::commit`].
    ///
    /// # Errors
    /// [`VerifyError::Replay`] when the sequence number was already accepted
    /// or is older than the window (not counted; [`TelemetryVerifier::commit`]
    /// would refuse it the same way).
    pub fn window_after(&self, checked: &CheckedTelemetry) -> Result<ReplayWindow, VerifyError> {
        let device = &checked.message.device_id;
        let seq = checked.message.seq;
        let mut window = lock(&self.windows).get(device).copied();
        let fresh = match window.as_mut() {
            Some(w) => w.accept(seq, self.window),
            None => {
                window = Some(ReplayWindow::new(seq));
                true
            }
        };
        match window {
            Some(w) if fresh => Ok(w),
            _ => Err(VerifyError::Replay {
                device: device.clone(),
                seq,
            }),
        }
    }

    /// Records the sequence number of a checked message in its device's
    /// replay window and returns it as accepted (counted in the stats).
    ///
    /// # Errors
    /// [`VerifyError::Replay`] when the sequence number was already accepted
    /// or is older than the window.
    pub fn commit(&self, checked: CheckedTelemetry) -> Result<AcceptedTelemetry, VerifyError> {
        let device = &checked.message.device_id;
        let seq = checked.message.seq;
        let fresh = {
            let mut windows = lock(&self.windows);
            match windows.get_mut(device) {
                Some(w) => w.accept(seq, self.window),
                None => {
                    windows.insert(device.clone(), ReplayWindow::new(seq));
                    true
                }
            }
        };
        if !fresh {
            let e = VerifyError::Replay {
                device: device.clone(),
                seq,
            };
            self.count_rejection(&e);
            return Err(e);
        }
        lock(&self.stats).accepted += 1;
        Ok(checked.message)
    }

    /// Sets the replay window of `device` (restored from storage after a
    /// restart). A window already held is merged: the higher `highest` wins,
    /// so a restore never lets an accepted sequence number through again.
    pub fn restore_window(&self, device: &str, window: ReplayWindow) {
        let mut windows = lock(&self.windows);
        let merged = match windows.get(device) {
            Some(held) if held.highest > window.highest => *held,
            Some(held) if held.highest == window.highest => ReplayWindow {
                highest: held.highest,
                seen: held.seen | window.seen,
            },
            _ => window,
        };
        windows.insert(device.to_string(), merged);
    }

    /// The replay window of `device`, if it sent anything.
    pub fn replay_window(&self, device: &str) -> Option<ReplayWindow> {
        lock(&self.windows).get(device).copied()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> TelemetryStats {
        lock(&self.stats).clone()
    }

    fn check(
        &self,
        envelope: &[u8],
        topic_device: Option<&str>,
        now: u64,
    ) -> Result<CheckedTelemetry, VerifyError> {
        let limits = self.tokens.config().limits;
        let envelope = UnverifiedTelemetry::parse(envelope, limits)?;
        let token = self.token(&envelope.token, now)?;
        let payload = token.check_telemetry_pop(&envelope, limits)?;
        let device = token
            .device_id()
            .ok_or(VerifyError::Claims(ClaimError::Missing("sub")))?;
        if let Some(topic) = topic_device
            && topic != device
        {
            return Err(VerifyError::TopicMismatch {
                topic: topic.into(),
                token: device.into(),
            });
        }
        Ok(CheckedTelemetry {
            message: AcceptedTelemetry {
                device_id: device.into(),
                seq: payload.seq,
                timestamp_ms: payload.timestamp_ms,
                data: payload.data,
                token_cti: payload.token_cti,
                scope: token.claims.scope.clone().unwrap_or_default(),
            },
            status: token.claims.status.clone(),
        })
    }

    /// The verified token for `bytes` at `now`: from the cache (claims
    /// re-validated) or verified in full and cached.
    fn token(&self, bytes: &[u8], now: u64) -> Result<Arc<VerifiedToken>, VerifyError> {
        let key: [u8; 32] = Sha256::digest(bytes).into();
        let scopes: Vec<&str> = self.required_scopes.iter().map(String::as_str).collect();
        let cached = lock(&self.cache).get(&key);
        {
            let mut stats = lock(&self.stats);
            match cached {
                Some(_) => stats.token_cache_hits += 1,
                None => stats.token_cache_misses += 1,
            }
        }
        let config = self.tokens.config();
        if let Some(token) = cached {
            token
                .claims
                .validate(&crate::verifier::expectations(config, &scopes, now)?)?;
            return Ok(token);
        }
        let token = Arc::new(self.tokens.verify(bytes, &scopes, now)?);
        let expires_at = token
            .claims
            .exp
            .map_or(0, |exp| exp.saturating_add(config.leeway));
        lock(&self.cache).insert(key, Arc::clone(&token), expires_at, now);
        Ok(token)
    }
}

/// Locks `m`; a poisoned lock is still used (every critical section leaves
/// its data consistent).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A telemetry message that passed every check of a [`TelemetryVerifier`]
/// but the replay window ([`TelemetryVerifier::check_unrecorded`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedTelemetry {
    /// The message, as it is returned once committed.
    pub message: AcceptedTelemetry,
    /// The token's status-list reference (revocable tokens): check it before
    /// committing.
    pub status: Option<StatusRef>,
}

/// The anti-replay window of one device: the highest accepted sequence
/// number and a bitmap of the 64 below it. Plain data, for persisting
/// ([`TelemetryVerifier::window_after`], [`TelemetryVerifier::restore_window`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayWindow {
    /// Highest accepted sequence number.
    pub highest: u64,
    /// Bit `i` set: `highest - i` was accepted.
    pub seen: u64,
}

impl ReplayWindow {
    /// The window after the device's first accepted message.
    pub fn new(seq: u64) -> Self {
        Self {
            highest: seq,
            seen: 1,
        }
    }

    /// Records `seq` and returns `true` when it is new and within `window`
    /// (at most 64); returns `false`, unchanged, otherwise.
    pub fn accept(&mut self, seq: u64, window: u64) -> bool {
        if seq > self.highest {
            let shift = seq - self.highest;
            self.seen = if shift >= MAX_WINDOW {
                1
            } else {
                (self.seen << shift) | 1
            };
            self.highest = seq;
            return true;
        }
        let behind = self.highest - seq;
        if behind >= window || behind >= MAX_WINDOW {
            return false;
        }
        let bit = 1u64 << behind;
        if self.seen & bit != 0 {
            return false;
        }
        self.seen |= bit;
        true
    }
}

/// Verified tokens by SHA-256 of their bytes, bounded; evicts expired entries
/// first, then the oldest.
#[derive(Debug)]
struct TokenCache {
    capacity: usize,
    next_gen: u64,
    entries: HashMap<[u8; 32], CacheEntry>,
    /// Insertion generation -> key.
    by_age: BTreeMap<u64, [u8; 32]>,
    /// (expires_at, generation) of every entry.
    by_expiry: BTreeSet<(u64, u64)>,
}

#[derive(Debug)]
struct CacheEntry {
    generation: u64,
    expires_at: u64,
    token: Arc<VerifiedToken>,
}

impl TokenCache {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            next_gen: 0,
            entries: HashMap::new(),
            by_age: BTreeMap::new(),
            by_expiry: BTreeSet::new(),
        }
    }

    fn get(&self, key: &[u8; 32]) -> Option<Arc<VerifiedToken>> {
        self.entries.get(key).map(|e| Arc::clone(&e.token))
    }

    /// Caches `token`, which is refused from `expires_at` (Unix seconds) on.
    fn insert(&mut self, key: [u8; 32], token: Arc<VerifiedToken>, expires_at: u64, now: u64) {
        if self.capacity == 0 || self.entries.contains_key(&key) {
            return;
        }
        if self.entries.len() >= self.capacity {
            while let Some(&(exp, generation)) = self.by_expiry.first() {
                if exp > now {
                    break;
                }
                self.by_expiry.remove(&(exp, generation));
                self.remove(generation);
            }
        }
        while self.entries.len() >= self.capacity {
            let Some((&generation, _)) = self.by_age.first_key_value() else {
                break;
            };
            self.remove(generation);
        }
        let generation = self.next_gen;
        self.next_gen += 1;
        self.by_age.insert(generation, key);
        self.by_expiry.insert((expires_at, generation));
        self.entries.insert(
            key,
            CacheEntry {
                generation,
                expires_at,
                token,
            },
        );
    }

    fn remove(&mut self, generation: u64) {
        if let Some(key) = self.by_age.remove(&generation)
            && let Some(entry) = self.entries.remove(&key)
        {
            self.by_expiry.remove(&(entry.expires_at, entry.generation));
        }
    }
}
