#![no_main]
//! A Status List Token as a backend receives it from `GET /status/{id}`:
//! `StatusCache::insert` (strict parsing, typ, ES256 signature, sub, exp/iat,
//! bounded inflation, rollback guard), then lookups of any index.
use certbound_fuzz::{FIX, NOW};
use certbound_proto::status_list::StatusRef;
use certbound_verify::status::{StatusCache, StatusCacheConfig};

const STATUS_BASE: &str = "https://auth.example.com/status/";
const STATUS_URI: &str = "https://auth.example.com/status/1";

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(mut cache) = StatusCache::new(StatusCacheConfig::new(STATUS_BASE)) else {
        return;
    };
    match cache.insert(STATUS_URI, data, &FIX.keys, NOW) {
        Ok(()) => {
            for idx in [0, 1, 2, 5, 63, 64, 1 << 20, u64::MAX] {
                let status = StatusRef {
                    idx,
                    uri: STATUS_URI.into(),
                };
                if let Err(e) = cache.check(&status, NOW) {
                    let _ = (e.reason_code(), e.to_string());
                }
            }
            // The same list again is not a rollback.
            assert!(cache.insert(STATUS_URI, data, &FIX.keys, NOW).is_ok());
        }
        Err(e) => {
            let _ = (e.reason_code(), e.to_string());
        }
    }
});
