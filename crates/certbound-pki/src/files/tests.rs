use super::*;

#[test]
fn paths_layout() {
    let p = PkiPaths::new(Path::new("/data"));
    assert_eq!(p.dir, Path::new("/data/pki"));
    assert_eq!(p.root_cert(), Path::new("/data/pki/root-ca.pem"));
    assert_eq!(p.root_key(), Path::new("/data/pki/root-ca.key.pem"));
    assert_eq!(p.issuing_cert(), Path::new("/data/pki/issuing-ca.pem"));
    assert_eq!(p.issuing_key(), Path::new("/data/pki/issuing-ca.key.pem"));
    assert_eq!(p.chain(), Path::new("/data/pki/ca-chain.pem"));
}

#[test]
fn write_new_file_refuses_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    write_new_file(&path, b"one", Secrecy::Public).unwrap();
    let err = write_new_file(&path, b"two", Secrecy::Public).unwrap_err();
    assert!(matches!(err, PkiError::AlreadyExists(p) if p == path));
    assert_eq!(fs::read(&path).unwrap(), b"one");
    assert!(matches!(
        ensure_absent(&[&path]),
        Err(PkiError::AlreadyExists(_))
    ));
}

#[cfg(unix)]
#[test]
fn secret_files_are_0600() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k");
    write_new_file(&path, b"secret", Secrecy::Secret).unwrap();
    let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}
