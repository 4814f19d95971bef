use super::*;

#[test]
fn replay_refused_until_expiry() {
    let mut c = ReplayCache::new(10);
    assert!(c.check_and_insert("d1", b"nonce-01", 100, 50).is_ok());
    assert!(matches!(
        c.check_and_insert("d1", b"nonce-01", 100, 60),
        Err(ClaimError::Replayed(_))
    ));
    // Another device may use the same bytes.
    assert!(c.check_and_insert("d2", b"nonce-01", 100, 60).is_ok());
    // After expiry the entry is dropped.
    assert!(c.check_and_insert("d1", b"nonce-01", 200, 100).is_ok());
}

#[test]
fn full_cache_fails_closed() {
    let mut c = ReplayCache::new(2);
    c.check_and_insert("d", b"a", 100, 0).unwrap();
    c.check_and_insert("d", b"b", 100, 0).unwrap();
    assert!(c.check_and_insert("d", b"c", 100, 0).is_err());
    assert!(c.check_and_insert("d", b"c", 200, 100).is_ok());
    assert_eq!(c.len(), 1);
}

#[test]
fn one_issuer_cannot_fill_the_cache_for_others() {
    // Capacity 100, 10 per issuer: the attacker's 11th nonce is refused, and
    // every other device still gets its nonces in (on today's main the
    // attacker took all 100 places and locked everyone out).
    let mut c = ReplayCache::new(100).with_issuer_quota(10);
    for i in 0..10u8 {
        assert_eq!(c.admit("mallory", &[i; 16], 400, 0), Admission::Fresh);
    }
    for i in 10..200u8 {
        assert!(matches!(
            c.admit("mallory", &[i; 16], 400, 0),
            Admission::IssuerOverQuota { retry_after: 400 }
        ));
    }
    assert_eq!(c.issuer_len("mallory"), 10);
    for d in 0..9 {
        for i in 0..10u8 {
            assert_eq!(
                c.admit(&format!("d{d}"), &[i; 16], 400, 0),
                Admission::Fresh
            );
        }
    }
    // Now the cache is full: fail closed for newcomers, and a replay is still a replay.
    assert!(matches!(
        c.admit("late", b"nonce-01", 400, 0),
        Admission::Full { .. }
    ));
    assert_eq!(c.admit("d1", &[3; 16], 400, 1), Admission::Replayed);
    // Expiry frees the places and the per-issuer counts.
    assert_eq!(c.admit("late", b"nonce-01", 800, 400), Admission::Fresh);
    assert_eq!(c.issuer_len("mallory"), 0);
    assert_eq!(c.len(), 1);
}

#[test]
fn seen_does_not_remember() {
    let mut c = ReplayCache::new(10).with_issuer_quota(1);
    assert!(!c.seen("d", b"abcdefgh", 0));
    assert!(!c.seen("d", b"abcdefgh", 0));
    assert_eq!(c.admit("d", b"abcdefgh", 10, 0), Admission::Fresh);
    assert!(c.seen("d", b"abcdefgh", 5));
    assert!(!c.seen("d", b"abcdefgh", 10));
    assert_eq!(c.issuer_quota(), 1);
}

#[test]
fn out_of_order_expiries_are_pruned() {
    // A long-lived entry first must not keep short-lived ones alive.
    let mut c = ReplayCache::new(3);
    c.check_and_insert("a", b"long", 1000, 0).unwrap();
    c.check_and_insert("b", b"short1", 10, 0).unwrap();
    c.check_and_insert("c", b"short2", 10, 0).unwrap();
    assert!(c.check_and_insert("d", b"new", 1000, 5).is_err());
    assert!(c.check_and_insert("d", b"new", 1000, 11).is_ok());
    assert_eq!(c.len(), 2);
}
