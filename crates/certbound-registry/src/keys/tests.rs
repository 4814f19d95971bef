use super::*;

#[test]
fn create_load_and_list() {
    let dir = tempfile::tempdir().unwrap();
    let kid = create_signing_key(&KeyDir::plain(dir.path())).unwrap();
    let key = load_current(&KeyDir::plain(dir.path())).unwrap();
    assert_eq!(key.kid, kid);
    let pubs = public_keys(dir.path()).unwrap();
    assert_eq!(pubs.len(), 1);
    assert_eq!(&pubs[0].1, key.signer.public_key());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(key_path(dir.path(), &kid))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn encrypted_signing_keys() {
    let dir = tempfile::tempdir().unwrap();
    let kek = KeyEncryptionKey::generate().unwrap();
    let sealed = KeyDir {
        path: dir.path().to_path_buf(),
        kek: Some(&kek),
    };
    let kid = create_signing_key(&sealed).unwrap();
    let path = key_path(dir.path(), &kid);
    let text = fs::read_to_string(&path).unwrap();
    assert!(certbound_pki::is_sealed(&text));
    assert!(!text.contains("BEGIN PRIVATE KEY"));
    assert_eq!(load_current(&sealed).unwrap().kid, kid);

    // No key, or another key: refused, naming the file.
    let err = load_current(&KeyDir::plain(dir.path())).unwrap_err();
    assert!(
        matches!(&err, RegistryError::Pki(certbound_pki::PkiError::SealedKeyNoKek(p)) if *p == path),
        "{err}"
    );
    let other = KeyEncryptionKey::generate().unwrap();
    let wrong = KeyDir {
        path: dir.path().to_path_buf(),
        kek: Some(&other),
    };
    let err = load_current(&wrong).unwrap_err();
    assert!(
        matches!(&err, RegistryError::Pki(certbound_pki::PkiError::SealedKeyOpen(p)) if *p == path),
        "{err}"
    );
    // A sealed key moved to another kid's name fails (the kid is the AAD).
    let (other_signer, _) = AwsLcSigner::generate().unwrap();
    let other_kid = other_signer.public_key().kid();
    fs::copy(&path, key_path(dir.path(), &other_kid)).unwrap();
    assert!(matches!(
        load(&sealed, &other_kid).unwrap_err(),
        RegistryError::Pki(certbound_pki::PkiError::SealedKeyOpen(_))
    ));
}

#[test]
fn plaintext_signing_keys_are_sealed_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let plain = KeyDir::plain(dir.path());
    let kid = create_signing_key(&plain).unwrap();
    assert!(matches!(
        seal_signing_keys(&plain).unwrap_err(),
        RegistryError::Invalid(_)
    ));
    let kek = KeyEncryptionKey::generate().unwrap();
    let sealed = KeyDir {
        path: dir.path().to_path_buf(),
        kek: Some(&kek),
    };
    assert_eq!(
        seal_signing_keys(&sealed).unwrap(),
        vec![key_path(dir.path(), &kid)]
    );
    assert!(seal_signing_keys(&sealed).unwrap().is_empty());
    assert_eq!(load_current(&sealed).unwrap().kid, kid);
    assert!(load_current(&plain).is_err());
}
