#![no_main]
use certbound_fuzz::{FIX, limits, loose};
use certbound_proto::{claims::Claims, token::UnverifiedToken};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(t) = UnverifiedToken::parse(data, limits()) else {
        return;
    };
    let _ = (t.kid(), t.verify(&FIX.broker, limits()));
    if let Ok(c) = t.unverified_claims(limits()) {
        // Accepted claims re-encode stably (bytes compared: NaN != NaN).
        let again = Claims::from_cbor(&c.to_cbor(), loose()).map(|c| c.to_cbor());
        assert_eq!(again, Ok(c.to_cbor()));
    }
});
