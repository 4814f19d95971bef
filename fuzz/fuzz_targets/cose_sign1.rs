#![no_main]
use certbound_fuzz::{FIX, limits};
use certbound_proto::cose::UnverifiedSign1;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    for cwt_tag in [false, true] {
        if let Ok(s) = UnverifiedSign1::parse(data, limits(), cwt_tag) {
            let _ = (s.kid(), s.unverified_payload(), s.protected_value(33));
            let _ = s.verify(&FIX.broker);
        }
    }
});
