use crate::{VerifyError, decode_token_text};

#[test]
fn decode_token_text_table() {
    let bytes: Vec<u8> = vec![0xd2, 0x84, 0x43, 0xa1, 0x01, 0x26, 0xfb, 0xff, 0xfe];
    let ok: [(&str, &[u8]); 12] = [
        ("d28443a10126fbfffe", &bytes),
        ("D28443A10126FBFFFE", &bytes),
        ("d2 84 43\na1 01 26\tfb ff fe\n", &bytes),
        ("0xd28443a10126fbfffe", &bytes),
        ("0oRDoQEm-__-", &bytes), // base64url, no padding needed
        ("0oRDoQEm+//+", &bytes), // standard base64
        ("  0oRDoQEm-__-  ", &bytes),
        ("0oRD", &[0xd2, 0x84, 0x43]), // common alphabet
        ("0oRDoQ", &[0xd2, 0x84, 0x43, 0xa1]),
        ("0oRDoQ==", &[0xd2, 0x84, 0x43, 0xa1]), // padded
        ("0oRDoQ-_", &[0xd2, 0x84, 0x43, 0xa1, 0x0f, 0xbf]),
        ("0oRDoQ+/", &[0xd2, 0x84, 0x43, 0xa1, 0x0f, 0xbf]),
    ];
    for (text, want) in ok {
        assert_eq!(decode_token_text(text).as_deref(), Ok(want), "{text:?}");
    }
    for bad in ["", "   ", "0oRD-+", "not base64!", "0oRDo", "d2=84"] {
        let err = decode_token_text(bad).unwrap_err();
        assert!(matches!(err, VerifyError::InvalidTokenText(_)), "{bad:?}");
        assert_eq!(err.reason_code(), "malformed");
    }
}
