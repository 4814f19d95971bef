use std::collections::BTreeMap;
use std::sync::Arc;

use certbound_proto::telemetry::{self, TelemetryPayload};

use super::*;
use crate::{AcceptedTelemetry, TelemetryConfig, TelemetryStats, TelemetryVerifier, VerifyError};

const DATA: &[u8] = b"{\"t\":21.5}";

/// A device: its key, its name (token `sub`) and its current token.
struct Dev {
    key: P256Signer,
    name: &'static str,
    cti: Vec<u8>,
    token: Vec<u8>,
}

impl Dev {
    /// Device `n` (key scalar `[n; 32]`) with a token whose cti is `[cti; 16]`.
    fn new(n: u8, name: &'static str, cti: u8) -> Self {
        let key = P256Signer::from_scalar(&[n; 32]).unwrap();
        let mut c = claims(&key);
        c.sub = Some(name.into());
        c.cti = Some(vec![cti; 16]);
        Self::with_claims(key, name, c)
    }

    fn with_claims(key: P256Signer, name: &'static str, c: Claims) -> Self {
        let token = mint(&c, &broker());
        Self {
            key,
            name,
            cti: c.cti.unwrap_or_default(),
            token,
        }
    }

    /// A message with `seq`, signed by this device for its token.
    fn msg(&self, seq: u64) -> Vec<u8> {
        seal(&self.token, &self.cti, seq, &self.key)
    }
}

fn seal(token: &[u8], cti: &[u8], seq: u64, key: &P256Signer) -> Vec<u8> {
    let payload = TelemetryPayload {
        seq,
        timestamp_ms: (NOW * 1000).wrapping_add(seq),
        data: DATA.to_vec(),
        token_cti: cti.to_vec(),
    };
    telemetry::seal(token, &payload, key).unwrap()
}

fn sensor() -> Dev {
    Dev::new(9, "sensor-1", 1)
}

fn tv() -> TelemetryVerifier {
    TelemetryVerifier::new(verifier(), TelemetryConfig::default())
}

fn ok(v: &TelemetryVerifier, msg: &[u8]) -> AcceptedTelemetry {
    v.verify(msg, None, NOW).unwrap()
}

fn code(v: &TelemetryVerifier, msg: &[u8]) -> &'static str {
    v.verify(msg, None, NOW).unwrap_err().reason_code()
}

