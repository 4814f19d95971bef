//! Shared by the robustness tests of certbound-proto and certbound-verify
//! (the latter includes this file with `#[path]`): a deterministic mutator
//! that knows CBOR heads, a panic guard, and the COSE_Sign1 signed parts.
#![allow(dead_code)]

use std::panic::{AssertUnwindSafe, catch_unwind};

use ciborium::Value;

/// Runs `f`, turning a panic into an error that names the input.
pub fn guarded(what: &str, input: &[u8], f: impl FnOnce()) -> Result<(), String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|e| {
        let msg = e
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| e.downcast_ref::<&str>().copied())
            .unwrap_or("(non-string panic)");
        format!("{what} panicked: {msg}\n  input: {}", hex::encode(input))
    })
}

/// xorshift64: tiny, deterministic, good enough to pick mutations.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

/// Bytes that matter to CBOR heads: boundaries of the additional info,
/// indefinite/break, the tags and simple values we use.
pub const INTERESTING: [u8; 16] = [
    0x00, 0x01, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1f, 0x20, 0x40, 0x7f, 0x80, 0xa0, 0xd2, 0xf6, 0xff,
];

/// Offsets of every CBOR head in a well-formed item, descending into byte
/// strings that hold CBOR (protected header, payload, nested COSE objects).
pub fn heads(b: &[u8], base: usize, pos: &mut usize, out: &mut Vec<usize>) -> Option<()> {
    let start = *pos;
    let initial = *b.get(start)?;
    *pos += 1;
    out.push(base + start);
    let (major, info) = (initial >> 5, initial & 0x1f);
    let arg = match info {
        0..=23 => u64::from(info),
        24..=27 => {
            let n = 1usize << (info - 24);
            let bytes = b.get(*pos..*pos + n)?;
            *pos += n;
            bytes.iter().fold(0u64, |a, x| (a << 8) | u64::from(*x))
        }
        _ => return None,
    };
    match major {
        0 | 1 | 7 => {}
        2 | 3 => {
            let len = usize::try_from(arg).ok()?;
            let body = b.get(*pos..pos.checked_add(len)?)?;
            if major == 2 {
                let (mut p, mut inner) = (0, Vec::new());
                if heads(body, base + *pos, &mut p, &mut inner).is_some() && p == len {
                    out.extend(inner);
                }
            }
            *pos += len;
        }
        4 | 5 => {
            let items = if major == 5 { arg * 2 } else { arg };
            for _ in 0..items {
                heads(b, base, pos, out)?;
            }
        }
        _ => heads(b, base, pos, out)?,
    }
    Some(())
}

pub fn head_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    heads(bytes, 0, &mut 0, &mut out);
    out
}

