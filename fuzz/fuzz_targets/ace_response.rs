#![no_main]
use certbound_fuzz::{limits, loose};
use certbound_proto::ace::AceResponse;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(r) = AceResponse::from_cbor(data, limits()) else {
        return;
    };
    let bytes = match &r {
        AceResponse::Token(t) => t.to_cbor(),
        AceResponse::Error(e) => e.to_cbor(),
    };
    assert_eq!(AceResponse::from_cbor(&bytes, loose()), Ok(r));
});
