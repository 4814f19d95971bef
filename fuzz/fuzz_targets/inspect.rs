#![no_main]
use certbound_fuzz::{AUD, FIX, ISS, NOW};
use certbound_verify::{CheckResult, inspect};

// Never valid unless the signature verified; the report always renders.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let i = inspect(data, Some(&FIX.keys), Some(AUD), Some(ISS), NOW, 60);
    assert!(!i.valid || (i.signature == CheckResult::Ok && i.error.is_none()));
    let _ = i.to_string();
});
