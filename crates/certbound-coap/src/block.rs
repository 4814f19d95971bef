//! Block-wise transfer (RFC 7959): the Block1/Block2 option value, slicing of
//! large response bodies, and server-side reassembly of Block1 request bodies.
//!
//! Everything here is pure: time is passed in as [`Instant`] values.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Smallest block size exponent (16 bytes).
pub(crate) const MIN_SZX: u8 = 0;
/// Largest block size exponent usable over UDP (1024 bytes); 7 is BERT (RFC 8323).
pub(crate) const MAX_SZX: u8 = 6;

/// A decoded Block1 or Block2 option value: `NUM << 4 | M << 3 | SZX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlockOption {
    /// Block number (20 bits at most).
    pub num: u32,
    /// More flag: further blocks follow.
    pub more: bool,
    /// Size exponent: block size is `2^(szx + 4)`.
    pub szx: u8,
}

/// Why a block option value was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BlockError {
    /// The option value is longer than 3 bytes.
    TooLong,
    /// SZX 7 (BERT) is only defined for CoAP over reliable transports.
    ReservedSzx,
}

impl BlockOption {
    /// Largest block number that fits the 3-byte option value.
    pub const MAX_NUM: u32 = (1 << 20) - 1;

    /// Block size in bytes.
    pub fn size(&self) -> usize {
        size_of_szx(self.szx)
    }

    /// Byte offset of this block in the whole body.
    pub fn offset(&self) -> usize {
        (self.num as usize).saturating_mul(self.size())
    }

    /// Encodes the option value as a minimal 0-3 byte unsigned integer.
    pub fn encode(&self) -> Vec<u8> {
        let value = (self.num.min(Self::MAX_NUM) << 4)
            | (u32::from(self.more) << 3)
            | u32::from(self.szx.min(MAX_SZX));
        let bytes = value.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        bytes[skip..].to_vec()
    }

    /// Decodes an option value received from the network.
    pub fn decode(value: &[u8]) -> Result<Self, BlockError> {
        if value.len() > 3 {
            return Err(BlockError::TooLong);
        }
        let raw = value.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b));
        // `raw & 7` is at most 7, so the cast cannot truncate.
        let szx = (raw & 0x7) as u8;
        if szx == 7 {
            return Err(BlockError::ReservedSzx);
        }
        Ok(BlockOption {
            num: raw >> 4,
            more: raw & 0x8 != 0,
            szx,
        })
    }
}

/// Block size in bytes for a size exponent.
pub(crate) fn size_of_szx(szx: u8) -> usize {
    1usize << (usize::from(szx.min(MAX_SZX)) + 4)
}

/// The largest size exponent whose block size does not exceed `size`
/// (clamped to 16..=1024 bytes).
pub(crate) fn szx_for_size(size: usize) -> u8 {
    let mut szx = MAX_SZX;
    while szx > MIN_SZX && size_of_szx(szx) > size {
        szx -= 1;
    }
    szx
}

/// Block `num` of `body` with size exponent `szx`, and whether more follow.
///
/// Returns `None` when the block starts beyond the end of the body (block 0
/// of an empty body is valid and empty).
pub(crate) fn slice(body: &[u8], num: u32, szx: u8) -> Option<(&[u8], bool)> {
    let size = size_of_szx(szx);
    let start = (num as usize).checked_mul(size)?;
    if start > body.len() || (start == body.len() && num > 0) {
        return None;
    }
    let end = start.saturating_add(size).min(body.len());
    Some((&body[start..end], end < body.len()))
}

/// What the server answers to one received Block1 block.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Block1Outcome {
    /// More blocks are expected: answer 2.31 Continue with this Block1 option.
    Continue(BlockOption),
    /// The body is complete: hand it to the handler and echo this Block1 option.
    Complete(Vec<u8>, BlockOption),
    /// A block is missing or the transfer state expired: answer 4.08.
    Incomplete,
    /// The body exceeds the limit: answer 4.13 with Size1 = the limit.
    TooLarge,
    /// The block itself is malformed: answer 4.00 with this diagnostic.
    BadRequest(&'static str),
}

struct Transfer {
    body: Vec<u8>,
    updated: Instant,
}

/// Reassembles Block1 request bodies, one transfer per key (peer + request URI).
pub(crate) struct Block1Reassembly<K> {
    transfers: HashMap<K, Transfer>,
    max_body: usize,
    lifetime: Duration,
    capacity: usize,
}

impl<K: Eq + Hash + Clone> Block1Reassembly<K> {
    /// A reassembly table accepting bodies up to `max_body` bytes, dropping
    /// transfers idle for `lifetime`, holding at most `capacity` transfers.
    pub fn new(max_body: usize, lifetime: Duration, capacity: usize) -> Self {
        Block1Reassembly {
            transfers: HashMap::new(),
            max_body,
            lifetime,
            capacity: capacity.max(1),
        }
    }

