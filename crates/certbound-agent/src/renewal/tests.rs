use super::*;

const T0: u64 = 1_750_000_000;

fn policy() -> RenewalPolicy {
    RenewalPolicy {
        backoff: Backoff {
            base_ms: 30_000,
            max_ms: 3_600_000,
            floor_ms: 1_000,
        },
        expired_grace_secs: 7 * 86_400,
    }
}

/// A 90-day certificate issued at T0 (notBefore back-dated a minute, as the CA does).
fn cert() -> CertTimes {
    CertTimes {
        not_before: T0 - 60,
        not_after: T0 + 90 * 86_400,
    }
}

#[test]
fn renews_at_two_thirds_of_the_lifetime_with_jitter() {
    let c = cert();
    let s = RenewalSchedule::new(policy(), c, 0.5);
    assert_eq!(s.renew_at(), c.not_before + c.lifetime() * 2 / 3);
    // ±5 % of the lifetime.
    let early = RenewalSchedule::new(policy(), c, 0.0).renew_at();
    let late = RenewalSchedule::new(policy(), c, 0.999_999).renew_at();
    let five_percent = c.lifetime() / 20;
    assert!(
        early.abs_diff(s.renew_at()).abs_diff(five_percent) <= 1,
        "{early}"
    );
    assert!(
        late.abs_diff(s.renew_at()).abs_diff(five_percent) <= 1,
        "{late}"
    );

    // Before the point: wait until it; at it: renew.
    let at = s.renew_at();
    assert_eq!(
        s.due(T0 * 1000),
        Due::Wait {
            until_ms: at * 1000
        }
    );
    assert_eq!(
        s.due(at * 1000 - 1),
        Due::Wait {
            until_ms: at * 1000
        }
    );
    assert_eq!(s.due(at * 1000), Due::Renew);
    assert_eq!(s.next_due_ms(T0 * 1000), Some(at * 1000));
    assert_eq!(s.next_due_ms(at * 1000 + 5), Some(at * 1000 + 5));
}

#[test]
fn a_two_minute_certificate_renews_after_about_80_seconds() {
    let c = CertTimes {
        not_before: T0,
        not_after: T0 + 120,
    };
    let s = RenewalSchedule::new(policy(), c, 0.5);
    assert_eq!(s.renew_at(), T0 + 80);
    for unit in [0.0, 0.3, 0.999] {
        let at = RenewalSchedule::new(policy(), c, unit).renew_at();
        assert!((T0 + 74..=T0 + 86).contains(&at), "{unit}: {at}");
    }
}

#[test]
fn failures_back_off_and_success_starts_over() {
    let c = cert();
    let mut s = RenewalSchedule::new(policy(), c, 0.5);
    let now = s.renew_at() * 1000;
    assert_eq!(s.due(now), Due::Renew);
    let d1 = s.on_failure(now, 1.0);
    assert_eq!(d1, 30_000);
    assert_eq!(s.failures(), 1);
    assert_eq!(s.due(now + 1), Due::Wait { until_ms: now + d1 });
    assert_eq!(s.due(now + d1), Due::Renew);
    let d2 = s.on_failure(now + d1, 1.0);
    assert_eq!(d2, 60_000, "doubles");
    // Capped.
    for _ in 0..20 {
        s.on_failure(now, 1.0);
    }
    assert_eq!(s.on_failure(now, 1.0), 3_600_000);
    // Jitter: never below the floor.
    assert_eq!(s.on_failure(now, 0.0), 1_000);

    let renewed = CertTimes {
        not_before: now / 1000 - 60,
        not_after: now / 1000 + 90 * 86_400,
    };
    s.on_renewed(renewed, 0.5);
    assert_eq!(s.failures(), 0);
    assert_eq!(s.cert(), renewed);
    assert!(matches!(s.due(now), Due::Wait { .. }));
}

