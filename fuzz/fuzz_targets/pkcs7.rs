#![no_main]
//! PKCS#7 certs-only reading (`pkcs7_certificates`). Property: what is read
//! back re-wraps (`pkcs7_certs_only`) into a message that reads the same set.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(mut certs) = certbound_pki::pkcs7_certificates(data) {
        let again = certbound_pki::pkcs7_certs_only(&certs);
        let mut back = certbound_pki::pkcs7_certificates(&again).expect("own output reads back");
        certs.sort();
        certs.dedup();
        back.sort();
        assert_eq!(back, certs);
    }
});