    /// Number of transfers in progress.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.transfers.len()
    }

    /// Feeds one block. `size1` is the Size1 option of the request, if any;
    /// `preferred_szx` is the largest block size this server wants.
    pub fn on_block(
        &mut self,
        key: K,
        block: BlockOption,
        payload: &[u8],
        size1: Option<u64>,
        preferred_szx: u8,
        now: Instant,
    ) -> Block1Outcome {
        self.expire(now);
        let limit = self.max_body as u64;
        if size1.is_some_and(|s| s > limit) {
            self.transfers.remove(&key);
            return Block1Outcome::TooLarge;
        }
        if block.more && payload.len() != block.size() {
            self.transfers.remove(&key);
            return Block1Outcome::BadRequest(
                "a Block1 block with the M bit set must carry exactly the block size; resend the body from block 0",
            );
        }
        if payload.len() > block.size() {
            self.transfers.remove(&key);
            return Block1Outcome::BadRequest(
                "a Block1 block carries more bytes than its block size; resend the body from block 0",
            );
        }
        let offset = block.offset();
        if block.num == 0 {
            self.make_room(&key);
            self.transfers.insert(
                key.clone(),
                Transfer {
                    body: Vec::new(),
                    updated: now,
                },
            );
        }
        let Some(transfer) = self.transfers.get_mut(&key) else {
            return Block1Outcome::Incomplete;
        };
        if transfer.body.len() != offset {
            self.transfers.remove(&key);
            return Block1Outcome::Incomplete;
        }
        if offset.saturating_add(payload.len()) > self.max_body {
            self.transfers.remove(&key);
            return Block1Outcome::TooLarge;
        }
        transfer.body.extend_from_slice(payload);
        transfer.updated = now;
        if block.more {
            Block1Outcome::Continue(BlockOption {
                num: block.num,
                more: true,
                szx: block.szx.min(preferred_szx),
            })
        } else {
            let body = self
                .transfers
                .remove(&key)
                .map(|t| t.body)
                .unwrap_or_default();
            Block1Outcome::Complete(body, block)
        }
    }

    fn expire(&mut self, now: Instant) {
        let lifetime = self.lifetime;
        self.transfers
            .retain(|_, t| now.saturating_duration_since(t.updated) < lifetime);
    }

    fn make_room(&mut self, incoming: &K) {
        if self.transfers.contains_key(incoming) || self.transfers.len() < self.capacity {
            return;
        }
        let oldest = self
            .transfers
            .iter()
            .min_by_key(|(_, t)| t.updated)
            .map(|(k, _)| k.clone());
        if let Some(k) = oldest {
            self.transfers.remove(&k);
        }
    }
}

/// A response body kept so later Block2 requests see the same representation.
#[derive(Debug, Clone)]
pub(crate) struct CachedBody {
    /// The response as produced by the handler.
    pub response: crate::Response,
    /// Entity tag sent with every block of this representation.
    pub etag: Vec<u8>,
    /// Bytes the peer may still be sent (unverified address), if limited.
    pub allowance: Option<usize>,
    created: Instant,
}

/// Bounded, expiring cache of large response bodies served with Block2.
pub(crate) struct Block2Cache<K> {
    entries: HashMap<K, CachedBody>,
    lifetime: Duration,
    capacity: usize,
}

impl<K: Eq + Hash + Clone> Block2Cache<K> {
    /// A cache holding at most `capacity` bodies for `lifetime` each.
    pub fn new(lifetime: Duration, capacity: usize) -> Self {
        Block2Cache {
            entries: HashMap::new(),
            lifetime,
            capacity: capacity.max(1),
        }
    }

    /// The cached body for `key`, if present and not expired.
    pub fn get(&mut self, key: &K, now: Instant) -> Option<&CachedBody> {
        let lifetime = self.lifetime;
        self.entries
            .retain(|_, e| now.saturating_duration_since(e.created) < lifetime);
        self.entries.get(key)
    }

