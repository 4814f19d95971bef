use super::*;

fn parse(body: &str) -> Result<Form, FormError> {
    parse_form(body.as_bytes(), &FormLimits::default())
}

#[test]
fn decodes_plus_and_percent() {
    let f = parse("a=x+y%2Bz&b=%E2%9C%93&c&d=").unwrap();
    assert_eq!(f.get("a"), Some("x y+z"));
    assert_eq!(f.get("b"), Some("\u{2713}"));
    assert_eq!(f.get("c"), Some(""));
    assert_eq!(f.get("d"), Some(""));
    assert_eq!(f.len(), 4);
    assert!(parse("").unwrap().is_empty());
    assert_eq!(parse("&&a=1&").unwrap().len(), 1);
}

#[test]
fn encoding_round_trips() {
    let pairs = vec![
        ("a b".to_string(), "x&y=z%+".to_string()),
        ("\u{2713}".to_string(), String::new()),
    ];
    let f = parse(&encode_form(&pairs)).unwrap();
    assert_eq!(f.pairs(), pairs.as_slice());
}

#[test]
fn refuses_duplicates_even_when_encoded_differently() {
    assert_eq!(parse("a=1&a=2"), Err(FormError::Duplicate("a".into())));
    assert_eq!(parse("ab=1&a%62=2"), Err(FormError::Duplicate("ab".into())));
}

#[test]
fn refuses_bad_escapes_and_non_utf8() {
    assert_eq!(parse("a=%"), Err(FormError::BadEscape(2)));
    assert_eq!(parse("a=%g1"), Err(FormError::BadEscape(2)));
    assert_eq!(parse("a=%ff"), Err(FormError::NotUtf8));
}

#[test]
fn bounds_size_and_count() {
    let limits = FormLimits {
        max_bytes: 16,
        max_params: 2,
    };
    assert_eq!(
        parse_form(b"a=1&b=2&c=3", &limits),
        Err(FormError::TooManyParams { max: 2 })
    );
    assert_eq!(
        parse_form(&[b'a'; 17], &limits),
        Err(FormError::TooLarge { max: 16 })
    );
}

#[test]
fn many_distinct_keys_parse_in_linear_time() {
    // 50 000 distinct keys: refused by the count limit at once, and with
    // the limit lifted the parse is still linear (hash-set duplicate check).
    let body: String = (0..50_000).map(|i| format!("k{i}=v&")).collect();
    assert_eq!(
        parse(&body),
        Err(FormError::TooLarge { max: 8192 }),
        "the default limits refuse it before any work"
    );
    let open = FormLimits {
        max_bytes: usize::MAX,
        max_params: usize::MAX,
    };
    assert_eq!(parse_form(body.as_bytes(), &open).unwrap().len(), 50_000);
}
