use std::path::Path;

use base64::Engine as _;
use rcgen::KeyPair;

use super::*;

fn der() -> Vec<u8> {
    KeyPair::generate().unwrap().serialize_der()
}

fn body(sealed: &str) -> Vec<u8> {
    let b64: String = sealed.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap()
}

fn pem(body: &[u8]) -> String {
    crate::pem::encode_pem(SEALED_KEY_LABEL, body)
}

#[test]
fn seal_then_open_round_trips() {
    let kek = KeyEncryptionKey::generate().unwrap();
    let der = der();
    let sealed = seal_key(&kek, "issuing-ca", &der).unwrap();
    assert!(sealed.starts_with("-----BEGIN CERTBOUND ENCRYPTED PRIVATE KEY-----\n"));
    assert!(is_sealed(&sealed));
    // version || nonce || ciphertext || tag
    let b = body(&sealed);
    assert_eq!(b[0], 1);
    assert_eq!(b.len(), 1 + 12 + der.len() + 16);
    assert!(!b.windows(der.len()).any(|w| w == der.as_slice()));
    let opened = open_key(&sealed, Some(&kek), "issuing-ca", Path::new("k.pem")).unwrap();
    assert_eq!(opened.as_slice(), der.as_slice());
    // Two seals of the same key differ (random nonce).
    assert_ne!(sealed, seal_key(&kek, "issuing-ca", &der).unwrap());
}

#[test]
fn plaintext_keys_still_open_without_a_kek() {
    let der = der();
    let text = crate::pem::encode_pem("PRIVATE KEY", &der);
    assert!(!is_sealed(&text));
    let opened = open_key(&text, None, "issuing-ca", Path::new("k.pem")).unwrap();
    assert_eq!(opened.as_slice(), der.as_slice());
    let kek = KeyEncryptionKey::generate().unwrap();
    let opened = open_key(&text, Some(&kek), "issuing-ca", Path::new("k.pem")).unwrap();
    assert_eq!(opened.as_slice(), der.as_slice());
}

#[test]
fn sealed_key_without_kek_names_the_file() {
    let kek = KeyEncryptionKey::generate().unwrap();
    let sealed = seal_key(&kek, "root-ca", &der()).unwrap();
    let err = open_key(&sealed, None, "root-ca", Path::new("/x/root.pem")).unwrap_err();
    assert!(matches!(&err, PkiError::SealedKeyNoKek(p) if p == Path::new("/x/root.pem")));
    let msg = err.to_string();
    assert!(msg.contains("/x/root.pem"), "{msg}");
    assert!(msg.contains("CERTBOUND_KEY_ENCRYPTION_KEY"), "{msg}");
}

#[test]
fn wrong_key_wrong_role_and_tampering_are_refused() {
    let kek = KeyEncryptionKey::generate().unwrap();
    let sealed = seal_key(&kek, "signing-key:abc", &der()).unwrap();
    let path = Path::new("/d/keys/abc.key.pem");
    let other = KeyEncryptionKey::generate().unwrap();
    let err = open_key(&sealed, Some(&other), "signing-key:abc", path).unwrap_err();
    assert!(
        matches!(&err, PkiError::SealedKeyOpen(p) if p == path),
        "{err}"
    );
    assert!(err.to_string().contains("/d/keys/abc.key.pem"));
    assert!(err.to_string().contains("wrong"));
    // Right key, another role: the AAD differs.
    let err = open_key(&sealed, Some(&kek), "signing-key:abd", path).unwrap_err();
    assert!(matches!(err, PkiError::SealedKeyOpen(_)));
    // Every single-byte change is caught (version, nonce, ciphertext, tag).
    let b = body(&sealed);
    for i in 0..b.len() {
        let mut t = b.clone();
        t[i] ^= 0x01;
        let err = open_key(&pem(&t), Some(&kek), "signing-key:abc", path).unwrap_err();
        assert!(matches!(err, PkiError::SealedKeyOpen(_)), "byte {i}: {err}");
    }
    // Truncated and empty bodies.
    for len in [0, 1, 12, 28, b.len() - 1] {
        let err = open_key(&pem(&b[..len]), Some(&kek), "signing-key:abc", path).unwrap_err();
        assert!(
            matches!(err, PkiError::SealedKeyOpen(_)),
            "len {len}: {err}"
        );
    }
    // Not a key file at all.
    let err = open_key("hello", Some(&kek), "signing-key:abc", path).unwrap_err();
    assert!(matches!(err, PkiError::Malformed(_)), "{err}");
}

#[test]
fn key_encryption_key_parsing() {
    let kek = KeyEncryptionKey::generate().unwrap();
    let text = kek.to_base64();
    let again = KeyEncryptionKey::from_base64(&format!("  {}\n", text.as_str())).unwrap();
    let sealed = seal_key(&kek, "r", &der()).unwrap();
    assert!(open_key(&sealed, Some(&again), "r", Path::new("f")).is_ok());
    assert!(KeyEncryptionKey::from_base64(text.trim_end_matches('=')).is_ok());

    let secret_like = "c2VjcmV0LXZhbHVlLXRoYXQtaXMtdG9vLXNob3J0";
    let err = KeyEncryptionKey::from_base64(secret_like).unwrap_err();
    assert!(matches!(err, PkiError::BadKeyEncryptionKey(_)));
    assert!(!err.to_string().contains(secret_like), "{err}");
    assert!(err.to_string().contains("not 32"), "{err}");
    let err = KeyEncryptionKey::from_base64("not base64 !!").unwrap_err();
    assert!(matches!(err, PkiError::BadKeyEncryptionKey(_)));
    assert!(!format!("{kek:?}").contains(text.as_str()));
    assert!(format!("{kek:?}").contains("redacted"));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kek");
    std::fs::write(&file, format!("{}\n", text.as_str())).unwrap();
    assert!(KeyEncryptionKey::read_file(&file).is_ok());
    std::fs::write(&file, "AAAA").unwrap();
    let err = KeyEncryptionKey::read_file(&file).unwrap_err();
    assert!(
        err.to_string().contains(&file.display().to_string()),
        "{err}"
    );
    let err = KeyEncryptionKey::read_file(&dir.path().join("missing")).unwrap_err();
    assert!(matches!(err, PkiError::Io { .. }), "{err}");
}

#[test]
fn seal_key_file_converts_in_place_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.key.pem");
    let der = der();
    crate::files::write_new_file(
        &path,
        crate::pem::encode_pem("PRIVATE KEY", &der).as_bytes(),
        crate::files::Secrecy::Secret,
    )
    .unwrap();
    let kek = KeyEncryptionKey::generate().unwrap();
    assert!(seal_key_file(&path, &kek, "issuing-ca").unwrap());
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(is_sealed(&text));
    assert!(!text.contains("BEGIN PRIVATE KEY"));
    let opened = open_key(&text, Some(&kek), "issuing-ca", &path).unwrap();
    assert_eq!(opened.as_slice(), der.as_slice());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // No temporary file is left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    // Second run: nothing to do, file unchanged.
    assert!(!seal_key_file(&path, &kek, "issuing-ca").unwrap());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    // Sealed with another key: refused, not double-encrypted.
    let other = KeyEncryptionKey::generate().unwrap();
    let err = seal_key_file(&path, &other, "issuing-ca").unwrap_err();
    assert!(matches!(err, PkiError::SealedKeyOpen(_)), "{err}");
}