fn rejected(pairs: &[(&'static str, u64)]) -> BTreeMap<&'static str, u64> {
    pairs.iter().copied().collect()
}

#[test]
fn config_defaults_and_send_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<TelemetryVerifier>();
    let c = TelemetryConfig::default();
    assert_eq!(c.window, 64);
    assert_eq!(c.token_cache_capacity, 100_000);
    assert_eq!(c.required_scopes, vec!["telemetry:write".to_string()]);
    assert_eq!(tv().stats(), TelemetryStats::default());
}

#[test]
fn message_is_accepted() {
    let d = sensor();
    let v = tv();
    let got = v.verify(&d.msg(7), Some("sensor-1"), NOW).unwrap();
    assert_eq!(
        got,
        AcceptedTelemetry {
            device_id: "sensor-1".into(),
            seq: 7,
            timestamp_ms: NOW * 1000 + 7,
            data: DATA.to_vec(),
            token_cti: vec![1; 16],
            scope: "telemetry:write telemetry:read".into(),
        }
    );
    let s = v.stats();
    assert_eq!((s.accepted, s.rejected.len()), (1, 0));
}

#[test]
fn replayed_bytes_are_refused() {
    let d = sensor();
    let v = tv();
    let msg = d.msg(3);
    ok(&v, &msg);
    let err = v.verify(&msg, None, NOW).unwrap_err();
    assert_eq!(
        err,
        VerifyError::Replay {
            device: "sensor-1".into(),
            seq: 3
        }
    );
    assert_eq!(err.reason_code(), "replay");
    assert!(err.to_string().contains("never reuse"), "{err}");
    let s = v.stats();
    assert_eq!(s.accepted, 1);
    assert_eq!(s.rejected, rejected(&[("replay", 1)]));
}

#[test]
fn seq_zero_first_is_accepted_once() {
    let d = sensor();
    let v = tv();
    assert_eq!(ok(&v, &d.msg(0)).seq, 0);
    assert_eq!(code(&v, &d.msg(0)), "replay");
    ok(&v, &d.msg(1));
}

#[test]
fn out_of_order_within_window_is_accepted_once() {
    let d = sensor();
    let v = tv();
    ok(&v, &d.msg(10));
    ok(&v, &d.msg(5));
    // New bytes (another signature), same seq: still a replay.
    assert_eq!(code(&v, &d.msg(5)), "replay");
    ok(&v, &d.msg(4));
    ok(&v, &d.msg(11));
    assert_eq!(code(&v, &d.msg(10)), "replay");
    assert_eq!(code(&v, &d.msg(4)), "replay");
    ok(&v, &d.msg(9));
}

#[test]
fn older_than_window_is_refused() {
    let d = sensor();
    let v = tv();
    ok(&v, &d.msg(100));
    // 64 behind is outside a window of 64; 63 behind is inside.
    assert_eq!(code(&v, &d.msg(36)), "replay");
    ok(&v, &d.msg(37));
    assert_eq!(code(&v, &d.msg(0)), "replay");

    // A window of 1 (or 0) only accepts increasing seqs.
    let strict = TelemetryVerifier::new(
        verifier(),
        TelemetryConfig {
            window: 1,
            ..TelemetryConfig::default()
        },
    );
    ok(&strict, &d.msg(5));
    assert_eq!(code(&strict, &d.msg(4)), "replay");
    ok(&strict, &d.msg(6));

    // A window over 64 is treated as 64 (the bitmap's width).
    let wide = TelemetryVerifier::new(
        verifier(),
        TelemetryConfig {
            window: 1000,
            ..TelemetryConfig::default()
        },
    );
    ok(&wide, &d.msg(100));
    assert_eq!(code(&wide, &d.msg(36)), "replay");
    ok(&wide, &d.msg(37));
}

#[test]
fn huge_jump_then_old_seq_is_refused() {
    let d = sensor();
    let v = tv();
    ok(&v, &d.msg(1));
    ok(&v, &d.msg(1_000_000));
    assert_eq!(code(&v, &d.msg(2)), "replay");
    ok(&v, &d.msg(999_999));
    ok(&v, &d.msg(u64::MAX));
    assert_eq!(code(&v, &d.msg(u64::MAX)), "replay");
    assert_eq!(code(&v, &d.msg(1_000_001)), "replay");
    ok(&v, &d.msg(u64::MAX - 63));
}

#[test]
fn body_signed_by_another_device_is_pop() {
    let a = sensor();
    let b = Dev::new(8, "sensor-2", 2);
    let v = tv();
    // A signs with its own key but attaches B's token (and B's cti).
    let msg = seal(&b.token, &b.cti, 1, &a.key);
    let err = v.verify(&msg, None, NOW).unwrap_err();
    assert_eq!(err, VerifyError::BadProofOfPossession);
    assert_eq!(err.reason_code(), "pop");
    // Neither device got sequence state from it.
    ok(&v, &a.msg(1));
    ok(&v, &b.msg(1));
}

#[test]
fn body_naming_another_token_is_telemetry_cti() {
    let d = sensor();
    let v = tv();
    let msg = seal(&d.token, &[2; 16], 1, &d.key);
    let err = v.verify(&msg, None, NOW).unwrap_err();
    assert_eq!(err, VerifyError::TelemetryTokenMismatch);
    assert_eq!(err.reason_code(), "telemetry_cti");
    ok(&v, &d.msg(1));
}

#[test]
fn tampered_data_is_pop() {
    let d = sensor();
    let v = tv();
    let mut msg = d.msg(1);
    let at = msg.windows(DATA.len()).position(|w| w == DATA).unwrap();
    msg[at + 5] ^= 0x01;
    let err = v.verify(&msg, None, NOW).unwrap_err();
    assert_eq!(err, VerifyError::BadProofOfPossession);
    ok(&v, &d.msg(1));
}

#[test]
fn expired_token_is_refused_even_when_cached() {
    let d = sensor();
    let v = tv();
    ok(&v, &d.msg(1));
    v.verify(&d.msg(2), None, EXP + 59).unwrap();
    let err = v.verify(&d.msg(3), None, EXP + 60).unwrap_err();
    assert_eq!(err.reason_code(), "expired");
    let s = v.stats();
    assert_eq!((s.token_cache_hits, s.token_cache_misses), (2, 1));
    assert_eq!(s.rejected, rejected(&[("expired", 1)]));

    // Uncached, the same.
    let fresh = tv();
    assert_eq!(
        fresh
            .verify(&d.msg(3), None, EXP + 60)
            .unwrap_err()
            .reason_code(),
        "expired"
    );
    assert_eq!(fresh.stats().token_cache_misses, 1);
    // The refused message left no state: seq 3 is still new.
    v.verify(&d.msg(3), None, EXP).unwrap();
}

#[test]
fn wrong_audience_and_missing_scope_are_refused() {
    let key = device();
    let mut c = claims(&key);
    c.aud = vec!["https://other.example.com".into()];
    let d = Dev::with_claims(key, "sensor-1", c);
    let v = tv();
    assert_eq!(code(&v, &d.msg(1)), "audience");

    let key = device();
    let mut c = claims(&key);
    c.scope = Some("telemetry:read".into());
    let d = Dev::with_claims(key, "sensor-1", c);
    assert_eq!(code(&v, &d.msg(1)), "scope");

    // The scopes come from the config.
    let read_only = TelemetryVerifier::new(
        verifier(),
        TelemetryConfig {
            required_scopes: vec!["telemetry:read".into()],
            ..TelemetryConfig::default()
        },
    );
    ok(&read_only, &d.msg(1));
}

#[test]
fn token_without_sub_is_refused() {
    let key = device();
    let mut c = claims(&key);
    c.sub = None;
    let d = Dev::with_claims(key, "", c);
    assert_eq!(code(&tv(), &d.msg(1)), "missing_claim");
}

#[test]
fn topic_of_another_device_is_refused() {
    let d = sensor();
    let v = tv();
    let err = v.verify(&d.msg(1), Some("sensor-2"), NOW).unwrap_err();
    assert_eq!(
        err,
        VerifyError::TopicMismatch {
            topic: "sensor-2".into(),
            token: "sensor-1".into()
        }
    );
    assert_eq!(err.reason_code(), "topic");
    // Not recorded: the same seq on the right topic is accepted.
    v.verify(&d.msg(1), Some(d.name), NOW).unwrap();
    v.verify(&d.msg(2), None, NOW).unwrap();
}

#[test]
fn forged_high_seq_does_not_advance_the_window() {
    let d = sensor();
    let thief = P256Signer::from_scalar(&[5u8; 32]).unwrap();
    let v = tv();
    ok(&v, &d.msg(1));
    let forged = seal(&d.token, &d.cti, 1_000, &thief);
    assert_eq!(code(&v, &forged), "pop");
    ok(&v, &d.msg(2));
    ok(&v, &d.msg(1_000));
}

#[test]
fn malformed_envelope_is_counted() {
    let v = tv();
    assert_eq!(code(&v, b"not cbor"), "malformed");
    let mut trailing = sensor().msg(1);
    trailing.push(0);
    assert_eq!(code(&v, &trailing), "malformed");
    assert_eq!(v.stats().rejected, rejected(&[("malformed", 2)]));
}

#[test]
fn same_token_is_a_cache_hit() {
    let d = sensor();
    let v = tv();
    ok(&v, &d.msg(1));
    let s = v.stats();
    assert_eq!((s.token_cache_hits, s.token_cache_misses), (0, 1));
    ok(&v, &d.msg(2));
    let s = v.stats();
    assert_eq!((s.token_cache_hits, s.token_cache_misses), (1, 1));
    // Another token is a miss.
    ok(&v, &Dev::new(8, "sensor-2", 2).msg(1));
    assert_eq!(v.stats().token_cache_misses, 2);

    // Capacity 0: no cache.
    let none = TelemetryVerifier::new(
        verifier(),
        TelemetryConfig {
            token_cache_capacity: 0,
            ..TelemetryConfig::default()
        },
    );
    ok(&none, &d.msg(1));
    ok(&none, &d.msg(2));
    assert_eq!(none.stats().token_cache_misses, 2);
}

#[test]
fn cache_is_bounded_and_evicts_oldest() {
    let v = TelemetryVerifier::new(
        verifier(),
        TelemetryConfig {
            token_cache_capacity: 2,
            ..TelemetryConfig::default()
        },
    );
    let [a, b, c] = [(8, "a", 1), (9, "b", 2), (10, "c", 3)].map(|(n, s, t)| Dev::new(n, s, t));
    ok(&v, &a.msg(1));
    ok(&v, &b.msg(1));
    ok(&v, &c.msg(1)); // evicts a
    ok(&v, &b.msg(2)); // hit
    ok(&v, &a.msg(2)); // miss again
    let s = v.stats();
    assert_eq!((s.token_cache_hits, s.token_cache_misses), (1, 4));
}

#[test]
fn cache_evicts_expired_before_oldest() {
    let v = TelemetryVerifier::new(
        verifier(),
        TelemetryConfig {
            token_cache_capacity: 2,
            ..TelemetryConfig::default()
        },
    );
    let long = Dev::new(8, "long", 1);
    let key = P256Signer::from_scalar(&[9; 32]).unwrap();
    let mut short_claims = claims(&key);
    short_claims.sub = Some("short".into());
    short_claims.cti = Some(vec![2; 16]);
    short_claims.exp = Some(NOW + 100);
    let short = Dev::with_claims(key, "short", short_claims);
    let third = Dev::new(10, "third", 3);

    ok(&v, &long.msg(1)); // oldest entry
    ok(&v, &short.msg(1));
    // After short's expiry (+ leeway), the third token evicts short, not long.
    let later = NOW + 200;
    v.verify(&third.msg(1), None, later).unwrap();
    v.verify(&long.msg(2), None, later).unwrap();
    let s = v.stats();
    assert_eq!((s.token_cache_hits, s.token_cache_misses), (1, 3));
}

#[test]
fn windows_are_per_device_and_survive_token_renewal() {
    let a = sensor();
    let b = Dev::new(8, "sensor-2", 2);
    let v = tv();
    ok(&v, &a.msg(5));
    ok(&v, &b.msg(5));
    assert_eq!(code(&v, &a.msg(5)), "replay");
    assert_eq!(code(&v, &b.msg(5)), "replay");

    // A renewed token (new cti) for sensor-1 keeps its sequence state.
    let renewed = Dev::new(9, "sensor-1", 7);
    assert_eq!(code(&v, &renewed.msg(5)), "replay");
    ok(&v, &renewed.msg(6));
}

#[test]
fn concurrent_verifiers_accept_each_seq_exactly_once() {
    const SEQS: u64 = 40;
    const THREADS: usize = 4;
    let d = sensor();
    let msgs: Arc<Vec<Vec<u8>>> = Arc::new((0..SEQS).map(|s| d.msg(s)).collect());
    let v = Arc::new(tv());
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (v, msgs) = (Arc::clone(&v), Arc::clone(&msgs));
            std::thread::spawn(move || {
                let mut accepted = Vec::new();
                // Each thread walks the seqs from another starting point.
                for i in 0..msgs.len() {
                    let msg = &msgs[(i + t * 10) % msgs.len()];
                    match v.verify(msg, Some("sensor-1"), NOW) {
                        Ok(a) => accepted.push(a.seq),
                        Err(e) => assert_eq!(e.reason_code(), "replay", "{e}"),
                    }
                }
                accepted
            })
        })
        .collect();
    let mut all: Vec<u64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    all.sort_unstable();
    assert_eq!(all, (0..SEQS).collect::<Vec<_>>());
    let s = v.stats();
    assert_eq!(s.accepted, SEQS);
    let replays = SEQS * (THREADS as u64 - 1);
    assert_eq!(s.rejected, rejected(&[("replay", replays)]));
    assert_eq!(
        s.token_cache_hits + s.token_cache_misses,
        SEQS * THREADS as u64
    );
}