#[test]
fn an_expired_certificate_renews_within_the_grace_window_only() {
    let c = cert();
    let s = RenewalSchedule::new(policy(), c, 0.5);
    assert_eq!(s.due(c.not_after * 1000 - 1000), Due::Renew);
    assert_eq!(s.due(c.not_after * 1000), Due::RenewExpired);
    let grace_end = c.not_after + 7 * 86_400;
    assert_eq!(s.due(grace_end * 1000), Due::RenewExpired);
    assert_eq!(s.due((grace_end + 1) * 1000), Due::Reprovision);
    assert_eq!(s.next_due_ms((grace_end + 1) * 1000), None);

    // No grace: expired means re-provision.
    let strict = RenewalPolicy {
        expired_grace_secs: 0,
        ..policy()
    };
    let s = RenewalSchedule::new(strict, c, 0.5);
    assert_eq!(s.due(c.not_after * 1000), Due::RenewExpired);
    assert_eq!(s.due((c.not_after + 1) * 1000), Due::Reprovision);

    // Backing off past expiry still waits for the retry.
    let mut s = RenewalSchedule::new(policy(), c, 0.5);
    let now = (c.not_after + 10) * 1000;
    let d = s.on_failure(now, 0.5);
    assert_eq!(s.due(now + d - 1), Due::Wait { until_ms: now + d });
    assert_eq!(s.due(now + d), Due::RenewExpired);
}

#[test]
fn a_degenerate_certificate_does_not_panic() {
    for (nb, na) in [
        (T0, T0),
        (T0 + 10, T0),
        (0, 0),
        (0, u64::MAX),
        (u64::MAX, u64::MAX),
    ] {
        let s = RenewalSchedule::new(
            policy(),
            CertTimes {
                not_before: nb,
                not_after: na,
            },
            0.5,
        );
        let _ = s.due(T0 * 1000);
        let _ = s.next_due_ms(u64::MAX);
        let _ = s.renew_at();
    }
}

#[test]
fn the_staged_credential_state_machine() {
    use Action as A;
    use Event as E;
    use Phase as P;
    // The happy path.
    let (p, a) = P::Current.on(E::Requested).unwrap();
    assert_eq!((p, a), (P::Requesting, A::None));
    assert!(!p.has_staged());
    let (p, a) = p.on(E::Staged).unwrap();
    assert_eq!((p, a), (P::Staged, A::None));
    assert!(p.has_staged());
    let (p, a) = p.on(E::Connected).unwrap();
    assert_eq!((p, a), (P::Trial, A::None));
    let (p, a) = p.on(E::TokenObtained).unwrap();
    assert_eq!((p, a), (P::Current, A::Promote));

    // Failures: before anything is written, nothing to discard; after, discard.
    assert_eq!(P::Requesting.on(E::Failed), Ok((P::Current, A::None)));
    assert_eq!(P::Staged.on(E::Failed), Ok((P::Current, A::Discard)));
    assert_eq!(P::Trial.on(E::Failed), Ok((P::Current, A::Discard)));

    // Everything else is refused: in particular, nothing is promoted without
    // a connection AND a token with the new certificate.
    let all_events = [
        E::Requested,
        E::Staged,
        E::Connected,
        E::TokenObtained,
        E::Failed,
    ];
    let allowed = [
        (P::Current, E::Requested),
        (P::Requesting, E::Staged),
        (P::Requesting, E::Failed),
        (P::Staged, E::Connected),
        (P::Staged, E::Failed),
        (P::Trial, E::TokenObtained),
        (P::Trial, E::Failed),
    ];
    for phase in [P::Current, P::Requesting, P::Staged, P::Trial] {
        for event in all_events {
            let result = phase.on(event);
            assert_eq!(
                result.is_ok(),
                allowed.contains(&(phase, event)),
                "{phase:?} + {event:?}: {result:?}"
            );
            if let Ok((_, A::Promote)) = result {
                assert_eq!((phase, event), (P::Trial, E::TokenObtained));
            }
        }
    }
}
