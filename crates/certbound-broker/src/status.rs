//! Token status lists (draft-ietf-oauth-status-list): every issued token gets
//! an entry (`status` claim: list URI + index); `GET /status/{id}`
//! serves the signed, compressed list so verifiers refuse revoked and
//! suspended tokens offline, refreshing at most every `ttl` seconds.
//!
//! Entries are reserved from the store in blocks (one write per block, not
//! per token) and a list's status is computed when it is built: INVALID (1)
//! from the token's own record only (`issued_tokens.revoked_at`, set by a
//! token revocation and, in the same transaction, for every token of a
//! device or client being revoked), so a later change of a device row never
//! makes a revoked token valid again; SUSPENDED (2) while the token's device
//! is suspended, VALID again once it is resumed (see `Store::status_entries`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use certbound_proto::status_list::{
    STATUS_INVALID, STATUS_SUSPENDED, StatusList, StatusListToken, StatusRef, mint_status_list,
};

use crate::error::BrokerError;
use crate::keys::SharedKeys;
use crate::store::Store;

/// Bits per entry (VALID, INVALID, SUSPENDED need 2).
pub const STATUS_BITS: u8 = 2;
/// Entries reserved from the store at a time, at least: a broker that uses
/// a block up within [`FAST_BLOCK`] doubles the next one, up to
/// [`MAX_BLOCK`], and halves it back when a block lasts longer than
/// [`SLOW_BLOCK`]. Every reservation is a store write, which competed with
/// the token records for the write lock: 128-entry blocks meant about 40
/// writes a second at 5 000 tokens/s.
const BLOCK: u64 = 128;
/// The largest block (2 bits each: 2 KiB of a list).
const MAX_BLOCK: u64 = 8192;
/// A block used up faster than this makes the next one twice as large.
const FAST_BLOCK: Duration = Duration::from_secs(2);
/// A block that lasted longer than this makes the next one half as large.
const SLOW_BLOCK: Duration = Duration::from_secs(60);
/// A built list is reused for this long (bounds the signing work under load;
/// revocations show in the list at most this much later).
const REBUILD_AFTER: Duration = Duration::from_secs(1);
/// A reserved block is handed out for at most this long, seconds (see the
/// store's housekeeping, which relies on it).
pub use crate::store::MAX_BLOCK_AGE_SECS;

/// How long after its `exp` a revoked or suspended token stays marked in the
/// lists served, in seconds (kept by the store, whose housekeeping relies on it).
pub use crate::store::EXPIRED_KEPT_SECS;

/// Settings.
#[derive(Debug, Clone)]
pub struct StatusConfig {
    /// Base URL of the HTTPS endpoint, e.g. `https://auth.example.com:8443`.
    pub base_url: String,
    /// Entries per list.
    pub list_size: u64,
    /// How long verifiers may cache a list (the `ttl` claim), seconds.
    pub ttl: u64,
    /// `iss`-like identity is not part of list tokens; the issuer id is kept
    /// for logs.
    pub issuer_id: String,
}

/// A signed list and when it was built.
type BuiltList = (Instant, Arc<Vec<u8>>);

/// Reserved status-list entries `next..end` of list `list`.
#[derive(Debug, Clone, Copy)]
struct Reserved {
    list: u64,
    first: u64,
    next: u64,
    end: u64,
    at: Instant,
}

impl Reserved {
    /// Still within [`MAX_BLOCK_AGE_SECS`] of its reservation.
    fn fresh(&self) -> bool {
        self.at.elapsed() < Duration::from_secs(MAX_BLOCK_AGE_SECS)
    }
}

/// The block entries are handed out from, and the next one, reserved in
/// the background once half of the current one is used, so that a token
/// does not wait for a store write in steady state.
#[derive(Debug, Default)]
struct Block {
    current: Option<Reserved>,
    spare: Option<Reserved>,
    fetching: bool,
    /// Entries the next reservation asks for (0: [`BLOCK`]).
    size: u64,
}

impl Block {
    /// The size of the next reservation, adapted to how fast `used` (the
    /// block just handed out to its end, or half of it) went.
    fn adapt(&mut self, used: &Reserved) {
        let size = self.size.max(BLOCK);
        let age = used.at.elapsed();
        self.size = if age < FAST_BLOCK {
            (size * 2).min(MAX_BLOCK)
        } else if age > SLOW_BLOCK {
            (size / 2).max(BLOCK)
        } else {
            size
        };
    }
}

/// The status lists of one broker.
#[derive(Debug)]
pub struct StatusLists {
    config: StatusConfig,
    store: Store,
    keys: SharedKeys,
    block: Arc<tokio::sync::Mutex<Block>>,
    built: Mutex<HashMap<u64, BuiltList>>,
}

impl StatusLists {
    /// Builds the service.
    pub fn new(config: StatusConfig, store: Store, keys: SharedKeys) -> Self {
        Self {
            config,
            store,
            keys,
            block: Arc::default(),
            built: Mutex::new(HashMap::new()),
        }
    }

    /// The URI of list `id`.
    pub fn uri(&self, id: u64) -> String {
        format!("{}/status/{id}", self.config.base_url.trim_end_matches('/'))
    }

