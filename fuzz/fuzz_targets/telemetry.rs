#![no_main]
use certbound_fuzz::{FIX, limits};
use certbound_proto::telemetry::UnverifiedTelemetry;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(t) = UnverifiedTelemetry::parse(data, limits()) {
        let _ = t.verify_body(&FIX.device, limits());
    }
});
