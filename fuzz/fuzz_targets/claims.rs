#![no_main]
use certbound_fuzz::{limits, loose};
use certbound_proto::claims::Claims;

// Accepted claims re-encode stably (bytes compared: NaN != NaN).
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(c) = Claims::from_cbor(data, limits()) else {
        return;
    };
    let again = Claims::from_cbor(&c.to_cbor(), loose()).map(|c| c.to_cbor());
    assert_eq!(again, Ok(c.to_cbor()));
});
