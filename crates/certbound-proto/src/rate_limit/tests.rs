use super::*;

const T0: u64 = 1_000_000;

#[test]
fn a_full_bucket_allows_a_burst_of_capacity() {
    let mut b = TokenBucket::new(5, 1.0, T0);
    for i in 0..5 {
        assert_eq!(b.try_take(T0), Ok(()), "request {i}");
    }
    assert_eq!(b.try_take(T0), Err(RetryAfter { secs: 1 }));
}

#[test]
fn tokens_refill_over_time_up_to_capacity() {
    let mut b = TokenBucket::new(3, 2.0, T0);
    for _ in 0..3 {
        b.try_take(T0).unwrap();
    }
    assert!(
        b.try_take(T0 + 499).is_err(),
        "half a second earns 0.998 tokens"
    );
    assert!(
        b.try_take(T0 + 500).is_ok(),
        "one token after 500 ms at 2/s"
    );
    assert!(b.try_take(T0 + 500).is_err());
    // A long pause refills only up to capacity.
    let later = T0 + 3_600_000;
    assert!(b.is_full(later));
    for _ in 0..3 {
        assert!(b.try_take(later).is_ok());
    }
    assert!(b.try_take(later).is_err());
}

#[test]
fn fractional_rates_accumulate_exactly_enough() {
    // 0.1 token/s: one token every 10 s, in 100 steps of 100 ms.
    let mut b = TokenBucket::new(1, 0.1, T0);
    b.try_take(T0).unwrap();
    for step in 1..100 {
        assert!(b.try_take(T0 + step * 100).is_err(), "step {step}");
    }
    assert!(b.try_take(T0 + 10_000).is_ok());
}

#[test]
fn retry_after_is_whole_seconds_until_one_token() {
    // 0.25 token/s: an empty bucket needs 4 s.
    let mut b = TokenBucket::new(1, 0.25, T0);
    b.try_take(T0).unwrap();
    assert_eq!(b.try_take(T0), Err(RetryAfter { secs: 4 }));
    // After 1.5 s, 0.375 tokens: 2.5 s more, rounded up to 3.
    assert_eq!(b.try_take(T0 + 1_500), Err(RetryAfter { secs: 3 }));
    // Waiting exactly what was said is enough.
    assert!(b.try_take(T0 + 1_500 + 3_000).is_ok());
    // Fast refill: never less than 1 s.
    let mut fast = TokenBucket::new(1, 1000.0, T0);
    fast.try_take(T0).unwrap();
    assert_eq!(fast.try_take(T0), Err(RetryAfter { secs: 1 }));
    // A bucket that can never refill says so with the maximum.
    let mut never = TokenBucket::new(1, 0.0, T0);
    never.try_take(T0).unwrap();
    assert_eq!(
        never.try_take(T0 + 1_000_000),
        Err(RetryAfter {
            secs: MAX_RETRY_AFTER_SECS
        })
    );
    let mut zero = TokenBucket::new(0, 10.0, T0);
    assert_eq!(
        zero.try_take(T0),
        Err(RetryAfter {
            secs: MAX_RETRY_AFTER_SECS
        })
    );
    // Very slow refill is capped.
    let mut slow = TokenBucket::new(1, 1e-9, T0);
    slow.try_take(T0).unwrap();
    assert_eq!(slow.try_take(T0).unwrap_err().secs, MAX_RETRY_AFTER_SECS);
    assert_eq!(
        RetryAfter { secs: 7 }.to_string(),
        "rate limit exceeded: retry after 7 s"
    );
}

#[test]
fn bad_rates_mean_no_refill() {
    for rate in [f64::NAN, f64::INFINITY, -1.0, f64::NEG_INFINITY] {
        let mut b = TokenBucket::new(1, rate, T0);
        b.try_take(T0).unwrap();
        assert!(b.try_take(T0 + 10_000_000).is_err(), "rate {rate}");
    }
}

