#![no_main]
use certbound_fuzz::{FIX, limits, loose};
use certbound_proto::request::{TokenRequest, UnverifiedRequest};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(r) = UnverifiedRequest::parse(data, limits()) else {
        return;
    };
    if let Ok(req) = r.verify(&FIX.device, limits()) {
        assert_eq!(TokenRequest::from_cbor(&req.to_cbor(), loose()), Ok(req));
    }
});
