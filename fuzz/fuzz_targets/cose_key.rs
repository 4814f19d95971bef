#![no_main]
use certbound_fuzz::{cbor, limits};
use certbound_proto::EcPublicKey;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(value) = cbor::decode_strict(data, limits()) else {
        return;
    };
    if let Ok(key) = EcPublicKey::from_cose_key(&value) {
        assert_eq!(EcPublicKey::from_cose_key(&key.to_cose_key()), Ok(key));
    }
});