#[test]
fn a_clock_going_backwards_grants_nothing_extra() {
    let mut b = TokenBucket::new(2, 1.0, T0);
    b.try_take(T0).unwrap();
    b.try_take(T0).unwrap();
    // Back in time, even to 0: no panic, no token.
    assert!(b.try_take(T0 - 5_000).is_err());
    assert!(b.try_take(0).is_err());
    assert_eq!(b.last_ms(), T0, "the latest time seen is kept");
    // Forward again: refill counts from the latest time seen, not from the
    // earlier one, so the trip back earned nothing.
    assert!(b.try_take(T0 + 999).is_err());
    assert!(b.try_take(T0 + 1_000).is_ok());
    assert!(b.try_take(T0 + 1_000).is_err());
    // u64 extremes.
    let mut e = TokenBucket::new(1, 1.0, u64::MAX);
    assert!(e.try_take(u64::MAX).is_ok());
    assert!(e.try_take(0).is_err());
    assert!(e.try_take(u64::MAX).is_err());
    let mut z = TokenBucket::new(1, 1.0, 0);
    z.try_take(0).unwrap();
    assert!(
        z.try_take(u64::MAX).is_ok(),
        "a huge jump just fills the bucket"
    );
    assert!(z.try_take(u64::MAX).is_err());
}

#[test]
fn limiter_keeps_keys_apart() {
    let mut l = RateLimiter::new(2, 1.0, 100);
    assert!(l.is_empty());
    assert!(l.check("a", T0).is_ok());
    assert!(l.check("a", T0).is_ok());
    assert_eq!(l.check("a", T0), Err(RetryAfter { secs: 1 }));
    assert!(l.check("b", T0).is_ok(), "b has its own bucket");
    assert_eq!(l.len(), 2);
    assert!(l.check("a", T0 + 1_000).is_ok());
}

#[test]
fn limiter_memory_is_bounded() {
    let max = 64;
    let mut l = RateLimiter::new(3, 1.0, max);
    for i in 0..10_000u64 {
        let _ = l.check(&format!("k{i}"), T0 + i);
        assert!(l.len() <= max, "after {i}: {}", l.len());
    }
    // max_keys 0 behaves as 1.
    let mut one = RateLimiter::new(1, 1.0, 0);
    assert!(one.check("a", T0).is_ok());
    assert!(one.check("b", T0).is_ok());
    assert_eq!(one.len(), 1);
}

#[test]
fn eviction_drops_full_buckets_first_then_the_oldest() {
    let mut l = RateLimiter::new(2, 1.0, 8);
    // "hot" is drained; the others took one token each at increasing times.
    l.check("hot", T0).unwrap();
    l.check("hot", T0).unwrap();
    for i in 0..7u64 {
        l.check(&format!("k{i}"), T0 + 100 * i).unwrap();
    }
    assert_eq!(l.len(), 8);
    // At T0 + 1050 the buckets used up to T0 + 50 have refilled (k0 only:
    // 1 + 1.05 tokens >= 2); "hot" has 1.05 and is kept.
    l.check("new1", T0 + 1_050).unwrap();
    assert_eq!(l.len(), 8);
    assert!(l.buckets.contains_key("hot"));
    assert!(!l.buckets.contains_key("k0"), "full bucket dropped");
    // Nothing is full at this instant: the least recently used goes.
    l.check("new2", T0 + 1_050).unwrap();
    assert_eq!(l.len(), 8);
    assert!(!l.buckets.contains_key("hot"), "oldest (T0) evicted");
    assert!(l.buckets.contains_key("k1"));
    // The drained key is still limited while it is remembered.
    l.check("k6", T0 + 1_050).unwrap();
    assert!(l.check("k6", T0 + 1_050).is_err());
}

#[test]
fn eviction_frees_a_batch_at_a_time() {
    let max = 800;
    let mut l = RateLimiter::new(5, 0.001, max);
    for i in 0..max as u64 {
        l.check(&format!("k{i}"), T0 + i).unwrap();
    }
    assert_eq!(l.len(), max);
    l.check("first-over", T0 + 10_000).unwrap();
    // An eighth was freed, then the new key was added.
    assert_eq!(l.len(), max - max / 8 + 1);
    assert!(!l.buckets.contains_key("k0"));
    assert!(!l.buckets.contains_key("k99"));
    assert!(l.buckets.contains_key("k100"));
    // The next keys fit without another sweep.
    for i in 0..(max / 8 - 1) {
        l.check(&format!("n{i}"), T0 + 10_001).unwrap();
    }
    assert_eq!(l.len(), max);
    assert!(l.buckets.contains_key("k100"));
}
