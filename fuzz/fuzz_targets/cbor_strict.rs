#![no_main]
use certbound_fuzz::{cbor, limits};

// Strictly well-formed <=> decodable: the strictness check never passes what
// the decoder then refuses, and neither panics.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let checked = cbor::check_strict(data, limits());
    let decoded = cbor::decode_strict(data, limits());
    assert_eq!(
        checked.is_ok(),
        decoded.is_ok(),
        "{checked:?} vs {decoded:?}"
    );
});