/// Tweaks the CBOR head at `at`: its length/argument, its width (non-shortest
/// forms), indefinite length, a huge 64-bit length, or its major type.
pub fn tweak_head(rng: &mut Rng, out: &mut Vec<u8>, at: usize) {
    let Some(&initial) = out.get(at) else { return };
    let (major, info) = (initial & 0xe0, initial & 0x1f);
    let arg_len = match info {
        24..=27 => 1usize << (info - 24),
        _ => 0,
    };
    match rng.below(7) {
        // argument +- 1 (the most common off-by-one in length handling)
        0 | 1 => {
            let delta: i8 = if rng.below(2) == 0 { 1 } else { -1 };
            if arg_len == 0 {
                out[at] = major | (info as i8 + delta).rem_euclid(32) as u8;
            } else if let Some(last) = out.get_mut(at + arg_len) {
                *last = last.wrapping_add_signed(delta);
            }
        }
        // any additional-information value, reserved and indefinite included
        2 => out[at] = major | rng.below(32) as u8,
        // widen to a non-shortest 1-byte argument
        3 if arg_len == 0 && info < 24 => {
            out[at] = major | 24;
            out.insert(at + 1, info);
        }
        // a huge 64-bit argument
        4 => {
            let mut head = vec![major | 27, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
            head.push(rng.byte());
            out.splice(at..(at + 1 + arg_len).min(out.len()), head);
        }
        // 2^32 or 2^31-1: past any input but without the top bits set
        5 => {
            let arg: [u8; 4] = if rng.below(2) == 0 {
                [0x7f, 0xff, 0xff, 0xff]
            } else {
                [0xff, 0xff, 0xff, 0xff]
            };
            let mut head = vec![major | 26];
            head.extend(arg);
            out.splice(at..(at + 1 + arg_len).min(out.len()), head);
        }
        // another major type, same argument
        _ => out[at] = ((rng.below(8) as u8) << 5) | info,
    }
}

/// One to three stacked mutations of `orig`: bit flips, byte overwrites,
/// insertions (random, [`INTERESTING`] or a `dict` token), deletions,
/// truncation, splices from `pool`, CBOR head tweaks at `heads`, repeats.
pub fn mutate(
    rng: &mut Rng,
    orig: &[u8],
    heads: &[usize],
    pool: &[Vec<u8>],
    dict: &[&[u8]],
) -> Vec<u8> {
    let mut out = orig.to_vec();
    let rounds = [1, 1, 1, 2, 2, 3][rng.below(6)];
    for _ in 0..rounds {
        if out.is_empty() {
            out.push(rng.byte());
            continue;
        }
        let at = rng.below(out.len());
        match rng.below(11) {
            0 | 1 => out[at] ^= 1 << rng.below(8),
            2 => out[at] = INTERESTING[rng.below(INTERESTING.len())],
            3 => out[at] = rng.byte(),
            4 if !dict.is_empty() && rng.below(2) == 0 => {
                let token = dict[rng.below(dict.len())];
                out.splice(at..at, token.iter().copied());
            }
            4 => {
                let n = 1 + rng.below(4);
                for _ in 0..n {
                    let b = if rng.below(2) == 0 {
                        rng.byte()
                    } else {
                        INTERESTING[rng.below(INTERESTING.len())]
                    };
                    out.insert(at, b);
                }
            }
            5 => {
                let n = (1 + rng.below(8)).min(out.len() - at);
                out.drain(at..at + n);
            }
            6 => out.truncate(at),
            7 => {
                // splice: a chunk of another sample, inserted or overwriting
                let other = &pool[rng.below(pool.len())];
                let from = rng.below(other.len());
                let n = (1 + rng.below(32)).min(other.len() - from);
                let chunk = &other[from..from + n];
                if rng.below(2) == 0 {
                    out.splice(at..at, chunk.iter().copied());
                } else {
                    let end = (at + n).min(out.len());
                    out.splice(at..end, chunk.iter().copied());
                }
            }
            8 | 9 if !heads.is_empty() => {
                let head = heads[rng.below(heads.len())];
                tweak_head(rng, &mut out, head);
            }
            _ => {
                // repeat a chunk of itself
                let n = (1 + rng.below(16)).min(out.len() - at);
                let chunk = out[at..at + n].to_vec();
                out.splice(at..at, chunk);
            }
        }
    }
    out
}

/// The three signed parts of a COSE_Sign1 (tag 18, optionally inside tag 61).
#[derive(Debug, PartialEq, Eq)]
pub struct Parts {
    pub protected: Vec<u8>,
    pub payload: Vec<u8>,
    pub signature: Vec<u8>,
}

pub fn sign1_parts(bytes: &[u8]) -> Option<Parts> {
    let mut v: Value = ciborium::de::from_reader(bytes).ok()?;
    if let Value::Tag(61, inner) = v {
        v = *inner;
    }
    let Value::Tag(18, inner) = v else {
        return None;
    };
    let Value::Array(items) = *inner else {
        return None;
    };
    match <[Value; 4]>::try_from(items).ok()? {
        [
            Value::Bytes(protected),
            _,
            Value::Bytes(payload),
            Value::Bytes(signature),
        ] => Some(Parts {
            protected,
            payload,
            signature,
        }),
        _ => None,
    }
}
