//! The status cache: freshness, fail-closed staleness, list verification
//! before caching, the URI allow-list (SSRF guard) and the size bound.

use certbound_proto::cbor::Limits;
use certbound_proto::claims::Claims;
use certbound_proto::crypto::{P256Signer, Signer};
use certbound_proto::status_list::{
    STATUS_INVALID, STATUS_SUSPENDED, StatusList, StatusListToken, StatusRef, mint_status_list,
};
use certbound_proto::token;
use certbound_proto::{ClaimError, ProtoError};

use super::{StatusCache, StatusCacheConfig};
use crate::{KeySet, VerifyError};

const BASE: &str = "https://auth.example.com/status/";
const URI: &str = "https://auth.example.com/status/1";
const NOW: u64 = 1_700_000_000;

fn broker() -> P256Signer {
    P256Signer::from_scalar(&[7u8; 32]).unwrap()
}

fn keys() -> KeySet {
    let mut keys = KeySet::new();
    keys.insert(broker().public_key().kid(), broker().public_key().clone())
        .unwrap();
    keys
}

/// A list of 64 entries: 1 revoked, 2 suspended, 3 holds 3 (application-specific).
fn list_token(uri: &str, iat: u64, ttl: Option<u64>) -> StatusListToken {
    let mut list = StatusList::new(2, 64).unwrap();
    list.set(1, STATUS_INVALID).unwrap();
    list.set(2, STATUS_SUSPENDED).unwrap();
    list.set(3, 3).unwrap();
    StatusListToken {
        sub: uri.into(),
        iat,
        exp: Some(iat + 600),
        ttl,
        list,
    }
}

fn mint(token: &StatusListToken, signer: &P256Signer) -> Vec<u8> {
    mint_status_list(token, &signer.public_key().kid(), signer).unwrap()
}

fn cache() -> StatusCache {
    StatusCache::new(StatusCacheConfig::new(BASE)).unwrap()
}

fn at(idx: u64) -> StatusRef {
    StatusRef {
        idx,
        uri: URI.into(),
    }
}

fn loaded(ttl: Option<u64>) -> StatusCache {
    let mut c = cache();
    c.insert(
        URI,
        &mint(&list_token(URI, NOW, ttl), &broker()),
        &keys(),
        NOW,
    )
    .unwrap();
    c
}

#[test]
fn statuses_are_read_from_the_cached_list() {
    let c = loaded(Some(60));
    assert_eq!(c.len(), 1);
    assert_eq!(c.fetched_at(URI), Some(NOW));
    c.check(&at(0), NOW).unwrap();
    c.check(&at(63), NOW).unwrap();
    let revoked = c.check(&at(1), NOW).unwrap_err();
    assert_eq!(revoked, VerifyError::Revoked);
    assert_eq!(revoked.reason_code(), "revoked");
    let suspended = c.check(&at(2), NOW).unwrap_err();
    assert_eq!(suspended, VerifyError::Suspended);
    assert_eq!(suspended.reason_code(), "suspended");
    let unknown = c.check(&at(3), NOW).unwrap_err();
    assert_eq!(unknown, VerifyError::UnknownStatus { value: 3 });
    assert_eq!(unknown.reason_code(), "status_unknown");
    // Out of bounds: the token is invalid (draft: reject).
    let err = c.check(&at(64), NOW).unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::Malformed(ProtoError::InvalidStatusList(_))
        ),
        "{err:?}"
    );
}

#[test]
fn missing_list_fails_closed() {
    let c = cache();
    assert!(c.is_empty());
    assert!(c.needs_refresh(URI, NOW));
    let err = c.check(&at(0), NOW).unwrap_err();
    assert!(
        matches!(&err, VerifyError::StatusUnavailable { uri, reason } if uri == URI && reason.contains("not been fetched")),
        "{err:?}"
    );
    assert_eq!(err.reason_code(), "status_unavailable");
}

#[test]
fn refresh_is_due_after_the_ttl_and_staleness_is_bounded() {
    let c = loaded(Some(60));
    assert!(!c.needs_refresh(URI, NOW));
    assert!(!c.needs_refresh(URI, NOW + 59));
    assert!(c.needs_refresh(URI, NOW + 60));
    // Past the ttl, within the staleness bound (60 s): still answered.
    c.check(&at(0), NOW + 119).unwrap();
    assert_eq!(c.check(&at(1), NOW + 119), Err(VerifyError::Revoked));
    // Past ttl + staleness: refused, whatever the entry says.
    for idx in [0, 1] {
        let err = c.check(&at(idx), NOW + 120).unwrap_err();
        assert!(
            matches!(&err, VerifyError::StatusUnavailable { reason, .. } if reason.contains("older") || reason.contains("old")),
            "{err:?}"
        );
    }
}

