use super::*;

fn check(hex_str: &str) -> Result<(), ProtoError> {
    check_strict(&hex::decode(hex_str).unwrap(), Limits::default())
}

#[test]
fn accepts_well_formed_items() {
    for ok in [
        "00",           // 0
        "1818",         // 24
        "190100",       // 256
        "20",           // -1
        "4401020304",   // h'01020304'
        "6161",         // "a"
        "a201020304",   // {1: 2, 3: 4}
        "d28440a0f6f6", // 18([h'', {}, null, null])
        "f5",           // true
        "f97c00",       // half float infinity
        "82a0a0",       // [{}, {}]
    ] {
        assert_eq!(check(ok), Ok(()), "{ok}");
    }
}

#[test]
fn rejects_strictness_violations() {
    let table: &[(&str, &str)] = &[
        ("", "unexpected end of input"),
        ("0000", "trailing bytes after the CBOR item"),
        ("1801", "integer or length not in shortest form"),
        ("190017", "integer or length not in shortest form"),
        ("5801ff", "integer or length not in shortest form"),
        ("5f41ff", "indefinite-length items are not accepted"),
        ("9f00ff", "indefinite-length items are not accepted"),
        ("bf0102ff", "indefinite-length items are not accepted"),
        ("ff", "indefinite-length break outside an item"),
        ("1c", "reserved additional information value"),
        ("a201020103", "duplicate map key"),
        ("a1f600", "map keys must be integers or text strings"),
        ("a14161f6", "map keys must be integers or text strings"),
        ("c24101", "bignum tags (2, 3) are not accepted"),
        ("c34101", "bignum tags (2, 3) are not accepted"),
        ("a2616101616102", "duplicate map key"),
        ("62c328", "text string is not valid UTF-8"),
        ("f0", "unassigned simple value"),
        ("f818", "simple value not in shortest form"),
        ("5a00010000", "length runs past the end of input"),
        ("9b0000000100000000", "unexpected end of input"),
    ];
    for (input, reason) in table {
        match check(input) {
            Err(ProtoError::MalformedCbor { reason: r, .. }) => {
                assert_eq!(&r, reason, "input {input}")
            }
            other => panic!("input {input}: expected {reason}, got {other:?}"),
        }
    }
}

#[test]
fn huge_declared_length_does_not_allocate() {
    // An array header claiming 2^32 elements: must fail fast, not allocate.
    assert!(check("9b0000000100000000").is_err());
}

#[test]
fn depth_and_size_limits() {
    let deep = format!("{}00", "81".repeat(17));
    assert!(check(&deep).is_err());
    let ok = format!("{}00", "81".repeat(16));
    assert_eq!(check(&ok), Ok(()));
    let big = vec![0u8; 10];
    assert_eq!(
        check_strict(
            &big,
            Limits {
                max_size: 5,
                max_depth: 16
            }
        ),
        Err(ProtoError::TooLarge { size: 10, limit: 5 })
    );
}

#[test]
fn numeric_dates() {
    assert_eq!(numeric_date(&uint(5), "t"), Ok(5));
    assert_eq!(numeric_date(&Value::Float(7.9), "t"), Ok(7));
    assert!(numeric_date(&int(-1), "t").is_err());
    assert!(numeric_date(&Value::Float(f64::NAN), "t").is_err());
}
