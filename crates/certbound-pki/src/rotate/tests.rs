use super::*;
use crate::testutil::{openssl, openssl_available, openssl_output, p};
use crate::{TrustStore, init_ca};

const T0: u64 = 1_750_000_000;
const DAY: u64 = 86_400;

fn setup(opts: &CaOptions) -> (tempfile::TempDir, PkiPaths) {
    let dir = tempfile::tempdir().unwrap();
    let paths = PkiPaths::new(dir.path());
    init_ca(&paths, opts, T0).unwrap();
    (dir, paths)
}

fn chain_ders(paths: &PkiPaths) -> Vec<Vec<u8>> {
    parse_pem_certs(&std::fs::read_to_string(paths.chain()).unwrap()).unwrap()
}

fn serial_of(der: &[u8]) -> String {
    crate::cert_summary(der).unwrap().serial_hex
}

/// Every file of the pki directory with its contents.
fn snapshot(paths: &PkiPaths) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = fs::read_dir(&paths.dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn rotation_keeps_old_certs_valid() {
    let (_dir, paths) = setup(&CaOptions::default());
    let old_ca = IssuingCa::load(&paths).unwrap();
    let before = old_ca.issue_device("dev-before", 90, T0).unwrap();
    let root_der = chain_ders(&paths)[1].clone();

    let t1 = T0 + 10 * DAY;
    let rotated = rotate_issuing(&paths, &CaOptions::default(), t1).unwrap();
    assert_eq!(rotated.old_serial, old_ca.serial_hex());
    assert_ne!(rotated.new_serial, rotated.old_serial);
    assert_eq!(rotated.new_not_after, t1 + 1825 * DAY);

    let new_ca = IssuingCa::load(&paths).unwrap();
    assert_eq!(new_ca.serial_hex(), rotated.new_serial);
    let after = new_ca.issue_device("dev-after", 90, t1).unwrap();

    let store = TrustStore::load(&paths).unwrap();
    for (cert, id) in [(&before, "dev-before"), (&after, "dev-after")] {
        let v = store
            .verify_device_cert(&cert.cert.der, &[], t1 + 60, 0)
            .unwrap();
        assert_eq!(v.device_id, id);
    }
    // Chain: current, previous, root.
    let chain = chain_ders(&paths);
    assert_eq!(chain.len(), 3);
    assert_eq!(chain[0], new_ca.cert_der());
    assert_eq!(chain[1], old_ca.cert_der());
    assert_eq!(chain[2], root_der);
    // The chain file alone (as shipped to verifiers) also validates both.
    let from_chain =
        TrustStore::from_pem(&std::fs::read_to_string(paths.chain()).unwrap()).unwrap();
    assert!(
        from_chain
            .verify_device_cert(&before.cert.der, &[], t1, 0)
            .is_ok()
    );
    assert!(
        from_chain
            .verify_device_cert(&after.cert.der, &[], t1, 0)
            .is_ok()
    );

    // The kept files, the key with mode 0600.
    let kept_key = paths.issuing_key_archived(&rotated.old_serial);
    assert!(paths.issuing_cert_archived(&rotated.old_serial).is_file());
    assert!(paths.issuing_cert_archived(&rotated.new_serial).is_file());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        for key in [
            kept_key,
            paths.issuing_key(),
            paths.issuing_key_archived(&rotated.new_serial),
        ] {
            let mode = fs::metadata(&key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", key.display());
        }
    }
    // No temporary files left behind.
    assert!(
        snapshot(&paths)
            .iter()
            .all(|(name, _)| !name.ends_with(".tmp"))
    );

    // The old CA can still sign CRLs for what it issued.
    let kept = IssuingCa::load_archived(&paths, &rotated.old_serial).unwrap();
    assert_eq!(kept.cert_der(), old_ca.cert_der());
    assert!(kept.has_issued(&before.cert.der) && !kept.has_issued(&after.cert.der));
    assert!(new_ca.has_issued(&after.cert.der) && !new_ca.has_issued(&before.cert.der));
    assert!(!new_ca.has_issued(b"garbage"));
}

#[test]
fn list_issuing_shows_current_first() {
    let (_dir, paths) = setup(&CaOptions::default());
    let initial = list_issuing(&paths).unwrap();
    assert_eq!(initial.len(), 1);
    assert!(initial[0].current);
    assert_eq!(initial[0].subject, "CN=certbound Issuing CA");
    assert_eq!(initial[0].not_before, T0 - 60);

    let opts = CaOptions {
        issuing_common_name: "certbound Issuing CA 2".into(),
        ..CaOptions::default()
    };
    let r1 = rotate_issuing(&paths, &opts, T0 + DAY).unwrap();
    let r2 = rotate_issuing(&paths, &opts, T0 + 2 * DAY).unwrap();
    assert_eq!(r2.old_serial, r1.new_serial);
    let list = list_issuing(&paths).unwrap();
    let serials: Vec<_> = list.iter().map(|c| c.serial_hex.as_str()).collect();
    assert_eq!(serials, [&r2.new_serial, &r1.new_serial, &r1.old_serial]);
    assert_eq!(list.iter().filter(|c| c.current).count(), 1);
    assert!(list[0].current);
    assert_eq!(list[0].subject, "CN=certbound Issuing CA 2");
    // The chain lists them in the same order, then the root.
    let chain: Vec<_> = chain_ders(&paths).iter().map(|d| serial_of(d)).collect();
    assert_eq!(chain[..3], [r2.new_serial, r1.new_serial, r1.old_serial]);
    assert_eq!(chain.len(), 4);
}

#[test]
fn expired_issuing_cas_leave_the_chain_but_stay_listed() {
    let opts = CaOptions {
        issuing_lifetime_days: 10,
        ..CaOptions::default()
    };
    let (_dir, paths) = setup(&opts);
    let old = IssuingCa::load(&paths).unwrap();
    let dev = old.issue_device("dev-1", 365, T0).unwrap();
    assert_eq!(
        dev.cert.not_after,
        T0 + 10 * DAY,
        "capped at the issuing CA"
    );
    // Rotating an expired issuing CA is allowed (that is when it is needed).
    let t = T0 + 20 * DAY;
    let rotated = rotate_issuing(&paths, &opts, t).unwrap();
    assert_eq!(rotated.new_not_after, t + 10 * DAY);
    assert_eq!(
        chain_ders(&paths).len(),
        2,
        "expired issuing CA is left out"
    );
    assert_eq!(list_issuing(&paths).unwrap().len(), 2);
    let store = TrustStore::load(&paths).unwrap();
    assert!(matches!(
        store.verify_device_cert(&dev.cert.der, &[], t, 0),
        Err(PkiError::Expired { .. })
    ));
}

#[test]
fn new_issuing_ca_never_outlives_the_root() {
    let opts = CaOptions {
        root_lifetime_days: 100,
        issuing_lifetime_days: 50,
        ..CaOptions::default()
    };
    let (_dir, paths) = setup(&opts);
    let rotated = rotate_issuing(&paths, &opts, T0 + 80 * DAY).unwrap();
    assert_eq!(rotated.new_not_after, T0 + 100 * DAY);
    let err = rotate_issuing(&paths, &opts, T0 + 100 * DAY).unwrap_err();
    assert!(matches!(err, PkiError::Expired { .. }), "{err}");
}

#[test]
fn foreign_certs_still_fail_after_rotation() {
    let (_dir, paths) = setup(&CaOptions::default());
    rotate_issuing(&paths, &CaOptions::default(), T0 + DAY).unwrap();
    let (_other_dir, other_paths) = setup(&CaOptions::default());
    let foreign = IssuingCa::load(&other_paths)
        .unwrap()
        .issue_device("dev-1", 30, T0)
        .unwrap();
    let store = TrustStore::load(&paths).unwrap();
    let err = store
        .verify_device_cert(&foreign.cert.der, &[], T0 + DAY, 0)
        .unwrap_err();
    assert!(matches!(err, PkiError::UnknownIssuer(_)), "{err}");
    // Not even when the device sends its own issuing CA along.
    let other_chain = chain_ders(&other_paths);
    let err = store
        .verify_device_cert(&foreign.cert.der, &other_chain[..1], T0 + DAY, 0)
        .unwrap_err();
    assert!(
        matches!(err, PkiError::UnknownIssuer(_) | PkiError::BadSignature(_)),
        "{err}"
    );
}

#[test]
fn rotation_refusals_change_nothing() {
    let (_dir, paths) = setup(&CaOptions::default());
    let before = snapshot(&paths);
    for (opts, what) in [
        (
            CaOptions {
                issuing_common_name: " ".into(),
                ..CaOptions::default()
            },
            "empty name",
        ),
        (
            CaOptions {
                issuing_lifetime_days: 0,
                ..CaOptions::default()
            },
            "zero lifetime",
        ),
    ] {
        let err = rotate_issuing(&paths, &opts, T0).unwrap_err();
        assert!(matches!(err, PkiError::InvalidArgument(_)), "{what}: {err}");
    }
    let err = rotate_issuing(&paths, &CaOptions::default(), T0 + 3650 * DAY).unwrap_err();
    assert!(matches!(err, PkiError::Expired { .. }), "{err}");
    assert_eq!(snapshot(&paths), before);

    // Root key kept offline.
    let root_key = fs::read(paths.root_key()).unwrap();
    fs::remove_file(paths.root_key()).unwrap();
    let err = rotate_issuing(&paths, &CaOptions::default(), T0).unwrap_err();
    assert!(
        matches!(&err, PkiError::RootKeyUnavailable(p) if *p == paths.root_key()),
        "{err}"
    );
    assert!(err.to_string().contains("offline"), "{err}");

    // A root key that does not belong to the root.
    fs::write(
        paths.root_key(),
        KeyPair::generate().unwrap().serialize_pem(),
    )
    .unwrap();
    let err = rotate_issuing(&paths, &CaOptions::default(), T0).unwrap_err();
    assert!(
        matches!(&err, PkiError::Malformed(m) if m.contains("root-ca.key.pem")),
        "{err}"
    );
    fs::write(paths.root_key(), root_key).unwrap();
    assert_eq!(snapshot(&paths), before);
}

#[test]
fn interrupted_rotation_is_finished() {
    let (_dir, paths) = setup(&CaOptions::default());
    let old_cert = fs::read(paths.issuing_cert()).unwrap();
    let old_chain = fs::read(paths.chain()).unwrap();
    let rotated = rotate_issuing(&paths, &CaOptions::default(), T0 + DAY).unwrap();
    // Simulate a crash after the key was replaced but before the certificate and chain.
    fs::write(paths.issuing_cert(), &old_cert).unwrap();
    fs::write(paths.chain(), &old_chain).unwrap();
    assert!(IssuingCa::load(&paths).is_err());

    let finished = rotate_issuing(&paths, &CaOptions::default(), T0 + DAY).unwrap();
    assert_eq!(finished, rotated);
    assert_eq!(
        IssuingCa::load(&paths).unwrap().serial_hex(),
        rotated.new_serial
    );
    assert_eq!(chain_ders(&paths).len(), 3);
    assert_eq!(list_issuing(&paths).unwrap().len(), 2);

    // A key that matches nothing: refuse and say what to do.
    fs::write(
        paths.issuing_key(),
        KeyPair::generate().unwrap().serialize_pem(),
    )
    .unwrap();
    let err = rotate_issuing(&paths, &CaOptions::default(), T0 + DAY).unwrap_err();
    assert!(
        matches!(&err, PkiError::Malformed(m) if m.contains("backup")),
        "{err}"
    );
}

#[test]
fn kept_files_are_checked() {
    let (_dir, paths) = setup(&CaOptions::default());
    let rotated = rotate_issuing(&paths, &CaOptions::default(), T0 + DAY).unwrap();
    // A kept file in the way with other contents is not overwritten.
    let (_dir2, paths2) = setup(&CaOptions::default());
    let serial = IssuingCa::load(&paths2).unwrap().serial_hex().to_owned();
    fs::write(paths2.issuing_cert_archived(&serial), b"something else").unwrap();
    let err = rotate_issuing(&paths2, &CaOptions::default(), T0).unwrap_err();
    assert!(matches!(err, PkiError::AlreadyExists(_)), "{err}");

    // A kept file whose name does not match its serial.
    let wrong = paths.issuing_cert_archived("abcd");
    fs::copy(paths.issuing_cert_archived(&rotated.old_serial), &wrong).unwrap();
    let err = list_issuing(&paths).unwrap_err();
    assert!(
        matches!(&err, PkiError::Malformed(m) if m.contains("abcd")),
        "{err}"
    );
    // A self-signed certificate dropped into pki/ never becomes a trust anchor.
    fs::copy(paths2.root_cert(), &wrong).unwrap();
    let err = TrustStore::load(&paths).unwrap_err();
    assert!(
        matches!(&err, PkiError::InvalidChain(m) if m.contains("self-signed")),
        "{err}"
    );
    fs::remove_file(&wrong).unwrap();
    assert!(TrustStore::load(&paths).is_ok());
    // Files that do not look like kept CAs are ignored.
    fs::write(paths.dir.join("issuing-ca.notes.pem"), b"x").unwrap();
    fs::write(paths.dir.join("issuing-ca.ABCD.pem"), b"x").unwrap();
    assert_eq!(list_issuing(&paths).unwrap().len(), 2);
    assert!(TrustStore::load(&paths).is_ok());

    for bad in ["../root-ca", "", "ABCD", "abc", "zz"] {
        let err = IssuingCa::load_archived(&paths, bad).unwrap_err();
        assert!(
            matches!(err, PkiError::InvalidArgument(_)),
            "{bad:?}: {err}"
        );
    }
}

#[test]
fn openssl_verifies_certs_from_both_issuing_cas() {
    if !openssl_available("rotate::openssl_verifies_certs_from_both_issuing_cas") {
        return;
    }
    let (dir, paths) = setup(&CaOptions::default());
    let before = IssuingCa::load(&paths)
        .unwrap()
        .issue_device("dev-before", 90, T0)
        .unwrap();
    let t1 = T0 + DAY;
    rotate_issuing(&paths, &CaOptions::default(), t1).unwrap();
    let after = IssuingCa::load(&paths)
        .unwrap()
        .issue_device("dev-after", 90, t1)
        .unwrap();
    let (_other_dir, other_paths) = setup(&CaOptions::default());
    let foreign = IssuingCa::load(&other_paths)
        .unwrap()
        .issue_device("dev-x", 90, T0)
        .unwrap();

    let at = (t1 + 60).to_string();
    let (root, chain) = (paths.root_cert(), paths.chain());
    for (name, cert, ok) in [
        ("before.pem", &before, true),
        ("after.pem", &after, true),
        ("foreign.pem", &foreign, false),
    ] {
        let path = dir.path().join(name);
        fs::write(&path, &cert.cert.pem).unwrap();
        // Root as the only anchor, the chain file as untrusted intermediates.
        let untrusted = [
            "verify",
            "-attime",
            &at,
            "-x509_strict",
            "-purpose",
            "sslclient",
            "-CAfile",
            p(&root),
            "-untrusted",
            p(&chain),
            p(&path),
        ];
        let whole_chain = ["verify", "-attime", &at, "-CAfile", p(&chain), p(&path)];
        for args in [&untrusted[..], &whole_chain[..]] {
            if ok {
                let v = openssl(args);
                assert!(v.trim_end().ends_with(": OK"), "{name}: {v}");
            } else {
                assert!(!openssl_output(args).status.success(), "{name} accepted");
            }
        }
    }
}

fn sealed_paths(dir: &std::path::Path) -> (PkiPaths, std::sync::Arc<crate::KeyEncryptionKey>) {
    let kek = std::sync::Arc::new(crate::KeyEncryptionKey::generate().unwrap());
    (
        PkiPaths::new(dir).with_key_encryption(Some(kek.clone())),
        kek,
    )
}

#[test]
fn root_key_kept_offline() {
    let dir = tempfile::tempdir().unwrap();
    let offline = tempfile::tempdir().unwrap();
    let out = offline.path().join("root.key.pem");
    let paths = PkiPaths::new(dir.path());
    crate::init_ca_root_key_at(&paths, &CaOptions::default(), T0, &out).unwrap();
    assert!(
        !paths.root_key().exists(),
        "the root key must not be online"
    );
    assert!(out.exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            fs::metadata(&out).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    // Issuing and validation need no root key.
    let ca = IssuingCa::load(&paths).unwrap();
    let bundle = ca.issue_device("dev-1", 30, T0).unwrap();
    TrustStore::load(&paths)
        .unwrap()
        .verify_device_cert(&bundle.cert.der, &[], T0 + 60, 60)
        .unwrap();

    // Rotation without the root key: clear error naming the option.
    let before = snapshot(&paths);
    let err = rotate_issuing(&paths, &CaOptions::default(), T0 + DAY).unwrap_err();
    assert!(
        matches!(&err, PkiError::RootKeyUnavailable(p) if *p == paths.root_key()),
        "{err}"
    );
    assert!(err.to_string().contains("--root-key"), "{err}");
    let missing = offline.path().join("nope.pem");
    let err = rotate_issuing_with_root_key(&paths, &CaOptions::default(), T0, Some(&missing))
        .unwrap_err();
    assert!(
        matches!(&err, PkiError::RootKeyUnavailable(p) if *p == missing),
        "{err}"
    );
    // A key that is not this root's.
    let foreign = offline.path().join("foreign.pem");
    fs::write(&foreign, KeyPair::generate().unwrap().serialize_pem()).unwrap();
    let err = rotate_issuing_with_root_key(&paths, &CaOptions::default(), T0, Some(&foreign))
        .unwrap_err();
    assert!(
        matches!(&err, PkiError::Malformed(m) if m.contains("foreign.pem")),
        "{err}"
    );
    assert_eq!(snapshot(&paths), before);

    // With the offline key: rotates, and the root key still is not online.
    let rotated =
        rotate_issuing_with_root_key(&paths, &CaOptions::default(), T0 + DAY, Some(&out)).unwrap();
    assert_eq!(
        IssuingCa::load(&paths).unwrap().serial_hex(),
        rotated.new_serial
    );
    assert!(!paths.root_key().exists());

    // init refuses an existing output file and writes nothing.
    let other = tempfile::tempdir().unwrap();
    let other_paths = PkiPaths::new(other.path());
    let err =
        crate::init_ca_root_key_at(&other_paths, &CaOptions::default(), T0, &out).unwrap_err();
    assert!(
        matches!(&err, PkiError::AlreadyExists(p) if *p == out),
        "{err}"
    );
    assert!(!other_paths.issuing_key().exists());
}

#[test]
fn encrypted_hierarchy_loads_rotates_and_refuses_without_key() {
    let dir = tempfile::tempdir().unwrap();
    let (paths, _kek) = sealed_paths(dir.path());
    init_ca(&paths, &CaOptions::default(), T0).unwrap();
    for key in [paths.root_key(), paths.issuing_key()] {
        let text = fs::read_to_string(&key).unwrap();
        assert!(crate::is_sealed(&text), "{}", key.display());
        assert!(!text.contains("BEGIN PRIVATE KEY"));
    }
    let ca = IssuingCa::load(&paths).unwrap();

    // Without the key encryption key, or with another one: refused, naming the file.
    let plain = PkiPaths::new(dir.path());
    let err = IssuingCa::load(&plain).unwrap_err();
    assert!(
        matches!(&err, PkiError::SealedKeyNoKek(p) if *p == paths.issuing_key()),
        "{err}"
    );
    let (wrong, _) = sealed_paths(dir.path());
    let err = IssuingCa::load(&wrong).unwrap_err();
    assert!(
        matches!(&err, PkiError::SealedKeyOpen(p) if *p == paths.issuing_key()),
        "{err}"
    );
    let err = rotate_issuing(&wrong, &CaOptions::default(), T0 + DAY).unwrap_err();
    assert!(
        matches!(&err, PkiError::SealedKeyOpen(p) if *p == paths.root_key()),
        "{err}"
    );
    // The public side needs no key.
    TrustStore::load(&plain).unwrap();

    // Rotation keeps every key sealed.
    let rotated = rotate_issuing(&paths, &CaOptions::default(), T0 + DAY).unwrap();
    for key in [
        paths.issuing_key(),
        paths.issuing_key_archived(&rotated.old_serial),
        paths.issuing_key_archived(&rotated.new_serial),
    ] {
        assert!(
            crate::is_sealed(&fs::read_to_string(&key).unwrap()),
            "{}",
            key.display()
        );
    }
    assert_eq!(
        IssuingCa::load(&paths).unwrap().serial_hex(),
        rotated.new_serial
    );
    let old = IssuingCa::load_archived(&paths, &rotated.old_serial).unwrap();
    assert_eq!(old.serial_hex(), ca.serial_hex());
    // Repeating the rotation step that keeps files is idempotent with sealed keys.
    keep(
        &paths,
        &rotated.old_serial,
        &old.cert_pem(),
        &paths
            .read_key(
                &paths.issuing_key_archived(&rotated.old_serial),
                crate::files::ROLE_ISSUING,
            )
            .unwrap(),
    )
    .unwrap();
}

#[test]
fn plaintext_ca_keys_are_sealed_in_place() {
    let (dir, plain) = setup(&CaOptions::default());
    let rotated = rotate_issuing(&plain, &CaOptions::default(), T0 + DAY).unwrap();
    let err = plain.seal_ca_keys().unwrap_err();
    assert!(matches!(err, PkiError::InvalidArgument(_)), "{err}");

    let (paths, _kek) = sealed_paths(dir.path());
    let mut sealed = paths.seal_ca_keys().unwrap();
    sealed.sort();
    let mut expected = vec![
        paths.root_key(),
        paths.issuing_key(),
        paths.issuing_key_archived(&rotated.old_serial),
        paths.issuing_key_archived(&rotated.new_serial),
    ];
    expected.sort();
    assert_eq!(sealed, expected);
    assert!(
        paths.seal_ca_keys().unwrap().is_empty(),
        "second run changes nothing"
    );
    assert_eq!(
        IssuingCa::load(&paths).unwrap().serial_hex(),
        rotated.new_serial
    );
    assert!(matches!(
        IssuingCa::load(&plain).unwrap_err(),
        PkiError::SealedKeyNoKek(_)
    ));
    rotate_issuing(&paths, &CaOptions::default(), T0 + 2 * DAY).unwrap();
}