#[test]
fn staleness_is_configurable() {
    let mut config = StatusCacheConfig::new(BASE);
    config.max_staleness = 0;
    let mut c = StatusCache::new(config).unwrap();
    c.insert(
        URI,
        &mint(&list_token(URI, NOW, Some(10)), &broker()),
        &keys(),
        NOW,
    )
    .unwrap();
    c.check(&at(0), NOW + 9).unwrap();
    assert_eq!(
        c.check(&at(0), NOW + 10).unwrap_err().reason_code(),
        "status_unavailable"
    );
}

#[test]
fn ttl_is_clamped_and_defaulted() {
    // No ttl claim: default_ttl (60).
    let c = loaded(None);
    assert!(!c.needs_refresh(URI, NOW + 59));
    assert!(c.needs_refresh(URI, NOW + 60));
    // ttl 0 would mean a fetch per request: raised to min_ttl (1).
    let c = loaded(Some(0));
    assert!(!c.needs_refresh(URI, NOW));
    assert!(c.needs_refresh(URI, NOW + 1));
    // A year: lowered to max_ttl (3600).
    let c = loaded(Some(365 * 86_400));
    assert!(!c.needs_refresh(URI, NOW + 3599));
    assert!(c.needs_refresh(URI, NOW + 3600));
}

#[test]
fn an_expired_list_is_not_used() {
    let mut token = list_token(URI, NOW, Some(3600));
    token.exp = Some(NOW + 100);
    let mut c = cache();
    c.insert(URI, &mint(&token, &broker()), &keys(), NOW)
        .unwrap();
    c.check(&at(0), NOW + 100 + 59).unwrap(); // leeway 60
    let err = c.check(&at(0), NOW + 160).unwrap_err();
    assert!(
        matches!(&err, VerifyError::StatusUnavailable { reason, .. } if reason.contains("expired")),
        "{err:?}"
    );
}

#[test]
fn failures_delay_the_next_fetch_and_keep_a_stale_list_usable() {
    let mut c = loaded(Some(60));
    c.record_failure(URI, NOW + 60, "connection refused");
    assert!(!c.needs_refresh(URI, NOW + 60));
    assert!(!c.needs_refresh(URI, NOW + 64));
    assert!(c.needs_refresh(URI, NOW + 65));
    c.check(&at(0), NOW + 100).unwrap();
    let err = c.check(&at(0), NOW + 120).unwrap_err();
    assert!(err.to_string().contains("connection refused"), "{err}");

    // Never fetched, and the fetch failed.
    let mut c = cache();
    c.record_failure(URI, NOW, "HTTP 503");
    assert!(!c.needs_refresh(URI, NOW + 1));
    let err = c.check(&at(0), NOW + 1).unwrap_err();
    assert!(
        matches!(&err, VerifyError::StatusUnavailable { reason, .. } if reason.contains("HTTP 503")),
        "{err:?}"
    );
    // A good insert clears the failure.
    c.insert(
        URI,
        &mint(&list_token(URI, NOW, Some(60)), &broker()),
        &keys(),
        NOW + 2,
    )
    .unwrap();
    c.check(&at(0), NOW + 2).unwrap();
    assert!(!c.needs_refresh(URI, NOW + 3));
}

