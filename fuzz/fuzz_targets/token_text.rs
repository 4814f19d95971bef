#![no_main]
use certbound_verify::decode_token_text;

// Whatever decodes reads back the same from hex.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(bytes) = decode_token_text(&String::from_utf8_lossy(data)) else {
        return;
    };
    if !bytes.is_empty() {
        let hex: String = bytes.iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(decode_token_text(&hex), Ok(bytes));
    }
});
