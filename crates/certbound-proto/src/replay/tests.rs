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
