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

#[test]
fn replace_file_swaps_contents_and_leaves_no_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("issuing-ca.key.pem");
    replace_file(&path, b"one", Secrecy::Secret).unwrap();
    replace_file(&path, b"two", Secrecy::Secret).unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"two");
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["issuing-ca.key.pem"]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let missing_dir = dir.path().join("nope").join("f");
    assert!(matches!(
        replace_file(&missing_dir, b"x", Secrecy::Public),
        Err(PkiError::Io { .. })
    ));
}

#[test]
fn archived_issuing_ca_paths_and_listing() {
    let dir = tempfile::tempdir().unwrap();
    let p = PkiPaths::new(dir.path());
    assert!(
        p.archived_issuing_serials().unwrap().is_empty(),
        "no pki dir yet"
    );
    assert_eq!(
        p.issuing_cert_archived("0a1b"),
        p.dir.join("issuing-ca.0a1b.pem")
    );
    assert_eq!(
        p.issuing_key_archived("0a1b"),
        p.dir.join("issuing-ca.0a1b.key.pem")
    );
    fs::create_dir_all(&p.dir).unwrap();
    for name in [
        "issuing-ca.0a1b.pem",
        "issuing-ca.0a1b.key.pem",
        "issuing-ca.ff.pem",
        "issuing-ca.pem",
        "issuing-ca.ABCD.pem",
        "issuing-ca.abc.pem",
        "issuing-ca.notes.pem",
        ".issuing-ca.pem.0011.tmp",
    ] {
        fs::write(p.dir.join(name), b"x").unwrap();
    }
    assert_eq!(p.archived_issuing_serials().unwrap(), ["0a1b", "ff"]);
    for (s, ok) in [
        ("00", true),
        ("0a1b", true),
        ("a", false),
        ("", false),
        ("0A", false),
    ] {
        assert_eq!(is_serial_hex(s), ok, "{s:?}");
    }
    assert!(is_serial_hex(&"ab".repeat(20)) && !is_serial_hex(&"ab".repeat(21)));
}
