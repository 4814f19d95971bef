#![no_main]
use certbound_verify::KeySet;

// An accepted COSE_KeySet survives both serialisations unchanged.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(ks) = KeySet::from_cose_key_set(data) else {
        return;
    };
    let cose = KeySet::from_cose_key_set(&ks.to_cose_key_set()).expect("own COSE_KeySet");
    let json = KeySet::from_jwks(&ks.to_jwks()).expect("own JWKS re-reads");
    assert!(
        ks.kids()
            .iter()
            .all(|k| json.get(k) == ks.get(k) && cose.get(k) == ks.get(k))
    );
    assert_eq!((json.len(), cose.len()), (ks.len(), ks.len()));
});