#[test]
fn insert_verifies_the_list_before_caching() {
    let good = list_token(URI, NOW, Some(60));
    let mut c = cache();

    // Signed by a key that is not in the set.
    let stranger = P256Signer::from_scalar(&[5u8; 32]).unwrap();
    let err = c
        .insert(URI, &mint(&good, &stranger), &keys(), NOW)
        .unwrap_err();
    assert_eq!(err.reason_code(), "unknown_key");

    // Signed by another key under the broker's kid.
    let forged = mint_status_list(&good, &broker().public_key().kid(), &stranger).unwrap();
    let err = c.insert(URI, &forged, &keys(), NOW).unwrap_err();
    assert_eq!(err, VerifyError::BadSignature);

    // The list of another URI served at this one (sub != uri).
    let other = list_token("https://auth.example.com/status/2", NOW, Some(60));
    let err = c
        .insert(URI, &mint(&other, &broker()), &keys(), NOW)
        .unwrap_err();
    assert!(
        matches!(err, VerifyError::Claims(ClaimError::SubjectMismatch { .. })),
        "{err:?}"
    );

    // Expired, or issued in the future.
    let mut expired = good.clone();
    expired.exp = Some(NOW - 3600);
    let err = c
        .insert(URI, &mint(&expired, &broker()), &keys(), NOW)
        .unwrap_err();
    assert_eq!(err.reason_code(), "expired");
    let future = list_token(URI, NOW + 3600, Some(60));
    let err = c
        .insert(URI, &mint(&future, &broker()), &keys(), NOW)
        .unwrap_err();
    assert_eq!(err.reason_code(), "not_yet_valid");

    // An access token is not a status list (typ).
    let access = Claims {
        sub: Some(URI.into()),
        exp: Some(NOW + 600),
        ..Claims::default()
    };
    let at_cwt = token::mint(&access, &broker().public_key().kid(), &broker()).unwrap();
    let err = c.insert(URI, &at_cwt, &keys(), NOW).unwrap_err();
    assert_eq!(err.reason_code(), "wrong_type");

    // Garbage and oversize input.
    assert_eq!(
        c.insert(URI, b"garbage", &keys(), NOW)
            .unwrap_err()
            .reason_code(),
        "malformed"
    );
    let mut config = StatusCacheConfig::new(BASE);
    config.limits = Limits {
        max_size: 64,
        max_depth: 16,
    };
    let mut small = StatusCache::new(config).unwrap();
    assert_eq!(
        small
            .insert(URI, &mint(&good, &broker()), &keys(), NOW)
            .unwrap_err()
            .reason_code(),
        "too_large"
    );

    // Nothing was cached by any of these.
    assert!(c.is_empty());
    assert!(c.needs_refresh(URI, NOW));
}

#[test]
fn inflation_is_bounded() {
    let mut big = StatusListToken {
        list: StatusList::new(2, 1 << 20).unwrap(),
        ..list_token(URI, NOW, Some(60))
    };
    big.list.set(5, 1).unwrap();
    let mut config = StatusCacheConfig::new(BASE);
    config.max_list_bytes = 1024;
    let mut c = StatusCache::new(config).unwrap();
    let err = c
        .insert(URI, &mint(&big, &broker()), &keys(), NOW)
        .unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::Malformed(ProtoError::StatusListTooLarge { .. })
        ),
        "{err:?}"
    );
}

#[test]
fn only_uris_under_the_allowed_prefixes_are_fetched() {
    let c = cache();
    for ok in [
        URI,
        "https://auth.example.com/status/12345",
        "https://AUTH.example.com/status/1",
    ] {
        c.check_uri(ok).unwrap();
        assert!(c.needs_refresh(ok, NOW), "{ok}");
    }
    for (bad, why) in [
        ("http://auth.example.com/status/1", "https://"),
        ("HTTPS://auth.example.com/status/1", "https://"),
        ("https://evil.example/status/1", "allowed prefix"),
        (
            "https://auth.example.com.evil.example/status/1",
            "allowed prefix",
        ),
        ("https://auth.example.com:8443/status/1", "allowed prefix"),
        (
            "https://auth.example.com@evil.example/status/1",
            "user info",
        ),
        ("https://auth.example.com/status", "allowed prefix"),
        ("https://auth.example.com/statusX/1", "allowed prefix"),
        (
            "https://auth.example.com/status/../admin/v1/clients",
            "dot segments",
        ),
        ("https://auth.example.com/status/%2e%2e/admin", "percent"),
        ("https://auth.example.com/status/1?redirect=x", "query"),
        ("https://auth.example.com/status/1#f", "fragment"),
        ("https://auth.example.com/status/1 x", "whitespace"),
        ("https://auth.example.com/status\\1", "backslash"),
        ("https:///status/1", "no host"),
        ("file:///etc/passwd", "https://"),
        ("", "https://"),
    ] {
        let err = c.check_uri(bad).unwrap_err();
        assert_eq!(err.reason_code(), "status_uri", "{bad}");
        assert!(err.to_string().contains(why), "{bad}: {err}");
        assert!(!c.needs_refresh(bad, NOW), "{bad}");
        let status = StatusRef {
            idx: 0,
            uri: bad.into(),
        };
        assert_eq!(
            c.check(&status, NOW).unwrap_err().reason_code(),
            "status_uri"
        );
    }
    // insert and record_failure refuse them too.
    let mut c = cache();
    let evil = "https://evil.example/status/1";
    let bytes = mint(&list_token(evil, NOW, Some(60)), &broker());
    assert_eq!(
        c.insert(evil, &bytes, &keys(), NOW)
            .unwrap_err()
            .reason_code(),
        "status_uri"
    );
    c.record_failure(evil, NOW, "x");
    assert!(c.is_empty());
}