    /// The list id a URI of [`StatusLists::uri`] names, `None` for any
    /// other URI.
    pub fn list_id(&self, uri: &str) -> Option<u64> {
        let prefix = self.uri(0);
        let prefix = prefix.strip_suffix('0')?;
        uri.strip_prefix(prefix)?.parse().ok()
    }

    /// The cache lifetime verifiers are told.
    pub fn ttl(&self) -> u64 {
        self.config.ttl
    }

    /// Hands out the next entry for a new token.
    pub async fn allocate(&self, now: u64) -> Result<StatusRef, BrokerError> {
        let mut block = self.block.lock().await;
        let usable = |r: &Option<Reserved>| r.filter(|r| r.next < r.end && r.fresh());
        let mut current = match usable(&block.current) {
            Some(c) => c,
            None => match usable(&block.spare.take()) {
                Some(spare) => spare,
                // No spare ready (start, or faster than the background
                // reservation): reserve now, as the first token must.
                None => {
                    reserve(
                        &self.store,
                        block.size.max(BLOCK),
                        self.config.list_size,
                        now,
                    )
                    .await?
                }
            },
        };
        let idx = current.next;
        current.next += 1;
        block.current = Some(current);
        let half = (current.end - current.first) / 2;
        if current.end - current.next < half.max(1) && block.spare.is_none() && !block.fetching {
            block.fetching = true;
            block.adapt(&current);
            let (slot, store, list_size, size) = (
                Arc::clone(&self.block),
                self.store.clone(),
                self.config.list_size,
                block.size,
            );
            tokio::spawn(async move {
                let reserved = reserve(&store, size, list_size, now).await;
                let mut block = slot.lock().await;
                block.fetching = false;
                match reserved {
                    Ok(spare) => block.spare = Some(spare),
                    // The next token reserves in line and reports it.
                    Err(e) => tracing::warn!(
                        error = %e,
                        "reserving status-list entries in advance failed"
                    ),
                }
            });
        }
        Ok(StatusRef {
            idx,
            uri: self.uri(current.list),
        })
    }

    /// Forgets built lists so the next request rebuilds them (after a
    /// revocation made by this process).
    pub fn invalidate(&self) {
        if let Ok(mut built) = self.built.lock() {
            built.clear();
        }
    }

    /// The signed list `id` (a `statuslist+cwt`), or `None` when no such list exists.
    pub async fn signed(&self, id: u64, now: u64) -> Result<Option<Arc<Vec<u8>>>, BrokerError> {
        if let Ok(built) = self.built.lock()
            && let Some((at, bytes)) = built.get(&id)
            && at.elapsed() < REBUILD_AFTER
        {
            return Ok(Some(bytes.clone()));
        }
        let Some(size) = self.store.status_list_size(id).await? else {
            return Ok(None);
        };
        let mut list = StatusList::new(STATUS_BITS, size)?;
        let since = now.saturating_sub(EXPIRED_KEPT_SECS);
        for (idx, status) in self.store.status_entries(id, since).await? {
            let value = if status == STATUS_SUSPENDED {
                STATUS_SUSPENDED
            } else {
                STATUS_INVALID
            };
            list.set(idx, value)?;
        }
        let ring = self.keys.ring();
        let key = ring.signing_key(now).ok_or_else(|| {
            BrokerError::Invalid("no signing key is active; check `certbound keys list`".into())
        })?;
        let token = StatusListToken {
            sub: self.uri(id),
            iat: now,
            exp: Some(now.saturating_add(self.config.ttl.saturating_mul(2).max(300))),
            ttl: Some(self.config.ttl),
            list,
        };
        let bytes = Arc::new(mint_status_list(&token, &key.kid, &key.signer)?);
        if let Ok(mut built) = self.built.lock() {
            built.insert(id, (Instant::now(), bytes.clone()));
        }
        Ok(Some(bytes))
    }
}

/// Reserves the next `size` entries in the store (fewer at the end of a list).
async fn reserve(
    store: &Store,
    size: u64,
    list_size: u64,
    now: u64,
) -> Result<Reserved, BrokerError> {
    let (list, first, count) = store.reserve_status_entries(size, list_size, now).await?;
    Ok(Reserved {
        list,
        first,
        next: first,
        end: first + count,
        at: Instant::now(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn used(age: Duration) -> Reserved {
        let at = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
        Reserved {
            list: 1,
            first: 0,
            next: 64,
            end: 128,
            at,
        }
    }

    #[test]
    fn blocks_grow_while_they_go_fast_and_shrink_when_they_last() {
        let mut block = Block::default();
        block.adapt(&used(Duration::ZERO));
        assert_eq!(block.size, 2 * BLOCK);
        for _ in 0..20 {
            block.adapt(&used(Duration::ZERO));
        }
        assert_eq!(block.size, MAX_BLOCK, "capped");
        block.adapt(&used(Duration::from_secs(10)));
        assert_eq!(block.size, MAX_BLOCK, "a moderate pace keeps the size");
        if Instant::now()
            .checked_sub(Duration::from_secs(120))
            .is_some()
        {
            block.adapt(&used(Duration::from_secs(120)));
            assert_eq!(block.size, MAX_BLOCK / 2);
            for _ in 0..20 {
                block.adapt(&used(Duration::from_secs(120)));
            }
            assert_eq!(block.size, BLOCK, "never below the minimum");
        }
    }
}
