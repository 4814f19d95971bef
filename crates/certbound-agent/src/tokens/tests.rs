use super::*;
use certbound_proto::claims::Claims;
use certbound_proto::crypto::P256Signer;

const T0: u64 = 1_700_000_000_000; // ms

fn spec(aud: &str) -> TokenSpec {
    TokenSpec {
        audience: aud.into(),
        scope: Some("telemetry:write".into()),
    }
}

fn backoff() -> Backoff {
    Backoff {
        base_ms: 1_000,
        max_ms: 8_000,
        floor_ms: 100,
    }
}

fn manager() -> TokenManager {
    TokenManager::new(vec![spec("api-a"), spec("api-b")], backoff(), 30)
}

fn give(m: &mut TokenManager, i: usize, tag: u8, lifetime: u64, now_ms: u64) {
    m.on_success(i, vec![tag], vec![tag; 16], lifetime, now_ms, 0.5);
}

#[test]
fn every_audience_is_due_until_it_has_a_token() {
    let mut m = manager();
    assert_eq!(m.due(T0), [0, 1]);
    give(&mut m, 0, 1, 3600, T0);
    assert_eq!(m.due(T0), [1]);
    assert_eq!(m.spec(1).map(|s| s.audience.as_str()), Some("api-b"));
    assert_eq!(m.for_send("api-b", T0), ForSend::Renew);
    assert_eq!(m.for_send("nope", T0), ForSend::Unknown);
}

#[test]
fn renews_at_about_two_thirds_of_the_lifetime() {
    let mut m = manager();
    give(&mut m, 0, 1, 3600, T0);
    give(&mut m, 1, 2, 3600, T0);
    // unit 0.5: exactly 2/3 of 3600 s = 2400 s.
    assert!(m.due(T0 + 2_399_000).is_empty());
    assert_eq!(m.due(T0 + 2_400_000), [0, 1]);
    assert_eq!(m.next_due_ms(), Some(T0 + 2_400_000));
    match m.for_send("api-a", T0 + 2_399_000) {
        ForSend::Ready(t) => assert_eq!(t.token, [1]),
        other => panic!("{other:?}"),
    }
    assert_eq!(m.for_send("api-a", T0 + 2_400_000), ForSend::Renew);
}

#[test]
fn renewal_points_are_jittered() {
    let mut m = TokenManager::new(vec![spec("a")], backoff(), 30);
    m.on_success(0, vec![1], vec![1], 3600, T0, 0.0);
    let early = m.held("a").map(|t| t.renew_at);
    m.on_success(0, vec![1], vec![1], 3600, T0, 0.999);
    let late = m.held("a").map(|t| t.renew_at);
    assert_eq!(early, Some(2220));
    assert_eq!(late, Some(2580));
}

#[test]
fn the_margin_never_exceeds_a_quarter_of_a_short_lifetime() {
    // 30 s tokens with a 30 s margin would be renewed before every send.
    let mut m = TokenManager::new(vec![spec("a")], backoff(), 30);
    give(&mut m, 0, 1, 30, T0);
    assert!(matches!(m.for_send("a", T0 + 1_000), ForSend::Ready(_)));
    assert!(m.due(T0 + 19_000).is_empty());
    assert_eq!(m.due(T0 + 20_000), [0], "renewal point 2/3 * 30 s");
    // A long margin applies to long tokens: expiring within 30 s.
    let t = HeldToken {
        token: vec![],
        cti: vec![],
        issued_at: 0,
        lifetime: 3600,
        renew_at: 3599,
    };
    assert!(!t.needs_renewal(3569, 30));
    assert!(t.needs_renewal(3570, 30));
}

#[test]
fn failures_back_off_exponentially_with_jitter() {
    let mut m = manager();
    // unit 1.0 gives the ceiling: 1 s, 2 s, 4 s, 8 s, 8 s.
    let delays: Vec<u64> = (0..5).map(|_| m.on_failure(0, T0, 1.0)).collect();
    assert_eq!(delays, [1_000, 2_000, 4_000, 8_000, 8_000]);
    assert_eq!(m.failures(0), 5);
    // unit 0 is the floor.
    assert_eq!(m.on_failure(1, T0, 0.0), 100);
    // Not due while waiting, due again after.
    assert_eq!(m.due(T0 + 50), Vec::<usize>::new());
    assert_eq!(m.due(T0 + 100), [1]);
    assert_eq!(m.due(T0 + 8_000), [0, 1]);
    // Success resets the backoff.
    give(&mut m, 0, 9, 3600, T0 + 8_000);
    assert_eq!(m.failures(0), 0);
    assert_eq!(m.on_failure(0, T0, 1.0), 1_000);
}

#[test]
fn an_expired_token_is_never_used_a_valid_one_is_while_renewal_backs_off() {
    let mut m = TokenManager::new(vec![spec("a")], backoff(), 30);
    give(&mut m, 0, 1, 60, T0);
    // Past the renewal point (40 s) and the renewal failed: keep using it.
    let now = T0 + 45_000;
    assert_eq!(m.for_send("a", now), ForSend::Renew);
    m.on_failure(0, now, 1.0);
    assert!(matches!(m.for_send("a", now + 10), ForSend::Ready(t) if t.token == [1]));
    // Offline long enough for it to expire (agent clock jumped): wait, never send.
    let later = T0 + 70_000;
    m.on_failure(0, later, 1.0);
    assert_eq!(
        m.for_send("a", later + 1),
        ForSend::Wait {
            until_ms: later + 2_000
        }
    );
    // Once the retry time has come the send path asks for a fresh token.
    assert_eq!(m.for_send("a", later + 2_000), ForSend::Renew);
    give(&mut m, 0, 2, 60, later + 2_100);
    assert!(matches!(m.for_send("a", later + 2_200), ForSend::Ready(t) if t.token == [2]));
}

#[test]
fn usable_leaves_a_safety_gap() {
    let t = HeldToken {
        token: vec![],
        cti: vec![],
        issued_at: 100,
        lifetime: 30,
        renew_at: 20,
    };
    assert_eq!(t.expires_at(), 130);
    assert!(t.usable(126));
    assert!(!t.usable(127), "3 s gap for a 30 s token");
    assert!(!t.usable(500));
}

#[test]
fn next_due_covers_waiting_retries_and_missing_tokens() {
    let mut m = TokenManager::new(vec![spec("a")], backoff(), 30);
    assert_eq!(m.next_due_ms(), Some(0), "no token: due at once");
    m.on_failure(0, T0, 1.0);
    assert_eq!(m.next_due_ms(), Some(T0 + 1_000));
    let empty = TokenManager::new(vec![], backoff(), 30);
    assert_eq!(empty.next_due_ms(), None);
    assert!(empty.due(T0).is_empty());
}

#[test]
fn the_cti_is_read_from_the_token() {
    let signer = P256Signer::from_scalar(&[7; 32]).unwrap();
    let claims = Claims {
        sub: Some("sensor-1".into()),
        aud: vec!["api".into()],
        exp: Some(2_000_000_000),
        cti: Some(vec![0xab; 16]),
        ..Claims::default()
    };
    let token = certbound_proto::token::mint(&claims, "k1", &signer).unwrap();
    assert_eq!(token_cti(&token).unwrap(), vec![0xab; 16]);
    let no_cti = Claims {
        cti: None,
        ..claims
    };
    let token = certbound_proto::token::mint(&no_cti, "k1", &signer).unwrap();
    assert!(token_cti(&token).is_err());
    assert!(token_cti(b"not a token").is_err());
}
