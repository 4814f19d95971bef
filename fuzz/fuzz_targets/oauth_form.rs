#![no_main]
use certbound_proto::form::{FormLimits, parse_form};

// The OAuth form parser: never a panic; an accepted form has each name once,
// at most `max_params` parameters, and re-encoding it parses to the same form.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let limits = FormLimits::default();
    let Ok(form) = parse_form(data, &limits) else {
        return;
    };
    assert!(form.len() <= limits.max_params);
    let mut names: Vec<&str> = form.pairs().iter().map(|(k, _)| k.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), form.len(), "a name appears twice");
    let open = FormLimits {
        max_bytes: usize::MAX,
        max_params: usize::MAX,
    };
    let encoded = certbound_proto::form::encode_form(form.pairs());
    let again = parse_form(encoded.as_bytes(), &open).expect("own encoding parses");
    assert_eq!(again, form);
});
