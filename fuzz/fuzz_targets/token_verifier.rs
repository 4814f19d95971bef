#![no_main]
use certbound_fuzz::{FIX, NOW};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    match FIX.verifier.verify(data, &["telemetry:write"], NOW) {
        Ok(v) => assert!(v.has_scope("telemetry:write") && v.confirmation_key().is_some()),
        Err(e) => {
            let _ = (e.reason_code(), e.to_string());
        }
    }
});
