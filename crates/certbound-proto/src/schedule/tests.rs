use super::*;

#[test]
fn renewal_point_table() {
    // (lifetime, unit, expected)
    let table = [
        (3600, 0.5, 2400),       // exactly 2/3
        (3600, 0.0, 2220),       // 2/3 - 5%
        (3600, 0.999_999, 2580), // 2/3 + 5%
        (90 * 86_400, 0.5, 60 * 86_400),
        (120, 0.5, 80),
        (2, 0.5, 1),
        (1, 0.5, 1),
        (0, 0.5, 1),
    ];
    for (lifetime, unit, expected) in table {
        assert_eq!(
            renew_after(lifetime, unit),
            expected,
            "lifetime {lifetime} unit {unit}"
        );
    }
    // Out-of-range samples are clamped, never panic.
    assert_eq!(renew_after(3600, f64::NAN), 2400);
    assert_eq!(renew_after(3600, 7.0), renew_after(3600, 1.0));
}

#[test]
fn renewal_spreads_a_fleet() {
    let points: Vec<u64> = (0..100)
        .map(|i| renew_after(3600, f64::from(i) / 100.0))
        .collect();
    let min = *points.iter().min().unwrap();
    let max = *points.iter().max().unwrap();
    assert!(
        min >= 2220 && max <= 2580 && max - min > 300,
        "{min}..{max}"
    );
}

#[test]
fn backoff_grows_and_caps() {
    let b = Backoff::default();
    assert_eq!(b.delay_ms(0, 1.0), 500);
    assert_eq!(b.delay_ms(1, 1.0), 1000);
    assert_eq!(b.delay_ms(3, 1.0), 4000);
    assert_eq!(b.delay_ms(20, 1.0), 60_000);
    assert_eq!(b.delay_ms(200, 1.0), 60_000);
    assert_eq!(b.delay_ms(5, 0.0), 100, "floor");
    assert_eq!(b.delay_ms(2, 0.5), 1000);
}

#[test]
fn renewal_needed() {
    // Issued at 1000 for 3600 s, renew at +2400.
    assert!(!needs_renewal(1000, 3600, 2400, 2000, 60));
    assert!(needs_renewal(1000, 3600, 2400, 3400, 60));
    // Within the margin of expiry even if the renewal point is later.
    assert!(needs_renewal(1000, 100, 5000, 1050, 60));
    // Expired.
    assert!(needs_renewal(1000, 3600, 2400, 9999, 0));
}