    /// Stores a body (replacing any earlier one for `key`) and returns it.
    pub fn insert(
        &mut self,
        key: K,
        response: crate::Response,
        etag: Vec<u8>,
        allowance: Option<usize>,
        now: Instant,
    ) -> &CachedBody {
        if !self.entries.contains_key(&key) && self.entries.len() >= self.capacity {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.created)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.entries.remove(&k);
            }
        }
        let cached = CachedBody {
            response,
            etag,
            allowance,
            created: now,
        };
        match self.entries.entry(key) {
            std::collections::hash_map::Entry::Occupied(mut slot) => {
                slot.insert(cached);
                slot.into_mut()
            }
            std::collections::hash_map::Entry::Vacant(slot) => slot.insert(cached),
        }
    }

    /// Lowers the allowance of the body for `key` by `sent` bytes.
    pub fn spend(&mut self, key: &K, sent: usize) {
        if let Some(a) = self.entries.get_mut(key).and_then(|e| e.allowance.as_mut()) {
            *a = a.saturating_sub(sent);
        }
    }

    /// Forgets the body for `key` (after its last block was served).
    pub fn remove(&mut self, key: &K) {
        self.entries.remove(key);
    }

    /// Number of bodies kept.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_encode_decode_table() {
        // (num, more, szx, encoded bytes)
        let table: &[(u32, bool, u8, &[u8])] = &[
            (0, false, 0, &[]),
            (0, false, 2, &[0x02]),
            (0, true, 6, &[0x0e]),
            (1, false, 6, &[0x16]),
            (1, true, 2, &[0x1a]),
            (15, true, 6, &[0xfe]),
            (16, false, 0, &[0x01, 0x00]),
            (4095, true, 6, &[0xff, 0xfe]),
            (4096, false, 4, &[0x01, 0x00, 0x04]),
            (BlockOption::MAX_NUM, true, 6, &[0xff, 0xff, 0xfe]),
        ];
        for &(num, more, szx, bytes) in table {
            let opt = BlockOption { num, more, szx };
            assert_eq!(opt.encode(), bytes, "encode {opt:?}");
            assert_eq!(BlockOption::decode(bytes), Ok(opt), "decode {bytes:?}");
        }
    }

    #[test]
    fn option_decode_rejects_bad_values() {
        assert_eq!(BlockOption::decode(&[1, 2, 3, 4]), Err(BlockError::TooLong));
        assert_eq!(BlockOption::decode(&[0x07]), Err(BlockError::ReservedSzx));
        // Leading zero bytes are tolerated (non-minimal but unambiguous).
        assert_eq!(
            BlockOption::decode(&[0x00, 0x16]),
            Ok(BlockOption {
                num: 1,
                more: false,
                szx: 6
            })
        );
    }

    #[test]
    fn sizes_and_szx() {
        assert_eq!(size_of_szx(0), 16);
        assert_eq!(size_of_szx(6), 1024);
        assert_eq!(szx_for_size(1024), 6);
        assert_eq!(szx_for_size(1000), 5);
        assert_eq!(szx_for_size(64), 2);
        assert_eq!(szx_for_size(1), 0);
        assert_eq!(szx_for_size(1 << 20), 6);
    }

    #[test]
    fn block2_slicing() {
        let body: Vec<u8> = (0..100u8).collect();
        assert_eq!(slice(&body, 0, 2), Some((&body[0..64], true)));
        assert_eq!(slice(&body, 1, 2), Some((&body[64..100], false)));
        assert_eq!(slice(&body, 2, 2), None);
        assert_eq!(slice(&body, 0, 6), Some((&body[..], false)));
        let exact: Vec<u8> = vec![7; 128];
        assert_eq!(slice(&exact, 1, 2), Some((&exact[64..], false)));
        assert_eq!(slice(&exact, 2, 2), None);
        assert_eq!(slice(&[], 0, 0), Some((&[][..], false)));
        assert_eq!(slice(&body, u32::MAX, 6), None);
    }

    fn blk(num: u32, more: bool, szx: u8) -> BlockOption {
        BlockOption { num, more, szx }
    }

    #[test]
    fn block1_reassembles_in_order() {
        let now = Instant::now();
        let mut r = Block1Reassembly::new(1000, Duration::from_secs(60), 8);
        let data: Vec<u8> = (0..40u8).collect();
        let out = r.on_block("k", blk(0, true, 0), &data[0..16], Some(40), 6, now);
        assert_eq!(out, Block1Outcome::Continue(blk(0, true, 0)));
        let out = r.on_block("k", blk(1, true, 0), &data[16..32], None, 6, now);
        assert_eq!(out, Block1Outcome::Continue(blk(1, true, 0)));
        let out = r.on_block("k", blk(2, false, 0), &data[32..], None, 6, now);
        assert_eq!(out, Block1Outcome::Complete(data.clone(), blk(2, false, 0)));
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn block1_server_asks_smaller_blocks() {
        let now = Instant::now();
        let mut r = Block1Reassembly::new(1000, Duration::from_secs(60), 8);
        let data = vec![1u8; 64 + 16 + 5];
        let out = r.on_block(1, blk(0, true, 2), &data[0..64], None, 0, now);
        assert_eq!(out, Block1Outcome::Continue(blk(0, true, 0)));
        // The client continues at num = 64 / 16 = 4 with 16-byte blocks.
        let out = r.on_block(1, blk(4, true, 0), &data[64..80], None, 0, now);
        assert_eq!(out, Block1Outcome::Continue(blk(4, true, 0)));
        let out = r.on_block(1, blk(5, false, 0), &data[80..], None, 0, now);
        assert_eq!(out, Block1Outcome::Complete(data, blk(5, false, 0)));
    }

    #[test]
    fn block1_gap_gives_incomplete() {
        let now = Instant::now();
        let mut r = Block1Reassembly::new(1000, Duration::from_secs(60), 8);
        let b = [0u8; 16];
        assert!(matches!(
            r.on_block("k", blk(0, true, 0), &b, None, 6, now),
            Block1Outcome::Continue(_)
        ));
        assert_eq!(
            r.on_block("k", blk(2, true, 0), &b, None, 6, now),
            Block1Outcome::Incomplete
        );
        // The failed transfer is forgotten; a later block cannot continue it.
        assert_eq!(
            r.on_block("k", blk(1, false, 0), &b, None, 6, now),
            Block1Outcome::Incomplete
        );
        // A middle block without any transfer is also incomplete.
        assert_eq!(
            r.on_block("other", blk(3, false, 0), &b, None, 6, now),
            Block1Outcome::Incomplete
        );
    }

    #[test]
    fn block1_expired_transfer_is_incomplete() {
        let t0 = Instant::now();
        let mut r = Block1Reassembly::new(1000, Duration::from_secs(10), 8);
        let b = [0u8; 16];
        let _ = r.on_block("k", blk(0, true, 0), &b, None, 6, t0);
        let later = t0 + Duration::from_secs(11);
        assert_eq!(
            r.on_block("k", blk(1, false, 0), &b, None, 6, later),
            Block1Outcome::Incomplete
        );
    }

    #[test]
    fn block1_too_large() {
        let now = Instant::now();
        let mut r = Block1Reassembly::new(40, Duration::from_secs(60), 8);
        let b = [0u8; 16];
        // Announced by Size1 up front.
        assert_eq!(
            r.on_block("a", blk(0, true, 0), &b, Some(41), 6, now),
            Block1Outcome::TooLarge
        );
        // Discovered while receiving.
        let _ = r.on_block("b", blk(0, true, 0), &b, None, 6, now);
        let _ = r.on_block("b", blk(1, true, 0), &b, None, 6, now);
        assert_eq!(
            r.on_block("b", blk(2, true, 0), &b, None, 6, now),
            Block1Outcome::TooLarge
        );
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn block1_bad_block_sizes() {
        let now = Instant::now();
        let mut r = Block1Reassembly::new(1000, Duration::from_secs(60), 8);
        assert!(matches!(
            r.on_block("k", blk(0, true, 0), &[0u8; 10], None, 6, now),
            Block1Outcome::BadRequest(_)
        ));
        assert!(matches!(
            r.on_block("k", blk(0, false, 0), &[0u8; 17], None, 6, now),
            Block1Outcome::BadRequest(_)
        ));
    }

    #[test]
    fn block1_capacity_evicts_oldest() {
        let t0 = Instant::now();
        let mut r = Block1Reassembly::new(1000, Duration::from_secs(60), 2);
        let b = [0u8; 16];
        let _ = r.on_block(1, blk(0, true, 0), &b, None, 6, t0);
        let _ = r.on_block(2, blk(0, true, 0), &b, None, 6, t0 + Duration::from_secs(1));
        let _ = r.on_block(3, blk(0, true, 0), &b, None, 6, t0 + Duration::from_secs(2));
        assert_eq!(r.len(), 2);
        let later = t0 + Duration::from_secs(3);
        assert_eq!(
            r.on_block(1, blk(1, false, 0), &b, None, 6, later),
            Block1Outcome::Incomplete
        );
        assert!(matches!(
            r.on_block(2, blk(1, false, 0), &b, None, 6, later),
            Block1Outcome::Complete(..)
        ));
    }

    #[test]
    fn block2_cache_expires_and_is_bounded() {
        let t0 = Instant::now();
        let mut c = Block2Cache::new(Duration::from_secs(5), 2);
        let resp = crate::Response::new(crate::ResponseType::Content);
        c.insert("a", resp.clone(), vec![1], None, t0);
        c.insert(
            "b",
            resp.clone(),
            vec![2],
            None,
            t0 + Duration::from_secs(1),
        );
        c.insert("c", resp, vec![3], None, t0 + Duration::from_secs(2));
        let now = t0 + Duration::from_secs(3);
        assert!(c.get(&"a", now).is_none());
        assert_eq!(c.get(&"b", now).map(|e| e.etag.clone()), Some(vec![2]));
        assert!(c.get(&"c", t0 + Duration::from_secs(8)).is_none());
    }
}
