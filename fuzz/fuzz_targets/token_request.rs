#![no_main]
use certbound_fuzz::{ISS, NOW, limits, loose};
use certbound_proto::request::TokenRequest;

// Whatever is accepted re-encodes to the same request.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(r) = TokenRequest::from_cbor(data, limits()) else {
        return;
    };
    let _ = r.validate(ISS, NOW, 60);
    assert_eq!(TokenRequest::from_cbor(&r.to_cbor(), loose()), Ok(r));
});