#[test]
fn prefixes_must_be_https_urls() {
    for bad in [
        "http://auth.example.com/status/",
        "auth.example.com/status/",
        "https://user@auth.example.com/",
        "https://auth.example.com/?q",
    ] {
        let err = StatusCache::new(StatusCacheConfig::new(bad)).unwrap_err();
        assert_eq!(err.reason_code(), "invalid_url", "{bad}");
    }
    let mut config = StatusCacheConfig::new(BASE);
    config.allowed_prefixes.clear();
    assert!(StatusCache::new(config).is_err());
    // A prefix without a trailing slash still ends at a path boundary.
    let c = StatusCache::new(StatusCacheConfig::new("https://auth.example.com")).unwrap();
    c.check_uri(URI).unwrap();
    assert!(
        c.check_uri("https://auth.example.com.evil.example/x")
            .is_err()
    );
    // Several prefixes.
    let mut config = StatusCacheConfig::new(BASE);
    config
        .allowed_prefixes
        .push("https://backup.example.com:8443/lists".into());
    let c = StatusCache::new(config).unwrap();
    c.check_uri("https://backup.example.com:8443/lists/7")
        .unwrap();
    c.check_uri(URI).unwrap();
}

#[test]
fn the_number_of_cached_lists_is_bounded() {
    let mut config = StatusCacheConfig::new(BASE);
    config.max_lists = 2;
    let mut c = StatusCache::new(config).unwrap();
    let uri = |i: u64| format!("{BASE}{i}");
    for i in 0..5u64 {
        let u = uri(i);
        c.insert(
            &u,
            &mint(&list_token(&u, NOW, Some(60)), &broker()),
            &keys(),
            NOW + i,
        )
        .unwrap();
        assert!(c.len() <= 2);
    }
    assert_eq!(c.len(), 2);
    // The most recently fetched are kept.
    assert_eq!(c.fetched_at(&uri(4)), Some(NOW + 4));
    assert_eq!(c.fetched_at(&uri(3)), Some(NOW + 3));
    assert_eq!(c.fetched_at(&uri(0)), None);
    // Failures count too, and re-inserting a cached URI evicts nothing.
    c.record_failure(&uri(9), NOW + 10, "down");
    assert_eq!(c.len(), 2);
    let u4 = uri(4);
    c.insert(
        &u4,
        &mint(&list_token(&u4, NOW, Some(60)), &broker()),
        &keys(),
        NOW + 11,
    )
    .unwrap();
    assert_eq!(c.len(), 2);
    assert_eq!(c.fetched_at(&u4), Some(NOW + 11));
    c.remove(&u4);
    assert_eq!(c.len(), 1);
}

#[test]
fn an_older_list_than_the_cached_one_is_a_rollback() {
    // The newer list (iat NOW + 100) revokes entry 0; the older one (iat NOW)
    // still says VALID.
    let mut newer = list_token(URI, NOW + 100, Some(60));
    newer.list.set(0, STATUS_INVALID).unwrap();
    let older = mint(&list_token(URI, NOW, Some(60)), &broker());
    let mut c = cache();
    c.insert(URI, &mint(&newer, &broker()), &keys(), NOW + 100)
        .unwrap();
    assert_eq!(
        c.check(&at(0), NOW + 100).unwrap_err(),
        VerifyError::Revoked
    );
    // Replaying the older (validly signed) list is refused, and the cached
    // list stays in use: entry 0 stays revoked.
    let err = c.insert(URI, &older, &keys(), NOW + 200).unwrap_err();
    assert_eq!(
        err,
        VerifyError::StatusRollback {
            uri: URI.into(),
            cached_iat: NOW + 100,
            offered_iat: NOW,
        }
    );
    assert_eq!(err.reason_code(), "status_rollback");
    assert_eq!(
        c.check(&at(0), NOW + 150).unwrap_err(),
        VerifyError::Revoked
    );
    // Also after a failed fetch was recorded.
    c.record_failure(URI, NOW + 201, "timeout");
    assert!(c.insert(URI, &older, &keys(), NOW + 202).is_err());
    // The same list again, and a newer one, are accepted.
    c.insert(URI, &mint(&newer, &broker()), &keys(), NOW + 203)
        .unwrap();
    let newest = mint(&list_token(URI, NOW + 300, Some(60)), &broker());
    c.insert(URI, &newest, &keys(), NOW + 300).unwrap();
    c.check(&at(0), NOW + 300).unwrap();
}
