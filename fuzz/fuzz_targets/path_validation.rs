#![no_main]
//! Certificate path validation with a peer-supplied chain, as the broker's
//! device authentication runs it (own CA, then external anchors), with a
//! fixed trust store and a fixed time. Input: concatenated DER certificates,
//! leaf first. Property: the work stays within the per-validation bounds.
use certbound_fuzz::pki::{NOW, TRUST, split_ders};
use certbound_pki::{MAX_PATH_STEPS, MAX_SIGNATURE_CHECKS};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let ders = split_ders(data);
    let Some((leaf, chain)) = ders.split_first() else {
        return;
    };
    let (own, work) = TRUST.verify_device_cert_counted(leaf, chain, NOW, 60);
    assert!(work.signature_checks <= MAX_SIGNATURE_CHECKS && work.candidates <= MAX_PATH_STEPS);
    if let Ok(v) = own {
        assert_eq!(v.public_key_sec1.len(), 65);
    }
    let (_, work) = TRUST.verify_external_device_cert_counted(leaf, chain, NOW, 60);
    assert!(work.signature_checks <= MAX_SIGNATURE_CHECKS && work.candidates <= MAX_PATH_STEPS);
    let _ = TRUST.verify_claim_cert(leaf, chain, NOW, 60);
});
