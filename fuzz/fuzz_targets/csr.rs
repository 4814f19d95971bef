#![no_main]
//! PKCS#10 parsing and checking (`verify_csr` + `VerifiedCsr::check_identity`).
//! Property: an accepted CSR holds a 65-byte P-256 point that ends its SPKI.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(v) = certbound_pki::verify_csr(data) {
        assert_eq!(v.public_key_sec1.len(), 65);
        assert!(v.spki_der.ends_with(&v.public_key_sec1));
        let _ = v.check_identity("sensor-csr");
    }
});
